"""ECS snapshots through the real SDK: CreateSnapshot, DeleteSnapshot, DescribeSnapshots."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.integration._ecs import (
    assert_api_error,
    create_image,
    create_snapshot,
    describe_image,
    describe_snapshot,
    disks_of,
    events_of_type,
    find_snapshots,
    system_disk_id,
)

# 20 GiB system + 50 GiB data at 10 s/GiB: snapshots take 200 s and 500 s.
SRC = {"id": "i-src", "disks": [{"type": "system", "size": 20}, {"type": "data", "size": 50}]}
TIMINGS = {"image_seconds_per_gib": 10}


def _env(make_env, *instances, **extra):
    return make_env({"timings": TIMINGS, "instances": list(instances) or [SRC], **extra})


def _delete(env, snapshot_id, **fields):
    return env.ecs.delete_snapshot(ecs_models.DeleteSnapshotRequest(snapshot_id=snapshot_id, **fields))


def _data_disk_id(env, instance_id="i-src"):
    return disks_of(env, instance_id, disk_type="data")[0].disk_id


# -- CreateSnapshot --------------------------------------------------------------------------------------


def test_create_snapshot_progresses_then_is_accomplished(make_env):
    # Given a 20 GiB system disk (200 s to snapshot)
    env = _env(make_env)
    disk_id = system_disk_id(env, "i-src")

    # When snapshotting it and letting time pass
    snapshot_id = create_snapshot(env, disk_id, snapshot_name="manual-1")
    at_start = describe_snapshot(env, snapshot_id)
    env.cloud.advance(100)
    halfway = describe_snapshot(env, snapshot_id)
    env.cloud.advance(100)
    done = describe_snapshot(env, snapshot_id)

    # Then it is progressing with rising Progress, then accomplished at 100%
    assert (at_start.status, at_start.progress, at_start.available) == ("progressing", "0%", False)
    assert (halfway.status, halfway.progress) == ("progressing", "50%")
    assert (done.status, done.progress, done.available) == ("accomplished", "100%", True)
    assert (done.snapshot_name, done.source_disk_id, done.source_disk_type) == ("manual-1", disk_id, "system")
    assert done.source_disk_size == "20"


def test_create_snapshot_completion_emits_an_event(make_env):
    # Given a disk
    env = _env(make_env)
    disk_id = system_disk_id(env, "i-src")

    # When a snapshot of it completes
    snapshot_id = create_snapshot(env, disk_id)
    not_yet = events_of_type(env, "ecs:Snapshot:CreateSnapshotCompleted")
    env.cloud.advance(200)

    # Then exactly one ecs:Snapshot:CreateSnapshotCompleted event names the snapshot, disk and result
    (event,) = events_of_type(env, "ecs:Snapshot:CreateSnapshotCompleted")
    assert not_yet == []
    assert event["source"] == "acs.ecs"
    assert event["data"]["snapshotId"] == snapshot_id
    assert event["data"]["diskId"] == disk_id
    assert event["data"]["result"] == "accomplished"
    assert event["subject"].endswith(f":{snapshot_id}") and event["subject"].startswith("acs.ecs:")


def test_create_snapshot_keeps_retention_days_description_and_tags(make_env):
    # Given a disk
    env = _env(make_env)

    # When snapshotting it with RetentionDays, Description and a tag
    snapshot_id = create_snapshot(
        env,
        system_disk_id(env, "i-src"),
        retention_days=1,
        description="before upgrade",
        tag=[ecs_models.CreateSnapshotRequestTag(key="purpose", value="backup")],
    )

    # Then DescribeSnapshots shows them
    snapshot = describe_snapshot(env, snapshot_id)
    assert (snapshot.retention_days, snapshot.description) == (1, "before upgrade")
    assert [(t.tag_key, t.tag_value) for t in snapshot.tags.tag] == [("purpose", "backup")]


def test_create_snapshot_of_a_local_disk_is_refused(make_env):
    # Given an i3 instance's local SSD
    env = _env(make_env, {"id": "i-i3", "type": "ecs.i3.xlarge"})
    (local,) = [d for d in disks_of(env, "i-i3") if d.category.startswith("local_")]

    # When snapshotting it
    with pytest.raises(ClientException) as excinfo:
        create_snapshot(env, local.disk_id)

    # Then the local disk is refused by name, and no snapshot exists
    assert_api_error(excinfo.value, "InvalidDiskCategory.NotSupported", 403, local.disk_id, "local disk")
    assert find_snapshots(env) == []


def test_create_snapshot_of_an_unknown_disk_is_not_found(make_env):
    # Given a region without that disk
    env = _env(make_env)

    # When snapshotting it
    with pytest.raises(ClientException) as excinfo:
        create_snapshot(env, "d-nope")

    # Then 404 InvalidDiskId.NotFound
    assert_api_error(excinfo.value, "InvalidDiskId.NotFound", 404, "DiskId")


def test_create_snapshot_while_one_of_the_same_disk_progresses_is_refused(make_env):
    # Given a snapshot of a disk in progress
    env = _env(make_env)
    disk_id = system_disk_id(env, "i-src")
    create_snapshot(env, disk_id)

    # When snapshotting the same disk again
    with pytest.raises(ClientException) as excinfo:
        create_snapshot(env, disk_id)

    # Then IncorrectDiskStatus.CreatingSnapshot
    assert_api_error(excinfo.value, "IncorrectDiskStatus.CreatingSnapshot", 403, disk_id)


def test_create_snapshot_of_another_disk_meanwhile_is_allowed(make_env):
    # Given a snapshot of the system disk in progress
    env = _env(make_env)
    create_snapshot(env, system_disk_id(env, "i-src"))

    # When snapshotting the data disk
    snapshot_id = create_snapshot(env, _data_disk_id(env))

    # Then it is accepted
    assert describe_snapshot(env, snapshot_id).status == "progressing"


@pytest.mark.parametrize("name", ["auto-nightly", "x", "http://snap"])
def test_create_snapshot_with_a_malformed_name_is_refused(make_env, name):
    # Given a disk
    env = _env(make_env)

    # When the SnapshotName starts with auto / http:// or is too short
    with pytest.raises(ClientException) as excinfo:
        create_snapshot(env, system_disk_id(env, "i-src"), snapshot_name=name)

    # Then InvalidSnapshotName.Malformed
    assert_api_error(excinfo.value, "InvalidSnapshotName.Malformed", 400, "auto")


def test_create_snapshot_beyond_the_snapshot_quota_is_refused(make_env):
    # Given a quota of one snapshot, already used
    env = _env(make_env, quotas={"snapshots": 1})
    create_snapshot(env, system_disk_id(env, "i-src"))

    # When taking another
    with pytest.raises(ClientException) as excinfo:
        create_snapshot(env, _data_disk_id(env))

    # Then 403 QuotaExceed.Snapshot
    assert_api_error(excinfo.value, "QuotaExceed.Snapshot", 403, "snapshot quota")


def test_create_snapshot_without_disk_id_is_missing_parameter(make_env):
    # Given a region
    env = _env(make_env)

    # When CreateSnapshot names no disk
    with pytest.raises(ClientException) as excinfo:
        env.ecs.create_snapshot(ecs_models.CreateSnapshotRequest())

    # Then MissingParameter names DiskId
    assert_api_error(excinfo.value, "MissingParameter", 400, "DiskId")


# -- DeleteSnapshot --------------------------------------------------------------------------------------


def test_delete_snapshot_removes_it(make_env):
    # Given an accomplished snapshot
    env = _env(make_env)
    snapshot_id = create_snapshot(env, system_disk_id(env, "i-src"))
    env.cloud.advance(200)

    # When deleting it
    _delete(env, snapshot_id)

    # Then DescribeSnapshots no longer lists it
    assert find_snapshots(env, snapshot_ids=json.dumps([snapshot_id])) == []


def test_delete_snapshot_of_a_missing_snapshot_is_silently_ignored(make_env):
    # Given a region without that snapshot
    env = _env(make_env)

    # When deleting it
    response = _delete(env, "s-nope")

    # Then the call succeeds
    assert response.status_code == 200
    assert response.body.request_id


def test_delete_snapshot_used_by_an_image_is_refused(make_env):
    # Given an image whose system-disk snapshot it made
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")
    env.cloud.advance(3600)
    snapshot_id = describe_image(env, image_id).disk_device_mappings.disk_device_mapping[0].snapshot_id

    # When deleting the snapshot
    with pytest.raises(ClientException) as excinfo:
        _delete(env, snapshot_id)

    # Then 403 SnapshotCreatedImage names the image, and the snapshot stays
    assert_api_error(excinfo.value, "SnapshotCreatedImage", 403, "user defined image", image_id)
    assert describe_snapshot(env, snapshot_id).status == "accomplished"


def test_delete_snapshot_used_by_an_image_is_refused_even_with_force(make_env):
    # Given a snapshot an image uses
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")
    env.cloud.advance(3600)
    snapshot_id = describe_image(env, image_id).disk_device_mappings.disk_device_mapping[0].snapshot_id

    # When deleting it with Force=True
    with pytest.raises(ClientException) as excinfo:
        _delete(env, snapshot_id, force=True)

    # Then Force does not override SnapshotCreatedImage
    assert_api_error(excinfo.value, "SnapshotCreatedImage", 403, image_id)


def test_delete_snapshot_works_once_its_image_is_deleted(make_env):
    # Given a snapshot an image uses
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")
    env.cloud.advance(3600)
    snapshot_id = describe_image(env, image_id).disk_device_mappings.disk_device_mapping[0].snapshot_id

    # When the image is deleted first, then the snapshot
    env.ecs.delete_image(ecs_models.DeleteImageRequest(region_id=env.region, image_id=image_id))
    _delete(env, snapshot_id)

    # Then the snapshot is gone
    assert find_snapshots(env, snapshot_ids=json.dumps([snapshot_id])) == []


def test_delete_snapshot_publishes_a_snapshot_deleted_event(make_env):
    # Given an accomplished snapshot
    env = _env(make_env)
    snapshot_id = create_snapshot(env, system_disk_id(env, "i-src"))
    env.cloud.advance(200)

    # When deleting it
    _delete(env, snapshot_id)

    # Then an ecs:Snapshot:SnapshotDeleted event names it
    (event,) = events_of_type(env, "ecs:Snapshot:SnapshotDeleted")
    assert event["data"]["snapshotId"] == snapshot_id


# -- DescribeSnapshots -----------------------------------------------------------------------------------


def test_describe_snapshots_filters_by_snapshot_ids_json_array(make_env):
    # Given snapshots of two disks
    env = _env(make_env)
    system = create_snapshot(env, system_disk_id(env, "i-src"))
    data = create_snapshot(env, _data_disk_id(env))

    # When asking for one of them with the JSON-array SnapshotIds param
    snapshots = find_snapshots(env, snapshot_ids=json.dumps([data]))

    # Then exactly that one comes back
    assert [s.snapshot_id for s in snapshots] == [data]
    assert system != data


def test_describe_snapshots_filters_by_disk_id(make_env):
    # Given snapshots of two disks
    env = _env(make_env)
    data_disk = _data_disk_id(env)
    create_snapshot(env, system_disk_id(env, "i-src"))
    data = create_snapshot(env, data_disk)

    # When filtering on the data disk
    snapshots = find_snapshots(env, disk_id=data_disk)

    # Then only its snapshot comes back
    assert [(s.snapshot_id, s.source_disk_type) for s in snapshots] == [(data, "data")]


def test_describe_snapshots_filters_by_status(make_env):
    # Given one accomplished snapshot (200 s) and one progressing (500 s)
    env = _env(make_env)
    system = create_snapshot(env, system_disk_id(env, "i-src"))
    data = create_snapshot(env, _data_disk_id(env))
    env.cloud.advance(300)

    # When filtering on each status
    accomplished = [s.snapshot_id for s in find_snapshots(env, status="accomplished")]
    progressing = [s.snapshot_id for s in find_snapshots(env, status="progressing")]
    everything = {s.snapshot_id for s in find_snapshots(env, status="all")}

    # Then each holds the matching snapshot, and all holds both
    assert (accomplished, progressing) == ([system], [data])
    assert everything == {system, data}


def test_describe_snapshots_rejects_an_unknown_status(make_env):
    # Given a region
    env = _env(make_env)

    # When filtering on a status snapshots do not have
    with pytest.raises(ClientException) as excinfo:
        find_snapshots(env, status="done")

    # Then the value is refused
    assert_api_error(excinfo.value, "InvalidStatus.ValueNotSupported", 400, "done")


def test_describe_snapshots_filters_by_usage_image_or_none(make_env):
    # Given a manual snapshot and an image (which takes its own snapshots)
    env = _env(make_env)
    manual = create_snapshot(env, system_disk_id(env, "i-src"))
    env.cloud.advance(3600)
    image_id = create_image(env, instance_id="i-src")
    env.cloud.advance(3600)
    image_snapshots = {m.snapshot_id for m in describe_image(env, image_id).disk_device_mappings.disk_device_mapping}

    # When filtering on Usage
    used = {s.snapshot_id for s in find_snapshots(env, usage="image")}
    unused = {s.snapshot_id for s in find_snapshots(env, usage="none")}

    # Then the image's snapshots are usage=image and the manual one usage=none
    assert used == image_snapshots
    assert unused == {manual}
    assert describe_snapshot(env, manual).usage == "none"


def test_describe_snapshots_filters_by_source_disk_type(make_env):
    # Given snapshots of a system and a data disk
    env = _env(make_env)
    system = create_snapshot(env, system_disk_id(env, "i-src"))
    create_snapshot(env, _data_disk_id(env))

    # When filtering on SourceDiskType=system
    snapshots = find_snapshots(env, source_disk_type="system")

    # Then only the system-disk snapshot comes back
    assert [s.snapshot_id for s in snapshots] == [system]


def test_describe_snapshots_pages_with_next_token(make_env):
    # Given three snapshots
    env = _env(make_env, SRC, {"id": "i-b"})
    for disk in [*disks_of(env, "i-src"), *disks_of(env, "i-b")]:
        create_snapshot(env, disk.disk_id)

    # When reading them two at a time
    first = env.ecs.describe_snapshots(ecs_models.DescribeSnapshotsRequest(region_id=env.region, max_results=2)).body
    second = env.ecs.describe_snapshots(
        ecs_models.DescribeSnapshotsRequest(region_id=env.region, max_results=2, next_token=first.next_token)
    ).body

    # Then two pages hold all three, and the last has no NextToken
    assert (len(first.snapshots.snapshot), len(second.snapshots.snapshot)) == (2, 1)
    assert first.next_token and not second.next_token
    assert first.total_count == 3


def test_describe_snapshots_without_matches_returns_an_empty_container(make_env):
    # Given a region with no snapshots
    env = _env(make_env)

    # When describing snapshots
    body = env.ecs.describe_snapshots(ecs_models.DescribeSnapshotsRequest(region_id=env.region)).body

    # Then Snapshots.Snapshot is an empty list
    assert body.snapshots.snapshot == []
    assert body.total_count == 0
