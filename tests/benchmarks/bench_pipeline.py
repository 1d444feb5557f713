"""Pipeline benchmark: what Bakery's functions cost in API calls and FC invocations, measured on local runs.

Counting rules (`COUNTING_RULES`, also written into bench.json):

- **calls** are the API calls Bakery's functions make (ECS, OOS, EventBridge PutEvents), each attributed to the
  FC invocation that made it: the local FC runtime records per delivery the cloud's call counter before and
  after the invocation (`localcloud.fc.deliveries.Delivery.api_calls`; one invocation runs at a time). A call
  that fails (5xx, throttled) is still a call. Nothing made outside an invocation is Bakery's: not the local
  run's one-time deployment setup (the event buses `ensure_buses` creates before the first tag) and not the
  operator's own tagging call (with its retries under faults). Every measurement checks that the attributed
  calls plus the setup plus the operator's calls add up to the cloud's own total.
- **one bake** (the single-instance runs): every invocation from the operator's tag through the last one that
  did work — an event-driven delivery, or a sweep that made a write call (anything but Describe*/List*/Get*).
  Sweeps after that are what an idle deployment costs anyway: reported as `trailing_idle_calls`, not counted.
- **a fleet**: every call of the whole run (tag to settled, trailing idle sweeps included) / bakes ready.
  The 1,000-instance fleet runs in its own process (`profile_fleet.measure_fleet`), which returns the cloud's
  total only: its Bakery calls are that total minus the setup and the operator's N tags — the same figure
  the in-process fleets compute both ways, which the benchmark checks is equal.
- **FC invocations per bake**: event-driven deliveries (every attempt, retries included) in the bake's
  window; timer sweeps excluded.
- **idle**: a deployment with nothing to bake, run for one whole simulated day (1,440 sweeps), counted directly.
- **calls per sweep with k in flight**: k instances tagged with 2,000 GiB system disks (their images stay
  Creating for hours; `bakery:skip-guest-checks` keeps the setup short), then one simulated hour of sweeps —
  a whole number of the sweep's cycles for any cycle that divides an hour — each sweep's calls counted; max
  and mean over the hour (the goal is judged on the max). The run is in a fresh process, whose peak RSS is
  the one with k bakes in flight.
- **overhead per bake**: simulated seconds from the tag to `bakery:Image:Ready` minus the cloud's own work
  (image creation at 10 s/GiB + max(Usable 30 s, check 300 s)). Makespan limit of a fleet: N / CreateImage
  rate + one image's own work.
- **the fault run**: the clean bake, the repair and the 40-instance fleet again under the chaos suite's storm
  (5xx at 10% on every action Bakery calls) and localcloud's event faults (50% duplicated, 20% dropped),
  watched and judged by the chaos harness's observer and invariants; counted as their clean runs were and
  compared with them. Every bake must still end ready.
- **met** is `measured <= the goal's limit`, computed by bench.py from the measurement; a goal unmet never
  fails the benchmark, a broken run (a bake not ready, `LocalRun.problems()`, calls that do not add up) does.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from bakery import tags
from bakery_tools.local import LocalRun
from localcloud import Scenario
from tests.benchmarks.profile_fleet import TIMINGS, fleet_scenario

ROOT = Path(__file__).resolve().parents[2]
COUNTING_RULES = [
    " ".join(rule.replace("**", "").split()) for rule in __doc__.split("Counting rules")[1].split("\n- ")[1:]
]
READ_PREFIXES = ("Describe", "List", "Get")  # Alibaba's read actions; anything else changes something
RATE_LIMIT = 5.0  # CreateImage calls per simulated second, in every fleet
DISK_GIB = 40  # fleet_scenario's system disk
IN_FLIGHT_DISK_GIB = 2000  # 20,000 s Creating: far longer than the hour measured
REPAIR_ITEMS = ["Nvme"]  # the guest check failure the repair run has (ACS-ECS-RepairImage fixes it)
FAULTS = {"5xx_probability": 0.1, "5xx_code": "ServiceUnavailable", "duplicate": 0.5, "drop": 0.2}
_CHILD_FLAG = "--child-in-flight"


def cloud_work_seconds(disk_gib: int = DISK_GIB) -> float:
    """The cloud's own work for one image: creation, then the check (which starts at Available, outlasts Usable)."""
    return disk_gib * TIMINGS["image_seconds_per_gib"] + max(TIMINGS["usable_seconds"], TIMINGS["check_seconds"])


# -- scenarios ---------------------------------------------------------------------------------------------


