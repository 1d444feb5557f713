"""ECS custom images through the real SDK: CreateImage (sources, validation, idempotency, refusals),
the image lifecycle on the virtual clock, DescribeImages filters, ModifyImageAttribute,
ModifyImageSharePermission, DescribeImageFromFamily and DeleteImage."""

from __future__ import annotations

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.integration._ecs import (
    UBUNTU,
    assert_api_error,
    create_image,
    create_snapshot,
    describe_image,
    describe_snapshot,
    disks_of,
    find_images,
    image_exists,
    own_image_ids,
    system_disk_id,
    tags_of,
)

# 20 GiB at 10 s/GiB: an image of it is Available 200 s after CreateImage.
SRC = {"id": "i-src", "disks": [{"type": "system", "size": 20}]}
TWO_DISKS = {"id": "i-two", "disks": [{"type": "system", "size": 40}, {"type": "data", "size": 100}]}
TIMINGS = {"image_seconds_per_gib": 10, "usable_seconds": 30}


def _env(make_env, *instances, **extra):
    return make_env({"timings": TIMINGS, "instances": list(instances) or [SRC], **extra})


def _ready_image(env, instance_id="i-src", **fields):
    """An Available image of `instance_id` (the clock is moved past its creation)."""
    image_id = create_image(env, instance_id=instance_id, **fields)
    env.cloud.advance(3600)
    return image_id


def _ready_snapshot(env, disk_id):
    snapshot_id = create_snapshot(env, disk_id)
    env.cloud.advance(3600)
    return snapshot_id


def _modify(env, image_id, **fields):
    env.ecs.modify_image_attribute(
        ecs_models.ModifyImageAttributeRequest(region_id=env.region, image_id=image_id, **fields)
    )


def _share(env, image_id, add=None, remove=None):
    env.ecs.modify_image_share_permission(
        ecs_models.ModifyImageSharePermissionRequest(
            region_id=env.region, image_id=image_id, add_account=add, remove_account=remove
        )
    )


def _from_family(env, family):
    return env.ecs.describe_image_from_family(
        ecs_models.DescribeImageFromFamilyRequest(region_id=env.region, image_family=family)
    ).body.image


def _delete(env, image_id, **fields):
    env.ecs.delete_image(ecs_models.DeleteImageRequest(region_id=env.region, image_id=image_id, **fields))


def _mapping(snapshot_id, disk_type, device, size=None):
    return ecs_models.CreateImageRequestDiskDeviceMapping(
        snapshot_id=snapshot_id, disk_type=disk_type, device=device, size=size
    )


# -- CreateImage: sources --------------------------------------------------------------------------------


def test_create_image_from_instance_snapshots_every_disk(make_env):
    # Given an instance with a system and a data disk
    env = _env(make_env, TWO_DISKS)
    disks = {d.type: d for d in disks_of(env, "i-two")}

    # When creating an image of the instance
    image_id = create_image(env, instance_id="i-two", image_name="two-disks")

    # Then the image maps one fresh snapshot per disk, system first
    mappings = describe_image(env, image_id).disk_device_mappings.disk_device_mapping
    assert [(m.type, m.device, m.size) for m in mappings] == [
        ("system", "/dev/xvda", "40"),
        ("data", "/dev/xvdb", "100"),
    ]
    for mapping in mappings:
        snapshot = describe_snapshot(env, mapping.snapshot_id)
        assert snapshot.source_disk_id == disks[mapping.type].disk_id
    assert len({m.snapshot_id for m in mappings}) == 2


def test_create_image_from_a_snapshot_id(make_env):
    # Given an accomplished snapshot of a system disk
    env = _env(make_env)
    snapshot_id = _ready_snapshot(env, system_disk_id(env, "i-src"))

    # When creating an image from the SnapshotId
    image_id = create_image(env, snapshot_id=snapshot_id, image_name="from-snapshot")

    # Then the image's only mapping is that snapshot as the system disk
    image = describe_image(env, image_id)
    assert [(m.type, m.snapshot_id, m.size) for m in image.disk_device_mappings.disk_device_mapping] == [
        ("system", snapshot_id, "20")
    ]
    assert image.size == 20


def test_create_image_from_disk_device_mappings_across_two_instances(make_env):
    # Given a system-disk snapshot of one instance and a data-disk snapshot of another
    env = _env(make_env, SRC, TWO_DISKS)
    system_snapshot = _ready_snapshot(env, system_disk_id(env, "i-src"))
    data_disk = disks_of(env, "i-two", disk_type="data")[0].disk_id
    data_snapshot = _ready_snapshot(env, data_disk)

    # When creating an image from DiskDeviceMapping entries naming both
    image_id = create_image(
        env,
        image_name="combined",
        disk_device_mapping=[
            _mapping(system_snapshot, "system", "/dev/xvda"),
            _mapping(data_snapshot, "data", "/dev/xvdb", size=120),
        ],
    )

    # Then the image carries both snapshots with the requested devices and sizes
    mappings = describe_image(env, image_id).disk_device_mappings.disk_device_mapping
    assert [(m.type, m.device, m.snapshot_id, m.size) for m in mappings] == [
        ("system", "/dev/xvda", system_snapshot, "20"),
        ("data", "/dev/xvdb", data_snapshot, "120"),
    ]


def test_create_image_prefers_instance_id_over_disk_device_mapping_and_snapshot_id(make_env):
    # Given an instance and an accomplished snapshot of another instance
    env = _env(make_env, SRC, TWO_DISKS)
    other_snapshot = _ready_snapshot(env, system_disk_id(env, "i-src"))

    # When CreateImage names InstanceId, DiskDeviceMapping and SnapshotId at once
    image_id = create_image(
        env,
        instance_id="i-two",
        disk_device_mapping=[_mapping(other_snapshot, "system", "/dev/xvda")],
        snapshot_id=other_snapshot,
    )

    # Then the image is made of the instance's disks (two fresh snapshots), not of the given snapshot
    mappings = describe_image(env, image_id).disk_device_mappings.disk_device_mapping
    assert len(mappings) == 2
    assert other_snapshot not in {m.snapshot_id for m in mappings}


