"""`bakery deploy` / `bakery destroy`: the engine. Plans, applies and follows; it never prints.

    settings   resolve_settings(layers): [tool.bakery.deploy] in pyproject.toml < --config FILE < flags
    plan       Deployer.plan(): validate the template locally, build (or read) the artifacts, then READ the
               cloud — buses, bucket, objects, the stack and its deployed template — and say what would change
    apply      Deployer.apply(plan): buses, bucket, uploads, CreateStack/UpdateStack, then follow the stack
    follow     Deployer.follow(...): ListStackEvents + GetStack until a terminal status (local clock: advanced)
    destroy    Deployer.destroy_plan() / destroy(): DeleteStack, follow, delete the buses, report what is left

Every SDK call goes through `CloudClients` (built in one place from the same `bakery.target` settings the operator
commands use: the standard credential chain, or a local cloud's `--endpoint HOST:PORT` for every client, OSS too).
Progress reaches the caller through callbacks (`on_step`, `on_event`) carrying data; the CLI (cli_deploy) prints.

The code prefix is `<prefix>/<12 hex of the artifacts' sha256s>`: an unchanged build keeps the prefix (ROS leaves the
functions alone) and any change moves every function to new code. Objects carry their sha256 in user metadata
(`x-oss-meta-sha256`) so an upload is skipped when the same content is already there.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bakery import tags
from bakery.errors import BakeFailure, CloudError, ConfigError, RetryableError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
DEFAULT_STACK = "bakery"
DEFAULT_PREFIX = "bakery"
DEFAULT_TIMEOUT_MINUTES = 30
POLL_SECONDS = 5.0
ROLLBACK_GRACE_POLLS = 2  # polls a *_FAILED status gets to turn into the rollback that follows it
LOCAL_ADVANCE_TIMEOUT_S = 600  # real seconds one clock advance of a local cloud may take
FOLLOW_MARGIN_SECONDS = 60.0  # ROS fails the stack at TimeoutInMinutes: follow a little longer to see it happen
CODE_PARAMETERS = ("CodeBucket", "CodePrefix")
BUS_PARAMETERS = ("NotificationBus", "DeadLetterBus")
SUCCESS = {"create": "CREATE_COMPLETE", "update": "UPDATE_COMPLETE", "delete": "DELETE_COMPLETE"}
# A stack left in one of these by a failed operation is updated even when nothing changed: UpdateStack
# makes what is missing (after CREATE_ROLLBACK_COMPLETE, nothing exists).
RETRY_STATUSES = ("CREATE_FAILED", "CREATE_ROLLBACK_COMPLETE", "CREATE_ROLLBACK_FAILED", "UPDATE_FAILED",
                  "ROLLBACK_FAILED", "DELETE_FAILED")  # fmt: skip
MIN_TIMEOUT, MAX_TIMEOUT = 10, 1440  # CreateStack/UpdateStack TimeoutInMinutes
SHA256_META = "sha256"
STACK_TYPE = "ALIYUN::ROS::Stack"  # the ResourceType of a stack's own events
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
# Settings a [tool.bakery.deploy] table, a --config file and the flags may set.
SETTING_KEYS = ("stack", "region", "endpoint", "bucket", "prefix", "template", "timeout", "parameters", "artifacts")
PLAN_ACCOUNT_ID = "1234567890123456"  # validation needs one; the diff keeps ${ALIYUN::TenantId} symbolic
# Instance tags that say Bakery touched an instance (DescribeInstances filters need a key: one query each).
INSTANCE_TAG_KEYS = (tags.TRIGGER, tags.BAKE_ID, tags.LAST_IMAGE, tags.LAST_ERROR, tags.FAMILY)


class DeployError(Exception):
    """Deploy or destroy cannot go on: `exit_code` (1 refused/failed, 2 bad input), a stable `reason`, and a
    message that says what to do next."""

    def __init__(self, exit_code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason
        self.message = message


# == settings ======================================================================================


@dataclass(frozen=True)
class DeploySettings:
    stack: str = DEFAULT_STACK
    region: str = ""
    endpoint: str = ""  # a local cloud's host:port; "" = Alibaba Cloud
    bucket: str = ""
    prefix: str = DEFAULT_PREFIX
    template: Path = Path("template.yml")
    timeout: int = DEFAULT_TIMEOUT_MINUTES  # minutes: ROS's TimeoutInMinutes, and how long deploy follows
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: Path | None = None  # zips already built (make package): deploy them instead of building
    origins: dict[str, str] = field(default_factory=dict)  # setting -> where its value came from


@dataclass(frozen=True)
class Layer:
    """One source of settings: `values` as read (TOML table or flags), paths relative to `base`."""

    origin: str
    values: Mapping[str, Any]
    base: Path | None = None


def _toml() -> Any:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # python3.10: the `local` extra installs tomli
        import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
    return tomllib


def read_toml(path: Path) -> dict[str, Any]:
    tomllib = _toml()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployError(EXIT_USAGE, "bad-config", f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeployError(EXIT_USAGE, "bad-config", f"{path}: not valid TOML ({exc})") from None


def _deploy_table(document: Mapping[str, Any]) -> Any:
    return ((document.get("tool") or {}).get("bakery") or {}).get("deploy")


def pyproject_layer(path: Path) -> Layer | None:
    """The `[tool.bakery.deploy]` table of pyproject.toml (the settings a team commits); None without one."""
    if not path.is_file():
        return None
    table = _deploy_table(read_toml(path))
    if table is None:
        return None
    if not isinstance(table, dict):
        raise DeployError(EXIT_USAGE, "bad-config", f"{path}: [tool.bakery.deploy] must be a table")
    return Layer(f"{path.name} [tool.bakery.deploy]", table, path.resolve().parent)


def config_layer(path: Path) -> Layer:
    """A `--config FILE`: the same keys at its top level (or in its own [tool.bakery.deploy] table)."""
    document = read_toml(path)
    table = _deploy_table(document)
    return Layer(str(path), table if isinstance(table, dict) else document, path.resolve().parent)


def flag_layer(values: Mapping[str, Any]) -> Layer:
    """The command line: None means the flag was not given."""
    return Layer("the command line", {k: v for k, v in values.items() if v is not None and v != {}}, None)


def parse_parameter_flags(items: Iterable[str]) -> dict[str, str]:
    """`--parameter KEY=VALUE` (repeatable) as a dict; a malformed item is bad input."""
    parameters: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DeployError(EXIT_USAGE, "bad-parameter", f"--parameter takes KEY=VALUE (a template parameter, e.g. "
                              f"RepairZoneId=cn-hangzhou-h), got {item!r}")  # fmt: skip
        parameters[key.strip()] = value
    return parameters


def resolve_settings(layers: Sequence[Layer], env: Mapping[str, str] | None = None) -> DeploySettings:
    """Defaults, then the environment (ALIBABA_CLOUD_REGION_ID, BAKERY_CLOUD_ENDPOINT), then each layer in
    order — later wins; `parameters` merge key by key. Unknown keys and malformed values name their source."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {"stack": DEFAULT_STACK, "prefix": DEFAULT_PREFIX, "template": Path("template.yml"),
                              "timeout": DEFAULT_TIMEOUT_MINUTES, "region": "", "endpoint": "", "bucket": "",
                              "artifacts": None}  # fmt: skip
    origins = dict.fromkeys(values, "default")
    for key, variable in (("region", "ALIBABA_CLOUD_REGION_ID"), ("endpoint", "BAKERY_CLOUD_ENDPOINT")):
        if env.get(variable):
            values[key], origins[key] = env[variable], f"${variable}"
    parameters: dict[str, str] = {}
    for layer in layers:
        for key, raw in layer.values.items():
            if key not in SETTING_KEYS:
                raise DeployError(EXIT_USAGE, "bad-config", f"{layer.origin}: unknown setting {key!r} "
                                  f"(allowed: {', '.join(SETTING_KEYS)})")  # fmt: skip
            if key == "parameters":
                if not isinstance(raw, Mapping):
                    raise DeployError(EXIT_USAGE, "bad-config", f"{layer.origin}: parameters must be a table of "
                                      "template parameters (KEY = VALUE)")  # fmt: skip
                for name, value in raw.items():
                    parameters[str(name)] = _parameter_text(layer, str(name), value)
                    origins[f"parameters.{name}"] = layer.origin
                continue
            values[key] = _setting(layer, key, raw)
            origins[key] = layer.origin
    values["endpoint"] = _endpoint(values["endpoint"])
    return DeploySettings(**values, parameters=parameters, origins=origins)


