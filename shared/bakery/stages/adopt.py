"""Adoption: images made outside Bakery (the console, Packer, Terraform, OOS...) followed through the same check
and repair stages as Bakery's own bakes, the repaired image given back the original's identity.

Which images: BAKERY_ADOPT_IMAGES — `off`; `tag` (images tagged `bakery:adopt=true`: the default, so Bakery never
touches an image nobody asked it to); `families` (those, and new images of BAKERY_ADOPT_FAMILIES); `all`.
An adopted image carries `bakery:adopted=<its own id>` and a bake id like any bake, so the sweep follows it with
every other image in flight; every image of that bake (its repaired images) carries the same `bakery:adopted`.

How it arrives: ActionTrail's CreateImage record (ApiCall, or ConsoleOperation from the console) on the default
bus; a TagResources that sets `bakery:adopt=true` on an image; the sweep's look at new images once an
hour (a lost event, a record that does not name its image); `bakery repair IMAGE` (any image, any policy).

What adoption never does: touch an image whose check is not enabled or not supported (reported as
`bakery:Image:NotAdopted`), put a repaired image in the original's family before it passed its own check,
delete an original that an instance or launch template uses (it is deprecated instead), or pass `Force`.
On failure the original is given back as it was (name, status, shares), with `bakery:last-error` saying why.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from bakery import events, state, tags
from bakery.errors import CloudError
from bakery.events import BakeryEvent
from bakery.log import bound, get_logger
from bakery.model import Image
from bakery.stages.context import Context, bake_id_for

log = get_logger(__name__)

# Tags on one ECS resource: 20 (alibaba-apis.md; Resource Management limits). An adopted image gets 5 of Bakery's
# (bake id, state, in-flight, adopted, original name); its repaired image ends with the operator's tags, the
# mandatory ones, 5 of Bakery's (bake id, state, in-flight, adopted, repaired-from) and — once its check passes —
# ECS's 2 system tags (acs:ecs:image:osVersion / kernelVersion; whether they count is UNCONFIRMED: assumed yes).
MAX_OPERATOR_TAGS = tags.MAX_TAGS_PER_RESOURCE - 5 - 2
# ACS-ECS-RepairImage names its image `repaired_<name>_<%Y%m%d%H%M%S>` (aliyun/oos-templates
# PublicTemplates/YAML/ACS-ECS-RepairImage.yml, createImage): 24 characters more, within CreateImage's 128, whose
# documented characters are letters, digits, ':', '_' and '-' (no '.': ModifyImageAttribute's list has it).
REPAIR_NAME_LIMIT = 128 - 24
_REPAIRABLE_NAME = re.compile(r"[A-Za-z\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5:_-]*")
# Under families / all, the sweep looks at images created this recently (once an hour): creating an image takes
# minutes to hours with the disks' size, and the sweep takes only an image that is Available by then.
DISCOVER_WINDOW = timedelta(hours=6)


def lineage(image: Image) -> dict[str, object]:
    """What every bakery:* event about an adopted bake's image adds: adopted, and the original's id."""
    original = image.tags.get(tags.ADOPTED)
    return {"adopted": True, "originalImageId": original} if original else {}


def eligible(ctx: Context, image: Image) -> bool:
    """Does BAKERY_ADOPT_IMAGES take this image? (off < tag < families < all; the tag opts in under each.)"""
    policy = ctx.settings.adopt_images
    if policy == "off":
        return False
    if policy == "all" or tags.truthy(image.tags.get(tags.ADOPT)):
        return True
    return policy == "families" and bool(image.family) and image.family in ctx.settings.adopt_families


def adopt(ctx: Context, image_id: str, *, requested: bool = False, check_requested: bool | None = None,
          image: Image | None = None, opted_in: bool = False) -> Image | None:  # fmt: skip
    """Take `image_id` on if the policy (or `requested`: `bakery repair IMAGE`) takes it; returns the image with
    Bakery's tags (the caller moves it on: `check.follow_image`), or None when it is not adopted. Idempotent: the
    bake id is derived from the image (and the bake before it), so event, sweep and CLI converge on one bake.
    `opted_in`: woken by a tag write, so only an image carrying `bakery:adopt=true` is taken (not, under `all`, an
    old image someone tagged for another reason)."""
    with bound(image_id=image_id):
        image = image or ctx.ecs.image(image_id)
        if image is None:
            log.info("image to adopt not found (deleted, or another region's)")
            return None
        if _bakerys_own(ctx, image) or (opted_in and not tags.truthy(image.tags.get(tags.ADOPT))):
            return None
        previous = image.tags.get(tags.BAKE_ID, "")
        if tags.ADOPTED in image.tags:
            if image.tags.get(tags.STATE) is not None or not requested:
                return None  # followed already, or it ended and only `bakery repair` starts it again
        elif not requested and not eligible(ctx, image):
            log.info("image left alone: outside BAKERY_ADOPT_IMAGES", policy=ctx.settings.adopt_images)
            return None
        problem = not_adoptable(ctx, image, check_requested)
        if problem is not None:
            report(ctx, image, *problem)
            return None
        bake_id = bake_id_for(f"adopt:{previous}", image_id)
        adopted = {tags.BAKE_ID: bake_id, tags.ADOPTED: image_id, tags.ORIGINAL_NAME: image.name,
                   **tags.image_state(state.UNSET, state.CREATING)}  # fmt: skip
        ctx.ecs.tag("image", image_id, adopted)
        if tags.LAST_ERROR in image.tags:
            ctx.ecs.untag("image", image_id, [tags.LAST_ERROR])
        image = _with_tags(image, {k: v for k, v in {**image.tags, **adopted}.items() if k != tags.LAST_ERROR})
        ctx.bus.publish(BakeryEvent(events.IMAGE_ADOPTED, image_id, {
            "bakeId": bake_id, "imageId": image_id, "adopted": True, "originalImageId": image_id,
            "family": image.family, "name": image.name, "requested": requested}))  # fmt: skip
        log.info("image adopted", bake_id=bake_id, family=image.family or None)
        return image


def _bakerys_own(ctx: Context, image: Image) -> bool:
    """Bakery's own images are never adopted: a bake's (its bake id, no adopted mark), and the bare image an
    ACS-ECS-RepairImage run of Bakery's makes before Bakery tags it (named repaired_<source>_<time>; its source
    is an image of Bakery's with that name)."""
    if tags.BAKE_ID in image.tags and tags.ADOPTED not in image.tags:
        return True
    match = re.fullmatch(r"repaired_(.+)_\d{14}", image.name)
    if match is None or tags.BAKE_ID in image.tags:
        return False
    return any(tags.BAKE_ID in source.tags for source in ctx.ecs.images_named(match.group(1)))


