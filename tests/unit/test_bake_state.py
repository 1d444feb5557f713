"""The model of a bake's state (`bakery.state`): the table is closed and consistent, a move outside it is refused
before anything is written, and the sweep queries exactly the in-flight image states."""

from __future__ import annotations

from dataclasses import replace
from unittest.mock import MagicMock

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
    ctx.ecs.tag.assert_called_once_with("image", "m-1", {tags.STATE: state.REPAIRING, tags.REPAIR_EXECUTION: "exec-1"})


def test_set_state_refuses_a_move_outside_the_table_before_writing() -> None:
    ctx = _context()
    instance = Instance("i-1", "Running", "ecs.g7.large", "linux", "Aliyun", "x86_64", {tags.STATE: state.CREATING})
    with pytest.raises(state.StateError):
        ctx.set_state(instance, state.STOPPING)
    with pytest.raises(state.StateError):
        ctx.set_state(_image(state.READY), state.RETIRED)
    ctx.ecs.tag.assert_not_called()


def test_the_sweep_queries_one_tag_value_per_in_flight_image_state() -> None:
    ctx = _context()
    ctx.ecs.snapshots_tagged.return_value = []
    assert sweep.sweep(ctx, "2024-01-01T00:01:00Z") == {"images": 0, "repairs": 0, "instances": 0, "started": 0,
                                                         "deferred": 0, "errors": 0, "snapshots": 0}  # fmt: skip
    queried = [c.args for c in ctx.ecs.images_tagged.call_args_list]
    assert queried == [(tags.STATE, s) for s in state.IN_FLIGHT_IMAGE]
    ctx.ecs.snapshots_tagged.assert_not_called()  # snapshots of interrupted retires: every 15th minute only
    sweep.sweep(ctx, "2024-01-01T00:15:00Z")
    ctx.ecs.snapshots_tagged.assert_called_once_with(tags.RETIRING, None)


def test_one_failing_query_or_bake_does_not_stop_the_sweep_for_the_others() -> None:
    from bakery.errors import RetryableError

    ctx = _context()
    creating = [_image(state.CREATING), replace(_image(state.CREATING), image_id="m-2")]
    answers = {state.CREATING: creating, state.CHECKING: RetryableError("503", code="ServiceUnavailable")}

    def images_tagged(key: str, value: str | None = None) -> list[Image]:
        answer = answers.get(value, [])
        if isinstance(answer, Exception):
            raise answer
        return answer

    ctx.ecs.images_tagged.side_effect = images_tagged
    followed: list[str] = []

    def image(image_id: str) -> Image:  # the first bake's step hits a bug; the second must still be followed
        followed.append(image_id)
        if image_id == "m-1":
            raise KeyError("a bug in one bake's step")
        return replace(creating[1], status="Creating")

    ctx.ecs.image.side_effect = image
    claimed = Instance("i-1", "Running", "ecs.g7.large", "linux", "Aliyun", "x86_64",
                       {tags.BAKE_ID: "b-lost", tags.STATE: state.CREATING})  # fmt: skip
    ctx.ecs.instances_tagged.side_effect = lambda key, value=None: [claimed] if key == tags.BAKE_ID else []
    counts = sweep.sweep(ctx, "2024-01-01T00:01:00Z")
    assert followed == ["m-1", "m-2"]
    assert counts["errors"] == 1 and counts["deferred"] == 1
    # ... and with one image query unanswered, no claimed bake is judged to have lost its image
    ctx.bus.publish.assert_not_called()
    ctx.ecs.tag.assert_not_called()
