"""Every SDK client deploy and destroy use — ROS, OSS (alibabacloud-oss-v2), EventBridge, ECS — built in one place
from the same bakery_tools.target settings the operator commands use: the standard credential chain, or a local
cloud's `--endpoint HOST:PORT` for every client, OSS too. And `Engine`, what every deploy step shares.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bakery.errors import BakeFailure, CloudError, RetryableError
from bakery_tools.deploy.settings import DeploySettings, target_settings

LOCAL_ADVANCE_TIMEOUT_S = 600  # real seconds one clock advance of a local cloud may take
SHA256_META = "sha256"


@dataclass(frozen=True)
class Step:
    """Something apply did (or found already done): for the caller to show."""

    kind: str  # validated built build-log bus-created bus-exists bucket-created bucket-exists uploaded unchanged
    #            stack-create stack-update stack-busy no-changes stack-deleting buses-deleted
    subject: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


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


class Engine:
    """What every deploy step shares: the settings, the clients (made on first use), progress (`on_step`).

    Deployer (deployer.py) combines the steps — Planning (plan.py), Uploading (upload.py), Stacks (stack.py) and
    Destroying (destroy.py) — into one object, so a step may call another's methods."""

    settings: DeploySettings
    package_cache: Path | None
    on_step: Callable[[Step], None]
    poll_seconds: float
    _clients: CloudClients | None

    @property
    def clients(self) -> CloudClients:
        if self._clients is None:
            self._clients = CloudClients(target_settings(self.settings))
        return self._clients

    def _ros(self, action: str, request: Any) -> Any:
        method = getattr(self.clients.ros, re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower())
        return self.clients.call("ros", action, method, request)
