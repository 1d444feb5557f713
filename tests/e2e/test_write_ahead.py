"""Issue 10's reproductions, one test each: no step destroys the record of progress before its successor is
durable, one bake's error never stops another, tags fit ECS' 20-per-resource limit, and a promoted image has
every disk of its source. Every run is also checked against all the safety promises by the `bake` fixture."""

from __future__ import annotations

from bakery import tags
from tests.e2e.conftest import trigger

DATA_DISKS = [{"type": "system", "size": 40}, {"type": "data", "size": 100}, {"type": "data", "size": 20}]


def _user_tags(n: int) -> dict[str, str]:
    return {f"k{i}": f"v{i}" for i in range(n)}


def _disks(baked, image_id: str) -> list[tuple[str, int]]:
    image = baked.image(image_id)
    mappings = image.disk_device_mappings.disk_device_mapping if image.disk_device_mappings else []
    return [(mp.type, int(mp.size)) for mp in mappings]


def test_an_instance_with_too_many_tags_is_refused_up_front_and_the_others_bake(bake):
    # Given an instance with 15 user tags (17 with bakery:bake and bakery:family; a bake needs up to 6 more, ECS
    # allows 20) and an ordinary one
    scenario = {
        "seed": 101,
        "instances": [{"id": "i-t15", "tags": _user_tags(15)}, {"id": "i-ok"}],
        "actions": [trigger("i-t15", family="app"), trigger("i-ok", family="app")],
    }
    baked = bake(scenario)

    # Then the crowded one is refused before anything is made, saying how many tags to remove
    refused = baked.bake_of("i-t15")
    assert refused["state"] == "failed" and refused["reason"] == "tag-limit", refused
    assert "Remove 3 tag(s)" in refused["message"], refused["message"]
    assert baked.assert_released("i-t15")[tags.LAST_ERROR] == "tag-limit"
    assert [i for i in baked.images() if baked.image_tags(i).get(tags.SOURCE_INSTANCE) == "i-t15"] == []
    # ... and the other bake is not held up
    assert baked.bake_of("i-ok")["state"] == "ready"
    assert baked.report["deliveries"]["dead_letters"] == 0


def test_an_instance_at_the_tag_limit_is_refused_and_nothing_dead_letters(bake):
    # Given an instance with 18 user tags: with the trigger it has 19, one short of ECS' limit
    scenario = {
        "seed": 102,
        "instances": [{"id": "i-t18", "tags": _user_tags(18)}],
        "actions": [trigger("i-t18")],
    }
    baked = bake(scenario, settle_seconds=600)

    # Then it is refused with tag-limit (not claimed, not retried for hours): 19 + 6 needed = 25
    refused = baked.bake_of("i-t18")
    assert refused["reason"] == "tag-limit", refused
    assert "Remove 5 tag(s)" in refused["message"]
    assert baked.report["deliveries"]["dead_letters"] == 0
    assert baked.mutations() == set()


def test_tags_added_during_a_bake_end_it_with_the_action_and_code_and_others_go_on(bake):
    # Given two bakes; an operator fills i-busy up to 20 tags (10 + Bakery's claim and preflight + 7) just
    # after its bake started, so Bakery's next tag write on it is refused with QuotaExceed.Tags
    scenario = {
        "seed": 103,
        "instances": [{"id": "i-busy", "tags": _user_tags(8)}, {"id": "i-ok"}],
        "actions": [
            trigger("i-busy", family="app"),
            trigger("i-ok", family="app"),
            {"at": 1, "tag": {"instance": "i-busy", "tags": {f"late{i}": "x" for i in range(7)}}},
        ],
    }
    baked = bake(scenario)

    # Then that bake ends failed, naming the action and code, with nothing left behind (the fixture checks)
    busy = baked.bake_of("i-busy")
    assert busy["state"] == "failed", busy
    assert busy["reason"] == "cloud-error", busy
    assert "TagResources" in busy["message"] and "QuotaExceed.Tags" in busy["message"], busy
    assert baked.bake_of("i-ok")["state"] == "ready"
    assert baked.report["deliveries"]["dead_letters"] == 0


def test_a_throttled_stop_is_issued_again_and_the_bake_finishes(bake):
    # Given StopInstance is throttled three times
    scenario = {
        "seed": 104,
        "faults": [{"action": "StopInstance", "code": "Throttling", "nth": n} for n in (1, 2, 3)],
        "instances": [{"id": "i-app"}],
        "actions": [trigger("i-app", stop_first="true")],
    }
    baked = bake(scenario)

    # Then the stop is re-issued until it takes, the image is made, and the instance is Running again
    assert baked.bake_of("i-app")["state"] == "ready"
    assert baked.calls("StopInstance") >= 4
    assert baked.status("i-app") == "Running"
    assert tags.STOPPED_BY_BAKERY not in baked.assert_released("i-app")


def test_a_5xx_during_a_create_failed_retry_does_not_lose_the_bake(bake):
    # Given the first image ends CreateFailed and ECS answers the retry's first CreateImage with 503
    scenario = {
        "seed": 105,
        "faults": [{"action": "CreateImage", "code": "ServiceUnavailable", "nth": 2}],
        "instances": [{"id": "i-app", "create_image_failures": 1}],
        "actions": [trigger("i-app", family="app")],
    }
    baked = bake(scenario)

    # Then attempt 2 is made (the failed attempt retired only after it) and promoted
    result = baked.bake_of("i-app")
    assert result["state"] == "ready", result
    assert int(baked.image_tags(baked.image(result["imageId"]))[tags.ATTEMPT]) == 2
    assert len(baked.images()) == 1


