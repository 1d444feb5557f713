"""Red team (issue 11), kept as regression tests: snapshot bakes (no instance) promoted in the same sweep batch as instance bakes, one family."""

from __future__ import annotations

import pytest

from bakery import tags
from bakery_tools.local import LocalRun
from localcloud import Scenario
from tests.e2e.test_snapshot_bake import request_bake, snapshot_disk

INSTANCES = [{"id": f"i-s{n}", "disks": [{"type": "system", "size": 20}]} for n in range(4)]


@pytest.mark.parametrize("action", ["deprecate", "delete"])
def test_snapshot_and_instance_bakes_batched_into_one_family(action):
    scenario = Scenario.from_mapping(
        {
            "seed": 5,
            "timings": {"snapshot_seconds_per_gib": 1},
            "instances": INSTANCES,
            "actions": [
                {"at": 0, "tag": {"instance": i["id"], "tags": {tags.TRIGGER: "true", tags.FAMILY: "mix"}}}
                for i in INSTANCES[:2]
            ],
        }
    )
    run = LocalRun(scenario, env={"BAKERY_RETENTION_ACTION": action, "BAKERY_RETENTION_KEEP": "2"})
    try:
        ids = [snapshot_disk(run, i["id"], "system") for i in INSTANCES[2:]]
        run.runtime.run_until(run.cloud.clock.now + 60)
        run.initial_snapshots |= set(ids)
        for n, s in enumerate(ids):
            request_bake(run, {"snapshotIds": [s], "family": "mix", "name": f"snap{n}"}, event_id=f"op-{n}")
        report = run.run()
        promoted = [e for e in run.bakery_events() if e["type"] == "bakery:Family:Promoted"]
        print(
            action,
            run.outcome,
            [(b["state"], b.get("reason")) for b in report["bakes"]],
            [e["data"]["imageIds"] for e in promoted],
        )
        assert run.problems(report) == []
        fam = [i for i in run.cloud.ecs.images.values() if i.family == "mix" and i.status == "Available"]
        assert len(fam) == 2
    finally:
        run.close()
