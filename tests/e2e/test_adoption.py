"""Images made outside Bakery (issue 12): adopted by ActionTrail's CreateImage record through template.yml,
followed through the same check and repair stages, the repaired image given the original's identity, the original
settled by BAKERY_ADOPTED_ORIGINAL — or left alone when the policy does not take it or it cannot be adopted.

Every run is checked against the safety promises by the `bake` fixture (tests/e2e/conftest.py), including
"an adopted image is given back as it was when its bake fails, or settled by its policy"."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as m

from bakery import tags

SHARED_WITH = ["1111222233334444", "5555666677778888"]
OPERATOR_TAGS = {"team": "web", "cost-center": "42", tags.ADOPT: "true"}


def outside_image(instance: str = "i-web7", *, name: str = "web-2026-01-05", family: str = "web",
                  check: bool = True, adopt_tag: bool = True, at: float = 0, **extra: Any) -> dict[str, Any]:  # fmt: skip
    """The scenario action of an image made outside Bakery (Packer, a person in the console...)."""
    image_tags = dict(OPERATOR_TAGS) if adopt_tag else {k: v for k, v in OPERATOR_TAGS.items() if k != tags.ADOPT}
    return {"at": at, "create_image": {"instance": instance, "name": name, "family": family, "check": check,
                                       "description": "web tier, built by Packer", "tags": image_tags, **extra}}  # fmt: skip


def region(*failures: str, disks: list[dict[str, Any]] | None = None, actions: list[Any] | None = None,
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "seed": 12,
        "images": [{"id": "m-web-v0", "family": "web", "check_failures": [], "age_days": 3}],
        "instances": [
            {
                "id": "i-web7",
                "disks": disks or [{"type": "system", "size": 40}],
                "guest": {"check_failures": list(failures)},
            }
        ],
        "actions": actions if actions is not None else [outside_image(share=SHARED_WITH)],
        **extra,
    }


def adopted_bake(baked: Any) -> dict[str, Any]:
    found = [b for b in baked.report["bakes"] if b.get("originalImageId")]
    assert len(found) == 1, baked.report["bakes"]
    return found[0]


def shares(baked: Any, image_id: str) -> list[str]:
    body = baked.ecs.describe_image_share_permission(m.DescribeImageSharePermissionRequest(
        region_id=baked.region, image_id=image_id, page_size=100)).body  # fmt: skip
    return sorted(a.aliyun_id for a in (body.accounts.account if body.accounts and body.accounts.account else []))


def test_a_failing_image_made_outside_bakery_is_repaired_and_takes_over_the_originals_identity(bake):
    # Given an image made outside Bakery (CreateImage with the check, in family "web", tagged, shared) whose
    # check fails Nvme
    baked = bake(region("Nvme"))

    # Then Bakery adopted it from ActionTrail's CreateImage record and repaired it
    result = adopted_bake(baked)
    assert result["state"] == "ready", result
    original_id = result["originalImageId"]
    (adopted,) = baked.events("bakery:Image:Adopted")
    assert adopted["data"]["imageId"] == original_id and adopted["data"]["adopted"] is True
    (failed,) = baked.events("bakery:Image:CheckFailed")
    assert failed["data"]["imageId"] == original_id and failed["data"]["originalImageId"] == original_id
    (ready,) = baked.events("bakery:Image:Ready")
    assert ready["data"]["adopted"] is True and ready["data"]["originalImageId"] == original_id
    repaired_id = ready["data"]["imageId"]
    assert repaired_id != original_id and baked.calls("StartExecution") == 1

    # ... the family resolves to the repaired image, which has the original's name, description, tags, shares
    assert baked.newest_in_family("web") == repaired_id
    repaired, original = baked.image(repaired_id), baked.image(original_id)
    assert repaired.image_name == "web-2026-01-05"
    assert repaired.description == "web tier, built by Packer"
    assert repaired.image_family == "web"
    repaired_tags = baked.image_tags(repaired)
    assert {k: repaired_tags.get(k) for k in OPERATOR_TAGS} == OPERATOR_TAGS
    assert repaired_tags[tags.STATE] == tags.READY and repaired_tags[tags.ADOPTED] == original_id
    assert shares(baked, repaired_id) == sorted(SHARED_WITH)
    assert len(repaired_tags) <= tags.MAX_TAGS_PER_RESOURCE

    # ... and the broken original is deprecated (the default policy), unshared, renamed out of the way
    assert original.status == "Deprecated" and shares(baked, original_id) == []
    assert original.image_name.startswith("web-2026-01-05-broken-")
    assert baked.image_tags(original)[tags.STATE] == tags.RETIRED
    # ... and Bakery never adopted its own images: one adoption, one bake
    assert len(baked.report["bakes"]) == 1


def test_a_passing_image_is_followed_and_left_as_it_is(bake):
    baked = bake(region())
    result = adopted_bake(baked)
    assert result["state"] == "ready" and result["imageId"] == result["originalImageId"]
    image = baked.image(result["imageId"])
    assert image.status == "Available" and image.image_name == "web-2026-01-05"
    assert baked.calls("StartExecution") == 0
    assert not ({"ModifyImageAttribute", "DeleteImage", "ModifyImageSharePermission"} & set(
        a for a, n in baked.report["api_calls"].items() if n and a != "ModifyImageSharePermission"))  # fmt: skip


def test_an_unrepairable_item_ends_with_one_failure_naming_it_and_the_original_as_it_was(bake):
    # Given an image whose check fails an item no repair covers
    baked = bake(region("Kernel"))
    result = adopted_bake(baked)
    assert result["state"] == "failed", result
    (failed,) = baked.events("bakery:Bake:Failed")
    assert failed["data"]["originalImageId"] == result["originalImageId"] and failed["data"]["reason"] == "unrepairable"
    assert "Kernel" in failed["data"]["message"]
    original = baked.image(result["originalImageId"])
    assert original.status == "Available" and original.image_name == "web-2026-01-05"
    assert original.image_family == "web" and shares(baked, original.image_id) == sorted(SHARED_WITH)
    left = baked.image_tags(original)
    assert tags.STATE not in left and tags.IN_FLIGHT not in left and left[tags.LAST_ERROR] == "unrepairable"
    assert baked.calls("StartExecution") == 0 and baked.calls("DeleteImage") == 0


@pytest.mark.parametrize("policy, adopt_tag", [("tag", False), ("off", True), ("families", False)])
def test_an_image_outside_the_adoption_policy_is_left_alone(bake, policy: str, adopt_tag: bool):
    # Given a failing image the policy does not take (families: "web" is not listed)
    scenario = region("Nvme", actions=[outside_image(adopt_tag=adopt_tag)])
    env = {"BAKERY_ADOPT_IMAGES": policy, **({"BAKERY_ADOPT_FAMILIES": "db"} if policy == "families" else {})}
    baked = bake(scenario, env=env)
    # Then nothing is adopted, nothing written on it, nothing published
    assert baked.report["bakes"] == []
    assert baked.run.bakery_events() == []
    (image,) = [i for i in baked.images() if i.image_name == "web-2026-01-05"]
    assert not [k for k in baked.image_tags(image) if k in tags.IMAGE_WORK_TAGS]


def test_an_image_without_the_check_is_reported_not_touched(bake):
    baked = bake(region(actions=[outside_image(check=False)]))
    (reported,) = baked.events("bakery:Image:NotAdopted")
    assert reported["data"]["reason"] == "check-not-enabled"
    image = baked.image(reported["data"]["imageId"])
    assert not [k for k in baked.image_tags(image) if k in tags.IMAGE_WORK_TAGS]
    assert baked.report["bakes"] == []


def test_an_original_in_use_is_deprecated_not_deleted(bake):
    # Given BAKERY_ADOPTED_ORIGINAL=delete and a server launched from the broken original while it is repaired
    scenario = region("Nvme")
    scenario["instances"].append({"id": "i-app1"})
    launched: list[str] = []

    def on_step(run: Any) -> None:
        originals = [i for i in run.cloud.ecs.images.values() if i.name == "web-2026-01-05"]
        if originals and not launched:  # what RunInstances with ImageId=<original> leaves behind
            run.cloud.ecs.instances["i-app1"].image_id = originals[0].image_id
            launched.append(originals[0].image_id)

    baked = bake(scenario, env={"BAKERY_ADOPTED_ORIGINAL": "delete"}, on_step=on_step, step_seconds=30)
    result = adopted_bake(baked)
    assert result["state"] == "ready" and launched == [result["originalImageId"]]
    # Then the original is deprecated (still launchable by id), never deleted, and the family moved on
    original = baked.image(result["originalImageId"])
    assert original is not None and original.status == "Deprecated"
    assert baked.calls("DeleteImage") == 0
    assert baked.newest_in_family("web") == result["imageId"]


def test_delete_policy_deletes_an_unused_original_with_its_own_snapshots(bake):
    baked = bake(region("Nvme"), env={"BAKERY_ADOPTED_ORIGINAL": "delete"})
    result = adopted_bake(baked)
    assert result["state"] == "ready"
    assert baked.image(result["originalImageId"]) is None
    assert baked.image(result["imageId"]).image_name == "web-2026-01-05"


# -- events: duplicated, dropped, shaped as each plausible record --------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"events": "duplicate", "probability": 1},
    {"events": "drop", "probability": 1, "type": "ecs:ActionTrail:ApiCall"},  # the CreateImage record lost
    {"events": "drop", "probability": 1},  # every event lost: the sweep alone
    {"events": "drop", "probability": 0.2},
])  # fmt: skip
def test_duplicated_and_dropped_events_give_the_same_outcome(bake, fault: dict[str, Any]):
    baked = bake({**region("Nvme"), "faults": [fault]})
    result = adopted_bake(baked)
    assert result["state"] == "ready", result
    assert baked.calls("StartExecution") == 1  # one repair, however often its events arrived
    repaired = baked.image(result["imageId"])
    assert repaired.image_name == "web-2026-01-05" and repaired.image_family == "web"
    assert baked.newest_in_family("web") == result["imageId"]
    assert baked.image(result["originalImageId"]).status == "Deprecated"
    ready = [i for i in baked.images() if baked.image_tags(i).get(tags.STATE) == tags.READY]
    assert [i.image_id for i in ready] == [result["imageId"]]


@pytest.mark.parametrize("shapes", [
    {"actiontrail_response": False},  # the image id only in referencedResources
    {"actiontrail_response": False, "actiontrail_parameters": "absent"},
    {"actiontrail_parameters": "json"},
    {"repair_create_image": "service"},  # the repair's own CreateImage recorded without userName
])  # fmt: skip
def test_every_plausible_record_shape_adopts_the_image_once(bake, shapes: dict[str, Any]):
    baked = bake({**region("Nvme"), "event_shapes": shapes}, env={"BAKERY_ADOPT_IMAGES": "all"})
    result = adopted_bake(baked)
    assert result["state"] == "ready", result
    assert len(baked.events("bakery:Image:Adopted")) == 1
    assert baked.image(result["imageId"]).image_name == "web-2026-01-05"


def test_the_consoles_create_custom_image_is_adopted(bake):
    baked = bake(region("Nvme", actions=[outside_image(via="console")]))
    console = [
        d for d in baked.deliveries(function="bakery-bake") if d.event_type == "ecs:ActionTrail:ConsoleOperation"
    ]
    assert console, "the console's CreateImage reached bakery-bake"
    assert adopted_bake(baked)["state"] == "ready"


def test_an_image_made_from_a_snapshot_is_adopted_and_the_operators_snapshot_kept(bake):
    # Given an operator's snapshot of the system disk, and an image made from it outside Bakery
    def snapshot_first(run: Any) -> None:
        disk = next(d for d in run.cloud.ecs.disks.values() if d.instance_id == "i-web7")
        body = run.operator.create_snapshot(m.CreateSnapshotRequest(disk_id=disk.disk_id)).body
        run.runtime.run_until(run.cloud.clock.now + 3600)
        run.create_image({"snapshot": body.snapshot_id, "name": "web-from-snapshot", "family": "web",
                          "tags": {tags.ADOPT: "true"}})  # fmt: skip
        run.initial_snapshots.add(body.snapshot_id)  # the operator's: must survive
        kept.append(body.snapshot_id)

    kept: list[str] = []
    baked = bake(region("Nvme", actions=[]), env={"BAKERY_ADOPTED_ORIGINAL": "delete"}, before_run=snapshot_first)
    result = adopted_bake(baked)
    assert result["state"] == "ready"
    assert baked.image(result["originalImageId"]) is None  # deleted (unused)...
    assert kept[0] in baked.snapshot_ids()  # ... but not the operator's snapshot it was made from


# -- identity at the limits ------------------------------------------------------------------------------------------


def test_a_multi_disk_original_comes_back_with_every_disk(bake):
    disks = [{"type": "system", "size": 40}, {"type": "data", "size": 100}, {"type": "data", "size": 20}]
    baked = bake(region("Nvme", disks=disks))
    result = adopted_bake(baked)
    assert result["state"] == "ready", result
    repaired = baked.image(result["imageId"])
    mappings = repaired.disk_device_mappings.disk_device_mapping
    assert [(d.type, int(d.size)) for d in mappings] == [("system", 40), ("data", 100), ("data", 20)]
    assert repaired.image_name == "web-2026-01-05"


@pytest.mark.parametrize("name", ["w" + "e" * 115, "web-22.04-base"])
def test_a_name_the_repair_template_cannot_extend_still_comes_back(bake, name: str):
    # repaired_<name>_<14 digits> must fit CreateImage's 128 characters (and its documented characters)
    baked = bake(region("Nvme", actions=[outside_image(name=name)]))
    result = adopted_bake(baked)
    assert result["state"] == "ready", result
    assert baked.image(result["imageId"]).image_name == name


def test_an_image_with_too_many_tags_is_reported_not_touched(bake):
    many = {f"k{n}": "v" for n in range(15)}
    baked = bake(region("Nvme", actions=[outside_image(tags={**many, tags.ADOPT: "true"})]))
    (reported,) = baked.events("bakery:Image:NotAdopted")
    assert reported["data"]["reason"] == "no-tag-room"
    assert baked.report["bakes"] == []


def test_leave_policy_keeps_the_original_and_names_the_repaired_image_beside_it(bake):
    baked = bake(region("Nvme"), env={"BAKERY_ADOPTED_ORIGINAL": "leave"})
    result = adopted_bake(baked)
    original, repaired = baked.image(result["originalImageId"]), baked.image(result["imageId"])
    assert original.status == "Available" and original.image_name == "web-2026-01-05"
    assert shares(baked, original.image_id) == sorted(SHARED_WITH)  # left: its sharees keep it
    assert repaired.image_name == "web-2026-01-05-repaired"
    assert baked.newest_in_family("web") == repaired.image_id


# -- Bakery's own images are never adopted ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["caller", "service"])
def test_bakerys_own_bakes_and_repairs_are_never_adopted_even_under_all(bake, shape: str):
    scenario = {"seed": 3, "event_shapes": {"repair_create_image": shape},
                "instances": [{"id": "i-web1", "guest": {"check_failures": ["Nvme"]}}],
                "actions": [{"at": 0, "tag": {"instance": "i-web1", "tags": {tags.TRIGGER: "true",
                                                                              tags.FAMILY: "web"}}}]}  # fmt: skip
    baked = bake(scenario, env={"BAKERY_ADOPT_IMAGES": "all"})
    assert [b["state"] for b in baked.report["bakes"]] == ["ready"]
    assert baked.events("bakery:Image:Adopted") == [] and baked.events("bakery:Image:NotAdopted") == []


# -- bakery repair IMAGE: an image that failed before Bakery was deployed ----------------------------------------------


def test_bakery_repair_adopts_an_image_that_failed_earlier_whatever_the_policy(bake, capsys):
    from bakery_tools.cli import main

    scenario = {"seed": 4, "images": [{"id": "m-old-web", "name": "web-legacy", "family": "web",
                                      "check_failures": ["Nvme"], "tags": {"team": "web"}}]}  # fmt: skip

    def repair_it(run: Any) -> None:
        code = main(["repair", "m-old-web", "--endpoint", run.cloud_env.endpoint, "--region", run.cloud.region,
                     "--json"])  # fmt: skip
        outcome.append((code, capsys.readouterr().out))

    outcome: list[Any] = []
    baked = bake(scenario, env={"BAKERY_ADOPT_IMAGES": "off"}, before_run=repair_it)
    code, out = outcome[0]
    assert code == 0, out
    result = adopted_bake(baked)
    assert result["state"] == "ready" and result["originalImageId"] == "m-old-web"
    repaired = baked.image(result["imageId"])
    assert repaired.image_name == "web-legacy" and baked.image_tags(repaired)["team"] == "web"
    assert baked.newest_in_family("web") == repaired.image_id


def test_a_bake_with_a_long_name_prefix_is_still_repaired_within_ecs_name_limit(bake):
    # Given a bake whose image name (a prefix of 100 + the bake id) leaves ACS-ECS-RepairImage no room for its
    # repaired_<name>_<timestamp> (CreateImage: 128 characters at most), and whose check fails
    scenario = {"seed": 5, "instances": [{"id": "i-web1", "guest": {"check_failures": ["Nvme"]}}],
                "actions": [{"at": 0, "tag": {"instance": "i-web1", "tags": {
                    tags.TRIGGER: "true", tags.FAMILY: "web", tags.NAME: "w" * 100}}}]}  # fmt: skip
    baked = bake(scenario)
    # Then the repair still runs (the image is named for the run) and the bake is ready
    assert baked.bake_of("i-web1")["state"] == "ready"
    assert all(len(i.image_name) <= 128 for i in baked.images())