def test_a_lost_publish_of_bake_failed_is_published_again(bake):
    # Given a bake that must fail (security lock) and PutEvents failing its first two tries
    scenario = {
        "seed": 106,
        "faults": [{"action": "PutEvents", "code": "InternalError", "nth": n} for n in (1, 2)],
        "instances": [{"id": "i-app", "locks": ["security"]}],
        "actions": [trigger("i-app")],
    }
    baked = bake(scenario)

    # Then exactly one Bake:Failed reaches the bus (retries deduplicate on its deterministic id)
    failed = baked.events("bakery:Bake:Failed")
    assert len({e["id"] for e in failed}) == 1, failed
    assert failed[0]["data"]["reason"] == "instance-locked"
    assert baked.assert_released("i-app")[tags.LAST_ERROR] == "instance-locked"


def test_a_failed_snapshot_delete_is_finished_later_and_nothing_leaks(bake):
    # Given a repaired bake (its broken image is retired with its snapshot) and DeleteSnapshot failing once
    scenario = {
        "seed": 107,
        "faults": [{"action": "DeleteSnapshot", "code": "ServiceUnavailable", "nth": 1}],
        "instances": [
            {"id": "i-app", "disks": [{"type": "system", "size": 40}], "guest": {"check_failures": ["Nvme"]}}
        ],
        "actions": [trigger("i-app", family="app")],
    }
    baked = bake(scenario, settle_seconds=1800)

    # Then the bake is ready and every snapshot left belongs to an image (the invariants check it too)
    assert baked.bake_of("i-app")["state"] == "ready"
    used = set().union(*(baked.snapshot_ids_of(i) for i in baked.images()))
    assert baked.snapshot_ids() <= used, baked.snapshot_ids() - used
    assert baked.calls("DeleteSnapshot") >= 2


def test_a_repaired_image_keeps_every_data_disk_of_its_source(bake):
    # Given an instance with a system disk and two data disks whose image fails its Nvme check
    scenario = {
        "seed": 108,
        "instances": [{"id": "i-data", "disks": DATA_DISKS, "guest": {"check_failures": ["Nvme"]}}],
        "actions": [trigger("i-data", family="data")],
    }
    baked = bake(scenario)

    # Then ACS-ECS-RepairImage's system-only image is put back together with the data disks, checked, promoted
    result = baked.bake_of("i-data")
    assert result["state"] == "ready", result
    assert baked.newest_in_family("data") == result["imageId"]
    assert _disks(baked, result["imageId"]) == [("system", 40), ("data", 100), ("data", 20)]
    promoted = baked.image(result["imageId"])
    assert baked.failing_check_items(promoted) == []
    assert promoted.detection_options.status == "Finished"
    # ... the images it replaced are gone, and their snapshots only where the promoted image needs them
    assert [i.image_id for i in baked.images()] == [result["imageId"]]
    assert baked.snapshot_ids() == baked.snapshot_ids_of(promoted)
    assert baked.calls("StartExecution") == 1


def test_a_preflight_cloud_assistant_could_not_run_names_its_reason(bake, monkeypatch):
    # Given Cloud Assistant refuses to run scripts (here: the local cloud's sandbox mode is mistyped)
    monkeypatch.setenv("LOCALCLOUD_SANDBOX", "off")
    baked = bake({"seed": 110, "instances": [{"id": "i-app"}], "actions": [trigger("i-app")]})

    # Then the bake fails with Cloud Assistant's own ErrorInfo, not "output could not be read"
    result = baked.bake_of("i-app")
    assert result["reason"] == "preflight-error", result
    assert "ExecutionException" in result["message"] and "LOCALCLOUD_SANDBOX" in result["message"], result


def test_a_bake_that_ends_after_its_repair_finished_takes_the_bare_repaired_image_with_it(bake):
    # Given a repair that succeeds, then a permanent error while Bakery reads its result
    scenario = {
        "seed": 111,
        "instances": [{"id": "i-r", "guest": {"check_failures": ["Nvme"]}}],
        # the 3rd ListExecutions is the one that finds the execution Success (the two before see it Running)
        "faults": [{"action": "ListExecutions", "code": "Forbidden.RAM", "nth": 3}],
        "actions": [trigger("i-r", family="web")],
    }
    baked = bake(scenario)

    # Then the bake fails saying why, and the repaired image ACS-ECS-RepairImage made (bare: no tags) is gone too
    result = baked.bake_of("i-r")
    assert result["state"] == "failed" and result["reason"] == "missing-permission", result
    assert baked.calls("StartExecution") == 1
    assert baked.images() == []


def test_retention_deleting_an_image_never_leaks_its_snapshot_when_deletes_fail(bake):
    # Given a family with one earlier image, RetentionAction=delete keeping 1, and DeleteSnapshot failing 3x
    scenario = {
        "seed": 112,
        "images": [{"id": "m-v1", "family": "web", "age_days": 30, "check_failures": [],
                    "tags": {tags.BAKE_ID: "b-00000000000000a1", tags.STATE: tags.READY}}],
        "instances": [{"id": "i-a"}],
        "faults": [{"action": "DeleteSnapshot", "code": "ServiceUnavailable", "nth": n} for n in (1, 2, 3)],
        "actions": [trigger("i-a", family="web")],
    }  # fmt: skip
    history_snapshots: set[str] = set()

    def remember(run) -> None:
        history_snapshots.update(m.snapshot_id for m in run.cloud.ecs.images["m-v1"].mappings)

    baked = bake(scenario, parameters={"RetentionKeep": "1", "RetentionAction": "delete"}, before_run=remember,
                 settle_seconds=3700)  # fmt: skip

    # Then the old image is gone, and so — once the sweep's hourly collection ran — is its snapshot
    assert baked.bake_of("i-a")["state"] == "ready"
    assert baked.image("m-v1") is None
    assert history_snapshots and not history_snapshots & baked.snapshot_ids()
