"""The sweep (bakery-check's one-minute timer): finish whatever an event should have moved on — lost or
throttled events, interrupted promotions and wind-downs, triggers nobody saw. It rebuilds everything from tag
queries: one per in-flight image state (`state.IN_FLIGHT_IMAGE`), the claimed instances, the triggered ones;
so its cost follows the bakes in flight (O(pages)), not the history of images."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bakery import state, tags
from bakery.errors import BakeFailure, RetryableError
from bakery.log import get_logger
from bakery.model import Image, Instance
from bakery.stages import check, claim, failure, promote, repair
from bakery.stages.context import Context

log = get_logger(__name__)

Attempt = Callable[[str, Callable[[], object]], object]


GARBAGE_EVERY_MINUTES = 15  # how often the sweep looks for snapshots of interrupted retires: 96 calls a day


def sweep(ctx: Context, trigger_time: str) -> dict[str, int]:
    """Resume every bake in flight one step; returns how many of each kind it looked at.

    Isolation: each bake is handled on its own, and so is each of the sweep's queries — a throttled query, a
    permanent error or a bug in one bake's step is logged and counted, and every other bake is still resumed."""
    counts = {"images": 0, "repairs": 0, "instances": 0, "started": 0, "deferred": 0, "errors": 0, "snapshots": 0,
              "queries": 0}  # fmt: skip

    def attempt(kind: str, step: Callable[[], object]) -> object:
        counts[kind] += 1
        try:
            return step()
        except RetryableError as exc:
            counts["deferred"] += 1
            log.warning("sweep deferred a step to the next sweep", kind=kind, reason=str(exc), code=exc.code)
        except Exception:  # a step's permanent errors end its bake (failure.guarded); anything else is a bug
            counts["errors"] += 1
            log.exception("sweep step failed; the other bakes go on", kind=kind)
        return None

    # Finished images (ready, retired...) are never read.
    live: list[Image] = []
    complete = True  # every image query answered: only then can a bake be judged to have lost its image
    for in_flight in state.IN_FLIGHT_IMAGE:
        found = attempt("queries", lambda s=in_flight: ctx.ecs.images_tagged(tags.STATE, s))
        live += found if isinstance(found, list) else []
        complete = complete and isinstance(found, list)
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
    claimed = attempt("queries", lambda: ctx.ecs.instances_tagged(tags.BAKE_ID))
    for instance in claimed if isinstance(claimed, list) else []:
        _reconcile_claimed(ctx, instance, by_bake if complete else None, attempt)
    triggered = attempt("queries", lambda: ctx.ecs.instances_tagged(tags.TRIGGER))
    for instance in triggered if isinstance(triggered, list) else []:
        if not tags.truthy(instance.tags.get(tags.TRIGGER)):
            continue
        if tags.BAKE_ID not in instance.tags:
            bake_id = claim.bake_id_for(f"sweep:{trigger_time}", instance.instance_id)
            attempt("started", lambda i=instance, b=bake_id: claim.begin(ctx, i.instance_id, b))
    if _minute(trigger_time) % GARBAGE_EVERY_MINUTES == 0:
        deleted = attempt("queries", lambda: promote.collect_retired_snapshots(ctx))
        counts["snapshots"] = deleted if isinstance(deleted, int) else 0
    counts.pop("queries", None)
    return counts


def _minute(trigger_time: str) -> int:
    """Minutes since the epoch of an FC timer's triggerTime (ISO 8601); 0 when it cannot be read."""
    try:
        return int(datetime.fromisoformat(trigger_time.replace("Z", "+00:00")).timestamp() // 60)
    except (ValueError, TypeError, OverflowError):
        return 0


def _reconcile_claimed(
    ctx: Context, instance: Instance, by_bake: dict[str, list[Image]] | None, attempt: Attempt
) -> None:
    """A claimed instance whose bake ended (or lost its image) but was interrupted while winding down.
    `by_bake` None: the in-flight images are not all known this sweep, so no bake is judged lost."""
    bake_id = instance.tags[tags.BAKE_ID]
    if instance.tags.get(tags.ENDING) == bake_id:
        reason = instance.tags.get(tags.LAST_ERROR, "interrupted")
        attempt("instances", lambda: failure.wind_down(ctx, instance.instance_id, bake_id, reason))
        return
    if instance.tags.get(tags.STATE) in state.ON_INSTANCE:  # preflight, stopping: the bake has no image yet
        attempt("instances", lambda: failure.guarded(
            ctx, instance.instance_id, bake_id, lambda: claim.advance_instance(ctx, instance)))  # fmt: skip
        return
    if instance.tags.get(tags.STATE) != state.CREATING:
        return
    if by_bake is None or by_bake.get(bake_id):
        return  # its image is in flight (followed above), or this sweep cannot tell
    # Rare: a claimed instance whose bake has no image in flight. One lookup for this bake alone.
    mine = attempt("queries", lambda: ctx.ecs.images_tagged(tags.BAKE_ID, bake_id))
    if not isinstance(mine, list):
        return
    ready = [i for i in mine if i.tags.get(tags.STATE) == state.READY]
    if ready:
        attempt("instances", lambda: promote.release_instance(ctx, instance.instance_id, bake_id,
                                                              {tags.LAST_IMAGE: ready[0].image_id}))  # fmt: skip
    else:
        lost = BakeFailure("interrupted", f"Bake {bake_id} lost its image (deleted outside Bakery, or an "
                           "interrupted retry); tag the instance again to bake it.")  # fmt: skip
        attempt("instances", lambda: failure.fail(ctx, instance.instance_id, bake_id, lost))
