"""Repair: a failed check runs the public OOS template ACS-ECS-RepairImage over the failing items; the repaired
image (which comes back without family, tags or description) gets the lineage re-applied and goes back through
check. Bounded by BAKERY_MAX_REPAIRS; ClientTokens from the bake id and repair number."""

from __future__ import annotations

from bakery import events, state, tags
from bakery.errors import BakeFailure, RetryableError
from bakery.events import BakeryEvent
from bakery.log import bound, get_logger
from bakery.model import Image
from bakery.stages import adopt, failure
from bakery.stages.context import Context

log = get_logger(__name__)

# Check item → ACS-ECS-RepairImage repairItems value (alibaba-apis.md §3.4).
REPAIR_ITEM_FOR_CHECK = {
    "Virtio": "virtio", "Nvme": "nvme", "Fstab": "fstab", "Grub": "grub", "Dhcp": "dhcp", "Selinux": "selinux",
    "CloudAssistant": "assist", "SecurityCenterAgent": "aegis", "CloudInit": "cloudinit", "OnlineResizeFS": "growpart",
}  # fmt: skip
BASE_IMAGE_FOR_ARCH = {
    "x86_64": "aliyun_3_x64_20G_alibase_20230727.vhd",
    "arm64": "aliyun_3_arm64_20G_alibase_20230731.vhd",
}


def on_check_failed(ctx: Context, image_id: str) -> None:
    image = ctx.ecs.image(image_id)
    if image is not None:
        repair_image(ctx, image)


def repair_image(ctx: Context, image: Image) -> None:
    """Start the repair of a check-failed image, from what was just read of it."""
    if image.tags.get(tags.STATE) != state.CHECK_FAILED:
        return
    with bound(bake_id=image.tags.get(tags.BAKE_ID, ""), image_id=image.image_id):
        failure.guarded_image(ctx, image, lambda: start_repair(ctx, image))


def start_repair(ctx: Context, image: Image) -> None:
    names = [i.name for i in image.failing_items]
    repairs = int(image.tags.get(tags.REPAIRS, "0"))
    if repairs >= ctx.settings.max_repairs:
        raise BakeFailure("check-failed", f"Image {image.image_id} still fails its check after {repairs} repair(s): "
                          f"{', '.join(names)}. {_fix_and_retry(image)}", items=names)  # fmt: skip
    if image.os_type != "linux":
        raise BakeFailure("unrepairable", f"Image {image.image_id} failed its check ({', '.join(names)}) and is "
                          f"{image.os_type}: ACS-ECS-RepairImage repairs Linux images only.", items=names)  # fmt: skip
    unknown = [n for n in names if n not in REPAIR_ITEM_FOR_CHECK]
    if unknown:
        raise BakeFailure("unrepairable", f"Image {image.image_id} failed check items no repair covers: "
                          f"{', '.join(unknown)}. {_fix_and_retry(image)}", items=names)  # fmt: skip
    base_image = BASE_IMAGE_FOR_ARCH.get(image.architecture)
    if base_image is None:
        raise BakeFailure("unrepairable", f"Image {image.image_id} is {image.architecture}; ACS-ECS-RepairImage "
                          "repairs x86_64 and arm64 images only.")  # fmt: skip
    s = ctx.settings
    if not (s.repair_zone_id and s.repair_vswitch_id and s.repair_security_group_id):
        raise BakeFailure("repair-not-configured", "The repair network is not configured: set the template "
                          "parameters RepairZoneId, RepairVSwitchId and RepairSecurityGroupId.")  # fmt: skip
    repair_items = sorted({REPAIR_ITEM_FOR_CHECK[n] for n in names})
    bake_id = image.tags.get(tags.BAKE_ID, "")
    adopt.repairable_name(ctx, image)  # a name the template cannot extend is swapped for the run
    execution = ctx.oos.start_repair(
        {"zoneId": s.repair_zone_id, "repairImageId": image.image_id, "baseImageId": base_image,
         "instanceType": s.repair_instance_type, "securityGroupId": s.repair_security_group_id,
         "vSwitchId": s.repair_vswitch_id, "repairItems": repair_items},
        client_token=f"{bake_id}-r{repairs + 1}", tags={tags.BAKE_ID: bake_id},
    )  # fmt: skip
    ctx.set_state(image, state.REPAIRING, {tags.REPAIR_EXECUTION: execution.execution_id})
    ctx.bus.publish(BakeryEvent(events.IMAGE_REPAIR_STARTED, image.image_id, {
        "bakeId": bake_id, "imageId": image.image_id, "executionId": execution.execution_id,
        "repairItems": repair_items, "repair": repairs + 1, **adopt.lineage(image)}))  # fmt: skip
    log.info("repair started", execution_id=execution.execution_id, repair_items=repair_items)


