"""Image families over time: retention (`plan` / `apply`), `rollback`, `restore`, and what snapshots `cost`.

Retention decides, for every image of a family (newest first), keep / deprecate / delete, with a reason:

- `newest N` — the N newest images (Available or Deprecated) are kept. N is `BAKERY_RETENTION_KEEP`
  (default 3), overridden per family by the image tag `bakery:retention-keep=<n>`. When several images of
  the family carry that tag, the **newest image carrying a valid value wins**: tagging the latest image
  changes the policy, and a stale tag on an old image never does (invalid values are ignored and reported);
- `protected tag` — `bakery:protected=true` is never touched;
- `last good` — the newest Available image whose check passed is never touched, even when newer images
  failed their check (or were promoted unchecked) and pushed it out of the newest N;
- `last Available` — a family is never left without an Available image (what DescribeImageFromFamily
  resolves to);
- `still being created` — Creating/Waiting images are left alone;
- `shared with account(s) …` — deprecating or deleting a shared image needs unsharing it first, which cuts
  other accounts off: retention leaves shared images to the operator (`bakery rollback` unshares explicitly);
- everything else is `older than the newest N` and gets `BAKERY_RETENTION_ACTION`: `deprecate` (default;
  the image leaves its family's resolution but still launches) or `delete` (the image, then its snapshots,
  which bill until deleted). CreateFailed/UnAvailable images count for nothing: delete removes them,
  deprecate cannot apply to them and leaves them.

In use — an instance runs it (DescribeInstances ImageId=…) or a launch template's latest or default version
names it — stops *deletion* only: such an image is deprecated instead (a Deprecated image still launches and
can replace system disks, alibaba-apis.md §2.5), with `in use by instance i-…` / `in use by launch template
lt-… v2` as the reason; `force=True` deletes it anyway. Usage is looked up only for images retention would
act on, so a family that needs nothing costs one DescribeImages call.

`decide` is pure (images + usage in, decisions out); `plan`, `apply`, `rollback`, `restore` and `cost` add
the adapter calls. Everything is idempotent: applying a plan twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bakery import events, tags
from bakery.errors import BakeryError, CloudError
from bakery.events import BakeryEvent
from bakery.log import get_logger
from bakery.model import Image

if TYPE_CHECKING:
    from bakery.adapters.ecs import Ecs
    from bakery.config import Settings

log = get_logger(__name__)

KEEP, DEPRECATE, DELETE = "keep", "deprecate", "delete"
ACTIONS = (DEPRECATE, DELETE)
PROTECTED_TAG = "bakery:protected"
RETENTION_KEEP_TAG = "bakery:retention-keep"
RANKED = ("Available", "Deprecated")  # the statuses that count towards the newest N
IN_PROGRESS = ("Creating", "Waiting")
LAST_AVAILABLE = "last Available"
DEFAULT_PRICE_PER_GIB_MONTH = 0.12
DEFAULT_CURRENCY = "USD"


class Refused(BakeryError):
    """The action would break a promise (e.g. leave a family without an Available image): nothing changed."""


class NotFound(BakeryError):
    """The family or image named does not exist in this account and region."""


# == decisions (pure) ================================================================================


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family, "imageId": self.image_id, "name": self.name, "status": self.status,
            "created": self.created, "action": self.action, "reason": self.reason, "reasons": list(self.reasons),
            "snapshotIds": list(self.snapshot_ids), "keep": self.keep, "done": self.done,
        }  # fmt: skip


def newest_first(images: Iterable[Image]) -> list[Image]:
    return sorted(images, key=lambda i: (i.creation_time, i.image_id), reverse=True)


def passed_check(image: Image) -> bool:
    return image.detection_status == "Finished" and not image.failing_items


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
    just_promoted: str = "",
) -> list[Decision]:
    """Retention for one family's images, newest first. Pure: `usage` says who uses which image (absent =
    unused), `force` lets images in use be deleted. See the module docstring for the rules."""
    if action not in ACTIONS:
        raise ValueError(f"retention action must be one of {', '.join(ACTIONS)}, got {action!r}")
    if keep < 1:
        raise ValueError(f"retention keeps at least 1 image, got {keep}")
    usage = usage or {}
    ordered = newest_first(images)
    ranked = [i for i in ordered if i.status in RANKED]
    newest = {i.image_id for i in ranked[:keep]}
    good = next((i for i in ranked if i.status == "Available" and passed_check(i)), None)
    decisions = []
    for image in ordered:
        used = usage.get(image.image_id, Usage())
        notes = used.notes()

        def decision(act: str, reasons: list[str], done: bool = False, image: Image = image) -> Decision:
            return Decision(family or image.family, image.image_id, image.name, image.status, image.creation_time,
                            act, reasons[0], tuple(reasons), image.snapshot_ids, keep, done)  # fmt: skip

        kept_because = []
        if image.status in IN_PROGRESS:
            kept_because.append("still being created")
        if image.image_id in newest:
            kept_because.append(f"newest {keep}")
        if tags.truthy(image.tags.get(PROTECTED_TAG)):
            kept_because.append("protected tag")
        if image.image_id == just_promoted:  # promotions can land out of creation order: never undo one at once
            kept_because.append("just promoted")
        if good is not None and image.image_id == good.image_id and image.image_id not in newest:
            kept_because.append("last good")
        if used.shared_with:
            accounts = ", ".join(used.shared_with[:3]) + (" …" if len(used.shared_with) > 3 else "")
            kept_because.append(f"shared with account(s) {accounts}: unshare it to let retention retire it")
        if kept_because:
            decisions.append(decision(KEEP, kept_because + notes))
        elif image.status not in RANKED:  # CreateFailed / UnAvailable: never launched anything
            if action == DELETE:
                decisions.append(decision(DELETE, [f"{image.status}: never usable", *notes]))
            else:
                unusable = f"{image.status}: cannot be deprecated (retention action delete would remove it)"
                decisions.append(decision(KEEP, [unusable, *notes]))
        else:
            old = f"older than the newest {keep}"
            if action == DELETE and used.in_use and not force:
                reasons = [*notes, old, "deprecated, not deleted: it is in use (force deletes it)"]
                decisions.append(decision(DEPRECATE, reasons, done=image.status == "Deprecated"))
            elif action == DELETE:
                decisions.append(decision(DELETE, [old, *notes, *(["forced"] if used.in_use else [])]))
            else:
                decisions.append(decision(DEPRECATE, [old, *notes], done=image.status == "Deprecated"))
    return _keep_one_available(decisions)


def _keep_one_available(decisions: list[Decision]) -> list[Decision]:
    """Never leave the family without an Available image: spare the newest one retention would retire."""
    available = [d for d in decisions if d.status == "Available"]
    if not available or any(d.action == KEEP for d in available):
        return decisions
    spared = available[0]  # decisions are newest first
    return [
        replace(d, action=KEEP, reason=LAST_AVAILABLE, reasons=(LAST_AVAILABLE, *d.reasons), done=False)
        if d is spared
        else d
        for d in decisions
    ]


# == plan and apply (adapter calls) ===================================================================


def bakery_families(ecs: Ecs) -> list[str]:
    """Families holding at least one image Bakery made (tagged bakery:bake-id)."""
    return sorted({image.family for image in ecs.images_tagged(tags.BAKE_ID) if image.family})


@dataclass(frozen=True)
class FamilyPlan:
    family: str
    retention: Retention
    action: str
    decisions: tuple[Decision, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "keep": self.retention.keep, "keepSource": self.retention.source,
                "ignoredTags": list(self.retention.ignored), "action": self.action,
                "decisions": [d.to_dict() for d in self.decisions]}  # fmt: skip


def plan_families(ecs: Ecs, settings: Settings, family: str | None = None, *, force: bool = False,
                  just_promoted: str = "") -> list[FamilyPlan]:  # fmt: skip
    """`plan`, family by family, with each family's N and where it came from."""
    plans: list[FamilyPlan] = []
    templates: dict[str, list[tuple[str, int]]] | None = None
    action = settings.retention_action
    for name in [family] if family else bakery_families(ecs):
        images = list(ecs.images_in_family(name))
        if not images:
            continue
        retention = retention_for(images, settings.retention_keep)
        for problem in retention.ignored:
            log.warning("retention tag ignored", family=name, problem=problem)
        first = decide(images, keep=retention.keep, action=action, family=name, just_promoted=just_promoted)
        # Usage matters only where retention would act (a "last Available" image may act once another
        # image turns out to be kept): look it up for those alone.
        candidates = [d for d in first if (d.action != KEEP or d.reason == LAST_AVAILABLE) and d.status in RANKED]
        usage: dict[str, Usage] = {}
        if candidates and templates is None:
            templates = ecs.launch_template_images()
        for candidate in candidates:
            if candidate.done and action == DEPRECATE:
                continue
            instance_ids, count = ecs.instances_using_image(candidate.image_id)
            shared = ecs.shared_accounts(candidate.image_id) if candidate.status == "Available" else []
            usage[candidate.image_id] = Usage(
                tuple(instance_ids), count, tuple((templates or {}).get(candidate.image_id, [])), tuple(shared)
            )
        decisions = decide(images, keep=retention.keep, action=action, usage=usage, force=force, family=name,
                           just_promoted=just_promoted)  # fmt: skip
        plans.append(FamilyPlan(name, retention, action, tuple(decisions)))
    return plans


