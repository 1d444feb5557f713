"""Red team (issue 11), kept as regression tests: a repair whose `set_state(source, REPAIRED)` was lost (throttled; the repair function is swept=True,
so a throttle is not retried by FC) leaves the source `repairing` until the minute-0 sweep (REPAIRS_AT). If
the repaired image passes its check in that same minute-0 sweep, it is "promoted" (batched: `ready` deferred to
promote.finish) and then the stale listing entry of the source re-runs _finish_repair in the same sweep."""

from __future__ import annotations

import pytest

from bakery import tags
from bakery_tools.local import LocalRun
from localcloud import Scenario


def _tags(run, image_id):
    img = run.cloud.ecs.images.get(image_id)
    return dict(img.tags) if img else None


def run_one(check_seconds: float, seed: int = 8, env: dict | None = None):
    scenario = Scenario.from_mapping(
        {
            "seed": seed,
            "timings": {"check_seconds": check_seconds},
            "images": [{"id": "m-web-v0", "family": "web", "check_failures": []}],
            "instances": [
                {"id": "i-web1", "disks": [{"type": "system", "size": 40}], "guest": {"check_failures": ["Nvme"]}}
            ],
            "actions": [{"at": 0, "tag": {"instance": "i-web1", "tags": {tags.TRIGGER: "true", tags.FAMILY: "web"}}}],
        }
    )
    run = LocalRun(scenario, env=env or {})
    tampered = {}

    def on_step(r: LocalRun) -> None:
        if tampered:
            return
        for image_id, img in list(r.cloud.ecs.images.items()):
            if img.tags.get(tags.STATE) == "repaired":
                # the write set_state(S, REPAIRED) is lost (throttled past the quick retries: the repair function
                # is swept=True, so FC does not retry it): S is back to `repairing`, in flight
                from alibabacloud_ecs20140526 import models as m

                r.operator.tag_resources(
                    m.TagResourcesRequest(
                        region_id=r.cloud.region,
                        resource_type="image",
                        resource_id=[image_id],
                        tag=[
                            m.TagResourcesRequestTag(key=tags.STATE, value="repairing"),
                            m.TagResourcesRequestTag(key=tags.IN_FLIGHT, value="true"),
                        ],
                    )
                )
                tampered["source"] = image_id
                tampered["at"] = r.cloud.clock.now
                return

    report = run.run(on_step=on_step, step_seconds=30)
    return run, report, tampered


# 300 (the default check time) lines the repaired image's pass up with the minute-0 sweep (REPAIRS_AT); the
# other values are the same scenario with other timings (they pass: the source is retired first).
@pytest.mark.parametrize("check_seconds", [300 + 30 * k for k in range(12)])
def test_repaired_image_survives_a_lost_source_state_write(check_seconds):
    run, report, tampered = run_one(check_seconds)
    try:
        ready = [e for e in run.bakery_events() if e["type"] == "bakery:Image:Ready"]
        failed = [e for e in run.bakery_events() if e["type"] == "bakery:Bake:Failed"]
        ready_ids = {e["data"]["imageId"] for e in ready}
        gone = [i for i in ready_ids if i not in run.cloud.ecs.images]
        problems = run.problems(report)
        print(
            "check_seconds",
            check_seconds,
            "tampered",
            tampered,
            "bakes",
            report["bakes"],
            "failed",
            [f["data"]["reason"] for f in failed],
            "ready-but-gone",
            gone,
        )
        assert tampered, "the repair never reached `repaired`"
        assert not gone, f"Image:Ready published for image(s) since deleted: {gone}; Bake:Failed: {failed}"
        assert not failed, failed
        assert problems == [], problems
    finally:
        run.close()


@pytest.mark.parametrize("policy", ["delete", "deprecate"])
def test_minimal_repro_minute0_sweep(policy):
    """The minimal case: default timings (check 300 s). delete: the promoted image is deleted by the bake's own
    wind-down, Image:Ready + Family:Promoted are published for it, and Bake:Failed too. deprecate: the retired
    source is re-marked `repaired` (orphaned, out of every family) and Image:Repaired is published twice."""
    run, report, tampered = run_one(300, env={"BAKERY_RETIRE_POLICY": policy})
    try:
        assert tampered
        assert run.problems(report) == []
    finally:
        run.close()
