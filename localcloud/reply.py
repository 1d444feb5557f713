"""What a transport sends back for one request: shared by the dispatcher, the REST services and both transports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_CONTENT_TYPE = "application/json;charset=utf-8"


@dataclass
class Reply:
    """What a transport sends back: HTTP status, JSON body, extra headers, latency to add.

    A REST service may answer raw bytes instead (`raw`, sent as is with `content_type`: an OSS object, an
    XML error); `body` is then ignored. A `Content-Length` in `headers` wins over the payload's length (HEAD).
    """

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    latency_ms: int = 0
    raw: bytes | None = None
    content_type: str = JSON_CONTENT_TYPE

    def wire(self) -> tuple[bytes, dict[str, str]]:
        """The bytes to send and every header: Content-Type, Content-Length, then the reply's own (which win)."""
        payload = self.raw if self.raw is not None else json.dumps(self.body).encode()
        headers = {"Content-Type": self.content_type, "Content-Length": str(len(payload))}
        for key, value in self.headers.items():
            for existing in [k for k in headers if k.lower() == key.lower()]:
                del headers[existing]
            headers[key] = value
        return payload, headers
