"""Following an image to Available and deciding on its ECS check (DetectionStrategy=Standard): promote it, have
it repaired, make it again (CreateFailed), or end the bake. Alibaba publishes no image-ready event: `follow`
is woken by Bakery's own `bakery:Image:CreationStarted` / `Image:Repaired`, by snapshot completion, and by
the sweep."""

from __future__ import annotations

from bakery import events, state, tags
from bakery.errors import BakeFailure
from bakery.events import BakeryEvent
from bakery.log import bound, get_logger
from bakery.model import Image
from bakery.stages import create, failure, promote
from bakery.stages.context import Context

log = get_logger(__name__)

FOLLOWED = (state.CREATING, state.CHECKING)  # the image states `follow` acts on


def follow(ctx: Context, image_id: str) -> None:
    image = ctx.ecs.image(image_id)
    if image is None or image.tags.get(tags.STATE) not in FOLLOWED:
        return  # gone, not ours, or already decided: a duplicate delivery
    bake_id = image.tags.get(tags.BAKE_ID, "")
    with bound(bake_id=bake_id, image_id=image_id):
        failure.guarded(ctx, image.tags.get(tags.SOURCE_INSTANCE, ""), bake_id, lambda: decide(ctx, image))


def decide(ctx: Context, image: Image) -> None:
    if image.status in ("Creating", "Waiting"):
        return
    if image.status in ("CreateFailed", "UnAvailable"):
        return create.creation_failed(ctx, image)
    if image.status != "Available" or not image.usable:
        return
    if not image.detection_status:
        return _unchecked_image(ctx, image)
    if image.detection_status != "Finished":
        if image.tags.get(tags.STATE) != state.CHECKING:
            ctx.set_state(image, state.CHECKING)
        return
    failing = image.failing_items
    if not failing:
        return promote.promote(ctx, image)
    ctx.set_state(image, state.CHECK_FAILED)
    log.warning("image check failed", items=[i.name for i in failing])
    ctx.bus.publish(BakeryEvent(events.IMAGE_CHECK_FAILED, image.image_id, {
        "bakeId": image.tags.get(tags.BAKE_ID), "imageId": image.image_id,
        "instanceId": image.tags.get(tags.SOURCE_INSTANCE), "repairs": int(image.tags.get(tags.REPAIRS, "0")),
        "items": [{"name": i.name, "riskLevel": i.risk_level, "riskCode": i.risk_code} for i in failing]}))  # fmt: skip


def _unchecked_image(ctx: Context, image: Image) -> None:
    if ctx.settings.unchecked_image_policy == "promote":
        log.warning("image check not supported for this image; promoting unchecked (BAKERY_UNCHECKED_IMAGE_POLICY)")
        return promote.promote(ctx, image, checked=False)
    raise BakeFailure("check-unsupported", f"Image {image.image_id} ({image.platform}) cannot be checked by ECS "
                      "(encrypted disks or an unsupported OS), so Bakery will not promote it. Set "
                      "BAKERY_UNCHECKED_IMAGE_POLICY=promote to accept unchecked images.")  # fmt: skip
