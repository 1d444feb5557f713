"""What each function does with each event it is routed (template.yml decides the routing)."""

from __future__ import annotations

import re
from typing import Any

from bakery import events
from bakery.errors import InvalidEvent
from bakery.events import CloudEvent, TimerEvent
from bakery.handler import fc_handler
from bakery.pipeline import Pipeline, bake_id_for

_IMAGE_ID = re.compile(r"^m-[\w-]+$")
_INSTANCE_ID = re.compile(r"^i-[\w-]+$")


def _field(event: CloudEvent, name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = event.data.get(name)
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
        raise InvalidEvent(f"{event.type} event {event.id}: data.{name} is missing or malformed ({value!r})")
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
    elif event.type == events.BAKE_REQUESTED:
        instance_id = _field(event, "instanceId", _INSTANCE_ID)
        pipeline.begin(instance_id, str(event.data.get("bakeId") or bake_id_for(event.id, instance_id)))
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


bake = fc_handler("bake", route_bake)
check = fc_handler("check", route_check)
repair = fc_handler("repair", route_repair)
