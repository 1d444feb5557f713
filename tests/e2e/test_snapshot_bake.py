"""Bakes from snapshots: one image from snapshots of disks on different instances (the first is the system
disk), requested with `bakery:Bake:Requested {"snapshotIds": [...]}` and taken through the same check →
repair → promote path as an instance bake. The operator's snapshots are theirs: no ending deletes them."""

from __future__ import annotations

import json
from typing import Any

from alibabacloud_ecs20140526 import models as m
from alibabacloud_eventbridge20200401 import models as eb

from bakery import tags
from bakery_tools.local import LocalRun

APP = {"id": "i-app1", "disks": [{"type": "system", "size": 40}, {"type": "data", "size": 20}]}
DB = {"id": "i-db1", "disks": [{"type": "system", "size": 40}, {"type": "data", "size": 100}]}
FAST_SNAPSHOTS = {"snapshot_seconds_per_gib": 1}


def snapshot_disk(run: LocalRun, instance_id: str, disk_type: str, allow_requests: bool = True) -> str:
    """What the operator did beforehand: CreateSnapshot of one disk, through the real SDK — tagged
    `bakery:allow-requests=true` (what `bakery bake --snapshots` does) unless `allow_requests` is False."""
    ecs, region = run.cloud_env.ecs, run.cloud.region
    disks = ecs.describe_disks(m.DescribeDisksRequest(region_id=region, instance_id=instance_id)).body.disks.disk
    (disk,) = [d for d in disks if d.type == disk_type]
    opt_in = [m.CreateSnapshotRequestTag(key=tags.ALLOW_REQUESTS, value="true")] if allow_requests else None
    return ecs.create_snapshot(
        m.CreateSnapshotRequest(disk_id=disk.disk_id, snapshot_name=f"op-{instance_id}", tag=opt_in)
    ).body.snapshot_id


def request_bake(run: LocalRun, data: dict[str, Any], event_id: str = "op-request-1") -> None:
    """PutEvents `bakery:Bake:Requested` onto the bakery bus with the real EventBridge SDK (what `bakery bake
    --snapshots` does)."""
    entry = eb.PutEventsRequestEventList(
        id=event_id, source="bakery", type="bakery:Bake:Requested", subject=data.get("bakeId", ""),
        spec_version="1.0", data_content_type="application/json", data=json.dumps(data),
    )  # fmt: skip
    body = run.cloud_env.eventbridge.put_events(eb.PutEventsRequest(event_bus_name="bakery", event_list=[entry])).body
    assert not body.data.failed_entry_count, body.to_map()


def operator_snapshots(sources: list[tuple[str, str]], data: dict[str, Any], holder: dict[str, Any], copies: int = 1):
    """before_run: snapshot the given (instance, disk type) pairs, wait until they are accomplished, then
    request the bake (`copies` times: a duplicated request)."""

    def before_run(run: LocalRun) -> None:
        ids = [snapshot_disk(run, instance_id, disk_type) for instance_id, disk_type in sources]
        run.runtime.run_until(run.cloud.clock.now + 200)  # 100 GiB at 1 s/GiB: accomplished
        run.initial_snapshots |= set(ids)  # the operator's, from before the bake: not Bakery's to clean up
        holder["snapshots"] = ids
        for n in range(copies):
            request_bake(run, {"snapshotIds": ids, **data}, event_id=f"op-request-{n}")

    return before_run


def bake_images(baked: Any, bake_id: str) -> list[Any]:
    return [i for i in baked.images() if baked.image_tags(i).get(tags.BAKE_ID) == bake_id]


