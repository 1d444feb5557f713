"""`rollback` (a family back to its previous Available image) and `restore` (a Deprecated image Available again),
each refused when it would break a promise — never leave a family without an Available image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bakery.errors import BakeryError
from bakery.families.retention import RANKED, newest_first
from bakery.log import get_logger

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
