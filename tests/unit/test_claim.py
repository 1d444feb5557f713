"""The claim: a second trigger while a bake is in flight tells the operator (already-baking) — except the late
delivery of the very trigger the sweep already picked up, which would be a false alarm."""

from __future__ import annotations

from unittest.mock import MagicMock

from bakery import state, tags
from bakery.config import Settings
from bakery.model import Instance
from bakery.stages import claim
from bakery.stages.context import Context


def _context(in_flight: str) -> Context:
    ecs = MagicMock(name="ecs")
    ecs.instance.return_value = Instance("i-1", "Running", "ecs.g7.large", "linux", "Aliyun", "x86_64", {
        tags.TRIGGER: "true", tags.BAKE_ID: in_flight, tags.STATE: state.CREATING})  # fmt: skip
    return Context(Settings(region="cn-hangzhou"), ecs, MagicMock(name="oos"), MagicMock(name="bus"))


def test_a_second_trigger_while_a_bake_is_in_flight_is_reported_already_baking() -> None:
    ctx = _context(claim.bake_id_for("evt-1", "i-1"))
    claim.begin(ctx, "i-1", claim.bake_id_for("evt-2", "i-1"))
    (event,), _ = ctx.bus.publish.call_args
    assert event.data["reason"] == "already-baking"
    ctx.ecs.tag.assert_not_called()


def test_the_late_event_of_a_trigger_the_sweep_already_claimed_is_quiet() -> None:
    swept = claim.bake_id_for("sweep:2024-01-01T00:10:00Z", "i-1", swept=True)
    assert swept.startswith(claim.SWEPT) and len(swept) == len(claim.bake_id_for("x", "i-1"))
    ctx = _context(swept)
    claim.begin(ctx, "i-1", claim.bake_id_for("evt-late", "i-1"))
    ctx.bus.publish.assert_not_called()
    ctx.ecs.tag.assert_not_called()