def _fix_and_retry(image: Image) -> str:
    """What the operator does next: tag the instance again, or (an adopted image) repair it again."""
    if image.tags.get(tags.ADOPTED):
        return (f"Fix them where image {image.tags[tags.ADOPTED]} was made and create it again, or run `bakery "
                f"repair {image.tags[tags.ADOPTED]}` once a repair can fix them.")  # fmt: skip
    return "Fix them on the instance and tag it again."


def on_execution_changed(ctx: Context, execution_id: str) -> None:
    for image in ctx.ecs.images_tagged(tags.REPAIR_EXECUTION, execution_id):
        follow_repair(ctx, image)


def follow_repair(ctx: Context, image: Image) -> None:
    if image.tags.get(tags.STATE) != state.REPAIRING:
        return
    with bound(bake_id=image.tags.get(tags.BAKE_ID, ""), image_id=image.image_id):
        failure.guarded_image(ctx, image, lambda: _finish_repair(ctx, image))


def _finish_repair(ctx: Context, image: Image) -> None:
    execution_id = image.tags[tags.REPAIR_EXECUTION]
    execution = ctx.oos.execution(execution_id)
    if execution is None or not execution.finished:
        return
    new_id = execution.outputs.get("imageId", "")
    if execution.status != "Success" or not new_id:
        raise BakeFailure("repair-failed", f"ACS-ECS-RepairImage execution {execution_id} ended {execution.status}: "
                          f"{execution.message or 'no message'}. The image {image.image_id} stays out of its family.")  # fmt: skip
    repaired = ctx.ecs.image(new_id)
    if repaired is None:
        raise RetryableError(f"repaired image {new_id} is not visible yet")
    if repaired.tags.get(tags.BAKE_ID) != image.tags.get(tags.BAKE_ID):
        # The repair template makes a new image without family, tags or description: re-apply the lineage. Read
        # first: after a lost write of the source's `repaired` this runs again, when the repaired image may be
        # far along (checking, promoted): re-tagging it `creating` would undo that (red team, issue 11).
        # Its description is written with its family, at promotion.
        lineage = {k: v for k, v in image.tags.items() if k.startswith("bakery:")}
        lineage.update({**tags.image_state(state.UNSET, state.CREATING), tags.REPAIRED_FROM: image.image_id,
                        tags.REPAIRS: str(int(image.tags.get(tags.REPAIRS, "0")) + 1)})  # fmt: skip
        lineage.pop(tags.REPAIR_EXECUTION, None)
        ctx.ecs.tag("image", new_id, {**ctx.settings.tags_required, **lineage})
    ctx.set_state(image, state.REPAIRED)
    ctx.bus.publish(BakeryEvent(events.IMAGE_REPAIRED, new_id, {
        "bakeId": image.tags.get(tags.BAKE_ID), "imageId": new_id, "repairedFrom": image.image_id,
        "executionId": execution_id, **adopt.lineage(image)}))  # fmt: skip
    log.info("repair finished; checking the repaired image", repaired_image_id=new_id)
