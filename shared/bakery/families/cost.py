"""What a family's images cost: snapshot storage per family and image, and what the retention plan would free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bakery.families.plan import plan
from bakery.families.retention import DELETE, DEPRECATE, KEEP

if TYPE_CHECKING:
    from bakery.adapters.ecs import Ecs
    from bakery.config import Settings

DEFAULT_PRICE_PER_GIB_MONTH = 0.12
DEFAULT_CURRENCY = "USD"


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
        # Out of the family yet billing: what the plan deprecates, and Deprecated images it keeps (rolled back).
        deprecated = {s for d in mine if d.action == DEPRECATE or (d.action == KEEP and d.status == "Deprecated")
                      for s in d.snapshot_ids}  # fmt: skip
        total, freed_gib, deprecated_gib = (sum(sizes.get(s, 0) for s in group) for group in (every, freed, deprecated))
        families.append(FamilyCost(name, images, total, total * price_per_gib_month, freed_gib,
                                   freed_gib * price_per_gib_month, deprecated_gib, deprecated_gib * price_per_gib_month))  # fmt: skip
    return CostReport(price_per_gib_month, currency, tuple(families))
