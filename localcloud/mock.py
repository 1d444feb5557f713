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
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http import client as http_client
from typing import Any
from urllib.parse import urlsplit

import requests
import responses
from requests.adapters import MaxRetryError
from requests.exceptions import RetryError
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from responses import _form_response, _handle_body

from localcloud.admin import PREFIX, handle_admin
from localcloud.cloud import LocalCloud
from localcloud.server import dispatch_api

MOCK_DOMAIN = "localcloud.internal"
_URL = re.compile(rf"https?://[\w.-]+\.{re.escape(MOCK_DOMAIN)}(:\d+)?/.*")

_lock = threading.Lock()
_clouds: dict[str, LocalCloud] = {}
_mock: responses.RequestsMock | None = None
_numbers = itertools.count(1)

# How many of the latest calls `responses` keeps (in RequestsMock.calls and each route's calls). It keeps
# every one by default, request and response objects alike: a 1,000-instance local run made ~2 GB of them,
# and the garbage collector walked them all on every full collection. Nothing here reads more than the
# last few (a debugger might); the emulator counts calls itself (LocalCloud.calls).
RECENT_CALLS = 64


class _RecentCalls(responses.CallList):
    """responses.CallList that forgets all but the latest `limit` calls."""

    def __init__(self, limit: int = RECENT_CALLS) -> None:
        self._limit = limit
        self._calls: deque[responses.Call] = deque(maxlen=limit)  # type: ignore[assignment]

    def __getitem__(self, idx: Any) -> Any:
        return list(self._calls)[idx]  # a deque cannot be sliced

    def reset(self) -> None:
        self._calls.clear()


class _LocalCloudMock(responses.RequestsMock):
    """responses.RequestsMock that goes straight to the local cloud's route for a local cloud's URL.

    responses, for every request, parses the query into `request.params` and walks its registry matching
    each route's URL pattern, before the callback is called (on a run's RunCommand, whose query holds a
    whole script, that took longer than the emulator's answer). A request for a local cloud can only
    match the one route registered for its method, so it is answered by that route at once; what it gets
    back is built as responses builds it (the route's get_response, the adapter's build_response), and it
    is recorded in the same call lists. Any other request takes responses' own path (and is refused).

    An SDK (OpenAPI) call's answer skips the two urllib3 HTTPResponse objects responses wraps it in and
    the adapter's unwrapping (_fast_response): the requests.Response it gets holds the same status, reason,
    headers, content, url and request, which is all the SDK reads. Where those objects could make a
    difference (a streamed response, a Content-Encoding to decode, cookies, a retry), it is built as before."""

    _routes: dict[str, responses.BaseResponse]

    def _on_request(self, adapter: Any, request: Any, *, retries: Any = None, **kwargs: Any) -> Any:
        route = self._routes.get(request.method or "")
        if route is None or not _URL.match(str(request.url)):
            return super()._on_request(adapter, request, retries=retries, **kwargs)
        request.req_kwargs = kwargs
        request.body = self._read_filelike_body(request.body)
        try:
            response = self._response(adapter, route, request, sdk_call=not kwargs.get("stream")
                                      and "x-acs-action" in request.headers)  # fmt: skip
        except BaseException as error:
            call = responses.Call(request, error)
            self._calls.add_call(call)
            route.calls.add_call(call)
            raise
        retries = retries or adapter.max_retries
        retry = retries.is_retry(method=request.method, status_code=response.status_code,
                                 has_retry_after="Retry-After" in response.headers)  # fmt: skip
        if retry and response.raw is None:  # the retry reads the urllib3 response: the one responses builds
            response = self._built(adapter, route, request, *response._reply)
        call = responses.Call(request, response)
        self._calls.add_call(call)
        route.calls.add_call(call)
        # Retries exactly as responses does them (the SDKs' adapters retry no status: this never loops).
        if retry:
            try:
                retries = retries.increment(method=request.method, url=response.url, response=response.raw)
                return self._on_request(adapter, request, retries=retries, **kwargs)
            except MaxRetryError as error:
                if retries.raise_on_status:
                    raise RetryError(error, request=request) from None
                return response
        return response

    @staticmethod
    def _response(adapter: Any, route: Any, request: Any, *, sdk_call: bool) -> Any:
        """What responses' CallbackResponse.get_response and the adapter's build_response make of the route's
        answer; for an SDK call, without the urllib3 objects in between (see the class doc)."""
        if not sdk_call:
            return adapter.build_response(request, route.get_response(request))
        # CallbackResponse.get_response, to the headers and body it hands _form_response.
        headers = route.get_headers()
        result = route.callback(request)
        if isinstance(result, Exception):
            raise result
        status, reply_headers, body = result
        if isinstance(body, Exception):
            raise body
        own_type = (isinstance(reply_headers, dict) and "Content-Type" in reply_headers) or (
            isinstance(reply_headers, list) and any(h and h[0].lower() == "content-type" for h in reply_headers)
        )
        if own_type:  # the callback's Content-Type replaces the route's
            headers.pop("Content-Type", None)
        headers.extend(reply_headers)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes) or "Content-Encoding" in headers or "Set-Cookie" in headers:
            return _LocalCloudMock._built(adapter, route, request, status, headers, body)
        return _fast_response(adapter, request, status, headers, body)

    @staticmethod
    def _built(adapter: Any, route: Any, request: Any, status: int, headers: Any, body: Any) -> Any:
        """The response exactly as responses and the adapter build it (urllib3 objects included)."""
        raw = _form_response(_handle_body(body), headers, status, request.method)
        return adapter.build_response(request, raw)