def test_snapshots_of_two_instances_become_one_checked_image_promoted_into_the_family(bake):
    # Given the system disk of i-app1 and the data disk of i-db1, snapshotted by the operator
    held: dict[str, Any] = {}
    request = {"family": "app", "name": "app-merged", "bakeId": "b-snap000000000001"}
    scenario = {"seed": 11, "timings": FAST_SNAPSHOTS, "instances": [APP, DB]}

    # When a bake of them is requested on the bakery bus (twice: the request is delivered again)
    baked = bake(scenario, before_run=operator_snapshots([("i-app1", "system"), ("i-db1", "data")], request, held,
                                                         copies=2))  # fmt: skip

    # Then the bake is ready: one image, promoted into "app", made of exactly those snapshots, system disk first
    (result,) = baked.report["bakes"]
    assert result["bakeId"] == "b-snap000000000001"
    assert result["state"] == "ready", result
    assert result["attempts"] == 1 and result["family"] == "app"
    (image,) = bake_images(baked, "b-snap000000000001")
    assert image.image_id == result["imageId"] == baked.newest_in_family("app")
    mappings = image.disk_device_mappings.disk_device_mapping
    assert [(mp.snapshot_id, mp.type) for mp in mappings] == [(held["snapshots"][0], "system"),
                                                            (held["snapshots"][1], "data")]  # fmt: skip
    assert image.image_name == "app-merged-b-snap000000000001-1"
    assert baked.calls("CreateImage") == 1
    # And its lineage names the snapshots (short form) instead of an instance
    lineage = baked.image_tags(image)
    assert lineage[tags.STATE] == tags.READY
    assert tags.unpack_snapshot_ids(lineage) == held["snapshots"]
    assert tags.SOURCE_INSTANCE not in lineage
    # And no instance was touched: no stop, no preflight, no tag
    assert not baked.mutations() & {"StopInstance", "StartInstance", "RunCommand"}
    for instance_id in ("i-app1", "i-db1"):
        assert not [k for k in baked.instance_tags(instance_id) if k.startswith("bakery:")]
        assert baked.status(instance_id) == "Running"
    # And Ready says which snapshots it came from through its CreationStarted, and the snapshots still exist
    (started,) = {json.dumps(e["data"], sort_keys=True) for e in baked.events("bakery:Image:CreationStarted")}
    assert json.loads(started)["snapshotIds"] == held["snapshots"]
    assert set(held["snapshots"]) <= baked.snapshot_ids()


def test_a_snapshot_bake_whose_check_fails_is_repaired_and_promoted_keeping_the_operators_snapshots(bake):
    # Given a system disk whose guest has no NVMe driver, snapshotted with another instance's data disk
    held: dict[str, Any] = {}
    broken_app = {**APP, "guest": {"check_failures": ["Nvme"]}}
    scenario = {"seed": 12, "timings": FAST_SNAPSHOTS, "instances": [broken_app, DB]}

    # When a bake of them into "app" is requested
    baked = bake(scenario, before_run=operator_snapshots([("i-app1", "system"), ("i-db1", "data")],
                                                         {"family": "app", "bakeId": "b-snap000000000002"}, held))  # fmt: skip

    # Then the check fails on Nvme, ACS-ECS-RepairImage repairs it, and the repaired image is promoted
    (result,) = baked.report["bakes"]
    assert result["state"] == "ready", result
    assert result["attempts"] == 2
    (check_failed,) = baked.events("bakery:Image:CheckFailed")
    assert [i["name"] for i in check_failed["data"]["items"]] == ["Nvme"]
    # ... ACS-ECS-RepairImage brings back the system disk only (it repairs DiskDeviceMapping[0]), so the
    # repaired image is put back together with the data disk, and that one is promoted
    repaired, reassembled = baked.events("bakery:Image:Repaired")
    assert reassembled["data"]["reassembledFrom"] == repaired["data"]["imageId"]
    assert reassembled["data"]["imageId"] == result["imageId"] == baked.newest_in_family("app")
    promoted = baked.image(result["imageId"])
    assert [mp.type for mp in promoted.disk_device_mappings.disk_device_mapping] == ["system", "data"]
    lineage = baked.image_tags(promoted)
    assert lineage[tags.REPAIRED_FROM] == check_failed["data"]["imageId"]
    assert tags.unpack_snapshot_ids(lineage) == held["snapshots"]
    assert baked.failing_check_items(promoted) == []
    # And the broken image is gone, but the operator's snapshots it was made of are not
    assert baked.image(check_failed["data"]["imageId"]) is None
    assert set(held["snapshots"]) <= baked.snapshot_ids()
    assert not baked.mutations() & {"StopInstance", "StartInstance", "RunCommand"}


