"""What the local FC runtime records: one Delivery per invocation, one DeadLetter per event given up on,
and the reports made from them (a summary, a trace table)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["ok", "error", "dead-letter", "expired"]


@dataclass
class Delivery:
    """One invocation (or one expired event that was not invoked)."""

    seq: int
    event_id: str
    event_type: str  # CloudEvent type; "timer" for timer triggers; "invoke" for invoke() of a non-event
    source: str  # CloudEvent source; the trigger name for timers
    function: str
    attempt: int  # 1 for the first delivery, 2 for the first retry, ...
    outcome: Outcome
    error: str | None
    simulated_time: str
    wall_ms: float
    request_id: str
    result: Any
    logs: list[str]
    error_type: str = ""  # the exception's type name when outcome is error/dead-letter
    stack: list[str] = field(default_factory=list)  # its stack trace, as FC's errorResponse stackTrace
    api_calls: dict[str, int] = field(default_factory=dict)  # cloud API calls made during it, by action


@dataclass
class DeadLetter:
    event: Any  # the event as delivered (parsed JSON), or its text
    function: str
    attempts: int  # invocations made
    error: str | None
    reason: Literal["retries-exhausted", "expired"]
    simulated_time: str
    published_to: str | None  # the OnFailure bus the failure event went to, if any


@dataclass
class Failure:
    """How an invocation failed: FC's errorType, errorMessage and stackTrace."""

    error_type: str
    message: str
    stack: list[str]

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


def failure_destination_data(
    *, now: float, request_id: str, function_arn: str, reason: Literal["retries-exhausted", "expired"], attempts: int,
    payload: bytes, failure: Failure | None,
) -> dict[str, Any]:  # fmt: skip
    """The `data` of the `fc:AsyncInvoke:Failure` event a dead letter sends to its OnFailure bus (FC's payload)."""
    return {
        "timestamp": int(now * 1000),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": "EventAgeExceeded" if reason == "expired" else "UnhandledInvocationError",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": payload.decode("utf-8", "replace"),
        "responseContext": {
            "statusCode": 200 if failure else 0,
            "functionError": "UnhandledInvocationError" if failure else "",
        },
        "responsePayload": json.dumps(
            {"errorMessage": failure.message, "errorType": failure.error_type, "stackTrace": failure.stack}
        )
        if failure
        else "",
    }


def summarize(deliveries: list[Delivery], dead_letters: list[DeadLetter]) -> dict[str, Any]:
    by_function: dict[str, dict[str, int]] = {}
    for d in deliveries:
        row = by_function.setdefault(d.function, {"deliveries": 0, "ok": 0, "errors": 0, "expired": 0})
        row["deliveries"] += 1
        row["ok"] += d.outcome == "ok"
        row["errors"] += d.outcome in ("error", "dead-letter")
        row["expired"] += d.outcome == "expired"
    return {
        "deliveries": len(deliveries),
        "ok": sum(d.outcome == "ok" for d in deliveries),
        "errors": sum(d.outcome in ("error", "dead-letter") for d in deliveries),
        "retries": sum(d.attempt > 1 and d.outcome != "expired" for d in deliveries),
        "expired": sum(d.outcome == "expired" for d in deliveries),
        "dead_letters": len(dead_letters),
        "by_function": by_function,
    }


def trace_table(deliveries: list[Delivery]) -> str:
    """One row per delivery: when (virtual), what, to whom, which try, how it went."""
    header = ("#", "simulated time", "function", "try", "outcome", "wall ms", "event", "error")
    rows = [
        (
            str(d.seq),
            d.simulated_time,
            d.function,
            str(d.attempt),
            d.outcome,
            f"{d.wall_ms:.1f}",
            f"{d.event_type} {d.event_id}".strip() if d.event_type != "timer" else f"timer {d.source}",
            _clip(d.error or "", 60),
        )
        for d in deliveries
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
