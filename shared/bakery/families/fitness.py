"""Which images of a family Bakery may count and touch, and which a family may be made to resolve to: the one
rule retention (`retention.decide`: bakery-lifecycle after every Ready, `bakery plan`) and `bakery rollback` /
`bakery restore` share.

- **finished** — a promotion is finished when the image carries `bakery:state=ready`, or no `bakery:state` at
  all (an image Bakery made before it recorded states, or one Bakery never made). Any other value is a bake
  still moving: promotion sets the image's family first and writes `ready` last, so an interrupted promotion
  leaves a family image at `checking`, and the sweep finishes it. The image a `bakery:Image:Ready` just
  announced counts as finished (promotion publishes Ready before it writes `ready`).
- **fit to resolve** — what a family may be made to resolve to (DescribeImageFromFamily answers the newest
  Available image, so rolling back or restoring can hand every launch of the family a different image): the
  ECS image check finished with no risk item, and Bakery promoted it (`bakery:state=ready`).
"""

from __future__ import annotations

from bakery import state, tags
from bakery.model import Image


def made_by_bakery(image: Image) -> bool:
    """Bakery tags every image it makes with its bake id; an image without one is the operator's — and so is
    every image of an adopted bake (`bakery:adopted`): the operator's image, repaired, in the operator's family."""
    return tags.BAKE_ID in image.tags and tags.ADOPTED not in image.tags


def unfinished_state(image: Image, just_promoted: tuple[str, ...] | str = ()) -> str | None:
    """The image's `bakery:state` while its promotion is not finished, else None (see the module docstring).
    `just_promoted`: images whose promotion is finishing now (their `ready` is written after retention)."""
    value = image.tags.get(tags.STATE)
    if value is None or value == state.READY or image.image_id in as_ids(just_promoted):
        return None
    return value


def in_flight(value: str) -> bool:
    """A `bakery:state` a pipeline step still moves on (the sweep finishes it)."""
    return value in state.IN_FLIGHT_IMAGE


def passed_check(image: Image) -> bool:
    return image.detection_status == "Finished" and not image.failing_items


def check_problem(image: Image) -> str | None:
    """Why the image's ECS check does not vouch for it, or None when it passed."""
    if not image.detection_status:
        return "it was never checked by ECS (no image check: promoted unchecked, or made outside Bakery)"
    if image.detection_status != "Finished":
        return f"its image check has not finished (DetectionStatus {image.detection_status})"
    if image.failing_items:
        items = ", ".join(f"{i.name} ({i.risk_code or i.risk_level})" for i in image.failing_items)
        return f"its image check failed: {items}"
    return None


def unfit(image: Image) -> tuple[str, ...]:
    """Why a family must not be made to resolve to `image` (empty: it may)."""
    problems = []
    checked = check_problem(image)
    if checked:
        problems.append(checked)
    value = image.tags.get(tags.STATE)
    if value != state.READY:
        if value is not None and in_flight(value):
            problems.append(f"its promotion is in flight ({tags.STATE}={value})")
        elif value is not None:
            problems.append(f"it is {tags.STATE}={value}, not {state.READY}")
        elif made_by_bakery(image):
            problems.append(f"it carries no {tags.STATE}={state.READY} (Bakery's promotion of it is not on record)")
        else:
            problems.append(f"Bakery did not promote it (no {tags.BAKE_ID}, no {tags.STATE}={state.READY})")
    return tuple(problems)


def fit(image: Image) -> bool:
    return not unfit(image)


def as_ids(image_ids: tuple[str, ...] | str) -> tuple[str, ...]:
    """One image id or several, as a tuple ("" = none)."""
    if isinstance(image_ids, str):
        return (image_ids,) if image_ids else ()
    return tuple(image_ids)
