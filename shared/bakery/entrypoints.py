"""What each function does with each event it is routed (template.yml decides the routing)."""

from __future__ import annotations

from typing import Any

from bakery import events, tags
from bakery.errors import InvalidEvent, NotATrigger
from bakery.events import CloudEvent, TimerEvent
from bakery.handler import fc_handler
from bakery.log import get_logger
from bakery.pipeline import Pipeline
from bakery.stages.claim import bake_id_for, foreign_bake_id, trigger_call

log = get_logger(__name__)

MAX_SNAPSHOTS = events.MAX_SNAPSHOTS


def _cloud_event(event: CloudEvent | TimerEvent, function: str) -> CloudEvent:
    if isinstance(event, TimerEvent):
        raise InvalidEvent(f"{function} has no timer trigger (got {event.trigger_name})")
    # Every trigger and rule in template.yml filters on source as well as type: a type Bakery handles under
    # another source is not the event it looks like.
    expected = events.source_of(event.type)
    if expected is not None and event.source != expected:
        raise InvalidEvent(f"{function} does not handle {events.show(event.source)} {event.type} "
                           f"(that type comes from {expected})")  # fmt: skip
    return event


def route_bake(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
    # Each stage is handed only the fields events.py checked (with_data), so none reads an unchecked value.
    event = _cloud_event(event, "bake")
    if event.type in events.ACTIONTRAIL_WRITES and event.data.get("eventName") == "TagResources":
        tagged = event.with_data(events.tag_call_data(event))
        opt_in = events.TagCall.parse(tagged.data, tags.ADOPT, tags.truthy)
        if opt_in.resource_type == "image":  # an image tagged bakery:adopt=true (stages.adopt)
            if opt_in.trigger is False or pipeline.settings.adopt_images == "off":
                raise NotATrigger(f"TagResources event {event.id} sets no {tags.ADOPT}=true on an image Bakery "
                                  f"may adopt (BAKERY_ADOPT_IMAGES={pipeline.settings.adopt_images})")  # fmt: skip
            for image_id in opt_in.resource_ids:
                if events.IMAGE_ID.fullmatch(image_id):
                    pipeline.adopt(image_id, opted_in=True)
            return None
        trigger_call(tagged)  # dropped here, before the pipeline is touched, when it surely is no trigger
        pipeline.on_tagged(tagged)
    elif event.type in events.ACTIONTRAIL_WRITES and event.data.get("eventName") in events.IMAGE_CREATING_CALLS:
        call = events.ImageCall.parse(event, tags.BAKE_ID)
        if pipeline.settings.adopt_images == "off" or call.failed or call.bakery_tagged:
            # Before any call: adoption is off, the call made no image, or the image is Bakery's own bake's.
            raise NotATrigger(f"{event.type} {event.data.get('eventName')} event {event.id}: nothing to adopt "
                              f"(BAKERY_ADOPT_IMAGES={pipeline.settings.adopt_images}, failed={call.failed}, "
                              f"Bakery's own={call.bakery_tagged})")  # fmt: skip
        if call.image_id is None:
            log.warning(
                "CreateImage record names no image; the sweep's look for new images finds it", event_id=event.id
            )
        else:
            pipeline.adopt(call.image_id, check_requested=call.check_requested)
    elif event.type == events.ASSISTANT_TASK_COMPLETED:
        pipeline.on_preflight_done(event.with_data(events.task_completed_data(event)))
    elif event.type == events.INSTANCE_STATE_CHANGE:
        pipeline.on_instance_state(event.with_data(events.instance_state_data(event)))
    elif event.type == events.BAKE_REQUESTED:
        request = events.BakeRequest.parse(event)
        if request.bake_id and foreign_bake_id(pipeline, request.bake_id, request.instance_id, request.snapshot_ids):
            # A requester may name its bake, never someone else's: a reused id would make this bake's
            # failure retire the other bake's images (its ClientTokens and lineage are the bake id's).
            raise InvalidEvent(f"{event.type} event {event.id}: bakeId {request.bake_id} already names another "
                               "bake; leave bakeId out (one is derived) or choose a new one")  # fmt: skip
        if request.instance_id is None:
            snapshot_ids = list(request.snapshot_ids)
            bake_id = request.bake_id or bake_id_for(event.id, ",".join(snapshot_ids))
            pipeline.begin_from_snapshots(snapshot_ids, bake_id, family=request.family, name=request.name)
        else:
            bake_id = request.bake_id or bake_id_for(event.id, request.instance_id)
            pipeline.begin(request.instance_id, bake_id, requested=True)
    else:
        raise InvalidEvent(f"bake does not handle {event.source} {event.type}")
    return None


def route_check(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
    if isinstance(event, TimerEvent):
        return {"swept": pipeline.sweep(event.trigger_time)}
    # CreationStarted, Repaired and snapshot completion are not routed here any more: a new image cannot have
    # finished its check, so they could only cost a call that cannot succeed; the sweep decides every image.
    event = _cloud_event(event, "check")
    raise InvalidEvent(f"check does not handle {event.source} {event.type} (the sweep follows every image)")


def route_repair(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
    event = _cloud_event(event, "repair")
    if event.type == events.IMAGE_CHECK_FAILED:
        pipeline.on_check_failed(events.required_text(event, "imageId", events.IMAGE_ID))
    elif event.type == events.OOS_EXECUTION_STATUS:
        pipeline.on_execution_changed(events.required_text(event, "executionId", events.EXECUTION_ID))
    else:
        raise InvalidEvent(f"repair does not handle {event.source} {event.type}")
    return None


# The sweep (bakery-check's timer) resumes any bake, check or repair step left unfinished.
bake = fc_handler("bake", route_bake, swept=True)
check = fc_handler("check", route_check, swept=True)
repair = fc_handler("repair", route_repair, swept=True)


def route_lifecycle(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
    """bakery:Family:Promoted (what one sweep promoted into a family) → retention for the family, once, then
    bakery:Family:RetentionApplied when it retired anything."""
    from bakery.families import plan as retention

    event = _cloud_event(event, "lifecycle")
    if event.type == events.FAMILY_PROMOTED:
        image_ids = events.image_ids(event)
        family = events.required_text(event, "family")
    else:
        raise InvalidEvent(f"lifecycle does not handle {event.source} {event.type}")
    if not family:
        return {"family": None, "imageId": image_ids[0],
                "retention": "skipped: the image was not promoted into a family"}  # fmt: skip
    result = retention.apply(pipeline.ecs, pipeline.settings, family, just_promoted=image_ids)
    if result.deprecated or result.deleted or result.skipped:  # nothing retired, nothing to tell: no call
        pipeline.bus.publish(retention.retention_applied(result, image_ids))
    # Retention ran: the family's promoted images are no longer in flight (the sweep re-sends Family:Promoted
    # until then). Only Bakery's own promotions carry the mark; nothing else in the family is touched.
    done = [i for i in result.awaiting_retention if i not in result.deleted]
    pipeline.ecs.tag_existing("image", done, {tags.IN_FLIGHT: "false"})
    return {k: v for k, v in result.to_dict().items() if k != "decisions"}


lifecycle = fc_handler("lifecycle", route_lifecycle)
