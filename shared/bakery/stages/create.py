"""CreateImage: stopping the instance first (bakery:stop-first), the image with its lineage and no family yet,
another attempt when ECS ends it CreateFailed, and bakes from snapshots (one image from disks of any instances).

Every image is named and tokened from the bake id and attempt, so a retried call never makes a second image.
"""

from __future__ import annotations

import json
import re

from bakery import events, state, tags
from bakery.errors import BakeFailure, CloudError, RetryableError
from bakery.events import BakeryEvent
from bakery.log import bound, get_logger
from bakery.model import Image, ImageDisk, Instance
from bakery.stages import failure, promote
from bakery.stages.context import Context

log = get_logger(__name__)

_IMAGE_NAME = re.compile(r"^[A-Za-z\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5:_.\-]{1,127}$")
_RESERVED_NAME_PREFIXES = ("aliyun", "acs:", "http://", "https://")


def name_problem(kind: str, value: str, max_length: int = 128) -> str | None:
    """Why `value` cannot be an image family / image name (prefix), or None (alibaba-apis.md §2.2)."""
    if not _IMAGE_NAME.match(value) or len(value) > max_length or value.lower().startswith(_RESERVED_NAME_PREFIXES):
        return (f"{kind} {value!r} is not valid: 2-{max_length} characters, starting with a letter, then letters, "
                "digits, ':', '_', '-' or '.', and not starting with aliyun, acs:, http:// or https://")  # fmt: skip
    return None


# The most tags a bake writes on an image at once: bake-id, state, in-flight, source-instance, attempt, repairs,
# family, repair-execution, repaired-from (a snapshot bake: source-snapshots instead of source-instance, plus name).
IMAGE_LINEAGE_TAGS = 10


def image_tag_budget(ctx: Context, extra: int = 0) -> None:
    """MandatoryTags and Bakery's lineage must fit ECS' 20 tags per image (`extra`: more source-snapshots tags)."""
    limit, mandatory = tags.MAX_TAGS_PER_RESOURCE, len(ctx.settings.tags_required)
    over = mandatory + IMAGE_LINEAGE_TAGS + extra - limit
    if over > 0:
        raise BakeFailure("tag-limit", f"MandatoryTags has {mandatory} tags and Bakery writes up to "
                          f"{IMAGE_LINEAGE_TAGS + extra} of its own on an image; ECS allows {limit} per resource. "
                          f"Remove {over} from the MandatoryTags template parameter.", remove=over)  # fmt: skip


# == from an instance ==============================================================================


def after_preflight(ctx: Context, instance: Instance) -> None:
    if tags.truthy(instance.tags.get(tags.STOP_FIRST)) and instance.status == "Running":
        ctx.set_state(instance, state.STOPPING, {tags.STOPPED_BY_BAKERY: "true"})
        ctx.ecs.stop(instance.instance_id)
        log.info("stopping the instance before imaging (bakery:stop-first)")
        return
    create_image(ctx, instance, attempt=1)


def on_instance_state(ctx: Context, event: events.CloudEvent) -> None:
    """ECS InstanceStateChange: an instance Bakery is stopping is Stopped, so its image can be made."""
    if event.data.get("state") != "Stopped":
        return
    instance = ctx.ecs.instance(str(event.data.get("resourceId", "")))
    if instance is not None and instance.tags.get(tags.STATE) == state.STOPPING:
        with bound(bake_id=instance.tags.get(tags.BAKE_ID), instance_id=instance.instance_id):
            failure.guarded(ctx, instance.instance_id, instance.tags[tags.BAKE_ID], lambda: when_stopped(ctx, instance))


def when_stopped(ctx: Context, instance: Instance) -> None:
    """`stopping`: image a Stopped instance; a Running one was never stopped (StopInstance was throttled or
    failed after the state was written), so the stop is issued again; Stopping settles by itself."""
    if instance.status == "Stopped":
        create_image(ctx, instance, attempt=1)
    elif instance.status == "Running":
        ctx.ecs.stop(instance.instance_id)
        log.info("instance still Running in `stopping`: StopInstance issued again")