def test_create_image_prefers_disk_device_mapping_over_snapshot_id(make_env):
    # Given two accomplished system-disk snapshots
    env = _env(make_env, SRC, TWO_DISKS)
    mapped = _ready_snapshot(env, system_disk_id(env, "i-two"))
    ignored = _ready_snapshot(env, system_disk_id(env, "i-src"))

    # When CreateImage names both a DiskDeviceMapping and a SnapshotId
    image_id = create_image(env, disk_device_mapping=[_mapping(mapped, "system", "/dev/xvda")], snapshot_id=ignored)

    # Then the mapping wins
    mappings = describe_image(env, image_id).disk_device_mappings.disk_device_mapping
    assert [m.snapshot_id for m in mappings] == [mapped]


def test_create_image_without_any_source_is_missing_parameter(make_env):
    # Given a region
    env = _env(make_env)

    # When CreateImage names no InstanceId, SnapshotId or DiskDeviceMapping
    with pytest.raises(ClientException) as excinfo:
        create_image(env, image_name="nothing")

    # Then MissingParameter names the three possible sources
    assert_api_error(excinfo.value, "MissingParameter", 400, "SnapshotId", "InstanceId", "DiskDeviceMapping")


def test_create_image_from_an_unknown_instance_is_not_found(make_env):
    # Given a region without that instance
    env = _env(make_env)

    # When creating an image of it
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-nope")

    # Then 404 InvalidInstanceId.NotFound
    assert_api_error(excinfo.value, "InvalidInstanceId.NotFound", 404, "InstanceId")


def test_create_image_from_an_unknown_snapshot_is_not_found(make_env):
    # Given a region without that snapshot
    env = _env(make_env)

    # When creating an image from it
    with pytest.raises(ClientException) as excinfo:
        create_image(env, snapshot_id="s-nope")

    # Then 404 InvalidSnapshotId.NotFound
    assert_api_error(excinfo.value, "InvalidSnapshotId.NotFound", 404, "SnapshotId")


def test_create_image_from_a_progressing_snapshot_is_not_ready(make_env):
    # Given a snapshot that is still progressing
    env = _env(make_env)
    snapshot_id = create_snapshot(env, system_disk_id(env, "i-src"))

    # When creating an image from it
    with pytest.raises(ClientException) as excinfo:
        create_image(env, snapshot_id=snapshot_id)

    # Then 403 InvalidSnapshotId.NotReady names the snapshot
    assert_api_error(excinfo.value, "InvalidSnapshotId.NotReady", 403, snapshot_id, "progressing")


def test_create_image_from_mappings_without_a_system_snapshot_is_denied(make_env):
    # Given a data-disk snapshot only
    env = _env(make_env, TWO_DISKS)
    data_snapshot = _ready_snapshot(env, disks_of(env, "i-two", disk_type="data")[0].disk_id)

    # When the mappings hold only data disks
    with pytest.raises(ClientException) as excinfo:
        create_image(env, disk_device_mapping=[_mapping(data_snapshot, "data", "/dev/xvdb")])

    # Then OperationDenied: no system disk snapshot
    assert_api_error(excinfo.value, "OperationDenied", 400, "does not contain system disk snapshot")


def test_create_image_from_mappings_with_a_reused_device_is_refused(make_env):
    # Given two accomplished snapshots
    env = _env(make_env, TWO_DISKS)
    system_snapshot = _ready_snapshot(env, system_disk_id(env, "i-two"))
    data_snapshot = _ready_snapshot(env, disks_of(env, "i-two", disk_type="data")[0].disk_id)

    # When both mappings name /dev/xvda
    with pytest.raises(ClientException) as excinfo:
        create_image(
            env,
            disk_device_mapping=[
                _mapping(system_snapshot, "system", "/dev/xvda"),
                _mapping(data_snapshot, "data", "/dev/xvda"),
            ],
        )

    # Then InvalidDevice.InUse
    assert_api_error(excinfo.value, "InvalidDevice.InUse", 400, "/dev/xvda")


def test_create_image_mapping_smaller_than_its_snapshot_is_refused(make_env):
    # Given a 20 GiB system-disk snapshot
    env = _env(make_env)
    snapshot_id = _ready_snapshot(env, system_disk_id(env, "i-src"))

    # When mapping it to a 10 GiB disk
    with pytest.raises(ClientException) as excinfo:
        create_image(env, disk_device_mapping=[_mapping(snapshot_id, "system", "/dev/xvda", size=10)])

    # Then InvalidSize.ValueNotSupported
    assert_api_error(excinfo.value, "InvalidSize.ValueNotSupported", 400, snapshot_id)


def test_create_image_records_name_family_description_and_tags(make_env):
    # Given an instance
    env = _env(make_env)

    # When creating an image with a name, family, description and tags
    image_id = create_image(
        env,
        instance_id="i-src",
        image_name="bakery-web-1",
        image_family="bakery-web",
        description="baked by tests",
        tag=[ecs_models.CreateImageRequestTag(key="owner", value="bakery")],
    )

    # Then DescribeImages shows all of them
    image = describe_image(env, image_id)
    assert (image.image_name, image.image_family, image.description) == ("bakery-web-1", "bakery-web", "baked by tests")
    assert tags_of(image) == {"owner": "bakery"}
    assert (image.image_owner_alias, image.platform, image.ostype) == ("self", "Ubuntu", "linux")


# -- CreateImage: validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "1starts-with-a-digit",
        "x",
        "http://example.com/img",
        "https://img",
        "has space",
        "a" * 129,
        "aliyun-img",
        "acs:img",
    ],
)
def test_create_image_with_a_malformed_name_is_refused(make_env, name):
    # Given an instance
    env = _env(make_env)

    # When the ImageName breaks the naming rules
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", image_name=name)

    # Then InvalidImageName.Malformed, and no image was made
    assert_api_error(excinfo.value, "InvalidImageName.Malformed", 400, "wrongly formed")
    assert own_image_ids(env) == set()


