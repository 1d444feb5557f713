"""Promotion: the checked image into its family, `bakery:Image:Ready`, the instance released (and started again
if Bakery stopped it), the images the bake replaced retired. Releasing and retiring end failed bakes too."""

from __future__ import annotations

from bakery import events, state, tags
from bakery.errors import CloudError, RetryableError
from bakery.events import BakeryEvent
from bakery.log import get_logger
from bakery.model import Image, Instance
from bakery.stages import adopt
from bakery.stages.context import Context

log = get_logger(__name__)

# Every other image of a bake whose image is promoted is retired: repaired / check-failed ones, and any still
# marked in flight because the write that would have superseded it was interrupted (a repair's source left
# `repairing`, a system-only repair left `creating` while its whole image was promoted, a CreateFailed attempt).
REPLACED = tuple(s for s in state.IMAGE_STATES if s not in state.TERMINAL_IMAGE)


def promote(ctx: Context, image: Image, checked: bool = True) -> None:
    """Every step is idempotent and `bakery:state=ready` is written LAST: if any step is interrupted
    (throttling...), the image is still `checking` and the sweep runs the whole promotion again."""
    bake_id = image.tags.get(tags.BAKE_ID, "")
    if promoting(ctx, bake_id):
        # Another image of this bake is being promoted in this sweep (not `ready` yet): retiring "the others"
        # would take that one too. This one waits for the next sweep, which finds the bake decided.
        log.warning("a second image of one bake passed in one sweep; left to the next sweep", image_id=image.image_id)
        return
    original = image.tags.get(tags.ADOPTED, "")
    adopted: dict[str, object] = {}
    if original:  # an image made outside Bakery: its repaired image takes over its identity (stages.adopt)
        adopted = adopt.promote(ctx, image)
        family = str(adopted.pop("family", "") or "")
    else:
        family = image.tags.get(tags.FAMILY, "")
        description = _repaired_description(image)
        if (family and image.family != family) or description:
            ctx.ecs.set_image_attributes(image.image_id, family=family or None, description=description)
    instance_id = image.tags.get(tags.SOURCE_INSTANCE, "")
    # Images this bake created: one per CreateImage attempt plus one per repair.
    attempts = int(image.tags.get(tags.ATTEMPT, "1")) + int(image.tags.get(tags.REPAIRS, "0"))
    if attempts > 1:  # a first image on its first attempt replaced nothing: no lookup
        # The promoted image may share snapshots with the images it replaces (a repaired system disk put back
        # together with the original's data disks): those stay. An adopted original is settled by its policy.
        for earlier in ctx.ecs.images_tagged(tags.BAKE_ID, bake_id):
            if earlier.image_id not in (image.image_id, original) and earlier.tags.get(tags.STATE) in REPLACED:
                retire(ctx, earlier, keep=frozenset(image.snapshot_ids))
    # What an earlier retire left (interrupted after its image was deleted) is the sweep's hourly collection's:
    # looking for it here cost a DescribeSnapshots per promotion that almost always found nothing.
    release_instance(ctx, instance_id, bake_id, {tags.LAST_IMAGE: image.image_id})
    ready = BakeryEvent(events.IMAGE_READY, image.image_id, {
        "bakeId": bake_id, "imageId": image.image_id, "instanceId": instance_id, "family": family,
        "checked": checked, "repairs": int(image.tags.get(tags.REPAIRS, "0")), "attempts": attempts,
        **adopted})  # fmt: skip
    if ctx.promotions is not None:  # the sweep finishes its promotions together
        ctx.promotions.append((image, ready))
    else:
        finish(ctx, [(image, ready)])
    log.info("image promoted", family=family or None)


def promoting(ctx: Context, bake_id: str) -> bool:
    """Is an image of `bake_id` promoted in this sweep, its `ready` not written yet? Then no other step of that
    bake may run in the same sweep: the listing it would act on is out of date (a retire, a wind-down, a
    repair's end would take or undo the image being promoted)."""
    return any(p.tags.get(tags.BAKE_ID) == bake_id for p, _ in ctx.promotions or ())


def finish(ctx: Context, promotions: list[tuple[Image, BakeryEvent]]) -> None:
    """The end of promotions: `bakery:Image:Ready` for each and one `bakery:Family:Promoted` per family (which
    the lifecycle function turns into one retention run), then `bakery:state=ready` written LAST, 50 images a
    call. Interrupted anywhere, the images are still in flight and the sweep promotes them again (every step
    is idempotent; the events carry the same ids, so receivers see each once)."""
    if not promotions:
        return
    # An adopted image too: the family's retention runs after it (it retires only Bakery's own older images:
    # adopted ones are the operator's, families.fitness.made_by_bakery).
    in_family = [(event.data["family"], image.image_id) for image, event in promotions if event.data.get("family")]
    ctx.bus.publish(*[event for _, event in promotions], *family_promoted(in_family))
    writes: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for image, event in promotions:
        moved = tags.image_state(image.tags.get(tags.STATE), state.READY)  # refuses a move outside the table
        if event.data.get("family"):
            # Still in flight until the lifecycle function has run retention for its family (it clears this):
            # a lost or dead-lettered Family:Promoted is published again by the sweep (RETENTION_PENDING).
            moved[tags.IN_FLIGHT] = "true"
        writes.setdefault(tuple(sorted(moved.items())), []).append(image.image_id)
    for moved_tags, image_ids in writes.items():
        ctx.ecs.tag("image", image_ids, dict(moved_tags))


