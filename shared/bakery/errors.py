"""The error taxonomy at the boundary. Handlers own the one policy that follows from it:

- InvalidEvent   — the event can never be processed: log and drop (a retry cannot fix it).
- RetryableError — try again later: re-raised so FC's async retry (and the sweep) come back.
- BakeFailure    — this bake cannot succeed: end it with one `bakery:Bake:Failed` naming why.
"""

from __future__ import annotations


class BakeryError(Exception):
    """Base of every error Bakery raises on purpose."""


class ConfigError(BakeryError):
    """An environment variable is missing or malformed; the message names it and what is expected."""


class InvalidEvent(BakeryError):
    """A malformed or foreign event: dropped without any API mutation and without a retry storm."""


class NotATrigger(InvalidEvent):
    """A well-formed event that asks nothing of Bakery (a tag write that sets no bakery:bake=true): dropped quietly."""


def is_throttling(code: str) -> bool:
    """Throttling codes as ECS and OOS spell them (Throttling, Throttling.User, Throttling.Api, Rejected.Throttling),
    and EventBridge's HTTP 429 TooManyRequests (EventBridge "Error codes" doc)."""
    return code.startswith("Throttling") or code in ("Rejected.Throttling", "TooManyRequests")


class RetryableError(BakeryError):
    """Throttling, 5xx, an instance in a transitional state: the same call may succeed later."""

    def __init__(self, message: str, *, code: str = "", retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_ms = retry_after_ms

    @property
    def throttled(self) -> bool:
        return is_throttling(self.code)


class BakeFailure(BakeryError):
    """A bake that cannot succeed. `reason` is a stable code, `message` tells a person what to do."""

    def __init__(self, reason: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = details


class CloudError(BakeryError):
    """A permanent error from a cloud API that the caller may still decide to handle (e.g. NotFound)."""

    def __init__(self, code: str, message: str, *, status: int = 0, action: str = "") -> None:
        super().__init__(f"{action}: {code}: {message}" if action else f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.action = action
