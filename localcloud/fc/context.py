"""What an FC python3.10 instance hands a handler besides the event: the context object and the environment.

The context mirrors the python3.10/3.9 runtime (fc-eventbridge.md §1.2): `request_id`,
`credentials` (access_key_id, access_key_secret, security_token), `function` (name, handler,
memory, timeout), `service` (name, log_project, log_store, qualifier, version_id), `region`,
`account_id`, `tracing` (span_context, jaeger_endpoint, span_baggages). FC 3.0 has no services:
`service.name` is empty and `qualifier` is LATEST, as for a function invoked without an alias.

The environment carries FC's system variables (§1.2: FC_FUNCTION_NAME, FC_FUNCTION_HANDLER,
FC_FUNCTION_MEMORY_SIZE, FC_REGION, FC_ACCOUNT_ID, FC_FUNC_CODE_PATH, FC_INSTANCE_ID and the
ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/SECURITY_TOKEN of the function's role), then the function's
template EnvironmentVariables, then `extra`. The local runtime passes one extra variable:

    BAKERY_CLOUD_ENDPOINT=<host[:port]>

the endpoint of the local cloud (`localcloud.testing.running(...).endpoint`). The project's SDK
clients use it, when set, as `Config(endpoint=..., protocol="http")` instead of the regional
Alibaba Cloud endpoint; on real FC it is never set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud.fc.template.model import FunctionDef

ENDPOINT_ENV = "BAKERY_CLOUD_ENDPOINT"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str


@dataclass(frozen=True)
class FunctionMeta:
    name: str
    handler: str
    memory: int
    timeout: int


@dataclass(frozen=True)
class ServiceMeta:
    name: str = ""
    log_project: str = ""
    log_store: str = ""
    qualifier: str = "LATEST"
    version_id: str = ""


@dataclass(frozen=True)
class Tracing:
    span_context: str | None = None  # None: tracing is not enabled for the function
    jaeger_endpoint: str = ""
    span_baggages: dict[str, str] = field(default_factory=dict)

    def parseOpenTracingBaggages(self) -> dict[str, str]:  # the runtime's own (camelCase) name
        return dict(self.span_baggages)


@dataclass(frozen=True)
class FCContext:
    request_id: str
    credentials: Credentials
    function: FunctionMeta
    service: ServiceMeta
    region: str
    account_id: str
    tracing: Tracing = field(default_factory=Tracing)


def make_context(
    fn: FunctionDef, *, request_id: str, region: str, account_id: str, credentials: Credentials
) -> FCContext:
    return FCContext(
        request_id=request_id,
        credentials=credentials,
        function=FunctionMeta(fn.name, fn.handler, fn.memory_mb, fn.timeout_s),
        service=ServiceMeta(),
        region=region,
        account_id=account_id,
    )


def instance_id(fn: FunctionDef, generation: int = 0) -> str:
    """A stable id for the local (warm) instance of `fn`; a new generation after a failed cold start."""
    digest = hashlib.sha256(f"{fn.name}/{generation}".encode()).hexdigest()
    return f"c-{digest[:8]}-{digest[8:16]}-{digest[16:28]}"


def invocation_env(
    fn: FunctionDef,
    region: str,
    account_id: str,
    credentials: Credentials,
    extra: Mapping[str, str] | None = None,
    *,
    instance: str | None = None,
) -> dict[str, str]:
    """The environment one invocation of `fn` sees: FC system variables, template variables, then `extra`."""
    env: dict[str, Any] = {
        "FC_FUNCTION_NAME": fn.name,
        "FC_FUNCTION_HANDLER": fn.handler,
        "FC_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
        "FC_REGION": region,
        "FC_ACCOUNT_ID": account_id,
        "FC_FUNC_CODE_PATH": str(fn.code_dir),
        "FC_INSTANCE_ID": instance or instance_id(fn),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": credentials.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": credentials.access_key_secret,
        "ALIBABA_CLOUD_SECURITY_TOKEN": credentials.security_token,
    }
    env.update(fn.env)
    env.update(extra or {})
    return {key: str(value) for key, value in env.items()}