def test_an_unknown_snapshot_fails_the_bake_naming_it_and_how_to_check(bake):
    # Given one real snapshot and one id that does not exist
    held: dict[str, Any] = {}

    def before_run(run: LocalRun) -> None:
        operator_snapshots([("i-app1", "system")], {}, held, copies=0)(run)
        request_bake(run, {"snapshotIds": [held["snapshots"][0], "s-doesnotexist"], "family": "app",
                           "bakeId": "b-snap000000000003"})  # fmt: skip

    # When the bake is requested
    baked = bake({"seed": 13, "timings": FAST_SNAPSHOTS, "instances": [APP]}, before_run=before_run)

    # Then it fails once, before any image, with a reason that names the bad id and how to list snapshots
    (result,) = baked.report["bakes"]
    assert result["state"] == "failed" and result["reason"] == "snapshot-not-found", result
    (failed,) = baked.events("bakery:Bake:Failed")
    assert "s-doesnotexist" in failed["data"]["message"]
    assert held["snapshots"][0] not in failed["data"]["message"].split("not found:")[1].split(".")[0]
    assert "DescribeSnapshots" in failed["data"]["message"]
    assert failed["data"]["snapshotIds"] == [held["snapshots"][0], "s-doesnotexist"]
    assert baked.calls("CreateImage") == 0
    assert bake_images(baked, "b-snap000000000003") == []
    # And the real snapshot is untouched
    assert held["snapshots"][0] in baked.snapshot_ids()


def test_a_snapshot_bake_whose_image_ends_create_failed_is_made_again_from_its_lineage_tag(bake):
    # Given a snapshot bake whose first image ECS will end CreateFailed
    held: dict[str, Any] = {}
    broken: list[str] = []

    def fail_first_image(run: LocalRun) -> None:
        for image in run.cloud.ecs.images.values():
            if image.tags.get(tags.BAKE_ID) == "b-snap000000000004" and not broken:
                image.fails = True  # the emulator ends it CreateFailed when its creation time is up
                broken.append(image.image_id)

    # When a bake of them is requested
    baked = bake({"seed": 14, "timings": FAST_SNAPSHOTS, "instances": [APP, DB]},
                 before_run=operator_snapshots([("i-app1", "system"), ("i-db1", "data")],
                                               {"family": "app", "bakeId": "b-snap000000000004"}, held),
                 on_step=fail_first_image, step_seconds=30)  # fmt: skip

    # Then a second image is made from the snapshots named in the first one's tags, and it is promoted
    (result,) = baked.report["bakes"]
    assert result["state"] == "ready", result
    assert result["attempts"] == 2 and broken and result["imageId"] != broken[0]
    assert baked.calls("CreateImage") == 2
    assert baked.image(broken[0]) is None
    promoted = baked.image(result["imageId"])
    assert baked.snapshot_ids_of(promoted) == set(held["snapshots"])
    assert baked.image_tags(promoted)[tags.ATTEMPT] == "2"
    # And the operator's snapshots survived the first image's deletion
    assert set(held["snapshots"]) <= baked.snapshot_ids()


def test_seventeen_snapshots_the_most_a_mapping_takes_fit_the_lineage_tags_and_bake(bake):
    # Given an instance with a system disk and 16 data disks, every disk snapshotted
    disks = [{"type": "system", "size": 40}] + [{"type": "data", "size": 20} for _ in range(16)]
    held: dict[str, Any] = {}

    def before_run(run: LocalRun) -> None:
        ecs, region = run.cloud_env.ecs, run.cloud.region
        found = ecs.describe_disks(m.DescribeDisksRequest(region_id=region, instance_id="i-big1", max_results=100))
        ordered = sorted(found.body.disks.disk, key=lambda d: (d.type != "system", d.device))
        opt_in = [m.CreateSnapshotRequestTag(key=tags.ALLOW_REQUESTS, value="true")]
        ids = [ecs.create_snapshot(m.CreateSnapshotRequest(disk_id=d.disk_id, tag=opt_in)).body.snapshot_id
               for d in ordered]  # fmt: skip
        run.runtime.run_until(run.cloud.clock.now + 200)
        run.initial_snapshots |= set(ids)
        held["snapshots"] = ids
        request_bake(run, {"snapshotIds": ids, "family": "big", "bakeId": "b-snap000000000005"})

    # When they are baked into one image
    baked = bake({"seed": 15, "timings": FAST_SNAPSHOTS, "instances": [{"id": "i-big1", "disks": disks}]},
                 before_run=before_run)  # fmt: skip

    # Then the image is promoted with all 17 disks, and its lineage keeps every id in tags of <= 128 characters
    (result,) = baked.report["bakes"]
    assert result["state"] == "ready", result
    promoted = baked.image(result["imageId"])
    assert baked.snapshot_ids_of(promoted) == set(held["snapshots"])
    lineage = baked.image_tags(promoted)
    assert tags.unpack_snapshot_ids(lineage) == held["snapshots"]
    source_tags = {k: v for k, v in lineage.items() if k.startswith(tags.SOURCE_SNAPSHOTS)}
    assert len(source_tags) > 1 and all(len(v) <= 128 for v in source_tags.values())


