"""The sweep (bakery-check's one-minute timer): finish whatever an event should have moved on — the image check
(ECS publishes no event when it finishes), lost or throttled events, interrupted promotions and wind-downs,
triggers nobody saw. A few queries an hour (`schedule`), so an idle deployment costs 696 calls a day (720 with
adoption on: BAKERY_ADOPT_IMAGES):

- every third minute (`schedule`): every image in flight, from one paged DescribeImages (Tag `bakery:in-flight=true`)
  that returns status, progress, Usable and the check inline; each is decided from that listing, never re-read,
  and the promotions it makes are finished together (`promote.finish`);
- once every fifteen minutes each: the instances tagged `bakery:bake` (triggers nobody claimed), and those claimed
  (`bakery:bake-id`: a preflight or stop whose event was lost, an interrupted wind-down, a bake whose image
  vanished — judged against that minute's image listing); once an hour the snapshots of retires interrupted
  after their image was deleted (`bakery:retiring`), and the images to adopt whose event was lost (`adopt.discover`).

Repairs are followed by OOS's own events; the sweep looks at a running repair once every fifteen minutes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bakery import state, tags
from bakery.errors import BakeFailure, RetryableError
from bakery.log import get_logger
from bakery.model import Image, Instance
from bakery.stages import adopt, check, claim, failure, promote, repair
from bakery.stages.context import Context

log = get_logger(__name__)

Attempt = Callable[[str, Callable[[], object]], object]

GARBAGE_EVERY = 60  # minutes: snapshots tagged bakery:retiring, once an hour (24 calls a day)


def sweep(ctx: Context, trigger_time: str) -> dict[str, int]:
    """Resume every bake in flight one step; returns how many of each kind it looked at.

    Isolation: each bake is handled on its own, and so is each of the sweep's queries — a throttled query, a
    permanent error or a bug in one bake's step is logged and counted, and every other bake is still resumed."""
    counts = {"images": 0, "repairs": 0, "instances": 0, "started": 0, "deferred": 0, "errors": 0, "queries": 0,
              "snapshots": 0, "promoted": 0, "retention": 0, "adopted": 0}  # fmt: skip

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

    ctx.promotions = []
    try:
        _sweep(ctx, _minute(trigger_time), trigger_time, attempt, in_flight)
        batch = ctx.promotions
    finally:
        ctx.promotions, ctx.instances = None, None
    if batch:
        attempt("promoted", lambda: promote.finish(ctx, batch))
    counts.pop("queries", None)
    return counts


# What each minute of the fifteen-minute cycle looks at. Images in flight every third minute (a decision is at
# most three minutes late; the image check itself takes minutes), the claimed instances with one of those
# listings and the triggered ones once (lost-event recovery within fifteen minutes), the snapshots of
# interrupted retires hourly. Every other minute costs nothing.
CYCLE = 15  # minutes
IMAGES_EVERY = 3  # minutes
IMAGES, CLAIMED, TRIGGERED, GARBAGE, ADOPTIONS = "images", "claimed", "triggered", "garbage", "adoptions"
CLAIMED_AT, TRIGGERED_AT, GARBAGE_AT = 6, 1, 2  # minutes of the cycle (GARBAGE_AT: of the hour's first cycle)
# Images made outside Bakery whose event was lost (stages.adopt.discover), when adoption is on: once an hour, at
# this minute of the hour (adoption is not in a hurry: an image's check takes minutes; and a bake's calls stay
# within issue 11's budget).
ADOPTIONS_AT = 4
REPAIRS_AT = 0  # the minute of the cycle whose image listing also looks at running repairs (their events lost)


def schedule(minute: int, *, adopting: bool = False) -> tuple[str, ...]:
    """The queries of the sweep at `minute` (minutes since the epoch), one call each (a page of 100): idle,
    5 image listings + 2 instance queries per fifteen minutes plus one an hour = 696 calls a day; `adopting`
    (BAKERY_ADOPT_IMAGES not off) adds one look for images to adopt an hour (two calls under families / all):
    720 (744) a day."""
    at = minute % CYCLE
    if adopting and minute % GARBAGE_EVERY == ADOPTIONS_AT:
        return (ADOPTIONS,)
    if at == CLAIMED_AT:
        return (IMAGES, CLAIMED)
    if at % IMAGES_EVERY == 0:
        return (IMAGES,)
    if at == TRIGGERED_AT:
        return (TRIGGERED,)
    if minute % GARBAGE_EVERY == GARBAGE_AT:
        return (GARBAGE,)
    return ()


