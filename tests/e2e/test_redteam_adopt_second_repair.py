"""Red team (issue 12): a second repair of an adopted image (BAKERY_MAX_REPAIRS=2, the default) with a name of 81 to
104 characters. `adopt.run_name` swaps a name the template cannot extend only on the adopted original; the first
repaired image is named `repaired_<name>_<14 digits>` (up to 128 characters), so the second ACS-ECS-RepairImage run
names its image `repaired_repaired_<name>_..._..` — over CreateImage's 128 characters, which real ECS refuses
(the template's createImage fails: the bake ends repair-failed). localcloud's OOS does not check the length, so this
test watches every image name the region ever held."""

from __future__ import annotations

from typing import Any

from tests.e2e.test_adoption import adopted_bake, outside_image, region


def test_a_second_repair_of_an_adopted_image_never_needs_a_name_over_128_characters(bake):
    name = "w" + "e" * 99  # 100 characters: within REPAIR_NAME_LIMIT (104), so not swapped for the run
    names: set[str] = set()
    still_failing: list[str] = []

    def on_step(run: Any) -> None:
        for image in run.cloud.ecs.images.values():
            names.add(image.name)
            # the first repair's output still fails its check (a repair that did not take): a second repair
            if image.name.startswith("repaired_") and not still_failing and image.guest is not None:
                image.guest.check_failures = ["Nvme"]
                still_failing.append(image.image_id)

    baked = bake(region("Nvme", actions=[outside_image(name=name)]), on_step=on_step, step_seconds=30)
    result = adopted_bake(baked)
    assert still_failing and baked.calls("StartExecution") == 2
    assert result["state"] == "ready", result
    assert baked.image(result["imageId"]).image_name == name
    too_long = sorted(n for n in names if len(n) > 128)
    assert too_long == [], f"image names over 128 characters: {[len(n) for n in too_long]}"
