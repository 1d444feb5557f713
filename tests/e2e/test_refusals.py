"""Bakes the gate refuses before anything is imaged: local disks, and what the guest preflight finds."""

from __future__ import annotations

import pytest

from bakery import tags
from tests.e2e.conftest import TAG_ACTIONS, trigger


@pytest.mark.parametrize("instance_type", ["ecs.i3.xlarge", "ecs.d1ne.2xlarge"])
def test_local_disk_instance_is_refused_without_touching_anything(bake, instance_type):
    # Given an instance with local disks (i-series local SSD, d-series local HDD)
    scenario = {
        "seed": 1,
        "instances": [{"id": "i-local", "type": instance_type}],
        # When it is tagged for baking
        "actions": [trigger("i-local", family="web", stop_first="true")],
    }
    baked = bake(scenario)

    # Then the bake fails with reason local-disks, naming the instance type
    result = baked.bake_of("i-local")
    assert result["state"] == "failed"
    assert result["reason"] == "local-disks"
    assert instance_type in result["message"]
    assert len(baked.events("bakery:Bake:Failed")) == 1

    # ... no image, no snapshot, and no API mutation but tags on the instance itself
    assert baked.images() == []
    assert baked.snapshot_ids() == set()
    assert baked.mutations() == set(), "not even the preflight or a stop may run on a refused instance"
    tagged_types = {
        e.event["data"]["requestParameters"].get("ResourceType")
        for e in baked.run.cloud.events.read(0, "default")
        if e.event.get("type") == "ecs:ActionTrail:ApiCall" and e.event["data"].get("eventName") in TAG_ACTIONS
    }
    assert tagged_types == {"instance"}

    # ... and the instance is released with the reason, still Running
    remaining = baked.assert_released("i-local")
    assert remaining[tags.LAST_ERROR] == "local-disks"
    assert baked.status("i-local") == "Running"


PREFLIGHT_CASES = [
    # (guest state, override tag, words the failure message must contain)
    pytest.param({"secrets": ["/root/.ssh/id_rsa"]}, "bakery:allow-secrets", ["/root/.ssh/id_rsa"], id="secret"),
    pytest.param({"secrets": ["/root/.aws/credentials"]}, "bakery:allow-secrets", ["/root/.aws/credentials"], id="cloud-credentials"),
    pytest.param({"system_disk_free_mb": 500}, "bakery:allow-low-disk", ["free=500MB", "1024"], id="low-disk"),
    pytest.param({"fstab_mismatch": True}, "bakery:allow-fstab-mismatch", ["fstab", "/mnt/olddata"], id="fstab-mismatch"),
    pytest.param({"missing_dirs": ["/lib"]}, "bakery:allow-missing-dirs", ["/lib"], id="missing-dirs"),
]  # fmt: skip


@pytest.mark.parametrize(("guest", "override", "words"), PREFLIGHT_CASES)
def test_preflight_refuses_and_the_override_tag_lets_it_bake(bake, guest, override, words):
    # Given two identical guests with the same problem; only the second carries the override tag
    scenario = {
        "seed": 3,
        "instances": [
            {"id": "i-plain", "guest": guest},
            {"id": "i-override", "guest": guest, "tags": {override: "true"}},
        ],
        # When both are tagged for baking
        "actions": [trigger("i-plain", family="app"), trigger("i-override", family="app")],
    }
    baked = bake(scenario)

    # Then the plain one is refused by the preflight, with a message naming what was found and the override
    refused = baked.bake_of("i-plain")
    assert refused["state"] == "failed"
    assert refused["reason"] == "preflight"
    for word in words:
        assert word in refused["message"], refused["message"]
    assert f"{override}=true" in refused["message"]
    assert refused["attempts"] == 0
    assert baked.assert_released("i-plain")[tags.LAST_ERROR] == "preflight"
    assert not [i for i in baked.images() if baked.image_tags(i).get(tags.SOURCE_INSTANCE) == "i-plain"]

    # ... and the overridden one bakes into the family (an fstab mismatch also fails the image check's
    # Fstab item, which the repair fixes: that bake takes two images)
    done = baked.bake_of("i-override")
    assert done["state"] == "ready", done
    assert baked.newest_in_family("app") == done["imageId"]
    assert baked.assert_released("i-override")[tags.LAST_IMAGE] == done["imageId"]
    assert done["attempts"] == (2 if guest.get("fstab_mismatch") else 1)
    assert baked.status("i-plain") == baked.status("i-override") == "Running"