def plan(ecs: Ecs, settings: Settings, family: str | None = None, *, force: bool = False) -> list[Decision]:
    """Retention decisions for every image of `family` (or of every family with Bakery images), newest first."""
    return [d for p in plan_families(ecs, settings, family, force=force) for d in p.decisions]


@dataclass
class ApplyResult:
    """What `apply` did to one family (or several)."""

    family: str | None
    action: str
    decisions: list[Decision]
    retention: dict[str, Retention] = field(default_factory=dict)  # family → its N and where N came from
    deprecated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    deleted_snapshots: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"imageId", "why"}

    @property
    def kept(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == KEEP]

    def to_dict(self) -> dict[str, Any]:
        single = self.retention.get(self.family) if self.family else None
        return {
            "family": self.family,
            "action": self.action,
            # one family: its N and where it came from; every family: {family: N}
            "keep": single.keep if single else {f: r.keep for f, r in self.retention.items()},
            "keepSource": single.source if single else None,
            "deprecated": self.deprecated,
            "deleted": self.deleted,
            "deletedSnapshots": self.deleted_snapshots,
            "skipped": self.skipped,
            "kept": [{"imageId": d.image_id, "reason": d.reason} for d in self.kept],
            "decisions": [d.to_dict() for d in self.decisions],
        }


