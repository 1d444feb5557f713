"""The virtual clock: time moves only when told to, and timers fire in a deterministic order."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from localcloud import LocalCloud, Scenario
from localcloud.clock import DEFAULT_START, VirtualClock

START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


def test_a_new_clock_is_at_its_start(clock: VirtualClock) -> None:
    # Given a new clock
    # When it is read
    # Then it is at its start, formatted as ECS writes times
    assert clock.now == START.timestamp()
    assert clock.elapsed == 0
    assert clock.iso() == "2026-01-05T09:00:00Z"
    assert clock.iso_millis() == "2026-01-05T09:00:00.000Z"


def test_default_start_is_a_fixed_utc_time() -> None:
    # Given a clock built without a start
    # When it is read
    # Then it starts at the fixed default, so runs do not depend on the wall clock
    assert VirtualClock().iso() == DEFAULT_START.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_advance_moves_time_by_exactly_the_amount(clock: VirtualClock) -> None:
    # Given a clock at its start
    # When it is advanced 90.5 seconds
    clock.advance(90.5)
    # Then that much simulated time has passed
    assert clock.elapsed == 90.5
    assert clock.iso() == "2026-01-05T09:01:30Z"
    assert clock.iso_millis() == "2026-01-05T09:01:30.500Z"


def test_time_does_not_move_by_itself(clock: VirtualClock) -> None:
    # Given a clock with a timer due in one second
    fired: list[str] = []
    clock.call_later(1, lambda: fired.append("t"))
    # When nothing advances it
    # Then nothing fires and time stands still
    assert fired == []
    assert clock.elapsed == 0


def test_timers_fire_in_due_order_and_ties_in_scheduling_order(clock: VirtualClock) -> None:
    # Given timers scheduled out of order, two of them due at the same moment
    fired: list[str] = []
    clock.call_later(30, lambda: fired.append("c"))
    clock.call_later(10, lambda: fired.append("a"))
    clock.call_later(20, lambda: fired.append("b1"))
    clock.call_later(20, lambda: fired.append("b2"))
    # When the clock passes all of them
    count = clock.advance(60)
    # Then they fired by due time, ties in the order they were scheduled, and were counted
    assert fired == ["a", "b1", "b2", "c"]
    assert count == 4


def test_a_timer_sees_the_clock_at_its_due_time(clock: VirtualClock) -> None:
    # Given a timer due in 10 seconds that records the time it sees
    seen: list[float] = []
    clock.call_later(10, lambda: seen.append(clock.elapsed))
    # When the clock jumps 100 seconds at once
    clock.advance(100)
    # Then the timer ran with the clock at 10 s, and the clock ends at 100 s
    assert seen == [10]
    assert clock.elapsed == 100


def test_only_due_timers_fire(clock: VirtualClock) -> None:
    # Given timers at 10 s and 20 s
    fired: list[str] = []
    clock.call_later(10, lambda: fired.append("early"))
    clock.call_later(20, lambda: fired.append("late"))
    # When the clock advances 15 s, then 5 s more
    clock.advance(15)
    after_first = list(fired)
    clock.advance(5)
    # Then the late one fires only when its time comes (a timer due exactly now fires)
    assert after_first == ["early"]
    assert fired == ["early", "late"]


def test_timers_scheduled_by_timers_fire_in_the_same_advance_when_due(clock: VirtualClock) -> None:
    # Given a timer that schedules a follow-up 5 s later, and one 500 s later
    fired: list[str] = []

    def first() -> None:
        fired.append("first")
        clock.call_later(5, lambda: fired.append("follow-up"))
        clock.call_later(500, lambda: fired.append("much later"))

    clock.call_later(10, first)
    # When the clock advances 60 s
    clock.advance(60)
    # Then the follow-up fired within the same advance and the later one waits
    assert fired == ["first", "follow-up"]
    assert clock.pending() == 1


def test_cancelled_timers_do_not_fire_and_are_not_pending(clock: VirtualClock) -> None:
    # Given two timers, one of them cancelled
    fired: list[str] = []
    cancelled = clock.call_later(10, lambda: fired.append("cancelled"))
    clock.call_later(20, lambda: fired.append("kept"))
    cancelled.cancelled = True
    # When the clock is read and advanced
    # Then the cancelled one is neither pending, next, nor fired
    assert clock.pending() == 1
    assert clock.next_due() == clock.now + 20
    clock.advance(30)
    assert fired == ["kept"]


def test_next_due_is_none_when_nothing_is_scheduled(clock: VirtualClock) -> None:
    # Given a clock without timers
    # When the next due time is asked
    # Then there is none
    assert clock.next_due() is None
    assert clock.pending() == 0


def test_a_timer_set_in_the_past_fires_on_the_next_advance(clock: VirtualClock) -> None:
    # Given a timer scheduled before the current time
    fired: list[float] = []
    clock.advance(100)
    clock.call_at(clock.now - 50, lambda: fired.append(clock.elapsed))
    # When the clock advances by nothing
    clock.advance(0)
    # Then it fired at the current time (time never goes backwards)
    assert fired == [100]


def test_the_clock_never_moves_backwards(clock: VirtualClock) -> None:
    # Given a clock that has moved forward
    clock.advance(100)
    # When it is asked to go back
    # Then advance refuses and advance_to stays where it is
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)
    clock.advance_to(clock.now - 50)
    assert clock.elapsed == 100


def test_run_until_idle_fires_every_timer_and_stops() -> None:
    # Given a cloud with a chain of timers over an hour
    cloud = LocalCloud(Scenario())
    fired: list[float] = []
    for delay in (60, 600, 3600):
        cloud.clock.call_later(delay, lambda: fired.append(cloud.clock.elapsed))
    # When it runs until idle
    result = cloud.run_until_idle()
    # Then every timer fired at its time, and the clock stopped at the last one
    assert fired == [60, 600, 3600]
    assert result["timers_fired"] == 3
    assert cloud.clock.elapsed == 3600


def test_run_until_idle_is_bounded() -> None:
    # Given a cloud with a timer that keeps rescheduling itself
    cloud = LocalCloud(Scenario())

    def again() -> None:
        cloud.clock.call_later(60, again)

    cloud.clock.call_later(60, again)
    # When it runs until idle with a limit of one hour
    result = cloud.run_until_idle(limit_seconds=3600)
    # Then it stops at the limit instead of running forever
    assert result["timers_fired"] == 60
    assert cloud.clock.elapsed == 3600
