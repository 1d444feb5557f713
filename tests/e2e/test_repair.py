"""Images that fail ECS's image check: repaired with ACS-ECS-RepairImage and promoted, or kept out of
the family when no repair can fix them."""

from __future__ import annotations

import pytest

from bakery import tags
from tests.e2e.conftest import trigger

FAMILY_HISTORY = [{"id": "m-web-v0", "family": "web", "check_failures": []}]


def test_retire_policy_deprecate_keeps_the_broken_image_deprecated_out_of_the_family(bake):
    # Given BAKERY_RETIRE_POLICY=deprecate and an instance whose image fails its check
    scenario = {
        "seed": 8,
        "instances": [
            {"id": "i-web1", "disks": [{"type": "system", "size": 40}], "guest": {"check_failures": ["Nvme"]}}
        ],
        "actions": [trigger("i-web1", family="web")],
    }
    # When it is baked (the repaired image is promoted)
    baked = bake(scenario, env={"BAKERY_RETIRE_POLICY": "deprecate"})

    # Then the broken image still exists, Deprecated, marked retired, in no family
    result = baked.bake_of("i-web1")
    assert result["state"] == "ready", result
    (check_failed,) = baked.events("bakery:Image:CheckFailed")
    broken = baked.image(check_failed["data"]["imageId"])
    assert broken is not None and broken.status == "Deprecated"
    assert baked.image_tags(broken)[tags.STATE] == tags.RETIRED
    assert not broken.image_family
    assert baked.newest_in_family("web") == result["imageId"]
    assert baked.calls("DeleteImage") == 0


def test_failed_check_is_repaired_and_the_repaired_image_promoted(bake):
    # Given an instance whose image will fail the check's Nvme item (no NVMe driver in the initramfs)
    scenario = {
        "seed": 8,
        "images": FAMILY_HISTORY,
        "instances": [
            {"id": "i-web1", "disks": [{"type": "system", "size": 40}], "guest": {"check_failures": ["Nvme"]}}
        ],
        # When it is tagged for baking into "web"
        "actions": [trigger("i-web1", family="web")],
    }
    baked = bake(scenario)

    # Then the bake is ready after two images: the broken one and its repair
    result = baked.bake_of("i-web1")
    assert result["state"] == "ready", result
    assert result["attempts"] == 2
    assert baked.calls("CreateImage") == 1
    assert baked.calls("StartExecution") == 1
    (check_failed,) = baked.events("bakery:Image:CheckFailed")
    broken_id = check_failed["data"]["imageId"]
    assert [i["name"] for i in check_failed["data"]["items"]] == ["Nvme"]
    (repair_started,) = baked.events("bakery:Image:RepairStarted")
    assert repair_started["data"]["repairItems"] == ["nvme"]

    # ... the repaired image is what the family resolves to, checked clean, with its lineage re-applied
    repaired_id = result["imageId"]
    assert repaired_id != broken_id
    assert baked.newest_in_family("web") == repaired_id
    repaired = baked.image(repaired_id)
    assert repaired.status == "Available"
    assert repaired.detection_options.status == "Finished"
    assert baked.failing_check_items(repaired) == []
    lineage = baked.image_tags(repaired)
    assert lineage[tags.REPAIRED_FROM] == broken_id
    assert lineage[tags.BAKE_ID] == result["bakeId"]
    assert lineage[tags.SOURCE_INSTANCE] == "i-web1"
    assert lineage[tags.REPAIRS] == "1"
    assert lineage[tags.STATE] == tags.READY
    assert tags.REPAIR_EXECUTION not in lineage  # the broken image's execution pointer is not inherited
    assert f"repaired from {broken_id}" in repaired.description

    # ... the broken image is retired: deleted, and so are the snapshots only it used
    assert baked.image(broken_id) is None
    assert baked.calls("DeleteImage") == 1
    assert baked.calls("DeleteSnapshot") >= 1
    in_use = set().union(*(baked.snapshot_ids_of(i) for i in baked.images()))
    assert baked.snapshot_ids() == in_use

    # ... and the instance points at the repaired image
    assert baked.assert_released("i-web1")[tags.LAST_IMAGE] == repaired_id
    assert baked.status("i-web1") == "Running"