def repair_scenario(seed: int = 1) -> Scenario:
    """fleet_scenario's one instance, with a guest whose image check fails on an item repair fixes."""
    scenario = fleet_scenario(1, None, seed=seed)
    (spec,) = scenario.instances
    spec.guest = dataclasses.replace(spec.guest, check_failures=list(REPAIR_ITEMS))
    return scenario


def in_flight_scenario(k: int, seed: int = 3) -> Scenario:
    """k bakes that stay in flight: fleet_scenario's fleet with 2,000 GiB disks and the guest checks skipped."""
    scenario = fleet_scenario(k, None, seed=seed, fit_quotas=True)
    for spec in scenario.instances:
        spec.disks = [dataclasses.replace(d, size=IN_FLIGHT_DISK_GIB) for d in spec.disks]
    for action in scenario.actions:
        action["tag"]["tags"][tags.SKIP_GUEST_CHECKS] = "true"
    return scenario


def with_faults(scenario: Scenario, actions: set[str]) -> Scenario:
    """The scenario under the chaos suite's storm (tests/chaos/strategies.py: 5xx on every action it names, and
    every action the clean runs saw Bakery call) plus localcloud's event faults. An event's fate is decided by
    the last matching entry that fires (localcloud/faults.py), so drop at 0.4 then duplicate at 0.5 make each
    event duplicated with probability 0.5 and dropped with 0.2 (0.4 x 0.5), as FAULTS says."""
    from tests.chaos.strategies import FAULTABLE_ACTIONS

    storm = [{"action": a, "code": FAULTS["5xx_code"], "probability": FAULTS["5xx_probability"]}
             for a in sorted(set(FAULTABLE_ACTIONS) | actions)]  # fmt: skip
    drop = FAULTS["drop"] / (1 - FAULTS["duplicate"])
    events = [{"events": "drop", "probability": drop}, {"events": "duplicate", "probability": FAULTS["duplicate"]}]
    return dataclasses.replace(scenario, faults=[*scenario.faults, *storm, *events])


# -- counting ------------------------------------------------------------------------------------------------


def _sum(counters: Any) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return dict(sorted(total.items()))


def _did_work(delivery: Any) -> bool:
    return delivery.event_type != "timer" or any(not a.startswith(READ_PREFIXES) for a in delivery.api_calls)


def count(run: LocalRun, setup: dict[str, int], operator_calls: int | None, *, window: bool) -> dict[str, Any]:
    """Bakery's calls and invocations in `run` (see the counting rules). `operator_calls`: how many calls the
    operator made (its tags), checked against what the invocations leave unattributed; None: not known (faults
    retried some), reported as what is left."""
    deliveries = list(run.runtime.deliveries)
    counted = deliveries
    if window:
        last = max((n for n, d in enumerate(deliveries) if _did_work(d)), default=-1)
        counted = deliveries[: last + 1]
    by_action = _sum(d.api_calls for d in counted)
    events = [d for d in counted if d.event_type != "timer" and d.outcome != "expired"]  # expired: never invoked
    by_function: Counter[str] = Counter()
    for d in counted:
        by_function["sweep" if d.event_type == "timer" else d.function] += sum(d.api_calls.values())
    total = sum(run.cloud.calls.values())
    attributed = sum(sum(d.api_calls.values()) for d in deliveries)
    outside = total - sum(setup.values()) - attributed
    problems = []
    if operator_calls is not None and outside != operator_calls:
        problems.append(f"counting: {outside} calls made outside any invocation besides the setup, expected the "
                        f"operator's {operator_calls}")  # fmt: skip
    return {
        "calls": sum(by_action.values()),
        "calls_by_action": by_action,
        "calls_by_function": dict(sorted(by_function.items())),
        "fc_invocations": len(events),
        "fc_invocations_by_function": dict(sorted(Counter(d.function for d in events).items())),
        "sweeps": sum(1 for d in counted if d.event_type == "timer"),
        "trailing_idle_calls": attributed - sum(by_action.values()),
        "excluded": {"setup": setup, "operator_calls": outside},
        "cloud_total_calls": total,
        "counting_problems": problems,
    }  # fmt: skip


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _overheads(run: LocalRun, disk_gib: int = DISK_GIB) -> tuple[list[float], float | None]:
    """Per ready bake: tag → its first Image:Ready, minus the cloud's own work; and the makespan: first tag →
    last Ready (simulated seconds)."""
    start = run.cloud.clock.start
    tagged = {a["tag"]["instance"]: start + float(a.get("at", 0)) for a in run.scenario.actions}
    ready: dict[str, float] = {}
    for event in run.bakery_events():
        data = event.get("data") or {}
        if event.get("type") == "bakery:Image:Ready" and data.get("instanceId") in tagged:
            ready.setdefault(data["instanceId"], _epoch(event["time"]))
    overheads = [round(at - tagged[i] - cloud_work_seconds(disk_gib), 1) for i, at in sorted(ready.items())]
    makespan = round(max(ready.values()) - min(tagged.values()), 1) if ready else None
    return overheads, makespan