def create_image(ctx: Context, instance: Instance, attempt: int) -> str:
    bake_id = instance.tags[tags.BAKE_ID]
    family = instance.tags.get(tags.FAMILY, "")
    prefix = instance.tags.get(tags.NAME) or f"bakery-{instance.instance_id}"
    lineage = {
        tags.BAKE_ID: bake_id,
        **tags.image_state(state.UNSET, state.CREATING),
        tags.SOURCE_INSTANCE: instance.instance_id,
        tags.ATTEMPT: str(attempt),
        tags.REPAIRS: "0",
    }
    if family:
        lineage[tags.FAMILY] = family  # the family to promote into, once the check passes
    try:
        image_id = ctx.ecs.create_image(
            instance.instance_id,
            name=f"{prefix}-{bake_id}-{attempt}",
            description=f"Baked by Bakery from {instance.instance_id} (bake {bake_id})",
            tags={**ctx.settings.tags_required, **lineage},
            client_token=f"{bake_id}-{attempt}",
        )
    except CloudError as exc:
        raise _create_image_failure(instance.instance_id, exc) from exc
    ctx.set_state(instance, state.CREATING, {tags.IMAGE: image_id})
    ctx.bus.publish(BakeryEvent(events.IMAGE_CREATION_STARTED, image_id, {
        "bakeId": bake_id, "imageId": image_id, "instanceId": instance.instance_id, "attempt": attempt,
        "family": family}))  # fmt: skip
    log.info("image creation started", image_id=image_id, attempt=attempt)
    return image_id


def creation_failed(ctx: Context, image: Image) -> None:
    """ECS ended the image CreateFailed (or UnAvailable): retire it and try again, up to
    BAKERY_MAX_CREATE_ATTEMPTS (a repaired image is not made again: its bake fails)."""
    attempt = int(image.tags.get(tags.ATTEMPT, "1"))
    if tags.SOURCE_SNAPSHOTS in image.tags:
        return _snapshot_creation_failed(ctx, image, attempt)
    instance = ctx.ecs.instance(image.tags.get(tags.SOURCE_INSTANCE, ""))
    if attempt < ctx.settings.max_create_attempts and instance is not None and image.tags.get(tags.REPAIRS, "0") == "0":
        log.warning("image creation failed; trying again", attempt=attempt)
        # Write-ahead: attempt n+1 exists (same ClientToken on a retry: the same image) before attempt n is
        # retired, so an interruption in between leaves the bake an image to follow, never none.
        create_image(ctx, instance, attempt + 1)
        promote.retire(ctx, image, force_delete=True)
        return
    raise BakeFailure("create-failed", f"CreateImage ended CreateFailed {attempt} time(s) for "
                      f"{image.tags.get(tags.SOURCE_INSTANCE)} (last image {image.image_id}); see the ECS console "
                      "for the instance's disks, then tag it again.")  # fmt: skip


def _create_image_failure(instance_id: str, exc: CloudError) -> BakeFailure | RetryableError:
    code = exc.code
    if code == "QuotaExceed.Image":
        return BakeFailure("image-quota", "The account's custom image quota is used up (QuotaExceed.Image): delete "
                           "images you no longer need (deprecated images still count: only deleting frees quota; "
                           "`bakery plan FAMILY --action delete` lists what retention would delete) or "
                           "raise the quota in Quota Center, then tag the instance again.")  # fmt: skip
    if code == "InstanceLockedForSecurity":
        return BakeFailure("instance-locked", f"Instance {instance_id} is locked for security reasons.")
    if code in ("IncorrectInstanceStatus", "IncorrectDiskStatus.CreatingSnapshot"):
        return RetryableError(f"CreateImage: {code}: {exc.message}", code=code)
    if code in ("InvalidDiskCategory.CreateImage", "InvalidInstanceId.ValueNotSupported"):
        return BakeFailure("local-disks", f"Instance {instance_id} cannot be imaged: {exc.message}")
    if code in ("NumberExceed.Tags", "QuotaExceed.Tags", "InvalidTagCount"):
        return BakeFailure("tag-limit", f"CreateImage refused the image's tags ({code}: {exc.message}): an image "
                           f"carries at most {tags.MAX_TAGS_PER_RESOURCE} tags, MandatoryTags plus Bakery's own. "
                           "Remove entries from the MandatoryTags template parameter.")  # fmt: skip
    if "Tag" in code or "tag" in exc.message.lower():
        return BakeFailure("mandatory-tag", f"CreateImage refused the image's tags ({code}: {exc.message}). Set the "
                           "tags your tag policy requires in the MandatoryTags template parameter.")  # fmt: skip
    return BakeFailure("create-image", f"CreateImage failed for {instance_id}: {code}: {exc.message}")


