"""The one client factory: lazy, cached SDK clients configured from Settings.

Credentials are passed explicitly from Settings (the function role's STS triple that FC puts in the
environment) rather than left to alibabacloud_credentials, which reads env vars once at import time.
`BAKERY_CLOUD_ENDPOINT` (local runs only) points every client at the local cloud over plain HTTP.
Only the adapters call this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from bakery.config import Settings


def _config(settings: Settings) -> Any:
    from alibabacloud_tea_openapi.utils_models import Config

    config = Config(
        access_key_id=settings.access_key_id or None,
        access_key_secret=settings.access_key_secret or None,
        security_token=settings.security_token or None,
        region_id=settings.region,
        read_timeout=10_000,
        connect_timeout=5_000,
    )
    if settings.cloud_endpoint:
        config.endpoint = settings.cloud_endpoint
        config.protocol = "http"
    return config


@lru_cache(maxsize=16)
def _client(kind: str, region: str, endpoint: str, key_id: str, secret: str, token: str) -> Any:
    settings = Settings(region=region, cloud_endpoint=endpoint, access_key_id=key_id, access_key_secret=secret,
                        security_token=token)  # fmt: skip
    if kind == "ecs":
        from alibabacloud_ecs20140526.client import Client
    elif kind == "oos":
        from alibabacloud_oos20190601.client import Client  # type: ignore[no-redef]
    elif kind == "eventbridge":
        from alibabacloud_eventbridge20200401.client import Client  # type: ignore[no-redef]
    else:
        raise ValueError(f"unknown client kind {kind!r}")
    return Client(_config(settings))


def client(kind: str, settings: Settings) -> Any:
    """A cached client for `kind` (ecs | oos | eventbridge); a new one when credentials rotate."""
    return _client(kind, settings.region, settings.cloud_endpoint, settings.access_key_id,
                   settings.access_key_secret, settings.security_token)  # fmt: skip


def reset_clients() -> None:
    _client.cache_clear()
    _pacer.cache_clear()


def waiter(settings: Settings) -> Callable[[float], None]:
    """How to wait `seconds` before retrying a throttled call. Against a local cloud, waiting is done on its
    virtual clock (its token buckets refill on that clock, and a real sleep would only slow the run down)."""
    if not settings.cloud_endpoint:
        return time.sleep
    endpoint = settings.cloud_endpoint

    def advance_local_clock(seconds: float) -> None:
        import requests

        requests.post(f"http://{endpoint}/_localcloud/clock/advance", params={"seconds": f"{seconds:.3f}"}, timeout=10)

    return advance_local_clock


def clock(settings: Settings) -> Callable[[], float]:
    """The time `waiter` waits on: monotonic seconds, or against a local cloud its virtual clock (epoch seconds)."""
    if not settings.cloud_endpoint:
        return time.monotonic
    endpoint = settings.cloud_endpoint

    def local_clock() -> float:
        import requests

        return float(requests.get(f"http://{endpoint}/_localcloud/clock", timeout=10).json()["epoch"])

    return local_clock


@lru_cache(maxsize=16)
def _pacer(action: str, region: str, endpoint: str) -> Any:
    from bakery.adapters.pacing import Pacer

    settings = Settings(region=region, cloud_endpoint=endpoint)
    return Pacer(clock(settings), waiter(settings))


def pacer(action: str, settings: Settings) -> Any:
    """This process's pacer for `action` against the cloud `settings` name (bakery.adapters.pacing)."""
    return _pacer(action, settings.region, settings.cloud_endpoint)