@pytest.mark.parametrize("family", ["aliyun-family", "acs:family", "9family", "f", "http://family"])
def test_create_image_with_a_malformed_family_is_refused(make_env, family):
    # Given an instance
    env = _env(make_env)

    # When the ImageFamily breaks the naming rules
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", image_family=family)

    # Then InvalidImageFamily.Malformed
    assert_api_error(excinfo.value, "InvalidImageFamily.Malformed", 400, "ImageFamily")


@pytest.mark.parametrize("description", ["x", "http://example.com", "https://example.com", "d" * 257])
def test_create_image_with_a_malformed_description_is_refused(make_env, description):
    # Given an instance
    env = _env(make_env)

    # When the Description breaks the rules
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", description=description)

    # Then InvalidDescription.Malformed
    assert_api_error(excinfo.value, "InvalidDescription.Malformed", 400, "description")


@pytest.mark.parametrize("key", ["aliyun-owner", "acs:owner", "http://owner", "k" * 129])
def test_create_image_with_a_malformed_tag_key_is_refused(make_env, key):
    # Given an instance
    env = _env(make_env)

    # When a tag key is reserved or too long
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", tag=[ecs_models.CreateImageRequestTag(key=key, value="v")])

    # Then InvalidTagKey.Malformed
    assert_api_error(excinfo.value, "InvalidTagKey.Malformed", 400, "tag key")


def test_create_image_with_a_duplicate_tag_key_is_refused(make_env):
    # Given an instance
    env = _env(make_env)

    # When the same tag key is given twice
    with pytest.raises(ClientException) as excinfo:
        create_image(
            env,
            instance_id="i-src",
            tag=[
                ecs_models.CreateImageRequestTag(key="k", value="1"),
                ecs_models.CreateImageRequestTag(key="k", value="2"),
            ],
        )

    # Then Duplicate.TagKey
    assert_api_error(excinfo.value, "Duplicate.TagKey", 400, "'k'")


def test_create_image_with_more_than_20_tags_is_refused(make_env):
    # Given an instance
    env = _env(make_env)

    # When 21 tags are given
    tags = [ecs_models.CreateImageRequestTag(key=f"k{n}", value="v") for n in range(21)]
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", tag=tags)

    # Then NumberExceed.Tags
    assert_api_error(excinfo.value, "NumberExceed.Tags", 400, "20")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("platform", "BeOS", "InvalidPlatform.Malformed"),
        ("architecture", "sparc", "InvalidArchitecture.Malformed"),
        ("boot_mode", "Legacy", "InvalidBootMode.ValueNotSupported"),
        ("detection_strategy", "Thorough", "InvalidParameter.DetectionStrategy"),
    ],
)
def test_create_image_with_an_unsupported_enum_value_is_refused(make_env, field, value, code):
    # Given an instance
    env = _env(make_env)

    # When Platform / Architecture / BootMode / DetectionStrategy has a value ECS does not know
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", **{field: value})

    # Then the matching code names the value
    assert_api_error(excinfo.value, code, 400)
    if code != "InvalidParameter.DetectionStrategy":
        assert value in excinfo.value.data["Message"]


def test_create_image_with_a_name_already_used_is_duplicated(make_env):
    # Given an image named golden
    env = _env(make_env)
    _ready_image(env, image_name="golden")

    # When creating another image with the same name
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", image_name="golden")

    # Then InvalidImageName.Duplicated (the documented message has the typo "bean")
    assert_api_error(excinfo.value, "InvalidImageName.Duplicated", 400, "already bean used")


def test_create_image_beyond_the_image_quota_is_quota_exceed(make_env):
    # Given a quota of one custom image, already used
    env = _env(make_env, quotas={"images": 1})
    _ready_image(env, image_name="first")

    # When creating a second image
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", image_name="second")

    # Then 403 QuotaExceed.Image, and still one image
    assert_api_error(excinfo.value, "QuotaExceed.Image", 403, "Image Quota exceeds")
    assert len(own_image_ids(env)) == 1


def test_create_image_whose_snapshots_pass_the_snapshot_quota_is_quota_exceed(make_env):
    # Given a quota of two snapshots, and an instance with two disks, one snapshot already taken
    env = _env(make_env, TWO_DISKS, quotas={"snapshots": 2})
    disk = env.ecs.describe_disks(ecs_models.DescribeDisksRequest(region_id=env.region)).body.disks.disk[0]
    _ready_snapshot(env, disk.disk_id)

    # When creating an image of the instance (it would take two more snapshots)
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-two", image_name="both-disks")

    # Then 403 QuotaExceed.Snapshot (CreateImage's own snapshots count), and no image was made
    assert_api_error(excinfo.value, "QuotaExceed.Snapshot", 403, "snapshot quota")
    assert own_image_ids(env) == set()


# -- CreateImage: idempotency and DryRun ------------------------------------------------------------------------


def test_create_image_with_the_same_client_token_and_params_returns_the_same_image(make_env):
    # Given an image created with ClientToken tok-1
    env = _env(make_env)
    first = create_image(env, instance_id="i-src", image_name="idem", client_token="tok-1")

    # When the same request is retried with the same token (here while the first is still Creating)
    second = create_image(env, instance_id="i-src", image_name="idem", client_token="tok-1")

    # Then the same ImageId comes back and no second image exists
    assert second == first
    assert own_image_ids(env) == {first}


def test_create_image_with_the_same_client_token_and_other_params_is_refused(make_env):
    # Given an image created with ClientToken tok-1
    env = _env(make_env)
    create_image(env, instance_id="i-src", image_name="idem", client_token="tok-1")

    # When the token is reused with a different ImageName
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", image_name="other", client_token="tok-1")

    # Then 400 IdempotenceParamNotMatch
    assert_api_error(excinfo.value, "IdempotenceParamNotMatch", 400, "client token")
    assert len(own_image_ids(env)) == 1


def test_create_image_with_a_different_client_token_makes_a_new_image(make_env):
    # Given an Available image created with ClientToken tok-1
    env = _env(make_env)
    first = create_image(env, instance_id="i-src", client_token="tok-1")
    env.cloud.advance(3600)

    # When the same params come with another token
    second = create_image(env, instance_id="i-src", client_token="tok-2")

    # Then a second image is made
    assert second != first
    assert own_image_ids(env) == {first, second}