# == from snapshots: one image from disks of different instances ====================================


def begin_from_snapshots(ctx: Context, snapshot_ids: list[str], bake_id: str, *, family: str = "",
                         name: str = "") -> None:  # fmt: skip
    """`bakery:Bake:Requested` with snapshotIds: CreateImage from them (DiskDeviceMapping, the first is the
    system disk), then the same check → repair → promote path as an instance bake, with no instance to
    claim or release. The lineage tag SOURCE_SNAPSHOTS replaces SOURCE_INSTANCE."""
    with bound(bake_id=bake_id, snapshot_ids=",".join(snapshot_ids)):
        mine = ctx.ecs.images_tagged(tags.BAKE_ID, bake_id)
        if mine:
            log.info("this bake already made its image; a duplicate request", image_id=mine[0].image_id)
            return
        first = tags.pack_snapshot_ids(snapshot_ids)[tags.SOURCE_SNAPSHOTS]
        busy = [
            i for i in ctx.ecs.images_tagged(tags.SOURCE_SNAPSHOTS, first)
            if tags.unpack_snapshot_ids(i.tags) == snapshot_ids and i.tags.get(tags.STATE) not in state.TERMINAL_IMAGE
        ]  # fmt: skip
        if busy:
            current = busy[0].tags.get(tags.BAKE_ID, "")
            log.info("a bake of these snapshots is already in flight; ignoring the second", in_flight=current)
            ctx.bus.publish(BakeryEvent(events.BAKE_FAILED, bake_id, {
                "bakeId": bake_id, "instanceId": "", "snapshotIds": snapshot_ids, "reason": "already-baking",
                "message": f"Snapshots {', '.join(snapshot_ids)} are already being baked (bake {current}); this "
                           "request was ignored. Request it again after that bake ends.", "inFlight": current}))  # fmt: skip
            return
        try:
            for kind, value in (("family", family), ("name prefix", name)):
                problem = name_problem(kind, value) if value else None
                if problem:
                    raise BakeFailure("invalid-request", problem)
            image_tag_budget(ctx, extra=len(tags.pack_snapshot_ids(snapshot_ids)) - 1)
            create_from_snapshots(ctx, snapshot_ids, bake_id, family=family, name=name, attempt=1)
        except BakeFailure as refused:
            refused.details.setdefault("snapshotIds", list(snapshot_ids))
            failure.fail(ctx, "", bake_id, refused)


def create_from_snapshots(ctx: Context, snapshot_ids: list[str], bake_id: str, *, family: str, name: str,
                          attempt: int) -> str:  # fmt: skip
    prefix = name or f"bakery-{snapshot_ids[0]}"
    lineage = {tags.BAKE_ID: bake_id, **tags.image_state(state.UNSET, state.CREATING),
               **tags.pack_snapshot_ids(snapshot_ids), tags.ATTEMPT: str(attempt), tags.REPAIRS: "0"}  # fmt: skip
    if family:
        lineage[tags.FAMILY] = family  # the family to promote into, once the check passes
    if name:
        lineage[tags.NAME] = name  # a retry names its image the same way
    disks = source_disks(ctx, snapshot_ids)
    try:
        image_id = ctx.ecs.create_image_from_disks(
            disks,
            name=f"{prefix}-{bake_id}-{attempt}",
            description=f"Baked by Bakery from snapshots {', '.join(snapshot_ids)} (bake {bake_id})"[:256],
            tags={**ctx.settings.tags_required, **lineage},
            client_token=f"{bake_id}-{attempt}",
        )
    except CloudError as exc:
        raise _snapshot_image_failure(snapshot_ids, ctx.ecs.region, exc) from exc
    ctx.bus.publish(BakeryEvent(events.IMAGE_CREATION_STARTED, image_id, {
        "bakeId": bake_id, "imageId": image_id, "instanceId": "", "snapshotIds": snapshot_ids,
        "attempt": attempt, "family": family}))  # fmt: skip
    log.info("image creation from snapshots started", image_id=image_id, attempt=attempt)
    return image_id


