"""The event fuzzer's time-boxed slice (the long run: `tests/fuzz/fuzz_events.py --events 10000`): ~1,000
mutated events from events/, each delivered to all four handlers against a LocalCloud."""

from __future__ import annotations

from tests.fuzz import fuzz_events

EVENTS, SEED, BUDGET_S = 1000, 20260105, 25.0


def test_no_mutated_event_crashes_a_handler_and_no_invalid_or_foreign_one_touches_the_cloud() -> None:
    # Given ~1,000 mutations of the samples (invalid, foreign and maybe-valid), from a fixed seed
    # When each is delivered to bake, check, repair and lifecycle
    result = fuzz_events.run(EVENTS, SEED, time_budget=BUDGET_S)

    # Then enough of them ran, of every kind, and some valid ones really were processed (the harness routes)
    assert result.events >= 300, f"only {result.events} events in {BUDGET_S}s"
    assert {"invalid", "foreign", "maybe"} <= set(result.by_kind)
    assert sum(f.ok for f in result.functions.values()) > 0
    # And no handler let anything but RetryableError escape; no invalid or foreign event made an API call or was
    # routed; every drop was logged; every log line was one JSON object
    for name, figures in result.functions.items():
        assert figures.delivered == result.events, name
        assert (figures.crashes, figures.writes_on_invalid, figures.calls_on_invalid, figures.invalid_not_dropped,
                figures.silent_drops, figures.bad_log_lines) == (0, 0, 0, 0, 0, 0), (name, result.failures[:5])  # fmt: skip


def test_the_same_seed_makes_the_same_mutations() -> None:
    import random

    samples = [(p.name, p.read_bytes()) for p in sorted(fuzz_events.EVENTS.glob("*.json"))]
    first = [fuzz_events.mutate(random.Random(7), samples) for _ in range(1)]
    rng_a, rng_b = random.Random(7), random.Random(7)
    a = [fuzz_events.mutate(rng_a, samples) for _ in range(200)]
    b = [fuzz_events.mutate(rng_b, samples) for _ in range(200)]
    assert a == b and a[0] == first[0]