def test_create_image_dry_run_validates_without_creating(make_env):
    # Given an instance
    env = _env(make_env)

    # When CreateImage runs with DryRun=True
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", image_name="dry", dry_run=True)

    # Then DryRunOperation, and neither an image nor a snapshot was made
    assert_api_error(excinfo.value, "DryRunOperation", 400, "DryRun")
    assert own_image_ids(env) == set()
    env.cloud.advance(3600)
    assert own_image_ids(env) == set()


def test_create_image_dry_run_still_reports_a_real_problem(make_env):
    # Given a stopping instance
    env = _env(make_env)
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-src"))

    # When a DryRun CreateImage names it
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", dry_run=True)

    # Then the real error wins over DryRunOperation
    assert_api_error(excinfo.value, "IncorrectInstanceStatus", 400)


# -- CreateImage: refusals from the source ---------------------------------------------------------------------


def test_create_image_of_a_stopping_instance_is_incorrect_instance_status(make_env):
    # Given an instance that is stopping
    env = _env(make_env)
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-src"))

    # When creating an image of it
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src")

    # Then IncorrectInstanceStatus names the status
    assert_api_error(excinfo.value, "IncorrectInstanceStatus", 400, "Stopping")


def test_create_image_of_a_stopped_instance_is_allowed(make_env):
    # Given a stopped instance
    env = _env(make_env, {**SRC, "status": "Stopped"})

    # When creating an image of it
    image_id = _ready_image(env)

    # Then the image becomes Available
    assert describe_image(env, image_id).status == "Available"


def test_create_image_of_a_security_locked_instance_is_refused(make_env):
    # Given an instance locked for security
    env = _env(make_env, {**SRC, "locks": ["security"]})

    # When creating an image of it
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src")

    # Then InstanceLockedForSecurity
    assert_api_error(excinfo.value, "InstanceLockedForSecurity", 400, "locked for security")


@pytest.mark.parametrize("instance_type", ["ecs.i3.xlarge", "ecs.d1ne.2xlarge"])
def test_create_image_of_a_local_disk_instance_names_the_local_disk(make_env, instance_type):
    # Given an instance with a local disk
    env = _env(make_env, {"id": "i-local", "type": instance_type})
    (local_disk,) = [d for d in disks_of(env, "i-local") if d.category.startswith("local_")]

    # When creating an image of it
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-local")

    # Then InvalidDiskCategory.CreateImage names the local disk and its category; nothing was made
    assert_api_error(excinfo.value, "InvalidDiskCategory.CreateImage", 400, local_disk.disk_id, local_disk.category)
    assert own_image_ids(env) == set()


def test_create_image_while_the_previous_images_snapshots_progress_is_refused(make_env):
    # Given an image whose snapshots are still being taken
    env = _env(make_env)
    create_image(env, instance_id="i-src", image_name="first")
    env.cloud.advance(10)

    # When creating a second image of the same instance
    with pytest.raises(ClientException) as excinfo:
        create_image(env, instance_id="i-src", image_name="second")

    # Then 403 IncorrectDiskStatus.CreatingSnapshot names the disk
    assert_api_error(
        excinfo.value, "IncorrectDiskStatus.CreatingSnapshot", 403, "previous snapshot", system_disk_id(env, "i-src")
    )


def test_create_image_after_the_previous_images_snapshots_finished_is_allowed(make_env):
    # Given an image whose snapshots have completed
    env = _env(make_env)
    first = create_image(env, instance_id="i-src", image_name="first")
    env.cloud.advance(200)

    # When creating a second image of the same instance
    second = create_image(env, instance_id="i-src", image_name="second")

    # Then it is accepted
    assert own_image_ids(env) == {first, second}


def test_create_image_failures_end_the_first_image_create_failed(make_env):
    # Given an instance whose first image is doomed
    env = _env(make_env, {**SRC, "create_image_failures": 1})

    # When creating two images, one after the other
    first = _ready_image(env, image_name="doomed")
    second = _ready_image(env, image_name="fine")

    # Then the first ends CreateFailed and the second Available
    assert describe_image(env, first).status == "CreateFailed"
    assert describe_image(env, second).status == "Available"


# -- the lifecycle ----------------------------------------------------------------------------------------------


def test_new_image_is_creating_with_rising_progress(make_env):
    # Given an image just created (20 GiB → 200 s)
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")

    # When time passes
    progress = [describe_image(env, image_id).progress]
    env.cloud.advance(100)
    progress.append(describe_image(env, image_id).progress)
    env.cloud.advance(50)
    progress.append(describe_image(env, image_id).progress)

    # Then it stays Creating while Progress rises
    assert describe_image(env, image_id).status == "Creating"
    assert progress == ["0%", "50%", "75%"]


def test_image_becomes_available_after_size_times_seconds_per_gib(make_env):
    # Given a 20 GiB image at 10 s/GiB
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")

    # When 199 s pass, then one more
    env.cloud.advance(199)
    before = describe_image(env, image_id)
    env.cloud.advance(1)
    after = describe_image(env, image_id)

    # Then it was Creating and is now Available at 100%
    assert before.status == "Creating"
    assert (after.status, after.progress) == ("Available", "100%")


def test_image_size_scales_creation_time(make_env):
    # Given a 40 + 100 GiB instance at 10 s/GiB (1400 s)
    env = _env(make_env, TWO_DISKS)
    image_id = create_image(env, instance_id="i-two")

    # When 1399 s pass, then one more
    env.cloud.advance(1399)
    before = describe_image(env, image_id).status
    env.cloud.advance(1)

    # Then it needed the whole 1400 s
    assert (before, describe_image(env, image_id).status) == ("Creating", "Available")


