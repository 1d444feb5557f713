"""`rollback` (a family back to an earlier Available image) and `restore` (a Deprecated image Available again),
each refused when it would break a promise: never leave a family without an Available image, and never make
a family resolve to an image unfit to resolve (`bakery.families.fitness`: its check failed or did not finish,
or Bakery's promotion of it is not on record) unless forced.

A family resolves to its newest Available image (creation time), Deprecated ones skipped; rolling back means
deprecating the newer ones (ECS "Deprecate or restore an image",
https://www.alibabacloud.com/help/en/ecs/user-guide/set-the-state-of-an-image-to-deprecated-or-restore-an-image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bakery.errors import BakeryError
from bakery.families import fitness
from bakery.families.retention import RANKED, newest_first
from bakery.log import get_logger
from bakery.model import Image

if TYPE_CHECKING:
    from bakery.adapters.ecs import Ecs

log = get_logger(__name__)


class Refused(BakeryError):
    """The action would break a promise (e.g. leave a family without an Available image): nothing changed."""


class NotFound(BakeryError):
    """The family or image named does not exist in this account and region."""


@dataclass(frozen=True)
class RollbackResult:
    family: str
    deprecated: str  # the image the family resolved to before
    unshared: tuple[str, ...]  # accounts it was shared with (re-share after `bakery restore` if needed)
    resolves_to: str | None  # what DescribeImageFromFamily answers now
    also_deprecated: tuple[str, ...] = ()  # `to`: the other Available images newer than the target
    forced: tuple[str, ...] = ()  # `force`: why the target was unfit to resolve (overridden)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "deprecated": self.deprecated, "alsoDeprecated": list(self.also_deprecated),
                "unshared": list(self.unshared), "resolvesTo": self.resolves_to, "forced": list(self.forced)}  # fmt: skip


def rollback(ecs: Ecs, family: str, *, to: str | None = None, force: bool = False) -> RollbackResult:
    """Deprecate the image `family` resolves to, so it resolves to the previous Available one — or, with `to`,
    every Available image newer than `to`, so it resolves to `to`.

    Refused (nothing changed) when that would leave the family without an Available image, or when the image
    it would resolve to is unfit (`fitness.unfit`) and `force` is not set. Shared images are unshared first
    (ECS refuses to deprecate a shared image); the accounts are returned."""
    images = ecs.images_in_family(family)
    if not images:
        raise NotFound(f"no image in family {family!r} in {ecs.region}: check the name (`bakery plan` lists the "
                       "families with Bakery images)")  # fmt: skip
    available = [i for i in newest_first(images) if i.status == "Available"]
    current_id = ecs.image_from_family(family) or (available[0].image_id if available else None)
    if current_id is None or not available:
        raise Refused(f"family {family!r} has no Available image, so there is nothing to roll back; "
                      "`bakery restore IMAGE` makes a Deprecated image Available again")  # fmt: skip
    target = _target(family, images, available, current_id, to)
    newer = [i for i in available if _age(i) > _age(target)]  # what must go for the family to resolve to target
    problems = fitness.unfit(target)
    if problems and not force:
        raise Refused(_unfit_message(family, target, problems, available))
    if problems:
        log.warning("rollback forced onto an unfit image", family=family, image_id=target.image_id, problems=problems)
    unshared: list[str] = []
    for image in newer:
        shared = ecs.shared_accounts(image.image_id)
        if shared:
            ecs.unshare(image.image_id, shared)
            unshared += [a for a in shared if a not in unshared]
            log.warning("image unshared for rollback", image_id=image.image_id, accounts=shared)
        ecs.set_image_attributes(image.image_id, status="Deprecated")
    resolves_to = ecs.image_from_family(family)
    log.info("family rolled back", family=family, deprecated=[i.image_id for i in newer], resolves_to=resolves_to)
    also = tuple(i.image_id for i in newer if i.image_id != current_id)
    return RollbackResult(family, current_id, tuple(unshared), resolves_to, also, problems)


def _target(family: str, images: list[Image], available: list[Image], current_id: str, to: str | None) -> Image:
    """The image the family will resolve to after the rollback."""
    if to is None:
        others = [i for i in available if i.image_id != current_id]
        if not others:
            raise Refused(f"refusing to roll back family {family!r}: {current_id} is its only Available image, and "
                          "deprecating it would leave the family with none (launches resolving the family would "
                          "fail). Bake a new image or `bakery restore` an older one first.")  # fmt: skip
        return others[0]
    target = next((i for i in images if i.image_id == to), None)
    if target is None:
        raise NotFound(f"{to} is not an image of family {family!r} (`bakery plan {family}` lists its images)")
    if target.status != "Available":
        raise Refused(f"{to} is {target.status}: roll back onto an Available image, or `bakery restore {to}` "
                      "first")  # fmt: skip
    if target.image_id == current_id:
        raise Refused(f"family {family!r} already resolves to {to}: nothing to roll back")
    return target


def _unfit_message(family: str, target: Image, problems: tuple[str, ...], available: list[Image]) -> str:
    message = (f"refusing to roll back family {family!r} onto {target.image_id}: {'; '.join(problems)}. Every launch "
               "resolving the family would boot it.")  # fmt: skip
    fit = next((i for i in available if _age(i) < _age(target) and fitness.fit(i)), None)
    if fit is not None:
        skipped = [i.image_id for i in available if _age(i) > _age(fit)]
        message += (f" {fit.image_id} is the newest older image fit to resolve: `bakery rollback {family} --to "
                    f"{fit.image_id}` deprecates {', '.join(skipped)}.")  # fmt: skip
    else:
        message += " No older Available image is fit to resolve: bake a new image, or `bakery restore` a good one."
    return message + f" `--force` rolls back onto {target.image_id} anyway."


def _age(image: Image) -> tuple[str, str]:
    return (image.creation_time, image.image_id)


@dataclass(frozen=True)
class RestoreResult:
    image_id: str
    family: str
    previous_status: str
    resolves_to: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"imageId": self.image_id, "family": self.family, "previousStatus": self.previous_status,
                "status": "Available", "resolvesTo": self.resolves_to}  # fmt: skip


def restore(ecs: Ecs, image_id: str, *, force: bool = False) -> RestoreResult:
    """Deprecated → Available (a no-op for an Available image). The family resolves to it again only when
    no newer Available image exists: `resolves_to` says what it resolves to now. Refused when the family
    would resolve to it while it is unfit to resolve (`fitness.unfit`), unless `force`."""
    image = ecs.image(image_id)
    if image is None:
        raise NotFound(f"no image {image_id!r} owned by this account in {ecs.region}")
    if image.status not in RANKED:
        raise Refused(f"{image_id} is {image.status}: only a Deprecated image can be restored to Available")
    if image.status == "Deprecated":
        problems = fitness.unfit(image) if image.family else ()
        if problems and _would_resolve(ecs, image):
            if not force:
                raise Refused(f"refusing to restore {image_id}: family {image.family!r} would resolve to it (no newer "
                              f"Available image), and {'; '.join(problems)}. `--force` restores it anyway.")  # fmt: skip
            log.warning("restore forced onto an unfit image", image_id=image_id, problems=problems)
        ecs.set_image_attributes(image_id, status="Available")
        log.info("image restored", image_id=image_id, family=image.family or None)
    resolves_to = ecs.image_from_family(image.family) if image.family else None
    return RestoreResult(image_id, image.family, image.status, resolves_to)


def _would_resolve(ecs: Ecs, image: Image) -> bool:
    """Would the family resolve to `image` once Available: is it newer than what the family resolves to now?"""
    current_id = ecs.image_from_family(image.family)
    current = ecs.image(current_id) if current_id else None
    return current is None or _age(image) > _age(current)
