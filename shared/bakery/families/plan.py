"""Retention on the account: `plan` (what retention would do to each family, with who uses which image) and
`apply` (doing it), then `bakery:Family:RetentionApplied`. The rules are `bakery.families.retention`.

Retention runs after every Ready, so its API calls are few and countable. Per family:

- DescribeImages (ImageFamily=F, every Status, ImageOwnerAlias=self, 100 a page): one call per 100 images
  (ECS caps a family at 100 images: image family overview,
  https://www.alibabacloud.com/help/en/elastic-compute-service/latest/image-family-overview). A family
  with nothing to retire costs exactly this one call;
- for each image retention would retire, and only those (a done deprecation needs nothing): with
  `deprecate`, DescribeImageSharePermission (pages of 100) for an Available one — sharing is all that can
  change the decision, since a Deprecated image still launches; with `delete`, DescribeInstances
  (ImageId=…, one call) and the sharing of an Available one, plus once per run DescribeLaunchTemplates
  (pages of 50) and DescribeLaunchTemplateVersions per template;
- applying: ModifyImageAttribute per deprecation; DeleteImage then DeleteSnapshot per snapshot per deletion.

Everything is idempotent: applying a plan twice changes nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from bakery import events, state, tags
from bakery.errors import CloudError
from bakery.events import BakeryEvent
from bakery.families import fitness
from bakery.families.retention import (
    DELETE,
    DEPRECATE,
    KEEP,
    Decision,
    Retention,
    Usage,
    decide,
    retention_for,
)
from bakery.log import get_logger

if TYPE_CHECKING:
    from bakery.adapters.ecs import Ecs
    from bakery.config import Settings

log = get_logger(__name__)


def bakery_families(ecs: Ecs) -> list[str]:
    """Families holding at least one image Bakery made (tagged bakery:bake-id)."""
    return sorted({image.family for image in ecs.images_tagged(tags.BAKE_ID) if image.family})


@dataclass(frozen=True)
class FamilyPlan:
    family: str
    retention: Retention
    action: str
    decisions: tuple[Decision, ...]
    # Promoted (bakery:state=ready) and still marked in flight: waiting for this retention run (promote.finish)
    awaiting_retention: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "keep": self.retention.keep, "keepSource": self.retention.source,
                "ignoredTags": list(self.retention.ignored), "action": self.action,
                "decisions": [d.to_dict() for d in self.decisions]}  # fmt: skip


def plan_families(ecs: Ecs, settings: Settings, family: str | None = None, *, force: bool = False,
                  just_promoted: tuple[str, ...] = ()) -> list[FamilyPlan]:  # fmt: skip
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
        # Usage can only spare an image retention would retire: look it up for those alone, and only what
        # can change the decision (see the module docstring).
        candidates = [d for d in first if d.action != KEEP and not (d.done and action == DEPRECATE)]
        usage: dict[str, Usage] = {}
        if action == DELETE and candidates and templates is None:
            templates = ecs.launch_template_images()
        for candidate in candidates:
            shared = ecs.shared_accounts(candidate.image_id) if candidate.status == "Available" else []
            if action == DELETE:
                instance_ids, count = ecs.instances_using_image(candidate.image_id)
                pinned = tuple((templates or {}).get(candidate.image_id, []))
                usage[candidate.image_id] = Usage(tuple(instance_ids), count, pinned, tuple(shared))
            else:
                usage[candidate.image_id] = Usage(shared_with=tuple(shared))
        decisions = decide(images, keep=retention.keep, action=action, usage=usage, force=force, family=name,
                           just_promoted=just_promoted)  # fmt: skip
        awaiting = tuple(i.image_id for i in images
                         if i.tags.get(tags.STATE) == state.READY and i.tags.get(tags.IN_FLIGHT) == "true")  # fmt: skip
        plans.append(FamilyPlan(name, retention, action, tuple(decisions), awaiting))
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
    awaiting_retention: list[str] = field(default_factory=list)  # see FamilyPlan

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
    ecs: Ecs, settings: Settings, family: str | None, force: bool = False, just_promoted: tuple[str, ...] = ()
) -> ApplyResult:
    """Execute the plan. Idempotent: done decisions are skipped, a missing image or snapshot is ignored, and
    what changed since the plan (an instance launched, the image shared) is skipped rather than forced."""
    plans = plan_families(ecs, settings, family, force=force, just_promoted=just_promoted)
    decisions = [d for p in plans for d in p.decisions]
    result = ApplyResult(family, settings.retention_action, decisions, {p.family: p.retention for p in plans},
                         awaiting_retention=[i for p in plans for i in p.awaiting_retention])  # fmt: skip
    for index, d in enumerate(decisions):
        if d.action == KEEP or d.done:
            continue
        if d.action == DEPRECATE:
            _deprecate(ecs, d, result)
            continue
        try:
            result.deleted_snapshots += ecs.delete_image_with_snapshots(
                d.image_id, d.snapshot_ids, force=force, mark={tags.RETIRING: "retention"}
            )
            result.deleted.append(d.image_id)
            log.info("image deleted by retention", image_id=d.image_id, family=d.family, reason=d.reason)
        except CloudError as exc:
            if exc.code == "ImageUsingByInstance" and d.status == "Available":
                # An instance was launched from it since the plan: it is in use now, so deprecate instead,
                # and say so in the decision (the result lists what was decided *and* done).
                why = "in use since the plan (DeleteImage: ImageUsingByInstance): deprecated, not deleted"
                decisions[index] = replace(d, action=DEPRECATE, reason=why, reasons=(why, *d.reasons))
                _deprecate(ecs, decisions[index], result)
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


def retention_applied(result: ApplyResult, ready_image_ids: tuple[str, ...] | str = ()) -> BakeryEvent:
    """`bakery:Family:RetentionApplied` for users' notifications: what retention did to the family (after the
    promotion of `ready_image_ids`: readyImageId is the newest of them)."""
    data = {k: v for k, v in result.to_dict().items() if k != "decisions"}
    ready_image_ids = fitness.as_ids(ready_image_ids)
    if ready_image_ids:
        data["readyImageId"] = ready_image_ids[-1] if len(ready_image_ids) == 1 else _newest(result, ready_image_ids)
        data["readyImageIds"] = list(ready_image_ids)
    return BakeryEvent(events.FAMILY_RETENTION_APPLIED, result.family or "", data)


def _newest(result: ApplyResult, image_ids: tuple[str, ...]) -> str:
    """The first of `image_ids` in the decisions (newest first), else the last given."""
    wanted = set(image_ids)
    return next((d.image_id for d in result.decisions if d.image_id in wanted), image_ids[-1])