def test_image_snapshots_are_accomplished_when_the_image_is_available(make_env):
    # Given images build at 1 s/GiB while plain snapshots take 10 s/GiB
    env = make_env({"timings": {"image_seconds_per_gib": 1, "snapshot_seconds_per_gib": 10}, "instances": [SRC]})
    image_id = create_image(env, instance_id="i-src", image_name="fast")

    # When the image becomes Available (20 s)
    env.cloud.advance(20)
    image = describe_image(env, image_id)

    # Then its snapshot is accomplished too, and the instance can be imaged again at once
    assert image.status == "Available"
    snapshot = describe_snapshot(env, image.disk_device_mappings.disk_device_mapping[0].snapshot_id)
    assert (snapshot.status, snapshot.progress) == ("accomplished", "100%")
    assert create_image(env, instance_id="i-src", image_name="again")


def test_available_image_becomes_usable_after_usable_seconds(make_env):
    # Given an image that has just become Available (usable_seconds 30)
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")
    env.cloud.advance(200)

    # When 29 s pass, then one more
    usable_at_once = describe_image(env, image_id).usable
    env.cloud.advance(29)
    usable_before = describe_image(env, image_id).usable
    env.cloud.advance(1)

    # Then Usable turns true only after usable_seconds
    assert (usable_at_once, usable_before, describe_image(env, image_id).usable) == (False, False, True)


# -- DescribeImages -------------------------------------------------------------------------------------------


def test_describe_images_shows_only_available_images_by_default(make_env):
    # Given an image still Creating
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")

    # When describing it without Status
    hidden = find_images(env, image_id=image_id)
    env.cloud.advance(200)
    shown = find_images(env, image_id=image_id)

    # Then it is invisible until it is Available
    assert hidden == []
    assert [i.image_id for i in shown] == [image_id]


def test_describe_images_status_all_shows_every_status(make_env):
    # Given one Creating, one Available and one Deprecated image
    env = _env(make_env)
    available = _ready_image(env, image_name="available")
    deprecated = _ready_image(env, image_name="deprecated")
    _modify(env, deprecated, status="Deprecated")
    creating = create_image(env, instance_id="i-src", image_name="creating")

    # When describing own images with Status=ALL
    images = find_images(env, image_owner_alias="self", status="ALL")

    # Then all three are listed with their status
    assert {i.image_id: i.status for i in images} == {
        available: "Available",
        deprecated: "Deprecated",
        creating: "Creating",
    }


def test_describe_images_status_takes_a_comma_list(make_env):
    # Given one Available and one Creating image
    env = _env(make_env)
    available = _ready_image(env, image_name="available")
    creating = create_image(env, instance_id="i-src", image_name="creating")

    # When asking for Creating alone, then for Creating,Available
    only_creating = find_images(env, image_owner_alias="self", status="Creating")
    both = find_images(env, image_owner_alias="self", status="Creating,Available")

    # Then the filter takes every listed status
    assert [i.image_id for i in only_creating] == [creating]
    assert {i.image_id for i in both} == {available, creating}


@pytest.mark.parametrize("status", ["Ready", "ALL,Available", "available"])
def test_describe_images_rejects_a_bad_status_value(make_env, status):
    # Given a region
    env = _env(make_env)

    # When Status is not a documented value (ALL cannot be combined; values are case-sensitive)
    with pytest.raises(ClientException) as excinfo:
        find_images(env, status=status)

    # Then the value is refused
    assert_api_error(excinfo.value, "InvalidParameter", 400, "Status")


def test_describe_images_filters_by_a_comma_list_of_image_ids(make_env):
    # Given three Available images
    env = _env(make_env)
    first, second, third = (_ready_image(env, image_name=f"img-{n}") for n in range(3))

    # When asking for two of them by id
    images = find_images(env, image_id=f"{first},{third}")

    # Then exactly those two come back
    assert {i.image_id for i in images} == {first, third}
    assert second not in {i.image_id for i in images}


def test_describe_images_with_an_unknown_image_id_returns_nothing(make_env):
    # Given a region
    env = _env(make_env)

    # When asking for an image that does not exist
    body = env.ecs.describe_images(ecs_models.DescribeImagesRequest(region_id=env.region, image_id="m-nope")).body

    # Then an empty list and TotalCount 0
    assert body.images.image == []
    assert body.total_count == 0


def test_describe_images_image_name_is_a_substring_match(make_env):
    # Given images named bakery-web-1, bakery-db-1 and Bakery-WEB-2
    env = _env(make_env)
    web1 = _ready_image(env, image_name="bakery-web-1")
    _ready_image(env, image_name="bakery-db-1")
    web2 = _ready_image(env, image_name="Bakery-WEB-2")

    # When filtering on ImageName=web
    images = find_images(env, image_name="web")

    # Then every image whose name contains it matches (fuzzy, case-insensitive)
    assert {i.image_id for i in images} == {web1, web2}


def test_describe_images_filters_by_image_family(make_env):
    # Given images in two families
    env = _env(make_env)
    web = _ready_image(env, image_family="web")
    _ready_image(env, image_family="db")

    # When filtering on ImageFamily=web
    images = find_images(env, image_family="web")

    # Then only that family's image comes back
    assert [i.image_id for i in images] == [web]


def test_describe_images_filters_by_tag(make_env):
    # Given a tagged and an untagged image
    env = _env(make_env)
    tagged = _ready_image(env, tag=[ecs_models.CreateImageRequestTag(key="role", value="web")])
    _ready_image(env)

    # When filtering on Tag role=web
    images = find_images(env, tag=[ecs_models.DescribeImagesRequestTag(key="role", value="web")])

    # Then only the tagged image comes back
    assert [i.image_id for i in images] == [tagged]


def test_describe_images_owner_alias_self_lists_custom_images_only(make_env):
    # Given a custom image next to the public images
    env = _env(make_env)
    custom = _ready_image(env)

    # When filtering on ImageOwnerAlias=self
    images = find_images(env, image_owner_alias="self")

    # Then only the custom image comes back
    assert [(i.image_id, i.image_owner_alias) for i in images] == [(custom, "self")]


def test_describe_images_owner_alias_system_lists_public_images_only(make_env):
    # Given a custom image next to the public images
    env = _env(make_env)
    custom = _ready_image(env)

    # When filtering on ImageOwnerAlias=system
    images = find_images(env, image_owner_alias="system")

    # Then the public images come back, and the custom one does not
    assert UBUNTU in {i.image_id for i in images}
    assert custom not in {i.image_id for i in images}
    assert {i.image_owner_alias for i in images} == {"system"}
    assert all(i.is_public for i in images)


