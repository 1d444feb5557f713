"""What retention keeps: for every image of a family (newest first), keep / deprecate / delete, with a reason.

Which images count, and which retention may touch (`bakery.families.fitness`, shared with rollback):

- **Only finished Available images count towards N.** A Deprecated image is already out of the family's
  resolution (DescribeImageFromFamily answers the newest *Available* image and skips Deprecated ones: ECS
  "Deprecate or restore an image", https://www.alibabacloud.com/help/en/ecs/user-guide/set-the-state-of-an-image-to-deprecated-or-restore-an-image;
  alibaba-apis.md §2.6), so a rolled-back image never takes the slot of the known-good image the family was
  rolled back to. An image whose promotion is in flight (`bakery:state` creating/checking/...) does not
  count either: when its promotion completes, its own Ready runs retention again, which brings the family
  back to N.
- **An image is retired once N counted images are newer than it** (`older than the newest N`). That one rule
  covers both statuses: an Available image gets `BAKERY_RETENTION_ACTION`; a Deprecated one is deleted with
  `delete` and left as it is (`done`) with `deprecate`. A Deprecated image *newer* than the oldest kept one —
  typically the image a rollback deprecated — is kept (`rolled back`), restorable with `bakery restore`,
  until N newer images push it out. Retention never makes a Deprecated image Available.

Never touched (kept, with the reason):

- `promotion in flight` — `bakery:state` other than ready: the pipeline (the sweep) owns it;
- `not made by Bakery` — no `bakery:bake-id`: the operator's own image (and `adopted`: an image made outside
  Bakery that it followed or repaired, `bakery:adopted`, still the operator's). An Available one still counts towards
  N (launches resolving the family may boot it), but retention never deprecates or deletes it;
- `newest N` — the N newest counted images. N is `BAKERY_RETENTION_KEEP` (default 3), overridden per family
  by the image tag `bakery:retention-keep=<n>`. When several images of the family carry that tag, the
  **newest image carrying a valid value wins**: tagging the latest image changes the policy, and a stale
  tag on an old image never does (invalid values are ignored and reported);
- `protected tag` — `bakery:protected=true`;
- `just promoted` — the image whose Ready triggered this run (promotions can land out of creation order);
- `last good` — the newest counted image fit to resolve (check passed, `bakery:state=ready`: what
  `bakery rollback` accepts), even when newer images failed their check and pushed it out of the newest N;
- `still being created` — Creating/Waiting images;
- `shared with account(s) …` — deprecating or deleting a shared image needs unsharing it first, which cuts
  other accounts off: retention leaves shared images to the operator (`bakery rollback` unshares explicitly).

The family is never left without an Available image: the newest counted image is always among the newest N
(N >= 1), and uncounted Available images are never touched. CreateFailed/UnAvailable images count for
nothing: delete removes them, deprecate cannot apply to them and leaves them.

In use — an instance runs it (DescribeInstances ImageId=…) or a launch template's latest or default version
names it — stops *deletion* only: such an image is deprecated instead (a Deprecated image still launches and
can replace system disks, alibaba-apis.md §2.5), with `in use by instance i-…` / `in use by launch template
lt-… v2` as the reason; `force=True` deletes it anyway.

`decide` is pure (images + usage in, decisions out); `bakery.families.plan` adds the adapter calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bakery import tags
from bakery.families import fitness
from bakery.model import Image

KEEP, DEPRECATE, DELETE = "keep", "deprecate", "delete"
ACTIONS = (DEPRECATE, DELETE)
PROTECTED_TAG = "bakery:protected"
RETENTION_KEEP_TAG = "bakery:retention-keep"
RANKED = ("Available", "Deprecated")  # usable images: retention (and restore) may act on these statuses
IN_PROGRESS = ("Creating", "Waiting")
ROLLED_BACK = "rolled back"


@dataclass(frozen=True)
class Usage:
    """Who depends on an image: instances running it, launch-template versions naming it, accounts it is
    shared with."""

    instances: tuple[str, ...] = ()
    instance_count: int = 0  # may exceed len(instances): only the first page of ids is read
    launch_templates: tuple[tuple[str, int], ...] = ()  # (template id, version)
    shared_with: tuple[str, ...] = ()

    @property
    def in_use(self) -> bool:
        return bool(self.instances or self.instance_count or self.launch_templates)

    def notes(self) -> list[str]:
        notes = []
        if self.instances or self.instance_count:
            shown = list(self.instances[:3])
            more = max(self.instance_count, len(self.instances)) - len(shown)
            noun = "instance" if len(shown) + max(more, 0) == 1 else "instances"
            notes.append(f"in use by {noun} {', '.join(shown)}" + (f" (+{more} more)" if more > 0 else ""))
        for template_id, version in self.launch_templates:
            notes.append(f"in use by launch template {template_id} v{version}")
        return notes


@dataclass(frozen=True)
class Retention:
    """How many images a family keeps, and where that number came from."""

    keep: int
    source: str  # "BAKERY_RETENTION_KEEP" or "tag bakery:retention-keep=5 on m-…"
    ignored: tuple[str, ...] = ()  # tag values that were not whole numbers >= 1


@dataclass(frozen=True)
class Decision:
    family: str
    image_id: str
    name: str
    status: str
    created: str
    action: str  # keep | deprecate | delete
    reason: str  # the one that decided
    reasons: tuple[str, ...]  # every reason that applies, the deciding one first
    snapshot_ids: tuple[str, ...] = ()
    keep: int = 0  # the family's N
    done: bool = False  # already in the decided state (deprecating a Deprecated image): nothing to call
    counted: bool = False  # one of the finished Available images the newest N is counted among

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family, "imageId": self.image_id, "name": self.name, "status": self.status,
            "created": self.created, "action": self.action, "reason": self.reason, "reasons": list(self.reasons),
            "snapshotIds": list(self.snapshot_ids), "keep": self.keep, "done": self.done, "counted": self.counted,
        }  # fmt: skip


def newest_first(images: Iterable[Image]) -> list[Image]:
    return sorted(images, key=_age, reverse=True)


def retention_for(images: Iterable[Image], default: int) -> Retention:
    """N for a family: the newest image carrying a valid `bakery:retention-keep` wins, else `default`."""
    ignored = []
    for image in newest_first(images):
        raw = image.tags.get(RETENTION_KEEP_TAG)
        if raw is None:
            continue
        value = raw.strip()
        if value.isdigit() and int(value) >= 1:
            return Retention(int(value), f"tag {RETENTION_KEEP_TAG}={value} on {image.image_id}", tuple(ignored))
        ignored.append(f"{image.image_id}: {RETENTION_KEEP_TAG}={raw!r} is not a whole number >= 1 (ignored)")
    return Retention(default, "BAKERY_RETENTION_KEEP", tuple(ignored))


def decide(
    images: Iterable[Image],
    *,
    keep: int,
    action: str = DEPRECATE,
    usage: Mapping[str, Usage] | None = None,
    force: bool = False,
    family: str = "",
    just_promoted: tuple[str, ...] | str = (),
) -> list[Decision]:
    """Retention for one family's images, newest first. Pure: `usage` says who uses which image (absent =
    unused), `force` lets images in use be deleted. See the module docstring for the rules."""
    if action not in ACTIONS:
        raise ValueError(f"retention action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if keep < 1:
        raise ValueError(f"retention keeps at least 1 image, got {keep}")
    usage = usage or {}
    just_promoted = fitness.as_ids(just_promoted)
    ordered = newest_first(images)
    counted = [i for i in ordered if i.status == "Available" and fitness.unfinished_state(i, just_promoted) is None]
    # Of what was just promoted (one sweep's promotions), the newest is never retired at once; the others are
    # counted like any finished image (a fleet promoted together keeps its newest N, not all of them).
    latest = next((i.image_id for i in ordered if i.image_id in just_promoted), None)
    counted_ids = {i.image_id for i in counted}
    newest = {i.image_id for i in counted[:keep]}
    # Older than the newest N = N counted images are newer; until the family has N, nothing is.
    cutoff = _age(counted[keep - 1]) if len(counted) >= keep else None
    good = next((i for i in counted if fitness.fit(i)), None)
    decisions = []
    for image in ordered:
        used = usage.get(image.image_id, Usage())
        notes = used.notes()
        is_counted = image.image_id in counted_ids

        def decision(act: str, reasons: list[str], done: bool = False, image: Image = image) -> Decision:
            return Decision(family or image.family, image.image_id, image.name, image.status, image.creation_time,
                            act, reasons[0], tuple(reasons), image.snapshot_ids, keep, done,
                            image.image_id in counted_ids)  # fmt: skip

        old = cutoff is not None and _age(image) < cutoff
        unfinished = fitness.unfinished_state(image, just_promoted)
        kept_because = []
        if image.status in IN_PROGRESS:
            kept_because.append("still being created")
        if unfinished is not None and fitness.in_flight(unfinished):
            kept_because.append(f"promotion in flight ({tags.STATE}={unfinished}): not counted, the sweep finishes it")
        elif unfinished is not None:
            kept_because.append(f"{tags.STATE}={unfinished}: not a finished promotion, left to the pipeline")
        if image.image_id in newest:
            kept_because.append(f"newest {keep}")
        if not fitness.made_by_bakery(image):
            whose = (f"adopted ({tags.ADOPTED}={image.tags[tags.ADOPTED]}): your image, repaired by Bakery"
                     if tags.ADOPTED in image.tags else f"not made by Bakery (no {tags.BAKE_ID})")  # fmt: skip
            kept_because.append(f"{whose}: left to you" + (", counted towards the newest N" if is_counted else ""))
        if tags.truthy(image.tags.get(PROTECTED_TAG)):
            kept_because.append("protected tag")
        if image.image_id == latest:  # promotions can land out of creation order: never undo one at once
            kept_because.append("just promoted")
        if good is not None and image.image_id == good.image_id and image.image_id not in newest:
            kept_because.append("last good")
        if used.shared_with:
            accounts = ", ".join(used.shared_with[:3]) + (" …" if len(used.shared_with) > 3 else "")
            kept_because.append(f"shared with account(s) {accounts}: unshare it to let retention retire it")
        if image.status == "Deprecated" and not old:
            kept_because.append(f"{ROLLED_BACK}: Deprecated, not counted, newer than the oldest kept image "
                                f"(`bakery restore {image.image_id}` makes it Available again)")  # fmt: skip
        if kept_because:
            decisions.append(decision(KEEP, kept_because + notes))
        elif image.status not in RANKED:  # CreateFailed / UnAvailable: never launched anything
            if action == DELETE:
                decisions.append(decision(DELETE, [f"{image.status}: never usable", *notes]))
            else:
                unusable = f"{image.status}: cannot be deprecated (retention action delete would remove it)"
                decisions.append(decision(KEEP, [unusable, *notes]))
        else:
            older = f"older than the newest {keep}"
            if action == DELETE and used.in_use and not force:
                reasons = [*notes, older, "deprecated, not deleted: it is in use (force deletes it)"]
                decisions.append(decision(DEPRECATE, reasons, done=image.status == "Deprecated"))
            elif action == DELETE:
                decisions.append(decision(DELETE, [older, *notes, *(["forced"] if used.in_use else [])]))
            else:
                decisions.append(decision(DEPRECATE, [older, *notes], done=image.status == "Deprecated"))
    return decisions


def _age(image: Image) -> tuple[str, str]:
    """The family's order: creation time (what DescribeImageFromFamily ranks by), then id for ties."""
    return (image.creation_time, image.image_id)
