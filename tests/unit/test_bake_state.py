"""The model of a bake's state (`bakery.state`): the table is closed and consistent, a move outside it is refused
before anything is written, and the sweep queries exactly the in-flight image states."""

from __future__ import annotations

from dataclasses import replace
from unittest.mock import MagicMock, patch

import pytest

from bakery import state, tags
from bakery.config import Settings
from bakery.model import Image, Instance
from bakery.stages import sweep
from bakery.stages.context import Context


def _context() -> Context:
    ecs = MagicMock(name="ecs")
    ecs.images_tagged.return_value = []
    ecs.instances_tagged.return_value = []
    return Context(Settings(region="cn-hangzhou"), ecs, MagicMock(name="oos"), MagicMock(name="bus"))


def _image(current: str | None) -> Image:
    return Image("m-1", "n", "Available", True, "", "", "linux", "Aliyun", "x86_64",
                 {} if current is None else {tags.STATE: current}, (), "")  # fmt: skip


def test_every_state_a_move_leads_to_has_its_own_row() -> None:
    for where, moves in state.TRANSITIONS.items():
        reached = {new for targets in moves.values() for new in targets}
        assert reached <= set(moves), where


def test_every_image_state_is_reachable_from_a_new_image() -> None:
    seen, todo = set(), [state.UNSET]
    while todo:
        current = todo.pop()
        seen.add(current)
        todo += [n for n in state.TRANSITIONS[state.IMAGE][current] if n not in seen]
    assert seen == {state.UNSET, *state.IMAGE_STATES}


def test_the_named_groups_agree_with_the_table() -> None:
    assert state.TERMINAL_IMAGE == (state.READY, state.RETIRED)
    assert set(state.IN_FLIGHT_IMAGE) <= set(state.IMAGE_STATES) - set(state.TERMINAL_IMAGE)
    assert set(state.ON_INSTANCE) <= set(state.INSTANCE_STATES)
    assert state.INSTANCE_STATES == (state.PREFLIGHT, state.STOPPING, state.CREATING)
    assert state.FAILED not in state.IMAGE_STATES + state.INSTANCE_STATES  # a reported outcome, never a tag


def test_tags_still_names_the_state_values() -> None:
    for name in ("PREFLIGHT", "STOPPING", "CREATING", "CHECKING", "CHECK_FAILED", "REPAIRING", "REPAIRED",
                 "READY", "FAILED", "RETIRED"):  # fmt: skip
        assert getattr(tags, name) == getattr(state, name)


@pytest.mark.parametrize(("where", "current", "new"), [
    (state.IMAGE, state.READY, state.CHECKING),
    (state.IMAGE, state.RETIRED, state.READY),
    (state.IMAGE, state.UNSET, state.READY),
    (state.IMAGE, state.REPAIRED, state.CHECKING),
    (state.INSTANCE, state.CREATING, state.PREFLIGHT),
    (state.INSTANCE, state.PREFLIGHT, state.READY),
    (state.INSTANCE, "unknown", state.CREATING),
])  # fmt: skip
def test_a_move_outside_the_table_is_a_state_error(where: str, current: str | None, new: str) -> None:
    with pytest.raises(state.StateError, match=r"TRANSITIONS"):
        state.check(where, current, new)


def test_set_state_writes_an_allowed_move_with_its_other_tags_in_one_call() -> None:
    ctx = _context()
    ctx.set_state(_image(state.CHECK_FAILED), state.REPAIRING, {tags.REPAIR_EXECUTION: "exec-1"})
    ctx.ecs.tag.assert_called_once_with("image", "m-1", {tags.STATE: state.REPAIRING, tags.IN_FLIGHT: "true",
                                                          tags.REPAIR_EXECUTION: "exec-1"})  # fmt: skip
    ctx.ecs.tag.reset_mock()
    ctx.set_state(_image(state.CHECKING), state.READY)  # the in-flight marker moves with the state
    ctx.ecs.tag.assert_called_once_with("image", "m-1", {tags.STATE: state.READY, tags.IN_FLIGHT: "false"})


def test_set_state_refuses_a_move_outside_the_table_before_writing() -> None:
    ctx = _context()
    instance = Instance("i-1", "Running", "ecs.g7.large", "linux", "Aliyun", "x86_64", {tags.STATE: state.CREATING})
    with pytest.raises(state.StateError):
        ctx.set_state(instance, state.STOPPING)
    with pytest.raises(state.StateError):
        ctx.set_state(_image(state.READY), state.RETIRED)
    ctx.ecs.tag.assert_not_called()


def test_the_sweep_makes_at_most_one_query_a_minute_when_nothing_is_in_flight() -> None:
    ctx = _context()
    counts = {}
    for minute in range(20):  # twenty minutes of an idle deployment
        counts = sweep.sweep(ctx, f"2024-01-01T00:{minute:02d}:00Z")
    assert counts == {"images": 0, "repairs": 0, "instances": 0, "started": 0, "deferred": 0, "errors": 0,
                      "snapshots": 0, "promoted": 0, "retention": 0, "adopted": 0}  # fmt: skip
    ctx.ecs.snapshots_tagged.assert_called_once_with(tags.RETIRING, None)  # minute 2: the hourly collection
    images = [c.args for c in ctx.ecs.images_tagged.call_args_list]
    instances = [c.args for c in ctx.ecs.instances_tagged.call_args_list]
    assert images.count((tags.ADOPT,)) == 1  # minute 4: images to adopt, hourly (BAKERY_ADOPT_IMAGES=tag)
    images = [a for a in images if a != (tags.ADOPT,)]
    assert images == [(tags.IN_FLIGHT, "true")] * 7  # every third minute: 0, 3, 6, 9, 12, 15, 18
    assert instances == [(tags.TRIGGER,), (tags.BAKE_ID,), (tags.TRIGGER,)]  # minutes 1, 6 (with images), 16
    ctx.ecs.image.assert_not_called()  # nothing is re-read


def test_one_failing_query_or_bake_does_not_stop_the_sweep_for_the_others() -> None:
    ctx = _context()
    creating = [_image(state.CREATING), replace(_image(state.CREATING), image_id="m-2")]
    ctx.ecs.images_tagged.return_value = creating
    decided: list[str] = []

    def follow_image(_ctx: object, image: Image) -> None:  # the first bake's step hits a bug
        decided.append(image.image_id)
        if image.image_id == "m-1":
            raise KeyError("a bug in one bake's step")

    with patch.object(sweep.check, "follow_image", follow_image):
        counts = sweep.sweep(ctx, "2024-01-01T00:03:00Z")  # an image-listing minute
    assert decided == ["m-1", "m-2"]  # the second is still decided, from the listing (no re-read)
    assert counts["errors"] == 1
    ctx.ecs.image.assert_not_called()


def test_with_the_image_listing_unanswered_no_claimed_bake_is_judged_lost() -> None:
    from bakery.errors import RetryableError

    ctx = _context()
    ctx.ecs.images_tagged.side_effect = RetryableError("503", code="ServiceUnavailable")
    claimed = Instance("i-1", "Running", "ecs.g7.large", "linux", "Aliyun", "x86_64",
                       {tags.BAKE_ID: "b-lost", tags.STATE: state.CREATING})  # fmt: skip
    ctx.ecs.instances_tagged.side_effect = lambda key, value=None: [claimed] if key == tags.BAKE_ID else []
    counts = sweep.sweep(ctx, "2024-01-01T00:06:00Z")  # a claimed-instances minute
    assert counts["deferred"] == 1
    ctx.bus.publish.assert_not_called()
    ctx.ecs.tag.assert_not_called()