def test_describe_images_without_owner_alias_lists_system_and_self(make_env):
    # Given a custom image
    env = _env(make_env)
    custom = _ready_image(env)

    # When no ImageOwnerAlias is given
    ids = {i.image_id for i in find_images(env)}

    # Then both public and custom images are listed
    assert {custom, UBUNTU} <= ids


def test_describe_images_rejects_an_unknown_owner_alias(make_env):
    # Given a region
    env = _env(make_env)

    # When ImageOwnerAlias is not a documented value
    with pytest.raises(ClientException) as excinfo:
        find_images(env, image_owner_alias="friends")

    # Then InvalidImageOwnerAlias.ValueNotSupported
    assert_api_error(excinfo.value, "InvalidImageOwnerAlias.ValueNotSupported", 400, "friends")


def test_describe_images_usage_tells_images_in_use_from_unused_ones(make_env):
    # Given an instance running the Ubuntu public image, and an unused custom image
    env = _env(make_env, {**SRC, "image_id": UBUNTU})
    custom = _ready_image(env)

    # When filtering on Usage
    in_use = {i.image_id for i in find_images(env, usage="instance")}
    unused = {i.image_id for i in find_images(env, usage="none")}

    # Then the Ubuntu image is in use and the custom image is not
    assert in_use == {UBUNTU}
    assert custom in unused and UBUNTU not in unused
    assert describe_image(env, custom).usage == "none"


def test_describe_images_rejects_an_unknown_usage(make_env):
    # Given a region
    env = _env(make_env)

    # When Usage is not instance or none
    with pytest.raises(ClientException) as excinfo:
        find_images(env, usage="sometimes")

    # Then InvalidUsage (404 per the API doc)
    assert_api_error(excinfo.value, "InvalidUsage", 404, "sometimes")


def test_describe_images_pages_with_page_number_and_page_size(make_env):
    # Given five custom images
    env = _env(make_env)
    made = [_ready_image(env, image_name=f"img-{n}") for n in range(5)]

    # When reading them two per page
    pages = [
        env.ecs.describe_images(
            ecs_models.DescribeImagesRequest(
                region_id=env.region, image_owner_alias="self", page_size=2, page_number=number
            )
        ).body
        for number in (1, 2, 3)
    ]

    # Then the pages hold 2, 2 and 1 images, every image once, and report the paging
    assert [len(p.images.image) for p in pages] == [2, 2, 1]
    assert sorted(i.image_id for p in pages for i in p.images.image) == sorted(made)
    assert [(p.page_number, p.page_size, p.total_count) for p in pages] == [(1, 2, 5), (2, 2, 5), (3, 2, 5)]


def test_describe_images_page_size_defaults_to_10(make_env):
    # Given twelve custom images
    env = _env(make_env, {**SRC, "disks": [{"type": "system", "size": 1}]})
    for n in range(12):
        _ready_image(env, image_name=f"img-{n}")

    # When describing them without PageSize
    body = env.ecs.describe_images(
        ecs_models.DescribeImagesRequest(region_id=env.region, image_owner_alias="self")
    ).body

    # Then ten come back, out of twelve
    assert (len(body.images.image), body.page_size, body.total_count) == (10, 10, 12)


def test_describe_images_rejects_a_page_size_above_100(make_env):
    # Given a region
    env = _env(make_env)

    # When PageSize is 101
    with pytest.raises(ClientException) as excinfo:
        find_images(env, page_size=101)

    # Then PageSize is refused
    assert_api_error(excinfo.value, "InvalidParameter", 400, "PageSize")


def test_describe_images_lists_the_newest_image_first(make_env):
    # Given three images created one after the other
    env = _env(make_env)
    made = [_ready_image(env, image_name=f"img-{n}") for n in range(3)]

    # When describing own images
    images = find_images(env, image_owner_alias="self")

    # Then the newest comes first
    assert [i.image_id for i in images] == list(reversed(made))


# -- ModifyImageAttribute and sharing -------------------------------------------------------------------------------


def test_deprecated_image_is_hidden_by_default_but_listed_with_status_deprecated(make_env):
    # Given an Available image
    env = _env(make_env)
    image_id = _ready_image(env)

    # When it is deprecated
    _modify(env, image_id, status="Deprecated")

    # Then the default DescribeImages no longer lists it, and Status=Deprecated does
    assert find_images(env, image_id=image_id) == []
    assert [i.status for i in find_images(env, image_id=image_id, status="Deprecated")] == ["Deprecated"]


def test_deprecated_image_can_be_made_available_again(make_env):
    # Given a deprecated image
    env = _env(make_env)
    image_id = _ready_image(env)
    _modify(env, image_id, status="Deprecated")

    # When its Status is set back to Available
    _modify(env, image_id, status="Available")

    # Then it is Available again
    assert describe_image(env, image_id).status == "Available"


def test_modify_image_attribute_sets_family_name_and_description(make_env):
    # Given an image without a family
    env = _env(make_env)
    image_id = _ready_image(env, image_name="old-name")

    # When setting its family, name and description
    _modify(env, image_id, image_family="web", image_name="new-name", description="renamed")

    # Then DescribeImages shows the new values
    image = describe_image(env, image_id)
    assert (image.image_family, image.image_name, image.description) == ("web", "new-name", "renamed")


def test_modify_image_attribute_rename_to_a_used_name_is_duplicated(make_env):
    # Given images named a-image and b-image
    env = _env(make_env)
    _ready_image(env, image_name="a-image")
    b_image = _ready_image(env, image_name="b-image")

    # When renaming b-image to a-image
    with pytest.raises(ClientException) as excinfo:
        _modify(env, b_image, image_name="a-image")

    # Then InvalidImageName.Duplicated, and the name is unchanged
    assert_api_error(excinfo.value, "InvalidImageName.Duplicated", 400)
    assert describe_image(env, b_image).image_name == "b-image"


