"""What each function does with each event it is routed (template.yml decides the routing)."""

from __future__ import annotations

import re
from typing import Any

from bakery import events
from bakery.errors import InvalidEvent
from bakery.events import CloudEvent, TimerEvent
from bakery.handler import fc_handler
from bakery.pipeline import Pipeline
from bakery.stages.claim import bake_id_for

_IMAGE_ID = re.compile(r"^m-[\w-]+$")
_INSTANCE_ID = re.compile(r"^i-[\w-]+$")
_SNAPSHOT_ID = re.compile(r"^s-[\w-]{1,62}$")
MAX_SNAPSHOTS = 17  # DiskDeviceMapping: one system disk + up to 16 data disks (alibaba-apis.md §2.2)


def _field(event: CloudEvent, name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = event.data.get(name)
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
        raise InvalidEvent(f"{event.type} event {event.id}: data.{name} is missing or malformed ({value!r})")
    return value


def _snapshot_ids(event: CloudEvent) -> list[str]:
    """data.snapshotIds: 1 (the system disk) + up to 16 data disks, each an `s-` id, no repeats."""
    value = event.data.get("snapshotIds")
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_SNAPSHOTS
        or not all(isinstance(v, str) and _SNAPSHOT_ID.match(v) for v in value)
        or len(set(value)) != len(value)
    ):
        raise InvalidEvent(
            f"{event.type} event {event.id}: data.snapshotIds must be 1-{MAX_SNAPSHOTS} distinct snapshot ids, "
            f"the system disk's first ({value!r})"
        )
    return list(value)


def _optional(event: CloudEvent, name: str) -> str:
    value = event.data.get(name) or ""
    if not isinstance(value, str):
        raise InvalidEvent(f"{event.type} event {event.id}: data.{name} must be a string ({value!r})")
    return value


def _cloud_event(event: CloudEvent | TimerEvent, function: str) -> CloudEvent:
    if isinstance(event, TimerEvent):
        raise InvalidEvent(f"{function} has no timer trigger (got {event.trigger_name})")
    return event


def route_bake(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
    event = _cloud_event(event, "bake")
    if event.type == events.ACTIONTRAIL_API_CALL and event.data.get("eventName") == "TagResources":
        pipeline.on_tagged(event)
    elif event.type == events.ASSISTANT_TASK_COMPLETED:
        pipeline.on_preflight_done(event)
    elif event.type == events.INSTANCE_STATE_CHANGE:
        pipeline.on_instance_state(event)
    elif event.type == events.BAKE_REQUESTED and "snapshotIds" in event.data:
        snapshot_ids = _snapshot_ids(event)
        pipeline.begin_from_snapshots(
            snapshot_ids,
            str(event.data.get("bakeId") or bake_id_for(event.id, ",".join(snapshot_ids))),
            family=_optional(event, "family"),
            name=_optional(event, "name"),
        )
    elif event.type == events.BAKE_REQUESTED:
        instance_id = _field(event, "instanceId", _INSTANCE_ID)
        pipeline.begin(instance_id, str(event.data.get("bakeId") or bake_id_for(event.id, instance_id)), requested=True)
    else:
        raise InvalidEvent(f"bake does not handle {event.source} {event.type}")
    return None


def route_check(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
    if isinstance(event, TimerEvent):
        return {"swept": pipeline.sweep(event.trigger_time)}
    if event.type in (events.IMAGE_CREATION_STARTED, events.IMAGE_REPAIRED):
        pipeline.follow(_field(event, "imageId", _IMAGE_ID))
    elif event.type == events.SNAPSHOT_COMPLETED:
        # Fast path: the image built on this snapshot may be Available now (one lookup, not one per image).
        for image in pipeline.ecs.images_of_snapshot(_field(event, "snapshotId")):
            pipeline.follow(image.image_id)
    else:
        raise InvalidEvent(f"check does not handle {event.source} {event.type}")
    return None


def route_repair(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
    event = _cloud_event(event, "repair")
    if event.type == events.IMAGE_CHECK_FAILED:
        pipeline.on_check_failed(_field(event, "imageId", _IMAGE_ID))
    elif event.type == events.OOS_EXECUTION_STATUS:
        pipeline.on_execution_changed(_field(event, "executionId"))
    else:
        raise InvalidEvent(f"repair does not handle {event.source} {event.type}")
    return None


# The sweep (bakery-check's timer) resumes any bake, check or repair step left unfinished.
bake = fc_handler("bake", route_bake, swept=True)
check = fc_handler("check", route_check, swept=True)
repair = fc_handler("repair", route_repair, swept=True)


def route_lifecycle(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
    """bakery:Image:Ready → retention for the image's family, then bakery:Family:RetentionApplied."""
    from bakery.families import plan as retention

    event = _cloud_event(event, "lifecycle")
    if event.type != events.IMAGE_READY:
        raise InvalidEvent(f"lifecycle does not handle {event.source} {event.type}")
    image_id = _field(event, "imageId", _IMAGE_ID)
    family = event.data.get("family")
    if family is not None and not isinstance(family, str):
        raise InvalidEvent(f"{event.type} event {event.id}: data.family must be a string ({family!r})")
    if not family:
        return {"family": None, "imageId": image_id, "retention": "skipped: the image was not promoted into a family"}
    result = retention.apply(pipeline.ecs, pipeline.settings, family, just_promoted=image_id)
    pipeline.bus.publish(retention.retention_applied(result, image_id))
    return {k: v for k, v in result.to_dict().items() if k != "decisions"}


lifecycle = fc_handler("lifecycle", route_lifecycle)
