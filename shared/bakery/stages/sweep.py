"""The sweep (bakery-check's one-minute timer): finish whatever an event should have moved on — the image check
(ECS publishes no event when it finishes), lost or throttled events, interrupted promotions and wind-downs,
triggers nobody saw. One query a minute, so an idle deployment costs 1,440 calls a day:

- four minutes in five: every image in flight, from one paged DescribeImages (Tag `bakery:in-flight=true`)
  that returns status, progress, Usable and the check inline; each is decided from that listing, never re-read;
- every fifth minute, the instances instead, alternating (each every ten minutes): those tagged `bakery:bake`
  (triggers nobody claimed) and those claimed (`bakery:bake-id`: a preflight or stop whose event was lost, an
  interrupted wind-down, a bake whose image vanished — for which the images are listed too, that minute);
  once an hour also the snapshots of retires interrupted after their image was deleted (`bakery:retiring`).

Repairs are followed by OOS's own events; the sweep looks at a running repair once every five minutes."""

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

INSTANCES_EVERY = 5  # minutes: every fifth sweep reads instances (alternately triggered and claimed)
GARBAGE_EVERY = 60  # minutes: snapshots tagged bakery:retiring, once an hour (24 calls a day)


def sweep(ctx: Context, trigger_time: str) -> dict[str, int]:
    """Resume every bake in flight one step; returns how many of each kind it looked at.

    Isolation: each bake is handled on its own, and so is each of the sweep's queries — a throttled query, a
    permanent error or a bug in one bake's step is logged and counted, and every other bake is still resumed."""
    counts = {"images": 0, "repairs": 0, "instances": 0, "started": 0, "deferred": 0, "errors": 0, "queries": 0,
              "snapshots": 0}  # fmt: skip

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

    def in_flight() -> list[Image] | None:
        found = attempt("queries", lambda: ctx.ecs.images_tagged(tags.IN_FLIGHT, "true"))
        return found if isinstance(found, list) else None  # None: unknown this sweep

    minute = _minute(trigger_time)
    if minute % INSTANCES_EVERY:
        for image in in_flight() or []:
            # A running repair is followed by OOS's events; for one whose events were lost (or that OOS does
            # not announce), one look every fifth minute.
            _resume_image(ctx, image, attempt, repairs=minute % INSTANCES_EVERY == 1)
    elif minute % (2 * INSTANCES_EVERY) == 0:
        if minute % GARBAGE_EVERY == 0:  # retires interrupted after their image was deleted (retention's too)
            attempt("snapshots", lambda: promote.collect_retired_snapshots(ctx))
        triggered = attempt("queries", lambda: ctx.ecs.instances_tagged(tags.TRIGGER))
        for instance in triggered if isinstance(triggered, list) else []:
            if tags.truthy(instance.tags.get(tags.TRIGGER)) and tags.BAKE_ID not in instance.tags:
                bake_id = claim.bake_id_for(f"sweep:{trigger_time}", instance.instance_id, swept=True)
                attempt("started", lambda i=instance, b=bake_id: claim.begin(ctx, i.instance_id, b))
    else:
        claimed = attempt("queries", lambda: ctx.ecs.instances_tagged(tags.BAKE_ID))
        claimed = claimed if isinstance(claimed, list) else []
        live: list[Image] | None = []
        if any(i.tags.get(tags.STATE) == state.CREATING for i in claimed):
            live = in_flight()  # only when a bake has its image: then one more query, this minute
            for image in live or []:
                _resume_image(ctx, image, attempt, repairs=False)
        by_bake: dict[str, list[Image]] | None = None
        if live is not None:
            by_bake = {}
            for image in live:
                by_bake.setdefault(image.tags.get(tags.BAKE_ID, ""), []).append(image)
        for instance in claimed:
            _reconcile_claimed(ctx, instance, by_bake, attempt)
    counts.pop("queries", None)
    return counts


def _resume_image(ctx: Context, image: Image, attempt: Attempt, *, repairs: bool) -> None:
    current = image.tags.get(tags.STATE)
    if current in check.FOLLOWED:
        attempt("images", lambda: check.follow_image(ctx, image))
    elif current == state.CHECK_FAILED:
        attempt("repairs", lambda: repair.repair_image(ctx, image))
    elif current == state.REPAIRING and repairs:  # OOS's events follow it; this is for one that was lost
        attempt("repairs", lambda: repair.follow_repair(ctx, image))


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
