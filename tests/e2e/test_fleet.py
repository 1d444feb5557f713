"""A fleet-wide bake against ECS's API rate limits: throttled steps are resumed by the sweep, nothing fails."""

from __future__ import annotations

import time

from bakery import tags
from tests.e2e.conftest import states, trigger

FLEET = [f"i-fleet{n:02d}" for n in range(50)]


def test_fifty_instances_under_a_create_image_rate_limit_all_become_ready(bake):
    # Given 50 instances in a region that allows 5 CreateImage calls per second
    scenario = {
        "seed": 14,
        "rate_limits": {"CreateImage": 5},
        "instances": [{"id": i} for i in FLEET],
        # When all 50 are tagged in the same second
        "actions": [trigger(i, family="fleet") for i in FLEET],
    }
    started = time.perf_counter()
    baked = bake(scenario)
    wall = time.perf_counter() - started

    # Then CreateImage was throttled (the limit did bite): the adapter waited what x-acs-retry-after asked and
    # retried, and what still did not fit was left to the sweep (throttling is flow control): no invocation
    # failed, none was retried by FC, nothing was dead-lettered
    assert baked.calls("CreateImage") > len(FLEET)
    assert baked.run.cloud.errors.get("CreateImage:Throttling", 0) > 0
    assert baked.report["deliveries"]["retries"] == 0 and baked.report["deliveries"]["errors"] == 0
    assert baked.run.runtime.dead_letters == []

    # ... and all 50 bakes are ready, none failed, one image each, all in the family
    assert states(baked.report) == {"ready": len(FLEET)}
    assert baked.events("bakery:Bake:Failed") == []
    family = baked.images(image_family="fleet")
    assert len(family) == len(baked.images()) == len(FLEET)
    assert {baked.image_tags(i)[tags.SOURCE_INSTANCE] for i in family} == set(FLEET)
    assert all(baked.failing_check_items(i) == [] for i in family)
    assert baked.newest_in_family("fleet") in {i.image_id for i in family}
    for instance_id in FLEET:
        assert baked.assert_released(instance_id)[tags.LAST_IMAGE] == baked.bake_of(instance_id)["imageId"]

    # ... in under an hour of simulated time, and quickly in real time (the suite budget is ~60 s)
    assert baked.report["simulated_seconds"] < 3600
    assert wall < 30, f"the fleet bake took {wall:.1f} s of wall time"


def test_the_sweep_costs_the_same_whatever_the_history_of_images(bake):
    # Given two quiet regions, one with 250 images Bakery promoted long ago (3 pages of them)
    history = [
        {"id": f"m-old{n:03d}", "family": "web", "tags": {tags.STATE: tags.READY, tags.BAKE_ID: f"b-old{n:03d}"},
         "check_failures": []}
        for n in range(250)
    ]  # fmt: skip
    quiet = bake({"seed": 51, "instances": [{"id": "i-1"}]}, settle_seconds=600)
    crowded = bake({"seed": 51, "instances": [{"id": "i-1"}], "images": history}, settle_seconds=600)

    # When the sweep runs for the same ten minutes in both
    # Then it makes the same number of calls: it reads only bakes in flight, never the finished history
    sweeps = len([d for d in quiet.run.runtime.deliveries if d.event_type == "timer"])
    assert sweeps >= 10
    assert sweeps == len([d for d in crowded.run.runtime.deliveries if d.event_type == "timer"])
    assert crowded.calls("DescribeImages") == quiet.calls("DescribeImages")
    assert crowded.calls("DescribeInstances") == quiet.calls("DescribeInstances")
