"""Small helpers shared by the ECS integration tests.

Everything here acts through the real ECS SDK client (or reads the local cloud's event log), so a
test that uses them still proves behaviour the way a caller of Alibaba Cloud would see it.
"""

from __future__ import annotations

import json
from typing import Any

from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ClientException

from localcloud.testing import CloudEnv

ALL_IMAGE_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
UBUNTU = "ubuntu_22_04_x64_20G_alibase_20240101.vhd"


def assert_api_error(error: ClientException, code: str, status: int, *message_parts: str) -> None:
    """Moto style: the code, the HTTP status and what the raw server message says."""
    assert error.code == code, f"expected {code}, got {error.code}: {error.data}"
    assert error.status_code == status
    assert error.data["Code"] == code
    for part in message_parts:
        assert part in error.data["Message"], f"{part!r} not in {error.data['Message']!r}"


# -- instances and disks ---------------------------------------------------------------------------


def describe_instance(env: CloudEnv, instance_id: str) -> Any:
    body = env.ecs.describe_instances(
        ecs_models.DescribeInstancesRequest(region_id=env.region, instance_ids=json.dumps([instance_id]))
    ).body
    (instance,) = body.instances.instance
    return instance


def instance_status(env: CloudEnv, instance_id: str) -> str:
    return describe_instance(env, instance_id).status


def disks_of(env: CloudEnv, instance_id: str, **filters: Any) -> list[Any]:
    body = env.ecs.describe_disks(
        ecs_models.DescribeDisksRequest(region_id=env.region, instance_id=instance_id, max_results=100, **filters)
    ).body
    return body.disks.disk


def system_disk_id(env: CloudEnv, instance_id: str) -> str:
    (disk,) = disks_of(env, instance_id, disk_type="system")
    return disk.disk_id


# -- images ----------------------------------------------------------------------------------------


def create_image(env: CloudEnv, **fields: Any) -> str:
    return env.ecs.create_image(ecs_models.CreateImageRequest(region_id=env.region, **fields)).body.image_id


def find_images(env: CloudEnv, **filters: Any) -> list[Any]:
    filters.setdefault("page_size", 100)
    body = env.ecs.describe_images(ecs_models.DescribeImagesRequest(region_id=env.region, **filters)).body
    return body.images.image


def describe_image(env: CloudEnv, image_id: str) -> Any:
    """The image in any status; fails the test when it does not exist."""
    (image,) = find_images(env, image_id=image_id, status=ALL_IMAGE_STATUSES)
    return image


def image_exists(env: CloudEnv, image_id: str) -> bool:
    return bool(find_images(env, image_id=image_id, status=ALL_IMAGE_STATUSES))


def own_image_ids(env: CloudEnv) -> set[str]:
    return {i.image_id for i in find_images(env, image_owner_alias="self", status=ALL_IMAGE_STATUSES)}


def tags_of(resource: Any) -> dict[str, str]:
    """`Tags.Tag[]` of any described resource as a dict."""
    if resource.tags is None or resource.tags.tag is None:
        return {}
    return {t.tag_key: t.tag_value for t in resource.tags.tag}


# -- snapshots -------------------------------------------------------------------------------------


def create_snapshot(env: CloudEnv, disk_id: str, **fields: Any) -> str:
    return env.ecs.create_snapshot(ecs_models.CreateSnapshotRequest(disk_id=disk_id, **fields)).body.snapshot_id


def find_snapshots(env: CloudEnv, **filters: Any) -> list[Any]:
    filters.setdefault("max_results", 100)
    body = env.ecs.describe_snapshots(ecs_models.DescribeSnapshotsRequest(region_id=env.region, **filters)).body
    return body.snapshots.snapshot


def describe_snapshot(env: CloudEnv, snapshot_id: str) -> Any:
    (snapshot,) = find_snapshots(env, snapshot_ids=json.dumps([snapshot_id]))
    return snapshot


# -- events ----------------------------------------------------------------------------------------


def events_of_type(env: CloudEnv, event_type: str, since: int = 0) -> list[dict[str, Any]]:
    return [e.event for e in env.cloud.events.read(since) if e.event["type"] == event_type]