def _setting(layer: Layer, key: str, raw: Any) -> Any:
    where = f"{layer.origin}: {key}"
    if key == "timeout":
        if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).strip().isdigit():
            raise DeployError(EXIT_USAGE, "bad-config", f"{where} is a whole number of minutes, got {raw!r}")
        minutes = int(str(raw).strip())
        if not MIN_TIMEOUT <= minutes <= MAX_TIMEOUT:
            raise DeployError(EXIT_USAGE, "bad-config", f"{where} must be {MIN_TIMEOUT} to {MAX_TIMEOUT} minutes (ROS's "
                              f"TimeoutInMinutes), got {minutes}")  # fmt: skip
        return minutes
    if not isinstance(raw, (str, os.PathLike)):
        raise DeployError(EXIT_USAGE, "bad-config", f"{where} must be a string, got {raw!r}")
    text = str(raw).strip()
    if key in ("template", "artifacts"):
        path = Path(text).expanduser()
        return path if path.is_absolute() or layer.base is None else layer.base / path
    if key == "stack" and not _STACK_NAME.match(text):
        raise DeployError(EXIT_USAGE, "bad-config", f"{where}: {text!r} is not a stack name (letters, digits, - and "
                          "_, starting with a letter or digit, up to 255)")  # fmt: skip
    if key == "bucket" and not _BUCKET.match(text):
        raise DeployError(EXIT_USAGE, "bad-config", f"{where}: {text!r} is not an OSS bucket name (3-63 of a-z, 0-9 "
                          "and -, starting and ending with a letter or digit)")  # fmt: skip
    if key == "prefix":
        text = text.strip("/")
        if not _PREFIX.match(text):
            raise DeployError(EXIT_USAGE, "bad-config", f"{where}: {raw!r} is not an object prefix (letters, digits, "
                              "., _, - and /)")  # fmt: skip
    return text


def _parameter_text(layer: Layer, name: str, value: Any) -> str:
    """A parameter value as ROS takes it: text; TOML tables and arrays become JSON (MandatoryTags = {a = "b"})."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, (str, int, float)):
        return str(value)
    raise DeployError(EXIT_USAGE, "bad-config", f"{layer.origin}: parameters.{name} has an unsupported value {value!r}")


def _endpoint(value: str) -> str:
    text = (value or "").strip()
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    return text.rstrip("/")


def target_settings(settings: DeploySettings) -> Any:
    """The bakery.config.Settings the operator commands use (bakery.target): region, endpoint, credentials."""
    from bakery.target import settings_for

    try:
        return settings_for(argparse.Namespace(region=settings.region, endpoint=settings.endpoint, bus=DEFAULT_STACK))
    except ConfigError as exc:
        raise DeployError(EXIT_USAGE, "no-region", f'{exc} (or region = "..." in [tool.bakery.deploy]).') from None


# == template: parameters, validation, the resolved view and its diff ==============================


def parse_template(text: str, name: str = "template.yml") -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeployError(EXIT_USAGE, "invalid-template", f"{name}: not valid YAML ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise DeployError(EXIT_USAGE, "invalid-template", f"{name}: a ROS template is a mapping with Resources")
    return document


def declared_parameters(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    declared = document.get("Parameters") or {}
    return (
        {str(k): (v if isinstance(v, dict) else {}) for k, v in declared.items()} if isinstance(declared, dict) else {}
    )


def stack_parameters(
    document: Mapping[str, Any], given: Mapping[str, str], *, bucket: str, code_prefix: str, name: str = "template.yml"
) -> dict[str, str]:
    """What CreateStack/UpdateStack pass: the given parameters, CodeBucket, CodePrefix and the bus parameters
    (their defaults when not given, so the stack records the buses it uses). Checks every parameter without a
    Default is given, naming it and the flag."""
    declared = declared_parameters(document)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DeployError(EXIT_USAGE, "unknown-parameter", f"{name} declares no parameter {', '.join(unknown)} "
                          f"(it declares: {', '.join(declared) or 'none'}).")  # fmt: skip
    if "CodePrefix" in given:
        raise DeployError(EXIT_USAGE, "code-prefix-given", "CodePrefix is set by bakery deploy (<prefix>/<hash of the "
                          "artifacts>): change the part before the hash with --prefix.")  # fmt: skip
    if given.get("CodeBucket") not in (None, bucket):
        raise DeployError(EXIT_USAGE, "two-buckets", f"--parameter CodeBucket={given['CodeBucket']} and --bucket "
                          f"{bucket} disagree: give the bucket once, with --bucket.")  # fmt: skip
    values = dict(given)
    if "CodeBucket" in declared:
        values["CodeBucket"] = bucket
    if "CodePrefix" in declared:
        values["CodePrefix"] = code_prefix
    for bus in BUS_PARAMETERS:
        if bus in declared and bus not in values and "Default" in declared[bus]:
            values[bus] = _text(declared[bus]["Default"])
    missing = [p for p, spec in declared.items() if p not in values and "Default" not in spec]
    if missing:
        described = "; ".join(f"{p}: {declared[p].get('Description', 'no description')}" for p in missing)
        raise DeployError(EXIT_USAGE, "missing-parameter", f"{name}: parameter{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)} {'have' if len(missing) > 1 else 'has'} no Default and "
                          f"{'were' if len(missing) > 1 else 'was'} not given. Pass "
                          + " ".join(f"--parameter {p}=VALUE" for p in missing)
                          + " (or set them in a [tool.bakery.deploy.parameters] table of pyproject.toml). "
                          f"{described}")  # fmt: skip
    return values


def resolved_parameters(document: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Every declared parameter's value: given, else its Default (what ROS resolves it to)."""
    values = {p: _text(spec["Default"]) for p, spec in declared_parameters(document).items() if "Default" in spec}
    values.update({k: v for k, v in given.items() if not k.startswith("ALIYUN::")})
    return values


