"""Red team (issue 12): BAKERY_ADOPTED_ORIGINAL=leave promises the original "untouched", but a name that
ACS-ECS-RepairImage cannot extend (over 104 characters, or a '.') is swapped for `bakery-<id>` for the run and
never given back on success: the operator's image is left named `bakery-m-...` with Bakery's work tags on it."""

from __future__ import annotations

import pytest

from bakery import tags
from tests.e2e.test_adoption import SHARED_WITH, adopted_bake, outside_image, region, shares


@pytest.mark.parametrize("name", ["w" + "e" * 115, "web-22.04-base"])
def test_leave_policy_gives_a_swapped_name_back_to_the_original(bake, name: str):
    baked = bake(region("Nvme", actions=[outside_image(name=name, share=SHARED_WITH)]),
                 env={"BAKERY_ADOPTED_ORIGINAL": "leave"})  # fmt: skip
    result = adopted_bake(baked)
    assert result["state"] == "ready", result
    original, repaired = baked.image(result["originalImageId"]), baked.image(result["imageId"])
    assert repaired.image_name == name[: 128 - len("-repaired")] + "-repaired"
    # left: Available, shared, and under the name its owner gave it
    assert original.status == "Available" and shares(baked, original.image_id) == sorted(SHARED_WITH)
    assert original.image_name == name
    assert tags.ORIGINAL_NAME not in baked.image_tags(original)