def not_adoptable(ctx: Context, image: Image, check_requested: bool | None = None) -> tuple[str, str] | None:
    """(reason, message) when the image cannot be adopted, None when it can."""
    if image.status in ("CreateFailed", "UnAvailable"):
        return "creation-failed", f"Image {image.image_id} ended {image.status}: there is nothing to check or repair."
    if image.status == "Deprecated":
        return "deprecated", (f"Image {image.image_id} is Deprecated; ACS-ECS-RepairImage repairs Available images "
                              "only. Make it Available again first (ModifyImageAttribute Status=Available).")  # fmt: skip
    unchecked = check_requested is False or (image.status == "Available" and not image.detection_status)
    if unchecked:
        return "check-not-enabled", (
            f"Image {image.image_id} was created without the image check (DetectionStrategy), or ECS cannot check "
            "it (encrypted disks, an unsupported OS): Bakery has nothing to follow. Create it with the check enabled "
            "to have it followed and repaired.")  # fmt: skip
    count = len(set(tags.operator_tags(image.tags)) | set(ctx.settings.tags_required))
    if count > MAX_OPERATOR_TAGS:
        return "no-tag-room", (f"Image {image.image_id} has {count} tags; Bakery needs room for its own (at most "
                               f"{MAX_OPERATOR_TAGS} of the image's and the mandatory ones, of ECS's 20). Remove "
                               "some, then run `bakery repair` on it.")  # fmt: skip
    return None


def report(ctx: Context, image: Image, reason: str, message: str) -> None:
    """`bakery:Image:NotAdopted`: the image is left as it is, with the reason (no time in it: a repeat is the same
    event id)."""
    log.warning("image not adopted", reason=reason, detail=message)
    ctx.bus.publish(BakeryEvent(events.IMAGE_NOT_ADOPTED, image.image_id, {
        "imageId": image.image_id, "reason": reason, "message": message, "family": image.family}))  # fmt: skip


def release_unchecked(ctx: Context, image: Image) -> None:
    """An image adopted while Creating turned out unchecked (or failed to create): Bakery's tags come off, the
    image is as its creator left it, and it is reported — why, as `not_adoptable` says it now."""
    reason, message = not_adoptable(ctx, image) or ("not-adoptable", f"Image {image.image_id} cannot be followed.")
    ctx.ecs.untag("image", image.image_id, [k for k in (tags.BAKE_ID, tags.ADOPTED, tags.ORIGINAL_NAME, tags.STATE,
                                                       tags.IN_FLIGHT) if k in image.tags])  # fmt: skip
    report(ctx, image, reason, message)


