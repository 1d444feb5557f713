"""In-process transport: the `responses` library answers the SDK's HTTP calls from the same core,
with no socket. The SDK still builds, signs and sends real requests; only the socket is skipped.

    with mock_cloud(cloud) as endpoint:
        ecs = Ecs(Config(endpoint=endpoint, protocol="http", ...))

Several clouds can be mocked at once: each gets its own host, and one shared `responses` mock
routes by host (a second, nested RequestsMock would swallow the first one's requests).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import responses

from localcloud.admin import PREFIX, handle_admin
from localcloud.cloud import LocalCloud
from localcloud.server import dispatch_api

MOCK_DOMAIN = "localcloud.internal"
_URL = re.compile(rf"https?://[\w.-]+\.{re.escape(MOCK_DOMAIN)}(:\d+)?/.*")

_lock = threading.Lock()
_clouds: dict[str, LocalCloud] = {}
_mock: responses.RequestsMock | None = None
_numbers = itertools.count(1)


def _answer(request: Any) -> tuple[int, dict[str, str], str]:
    host = urlsplit(request.url).hostname or ""
    cloud = _clouds.get(host)
    if cloud is None:
        return 404, {"Content-Type": "application/json"}, json.dumps({"Code": "NoSuchLocalCloud", "Message": host})
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


@contextmanager
def mock_cloud(cloud: LocalCloud) -> Iterator[str]:
    """Route requests for a fresh host into `cloud`; yields the endpoint for Config(endpoint=...)."""
    global _mock
    host = f"cloud{next(_numbers)}.{MOCK_DOMAIN}"
    with _lock:
        if _mock is None:
            _mock = responses.RequestsMock(assert_all_requests_are_fired=False)
            for method in (responses.GET, responses.POST):
                _mock.add_callback(method, _URL, callback=_answer)
            _mock.start()
        _clouds[host] = cloud
    try:
        yield host
    finally:
        with _lock:
            del _clouds[host]
            if not _clouds and _mock is not None:
                _mock.stop()
                _mock.reset()
                _mock = None
