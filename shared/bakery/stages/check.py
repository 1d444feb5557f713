"""Following an image to Available and deciding on its ECS check (DetectionStrategy=Standard): promote it, have
it repaired, make it again (CreateFailed), or end the bake. Alibaba publishes no image-ready event: `follow`
is woken by Bakery's own `bakery:Image:CreationStarted` / `Image:Repaired`, by snapshot completion, and by
the sweep."""

from __future__ import annotations

from dataclasses import replace

from bakery import events, state, tags
from bakery.errors import BakeFailure
from bakery.events import BakeryEvent
from bakery.log import bound, get_logger
from bakery.model import Image, ImageDisk
from bakery.stages import adopt, create, failure, promote
from bakery.stages.context import Context

log = get_logger(__name__)

FOLLOWED = (state.CREATING, state.CHECKING)  # the image states `follow` acts on


def follow(ctx: Context, image_id: str) -> None:
    """Read the image and move it on (`follow_image`)."""
    image = ctx.ecs.image(image_id)
    if image is not None:
        follow_image(ctx, image)


def follow_image(ctx: Context, image: Image) -> None:
    """Move an image on from what was just read of it (the sweep's listing, or `follow`'s read)."""
    if image.tags.get(tags.STATE) not in FOLLOWED:
        return  # not ours, or already decided: a duplicate delivery
    with bound(bake_id=image.tags.get(tags.BAKE_ID, ""), image_id=image.image_id):
        failure.guarded_image(ctx, image, lambda: decide(ctx, image))


def decide(ctx: Context, image: Image) -> None:
    if image.status in ("Creating", "Waiting"):
        return
    original = image.tags.get(tags.ADOPTED) == image.image_id  # an adopted image itself (not one Bakery made)
    if image.status in ("CreateFailed", "UnAvailable"):
        if original:
            return adopt.release_unchecked(ctx, image)
        return create.creation_failed(ctx, image)
    # Deprecated: someone deprecated the image while its bake was in flight; the bake still finishes (its
    # status is the operator's choice, and a half-finished promotion must always have a way forward).
    if image.status not in ("Available", "Deprecated") or not image.usable:
        return
    repaired = image.tags.get(tags.STATE) == state.CREATING and tags.REPAIRED_FROM in image.tags
    if repaired and reassemble(ctx, image):
        return
    if not image.detection_status:
        if original:  # adopted while Creating: only now does its listing say it is not checked
            return adopt.release_unchecked(ctx, image)
        return _unchecked_image(ctx, image)
    if image.detection_status != "Finished":
        if repaired:  # `checking` records that its disks were verified (reassemble runs once); a plain image's
            ctx.set_state(image, state.CHECKING)  # check in progress is read from its listing: no write
        return
    failing = image.failing_items
    if not failing:
        return promote.promote(ctx, image)
    ctx.set_state(image, state.CHECK_FAILED)
    log.warning("image check failed", items=[i.name for i in failing])
    ctx.bus.publish(BakeryEvent(events.IMAGE_CHECK_FAILED, image.image_id, {
        "bakeId": image.tags.get(tags.BAKE_ID), "imageId": image.image_id,
        "instanceId": image.tags.get(tags.SOURCE_INSTANCE), "repairs": int(image.tags.get(tags.REPAIRS, "0")),
        "items": [{"name": i.name, "riskLevel": i.risk_level, "riskCode": i.risk_code} for i in failing],
        **adopt.lineage(image)}))  # fmt: skip


def passing(image: Image) -> bool:
    """Will `decide` promote this image as listed (a check that passed, nothing left to verify)? Used only to
    read the instances of a sweep's promotions together: a wrong guess costs one call, never a decision."""
    return (image.tags.get(tags.STATE) in FOLLOWED and image.status in ("Available", "Deprecated") and image.usable
            and image.detection_status == "Finished" and not image.failing_items
            and not (image.tags.get(tags.STATE) == state.CREATING and tags.REPAIRED_FROM in image.tags))  # fmt: skip


