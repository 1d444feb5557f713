"""Client-side pacing of a rate-limited action (CreateImage): once ECS throttles it, this process spaces its
calls by the interval the throttling implied, so a burst of bakes (a fleet tagged at once) queues at the rate
limit instead of every bake spending a refused call to learn it — the idea of the AWS SDKs' "adaptive" retry
mode. The interval comes from `x-acs-retry-after` (the time until the limit admits a call), grows by half when
a paced call is throttled again, and is forgotten after a quiet minute, so a raised quota is used at once.

Per process (a warm FC instance, or a local run's in-process runtime): instances running side by side still
learn on their own, and their throttled calls are retried as before (bakery.adapters.sdk)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from bakery.errors import RetryableError

FORGET_AFTER_S = 60.0  # no throttling for this long: call freely again
MAX_INTERVAL_S = 10.0
MAX_ADMIT_WAIT_S = 10.0  # a turn further away than this is not waited for: the step is retried later instead


class Pacer:
    def __init__(self, now: Callable[[], float], wait: Callable[[float], None]) -> None:
        self._now, self._wait = now, wait
        self._lock = threading.Lock()
        self.interval = 0.0  # seconds between calls; 0: not pacing
        self._next_at = 0.0
        self._throttled_at = 0.0

    def admit(self) -> None:
        """Before a call: wait for this call's turn (no wait, and no clock read, while not pacing)."""
        if not self.interval:
            return
        with self._lock:
            now = self._now()
            if now - self._throttled_at > FORGET_AFTER_S:
                self.interval = 0.0
                return
            turn = max(now, self._next_at)
            if turn - now > MAX_ADMIT_WAIT_S:  # a function's time is bounded (FC Timeout): hand the step back
                raise RetryableError(f"paced: the next call is {turn - now:.0f} s away", code="Throttling")
            self._next_at = turn + self.interval
        if turn > now:
            self._wait(turn - now)

    def throttled(self, retry_after_s: float) -> None:
        """The call was throttled: pace from now on, and leave at least `retry_after_s` before the next call."""
        retry_after_s = min(MAX_INTERVAL_S, max(0.0, retry_after_s))  # a server's hint is capped like the pace
        with self._lock:
            now = self._now()
            self.interval = min(MAX_INTERVAL_S, max(self.interval * 1.5, retry_after_s))
            self._next_at = max(self._next_at, now + retry_after_s)
            self._throttled_at = now