def _fast_response(adapter: Any, request: Any, status: int, headers: Any, body: bytes) -> Any:
    """adapter.build_response(request, <responses' HTTPResponse of status, headers, body>) for a body that
    needs no decoding and sets no cookies: the same fields, its content already read (no raw stream)."""
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.reason = http_client.responses.get(status, None)
    response.url = request.url.decode("utf-8") if isinstance(request.url, bytes) else request.url
    response.request = request
    response.connection = adapter
    response._content = body  # what reading the raw stream gives (b"" for HEAD: _answer sends none)
    response._content_consumed = True
    response._reply = (status, headers, body)  # to build the urllib3 objects after all, for a retry
    return response


def _answer(request: Any) -> tuple[int, dict[str, str], bytes | str]:
    parts = urlsplit(request.url)
    host = base = parts.hostname or ""
    cloud = _clouds.get(host)
    if cloud is None and "." in host:  # bucket.cloudN.localcloud.internal: OSS, virtual-hosted
        base = host.split(".", 1)[1]
        cloud = _clouds.get(base)
    if cloud is None:
        return 404, {"Content-Type": "application/json"}, json.dumps({"Code": "NoSuchLocalCloud", "Message": host})
    body = _body_bytes(request.body)
    path = request.path_url
    if path.startswith(PREFIX):
        status, payload = handle_admin(cloud, request.method, path, body)
        return status, {"Content-Type": "application/json"}, json.dumps(payload)
    reply = dispatch_api(
        cloud, request.method, path, dict(request.headers), body, host=parts.netloc, base_hosts=(base,)
    )
    if reply.latency_ms:
        time.sleep(reply.latency_ms / 1000)
    payload, headers = reply.wire()
    return reply.status, headers, b"" if request.method == "HEAD" else payload


def _body_bytes(body: Any) -> bytes:
    """What requests would have sent: bytes, text, a file, or an iterable of chunks (a streamed upload; the
    OSS SDK wraps bodies in one that feeds its CRC-64 check as it is read)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    if hasattr(body, "read"):
        data = body.read()
        return data.encode() if isinstance(data, str) else data
    return b"".join(chunk.encode() if isinstance(chunk, str) else bytes(chunk) for chunk in body)


def routing_mock(callback: Any) -> _LocalCloudMock:
    """The (not yet started) mock every local cloud's SDK calls go through: for each method, one route for any
    `*.localcloud.internal` URL, answered by `callback(request) -> (status, headers, body)`, keeping only the
    latest calls. mock_cloud's callback is the emulator; a benchmark may hand it canned answers instead."""
    mock = _LocalCloudMock(assert_all_requests_are_fired=False)
    mock._calls = _RecentCalls()
    mock._routes = {}
    for method in (responses.GET, responses.POST, responses.PUT, responses.DELETE, responses.HEAD):
        mock._routes[method] = mock.add_callback(method, _URL, callback=callback)
    for route in mock.registered():
        route._calls = _RecentCalls()
    return mock


@contextmanager
def mock_cloud(cloud: LocalCloud) -> Iterator[str]:
    """Route requests for a fresh host into `cloud`; yields the endpoint for Config(endpoint=...)."""
    global _mock
    host = f"cloud{next(_numbers)}.{MOCK_DOMAIN}"
    with _lock:
        if _mock is None:
            _mock = routing_mock(_answer)
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