def _outcome(run: LocalRun, report: dict[str, Any]) -> dict[str, Any]:
    states = Counter(b["state"] for b in report["bakes"])
    problems = run.problems(report)
    triggered = len(report.get("triggers") or [])
    if states.get("ready", 0) != triggered:
        problems.append(f"expected {triggered} bakes ready, got {dict(states)}")
    return {"bakes": len(report["bakes"]), "ready": states.get("ready", 0), "failed": states.get("failed", 0),
            "outcome": report.get("outcome"), "simulated_seconds": report["simulated_seconds"],
            "deliveries": report["deliveries"], "problems": list(dict.fromkeys(problems))}  # fmt: skip


def run_bake(scenario: Scenario, *, window: bool, faulted: bool = False, overhead: bool = True) -> dict[str, Any]:
    """One local run to the end: its outcome (problems: any reason its figures mean nothing) and its counts."""
    started = time.perf_counter()
    with LocalRun(scenario) as run:
        setup = dict(run.cloud.calls)  # before the first tag: the deployment's bus setup, nothing else
        if faulted:  # the chaos harness's observer: what was injected, and its checks after the run
            from tests.chaos.harness import Observed, _instrument
            from tests.chaos.invariants import violations

            observed = Observed()
            _instrument(run, observed, [], scenario.seed)
        report = run.run()
        wall = time.perf_counter() - started
        result = _outcome(run, report)
        if faulted:
            result["problems"] = list(dict.fromkeys(result["problems"] + violations(run, report, observed)))
            result["faults_injected"] = dict(sorted(observed.faults.items()))
        counts = count(run, setup, None if faulted else len(scenario.actions), window=window)
        overheads, makespan = _overheads(run)
    result["problems"] += counts.pop("counting_problems")
    ready = max(result["ready"], 1)
    return {
        **result,
        **counts,
        "calls_per_ready_bake": round(counts["calls"] / ready, 2),
        "fc_invocations_per_ready_bake": round(counts["fc_invocations"] / ready, 2),
        # A repair's own cloud work (the OOS execution, a second image and check) is not in the formula.
        "overhead_seconds": _spread(overheads) if overhead else None,
        "makespan_seconds": makespan,
        "wall_seconds": round(wall, 2),
    }


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 1), "max": max(values), "min": min(values)}


# -- the measurements ------------------------------------------------------------------------------------------


def clean_bake() -> dict[str, Any]:
    return run_bake(fleet_scenario(1, None, seed=1), window=True)


def repair_bake() -> dict[str, Any]:
    result = run_bake(repair_scenario(), window=True, overhead=False)
    if not result["problems"] and result["calls_by_action"].get("StartExecution", 0) < 1:
        result["problems"].append("the repair run ran no ACS-ECS-RepairImage: it measured no repair")
    return result


def fleet(n: int, rate_limit: float = RATE_LIMIT) -> dict[str, Any]:
    """N instances, one family, CreateImage limited: whole-run counts per ready bake, overhead, makespan."""
    result = run_bake(fleet_scenario(n, rate_limit, fit_quotas=True), window=False)
    limit = n / rate_limit + cloud_work_seconds()
    return {"instances": n, "create_image_rate_limit": rate_limit, **result, "makespan_limit_seconds": limit}


def fleet_in_own_process(n: int, setup_calls: int, rate_limit: float = RATE_LIMIT) -> dict[str, Any]:
    """profile_fleet.measure_fleet (a fresh interpreter: wall time, peak RSS); Bakery's calls by subtraction."""
    from tests.benchmarks.profile_fleet import measure_fleet

    try:
        measured = measure_fleet(n, rate_limit, fit_quotas=True)
    except RuntimeError as exc:
        return {"instances": n, "problems": [str(exc).splitlines()[0]]}
    problems = []
    if measured["ready"] != n or measured.get("outcome") != "settled":
        problems.append(
            f"fleet of {n}: {measured['ready']}/{measured['bakes']} ready, outcome {measured.get('outcome')}"
        )
    calls = measured["api_calls"] - setup_calls - n  # the operator tags each instance once (no faults here)
    return {**measured, "calls": calls, "calls_per_ready_bake": round(calls / max(measured["ready"], 1), 2),
            "problems": problems}  # fmt: skip