def test_modify_image_attribute_rename_to_its_own_name_is_allowed(make_env):
    # Given an image named same
    env = _env(make_env)
    image_id = _ready_image(env, image_name="same")

    # When "renaming" it to its own name
    _modify(env, image_id, image_name="same")

    # Then nothing complains
    assert describe_image(env, image_id).image_name == "same"


def test_modify_image_attribute_rejects_a_status_other_than_deprecated_or_available(make_env):
    # Given an Available image
    env = _env(make_env)
    image_id = _ready_image(env)

    # When setting Status=Creating
    with pytest.raises(ClientException) as excinfo:
        _modify(env, image_id, status="Creating")

    # Then the status is refused
    assert_api_error(excinfo.value, "InvalidParameter.Status", 400, "Deprecated or Available")


def test_modify_image_attribute_cannot_deprecate_a_creating_image(make_env):
    # Given an image still Creating
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")

    # When deprecating it
    with pytest.raises(ClientException) as excinfo:
        _modify(env, image_id, status="Deprecated")

    # Then IncorrectImageStatus names the status
    assert_api_error(excinfo.value, "IncorrectImageStatus", 403, "Creating")


def test_modify_image_attribute_on_an_unknown_image_is_not_found(make_env):
    # Given a region without that image
    env = _env(make_env)

    # When modifying it
    with pytest.raises(ClientException) as excinfo:
        _modify(env, "m-nope", description="nope")

    # Then 404 InvalidImageId.NotFound
    assert_api_error(excinfo.value, "InvalidImageId.NotFound", 404, "ImageId")


def test_modify_image_attribute_with_a_malformed_family_is_refused(make_env):
    # Given an image
    env = _env(make_env)
    image_id = _ready_image(env)

    # When setting a reserved family name
    with pytest.raises(ClientException) as excinfo:
        _modify(env, image_id, image_family="acs:web")

    # Then InvalidImageFamily.Malformed
    assert_api_error(excinfo.value, "InvalidImageFamily.Malformed", 400)


def test_deprecating_a_shared_image_is_refused_until_it_is_unshared(make_env):
    # Given an image shared with another account
    env = _env(make_env)
    image_id = _ready_image(env)
    _share(env, image_id, add=["1111222233334444"])

    # When deprecating it
    with pytest.raises(ClientException) as excinfo:
        _modify(env, image_id, status="Deprecated")

    # Then 403 ImageUseShared names the account; after RemoveAccount the deprecation goes through
    assert_api_error(excinfo.value, "ImageUseShared", 403, "1111222233334444")
    assert describe_image(env, image_id).status == "Available"
    _share(env, image_id, remove=["1111222233334444"])
    _modify(env, image_id, status="Deprecated")
    assert describe_image(env, image_id).status == "Deprecated"


def test_sharing_an_image_is_visible_in_share_permission_and_is_self_shared(make_env):
    # Given an image
    env = _env(make_env)
    image_id = _ready_image(env)

    # When it is shared with an account
    _share(env, image_id, add=["1111222233334444"])

    # Then DescribeImageSharePermission lists the account and IsSelfShared is "true"
    body = env.ecs.describe_image_share_permission(
        ecs_models.DescribeImageSharePermissionRequest(region_id=env.region, image_id=image_id)
    ).body
    assert [a.aliyun_id for a in body.accounts.account] == ["1111222233334444"]
    assert describe_image(env, image_id).is_self_shared == "true"


# -- DescribeImageFromFamily -----------------------------------------------------------------------------------------


def test_describe_image_from_family_returns_the_newest_available_image(make_env):
    # Given two Available images of family web
    env = _env(make_env)
    _ready_image(env, image_family="web", image_name="web-1")
    newest = _ready_image(env, image_family="web", image_name="web-2")

    # When asking for the family's image
    image = _from_family(env, "web")

    # Then the newer one is returned
    assert (image.image_id, image.image_family, image.status) == (newest, "web", "Available")


def test_describe_image_from_family_carries_mappings_and_tags(make_env):
    # Given a tagged Available image of family web
    env = _env(make_env)
    image_id = _ready_image(env, image_family="web", tag=[ecs_models.CreateImageRequestTag(key="role", value="web")])

    # When asking for the family's image
    image = _from_family(env, "web")

    # Then it has the same disk mappings, tags and size as DescribeImages reports
    described = describe_image(env, image_id)
    assert [(m.snapshot_id, m.device, m.size) for m in image.disk_device_mappings.disk_device_mapping] == [
        (m.snapshot_id, m.device, m.size) for m in described.disk_device_mappings.disk_device_mapping
    ]
    assert tags_of(image) == {"role": "web"}
    assert (image.size, image.image_owner_alias) == (20, "self")


def test_describe_image_from_family_skips_deprecated_images(make_env):
    # Given two images of family web, the newer one deprecated
    env = _env(make_env)
    older = _ready_image(env, image_family="web", image_name="web-1")
    newer = _ready_image(env, image_family="web", image_name="web-2")
    _modify(env, newer, status="Deprecated")

    # When asking for the family's image
    image = _from_family(env, "web")

    # Then the family rolls back to the older one
    assert image.image_id == older


def test_describe_image_from_family_skips_creating_images(make_env):
    # Given an Available image of family web and a newer one still Creating
    env = _env(make_env)
    available = _ready_image(env, image_family="web", image_name="web-1")
    create_image(env, instance_id="i-src", image_family="web", image_name="web-2")

    # When asking for the family's image
    image = _from_family(env, "web")

    # Then the Available one is returned
    assert image.image_id == available


def test_describe_image_from_family_without_an_image_returns_an_empty_image(make_env):
    # Given a family whose only image is deprecated
    env = _env(make_env)
    only = _ready_image(env, image_family="web")
    _modify(env, only, status="Deprecated")

    # When asking for the family's image
    image = _from_family(env, "web")

    # Then Image is empty
    assert image is None or image.image_id is None


def test_describe_image_from_family_without_a_family_is_missing_parameter(make_env):
    # Given a region
    env = _env(make_env)

    # When ImageFamily is not given
    with pytest.raises(ClientException) as excinfo:
        env.ecs.describe_image_from_family(ecs_models.DescribeImageFromFamilyRequest(region_id=env.region))

    # Then MissingParameter names ImageFamily
    assert_api_error(excinfo.value, "MissingParameter", 400, "ImageFamily")


