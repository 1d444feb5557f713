"""Structured JSON logs: one line per decision, with the bake id and FC request id bound to every line."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_bound: contextvars.ContextVar[tuple[tuple[str, Any], ...]] = contextvars.ContextVar("bakery_log_context", default=())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update(dict(_bound.get()))
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        try:
            return json.dumps(line, default=str)
        except (ValueError, TypeError, RecursionError):
            # A field too deep or circular to encode must not turn a log line into a crash: say what it was.
            return json.dumps({k: v if isinstance(v, (str, int, float, bool, type(None))) else _short(v)
                               for k, v in line.items()})  # fmt: skip


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = repr(value)
    except RecursionError:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class BakeryLogger(logging.LoggerAdapter):
    """`log.info("image created", image_id=...)`: keyword arguments become JSON fields."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra_fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("exc_info", "stack_info", "stacklevel")}
        kwargs["extra"] = {"fields": extra_fields}
        return msg, kwargs


def get_logger(name: str) -> BakeryLogger:
    return BakeryLogger(logging.getLogger(name), {})


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is *now*: runtimes (and the local one) swap it per invocation."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(level: str = "INFO") -> None:
    """Idempotent: one JSON handler on the `bakery` logger, whatever the runtime did to the root logger."""
    logger = logging.getLogger("bakery")
    logger.setLevel(level.upper())
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = False  # FC collects stdout; propagating would print every line twice


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind fields (bake_id, request_id, ...) to every log line inside the block."""
    merged = {**dict(_bound.get()), **{k: v for k, v in fields.items() if v is not None}}
    token = _bound.set(tuple(merged.items()))
    try:
        yield
    finally:
        _bound.reset(token)