def discover(ctx: Context, trigger_time: str) -> list[Image]:
    """The sweep's look for images to adopt whose event was lost (or named no image): those tagged
    `bakery:adopt=true` (one query), and under `families` / `all` every image created in the last DISCOVER_WINDOW
    (one more); a page of 100 each. Only images it can decide without touching them are taken — Available, the
    check on — so a Creating one waits for a later look, and one that cannot be adopted is left to its event's
    report (never reported again every hour). Returns the images it adopted (the sweep moves them on)."""
    if ctx.settings.adopt_images == "off":
        return []
    try:
        now = datetime.fromisoformat(trigger_time.replace("Z", "+00:00")).astimezone(timezone.utc)
    except (ValueError, TypeError):
        return []
    found = {i.image_id: i for i in ctx.ecs.images_tagged(tags.ADOPT)}  # any value: `eligible` reads it as a bake tag
    if ctx.settings.adopt_images in ("families", "all"):
        since = (now - DISCOVER_WINDOW).strftime("%Y-%m-%dT%H:%MZ")
        found.update({i.image_id: i for i in ctx.ecs.images_created_since(since)})
    adopted = []
    for image in found.values():
        if tags.BAKE_ID in image.tags or tags.ADOPTED in image.tags or not eligible(ctx, image):
            continue
        if image.status != "Available" or not image.detection_status or not_adoptable(ctx, image) is not None:
            continue
        taken = adopt(ctx, image.image_id, image=image)
        if taken is not None:
            adopted.append(taken)
    return adopted


def _with_tags(image: Image, new_tags: dict[str, str]) -> Image:
    return replace(image, tags=new_tags)


# -- the end: identity given to the repaired image, the policy applied to the original ----------------------------


def promote(ctx: Context, image: Image) -> dict[str, object]:
    """The adopted bake's image passed its check. The original itself: nothing to give back. A repaired image:
    the original's name, description, family, tags and shares, then BAKERY_ADOPTED_ORIGINAL on the original.
    Every step is idempotent (the sweep runs the promotion again until `ready` is written, last). Returns what
    the Ready event adds."""
    original_id = image.tags[tags.ADOPTED]
    if original_id == image.image_id:
        return {**lineage(image), "family": image.family}
    original = ctx.ecs.image(original_id)
    target = original_name(original, image)
    policy = ctx.settings.adopted_original
    if original is not None and policy != "leave" and original.name in (target, run_name_of(original)):
        ctx.ecs.set_image_attributes(original_id, name=_broken_name(target, original_id))  # frees the name
    name = target if policy != "leave" else _closest_name(target, "-repaired")
    family = original.family if original is not None else image.family  # a run again: already given
    description = original.description if original is not None else image.description
    _name_image(ctx, image, name, family=family or None, description=description or None)
    if original is not None:
        wanted = tags.operator_tags(original.tags)
        wanted = {k: v for k, v in wanted.items() if not k.startswith(("acs:", "aliyun"))}  # the platform's own
        drop = [k for k in (tags.REPAIRS, tags.ORIGINAL_NAME) if k in image.tags]
        if drop:
            ctx.ecs.untag("image", image.image_id, drop)
        if wanted:
            ctx.ecs.tag("image", image.image_id, wanted)
        accounts = ctx.ecs.shared_accounts(original_id)
        if accounts:
            have = set(ctx.ecs.shared_accounts(image.image_id))
            ctx.ecs.share(image.image_id, [a for a in accounts if a not in have])
        outcome = _settle_original(ctx, original, keep=frozenset(image.snapshot_ids), shared=accounts)
        log.info("repaired image took over the original's identity", original=outcome, name=name)
    # What became of the original is in the log and on it, not in the event: a promotion run again (interrupted
    # after this) publishes the same event, with the same id.
    return {**lineage(image), "family": family, "originalPolicy": policy}


def original_name(original: Image | None, repaired: Image) -> str:
    """The name the original had when adopted: on the original (`bakery:original-name`, removed only once it is
    settled), else on the repaired image (removed once named), else the repaired image's own: a promotion run
    again after both are gone named it already. Never the original's current name: Bakery may have renamed it."""
    return ((original.tags.get(tags.ORIGINAL_NAME) if original else None) or repaired.tags.get(tags.ORIGINAL_NAME)
            or repaired.name)  # fmt: skip


def _name_image(ctx: Context, image: Image, name: str, **attributes: str | None) -> None:
    try:
        ctx.ecs.set_image_attributes(image.image_id, name=name, **attributes)
    except CloudError as exc:
        if exc.code != "InvalidImageName.Duplicated":
            raise
        # Someone else holds the name (names are unique per region): the closest one free.
        ctx.ecs.set_image_attributes(image.image_id, name=_closest_name(name, "-" + image.image_id), **attributes)


