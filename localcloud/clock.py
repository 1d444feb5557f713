"""The virtual clock: every state machine in the local cloud moves only when it moves.

Timers are kept in a heap ordered by (due time, sequence), so two runs of the same scenario
fire the same callbacks in the same order: runs are deterministic for a given seed.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

DEFAULT_START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    label: str = field(compare=False)
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)
    queued: bool = field(default=True, compare=False)  # still in its clock's heap, not yet fired
    clock: VirtualClock | None = field(default=None, compare=False, repr=False)  # the clock that queued it

    def __setattr__(self, name: str, value: object) -> None:
        # A timer cancelled or restored (however: clock.cancel, or `timer.cancelled = True`) while queued
        # changes what its clock has pending.
        state = self.__dict__
        if name == "cancelled" and state.get("queued") and state.get("clock") and bool(value) != bool(state.get(name)):
            state["clock"]._live += -1 if value else 1
        object.__setattr__(self, name, value)


class VirtualClock:
    """Simulated time in epoch seconds; `advance` runs every timer that falls due, in order."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self.start = start.timestamp()
        self.now = self.start
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._live = 0  # timers queued and not cancelled: pending(), without a walk of the heap

    @property
    def elapsed(self) -> float:
        """Simulated seconds since the clock started."""
        return self.now - self.start

    def iso(self, at: float | None = None) -> str:
        """UTC time as ECS writes it: 2026-01-05T09:00:00Z."""
        moment = self.now if at is None else at
        return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def iso_millis(self, at: float | None = None) -> str:
        moment = self.now if at is None else at
        return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def call_at(self, due: float, callback: Callable[[], None], label: str = "", *, place: int | None = None) -> _Timer:
        """`place`: a sequence number from reserve(), to order this timer among those due at the same time
        as if it had been set when the place was reserved."""
        timer = _Timer(max(due, self.now), next(self._seq) if place is None else place, label, callback, clock=self)
        heapq.heappush(self._timers, timer)
        self._live += 1
        return timer

    def reserve(self) -> int:
        """A place in the order of timers, for one whose due time is not known yet (see call_at)."""
        return next(self._seq)

    def call_later(self, delay: float, callback: Callable[[], None], label: str = "") -> _Timer:
        return self.call_at(self.now + max(0.0, delay), callback, label)

    def cancel(self, timer: _Timer) -> None:
        """A cancelled timer never fires (it is dropped lazily from the heap)."""
        timer.cancelled = True

    def next_due(self) -> float | None:
        """When the next live timer fires, or None when nothing is scheduled."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers).queued = False
        return self._timers[0].due if self._timers else None

    def advance_to(self, target: float) -> int:
        """Move to `target`, firing due timers (including ones they schedule). Returns timers fired."""
        fired = 0
        while True:
            due = self.next_due()
            if due is None or due > target:
                break
            timer = heapq.heappop(self._timers)
            timer.queued = False
            self._live -= 1
            self.now = max(self.now, timer.due)
            timer.callback()
            fired += 1
        self.now = max(self.now, target)
        return fired

    def advance(self, seconds: float) -> int:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        return self.advance_to(self.now + seconds)

    def pending(self) -> int:
        """Timers that will fire unless cancelled."""
        return self._live
