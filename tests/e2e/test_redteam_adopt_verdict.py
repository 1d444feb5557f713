"""Red team (issue 12): the verdict's promise for adopted images (`bakery_tools.verdict._adopted_originals`) must
not pass a wrong outcome. It compares only status, name and three work tags: an original given back without its
family (or a repaired image promoted without the original's family) passes. Each case takes a real run's report,
changes one thing the README promises, and asks the verdict."""

from __future__ import annotations

import copy
from typing import Any

from bakery_tools.verdict import broken_promises
from tests.e2e.test_adoption import adopted_bake, region


def _row(report: dict[str, Any], image_id: str) -> dict[str, Any]:
    (row,) = [i for i in report["images"] if i["imageId"] == image_id]
    return row


def test_the_verdict_sees_a_failed_bakes_original_given_back_without_its_family(bake):
    baked = bake(region("Kernel"))
    result = adopted_bake(baked)
    assert result["state"] == "failed" and broken_promises(baked.report) == []
    report = copy.deepcopy(baked.report)
    _row(report, result["originalImageId"])["family"] = ""  # "given back as it was — name, status, family"
    assert broken_promises(report) != []


def test_the_verdict_sees_a_repaired_image_promoted_without_the_originals_family(bake):
    baked = bake(region("Nvme"))
    result = adopted_bake(baked)
    assert result["state"] == "ready" and broken_promises(baked.report) == []
    report = copy.deepcopy(baked.report)
    _row(report, result["imageId"])["family"] = ""  # "given the original's ... family"
    assert broken_promises(report) != []


def test_the_verdict_sees_a_left_original_still_under_its_run_name(bake):
    # BAKERY_ADOPTED_ORIGINAL=leave: the original is "untouched"; a name swapped for the run must come back
    baked = bake(region("Nvme"), env={"BAKERY_ADOPTED_ORIGINAL": "leave"})
    result = adopted_bake(baked)
    assert result["state"] == "ready" and broken_promises(baked.report) == []
    report = copy.deepcopy(baked.report)
    _row(report, result["originalImageId"])["name"] = f"bakery-{result['originalImageId']}"
    assert broken_promises(report) != []