UNREPAIRABLE = [
    # A Windows image: ACS-ECS-RepairImage repairs Linux only. The preflight is a Linux shell script, so its
    # owner bakes it with the guest checks skipped.
    pytest.param(
        {"os": "windows", "platform": "Windows Server 2022", "tags": {tags.SKIP_GUEST_CHECKS: "true"},
         "guest": {"check_failures": ["Virtio"]}},
        {}, "unrepairable", ["windows", "Virtio"], 0, id="windows",
    ),
    # A check item no repair covers.
    pytest.param({"guest": {"check_failures": ["Kernel"]}}, {}, "unrepairable", ["Kernel", "no repair covers"], 0,
                 id="uncovered-item"),
    # Failures that outlast the repair budget (BAKERY_MAX_REPAIRS=0: the first failed check is final).
    pytest.param({"guest": {"check_failures": ["Nvme"]}}, {"BAKERY_MAX_REPAIRS": "0"}, "check-failed",
                 ["Nvme", "after 0 repair(s)"], 0, id="repair-budget-spent"),
]  # fmt: skip


@pytest.mark.parametrize(("instance_extra", "env", "reason", "words", "repairs"), UNREPAIRABLE)
def test_unrepairable_check_failure_fails_the_bake_and_leaves_the_family_untouched(
    bake, instance_extra, env, reason, words, repairs
):
    # Given the family "web" holds a checked image, and an instance whose image will fail its check
    scenario = {
        "seed": 9,
        "images": FAMILY_HISTORY,
        "instances": [{"id": "i-web2", **instance_extra}],
        # When it is tagged for baking into "web"
        "actions": [trigger("i-web2", family="web")],
    }
    baked = bake(scenario, env=env)

    # Then the bake fails once, with a reason and a message naming the failing item
    result = baked.bake_of("i-web2")
    assert result["state"] == "failed", result
    assert result["reason"] == reason
    for word in words:
        assert word in result["message"], result["message"]
    (failed,) = baked.events("bakery:Bake:Failed")
    assert failed["data"]["items"] == [w for w in words if w in ("Virtio", "Kernel", "Nvme")]
    assert baked.calls("StartExecution") == repairs

    # ... the family still resolves to its previous image, and the failed image is gone with its snapshots
    assert baked.newest_in_family("web") == "m-web-v0"
    assert [i.image_id for i in baked.images()] == ["m-web-v0"]
    assert baked.snapshot_ids() == baked.snapshot_ids_of(baked.image("m-web-v0"))

    # ... and the instance carries the reason, still Running
    assert baked.assert_released("i-web2")[tags.LAST_ERROR] == reason
    assert baked.status("i-web2") == "Running"


def test_windows_instance_without_skip_tag_is_told_to_skip_guest_checks(bake):
    # Given a Windows instance (the preflight is a Linux shell script)
    scenario = {
        "seed": 10,
        "instances": [{"id": "i-win", "os": "windows", "platform": "Windows Server 2022"}],
        # When it is tagged for baking without bakery:skip-guest-checks
        "actions": [trigger("i-win")],
    }
    baked = bake(scenario)

    # Then it is refused before any command runs on it, with the tag that lets it through
    result = baked.bake_of("i-win")
    assert result["state"] == "failed"
    assert result["reason"] == "guest-unchecked"
    assert "windows" in result["message"]
    assert f"{tags.SKIP_GUEST_CHECKS}=true" in result["message"]
    # ... and not sent the wrong way: starting it or installing Cloud Assistant would not help
    assert "Cloud Assistant agent" not in result["message"] and "Start it" not in result["message"]
    assert baked.mutations() == set()