def source_disks(ctx: Context, snapshot_ids: list[str]) -> list[ImageDisk]:
    """The disks of a snapshot bake, after checking every snapshot (one DescribeSnapshots): it exists, it is
    accomplished, and it opted in to requests (`bakery:allow-requests=true`, which only someone allowed to tag
    the snapshot can set: a bus event alone is not authority over the account's snapshots). CreateImage's own
    errors would not say which snapshot is wrong. The first is the system disk (/dev/xvda), then data disks."""
    found = {s.snapshot_id: s for s in ctx.ecs.snapshots(snapshot_ids)}
    listing = f"aliyun ecs DescribeSnapshots --RegionId {ctx.ecs.region} --SnapshotIds '{json.dumps(snapshot_ids)}'"
    missing = [s for s in snapshot_ids if s not in found]
    if missing:
        raise BakeFailure("snapshot-not-found", f"Snapshot(s) not found: {', '.join(missing)} in {ctx.ecs.region}. "
                          f"Check the ids ({listing}) and request the bake again with existing snapshots.",
                          snapshotIds=snapshot_ids)  # fmt: skip
    unready = [found[s] for s in snapshot_ids if found[s].status != "accomplished"]
    if unready:
        states = ", ".join(f"{s.snapshot_id} is {s.status} ({s.progress or '?'})" for s in unready)
        raise BakeFailure("snapshot-not-ready", f"Snapshots must be accomplished before baking: {states}. Request "
                          "the bake again once they are (a failed snapshot must be taken again).",
                          snapshotIds=snapshot_ids)  # fmt: skip
    closed = [s for s in snapshot_ids if not tags.truthy(found[s].tags.get(tags.ALLOW_REQUESTS))]
    if closed:
        raise BakeFailure("request-not-allowed", f"Snapshot(s) {', '.join(closed)} do not accept bake requests; "
                          f"nothing was made. Tag them {tags.ALLOW_REQUESTS}=true (that needs ecs:TagResources on "
                          "them; `bakery bake --snapshots` does it with your credentials), then request again.",
                          snapshotIds=snapshot_ids)  # fmt: skip
    return [ImageDisk("/dev/xvda" if n == 0 else f"/dev/xvd{chr(ord('a') + n)}", "system" if n == 0 else "data",
                      s, found[s].size_gib) for n, s in enumerate(snapshot_ids)]  # fmt: skip


def _snapshot_creation_failed(ctx: Context, image: Image, attempt: int) -> None:
    snapshot_ids = tags.unpack_snapshot_ids(image.tags)
    if attempt < ctx.settings.max_create_attempts and image.tags.get(tags.REPAIRS, "0") == "0":
        log.warning("image creation from snapshots failed; trying again", attempt=attempt)
        create_from_snapshots(ctx, snapshot_ids, image.tags.get(tags.BAKE_ID, ""), attempt=attempt + 1,
                              family=image.tags.get(tags.FAMILY, ""), name=image.tags.get(tags.NAME, ""))  # fmt: skip
        promote.retire(ctx, image, force_delete=True)  # after its successor exists (write-ahead)
        return
    raise BakeFailure("create-failed", f"CreateImage ended CreateFailed {attempt} time(s) for snapshots "
                      f"{', '.join(snapshot_ids)} (last image {image.image_id}); check the snapshots in the ECS "
                      "console, then request the bake again.", snapshotIds=snapshot_ids)  # fmt: skip


def _snapshot_image_failure(snapshot_ids: list[str], region: str, exc: CloudError) -> BakeFailure | RetryableError:
    listing = f"aliyun ecs DescribeSnapshots --RegionId {region} --SnapshotIds '{json.dumps(snapshot_ids)}'"
    if exc.code == "InvalidSnapshotId.NotFound":
        return BakeFailure("snapshot-not-found", f"Snapshot(s) not found: {exc.message}. Check the ids ({listing}) "
                           "and request the bake again with existing snapshots.", snapshotIds=snapshot_ids)  # fmt: skip
    if exc.code == "InvalidSnapshotId.NotReady":
        return BakeFailure("snapshot-not-ready", f"Snapshots must be accomplished before baking: {exc.message}. "
                           "Request the bake again once they are (a failed snapshot must be taken again).",
                           snapshotIds=snapshot_ids)  # fmt: skip
    if exc.code == "OperationDenied" or exc.code.startswith(("InvalidSize", "InvalidSystemSnapshot", "InvalidDevice")):
        return BakeFailure("snapshot-refused", f"CreateImage refused these snapshots ({exc.code}: {exc.message}). "
                           "The first snapshot becomes the system disk: give a system disk's snapshot first.",
                           snapshotIds=snapshot_ids)  # fmt: skip
    return _create_image_failure(f"snapshots {', '.join(snapshot_ids)}", exc)
