"""The one rule retention and rollback share (bakery.families.fitness): which images are finished promotions,
and which a family may be made to resolve to."""

from __future__ import annotations

import pytest

from bakery.families import fitness
from bakery.model import CheckItem, Image

READY = {"bakery:bake-id": "b-1", "bakery:state": "ready"}


def image(*, tags: dict[str, str], detection: str = "Finished", failing: bool = False) -> Image:
    items = (CheckItem("Nvme", "Unsupported", "High", "NVMe.NotInstalled"),) if failing else ()
    return Image(image_id="m-1", name="m-1", status="Available", usable=True, family="web", description="",
                 os_type="linux", platform="Ubuntu", architecture="x86_64", tags=tags, snapshot_ids=("s-1",),
                 detection_status=detection, check_items=items, creation_time="2026-01-01T00:00:00Z")  # fmt: skip


def test_a_promoted_image_whose_check_passed_is_fit() -> None:
    assert fitness.unfit(image(tags=READY)) == ()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"failing": True}, "its image check failed: Nvme (NVMe.NotInstalled)"),
        ({"detection": "Processing"}, "its image check has not finished (DetectionStatus Processing)"),
        ({"detection": ""}, "it was never checked by ECS (no image check: promoted unchecked, or made outside Bakery)"),
        ({"tags": {"bakery:bake-id": "b-1", "bakery:state": "checking"}}, "its promotion is in flight (bakery:state=checking)"),
        ({"tags": {"bakery:bake-id": "b-1", "bakery:state": "retired"}}, "it is bakery:state=retired, not ready"),
        ({"tags": {"bakery:bake-id": "b-1"}}, "it carries no bakery:state=ready (Bakery's promotion of it is not on record)"),
        ({"tags": {}}, "Bakery did not promote it (no bakery:bake-id, no bakery:state=ready)"),
    ],
)  # fmt: skip
def test_each_reason_an_image_is_unfit_to_resolve_is_named(kwargs: dict, problem: str) -> None:
    assert fitness.unfit(image(**{"tags": READY, **kwargs})) == (problem,)


def test_finished_means_ready_no_state_or_just_announced() -> None:
    assert fitness.unfinished_state(image(tags=READY)) is None
    assert fitness.unfinished_state(image(tags={})) is None
    checking = image(tags={"bakery:bake-id": "b-1", "bakery:state": "checking"})
    assert fitness.unfinished_state(checking) == "checking"
    assert fitness.unfinished_state(checking, just_promoted="m-1") is None