def _settle_original(ctx: Context, original: Image, keep: frozenset[str], shared: list[str]) -> str:
    """BAKERY_ADOPTED_ORIGINAL on the broken original, once its repaired image has its identity (and `shared`,
    the accounts the original is shared with, just read to share the repaired image)."""
    policy = ctx.settings.adopted_original
    if policy == "leave" or original.status not in ("Available", "Deprecated"):
        restore_name(ctx, original)  # a name swapped for the repair run goes back: left means as it was
        _retire(ctx, original)
        return "left"
    if shared:  # a Deprecated image cannot stay shared, and DeleteImage refuses a shared one (ImageUseShared)
        ctx.ecs.unshare(original.image_id, shared)
    if policy == "delete":
        users, count = ctx.ecs.instances_using_image(original.image_id)
        templates = ctx.ecs.launch_template_images().get(original.image_id, [])
        if not (users or count or templates):
            # Only the snapshots made with the image: one the operator made it from is older than the image.
            made = {s.snapshot_id for s in ctx.ecs.snapshots(list(original.snapshot_ids))
                    if _made_with(s.created, original.creation_time)}  # fmt: skip
            ctx.ecs.delete_image_with_snapshots(
                original.image_id, [s for s in original.snapshot_ids if s in made and s not in keep],
                mark={tags.RETIRING: original.tags.get(tags.BAKE_ID) or "-"})  # fmt: skip
            return "deleted"
        log.warning("original in use: deprecated, not deleted", instances=users[:5], launch_templates=templates[:5])
    if original.status == "Available":
        ctx.ecs.set_image_attributes(original.image_id, status="Deprecated")
    _retire(ctx, original)
    return "deprecated" if policy == "deprecate" else "deprecated (in use)"


def _retire(ctx: Context, original: Image) -> None:
    """The settled original: `retired`, its run's work tags off (the last step: a promotion run again before it
    still finds the original name on it)."""
    if original.tags.get(tags.STATE) not in state.TERMINAL_IMAGE:
        ctx.set_state(original, state.RETIRED)
    done = [k for k in (tags.ORIGINAL_NAME, tags.REPAIR_EXECUTION) if k in original.tags]
    if done:
        ctx.ecs.untag("image", original.image_id, done)


def _made_with(snapshot_created: str, image_created: str) -> bool:
    """Was the snapshot made with the image (not before it, by the operator)? Unknown times: no (kept)."""
    try:
        return _utc(snapshot_created) >= _utc(image_created)
    except ValueError:
        return False


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def give_back(ctx: Context, original: Image, reason: str) -> None:
    """A failed adopted bake: the original as it was — its name back if Bakery renamed it — without Bakery's work
    tags, with `bakery:last-error` (and the bake id and adopted mark, so adoption does not take it again by itself:
    `bakery repair` does)."""
    restore_name(ctx, original)
    ctx.ecs.untag("image", original.image_id, [k for k in (tags.STATE, tags.IN_FLIGHT, tags.ORIGINAL_NAME,
                                                          tags.REPAIR_EXECUTION) if k in original.tags])  # fmt: skip
    ctx.ecs.tag("image", original.image_id, {tags.LAST_ERROR: reason})


def restore_name(ctx: Context, original: Image) -> None:
    """The original's name back — only when Bakery renamed it (for the repair run, or out of the repaired image's
    way): a name the operator gave it meanwhile is theirs. A name someone took meanwhile stays taken: the
    original keeps Bakery's name (and the log says so) rather than failing the wind-down for ever."""
    name = original.tags.get(tags.ORIGINAL_NAME)
    if (
        not name
        or original.name == name
        or original.name not in (run_name_of(original), _broken_name(name, original.image_id))
    ):
        return
    try:
        ctx.ecs.set_image_attributes(original.image_id, name=name)
    except CloudError as exc:
        if exc.code != "InvalidImageName.Duplicated":
            raise
        log.warning("the original's name is taken meanwhile; it keeps Bakery's", name=name, kept=original.name)


def repairable_name(ctx: Context, image: Image) -> None:
    """Before ACS-ECS-RepairImage runs on an image: a name the template cannot extend (over 104 characters, or
    characters CreateImage does not list) is swapped for a short one for the run — an adopted original's real
    name stays in `bakery:original-name` (its repaired image gets it, or it gets it back on failure); a bake's
    own image (a long name prefix, a second repair's `repaired_repaired_...`) keeps no name worth restoring."""
    if len(image.name) <= REPAIR_NAME_LIMIT and _REPAIRABLE_NAME.fullmatch(image.name):
        return
    ctx.ecs.set_image_attributes(image.image_id, name=run_name_of(image))


def run_name_of(image: Image) -> str:
    """The short name an image gets for a repair run (unique: its id)."""
    return f"bakery-{image.image_id}"


def _broken_name(name: str, image_id: str) -> str:
    return _closest_name(name, f"-broken-{image_id}")


def _closest_name(name: str, suffix: str) -> str:
    """`name` + `suffix` within ECS's 128 characters (the suffix kept whole)."""
    return name[: 128 - len(suffix)] + suffix