def apply(
    ecs: Ecs, settings: Settings, family: str | None, force: bool = False, just_promoted: str = ""
) -> ApplyResult:
    """Execute the plan. Idempotent: done decisions are skipped, a missing image or snapshot is ignored, and
    what changed since the plan (an instance launched, the image shared) is skipped rather than forced."""
    plans = plan_families(ecs, settings, family, force=force, just_promoted=just_promoted)
    decisions = [d for p in plans for d in p.decisions]
    result = ApplyResult(family, settings.retention_action, decisions, {p.family: p.retention for p in plans})
    for d in decisions:
        if d.action == KEEP or d.done:
            continue
        if d.action == DEPRECATE:
            _deprecate(ecs, d, result)
            continue
        try:
            result.deleted_snapshots += ecs.delete_image_with_snapshots(d.image_id, d.snapshot_ids, force=force)
            result.deleted.append(d.image_id)
            log.info("image deleted by retention", image_id=d.image_id, family=d.family, reason=d.reason)
        except CloudError as exc:
            if exc.code == "ImageUsingByInstance" and d.status == "Available":
                # An instance was launched from it since the plan: it is in use now, so deprecate instead.
                _deprecate(ecs, replace(d, action=DEPRECATE), result)
            else:
                result.skipped.append({"imageId": d.image_id, "why": f"{exc.code}: {exc.message}"})
    return result


