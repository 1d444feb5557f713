"""EventBridge delivers at least once, sometimes more, sometimes never: one image per bake regardless,
and the timer sweep finishes whatever a lost event should have moved on."""

from __future__ import annotations

from collections import Counter

import pytest

from bakery import tags
from tests.e2e.conftest import trigger

# A bake through every path: plain, stop-first (stop → Stopped event → CreateImage → start), and a failed
# check repaired by ACS-ECS-RepairImage.
INSTANCES = [
    {"id": "i-plain"},
    {"id": "i-stop"},
    {"id": "i-fix", "guest": {"check_failures": ["Nvme"]}},
]
ACTIONS = [
    trigger("i-plain", family="fleet"),
    trigger("i-stop", family="fleet", stop_first="true"),
    trigger("i-fix", family="fleet"),
]


def deliver_every_event_three_times(run):
    """What "three times" means here: every event published on any bus (ECS's ActionTrail, snapshot,
    state-change and Cloud Assistant events on the default bus, and Bakery's own PutEvents on the `bakery`
    bus) is appended to the bus three times, so each matching trigger/rule invokes its function three
    times with the same event id. The scenario's `{events: duplicate, probability: 1}` fault makes two
    copies of each publish; this adds the third on top of it (a dropped event stays dropped)."""
    twice = run.cloud.faults.copies_of_event
    run.cloud.faults.copies_of_event = lambda event_type: twice(event_type) + 1 if twice(event_type) else 0
    run.tripled_from = run.cloud.events.cursor  # the deployment's own events (CreateEventBus) came before


def assert_everything_finished(baked):
    for instance_id in ("i-plain", "i-stop", "i-fix"):
        result = baked.bake_of(instance_id)
        assert result["state"] == "ready", result
        assert baked.assert_released(instance_id)[tags.LAST_IMAGE] == result["imageId"]
        assert baked.status(instance_id) == "Running"
    # exactly one image per bake is left, and the family holds them all
    assert len(baked.images()) == 3
    assert {i.image_id for i in baked.images(image_family="fleet")} == {b["imageId"] for b in baked.report["bakes"]}
    assert baked.bake_of("i-fix")["attempts"] == 2


def test_every_event_delivered_three_times_makes_one_image_per_bake(bake):
    # Given three bakes (plain, stop-first, repaired) in a region where every event arrives three times
    scenario = {
        "seed": 11,
        "faults": [{"events": "duplicate", "probability": 1}],
        "instances": INSTANCES,
        # When the instances are tagged
        "actions": ACTIONS,
    }
    baked = bake(scenario, before_run=deliver_every_event_three_times)

    # Then each event really reached the buses three times, and each function saw each copy
    copies = Counter(e.event["id"] for e in baked.run.cloud.events.read(baked.run.tripled_from))
    assert copies and all(n % 3 == 0 for n in copies.values()), copies
    operator_tags = baked.deliveries(function="bakery-bake", event_type="ecs:ActionTrail:ApiCall")
    per_event = Counter(d.event_id for d in operator_tags)
    assert per_event and set(per_event.values()) == {3}

    # ... and still: three bakes, three images, one CreateImage call per bake (copies stop before the API),
    # one stop and one start, one repair
    assert len(baked.report["bakes"]) == 3
    assert_everything_finished(baked)
    assert baked.calls("CreateImage") == 3
    assert baked.calls("StopInstance") == baked.calls("StartInstance") == 1
    assert baked.calls("StartExecution") == 1
    # ... without a single failed invocation (a copy racing ahead of the instance's state is a no-op)
    assert baked.report["deliveries"]["errors"] == 0
    assert baked.report["deliveries"]["dead_letters"] == 0
    for kind in ("bakery:Image:Ready", "bakery:Image:CheckFailed", "bakery:Image:RepairStarted"):
        published = {e["id"] for e in baked.events(kind)}
        assert len(published) == (3 if kind == "bakery:Image:Ready" else 1), (kind, published)


DROPPED = [
    "ecs:ActionTrail:ApiCall",  # the operator's TagResources: nothing starts the bake but the sweep
    "ecs:CloudAssistant:TaskCompleted",  # the preflight's end
    "ecs:Instance:StateChange",  # the stop-first instance reaching Stopped
    "ecs:Snapshot:CreateSnapshotCompleted",  # the check's fast path
    "bakery:Image:CreationStarted",  # Bakery's own hand-off from bake to check
    "bakery:Image:CheckFailed",  # check → repair
    "bakery:Image:Repaired",  # repair → check
]


@pytest.mark.parametrize("event_type", DROPPED)
def test_dropped_events_are_made_up_for_by_the_sweep(bake, event_type):
    # Given three bakes in a region that loses every event of one type
    scenario = {
        "seed": 12,
        "faults": [{"events": "drop", "probability": 1, "type": event_type}],
        "instances": INSTANCES,
        # When the instances are tagged
        "actions": ACTIONS,
    }
    baked = bake(scenario)

    # Then no function ever received that event ...
    assert baked.deliveries(event_type=event_type) == []
    # ... yet the timer sweep finished every bake, with one image each
    assert any(d.event_type == "timer" for d in baked.deliveries(function="bakery-check"))
    assert len(baked.report["bakes"]) == 3
    assert_everything_finished(baked)
    assert baked.report["deliveries"]["dead_letters"] == 0


def test_every_event_dropped_the_sweep_alone_finishes_every_bake(bake):
    # Given a region that loses every event, on every bus: no trigger ever fires and Bakery's own events
    # vanish (the report falls back on the tags Bakery keeps on the resources)
    scenario = {
        "seed": 13,
        "faults": [{"events": "drop", "probability": 1}],
        "instances": INSTANCES,
        # When the instances are tagged, and time goes on for three hours (with no events at all, the local
        # runtime cannot tell a busy region from an idle one, so the test keeps the clock running itself)
        "actions": ACTIONS,
    }
    baked = bake(scenario, settle_seconds=3 * 3600)

    # Then only the timer ever ran, and it baked everything: one ready image per instance, in the family
    assert {d.event_type for d in baked.run.runtime.deliveries} == {"timer"}
    assert sorted((b["instanceId"], b["state"]) for b in baked.report["bakes"]) == [
        ("i-fix", "ready"), ("i-plain", "ready"), ("i-stop", "ready")]  # fmt: skip
    images = baked.images(image_family="fleet")
    assert len(images) == len(baked.images()) == 3
    by_source = {baked.image_tags(i)[tags.SOURCE_INSTANCE]: i for i in images}
    assert set(by_source) == {"i-plain", "i-stop", "i-fix"}
    for instance_id, image in by_source.items():
        assert baked.image_tags(image)[tags.STATE] == tags.READY
        assert baked.failing_check_items(image) == []
        assert baked.assert_released(instance_id)[tags.LAST_IMAGE] == image.image_id
        assert baked.status(instance_id) == "Running"
    assert baked.image_tags(by_source["i-fix"])[tags.REPAIRS] == "1"