def _unchecked_image(ctx: Context, image: Image) -> None:
    if ctx.settings.unchecked_image_policy == "promote":
        log.warning("image check not supported for this image; promoting unchecked (BAKERY_UNCHECKED_IMAGE_POLICY)")
        return promote.promote(ctx, image, checked=False)
    raise BakeFailure("check-unsupported", f"Image {image.image_id} ({image.platform}) cannot be checked by ECS "
                      "(encrypted disks or an unsupported OS), so Bakery will not promote it. Set "
                      "BAKERY_UNCHECKED_IMAGE_POLICY=promote to accept unchecked images.")  # fmt: skip


def reassemble(ctx: Context, repaired: Image) -> bool:
    """A repaired image must have every disk of the image it was repaired from. ACS-ECS-RepairImage repairs
    only DiskDeviceMapping[0] and makes its image from that one snapshot (aliyun/oos-templates
    PublicTemplates/YAML/ACS-ECS-RepairImage.yml: checkImage reads `DiskDeviceMapping[0].SnapshotId`, createImage
    passes a single `SnapshotId`), so a source with data disks comes back without them. Then the image is put
    back together — the repaired system disk plus the source's data-disk snapshots, device for device — and
    that image is checked and promoted instead. Returns True when `repaired` is superseded (or the bake ends).

    Checked once, when the repaired image is first seen Available (state `creating`): one DescribeImages."""
    source_id = repaired.tags[tags.REPAIRED_FROM]
    source = ctx.ecs.image(source_id)
    if source is None:
        raise BakeFailure("disks-unverified", f"Image {source_id}, which {repaired.image_id} was repaired from, is "
                          "gone, so Bakery cannot check that the repaired image kept every disk; it will not promote "
                          "it. Tag the instance again to bake it afresh.")  # fmt: skip
    missing = disks_missing(source.disks, repaired.disks)
    if not missing:
        return False
    if len(repaired.disks) != 1 or not repaired.disks[0].snapshot_id or any(not d.snapshot_id for d in source.disks):
        raise BakeFailure("disk-lost", f"Repaired image {repaired.image_id} lacks disks of {source_id} "
                          f"({', '.join(missing)}) in a way Bakery cannot put back together; it will not promote it.",
                          missing=missing)  # fmt: skip
    bake_id = repaired.tags.get(tags.BAKE_ID, "")
    repairs = repaired.tags.get(tags.REPAIRS, "0")
    system = replace(repaired.disks[0], device=source.disks[0].device or repaired.disks[0].device)
    lineage = {k: v for k, v in repaired.tags.items() if k.startswith("bakery:")}
    lineage.update(tags.image_state(state.UNSET, state.CREATING))
    whole_id = ctx.ecs.create_image_from_disks(
        [system, *source.disks[1:]], like=repaired, name=f"{source.name}-r{repairs}"[:128],
        description=repaired.description or f"{source.description} (repaired from {source_id})"[:256],
        tags={**ctx.settings.tags_required, **lineage}, client_token=f"{bake_id}-r{repairs}-disks",
    )  # fmt: skip
    # Write-ahead: the whole image exists before the system-only one is marked superseded.
    ctx.set_state(repaired, state.REPAIRED)
    ctx.bus.publish(BakeryEvent(events.IMAGE_REPAIRED, whole_id, {
        "bakeId": bake_id, "imageId": whole_id, "repairedFrom": source_id, "reassembledFrom": repaired.image_id,
        "disks": len(source.disks), **adopt.lineage(repaired)}))  # fmt: skip
    log.info("repaired image lacked data disks; put back together with them", whole_image_id=whole_id,
             missing=missing)  # fmt: skip
    return True


def disks_missing(source: tuple[ImageDisk, ...], image: tuple[ImageDisk, ...]) -> list[str]:
    """The disks of `source` that `image` does not carry (in order, same type, at least the same size)."""
    missing = []
    for n, disk in enumerate(source):
        have = image[n] if n < len(image) else None
        if have is None or have.disk_type != disk.disk_type or have.size_gib < disk.size_gib:
            missing.append(f"{disk.device or f'disk {n}'} ({disk.disk_type}, {disk.size_gib} GiB)")
    return missing