def test_a_malformed_snapshot_request_is_dropped_without_touching_anything(bake):
    # Given requests whose snapshotIds are not a list of distinct snapshot ids
    def before_run(run: LocalRun) -> None:
        for n, ids in enumerate(["s-1", [], ["vol-1"], ["s-1", "s-1"], [f"s-{i}" for i in range(18)]]):
            request_bake(run, {"snapshotIds": ids, "family": "app"}, event_id=f"bad-{n}")

    # When they reach the bake function
    baked = bake({"seed": 16, "instances": [APP]}, before_run=before_run)

    # Then each is dropped as invalid (no retry, no bake, no write), saying what snapshotIds must be
    deliveries = baked.deliveries(function="bakery-bake", event_type="bakery:Bake:Requested")
    assert len(deliveries) == 5
    for delivery in deliveries:
        assert delivery.outcome == "ok" and delivery.attempt == 1
        assert json.loads(delivery.result)["status"] == "dropped"
        assert "snapshotIds must be 1-17 distinct snapshot ids" in json.loads(delivery.result)["reason"]
    assert baked.report["bakes"] == [] and baked.mutations() == set()


def test_a_second_bake_of_the_same_snapshots_in_flight_is_refused_and_the_first_goes_on(bake):
    # Given a bake of two snapshots under way
    held: dict[str, Any] = {}
    first = {"family": "app", "bakeId": "b-snap000000000006"}

    def before_run(run: LocalRun) -> None:
        operator_snapshots([("i-app1", "system"), ("i-db1", "data")], first, held)(run)
        run.runtime.run_until(run.cloud.clock.now + 30)  # the first image is being created
        # When another bake of the same snapshots is requested (another bake id: a second request, not a copy)
        request_bake(run, {"snapshotIds": held["snapshots"], "family": "app", "bakeId": "b-snap000000000007"},
                     event_id="op-request-again")  # fmt: skip

    baked = bake({"seed": 17, "timings": FAST_SNAPSHOTS, "instances": [APP, DB]}, before_run=before_run)

    # Then the second ends already-baking, naming the first, without an image; the first is promoted
    by_id = {b["bakeId"]: b for b in baked.report["bakes"]}
    assert by_id["b-snap000000000006"]["state"] == "ready"
    assert by_id["b-snap000000000007"]["state"] == "failed"
    assert by_id["b-snap000000000007"]["reason"] == "already-baking"
    (failed,) = baked.events("bakery:Bake:Failed")
    assert failed["data"]["inFlight"] == "b-snap000000000006" and "b-snap000000000006" in failed["data"]["message"]
    assert bake_images(baked, "b-snap000000000007") == []
    assert baked.calls("CreateImage") == 1


def test_a_request_for_snapshots_that_did_not_opt_in_makes_nothing(bake):
    # Given one snapshot tagged bakery:allow-requests=true and one that is not (anyone may PutEvents on the bus)
    held: dict[str, Any] = {}

    def before_run(run: LocalRun) -> None:
        ids = [snapshot_disk(run, "i-app1", "system"), snapshot_disk(run, "i-db1", "data", allow_requests=False)]
        run.runtime.run_until(run.cloud.clock.now + 200)
        run.initial_snapshots |= set(ids)
        held["snapshots"] = ids
        request_bake(run, {"snapshotIds": ids, "family": "app", "bakeId": "b-snap000000000009"})

    # When the bake is requested
    baked = bake({"seed": 19, "timings": FAST_SNAPSHOTS, "instances": [APP, DB]}, before_run=before_run)

    # Then it is refused naming the snapshot and the tag, and no image is made
    (result,) = baked.report["bakes"]
    assert result["state"] == "failed" and result["reason"] == "request-not-allowed", result
    assert held["snapshots"][1] in result["message"] and tags.ALLOW_REQUESTS in result["message"]
    assert baked.calls("CreateImage") == 0
    assert baked.images() == []
