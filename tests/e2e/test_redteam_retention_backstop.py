"""Red team (issue 11), kept as regression tests: retention now runs once per family per sweep (bakery:Family:Promoted) and nothing re-runs it, so one
dead-lettered (or lost) Family:Promoted leaves a whole fleet's worth of images in the family. Per-image
Image:Ready (HEAD~1) ran retention 12 times for the same fleet, so one lost run was made up by the next."""

from __future__ import annotations

from bakery_tools.local import LocalRun
from tests.e2e.test_redteam_fleet_redteam import FAULTY, _scenario


def test_one_dead_lettered_family_promoted_leaves_the_fleet_unretained():
    run = LocalRun(
        _scenario(3, history=3, faults=FAULTY["describe-instances-throttle"]), env={"BAKERY_RETENTION_ACTION": "delete"}
    )
    try:
        run.run()
        family = [i for i in run.cloud.ecs.images.values() if i.family == "fleet" and i.status == "Available"]
        dead = [d for d in run.runtime.dead_letters]
        print("available in family:", len(family), "dead letters:", [(d.function, d.error) for d in dead])
        assert len(family) <= 3 + 1, f"{len(family)} Available images in a family that keeps 3"
    finally:
        run.close()
