"""Real HTTP on loopback: the SDKs talk to this with `Config(endpoint='127.0.0.1:PORT', protocol='http')`."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localcloud.admin import PREFIX, handle_admin
from localcloud.cloud import LocalCloud
from localcloud.errors import ApiError
from localcloud.reply import Reply
from localcloud.wire import parse_request, rest_request, route


def dispatch_api(
    cloud: LocalCloud,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    host: str = "",
    base_hosts: Iterable[str] = (),
) -> Reply:
    """One API request, from raw HTTP parts to a Reply; protocol errors get the real error shape.

    `wire.route` picks the protocol (the transports answer the admin API before this): OSS (a virtual-hosted
    bucket under one of `base_hosts`, an OSS signature or `x-oss-*` headers), then FC 3.0 ROA (path under
    /2023-03-30/), then RPC (path /, action and version); any other path is a path-style OSS request.
    `host` is the host the client addressed (default: the Host header).
    """
    protocol = route(method, url, headers, host=host, base_hosts=base_hosts)
    if protocol != "rpc":
        return cloud.handle_rest(protocol, rest_request(method, url, headers, body, host=host, base_hosts=base_hosts))
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
        body = self._read_body()
        if self.path.startswith(PREFIX):
            status, payload = handle_admin(self.cloud, self.command, self.path, body)
            self._send(Reply(status, payload))
            return
        base_hosts = (str(self.server.server_address[0]), "localhost")  # bucket.localhost:PORT is virtual-hosted
        reply = dispatch_api(
            self.cloud, self.command, self.path, dict(self.headers.items()), body, base_hosts=base_hosts
        )
        if reply.latency_ms:
            time.sleep(reply.latency_ms / 1000)  # outside the cloud's lock: other callers go on
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():  # a stream of unknown length
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        payload, headers = reply.wire()
        self.send_response_only(reply.status)
        names = {key.lower() for key in headers}
        if "server" not in names:
            self.send_header("Server", self.version_string())
        if "date" not in names:  # OSS answers its own (the virtual clock's)
            self.send_header("Date", self.date_time_string())
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(payload)

    do_POST = _serve
    do_GET = _serve
    do_PUT = _serve
    do_DELETE = _serve
    do_HEAD = _serve


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
        # Where this cloud can be reached: FC instances that run as processes (deployed stacks) dial it.
        self.cloud.http_endpoint = self.endpoint
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
        if getattr(self.cloud, "http_endpoint", None) == self.endpoint:
            self.cloud.http_endpoint = None
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve_until_signalled(self) -> None:
        """Serve (from the main thread's point of view: wait) until SIGINT or SIGTERM, then stop."""
        import signal

        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        self.stop()

    def __enter__(self) -> LocalCloudServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
