"""Fault injection: rate limits, failing calls, slow calls, duplicated or lost events.

Shapes (scenario `faults:` and `POST /_localcloud/faults` take the same list):
  {action: X, code: C, nth: N}          the Nth call of X, counted from installation, fails once with C
  {action: X, code: C, probability: P}  each call of X fails with probability P (seeded)
  {action: X, latency_ms: L}            each call of X answers L real milliseconds late
  {events: duplicate|drop, probability: P, type: T}   emitted events (optionally only type T)
Rate limits are token buckets refilled on the virtual clock, so throttling is deterministic.
"""

from __future__ import annotations

import difflib
import random
from dataclasses import dataclass, field
from typing import Any

from localcloud.clock import VirtualClock
from localcloud.errors import ApiError, injected_error, is_throttling
from localcloud.services.base import KNOWN_ACTIONS

# EventBridge answers throttling with HTTP 429 TooManyRequests, not ECS/OOS's 400 Throttling (EventBridge
# "Error codes", https://www.alibabacloud.com/help/en/eventbridge/error-codes: "429 | TooManyRequests | The request
# is denied by flow limiter for too many requests."; wiring-facts.md §11).
EVENTBRIDGE_THROTTLING = ("TooManyRequests", "The request is denied by flow limiter for too many requests.", 429)


def _check_action(action: str, where: str) -> None:
    actions = KNOWN_ACTIONS
    if action not in actions:
        close = difflib.get_close_matches(action, list(actions), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise FaultSpecError(f"{where}: unknown action {action!r} (the local cloud has no such API, so it would "
                             f"never fire){hint}")  # fmt: skip


class FaultSpecError(ValueError):
    """A fault entry that cannot be understood; the message says which key is wrong."""


@dataclass
class ActionFault:
    action: str
    code: str | None = None
    nth: int | None = None
    probability: float | None = None
    latency_ms: int | None = None
    message: str | None = None
    status: int | None = None
    calls_seen: int = 0
    spent: bool = False

    def describe(self) -> dict[str, Any]:
        keys = ("action", "code", "nth", "probability", "latency_ms", "message", "status", "spent")
        return {k: getattr(self, k) for k in keys if getattr(self, k) not in (None, False)}


@dataclass
class EventFault:
    mode: str  # duplicate | drop
    probability: float = 1.0
    event_type: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"events": self.mode, "probability": self.probability}
        if self.event_type:
            out["type"] = self.event_type
        return out


