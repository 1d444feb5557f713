"""Runs one chaos case (tests/chaos/strategies.py) through `LocalRun` and records what was injected.

What the scenario cannot say is done here, around the run:
- Bake:Requested events (instances, and bakes from operator snapshots taken just before) via the real
  EventBridge SDK, as a tool would;
- events delayed (held N simulated seconds) or reordered (held until the next event on the bus passed, at
  most 60 s) in transit, by wrapping the event hub's publish;
- an observer of every publish, ahead of localcloud's drop/duplicate faults: it records every bake id Bakery
  claims (from the instances' tags at each TagResources) and every Ready/Failed event Bakery published, even
  one a fault then lost in transit, so "every bake ended with an outcome" does not depend on delivery.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bakery import tags
from bakery.errors import is_throttling
from bakery_tools.local import LocalRun
from localcloud import Scenario

REORDER_MAX_HOLD_S = 60.0
OPERATOR_RETRIES = 20


@dataclass
class Observed:
    """What the harness saw happen during one run."""

    claimed: dict[str, str] = field(default_factory=dict)  # bake id → instance id (from bakery:bake-id tags)
    outcomes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # bake id → Ready/Failed data
    faults: Counter[str] = field(default_factory=Counter)  # kind → count
    faults_by_action: Counter[str] = field(default_factory=Counter)  # "Action:Code" / "events:mode:type"
    snapshot_bakes: list[dict[str, Any]] = field(default_factory=list)  # {snapshotIds, family}
    requested: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    case: dict[str, Any]
    report: dict[str, Any]
    observed: Observed
    violations: list[str]
    wall_seconds: float
    deliveries: dict[str, Any]


def split_case(case: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scenario mapping, chaos extras); the case itself is left untouched."""
    scenario = copy.deepcopy(case)
    chaos = scenario.pop("chaos", None) or {}
    return scenario, chaos


def run_case(case: dict[str, Any]) -> CaseResult:
    """Build the region, run the case to its end, check the invariants. Never raises for a broken promise:
    the violations are returned (a harness error -- an invalid case, an operator call that kept failing --
    does raise)."""
    from tests.chaos.invariants import violations

    scenario_map, chaos = split_case(case)
    started = time.perf_counter()
    observed = Observed()
    run = LocalRun(Scenario.from_mapping(scenario_map, source="<chaos case>"), env=dict(chaos.get("env") or {}))
    try:
        _instrument(run, observed, chaos.get("event_faults") or [], scenario_map.get("seed", 0))
        _operator_requests(run, observed, chaos)
        _schedule_fuzz(run, observed, chaos.get("fuzz_events") or [])
        report = run.run()
        found = violations(run, report, observed)
        summary = run.runtime.summary()
        deliveries = {k: summary[k] for k in ("deliveries", "retries", "dead_letters", "errors")}
    finally:
        run.close()
    return CaseResult(case, report, observed, found, time.perf_counter() - started, deliveries)


# -- instrumentation -----------------------------------------------------------------------------------