def validate_template(text: str, parameters: Mapping[str, str], settings: DeploySettings, *, name: str) -> Any:
    """Load the template as ROS would (localcloud.fc.template: what ROS refuses, naming the resource and
    property), without looking at the code. Returns the loaded Template (its `buses`)."""
    from localcloud.fc.template import TemplateError, load_template_text, skip_code

    try:
        return load_template_text(text, dict(parameters), region=settings.region or "cn-hangzhou",
                                  account_id=PLAN_ACCOUNT_ID, stack_name=settings.stack,
                                  code_locator=skip_code, name=name)  # fmt: skip
    except TemplateError as exc:
        raise DeployError(EXIT_USAGE, "invalid-template", f"{exc}") from None


def resolve_document(document: Mapping[str, Any], parameters: Mapping[str, str], *, region: str,
                     stack: str) -> dict[str, Any]:  # fmt: skip
    """The template with Ref/Fn::Sub of parameters and pseudo parameters replaced; Fn::GetAtt stays symbolic
    (`${FunctionRole.Arn}`), as do values only ROS knows (`${ALIYUN::TenantId}`). What the diff compares."""
    values = resolved_parameters(document, parameters)
    pseudo = {"ALIYUN::Region": region, "ALIYUN::StackName": stack}
    resources = document.get("Resources") or {}

    def ref(name: str) -> Any:
        if name in values:
            return values[name]
        if name in pseudo:
            return pseudo[name]
        return "${" + name + "}"  # a resource (its physical id) or a pseudo parameter only ROS knows

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref" and isinstance(argument, str):
                    return ref(argument)
                if key == "Fn::GetAtt":
                    parts = argument.split(".", 1) if isinstance(argument, str) else argument
                    if isinstance(parts, list) and len(parts) == 2:
                        return "${" + f"{parts[0]}.{parts[1]}" + "}"
                if key == "Fn::Sub":
                    text, variables = (argument[0], resolve(argument[1])) if isinstance(argument, list) and len(
                        argument) == 2 and isinstance(argument[1], dict) else (argument, {})  # fmt: skip
                    if isinstance(text, str):
                        return _SUB_VARIABLE.sub(lambda m: _sub(m.group(1).strip(), variables, ref), text)
                if key == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
                    parts = resolve(argument[1])
                    if isinstance(argument[0], str) and isinstance(parts, list) and all(
                            isinstance(p, str) for p in parts):  # fmt: skip
                        return argument[0].join(parts)
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return {
        "Description": document.get("Description"),
        "Resources": {str(lid): {k: (resolve(v) if k == "Properties" else v) for k, v in (res or {}).items()}
                      for lid, res in resources.items()},
        "Outputs": resolve(document.get("Outputs") or {}),
    }  # fmt: skip


def _sub(name: str, variables: Mapping[str, Any], ref: Callable[[str], Any]) -> str:
    if name.startswith("!"):
        return "${" + name[1:] + "}"
    if name in variables:
        return _text(variables[name])
    if "." in name and not name.startswith("ALIYUN::"):
        return "${" + name + "}"
    return _text(ref(name))


@dataclass(frozen=True)
class Change:
    """One line of a plan: `+` added, `-` removed, `~` changed (old -> new)."""

    op: str
    path: str
    old: Any = None
    new: Any = None

    def line(self) -> str:
        if self.op == "~":
            return f"~ {self.path}: {_shown(self.old)} -> {_shown(self.new)}"
        value = self.new if self.op == "+" else self.old
        return f"{self.op} {self.path}" + (f" ({_shown(value)})" if value is not None else "")

    def as_json(self) -> dict[str, Any]:
        return {"op": self.op, "path": self.path, "old": self.old, "new": self.new, "line": self.line()}