def idle(minutes: int = 1440) -> dict[str, Any]:
    """A deployment with nothing to bake, for `minutes` of simulated time: every call is a sweep's."""
    with LocalRun(fleet_scenario(0, None, seed=1)) as run:
        setup = dict(run.cloud.calls)
        run.runtime.run_until(run.cloud.clock.now + minutes * 60)
        counts = count(run, setup, 0, window=False)
        per_sweep = [sum(d.api_calls.values()) for d in run.runtime.deliveries if d.event_type == "timer"]
        minutes_fired = [int(_epoch(d.simulated_time) // 60) for d in run.runtime.deliveries]
    problems = counts.pop("counting_problems")
    if counts["fc_invocations"]:
        problems.append(f"idle run: {counts['fc_invocations']} event-driven invocations with nothing to bake")
    return {"minutes": minutes, **counts, "calls_per_day": round(counts["calls"] * 1440 / minutes, 1),
            "per_sweep_max": max(per_sweep, default=0), "sweep_minutes": minutes_fired, "problems": problems}  # fmt: skip


def sweeps_in_flight(k: int, minutes: int = 60) -> dict[str, Any]:
    """k bakes held in flight, then `minutes` of sweeps, each one's calls counted (this process)."""
    started = time.perf_counter()
    problems: list[str] = []
    with LocalRun(in_flight_scenario(k)) as run:
        for action in run.scenario.actions:
            run.apply(action)
        clock, ecs = run.cloud.clock, run.cloud.ecs

        def creating() -> int:
            return sum(
                1 for i in ecs.images.values() if i.tags.get(tags.IN_FLIGHT) == "true" and i.status == "Creating"
            )

        deadline = clock.now + 3600
        while creating() < k and clock.now < deadline:
            run.runtime.run_until(clock.now + 60)
        run.runtime.drain()
        first = len(run.runtime.deliveries)
        run.runtime.run_until(clock.now + minutes * 60)
        held = creating()
        window = run.runtime.deliveries[first:]
        sweeps = [d for d in window if d.event_type == "timer"]
        per_sweep = [sum(d.api_calls.values()) for d in sweeps]
        by_action = _sum(d.api_calls for d in sweeps)
        others = sum(1 for d in window if d.event_type != "timer")
    if held != k:
        problems.append(f"in-flight run: {held} of {k} images Creating through the hour measured")
    if len(sweeps) != minutes:
        problems.append(f"in-flight run: {len(sweeps)} sweeps in {minutes} minutes")
    return {
        "in_flight": k,
        "minutes": minutes,
        "per_sweep": per_sweep,
        "sweep_minutes": [int(_epoch(d.simulated_time) // 60) for d in sweeps],
        "max": max(per_sweep, default=0),
        "mean": round(statistics.fmean(per_sweep), 3) if per_sweep else 0.0,
        "calls_by_action": by_action,
        "other_invocations": others,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "problems": problems,
    }


def sweeps_in_flight_in_own_process(k: int, minutes: int = 60) -> dict[str, Any]:
    """sweeps_in_flight in a fresh interpreter, whose peak RSS is then the one of k bakes in flight."""
    done = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_pipeline", _CHILD_FLAG, str(k), str(minutes)],
                          cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        return {"in_flight": k, "problems": [f"in-flight run of {k} failed (exit {done.returncode}): "
                                             f"{done.stderr.strip().splitlines()[-1:]}"]}  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def fault_run(
    name: str, scenario: Scenario, clean: dict[str, Any], actions: set[str], *, window: bool
) -> dict[str, Any]:
    """`scenario` under FAULTS, counted as its clean run `clean` was (same `window` rule): every bake must finish."""
    result = run_bake(with_faults(scenario, actions), window=window, faulted=True, overhead=False)
    base = clean["calls_per_ready_bake"]
    return {"scenario": name, "clean_calls_per_ready_bake": base,
            "ratio_to_clean": round(result["calls_per_ready_bake"] / base, 2) if base else None, **result}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == _CHILD_FLAG:  # the measured process: one line of JSON on stdout
        result = sweeps_in_flight(int(argv[1]), int(argv[2]))
        result["peak_rss_mb"] = _peak_rss_mb()
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    print("the pipeline figures are part of `make bench`: python -m tests.benchmarks.bench [--quick]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
