"""The sweep (bakery-check's one-minute timer): finish whatever an event should have moved on — lost or
throttled events, interrupted promotions and wind-downs, triggers nobody saw. It rebuilds everything from tag
queries: one per in-flight image state (`state.IN_FLIGHT_IMAGE`), the claimed instances, the triggered ones;
so its cost follows the bakes in flight (O(pages)), not the history of images."""

from __future__ import annotations

from collections.abc import Callable

from bakery import state, tags
from bakery.errors import BakeFailure, RetryableError
from bakery.log import get_logger
from bakery.model import Image, Instance
from bakery.stages import check, claim, failure, promote, repair
from bakery.stages.context import Context

log = get_logger(__name__)

Attempt = Callable[[str, Callable[[], None]], None]


def sweep(ctx: Context, trigger_time: str) -> dict[str, int]:
    """Resume every bake in flight one step; returns how many of each kind it looked at."""
    counts = {"images": 0, "repairs": 0, "instances": 0, "started": 0, "deferred": 0}

    def attempt(kind: str, step: Callable[[], None]) -> None:
        # One stuck bake must not hold up the others: a retryable error defers it to the next sweep.
        counts[kind] += 1
        try:
            step()
        except RetryableError as exc:
            counts["deferred"] += 1
            log.warning("sweep deferred a bake to the next sweep", reason=str(exc), code=exc.code)

    # Finished images (ready, retired...) are never read.
    live: list[Image] = []
    for in_flight in state.IN_FLIGHT_IMAGE:
        live += ctx.ecs.images_tagged(tags.STATE, in_flight)
    for image in live:
        current = image.tags.get(tags.STATE)
        if current in check.FOLLOWED:
            attempt("images", lambda i=image: check.follow(ctx, i.image_id))
        elif current == state.CHECK_FAILED:
            attempt("repairs", lambda i=image: repair.on_check_failed(ctx, i.image_id))
        elif current == state.REPAIRING:
            attempt("repairs", lambda i=image: repair.follow_repair(ctx, i))
    by_bake: dict[str, list[Image]] = {}
    for image in live:
        by_bake.setdefault(image.tags.get(tags.BAKE_ID, ""), []).append(image)
    for instance in ctx.ecs.instances_tagged(tags.BAKE_ID):
        _reconcile_claimed(ctx, instance, by_bake, attempt)
    for instance in ctx.ecs.instances_tagged(tags.TRIGGER):
        if not tags.truthy(instance.tags.get(tags.TRIGGER)):
            continue
        if tags.BAKE_ID not in instance.tags:
            bake_id = claim.bake_id_for(f"sweep:{trigger_time}", instance.instance_id)
            attempt("started", lambda i=instance, b=bake_id: claim.begin(ctx, i.instance_id, b))
        elif instance.tags.get(tags.STATE) in state.ON_INSTANCE:
            attempt("instances", lambda i=instance: failure.guarded(
                ctx, i.instance_id, i.tags[tags.BAKE_ID], lambda: claim.advance_instance(ctx, i)))  # fmt: skip
    return counts


def _reconcile_claimed(ctx: Context, instance: Instance, by_bake: dict[str, list[Image]], attempt: Attempt) -> None:
    """A claimed instance whose bake ended (or lost its image) but was interrupted while winding down."""
    bake_id = instance.tags[tags.BAKE_ID]
    if instance.tags.get(tags.ENDING) == bake_id:
        reason = instance.tags.get(tags.LAST_ERROR, "interrupted")
        attempt("instances", lambda: failure.wind_down(ctx, instance.instance_id, bake_id, reason))
        return
    if instance.tags.get(tags.STATE) != state.CREATING:
        return  # preflight and stopping are resumed by `sweep`; later states live on the image
    if by_bake.get(bake_id):
        return  # its image is in flight: followed above
    # Rare: a claimed instance whose bake has no image in flight. One lookup for this bake alone.
    ready = [i for i in ctx.ecs.images_tagged(tags.BAKE_ID, bake_id) if i.tags.get(tags.STATE) == state.READY]
    if ready:
        attempt("instances", lambda: promote.release_instance(ctx, instance.instance_id, bake_id,
                                                              {tags.LAST_IMAGE: ready[0].image_id}))  # fmt: skip
    else:
        lost = BakeFailure("interrupted", f"Bake {bake_id} lost its image (deleted outside Bakery, or an "
                           "interrupted retry); tag the instance again to bake it.")  # fmt: skip
        attempt("instances", lambda: failure.fail(ctx, instance.instance_id, bake_id, lost))
