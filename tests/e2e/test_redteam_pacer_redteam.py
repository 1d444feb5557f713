"""Red team (issue 11), kept as regression tests: the CreateImage pacer (bakery.adapters.pacing) under a large x-acs-retry-after."""

from __future__ import annotations

import pytest

from bakery.adapters import sdk
from bakery.adapters.pacing import Pacer
from bakery.errors import RetryableError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.waits: list[float] = []

    def now(self) -> float:
        return self.t

    def wait(self, s: float) -> None:
        self.waits.append(s)
        self.t += s


def _throttled(retry_after_ms: int):
    def method():
        raise RetryableError("CreateImage was throttled", code="Throttling", retry_after_ms=retry_after_ms)

    return method


def test_last_attempt_throttle_sets_an_uncapped_next_turn(monkeypatch):
    clock = Clock()
    pacer = Pacer(clock.now, clock.wait)
    monkeypatch.setattr(sdk, "_translated", lambda service, action, method, *a: method(*a))
    # one call: every attempt throttled, the last with a long retry-after (e.g. a per-minute/hour quota)
    hints = iter([200, 200, 300_000])

    def method():
        raise RetryableError("throttled", code="Throttling", retry_after_ms=next(hints))

    with pytest.raises(RetryableError):
        sdk.call("ecs", "CreateImage", method, wait=clock.wait, pacer=pacer)
    # the quick retries waited (capped) hints
    assert all(w <= sdk.MAX_WAIT_SECONDS for w in clock.waits)
    # the next CreateImage in this warm process, 5 s later (another bake's invocation):
    clock.t += 5
    clock.waits.clear()
    sdk.call("ecs", "CreateImage", lambda: "ok", wait=clock.wait, pacer=pacer)
    # expected: a wait bounded like the pacer's own interval (MAX_INTERVAL_S=10) / the in-call waits
    # (MAX_WAIT_SECONDS=2). Actual: ~295 s, beyond every function's Timeout (template.yml: 120 / 300 s).
    assert max(clock.waits, default=0) <= 10, f"admit() waited {clock.waits} s"
