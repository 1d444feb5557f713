"""Real HTTP on loopback: the SDKs talk to this with `Config(endpoint='127.0.0.1:PORT', protocol='http')`."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localcloud.admin import PREFIX, handle_admin
from localcloud.cloud import LocalCloud, Reply
from localcloud.errors import ApiError
from localcloud.wire import parse_request


def dispatch_api(cloud: LocalCloud, method: str, url: str, headers: dict[str, str], body: bytes) -> Reply:
    """One API request, from raw HTTP parts to a Reply; protocol errors get the real error shape."""
    try:
        request = parse_request(method, url, headers, body)
    except ApiError as error:
        return Reply(error.status, {"RequestId": cloud.ids.request_id(), "Code": error.code, "Message": error.message})
    return cloud.handle(request, user_agent=headers.get("user-agent", headers.get("User-Agent", "")))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    cloud: LocalCloud  # set on the subclass made per server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle + delayed ACK add ~40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the calls log is the record
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith(PREFIX):
            status, payload = handle_admin(self.cloud, self.command, self.path, body)
            self._send(status, payload, {})
            return
        reply = dispatch_api(self.cloud, self.command, self.path, dict(self.headers.items()), body)
        if reply.latency_ms:
            time.sleep(reply.latency_ms / 1000)  # outside the cloud's lock: other callers go on
        self._send(reply.status, reply.body, reply.headers)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_POST = _serve
    do_GET = _serve


class LocalCloudServer:
    """Serve a LocalCloud over HTTP on 127.0.0.1 in a background thread (port 0 = any free port)."""

    def __init__(self, cloud: LocalCloud, host: str = "127.0.0.1", port: int = 0, speed: float | None = None):
        handler = type("Handler", (_Handler,), {"cloud": cloud})
        self.cloud = cloud
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.speed = speed
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        """What to pass as Config(endpoint=...): host:port without a scheme."""
        host, port = self.httpd.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> LocalCloudServer:
        # A short poll interval: stop() waits for one poll, and tests start and stop many servers.
        serve = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="localcloud-http", daemon=True
        )
        serve.start()
        self._threads.append(serve)
        if self.speed:
            ticker = threading.Thread(target=self._tick, name="localcloud-clock", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        return self

    def _tick(self) -> None:
        """With --speed X, simulated time runs X seconds per real second."""
        last = time.monotonic()
        while not self._stop.wait(0.1):
            now = time.monotonic()
            self.cloud.advance((now - last) * (self.speed or 0))
            last = now

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LocalCloudServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