def family_promoted(promoted: list[tuple[str, str]], **extra: str) -> list[BakeryEvent]:
    """One `bakery:Family:Promoted` per family of the (family, image id) pairs, its images sorted; `extra` data
    (a re-send's `resumedAt`) gives it an id of its own."""
    by_family: dict[str, list[str]] = {}
    for family, image_id in promoted:
        by_family.setdefault(family, []).append(image_id)
    return [BakeryEvent(events.FAMILY_PROMOTED, family, {"family": family, "imageIds": sorted(ids), **extra})
            for family, ids in sorted(by_family.items())]  # fmt: skip


def _repaired_description(image: Image) -> str | None:
    """ACS-ECS-RepairImage's image comes back without a description: the bake's, and what it was repaired
    from (written with the family, in one ModifyImageAttribute). None when the image has its own."""
    source = image.tags.get(tags.REPAIRED_FROM)
    if not source or image.description:
        return None
    bake_id = image.tags.get(tags.BAKE_ID, "")
    made_from = image.tags.get(tags.SOURCE_INSTANCE) or "snapshots " + ", ".join(tags.unpack_snapshot_ids(image.tags))
    return f"Baked by Bakery from {made_from} (bake {bake_id}) (repaired from {source})"[:256]


def owned_instance(ctx: Context, instance_id: str, bake_id: str) -> Instance | None:
    """The instance, unless it is gone or belongs to another bake by now."""
    instance = ctx.instance(instance_id) if instance_id else None
    if instance is None or instance.tags.get(tags.BAKE_ID) not in (bake_id, None):
        return None
    return instance


def release_instance(ctx: Context, instance_id: str, bake_id: str, result_tags: dict[str, str]) -> None:
    """Start the instance again if Bakery stopped it, then drop the bake's tags (the restart comes first:
    once `bakery:stopped-by-bakery` is gone, nothing would remember to start it)."""
    instance = owned_instance(ctx, instance_id, bake_id)
    if instance is None:
        return  # gone, another bake's, or a bake from snapshots (no instance)
    state.check(state.INSTANCE, instance.tags.get(tags.STATE), state.UNSET)
    if tags.truthy(instance.tags.get(tags.STOPPED_BY_BAKERY)):
        if instance.status == "Stopping":  # it will settle; the sweep comes back to start it
            raise RetryableError("instance is still Stopping; it will be started once Stopped")
        if instance.status == "Stopped":
            ctx.ecs.start(instance_id)
            log.info("instance started again (Bakery had stopped it)")
    # The work tags go first, so the result always has room (the 20-tag limit); a retry after a failure in
    # between finds the instance unclaimed and writes the result again.
    stale = tags.LAST_ERROR if tags.LAST_IMAGE in result_tags else tags.LAST_IMAGE
    ctx.ecs.untag("instance", instance_id, [t for t in [*tags.INSTANCE_WORK_TAGS, stale] if t in instance.tags])
    try:
        ctx.ecs.tag("instance", instance_id, result_tags)
    except CloudError as exc:
        if exc.code != "QuotaExceed.Tags":
            raise
        # An instance refused for its tag count before anything was claimed has no work tag to free: the
        # result stays in the bake's event (Bake:Failed / Image:Ready), not on the full instance.
        log.warning("no tag room for the bake's result on the instance", result=result_tags, code=exc.code)


def retire(ctx: Context, image: Image, force_delete: bool = False, keep: frozenset[str] = frozenset()) -> None:
    """Broken images leave the account (with their snapshots), or are deprecated, per BAKERY_RETIRE_POLICY.

    Write-ahead: the snapshots to delete are tagged `bakery:retiring` before the image is deleted (ECS refuses
    to delete a snapshot an image uses, and a deleted image no longer says which snapshots were its own), so a
    delete interrupted half-way is finished by `collect_retired_snapshots`. Never deleted: the operator's
    snapshots a snapshot bake was made from, and `keep` (snapshots another image of the bake still uses)."""
    if ctx.settings.retire_policy == "deprecate" and not force_delete and image.status == "Available":
        ctx.ecs.set_image_attributes(image.image_id, status="Deprecated")
        ctx.set_state(image, state.RETIRED)
        return
    sources = set(tags.unpack_snapshot_ids(image.tags))
    doomed = [s for s in image.snapshot_ids if s not in sources and s not in keep]
    ctx.ecs.delete_image_with_snapshots(
        image.image_id, doomed, mark={tags.RETIRING: image.tags.get(tags.BAKE_ID) or "-"}
    )
    log.info("image retired", retired_image_id=image.image_id, snapshots=len(doomed))


def collect_retired_snapshots(ctx: Context, bake_id: str | None = None) -> int:
    """Finish retires that were interrupted after their image was deleted: delete the snapshots still tagged
    `bakery:retiring` (= `bake_id`, or any bake's, retention's included). Returns how many were deleted."""
    return sum(ctx.ecs.release_snapshot(s, unmark=[tags.RETIRING])
               for s in ctx.ecs.snapshots_tagged(tags.RETIRING, bake_id))  # fmt: skip
