"""Red team (issue 12): the operator renames an adopted image while Bakery follows it, then the bake fails.
`adopt.give_back` renames it back to `bakery:original-name` unconditionally: it reverts the operator's rename, and
when the operator has since given that name to a new image (names are unique per region), ModifyImageAttribute
answers InvalidImageName.Duplicated on every try — the failure's wind-down dead-letters, and the original is left
with Bakery's work tags (bakery:state, bakery:in-flight, bakery:original-name) forever."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as m

from bakery import tags
from tests.e2e.test_adoption import SHARED_WITH, adopted_bake, outside_image, region, shares


@pytest.mark.parametrize("name_reused", [False, True])
def test_an_operators_rename_midflight_survives_the_failure(bake, name_reused: bool):
    renamed: list[str] = []

    def on_step(run: Any) -> None:
        # While the adopted image's check runs (it will fail Kernel: unrepairable), its owner renames it and
        # (name_reused) makes the next image under the old name.
        found = [i for i in run.cloud.ecs.images.values()
                 if i.name == "web-2026-01-05" and i.tags.get(tags.STATE) and i.status == "Available"]  # fmt: skip
        if not found or renamed:
            return
        renamed.append(found[0].image_id)
        run.operator.modify_image_attribute(m.ModifyImageAttributeRequest(
            region_id=run.cloud.region, image_id=found[0].image_id, image_name="web-2026-01-05-old"))  # fmt: skip
        if name_reused:
            body = run.operator.create_image(m.CreateImageRequest(
                region_id=run.cloud.region, instance_id="i-web7", image_name="web-2026-01-05",
                client_token="operator-next")).body  # fmt: skip
            run.created_images[body.image_id] = []  # the operator's (no family, no check)

    baked = bake(region("Kernel", actions=[outside_image(share=SHARED_WITH)]), on_step=on_step, step_seconds=30)
    result = adopted_bake(baked)
    assert renamed == [result["originalImageId"]]
    assert result["state"] == "failed" and result["reason"] == "unrepairable", result
    original = baked.image(result["originalImageId"])
    # the operator's rename stands; the image is otherwise as it was, with only the failure's marks
    assert original.image_name == "web-2026-01-05-old"
    assert original.status == "Available" and shares(baked, original.image_id) == sorted(SHARED_WITH)
    left = baked.image_tags(original)
    assert not {tags.STATE, tags.IN_FLIGHT, tags.ORIGINAL_NAME} & set(left), left
    assert left.get(tags.LAST_ERROR) == "unrepairable"
    assert not [d for d in baked.run.runtime.deliveries if d.outcome == "dead-letter"]
