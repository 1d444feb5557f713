"""A bake's state, written once: the values of the `bakery:state` tag (`tags.STATE`), where each lives, and
every move a step may make.

A bake lives on its instance until CreateImage (`preflight`, `stopping`), then on its image(s); the instance
stays `creating`, pointing at the bake, until the bake ends and the instance is released (its bakery:* work
tags removed: UNSET again). A repair makes a new image, which starts at `creating` with the lineage re-applied.
A bake from snapshots has no instance: only its images carry states.

Every stage writes a state through `to()` (the stages' `Context.set_state`), so a move missing from
TRANSITIONS is a bug that fails loudly (StateError: retried by FC, logged, never a silent new path). The sweep
queries IN_FLIGHT_IMAGE and resumes ON_INSTANCE; `bakery status` reads the same names.
"""

from __future__ import annotations

from collections.abc import Mapping

PREFLIGHT = "preflight"  # instance: claimed, static gate passed; the guest preflight runs (or is skipped)
STOPPING = "stopping"  # instance: Bakery stops it before imaging (bakery:stop-first)
CREATING = "creating"  # instance: its bake has an image (which carries the bake on); image: CreateImage runs
CHECKING = "checking"  # image: Available, the ECS image check still running
CHECK_FAILED = "check-failed"  # image: the check found risk items; a repair comes next, or the bake fails
REPAIRING = "repairing"  # image: an ACS-ECS-RepairImage execution runs on it
REPAIRED = "repaired"  # image: superseded by its repaired image; retired when the bake's image is promoted
READY = "ready"  # image: promoted (written last, so the sweep finishes an interrupted promotion)
RETIRED = "retired"  # image: deprecated out of its family (BAKERY_RETIRE_POLICY=deprecate); deleted ones carry none
FAILED = "failed"  # a bake's outcome in reports (`bakery status`, local runs); never written as a tag
UNSET = None  # no `bakery:state`: an instance not claimed (or released), an image not made yet

INSTANCE, IMAGE = "instance", "image"  # where a state lives (the ECS resource types its tag is written on)

# where → current state → the states a step may write next.
TRANSITIONS: Mapping[str, Mapping[str | None, frozenset[str | None]]] = {
    INSTANCE: {
        UNSET: frozenset({PREFLIGHT, UNSET}),  # claimed; or refused before the claim (the trigger tag is dropped)
        PREFLIGHT: frozenset({STOPPING, CREATING, UNSET}),  # stop-first, CreateImage, or the bake ends
        STOPPING: frozenset({CREATING, UNSET}),  # Stopped: CreateImage; or the bake ends
        CREATING: frozenset({CREATING, UNSET}),  # a CreateFailed retry (another image); released at the bake's end
    },
    IMAGE: {
        UNSET: frozenset({CREATING}),  # CreateImage, or a repaired image taking on the lineage
        # ... or REPAIRED: a repaired image missing its source's data disks, superseded by the image put back
        # together from its system disk and those data disks (stages.check.reassemble)
        CREATING: frozenset({CHECKING, CHECK_FAILED, READY, RETIRED, REPAIRED}),
        CHECKING: frozenset({CHECK_FAILED, READY, RETIRED}),
        CHECK_FAILED: frozenset({REPAIRING, RETIRED}),  # repair, or retired (bake failed, or another image promoted)
        REPAIRING: frozenset({REPAIRED, RETIRED}),
        REPAIRED: frozenset({RETIRED}),
        READY: frozenset(),  # families and retention take over (image status, not bakery:state)
        RETIRED: frozenset(),
    },
}

INSTANCE_STATES = tuple(s for s in TRANSITIONS[INSTANCE] if s is not UNSET)  # preflight, stopping, creating
IMAGE_STATES = tuple(s for s in TRANSITIONS[IMAGE] if s is not UNSET)
# A step still has to move the image on: what the sweep queries (one tag query each, in this order) and what
# `bakery status` shows as in flight.
IN_FLIGHT_IMAGE = (CREATING, CHECKING, CHECK_FAILED, REPAIRING)
# The bake has no image yet: the sweep resumes it from its instance.
ON_INSTANCE = (PREFLIGHT, STOPPING)
# Nothing moves an image on from here: a bake with only such images left has no image in flight.
TERMINAL_IMAGE = tuple(s for s in IMAGE_STATES if not TRANSITIONS[IMAGE][s])  # ready, retired


class StateError(RuntimeError):
    """A step tried a move TRANSITIONS does not allow: a bug in Bakery, never a bake's failure."""


def check(where: str, current: str | None, new: str | None) -> None:
    """Raise StateError unless a step may move a resource `where` (INSTANCE or IMAGE) from `current` to `new`."""
    allowed = TRANSITIONS[where].get(current)
    if allowed is None or new not in allowed:
        raise StateError(f"{where} state {current!r} -> {new!r} is not in bakery.state.TRANSITIONS")


def to(where: str, current: str | None, new: str) -> str:
    """`new`, once `check` allows the move: the value to write in `bakery:state`."""
    check(where, current, new)
    return new