def _deprecate(ecs: Ecs, d: Decision, result: ApplyResult) -> None:
    try:
        ecs.set_image_attributes(d.image_id, status="Deprecated")
    except CloudError as exc:  # shared since the plan, no longer Available, gone: leave it
        result.skipped.append({"imageId": d.image_id, "why": f"{exc.code}: {exc.message}"})
        return
    result.deprecated.append(d.image_id)
    log.info("image deprecated by retention", image_id=d.image_id, family=d.family, reason=d.reason)


def retention_applied(result: ApplyResult, ready_image_id: str = "") -> BakeryEvent:
    """`bakery:Family:RetentionApplied` for users' notifications: what retention did to the family."""
    data = {k: v for k, v in result.to_dict().items() if k != "decisions"}
    if ready_image_id:
        data["readyImageId"] = ready_image_id
    return BakeryEvent(events.FAMILY_RETENTION_APPLIED, result.family or "", data)


# == rollback and restore ============================================================================


@dataclass(frozen=True)
class RollbackResult:
    family: str
    deprecated: str  # the image the family resolved to before
    unshared: tuple[str, ...]  # accounts it was shared with (re-share after `bakery restore` if needed)
    resolves_to: str | None  # what DescribeImageFromFamily answers now

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "deprecated": self.deprecated, "unshared": list(self.unshared),
                "resolvesTo": self.resolves_to}  # fmt: skip


def rollback(ecs: Ecs, family: str) -> RollbackResult:
    """Deprecate the image `family` resolves to, so it resolves to the previous Available one.

    Refused (nothing changed) when that would leave the family without an Available image. A shared image
    is unshared first (ECS refuses to deprecate a shared image); the accounts are returned."""
    images = ecs.images_in_family(family)
    if not images:
        raise NotFound(f"no image in family {family!r} in {ecs.region}: check the name (`bakery plan` lists the "
                       "families with Bakery images)")  # fmt: skip
    available = [i for i in newest_first(images) if i.status == "Available"]
    current_id = ecs.image_from_family(family) or (available[0].image_id if available else None)
    if current_id is None or not available:
        raise Refused(f"family {family!r} has no Available image, so there is nothing to roll back; "
                      "`bakery restore IMAGE` makes a Deprecated image Available again")  # fmt: skip
    others = [i for i in available if i.image_id != current_id]
    if not others:
        raise Refused(f"refusing to roll back family {family!r}: {current_id} is its only Available image, and "
                      "deprecating it would leave the family with none (launches resolving the family would "
                      "fail). Bake a new image or `bakery restore` an older one first.")  # fmt: skip
    shared = ecs.shared_accounts(current_id)
    if shared:
        ecs.unshare(current_id, shared)
        log.warning("image unshared for rollback", image_id=current_id, accounts=shared)
    ecs.set_image_attributes(current_id, status="Deprecated")
    resolves_to = ecs.image_from_family(family)
    log.info("family rolled back", family=family, deprecated=current_id, resolves_to=resolves_to)
    return RollbackResult(family, current_id, tuple(shared), resolves_to)


@dataclass(frozen=True)
class RestoreResult:
    image_id: str
    family: str
    previous_status: str
    resolves_to: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"imageId": self.image_id, "family": self.family, "previousStatus": self.previous_status,
                "status": "Available", "resolvesTo": self.resolves_to}  # fmt: skip


def restore(ecs: Ecs, image_id: str) -> RestoreResult:
    """Deprecated → Available (a no-op for an Available image). The family resolves to it again only when
    no newer Available image exists: `resolves_to` says what it resolves to now."""
    image = ecs.image(image_id)
    if image is None:
        raise NotFound(f"no image {image_id!r} owned by this account in {ecs.region}")
    if image.status not in RANKED:
        raise Refused(f"{image_id} is {image.status}: only a Deprecated image can be restored to Available")
    if image.status == "Deprecated":
        ecs.set_image_attributes(image_id, status="Available")
        log.info("image restored", image_id=image_id, family=image.family or None)
    resolves_to = ecs.image_from_family(image.family) if image.family else None
    return RestoreResult(image_id, image.family, image.status, resolves_to)


