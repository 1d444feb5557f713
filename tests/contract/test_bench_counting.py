"""`make bench`'s counting rules, held on tiny runs so the benchmark cannot silently rot (tests/benchmarks/).

The figures themselves move as Bakery changes; what must not move is how they are counted: the deployment's
bus setup and the operator's own tag are never Bakery's calls, every call is attributed to exactly one
invocation, the per-action and per-function breakdowns add up to the total, an idle deployment costs exactly
what the sweep's schedule says, and "met" is computed from the measurement.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bakery.stages import sweep
from tests.benchmarks import bench, bench_pipeline
from tests.benchmarks.profile_fleet import fleet_scenario


@pytest.fixture(scope="module")
def clean() -> dict:
    return bench_pipeline.run_bake(fleet_scenario(1, None, seed=1), window=True)


def test_a_clean_bake_counts_only_bakerys_own_calls(clean: dict) -> None:
    assert clean["problems"] == [] and clean["ready"] == 1
    setup = clean["excluded"]["setup"]
    assert setup and all(action.endswith("EventBus") for action in setup), setup  # the deploy step's buses only
    assert clean["excluded"]["operator_calls"] == 1  # the operator's TagResources, outside every invocation
    outside = sum(setup.values()) + clean["excluded"]["operator_calls"]
    assert clean["calls"] + clean["trailing_idle_calls"] == clean["cloud_total_calls"] - outside
    assert sum(clean["calls_by_action"].values()) == clean["calls"]
    assert sum(clean["calls_by_function"].values()) == clean["calls"]
    assert clean["calls_by_action"].get("CreateImage") == 1
    assert clean["fc_invocations"] == sum(clean["fc_invocations_by_function"].values()) >= 1
    # The window ends with the last invocation that did work: nothing after it but read-only sweeps.
    assert clean["sweeps"] >= 1 and clean["overhead_seconds"]["max"] >= 0


def test_a_bake_ends_with_its_last_invocation_that_did_work() -> None:
    def delivery(kind: str, **calls: int) -> SimpleNamespace:
        return SimpleNamespace(event_type=kind, function="f", outcome="ok", api_calls=calls)

    deliveries = [delivery("ecs:ActionTrail:ApiCall", DescribeInstances=1, CreateImage=1),
                  delivery("timer", DescribeImages=1), delivery("timer", TagResources=1),
                  delivery("timer", DescribeImages=2), delivery("timer")]  # fmt: skip
    run = SimpleNamespace(runtime=SimpleNamespace(deliveries=deliveries),
                          cloud=SimpleNamespace(calls={"CreateEventBus": 2, "TagResources": 2, "DescribeImages": 3,
                                                       "DescribeInstances": 1, "CreateImage": 1}))  # fmt: skip
    counted = bench_pipeline.count(run, {"CreateEventBus": 2}, 1, window=True)
    assert counted["counting_problems"] == []  # 9 calls = 2 setup + 1 operator + 6 in invocations
    assert counted["calls"] == 4 and counted["trailing_idle_calls"] == 2  # the write sweep closes the window
    assert counted["calls_by_function"] == {"f": 2, "sweep": 2} and counted["fc_invocations"] == 1
    assert bench_pipeline.count(run, {"CreateEventBus": 2}, 0, window=False)["counting_problems"]  # 1 unexplained


def test_an_idle_hour_costs_what_the_sweep_schedule_says() -> None:
    idle = bench_pipeline.idle(60)
    assert idle["problems"] == [] and idle["fc_invocations"] == 0
    minutes = idle["sweep_minutes"]
    assert len(minutes) == idle["sweeps"] == 60 and minutes == list(range(minutes[0], minutes[0] + 60))
    # one call (a page) per query; adoption is on by default (BAKERY_ADOPT_IMAGES=tag: one query)
    assert idle["calls"] == sum(len(sweep.schedule(m, adopting=True)) for m in minutes)
    assert idle["calls_per_day"] == idle["calls"] * 24
    assert idle["excluded"]["operator_calls"] == 0


def test_sweeps_with_bakes_in_flight_are_counted_one_by_one() -> None:
    held = bench_pipeline.sweeps_in_flight(2, minutes=15)
    assert held["problems"] == [] and held["other_invocations"] == 0
    assert len(held["per_sweep"]) == 15 and held["max"] == max(held["per_sweep"])
    assert sum(held["calls_by_action"].values()) == sum(held["per_sweep"])
    # Two bakes fit one page of every query: each sweep makes exactly the queries its minute schedules.
    assert held["per_sweep"] == [len(sweep.schedule(m, adopting=True)) for m in held["sweep_minutes"]]


def test_met_is_computed_from_the_measurement() -> None:
    goal = bench.GOALS["clean_bake"]
    assert goal.row(goal.limit)["met"] is True
    assert goal.row(goal.limit + 1)["met"] is False
    assert goal.row(None)["met"] is None
    assert bench.GOALS["sweep_1000"].limit == 22 and bench.GOALS["sweep_0"].limit == 2
    rendered = bench.table([goal.row(30), bench.GOALS["wall_200"].row(None, "skipped")])
    assert "NO" in rendered and "skipped" in rendered


def test_the_fault_run_uses_the_chaos_storm() -> None:
    faulted = bench_pipeline.with_faults(fleet_scenario(1, None), {"CreateImage"})
    storm = [f for f in faulted.faults if "action" in f]
    assert storm and all(f["probability"] == 0.1 and f["code"] == "ServiceUnavailable" for f in storm)
    # localcloud decides an event's fate by the last matching entry that fires: the effective rates are the issue's.
    fates = {"drop": 0.0, "duplicate": 0.0}
    for entry in (f for f in faulted.faults if "events" in f):
        fates = {mode: p * (1 - entry["probability"]) for mode, p in fates.items()}
        fates[entry["events"]] += entry["probability"]
    assert fates == pytest.approx({"duplicate": 0.5, "drop": 0.2})
