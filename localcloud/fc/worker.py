"""One FC function instance as its own process: the code directory alone on sys.path, as FC runs it.

Started by the local FC runtime as `python3.10 -I -S worker.py CODE_DIR MODULE ATTRIBUTE` for functions a
(local) ROS stack deployed from an uploaded zip, so what runs is the uploaded artifact — its own `bakery`
package and vendored SDKs — and not whatever the developer's environment has installed. Standard library
only: nothing of localcloud is importable here (that is the point).

Protocol: one JSON object per line. The runtime writes {"payload": <base64>, "context": {...}, "env": {...}};
the worker answers {"result": ..., "error": null | {"errorType", "errorMessage", "stackTrace"}, "logs": [...]}.
The handler's prints and log records are captured per call; the protocol uses a private duplicate of the
original stdout, and file descriptor 1 is pointed at stderr so nothing a library writes can corrupt it.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import logging
import os
import random
import sys
import traceback
from types import SimpleNamespace
from typing import Any


class _Capture(logging.Handler):
    def __init__(self, lines: list[str], prefix: str) -> None:
        super().__init__(logging.NOTSET)
        self.lines, self.prefix = lines, prefix

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        first, *rest = message.splitlines() or [""]
        self.lines.append(f"{self.prefix} [{record.levelname}] {first}")
        self.lines.extend(rest)


class _Lines(io.TextIOBase):
    """sys.stdout/sys.stderr during a call: printed lines join the log lines in order."""

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.partial = lines, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.partial += text
        *complete, self.partial = self.partial.split("\n")
        self.lines.extend(complete)
        return len(text)

    def close_call(self) -> None:
        if self.partial:
            self.lines.append(self.partial)
        self.partial = ""


def _context(raw: dict[str, Any]) -> Any:
    """The python3.10 runtime's context object (localcloud/fc/context.py documents the fields)."""
    ns = SimpleNamespace
    tracing = ns(span_context=None, jaeger_endpoint="", span_baggages={}, parseOpenTracingBaggages=lambda: {})
    return ns(
        request_id=raw["request_id"],
        credentials=ns(**raw["credentials"]),
        function=ns(**raw["function"]),
        service=ns(name="", log_project="", log_store="", qualifier="LATEST", version_id=""),
        region=raw["region"],
        account_id=raw["account_id"],
        tracing=tracing,
    )


def _stack(error: BaseException) -> list[list[str]]:
    """FC python's stackTrace: [file, line, function, text] per frame, starting in the handler's code."""
    frames = traceback.extract_tb(error.__traceback__)[1:]
    return [[f'File "{f.filename}"', f"line {f.lineno}", f"in {f.name}", f.line or ""] for f in frames]


def main() -> None:
    code_dir, module_name, attribute = sys.argv[1:4]
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.path.insert(0, code_dir)
    os.chdir(code_dir)
    handler = None
    root = logging.getLogger()
    for line in sys.stdin:
        request = json.loads(line)
        lines: list[str] = []
        os.environ.clear()
        os.environ.update(request["env"])
        capture = _Capture(lines, request.get("log_prefix", ""))
        root.addHandler(capture)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        stream = _Lines(lines)
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = stream
        answer: dict[str, Any] = {"result": None, "error": None}
        random.seed(request["context"].get("request_id"))  # as in-process instances do (instances.py)
        try:
            if handler is None:  # the cold start: an import error fails this call, the next one tries again
                handler = getattr(importlib.import_module(module_name), attribute)
            result = handler(base64.b64decode(request["payload"]), _context(request["context"]))
            if isinstance(result, bytes):
                answer["result"] = {"bytes": base64.b64encode(result).decode()}
            else:
                try:
                    json.dumps(result)
                    answer["result"] = {"value": result}
                except (TypeError, ValueError):
                    answer["result"] = {"value": str(result)}
        except Exception as error:
            answer["error"] = {
                "errorType": type(error).__name__,
                "errorMessage": str(error),
                "stackTrace": _stack(error),
            }
            lines.append(f"{capture.prefix} [ERROR] {type(error).__name__}: {error}")
            lines.extend("".join(traceback.format_exception(type(error), error, error.__traceback__)).splitlines())
        finally:
            sys.stdout, sys.stderr = saved
            root.removeHandler(capture)
            stream.close_call()
        answer["logs"] = lines
        protocol.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