def _instrument(run: LocalRun, observed: Observed, harness_faults: list[dict[str, Any]], seed: int) -> None:
    cloud = run.cloud
    hub = cloud.events
    plan = cloud.faults
    rng = random.Random(f"chaos-events/{seed}")  # apart from the cloud's RNG: ids must not shift
    original_publish = hub.publish
    original_copies = plan.copies_of_event
    original_before_call = plan.before_call
    held_for_reorder: list[tuple[dict[str, Any], str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        kind = event.get("type", "")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        if kind in ("bakery:Image:Ready", "bakery:Bake:Failed") and event.get("source") == "bakery":
            bake_id = data.get("bakeId")
            if isinstance(bake_id, str):
                observed.outcomes.setdefault(bake_id, []).append({"type": kind, **data})
        if kind == "ecs:ActionTrail:ApiCall" and data.get("eventName") == "TagResources":
            for instance in cloud.ecs.instances.values():
                bake_id = instance.tags.get(tags.BAKE_ID)
                if bake_id:
                    observed.claimed.setdefault(bake_id, instance.instance_id)

    def deliver(event: dict[str, Any], bus: str) -> int:
        return original_publish(event, bus)

    def release_reordered() -> None:
        while held_for_reorder:
            event, bus, timer = held_for_reorder.pop(0)
            if timer is not None:
                cloud.clock.cancel(timer)
            deliver(event, bus)

    def publish(event: dict[str, Any], bus: str = "default") -> int:
        observe(event)
        kind = event.get("type", "")
        for fault in harness_faults:
            if fault.get("type") and fault["type"] != kind:
                continue
            if rng.random() >= float(fault.get("probability", 1.0)):
                continue
            mode = fault["events"]
            observed.faults[mode] += 1
            observed.faults_by_action[f"events:{mode}:{kind}"] += 1
            if mode == "delay":
                cloud.clock.call_later(float(fault.get("seconds", 60)), lambda e=event, b=bus: deliver(e, b),
                                       f"chaos-delay:{kind}")  # fmt: skip
                return 1
            # reorder: held until the next event has gone ahead of it (at most REORDER_MAX_HOLD_S). Events
            # held before this one go out first: this one has overtaken nothing yet.
            release_reordered()
            timer = cloud.clock.call_later(REORDER_MAX_HOLD_S, release_reordered, f"chaos-reorder:{kind}")
            held_for_reorder.append((event, bus, timer))
            return 1
        copies = deliver(event, bus)
        release_reordered()  # the event that overtook them is in: the held ones follow it
        return copies

    def copies_of_event(event_type: str) -> int:
        copies = original_copies(event_type)
        if copies != 1:
            mode = "drop" if copies == 0 else "duplicate"
            observed.faults[mode] += 1
            observed.faults_by_action[f"events:{mode}:{event_type}"] += 1
        return copies

    def before_call(action: str) -> tuple[Any, int]:
        error, latency = original_before_call(action)
        if latency:
            observed.faults["latency"] += 1
        if error is not None:
            kind = "throttling" if is_throttling(error.code) else "5xx" if error.status >= 500 else "4xx"
            observed.faults[kind] += 1
            observed.faults_by_action[f"{action}:{error.code}"] += 1
        return error, latency

    hub.publish = publish  # type: ignore[method-assign]
    plan.copies_of_event = copies_of_event  # type: ignore[method-assign]
    plan.before_call = before_call  # type: ignore[method-assign]
    for spec in run.scenario.instances:
        if spec.create_image_failures:
            observed.faults["create_failed_scheduled"] += spec.create_image_failures


def _schedule_fuzz(run: LocalRun, observed: Observed, entries: list[dict[str, Any]]) -> None:
    """Foreign or malformed events straight onto the bakery bus at their times (anyone may PutEvents there;
    the publish skips PutEvents' own faults: the point is what Bakery does with the event)."""
    cloud = run.cloud
    for n, entry in enumerate(entries):

        def publish(entry: dict[str, Any] = entry, n: int = n) -> None:
            event = cloud.events.envelope(source="bakery", event_type=entry["type"], subject="fuzz",
                                          data=entry["data"], bus="bakery", event_id=f"fuzz-{n}")  # fmt: skip
            cloud.events.publish(event, "bakery")

        observed.faults["fuzz_event"] += 1
        cloud.clock.call_later(float(entry.get("at", 0)), publish, f"chaos-fuzz:{n}")


# -- operator requests -----------------------------------------------------------------------------------


def _with_retries(run: LocalRun, what: str, call: Any) -> Any:
    """An operator's call, retried a second later when throttled or 5xx (as a person or a tool would)."""
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    for attempt in range(OPERATOR_RETRIES):
        try:
            return call()
        except AlibabaCloudException as exc:
            transient = is_throttling(exc.code or "") or (getattr(exc, "status_code", 0) or 0) >= 500
            if not transient or attempt == OPERATOR_RETRIES - 1:
                raise RuntimeError(f"chaos harness: operator call {what} failed: {exc.code}: {exc}") from None
            run.runtime.run_until(run.cloud.clock.now + 1)
    raise AssertionError("unreachable")


def _put_request(run: LocalRun, data: dict[str, Any], event_id: str) -> None:
    from alibabacloud_eventbridge20200401 import models as eb

    entry = eb.PutEventsRequestEventList(
        id=event_id, source="bakery", type="bakery:Bake:Requested", subject=data.get("instanceId", ""),
        spec_version="1.0", data_content_type="application/json", data=json.dumps(data),
    )  # fmt: skip
    request = eb.PutEventsRequest(event_bus_name="bakery", event_list=[entry])

    def put() -> None:
        body = run.cloud_env.eventbridge.put_events(request).body
        if body.data.failed_entry_count:
            raise RuntimeError(f"chaos harness: PutEvents refused the request: {body.to_map()}")

    _with_retries(run, "PutEvents", put)


def _operator_requests(run: LocalRun, observed: Observed, chaos: dict[str, Any]) -> None:
    from alibabacloud_ecs20140526 import models as m

    ecs, region = run.cloud_env.ecs, run.cloud.region
    # What a snapshot bake request needs on each snapshot (`bakery bake --snapshots` tags them so).
    opt_in = [m.CreateSnapshotRequestTag(key=tags.ALLOW_REQUESTS, value="true")]
    for bake in chaos.get("snapshot_bakes") or []:
        ids = []
        for instance_id, disk_type in bake["sources"]:
            disks = _with_retries(run, "DescribeDisks", lambda i=instance_id: ecs.describe_disks(
                m.DescribeDisksRequest(region_id=region, instance_id=i)).body.disks.disk)  # fmt: skip
            disk = next(d for d in disks if d.type == disk_type)
            # Tagged with the opt-in a snapshot bake request needs (what `bakery bake --snapshots` does).
            ids.append(_with_retries(run, "CreateSnapshot", lambda d=disk, i=instance_id: ecs.create_snapshot(
                m.CreateSnapshotRequest(disk_id=d.disk_id, snapshot_name=f"op-{i}", tag=opt_in)).body.snapshot_id))  # fmt: skip
        run.runtime.run_until(run.cloud.clock.now + 200)  # snapshots at 1 s/GiB: accomplished
        run.initial_snapshots |= set(ids)  # the operator's: not Bakery's to clean up
        data = {"snapshotIds": ids, **({"family": bake["family"]} if bake.get("family") else {})}
        observed.snapshot_bakes.append(data)
        _put_request(run, data, f"op-snapshots-{len(observed.snapshot_bakes)}")
    for instance_id in chaos.get("requests") or []:
        observed.requested.append(instance_id)
        _put_request(run, {"instanceId": instance_id}, f"op-request-{instance_id}")