# -- DeleteImage -----------------------------------------------------------------------------------------------------


def test_delete_image_removes_it(make_env):
    # Given an Available image
    env = _env(make_env)
    image_id = _ready_image(env)

    # When deleting it
    _delete(env, image_id)

    # Then it is gone in every status
    assert not image_exists(env, image_id)


def test_delete_image_of_a_missing_image_is_silently_ignored(make_env):
    # Given a region without that image
    env = _env(make_env)

    # When deleting it
    response = env.ecs.delete_image(ecs_models.DeleteImageRequest(region_id=env.region, image_id="m-nope"))

    # Then the call succeeds
    assert response.status_code == 200
    assert response.body.request_id


def test_delete_image_keeps_its_snapshots(make_env):
    # Given an image made of an instance
    env = _env(make_env)
    image_id = _ready_image(env)
    (mapping,) = describe_image(env, image_id).disk_device_mappings.disk_device_mapping

    # When deleting the image
    _delete(env, image_id)

    # Then its snapshot is still there, now unused
    snapshot = describe_snapshot(env, mapping.snapshot_id)
    assert (snapshot.status, snapshot.usage) == ("accomplished", "none")


def test_delete_image_of_a_creating_image_removes_it(make_env):
    # Given an image still Creating
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src")

    # When deleting it, then letting the clock run
    _delete(env, image_id)
    env.cloud.advance(3600)

    # Then it never comes back
    assert not image_exists(env, image_id)


def test_delete_image_of_a_shared_image_is_refused_without_force(make_env):
    # Given a shared image
    env = _env(make_env)
    image_id = _ready_image(env)
    _share(env, image_id, add=["1111222233334444"])

    # When deleting it without Force
    with pytest.raises(ClientException) as excinfo:
        _delete(env, image_id)

    # Then 403 ImageUseShared, and it still exists
    assert_api_error(excinfo.value, "ImageUseShared", 403, "shared")
    assert image_exists(env, image_id)


def test_delete_image_of_a_shared_image_is_refused_even_with_force(make_env):
    # Given a shared image
    env = _env(make_env)
    image_id = _ready_image(env)
    _share(env, image_id, add=["1111222233334444"])

    # When deleting it with Force=True
    with pytest.raises(ClientException) as excinfo:
        _delete(env, image_id, force=True)

    # Then 403 ImageUseShared still (Force overrides instances using the image, not sharing), and it still exists
    assert_api_error(excinfo.value, "ImageUseShared", 403, "1111222233334444")
    assert image_exists(env, image_id)
    # And once the sharing is cancelled, Force=True deletes it
    _share(env, image_id, remove=["1111222233334444"])
    _delete(env, image_id, force=True)
    assert not image_exists(env, image_id)


PREEXISTING = {"id": "m-web-v1", "name": "web-v1", "family": "web", "size": 20, "age_days": 30}


def test_delete_image_in_use_by_an_instance_is_refused_without_force(make_env):
    # Given a custom image from the scenario that an instance was created from
    env = _env(make_env, {**SRC, "image_id": "m-web-v1"}, images=[PREEXISTING])

    # When deleting it without Force
    with pytest.raises(ClientException) as excinfo:
        _delete(env, "m-web-v1")

    # Then 403 ImageUsingByInstance naming the instance, and the image stays
    assert_api_error(excinfo.value, "ImageUsingByInstance", 403, "i-src")
    assert image_exists(env, "m-web-v1")


def test_delete_image_in_use_by_an_instance_with_force_deletes_it(make_env):
    # Given a custom image an instance uses
    env = _env(make_env, {**SRC, "image_id": "m-web-v1"}, images=[PREEXISTING])

    # When deleting it with Force=True
    _delete(env, "m-web-v1", force=True)

    # Then it is gone, and its snapshot is no longer used by an image
    assert not image_exists(env, "m-web-v1")
    assert describe_snapshot(env, "s-web-v1").usage == "none"


def test_scenario_images_are_available_in_their_family_with_an_accomplished_snapshot(make_env):
    # Given a scenario with a pre-existing image in family web
    env = _env(make_env, images=[PREEXISTING])

    # When reading it back
    image = describe_image(env, "m-web-v1")

    # Then it is an Available, Usable custom image of the family, older than the scenario start
    assert (image.status, image.image_family, image.usable, image.image_owner_alias) == (
        "Available",
        "web",
        True,
        "self",
    )
    assert image.creation_time < env.cloud.clock.iso()
    assert describe_snapshot(env, "s-web-v1").status == "accomplished"
    assert describe_snapshot(env, "s-web-v1").usage == "image"


def test_delete_image_of_a_system_image_is_refused(make_env):
    # Given an instance running the Ubuntu public image
    env = _env(make_env, {**SRC, "image_id": UBUNTU})

    # When deleting the public image, even with Force
    with pytest.raises(ClientException) as excinfo:
        _delete(env, UBUNTU, force=True)

    # Then the public image is not ours to delete, and it stays
    assert_api_error(excinfo.value, "OperationDenied.ImageNotOwned", 403, UBUNTU)
    assert image_exists(env, UBUNTU)


def test_delete_image_dry_run_keeps_the_image(make_env):
    # Given an image
    env = _env(make_env)
    image_id = _ready_image(env)

    # When deleting it with DryRun=True
    with pytest.raises(ClientException) as excinfo:
        _delete(env, image_id, dry_run=True)

    # Then DryRunOperation, and it stays
    assert_api_error(excinfo.value, "DryRunOperation", 400)
    assert image_exists(env, image_id)


def test_deleted_image_name_can_be_reused(make_env):
    # Given an image named golden, deleted
    env = _env(make_env)
    _delete(env, _ready_image(env, image_name="golden"))

    # When creating a new image named golden
    image_id = create_image(env, instance_id="i-src", image_name="golden")

    # Then the name is free again
    assert describe_image(env, image_id).image_name == "golden"