# == cost =============================================================================================


@dataclass(frozen=True)
class ImageCost:
    image_id: str
    status: str
    action: str  # what the retention plan does to it
    size_gib: int
    monthly: float
    done: bool = False  # the plan's action is already done (a Deprecated image the plan deprecates)

    def to_dict(self) -> dict[str, Any]:
        return {"imageId": self.image_id, "status": self.status, "action": self.action, "done": self.done,
                "sizeGiB": self.size_gib, "monthly": round(self.monthly, 4)}  # fmt: skip


@dataclass(frozen=True)
class FamilyCost:
    family: str
    images: tuple[ImageCost, ...]
    size_gib: int  # every snapshot of the family's images, each counted once
    monthly: float
    freed_gib: int  # what the plan's deletions free (snapshots no kept image still uses)
    freed_monthly: float
    deprecated_gib: int  # deprecated (or about to be) images: out of the family, still billing
    deprecated_monthly: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family, "sizeGiB": self.size_gib, "monthly": round(self.monthly, 4),
            "planFreesGiB": self.freed_gib, "planFreesMonthly": round(self.freed_monthly, 4),
            "deprecatedGiB": self.deprecated_gib, "deprecatedMonthly": round(self.deprecated_monthly, 4),
            "images": [i.to_dict() for i in self.images],
        }  # fmt: skip


@dataclass(frozen=True)
class CostReport:
    price_per_gib_month: float
    currency: str
    families: tuple[FamilyCost, ...]

    @property
    def size_gib(self) -> int:
        return sum(f.size_gib for f in self.families)

    @property
    def monthly(self) -> float:
        return sum(f.monthly for f in self.families)

    @property
    def freed_monthly(self) -> float:
        return sum(f.freed_monthly for f in self.families)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pricePerGiBMonth": self.price_per_gib_month, "currency": self.currency,
            "sizeGiB": self.size_gib, "monthly": round(self.monthly, 4),
            "planFreesGiB": sum(f.freed_gib for f in self.families), "planFreesMonthly": round(self.freed_monthly, 4),
            "families": [f.to_dict() for f in self.families],
        }  # fmt: skip


def cost(
    ecs: Ecs,
    settings: Settings,
    family: str | None = None,
    *,
    price_per_gib_month: float = DEFAULT_PRICE_PER_GIB_MONTH,
    currency: str = DEFAULT_CURRENCY,
) -> CostReport:
    """Snapshot storage per family and image: size (the snapshots' SourceDiskSize, GiB) times the price per GiB-month,
    and what the retention plan would free. SourceDiskSize is the size of the disk each snapshot was taken
    of, so this is an upper bound of what snapshot storage bills."""
    if price_per_gib_month < 0:
        raise ValueError(f"the price per GiB-month cannot be negative, got {price_per_gib_month}")
    decisions = plan(ecs, settings, family)
    sizes = ecs.snapshot_sizes([s for d in decisions for s in d.snapshot_ids])
    families = []
    for name in dict.fromkeys(d.family for d in decisions):
        mine = [d for d in decisions if d.family == name]
        images = tuple(
            ImageCost(d.image_id, d.status, d.action, gib := sum(sizes.get(s, 0) for s in d.snapshot_ids),
                      gib * price_per_gib_month, d.done)
            for d in mine
        )  # fmt: skip
        every = {s for d in mine for s in d.snapshot_ids}
        surviving = {s for d in mine if d.action != DELETE for s in d.snapshot_ids}
        freed = {s for d in mine if d.action == DELETE for s in d.snapshot_ids} - surviving
        deprecated = {s for d in mine if d.action == DEPRECATE for s in d.snapshot_ids}
        total, freed_gib, deprecated_gib = (sum(sizes.get(s, 0) for s in group) for group in (every, freed, deprecated))
        families.append(FamilyCost(name, images, total, total * price_per_gib_month, freed_gib,
                                   freed_gib * price_per_gib_month, deprecated_gib, deprecated_gib * price_per_gib_month))  # fmt: skip
    return CostReport(price_per_gib_month, currency, tuple(families))