def diff_templates(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Resolved templates (resolve_document) compared per logical id: `+ Id (Type)`, `- Id (Type)`,
    `~ Id.Properties.X.Y: old -> new`; then Outputs and the Description."""
    changes: list[Change] = []
    old_resources, new_resources = old.get("Resources") or {}, new.get("Resources") or {}
    for lid in sorted(set(old_resources) | set(new_resources)):
        before, after = old_resources.get(lid), new_resources.get(lid)
        if before is None:
            changes.append(Change("+", lid, new=(after or {}).get("Type")))
        elif after is None:
            changes.append(Change("-", lid, old=(before or {}).get("Type")))
        elif before.get("Type") != after.get("Type"):
            changes.append(Change("~", f"{lid}.Type", before.get("Type"), after.get("Type")))
        else:
            changes += _diff_values(f"{lid}", {k: v for k, v in before.items() if k != "Type"},
                                    {k: v for k, v in after.items() if k != "Type"})  # fmt: skip
    changes += _diff_values("Outputs", old.get("Outputs") or {}, new.get("Outputs") or {})
    if old.get("Description") != new.get("Description"):
        changes.append(Change("~", "Description", old.get("Description"), new.get("Description")))
    return changes


def _diff_values(path: str, old: Any, new: Any) -> list[Change]:
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}"
            if key not in new:
                out.append(Change("-", sub, old=old[key]))
            elif key not in old:
                out.append(Change("+", sub, new=new[key]))
            else:
                out += _diff_values(sub, old[key], new[key])
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in _diff_values(f"{path}[{i}]", a, b)]
    return [Change("~", path, old, new)]


def diff_parameters(old: Mapping[str, str], new: Mapping[str, str]) -> list[Change]:
    """Parameter values (pseudo parameters ALIYUN::* left out): `~ Parameter CodePrefix: a -> b`."""
    changes = []
    for key in sorted((set(old) | set(new)) - {k for k in set(old) | set(new) if k.startswith("ALIYUN::")}):
        if key not in old:
            changes.append(Change("+", f"Parameter {key}", new=new[key]))
        elif key not in new:
            changes.append(Change("-", f"Parameter {key}", old=old[key]))
        elif old[key] != new[key]:
            changes.append(Change("~", f"Parameter {key}", old[key], new[key]))
    return changes


def _shown(value: Any, width: int = 100) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


# == artifacts =====================================================================================


@dataclass(frozen=True)
class LocalArtifact:
    name: str  # bake.zip: the last part of Code.OssObjectName
    path: Path
    size: int
    sha256: str


def artifacts_digest(sha256s: Mapping[str, str]) -> str:
    """One hash of every artifact's name and sha256 (order-free)."""
    text = "".join(f"{name} {sha}\n" for name, sha in sorted(sha256s.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def code_prefix(prefix: str, sha256s: Mapping[str, str]) -> str:
    """`<prefix>/<12 hex>`: the same artifacts give the same prefix; any change gives a new one."""
    return f"{prefix.strip('/')}/{artifacts_digest(sha256s)[:12]}"


def client_token(*parts: str) -> str:
    """A ClientToken (<= 64 characters of [A-Za-z0-9-]) derived from `parts`: a retried call is the same call."""
    return "bakery-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# == the clients: built in one place ================================================================


class CloudClients:
    """Every client deploy/destroy use, from one bakery.config.Settings; `wait` advances a local cloud's
    virtual clock instead of sleeping (as bakery.clients.waiter does), and `elapsed` counts what was waited."""

    def __init__(self, settings: Any) -> None:
        from bakery.clients import waiter

        self.settings = settings
        self.local = bool(settings.cloud_endpoint)
        self._waiter = self._advance_local_clock if self.local else waiter(settings)
        self._waited = 0.0
        self._started = time.monotonic()

    def wait(self, seconds: float) -> None:
        self._waiter(seconds)
        self._waited += seconds

    def _advance_local_clock(self, seconds: float) -> None:
        """bakery.clients.waiter's admin call, with room for what the clock runs meanwhile: a local ROS stack
        step may unpack a function's code and start its workers, which takes longer than an API call."""
        import requests

        try:
            requests.post(f"http://{self.settings.cloud_endpoint}/_localcloud/clock/advance",
                          params={"seconds": f"{seconds:.3f}"}, timeout=(5, LOCAL_ADVANCE_TIMEOUT_S))  # fmt: skip
        except requests.RequestException as exc:
            raise RetryableError(f"advancing the local cloud's clock: {exc}", code="Unreachable") from None

    @property
    def elapsed(self) -> float:
        """Seconds of (simulated, for a local cloud) time since these clients were made."""
        return self._waited if self.local else time.monotonic() - self._started

    @cached_property
    def ros(self) -> Any:
        from alibabacloud_ros20190910.client import Client

        from bakery.clients import _config

        return Client(_config(self.settings))

    @cached_property
    def eventbridge(self) -> Any:
        from bakery.clients import client

        return client("eventbridge", self.settings)

    @cached_property
    def ecs(self) -> Any:
        from bakery.adapters.ecs import Ecs

        return Ecs(self.settings)

    @cached_property
    def oss(self) -> Oss:
        return Oss(self.settings)

    def call(self, service: str, action: str, method: Callable[..., Any], request: Any) -> Any:
        """One OpenAPI call (ROS, EventBridge), errors mapped onto bakery.errors; returns the body."""
        from bakery.adapters.sdk import call

        return call(service, action, method, request, wait=self.wait).body


class Oss:
    """OSS through alibabacloud-oss-v2, pointed at `http://<endpoint>` for a local cloud (path style: an IP)."""

    def __init__(self, settings: Any) -> None:
        import alibabacloud_oss_v2 as oss

        config = oss.config.load_default()
        config.region = settings.region
        if settings.access_key_id:
            config.credentials_provider = oss.credentials.StaticCredentialsProvider(
                settings.access_key_id, settings.access_key_secret, settings.security_token or None
            )
        else:  # the standard chain (profile, ECS RAM role...), as the OpenAPI clients do
            config.credentials_provider = oss.credentials.CredentialsProviderFunc(_default_chain_credentials)
        if settings.cloud_endpoint:
            config.endpoint = f"http://{settings.cloud_endpoint}"
            config.use_path_style = True
            config.retry_max_attempts = 1
        self.region = settings.region
        self.client = oss.Client(config)
        self.models = oss.models

    def _call(self, action: str, method: Callable[..., Any], request: Any, *args: Any) -> Any:
        import alibabacloud_oss_v2 as oss

        try:
            return method(request, *args)
        except oss.exceptions.OperationError as exc:
            inner = exc.unwrap()
            if isinstance(inner, oss.exceptions.ServiceError):
                code, message = inner.code or "", inner.message or ""
                if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "UserDisable"):
                    if code == "AccessDenied":
                        raise BakeFailure("missing-permission", message, action=f"oss:{action}", code=code) from None
                    raise CloudError("InvalidCredentials" if code == "InvalidAccessKeyId" else code, message,
                                     status=inner.status_code, action=action) from None  # fmt: skip
                if inner.status_code >= 500:
                    raise RetryableError(f"{action}: {code}: {message}", code=code) from None
                raise CloudError(code or str(inner.status_code), message, status=inner.status_code,
                                 action=action) from None  # fmt: skip
            if _is_credentials_error(inner):
                raise CloudError("InvalidCredentials", str(inner), action=action) from None
            if isinstance(inner, (oss.exceptions.RequestError, oss.exceptions.ResponseError, OSError)):
                raise RetryableError(f"{action}: cannot reach OSS: {inner}", code="Unreachable") from None
            raise CloudError("InvalidParameter", str(inner), action=action) from None  # refused by the SDK itself
        except Exception as exc:
            if _is_credentials_error(exc):
                raise CloudError("InvalidCredentials", str(exc), action=action) from None
            raise

    def bucket_location(self, bucket: str) -> str | None:
        """The bucket's location (oss-cn-hangzhou), "" when OSS does not say, None when there is no such bucket."""
        try:
            result = self._call("GetBucketInfo", self.client.get_bucket_info, self.models.GetBucketInfoRequest(
                bucket=bucket))  # fmt: skip
        except CloudError as exc:
            if exc.code == "NoSuchBucket" or exc.status == 404:
                return None
            raise
        info = result.bucket_info
        return (info.location if info is not None else "") or ""

    def create_bucket(self, bucket: str) -> None:
        self._call("PutBucket", self.client.put_bucket, self.models.PutBucketRequest(
            bucket=bucket, acl="private",
            create_bucket_configuration=self.models.CreateBucketConfiguration(storage_class="Standard")))  # fmt: skip

    def object_sha256(self, bucket: str, key: str) -> str | None:
        """The sha256 an object carries in its user metadata ("" without one); None when there is no object."""
        try:
            result = self._call("HeadObject", self.client.head_object, self.models.HeadObjectRequest(
                bucket=bucket, key=key))  # fmt: skip
        except CloudError as exc:
            if exc.status == 404 or exc.code in ("NoSuchKey", "NoSuchBucket"):
                return None
            raise
        return {str(k).lower(): v for k, v in (result.metadata or {}).items()}.get(SHA256_META, "")

    def upload(self, bucket: str, key: str, path: Path, sha256: str) -> None:
        with path.open("rb") as body:
            self._call("PutObject", self.client.put_object, self.models.PutObjectRequest(
                bucket=bucket, key=key, body=body, metadata={SHA256_META: sha256},
                content_type="application/zip"))  # fmt: skip

    def list_objects(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under `prefix`, over all pages."""
        found: list[tuple[str, int]] = []
        token = None
        while True:
            result = self._call("ListObjectsV2", self.client.list_objects_v2, self.models.ListObjectsV2Request(
                bucket=bucket, prefix=prefix, max_keys=1000, continuation_token=token))  # fmt: skip
            found += [(o.key, int(o.size or 0)) for o in result.contents or []]
            token = result.next_continuation_token
            if not result.is_truncated or not token:
                return found


def _default_chain_credentials() -> Any:
    import alibabacloud_oss_v2 as oss
    from alibabacloud_credentials.client import Client

    credential = Client().get_credential()
    return oss.credentials.Credentials(credential.access_key_id, credential.access_key_secret,
                                       credential.security_token or None)  # fmt: skip


def _is_credentials_error(exc: BaseException) -> bool:
    """No credentials found (alibabacloud_credentials' CredentialException, OSS's Credentials*Error)."""
    return "credential" in type(exc).__name__.lower()


# == buses: shared with the local runtime ==========================================================


def _eventbridge_call(client: Any, action: str, method: Callable[..., Any], request: Any) -> Any:
    """An EventBridge call whose failure may also hide in a 200 (`Success: false` + Code)."""
    from bakery.adapters.sdk import call

    body = call("eventbridge", action, method, request).body
    code = getattr(body, "code", None) or ""
    if getattr(body, "success", None) is False or (code and code != "Success"):
        raise CloudError(code or "Failed", getattr(body, "message", None) or "", status=200, action=action)
    return body


def ensure_buses(eventbridge_client: Any, names: Iterable[str], *, description: str) -> list[str]:
    """Create each custom bus in `names` that does not exist yet (GetEventBus, then CreateEventBus; "already
    exists" counts as success: another deployer was quicker). Returns the names created, in order.

    `bakery deploy` calls it before the stack (ROS has no ALIYUN::EventBridge::EventBus type: rules and async
    destinations need their buses to exist), and the local runtime calls it so local runs create buses the
    same way."""
    from alibabacloud_eventbridge20200401 import models as m

    created = []
    for name in dict.fromkeys(names):
        if bus_exists(eventbridge_client, name):
            continue
        try:
            _eventbridge_call(eventbridge_client, "CreateEventBus", eventbridge_client.create_event_bus,
                              m.CreateEventBusRequest(event_bus_name=name, description=description))  # fmt: skip
        except CloudError as exc:
            if "AlreadyExist" in exc.code:
                continue
            raise
        created.append(name)
    return created


def bus_exists(eventbridge_client: Any, name: str) -> bool:
    from alibabacloud_eventbridge20200401 import models as m

    try:
        _eventbridge_call(eventbridge_client, "GetEventBus", eventbridge_client.get_event_bus,
                          m.GetEventBusRequest(event_bus_name=name))  # fmt: skip
    except CloudError as exc:
        if exc.code in ("EventBusNotExist", "EventBusNotExisted") or exc.status == 404:
            return False
        raise
    return True


def delete_buses(eventbridge_client: Any, names: Iterable[str]) -> dict[str, str]:
    """DeleteEventBus for each: name -> "deleted", "absent", or "kept: <Code: Message>" (e.g. rules of yours
    still on it)."""
    from alibabacloud_eventbridge20200401 import models as m

    outcome = {}
    for name in dict.fromkeys(names):
        try:
            _eventbridge_call(eventbridge_client, "DeleteEventBus", eventbridge_client.delete_event_bus,
                              m.DeleteEventBusRequest(event_bus_name=name))  # fmt: skip
            outcome[name] = "deleted"
        except CloudError as exc:
            if exc.code in ("EventBusNotExist", "EventBusNotExisted"):
                outcome[name] = "absent"
            else:
                outcome[name] = f"kept: {exc.code}: {exc.message}"
    return outcome


# == the stack ======================================================================================


@dataclass(frozen=True)
class StackEvent:
    event_id: str
    time: str  # ROS CreateTime (UTC, ISO 8601 without Z)
    status: str
    resource_type: str
    logical_id: str
    physical_id: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "time": self.time, "status": self.status, "resourceType": self.resource_type,
                "logicalResourceId": self.logical_id, "physicalResourceId": self.physical_id,
                "statusReason": self.reason}  # fmt: skip


@dataclass
class DeployedStack:
    stack_id: str
    name: str
    status: str
    status_reason: str = ""
    parameters: dict[str, str] = field(default_factory=dict)  # pseudo parameters left out
    outputs: list[dict[str, Any]] = field(default_factory=list)
    template_body: str | None = None
    updated: str = ""


@dataclass
class FollowResult:
    operation: str  # create | update | delete
    status: str
    status_reason: str
    events: list[StackEvent]
    failed: list[StackEvent]  # events of this operation whose status ends in _FAILED
    timed_out: bool
    elapsed: float  # seconds (simulated for a local cloud)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.status == SUCCESS[self.operation]


@dataclass(frozen=True)
class Step:
    """Something apply did (or found already done): for the caller to show."""

    kind: str  # validated built build-log bus-created bus-exists bucket-created bucket-exists uploaded unchanged
    #            stack-create stack-update stack-busy no-changes stack-deleting buses-deleted
    subject: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ArtifactPlan:
    name: str
    key: str
    path: Path
    size: int
    sha256: str
    state: str  # new | changed | unchanged

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "path": str(self.path), "size": self.size, "sha256": self.sha256,
                "state": self.state}  # fmt: skip


@dataclass
class Plan:
    settings: DeploySettings
    template_name: str
    template_text: str
    resource_count: int
    resource_types: dict[str, int]
    parameters: dict[str, str]  # what CreateStack/UpdateStack pass
    code_prefix: str
    buses: list[str]  # every custom bus the template uses
    buses_to_create: list[str]
    bucket: str
    bucket_exists: bool
    artifacts: list[ArtifactPlan]
    stack: DeployedStack | None
    action: str  # create | update | none | busy
    changes: list[Change]

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.settings.stack, "region": self.settings.region, "endpoint": self.settings.endpoint or None,
            "template": self.template_name, "action": self.action,
            "stackId": self.stack.stack_id if self.stack else None,
            "stackStatus": self.stack.status if self.stack else None,
            "buses": {"used": self.buses, "toCreate": self.buses_to_create},
            "bucket": {"name": self.bucket, "exists": self.bucket_exists},
            "codePrefix": self.code_prefix, "artifacts": [a.as_json() for a in self.artifacts],
            "parameters": self.parameters, "changes": [c.as_json() for c in self.changes],
            "resources": self.resource_count,
        }  # fmt: skip


@dataclass
class DeployResult:
    plan: Plan
    action: str  # create | update | none
    buses_created: list[str]
    bucket_created: bool
    uploaded: list[str]
    follow: FollowResult | None
    stack_id: str

    @property
    def ok(self) -> bool:
        return self.follow is None or self.follow.ok


@dataclass
class DestroyPlan:
    settings: DeploySettings
    stack: DeployedStack | None
    buses: list[str]  # the template's buses that exist now
    bucket: str
    prefix: str  # the objects under it are what deploys uploaded
    resource_count: int


@dataclass
class DestroyResult:
    plan: DestroyPlan
    follow: FollowResult | None
    buses: dict[str, str]  # name -> deleted | absent | kept: ... | left (--keep-buses)
    images: list[dict[str, Any]]
    snapshots: list[str]
    instances: list[dict[str, Any]]
    objects: list[tuple[str, int]]
    notes: list[str]  # what could not be looked at, and why

    @property
    def ok(self) -> bool:
        stack_ok = self.follow is None or self.follow.ok
        return stack_ok and not any(v.startswith("kept") for v in self.buses.values())


class Deployer:
    """Plan, apply, follow and destroy one stack. `clients` defaults to the ones `settings` name."""

    def __init__(
        self,
        settings: DeploySettings,
        *,
        clients: CloudClients | None = None,
        package_cache: Path | None = None,
        on_step: Callable[[Step], None] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.settings = settings
        self._clients = clients
        self.package_cache = package_cache
        self.on_step = on_step or (lambda step: None)
        self.poll_seconds = poll_seconds

    @property
    def clients(self) -> CloudClients:
        if self._clients is None:
            self._clients = CloudClients(target_settings(self.settings))
        return self._clients

    def _ros(self, action: str, request: Any) -> Any:
        method = getattr(self.clients.ros, re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower())
        return self.clients.call("ros", action, method, request)

    # -- local: template and artifacts -------------------------------------------------------------

    def read_template(self) -> tuple[str, str, dict[str, Any]]:
        path = self.settings.template
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DeployError(EXIT_USAGE, "no-template", f"cannot read the template {path}: {exc.strerror or exc} "
                              "(run from the project root or pass --template PATH)") from None  # fmt: skip
        return path.name, text, parse_template(text, path.name)

    def build(self) -> list[LocalArtifact]:
        """The zips: built with localcloud.package into build/deploy/<stack>/ next to the template, or read from
        --artifacts (what `make package` wrote)."""
        from localcloud.package import PackageError, build, read_functions

        template = self.settings.template.resolve()
        try:
            if self.settings.artifacts is not None:
                wanted = [s.artifact for s in read_functions(template)]
                missing = [n for n in wanted if not (self.settings.artifacts / n).is_file()]
                if missing:
                    raise DeployError(EXIT_USAGE, "missing-artifact", f"{self.settings.artifacts} has no "
                                      f"{', '.join(missing)} (one zip per function of {template.name}): run `make "
                                      "package` or leave --artifacts out to build them.")  # fmt: skip
                paths = [self.settings.artifacts / n for n in wanted]
            else:
                out = template.parent / "build" / "deploy" / self.settings.stack
                built = build(out, template=template, cache=self.package_cache,
                              log=lambda message: self.on_step(Step("build-log", message)))  # fmt: skip
                paths = [a.path for a in built]
        except PackageError as exc:
            raise DeployError(EXIT_PROBLEM, "build-failed", f"building the artifacts failed: {exc}") from None
        artifacts = [LocalArtifact(p.name, p, p.stat().st_size, file_sha256(p)) for p in paths]
        self.on_step(Step("built", str(paths[0].parent if paths else ""), {"count": len(artifacts)}))
        return artifacts

    # -- reading the cloud -------------------------------------------------------------------------

    def find_stack(self, *, with_template: bool = False) -> DeployedStack | None:
        """The stack named settings.stack (ListStacks by name; DELETE_COMPLETE ones are history), with its
        parameters and outputs (GetStack) and, when asked, its template (GetTemplate)."""
        from alibabacloud_ros20190910 import models as m

        region, name = self.settings.region, self.settings.stack
        body = self._ros("ListStacks", m.ListStacksRequest(region_id=region, stack_name=[name], page_size=50))
        live = [s for s in body.stacks or [] if s.stack_name == name and s.status != "DELETE_COMPLETE"]
        if not live:
            return None
        stack = self.get_stack(live[0].stack_id)
        if stack is not None and with_template:
            stack.template_body = self._ros("GetTemplate", m.GetTemplateRequest(
                region_id=region, stack_id=stack.stack_id)).template_body  # fmt: skip
        return stack

    def get_stack(self, stack_id: str) -> DeployedStack | None:
        from alibabacloud_ros20190910 import models as m

        try:
            body = self._ros("GetStack", m.GetStackRequest(region_id=self.settings.region, stack_id=stack_id))
        except CloudError as exc:
            if exc.code == "StackNotFound":
                return None
            raise
        parameters = {p.parameter_key: p.parameter_value or "" for p in body.parameters or []
                      if p.parameter_key and not p.parameter_key.startswith("ALIYUN::")}  # fmt: skip
        return DeployedStack(stack_id=body.stack_id or stack_id, name=body.stack_name or self.settings.stack,
                             status=body.status or "", status_reason=body.status_reason or "", parameters=parameters,
                             outputs=list(body.outputs or []), updated=body.update_time or body.create_time or "")  # fmt: skip

    def plan(self) -> Plan:
        """Everything deploy would do, reading only: the template validated locally (before anything else), the
        artifacts built, then buses, bucket, objects and the stack read from the cloud."""
        name, text, document = self.read_template()
        bucket = self.settings.bucket or self.settings.parameters.get("CodeBucket", "")
        if not bucket and "CodeBucket" in declared_parameters(document):
            raise DeployError(EXIT_USAGE, "no-bucket", "Name the OSS bucket for the code: --bucket NAME (or bucket = "
                              "\"NAME\" in [tool.bakery.deploy]); bakery deploy creates it in the stack's region if it "
                              "is missing.")  # fmt: skip
        if not self.settings.region:
            target_settings(self.settings)  # raises the actionable no-region error
        placeholder = f"{self.settings.prefix}/{'0' * 12}"
        parameters = stack_parameters(document, self.settings.parameters, bucket=bucket, code_prefix=placeholder,
                                      name=name)  # fmt: skip
        template = validate_template(text, parameters, self.settings, name=name)
        resources = document["Resources"]
        types: dict[str, int] = {}
        for resource in resources.values():
            kind = str((resource or {}).get("Type"))
            types[kind] = types.get(kind, 0) + 1
        self.on_step(Step("validated", name, {"resources": len(resources)}))

        stack = self.find_stack(with_template=True)  # first: wrong credentials or region show before the build
        local = self.build()
        prefix = code_prefix(self.settings.prefix, {a.name: a.sha256 for a in local})
        parameters = stack_parameters(document, self.settings.parameters, bucket=bucket, code_prefix=prefix, name=name)

        buses = list(dict.fromkeys(template.buses))
        to_create = [b for b in buses if not bus_exists(self.clients.eventbridge, b)]
        location = self.clients.oss.bucket_location(bucket) if bucket else None
        if location and location not in (f"oss-{self.settings.region}", self.settings.region):
            raise DeployError(EXIT_PROBLEM, "bucket-region", f"Bucket {bucket} is in {location}, the stack in "
                              f"{self.settings.region}: FC reads code only from a bucket in its own region. Use a "
                              "bucket in that region (--bucket).")  # fmt: skip
        artifacts = []
        for item in local:
            key = f"{prefix}/{item.name}"
            there = self.clients.oss.object_sha256(bucket, key) if location is not None else None
            state = "new" if there is None else "unchanged" if there == item.sha256 else "changed"
            artifacts.append(ArtifactPlan(item.name, key, item.path, item.size, item.sha256, state))

        action, changes = "create", []
        if stack is not None:
            if stack.status.endswith("_IN_PROGRESS"):
                action = "busy"
            else:
                changes = self._changes(stack, document, parameters)
                action = "update" if changes else "none"
        return Plan(self.settings, name, text, len(resources), types, parameters, prefix, buses, to_create, bucket,
                    location is not None, artifacts, stack, action, changes)  # fmt: skip

    def _changes(self, stack: DeployedStack, document: dict[str, Any], parameters: Mapping[str, str]) -> list[Change]:
        new_values = resolved_parameters(document, parameters)
        try:
            old_document = parse_template(stack.template_body or "", "the deployed template")
        except DeployError:
            old_document = {"Resources": {}}
        old_values = resolved_parameters(old_document, stack.parameters)
        if old_document == document and old_values == new_values:
            if stack.status in RETRY_STATUSES:  # same template, but the last operation failed: try again
                return [Change("~", "Stack status", stack.status, "(retried: UpdateStack makes what is missing)")]
            return []
        region, name = self.settings.region, self.settings.stack
        changes = diff_templates(resolve_document(old_document, stack.parameters, region=region, stack=name),
                                 resolve_document(document, parameters, region=region, stack=name))  # fmt: skip
        changes += diff_parameters(old_values, new_values)
        if not changes:  # the text differs in a way that resolves to the same stack (a Ref for its value...)
            changes.append(Change("~", "template (no resolved property changes)"))
        return changes

    # -- applying ----------------------------------------------------------------------------------

    def apply(self, plan: Plan, on_event: Callable[[StackEvent, int, int], None] | None = None) -> DeployResult:
        """Make it so: buses, bucket, uploads, then CreateStack or UpdateStack, followed to its end."""
        from alibabacloud_ros20190910 import models as m

        settings = self.settings
        if plan.stack is not None and plan.action == "busy":
            self.on_step(Step("stack-busy", plan.stack.name, {"status": plan.stack.status}))
            history = self.stack_events(plan.stack.stack_id)  # show the operation in progress, not the history
            starts = [i for i, e in enumerate(history) if e.resource_type == STACK_TYPE and e.status.endswith(
                "_IN_PROGRESS")]  # fmt: skip
            seen = {e.event_id for e in history[: starts[-1]]} if starts else set()
            waited = self.follow(plan.stack.stack_id, _operation_of(plan.stack.status), seen, on_event,
                                 total=plan.resource_count)  # fmt: skip
            if waited.timed_out:
                return DeployResult(plan, "busy", [], False, [], waited, plan.stack.stack_id)
            plan = self.plan()  # what is deployed now decides what is left to do
        created = ensure_buses(self.clients.eventbridge, plan.buses_to_create,
                               description=f"Bakery event bus (stack {settings.stack}, made by bakery deploy)")  # fmt: skip
        for bus in plan.buses:
            self.on_step(Step("bus-created" if bus in created else "bus-exists", bus))
        bucket_created = False
        if plan.bucket and not plan.bucket_exists:
            self.clients.oss.create_bucket(plan.bucket)
            bucket_created = True
        if plan.bucket:
            self.on_step(Step("bucket-created" if bucket_created else "bucket-exists", plan.bucket,
                              {"region": settings.region}))  # fmt: skip
        uploaded = []
        for artifact in plan.artifacts:
            there = None if bucket_created else self.clients.oss.object_sha256(plan.bucket, artifact.key)
            if there == artifact.sha256:
                self.on_step(Step("unchanged", artifact.name, {"key": artifact.key, "bucket": plan.bucket}))
                continue
            self.clients.oss.upload(plan.bucket, artifact.key, artifact.path, artifact.sha256)
            uploaded.append(artifact.name)
            self.on_step(Step("uploaded", artifact.name, {"key": artifact.key, "bucket": plan.bucket,
                                                          "size": artifact.size}))  # fmt: skip

        body_hash = hashlib.sha256(plan.template_text.encode()).hexdigest()
        params_hash = hashlib.sha256(json.dumps(plan.parameters, sort_keys=True).encode()).hexdigest()
        if plan.stack is None:
            self.on_step(Step("stack-create", settings.stack, {"resources": plan.resource_count}))
            parts = [settings.stack, plan.code_prefix, body_hash, params_hash, str(settings.timeout)]
            stack_id = self._create_stack(plan, client_token(*parts))
            for _ in range(5):  # the same token after a destroy names the deleted stack: salt it with that id
                made = self.get_stack(stack_id)
                if made is None or made.status != "DELETE_COMPLETE":
                    break
                parts.append(stack_id)
                stack_id = self._create_stack(plan, client_token(*parts))
            followed = self.follow(stack_id, "create", set(), on_event, total=plan.resource_count)
            return DeployResult(plan, "create", created, bucket_created, uploaded, followed, stack_id)

        stack_id = plan.stack.stack_id
        if plan.action == "none":
            self.on_step(Step("no-changes", settings.stack, {"status": plan.stack.status}))
            return DeployResult(plan, "none", created, bucket_created, uploaded, None, stack_id)
        seen = {e.event_id for e in self.stack_events(stack_id)}
        token = client_token(
            stack_id, plan.code_prefix, body_hash, params_hash, str(settings.timeout), plan.stack.updated
        )
        self.on_step(Step("stack-update", settings.stack, {"changes": len(plan.changes)}))
        try:
            self._ros("UpdateStack", m.UpdateStackRequest(
                region_id=settings.region, stack_id=stack_id, template_body=plan.template_text,
                parameters=[m.UpdateStackRequestParameters(parameter_key=k, parameter_value=v)
                            for k, v in plan.parameters.items()],
                timeout_in_minutes=settings.timeout, client_token=token))  # fmt: skip
        except CloudError as exc:
            if exc.code == "NotSupported" and "completely same stack" in exc.message:
                self.on_step(Step("no-changes", settings.stack, {"status": plan.stack.status, "ros": exc.message}))
                return DeployResult(plan, "none", created, bucket_created, uploaded, None, stack_id)
            raise
        touched = {c.path.split(".")[0].split("[")[0] for c in plan.changes} & set(parse_template(plan.template_text)[
            "Resources"]) | {c.path for c in plan.changes if c.op == "-" and "." not in c.path}  # fmt: skip
        followed = self.follow(stack_id, "update", seen, on_event, total=len(touched) or plan.resource_count)
        return DeployResult(plan, "update", created, bucket_created, uploaded, followed, stack_id)

    def _create_stack(self, plan: Plan, token: str) -> str:
        from alibabacloud_ros20190910 import models as m

        return self._ros("CreateStack", m.CreateStackRequest(
            region_id=self.settings.region, stack_name=self.settings.stack, template_body=plan.template_text,
            parameters=[m.CreateStackRequestParameters(parameter_key=k, parameter_value=v)
                        for k, v in plan.parameters.items()],
            timeout_in_minutes=self.settings.timeout, client_token=token, disable_rollback=False)).stack_id  # fmt: skip

    # -- following ---------------------------------------------------------------------------------

    def stack_events(self, stack_id: str) -> list[StackEvent]:
        """Every event of the stack, oldest first (ListStackEvents, all pages)."""
        from alibabacloud_ros20190910 import models as m

        events: list[StackEvent] = []
        page = 1
        while True:
            body = self._ros("ListStackEvents", m.ListStackEventsRequest(
                region_id=self.settings.region, stack_id=stack_id, page_number=page, page_size=50))  # fmt: skip
            batch = body.events or []
            events += [StackEvent(e.event_id or "", e.create_time or "", e.status or "", e.resource_type or "",
                                  e.logical_resource_id or "", e.physical_resource_id or "", e.status_reason or "")
                       for e in batch]  # fmt: skip
            if not batch or page * 50 >= (body.total_count or 0):
                break
            page += 1
        # ROS lists newest first (the console does; the API docs do not say): unless the page is clearly oldest
        # first, reverse it, then order by time (stable: events within one second keep their order).
        if not (len(events) > 1 and events[0].time < events[-1].time):
            events.reverse()
        return sorted(events, key=lambda e: e.time)

    def follow(
        self,
        stack_id: str,
        operation: str,
        seen: set[str],
        on_event: Callable[[StackEvent, int, int], None] | None = None,
        *,
        total: int = 0,
    ) -> FollowResult:
        """Poll ListStackEvents and GetStack until the stack leaves *_IN_PROGRESS (or the timeout passes),
        calling `on_event(event, done, total)` for each new event, oldest first. Waiting advances a local
        cloud's clock instead of sleeping."""
        started = self.clients.elapsed
        deadline = started + self.settings.timeout * 60 + FOLLOW_MARGIN_SECONDS
        fresh: list[StackEvent] = []
        done: set[str] = set()

        def show_new_events() -> None:
            for event in self._events_or_none(stack_id):
                if event.event_id in seen:
                    continue
                seen.add(event.event_id)
                fresh.append(event)
                if event.status.endswith("_COMPLETE") and event.resource_type != STACK_TYPE:
                    done.add(event.logical_id)
                if on_event:
                    on_event(event, len(done), total)

        grace = ROLLBACK_GRACE_POLLS
        while True:
            show_new_events()
            stack = self.get_stack(stack_id)
            if stack is None:  # a deleted stack may vanish from GetStack: that is DELETE_COMPLETE
                status, reason = ("DELETE_COMPLETE", "") if operation == "delete" else ("NOT_FOUND", "stack vanished")
                return FollowResult(operation, status, reason, fresh, _failed(fresh), False,
                                    self.clients.elapsed - started)  # fmt: skip
            if not stack.status.endswith("_IN_PROGRESS"):
                if stack.status == f"{operation.upper()}_FAILED" and operation != "delete" and grace:
                    grace -= 1  # ROS rolls a failed create/update back: follow the rollback to its end
                    self.clients.wait(self.poll_seconds)
                    continue
                show_new_events()  # the last events may land together with the status
                return FollowResult(operation, stack.status, stack.status_reason, fresh, _failed(fresh), False,
                                    self.clients.elapsed - started, stack.outputs)  # fmt: skip
            if self.clients.elapsed >= deadline:
                return FollowResult(operation, stack.status, stack.status_reason, fresh, _failed(fresh), True,
                                    self.clients.elapsed - started)  # fmt: skip
            self.clients.wait(self.poll_seconds)

    def _events_or_none(self, stack_id: str) -> list[StackEvent]:
        try:
            return self.stack_events(stack_id)
        except CloudError as exc:
            if exc.code == "StackNotFound":
                return []
            raise

    # -- destroy -----------------------------------------------------------------------------------

    def destroy_plan(self) -> DestroyPlan:
        """What destroy would delete: the stack (if any) and the buses its template uses that exist."""
        stack = self.find_stack(with_template=True)
        count = 0
        if stack is not None:
            buses, count = self._deployed_buses(stack)
        else:
            buses = self._local_buses()
        existing = [b for b in buses if bus_exists(self.clients.eventbridge, b)]
        bucket = (stack.parameters.get("CodeBucket") if stack else "") or self.settings.bucket
        return DestroyPlan(self.settings, stack, existing, bucket, self.settings.prefix, count)

    def _deployed_buses(self, stack: DeployedStack) -> tuple[list[str], int]:
        from localcloud.fc.template import TemplateError, load_template_text, skip_code

        try:
            document = parse_template(stack.template_body or "", "the deployed template")
        except DeployError:
            return [v for k, v in stack.parameters.items() if k in BUS_PARAMETERS], 0
        declared = declared_parameters(document)
        given = {k: v for k, v in stack.parameters.items() if k in declared}
        try:
            loaded = load_template_text(stack.template_body or "", given, region=self.settings.region,
                                        account_id=PLAN_ACCOUNT_ID, stack_name=stack.name,
                                        code_locator=skip_code, name="the deployed template")  # fmt: skip
            buses = list(loaded.buses)
        except TemplateError:
            buses = [v for k, v in given.items() if k in BUS_PARAMETERS]
        return buses, len(document["Resources"])

    def _local_buses(self) -> list[str]:
        """Without a stack: the buses the local template would use with these settings' parameters."""
        from localcloud.fc.template import TemplateError, load_template_text, skip_code

        try:
            name, text, document = self.read_template()
        except DeployError:
            return []
        declared = declared_parameters(document)
        given = {k: v for k, v in self.settings.parameters.items() if k in declared}
        for key, spec in declared.items():
            if key not in given and "Default" not in spec:
                given[key] = f"{self.settings.prefix}/{'0' * 12}" if key == "CodePrefix" else "unset"
        try:
            return list(load_template_text(text, given, region=self.settings.region, account_id=PLAN_ACCOUNT_ID,
                                           stack_name=self.settings.stack, code_locator=skip_code,
                                           name=name).buses)  # fmt: skip
        except TemplateError:
            return [resolved_parameters(document, given)[k] for k in BUS_PARAMETERS if k in declared]

    def destroy(
        self,
        plan: DestroyPlan,
        *,
        keep_buses: bool = False,
        on_event: Callable[[StackEvent, int, int], None] | None = None,
    ) -> DestroyResult:
        """DeleteStack, followed to DELETE_COMPLETE; then the buses (unless keep_buses); then what is left."""
        from alibabacloud_ros20190910 import models as m

        followed = None
        if plan.stack is not None:
            seen = {e.event_id for e in self._events_or_none(plan.stack.stack_id)}
            self.on_step(Step("stack-deleting", plan.stack.name, {"status": plan.stack.status}))
            self._ros("DeleteStack", m.DeleteStackRequest(region_id=self.settings.region,
                                                          stack_id=plan.stack.stack_id))  # fmt: skip
            followed = self.follow(plan.stack.stack_id, "delete", seen, on_event, total=plan.resource_count)
        buses: dict[str, str] = {}
        if followed is None or followed.ok:
            if keep_buses:
                buses = dict.fromkeys(plan.buses, "left (--keep-buses)")
            else:
                buses = delete_buses(self.clients.eventbridge, plan.buses)
                self.on_step(Step("buses-deleted", "", {"buses": buses}))
        else:
            buses = dict.fromkeys(plan.buses, "left (the stack is not deleted)")
        result = DestroyResult(plan, followed, buses, [], [], [], [], [])
        self._leftovers(result)
        return result

    def _leftovers(self, result: DestroyResult) -> None:
        """What destroy never deletes: images Bakery made (tag bakery:bake-id, any status) and their snapshots,
        instances still tagged bakery:*, the code objects in OSS."""
        try:
            images = self.clients.ecs.images_tagged(tags.BAKE_ID)
            result.images = [{"imageId": i.image_id, "name": i.name, "status": i.status, "family": i.family or None,
                              "bakeId": i.tags.get(tags.BAKE_ID), "snapshotIds": list(i.snapshot_ids)}
                             for i in images]  # fmt: skip
            result.snapshots = sorted({s for i in images for s in i.snapshot_ids})
            instances: dict[str, dict[str, str]] = {}
            for key in INSTANCE_TAG_KEYS:
                for instance in self.clients.ecs.instances_tagged(key):
                    instances[instance.instance_id] = {k: v for k, v in instance.tags.items()
                                                       if k.startswith("bakery:")}  # fmt: skip
            result.instances = [{"instanceId": k, "tags": v} for k, v in sorted(instances.items())]
        except (CloudError, BakeFailure, RetryableError) as exc:
            result.notes.append(f"could not list Bakery's images and tagged instances: {exc}")
        if result.plan.bucket:
            try:
                result.objects = self.clients.oss.list_objects(result.plan.bucket, f"{result.plan.prefix}/")
            except (CloudError, BakeFailure, RetryableError) as exc:
                result.notes.append(f"could not list the code objects in oss://{result.plan.bucket}: {exc}")


def _operation_of(status: str) -> str:
    """Which operation a status belongs to (ROLLBACK_* follows a failed create)."""
    for prefix, operation in (("UPDATE", "update"), ("DELETE", "delete"), ("CREATE", "create"), ("ROLLBACK", "create")):
        if status.startswith(prefix):
            return operation
    return "update"


def _failed(events: Sequence[StackEvent]) -> list[StackEvent]:
    """The resources that failed (the stack's own events repeat their reason: its StatusReason says it)."""
    return [e for e in events if e.status.endswith("_FAILED") and e.resource_type != STACK_TYPE]
