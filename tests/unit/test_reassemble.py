"""A repaired image is promoted only with every disk of its source (stages.check.reassemble): the rule, and what
happens when the source cannot be read or the repaired image cannot be put back together."""

from __future__ import annotations

from dataclasses import replace
from unittest.mock import MagicMock

import pytest

from bakery import state, tags
from bakery.config import Settings
from bakery.errors import BakeFailure
from bakery.model import Image, ImageDisk
from bakery.stages import check
from bakery.stages.context import Context

SYSTEM = ImageDisk("/dev/xvda", "system", "s-sys", 40)
DATA = (ImageDisk("/dev/xvdb", "data", "s-d1", 100), ImageDisk("/dev/xvdc", "data", "s-d2", 20))


def _image(image_id: str, disks: tuple[ImageDisk, ...], **extra: str) -> Image:
    return Image(image_id, f"name-{image_id}", "Available", True, "", "desc", "linux", "Aliyun", "x86_64",
                 {tags.BAKE_ID: "b-1", tags.REPAIRS: "1", **extra}, tuple(d.snapshot_id for d in disks), "",
                 disks=disks)  # fmt: skip


def _context(source: Image | None) -> Context:
    ecs = MagicMock(name="ecs")
    ecs.image.return_value = source
    ecs.create_image_from_disks.return_value = "m-whole"
    return Context(Settings(region="cn-hangzhou"), ecs, MagicMock(name="oos"), MagicMock(name="bus"))


def test_disks_missing_compares_in_order_by_type_and_size() -> None:
    source = (SYSTEM, *DATA)
    assert check.disks_missing(source, source) == []
    assert check.disks_missing(source, (SYSTEM,)) == ["/dev/xvdb (data, 100 GiB)", "/dev/xvdc (data, 20 GiB)"]
    assert check.disks_missing(source, (SYSTEM, DATA[1], DATA[0])) == ["/dev/xvdb (data, 100 GiB)"]
    bigger = (replace(SYSTEM, size_gib=80), *DATA)
    assert check.disks_missing(source, bigger) == []  # a larger disk carries everything


def test_a_system_only_repair_of_a_data_disk_image_is_put_back_together_then_superseded() -> None:
    source = _image("m-src", (SYSTEM, *DATA))
    repaired = _image("m-rep", (ImageDisk("/dev/xvda", "system", "s-fixed", 40),), **{
        tags.STATE: state.CREATING, tags.REPAIRED_FROM: "m-src"})  # fmt: skip
    ctx = _context(source)

    assert check.reassemble(ctx, repaired) is True

    (disks,), kwargs = ctx.ecs.create_image_from_disks.call_args
    assert [(d.device, d.snapshot_id, d.size_gib) for d in disks] == [
        ("/dev/xvda", "s-fixed", 40), ("/dev/xvdb", "s-d1", 100), ("/dev/xvdc", "s-d2", 20)]  # fmt: skip
    assert kwargs["client_token"] == "b-1-r1-disks"  # a retried step makes the same image
    assert kwargs["tags"][tags.STATE] == state.CREATING and kwargs["tags"][tags.REPAIRED_FROM] == "m-src"
    # the whole image exists before the system-only one is marked superseded (write-ahead)
    calls = [c[0] for c in ctx.ecs.method_calls]
    assert calls.index("create_image_from_disks") < calls.index("tag")
    ctx.ecs.tag.assert_called_once_with("image", "m-rep", {tags.STATE: state.REPAIRED, tags.IN_FLIGHT: "false"})
    (event,), _ = ctx.bus.publish.call_args
    assert event.data["imageId"] == "m-whole" and event.data["reassembledFrom"] == "m-rep"


def test_a_repair_with_every_disk_goes_on_to_its_check() -> None:
    source = _image("m-src", (SYSTEM,))
    repaired = _image("m-rep", (replace(SYSTEM, snapshot_id="s-fixed"),), **{
        tags.STATE: state.CREATING, tags.REPAIRED_FROM: "m-src"})  # fmt: skip
    ctx = _context(source)
    assert check.reassemble(ctx, repaired) is False
    ctx.ecs.create_image_from_disks.assert_not_called()


def test_a_repair_whose_source_is_gone_is_never_promoted() -> None:
    repaired = _image("m-rep", (SYSTEM,), **{tags.STATE: state.CREATING, tags.REPAIRED_FROM: "m-gone"})
    with pytest.raises(BakeFailure) as failure:
        check.reassemble(_context(None), repaired)
    assert failure.value.reason == "disks-unverified"


def test_a_repair_missing_disks_in_a_shape_that_cannot_be_rebuilt_fails_the_bake() -> None:
    source = _image("m-src", (SYSTEM, *DATA))
    repaired = _image("m-rep", (SYSTEM, DATA[1]), **{tags.STATE: state.CREATING, tags.REPAIRED_FROM: "m-src"})
    ctx = _context(source)
    with pytest.raises(BakeFailure) as failure:
        check.reassemble(ctx, repaired)
    assert failure.value.reason == "disk-lost"
    ctx.ecs.create_image_from_disks.assert_not_called()
