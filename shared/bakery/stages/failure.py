"""Ending a bake that cannot succeed: one `bakery:Bake:Failed` with a reason a person can act on, then the
wind-down (the bake's images retired, its instance released and started again if Bakery stopped it)."""

from __future__ import annotations

from collections.abc import Callable

from bakery import events, state, tags
from bakery.errors import BakeFailure, CloudError
from bakery.events import BakeryEvent
from bakery.log import get_logger
from bakery.model import Image
from bakery.stages import adopt, promote
from bakery.stages.context import Context

log = get_logger(__name__)


def guarded(ctx: Context, instance_id: str, bake_id: str, step: Callable[[], object], *, original: str = "") -> None:
    """Run a step; a BakeFailure — or a permanent cloud error nobody handled — ends the bake (once).
    Retryable errors propagate to the retry policy (FC's async retries, then the sweep). `original`: the
    operator's image an adopted bake repairs (given back as it was)."""
    try:
        step()
    except CloudError as exc:  # permanent: retrying the same call cannot help, so say what broke
        fail(ctx, instance_id, bake_id, BakeFailure("cloud-error", f"{exc.action} was refused: {exc.code}: "
                                                    f"{exc.message}", action=exc.action, code=exc.code),
             original=original)  # fmt: skip
    except BakeFailure as failure:
        fail(ctx, instance_id, bake_id, failure, original=original)


def guarded_image(ctx: Context, image: Image, step: Callable[[], object]) -> None:
    """`guarded` for a step on one of a bake's images: its instance, bake and (adopted) original from its tags."""
    guarded(ctx, image.tags.get(tags.SOURCE_INSTANCE, ""), image.tags.get(tags.BAKE_ID, ""), step,
            original=image.tags.get(tags.ADOPTED, ""))  # fmt: skip


def fail(ctx: Context, instance_id: str, bake_id: str, failure: BakeFailure, *, original: str = "") -> None:
    """End a bake: say why (once), retire its images, release its instance (restarting it if Bakery
    stopped it). Write-ahead: `bakery:Bake:Failed` is published first (its id is deterministic, so a retry
    that publishes again is deduplicated), and only then is the instance marked `bakery:ending`, so the sweep
    finishes an interrupted wind-down without ever losing the event."""
    log.error("bake failed", reason=failure.reason, detail=failure.message)
    adopted = {"adopted": True, "originalImageId": original, "imageId": original} if original else {}
    ctx.bus.publish(BakeryEvent(events.BAKE_FAILED, instance_id or original or bake_id, {
        "bakeId": bake_id, "instanceId": instance_id, "reason": failure.reason, "message": failure.message,
        **{k: v for k, v in failure.details.items() if isinstance(v, (str, int, list))}, **adopted}))  # fmt: skip
    instance = promote.owned_instance(ctx, instance_id, bake_id)
    if instance is not None:
        try:
            ctx.ecs.tag("instance", instance_id, {tags.LAST_ERROR: failure.reason, tags.ENDING: bake_id or "-"})
        except CloudError as exc:
            if exc.code != "QuotaExceed.Tags":
                raise
            # No room for the marker (someone added tags during the bake): wind down now, unmarked.
            log.warning("no tag room to mark the bake ending; winding down directly", code=exc.code)
    wind_down(ctx, instance_id, bake_id, failure.reason)


def wind_down(ctx: Context, instance_id: str, bake_id: str, reason: str) -> None:
    """Retire every image of the bake that is not finished (deleted: a failed bake leaves none behind), then
    release the instance with `bakery:last-error`. Safe to run again: the sweep finishes an interrupted one."""
    if bake_id:
        images = ctx.ecs.images_tagged(tags.BAKE_ID, bake_id)
        originals = [i for i in images if i.tags.get(tags.ADOPTED) == i.image_id]  # the operator's: never retired
        for image in images:
            if image.tags.get(tags.STATE) == state.REPAIRING:
                _retire_repair_output(ctx, image)
            if image not in originals and image.tags.get(tags.STATE) not in state.TERMINAL_IMAGE:
                promote.retire(ctx, image, force_delete=True)
        for original in originals:  # last: a repaired image that took its name is gone by now
            if original.tags.get(tags.STATE) is not None or tags.ORIGINAL_NAME in original.tags:
                adopt.give_back(ctx, original, reason)
        promote.collect_retired_snapshots(ctx, bake_id)
    promote.release_instance(ctx, instance_id, bake_id, {tags.LAST_ERROR: reason})


def _retire_repair_output(ctx: Context, image: Image) -> None:
    """A bake that ends while its image is `repairing` may already have a repaired image: ACS-ECS-RepairImage
    makes it bare (no tags), so only the execution's output names it. It goes too, before its source."""
    execution = ctx.oos.execution(image.tags.get(tags.REPAIR_EXECUTION, ""))
    repaired_id = execution.outputs.get("imageId", "") if execution is not None and execution.finished else ""
    repaired = ctx.ecs.image(repaired_id) if repaired_id else None
    if repaired is not None and repaired.tags.get(tags.BAKE_ID) in (None, image.tags.get(tags.BAKE_ID)):
        promote.retire(ctx, repaired, force_delete=True)
    elif execution is not None and not execution.finished:
        log.warning("the bake ended while its repair still runs; its image will be left by ACS-ECS-RepairImage",
                    execution_id=execution.execution_id)  # fmt: skip