@dataclass
class TokenBucket:
    rate_per_second: float
    tokens: float
    updated_at: float

    @property
    def capacity(self) -> float:
        # At least one whole token: with the capacity at the rate, a limit below 1 call/s (e.g. 0.5)
        # could never hold a token and throttled every call forever.
        return max(1.0, self.rate_per_second)

    def take(self, now: float) -> float | None:
        """Take one token; None on success, else seconds until a token is free."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.rate_per_second)
        self.updated_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate_per_second


@dataclass
class FaultPlan:
    clock: VirtualClock
    rng: random.Random
    action_faults: list[ActionFault] = field(default_factory=list)
    event_faults: list[EventFault] = field(default_factory=list)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    # -- installation ---------------------------------------------------------------------------

    def set_rate_limits(self, limits: dict[str, float]) -> None:
        # Validate everything before installing anything: a bad entry must not leave half a plan.
        if not isinstance(limits or {}, dict):
            raise FaultSpecError(f"rate_limits: expected a mapping of action to calls per second, got {limits!r}")
        for action, rate in (limits or {}).items():
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0:
                raise FaultSpecError(f"rate_limits.{action}: expected calls per second > 0, got {rate!r}")
            _check_action(str(action), f"rate_limits.{action}")
        for action, rate in (limits or {}).items():
            bucket = TokenBucket(float(rate), 0.0, self.clock.now)
            bucket.tokens = bucket.capacity  # start full
            self.buckets[action] = bucket

    def install(self, entries: list[dict[str, Any]]) -> None:
        parsed = self.check(entries)
        for fault in parsed:
            (self.event_faults if isinstance(fault, EventFault) else self.action_faults).append(fault)

    @classmethod
    def check(cls, entries: Any) -> list[ActionFault | EventFault]:
        """Parse fault entries without installing them; FaultSpecError names the first bad key."""
        if entries is not None and not isinstance(entries, list):
            raise FaultSpecError(f"faults: expected a list of fault mappings, got {entries!r}")
        return [cls._parse(entry) for entry in entries or []]

    def clear(self) -> None:
        self.action_faults.clear()
        self.event_faults.clear()
        self.buckets.clear()

    def describe(self) -> dict[str, Any]:
        return {
            "faults": [f.describe() for f in self.action_faults] + [f.describe() for f in self.event_faults],
            "rate_limits": {a: b.rate_per_second for a, b in self.buckets.items()},
        }

    @staticmethod
    def _parse(entry: dict[str, Any]) -> ActionFault | EventFault:
        if not isinstance(entry, dict):
            raise FaultSpecError(f"a fault must be a mapping, got {entry!r}")
        if "events" in entry:
            unknown = set(entry) - {"events", "probability", "type"}
            if unknown:
                raise FaultSpecError(f"event fault: unknown keys {sorted(unknown)}; allowed: events, probability, type")
            if entry["events"] not in ("duplicate", "drop"):
                raise FaultSpecError(f"event fault: events must be duplicate or drop, got {entry['events']!r}")
            if "type" in entry and (not isinstance(entry["type"], str) or not entry["type"]):
                raise FaultSpecError(f"event fault: type must be an event type string, got {entry['type']!r}")
            return EventFault(entry["events"], _probability(entry.get("probability", 1.0)), entry.get("type"))
        unknown = set(entry) - {"action", "code", "nth", "probability", "latency_ms", "message", "status"}
        if unknown:
            raise FaultSpecError(
                f"action fault: unknown keys {sorted(unknown)}; "
                "allowed: action, code, nth, probability, latency_ms, message, status"
            )
        if not entry.get("action"):
            raise FaultSpecError(f"action fault needs 'action' (or 'events' for an event fault): {entry!r}")
        # Types are checked here, not when the fault fires: a bad value used to pass installation and
        # then crash the request handler (the SDK saw a dropped connection instead of an answer).
        for key in ("action", "code", "message"):
            if key in entry and (not isinstance(entry[key], str) or not entry[key]):
                raise FaultSpecError(f"{key} must be a non-empty string, got {entry[key]!r}")
        # A fault on an action no service answers was accepted and then never fired.
        _check_action(entry["action"], "action fault")
        latency = entry.get("latency_ms")
        if latency is not None and (not isinstance(latency, (int, float)) or isinstance(latency, bool) or latency < 0):
            raise FaultSpecError(f"latency_ms must be a number of milliseconds >= 0, got {latency!r}")
        status = entry.get("status")
        if status is not None and (not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599):
            raise FaultSpecError(f"status must be an HTTP error status 400-599, got {status!r}")
        if "code" not in entry and "latency_ms" not in entry:
            raise FaultSpecError(f"action fault on {entry['action']} needs 'code' or 'latency_ms'")
        if "code" in entry and "nth" not in entry and "probability" not in entry:
            raise FaultSpecError(f"action fault on {entry['action']} with a code needs 'nth' or 'probability'")
        nth = entry.get("nth")
        if nth is not None and (not isinstance(nth, int) or isinstance(nth, bool) or nth < 1):
            raise FaultSpecError(f"nth must be a whole number >= 1, got {nth!r}")
        return ActionFault(
            action=entry["action"],
            code=entry.get("code"),
            nth=nth,
            probability=_probability(entry["probability"]) if "probability" in entry else None,
            latency_ms=entry.get("latency_ms"),
            message=entry.get("message"),
            status=entry.get("status"),
        )

    # -- evaluation -----------------------------------------------------------------------------

    def before_call(self, action: str) -> tuple[ApiError | None, int]:
        """The error this call must fail with (if any) and the latency to add, in ms."""
        latency = 0
        error: ApiError | None = None
        for fault in self.action_faults:
            if fault.action != action:
                continue
            fault.calls_seen += 1
            if fault.latency_ms:
                latency += int(fault.latency_ms)
            if fault.code is None or error is not None:
                continue
            if fault.nth is not None and not fault.spent and fault.calls_seen == fault.nth:
                fault.spent = True
                error = injected_error(fault.code, fault.message, fault.status)
            elif fault.probability is not None and self.rng.random() < fault.probability:
                error = injected_error(fault.code, fault.message, fault.status)
        if error is None and action in self.buckets:
            wait = self.buckets[action].take(self.clock.now)
            if wait is not None:
                error = ApiError(
                    "Throttling",
                    "Request was denied due to request throttling.",
                    400,
                    retry_after_ms=max(1, int(wait * 1000 + 0.999)),
                )
        if error is not None and is_throttling(error.code) and KNOWN_ACTIONS.get(action) == "eventbridge":
            code, message, status = EVENTBRIDGE_THROTTLING  # EventBridge's spelling of throttling: 429
            error = ApiError(code, message, status, retry_after_ms=error.retry_after_ms)
        return error, latency

    def copies_of_event(self, event_type: str) -> int:
        """How many times an emitted event is delivered: 0 (dropped), 1, or 2 (duplicated)."""
        copies = 1
        for fault in self.event_faults:
            if fault.event_type and fault.event_type != event_type:
                continue
            if self.rng.random() < fault.probability:
                copies = 0 if fault.mode == "drop" else 2
        return copies


def _probability(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise FaultSpecError(f"probability must be between 0 and 1, got {value!r}")
    return float(value)
