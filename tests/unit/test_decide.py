"""`check.decide` gives every in-flight image a way forward: a half-promoted image someone deprecated (an
operator, or — before issue 10 — another bake's retention) is still promoted, never skipped by every sweep."""

from __future__ import annotations

from unittest.mock import MagicMock, patch

from bakery import state, tags
from bakery.config import Settings
from bakery.model import CheckItem, Image
from bakery.stages import check
from bakery.stages.context import Context


def _image(status: str, current: str, detection: str = "Finished", items: tuple[CheckItem, ...] = ()) -> Image:
    return Image("m-1", "n", status, True, "app", "", "linux", "Aliyun", "x86_64",
                 {tags.STATE: current, tags.BAKE_ID: "b-1", tags.FAMILY: "app"}, ("s-1",), detection, items)  # fmt: skip


def _context() -> Context:
    return Context(Settings(region="cn-hangzhou"), MagicMock(name="ecs"), MagicMock(name="oos"), MagicMock(name="bus"))


def test_a_deprecated_half_promoted_image_is_still_promoted() -> None:
    ctx = _context()
    with patch.object(check.promote, "promote") as promote:
        check.decide(ctx, _image("Deprecated", state.CHECKING))
    promote.assert_called_once()


def test_images_still_being_made_or_checked_cost_no_write() -> None:
    ctx = _context()
    with patch.object(check.promote, "promote") as promote:
        check.decide(ctx, _image("Creating", state.CREATING, detection=""))
        check.decide(ctx, _image("Available", state.CHECKING, detection="Processing"))
    promote.assert_not_called()
    ctx.ecs.tag.assert_not_called()
