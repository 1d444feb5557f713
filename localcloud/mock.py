"""In-process transport: the `responses` library answers the SDK's HTTP calls from the same core,
with no socket. The SDK still builds, signs and sends real requests; only the socket is skipped.

    with mock_cloud(cloud) as endpoint:
        ecs = Ecs(Config(endpoint=endpoint, protocol="http", ...))
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import responses

from localcloud.admin import PREFIX, handle_admin
from localcloud.cloud import LocalCloud
from localcloud.server import dispatch_api

MOCK_HOST = "localcloud.internal"


@contextmanager
def mock_cloud(cloud: LocalCloud, host: str = MOCK_HOST) -> Iterator[str]:
    """Route every request to http://<host>/ into `cloud`; yields the endpoint for Config(endpoint=...)."""

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        path = request.path_url
        if path.startswith(PREFIX):
            status, payload = handle_admin(cloud, request.method, path, body)
            return status, {"Content-Type": "application/json"}, json.dumps(payload)
        reply = dispatch_api(cloud, request.method, path, dict(request.headers), body)
        if reply.latency_ms:
            time.sleep(reply.latency_ms / 1000)
        return reply.status, {"Content-Type": "application/json;charset=utf-8", **reply.headers}, json.dumps(reply.body)

    url = re.compile(rf"https?://{re.escape(host)}(:\d+)?/.*")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in (responses.GET, responses.POST):
            mock.add_callback(method, url, callback=callback)
        yield host