def _sweep(ctx: Context, minute: int, trigger_time: str, attempt: Attempt,
           in_flight: Callable[[], list[Image] | None]) -> None:  # fmt: skip
    queries = schedule(minute, adopting=ctx.settings.adopt_images != "off")
    live: list[Image] | None = None
    if IMAGES in queries:
        live = in_flight()
        _read_instances_to_release(ctx, live or [], attempt)
        for image in live or []:
            # A running repair is followed by OOS's events; for one whose events were lost (or that OOS does
            # not announce), one look every fifteen minutes.
            _resume_image(ctx, image, attempt, repairs=minute % CYCLE == REPAIRS_AT)
        if minute % CYCLE == REPAIRS_AT:
            attempt("retention", lambda: _retention_pending(ctx, live or [], trigger_time))
    if CLAIMED in queries:
        claimed = attempt("queries", lambda: ctx.ecs.instances_tagged(tags.BAKE_ID))
        by_bake: dict[str, list[Image]] | None = None  # None: the listing failed, so no bake is judged lost
        if live is not None:
            by_bake = {}
            for image in live:
                by_bake.setdefault(image.tags.get(tags.BAKE_ID, ""), []).append(image)
        for instance in claimed if isinstance(claimed, list) else []:
            _reconcile_claimed(ctx, instance, by_bake, attempt)
    if TRIGGERED in queries:
        triggered = attempt("queries", lambda: ctx.ecs.instances_tagged(tags.TRIGGER))
        for instance in triggered if isinstance(triggered, list) else []:
            if tags.truthy(instance.tags.get(tags.TRIGGER)) and tags.BAKE_ID not in instance.tags:
                bake_id = claim.bake_id_for(f"sweep:{trigger_time}", instance.instance_id, swept=True)
                attempt("started", lambda i=instance, b=bake_id: claim.begin(ctx, i.instance_id, b))
    if ADOPTIONS in queries:
        found = attempt("queries", lambda: adopt.discover(ctx, trigger_time))
        for image in found if isinstance(found, list) else []:
            attempt("adopted", lambda i=image: check.follow_image(ctx, i))
    if GARBAGE in queries:  # retires interrupted after their image was deleted (retention's too)
        attempt("snapshots", lambda: promote.collect_retired_snapshots(ctx))


def _retention_pending(ctx: Context, listing: list[Image], trigger_time: str) -> None:
    """Promoted images whose family's retention has not run (their Family:Promoted lost, or its lifecycle run
    dead-lettered): the event again, once per family, every fifteen minutes until the lifecycle function ran."""
    # The family a promotion set (an adopted image's is its own: it carries no bakery:family tag).
    waiting = [(image.family or image.tags.get(tags.FAMILY, ""), image.image_id) for image in listing
               if image.tags.get(tags.STATE) == state.READY and (image.family or image.tags.get(tags.FAMILY))]  # fmt: skip
    if waiting:
        ctx.bus.publish(*promote.family_promoted(waiting, resumedAt=trigger_time))


def _read_instances_to_release(ctx: Context, listing: list[Image], attempt: Attempt) -> None:
    """Several images about to be promoted: their instances (released by the promotion) in one call per 100,
    instead of one each. One image alone is read as before."""
    ids = [i.tags[tags.SOURCE_INSTANCE] for i in listing if check.passing(i) and i.tags.get(tags.SOURCE_INSTANCE)]
    if len(ids) < 2:
        return
    found = attempt("queries", lambda: ctx.ecs.instances(ids))
    if isinstance(found, list):  # else each promotion reads its own
        ctx.instances = {**dict.fromkeys(ids), **{i.instance_id: i for i in found}}


def _resume_image(ctx: Context, image: Image, attempt: Attempt, *, repairs: bool) -> None:
    if promote.promoting(ctx, image.tags.get(tags.BAKE_ID, "")):
        return  # its bake was promoted a moment ago from this same listing: the next sweep sees it as it is now
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
