"""Issue 11's call savings, each held by a test: the sweep's schedule (what each minute costs), promotions finished
together (one PutEvents, one TagResources per 50 images), retention once per family, and the claim written in
one call with the preflight it starts."""

from __future__ import annotations

import itertools
from collections import Counter
from unittest.mock import MagicMock

import pytest

from bakery import events, state, tags
from bakery.config import Settings
from bakery.events import BakeryEvent
from bakery.families.retention import DEPRECATE, KEEP, decide
from bakery.model import Image, Instance
from bakery.stages import claim, promote, sweep
from bakery.stages.context import Context

DAY = 24 * 60


def _context(ecs: MagicMock | None = None) -> Context:
    return Context(Settings(region="cn-hangzhou"), ecs or MagicMock(name="ecs"), MagicMock(name="oos"),
                   MagicMock(name="bus"))  # fmt: skip


# -- the sweep's schedule ----------------------------------------------------------------------------


def test_an_idle_day_costs_696_queries_and_no_minute_more_than_two() -> None:
    per_minute = [sweep.schedule(m) for m in range(DAY)]
    assert sum(len(q) for q in per_minute) == 696
    assert max(len(q) for q in per_minute) == 2
    kinds = Counter(k for q in per_minute for k in q)
    assert kinds == {sweep.IMAGES: 480, sweep.CLAIMED: 96, sweep.TRIGGERED: 96, sweep.GARBAGE: 24}


@pytest.mark.parametrize("kind, bound", [(sweep.IMAGES, 3), (sweep.CLAIMED, 15), (sweep.TRIGGERED, 15),
                                         (sweep.GARBAGE, 60)])  # fmt: skip
def test_every_query_comes_round_within_its_bound_wherever_a_day_starts(kind: str, bound: int) -> None:
    minutes = [m for m in range(3 * DAY) if kind in sweep.schedule(m)]
    assert max(b - a for a, b in itertools.pairwise(minutes)) == bound


def test_claimed_instances_are_judged_against_the_same_minutes_image_listing() -> None:
    assert all(sweep.IMAGES in sweep.schedule(m) for m in range(DAY) if sweep.CLAIMED in sweep.schedule(m))


def _image(image_id: str, current: str, family: str = "web", **extra: str) -> Image:
    return Image(image_id, f"name-{image_id}", "Available", True, "", "", "linux", "Aliyun", "x86_64",
                 {tags.STATE: current, tags.IN_FLIGHT: "true", tags.BAKE_ID: f"b-{image_id}", tags.FAMILY: family,
                  tags.SOURCE_INSTANCE: f"i-{image_id}", tags.ATTEMPT: "1", **extra}, (), "Finished")  # fmt: skip


def test_a_quiet_minute_makes_no_call() -> None:
    ctx = _context()
    quiet = next(m for m in range(60) if not sweep.schedule(m, adopting=True))  # adoption on: the default (tag)
    sweep.sweep(ctx, f"2026-01-05T09:{quiet:02d}:00Z")
    assert ctx.ecs.method_calls == [] and ctx.bus.method_calls == []


# -- promotions finished together ------------------------------------------------------------------------


def test_a_sweeps_promotions_cost_one_put_events_and_one_tag_call_per_50_images() -> None:
    ecs = MagicMock(name="ecs")
    ecs.instances.return_value = []  # released already: nothing to untag
    ecs.images_tagged.return_value = [_image(f"m-{n:03d}", state.CHECKING if n % 2 else state.CREATING)
                                      for n in range(60)]  # fmt: skip
    ctx = _context(ecs)
    listing_minute = next(m for m in range(60) if sweep.schedule(m) == (sweep.IMAGES,))
    sweep.sweep(ctx, f"2026-01-05T09:{listing_minute:02d}:00Z")

    published = [e for call in ctx.bus.publish.call_args_list for e in call.args]
    assert ctx.bus.publish.call_count == 1  # the adapter splits it into PutEvents of 16
    assert Counter(e.type for e in published) == {events.IMAGE_READY: 60, events.FAMILY_PROMOTED: 1}
    (family_event,) = [e for e in published if e.type == events.FAMILY_PROMOTED]
    assert family_event.data == {"family": "web", "imageIds": [f"m-{n:03d}" for n in range(60)]}
    ready_writes = [c for c in ecs.tag.call_args_list if c.args[2].get(tags.STATE) == state.READY]
    assert [len(c.args[1]) for c in ready_writes] == [60]  # one list: the adapter sends 50 a call
    # ready, and still in flight until the lifecycle function has run retention for the family
    assert ready_writes[0].args[2] == {tags.STATE: state.READY, tags.IN_FLIGHT: "true"}
    assert ctx.promotions is None and ctx.instances is None  # the batch ends with the sweep
    # ... and the 60 instances to release were read in one call, not one each
    ecs.instances.assert_called_once_with([f"i-m-{n:03d}" for n in range(60)])
    ecs.instance.assert_not_called()


def test_ready_is_written_only_after_the_events_are_published() -> None:
    ctx = _context()
    ctx.bus.publish.side_effect = RuntimeError("PutEvents failed")
    with pytest.raises(RuntimeError):
        promote.finish(
            ctx, [(_image("m-1", state.CHECKING), BakeryEvent(events.IMAGE_READY, "m-1", {"family": "web"}))]
        )
    ctx.ecs.tag.assert_not_called()  # still in flight: the next sweep promotes it again


def test_a_promotion_outside_the_sweep_finishes_at_once() -> None:
    ecs = MagicMock(name="ecs")
    ecs.instance.return_value = None
    ctx = _context(ecs)
    promote.promote(ctx, _image("m-1", state.CHECKING))
    (call,) = ctx.bus.publish.call_args_list
    assert [e.type for e in call.args] == [events.IMAGE_READY, events.FAMILY_PROMOTED]


def test_a_repaired_image_gets_its_description_with_its_family_in_one_call() -> None:
    ecs = MagicMock(name="ecs")
    ecs.instance.return_value = None
    ecs.images_tagged.return_value = []
    ctx = _context(ecs)
    promote.promote(ctx, _image("m-2", state.CHECKING, **{tags.REPAIRED_FROM: "m-1", tags.REPAIRS: "1"}))
    (call,) = ecs.set_image_attributes.call_args_list
    assert call.kwargs["family"] == "web"
    assert call.kwargs["description"] == "Baked by Bakery from i-m-2 (bake b-m-2) (repaired from m-1)"


# -- retention once per family -------------------------------------------------------------------------------


def _finished(n: int, minute: int) -> Image:
    return Image(f"m-v{n}", f"v{n}", "Available", True, "web", "", "linux", "Aliyun", "x86_64",
                 {tags.BAKE_ID: f"b-{n}", tags.STATE: state.CHECKING}, (), "Finished",
                 creation_time=f"2026-01-05T09:{minute:02d}:00Z")  # fmt: skip


def test_a_fleet_promoted_together_keeps_its_newest_n_not_all_of_it() -> None:
    images = [_finished(n, n) for n in range(1, 9)]
    decisions = {d.image_id: d.action for d in decide(images, keep=3, just_promoted=tuple(i.image_id for i in images))}
    assert [i for i, a in decisions.items() if a == KEEP] == ["m-v8", "m-v7", "m-v6"]
    assert all(decisions[f"m-v{n}"] == DEPRECATE for n in range(1, 6))


def test_lifecycle_runs_retention_once_per_family_promoted_and_says_nothing_when_nothing_changed() -> None:
    from bakery import entrypoints

    pipeline = MagicMock(name="pipeline")
    pipeline.settings = Settings(region="cn-hangzhou")
    pipeline.ecs.images_in_family.return_value = [_finished(1, 1)]
    event = events.CloudEvent(id="bk-1", source="bakery", type=events.FAMILY_PROMOTED, subject="web",
                              time="2026-01-05T09:00:00Z", data={"family": "web", "imageIds": ["m-v1"]}, raw={})  # fmt: skip
    entrypoints.route_lifecycle(pipeline, event)
    pipeline.ecs.images_in_family.assert_called_once_with("web")
    pipeline.bus.publish.assert_not_called()  # kept everything: no RetentionApplied


# -- the claim -------------------------------------------------------------------------------------


def test_the_claim_and_the_preflight_it_starts_are_one_tag_write() -> None:
    ecs = MagicMock(name="ecs")
    ecs.instance.return_value = Instance("i-1", "Running", "ecs.g7.large", "linux", "Aliyun", "x86_64",
                                         {tags.TRIGGER: "true"})  # fmt: skip
    ecs.disks.return_value = []
    ecs.run_script.return_value = "t-invoke"
    ctx = _context(ecs)
    bake_id = claim.bake_id_for("evt-1", "i-1")
    claim.begin(ctx, "i-1", bake_id)
    (call,) = ecs.tag.call_args_list
    assert call.args == ("instance", "i-1", {tags.BAKE_ID: bake_id, tags.STATE: state.PREFLIGHT,
                                             tags.PREFLIGHT_INVOKE: "t-invoke"})  # fmt: skip
    ecs.command_result.assert_not_called()  # it cannot have finished yet: TaskCompleted brings the bake back


# -- CreateImage paced to the rate limit ------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def wait(self, seconds: float) -> None:
        self.waits.append(round(seconds, 3))
        self.now += seconds


def test_after_one_throttle_a_burst_is_spaced_at_the_pace_the_throttle_implied() -> None:
    from bakery.adapters.pacing import Pacer

    clock = _Clock()
    pacer = Pacer(lambda: clock.now, clock.wait)
    pacer.admit()
    assert clock.waits == []  # not pacing: no wait (and no clock read)
    pacer.throttled(0.2)  # 5 calls a second
    for _ in range(4):
        pacer.admit()
    assert clock.waits == [0.2, 0.2, 0.2, 0.2]


def test_a_throttle_while_paced_slows_the_pace_and_a_quiet_minute_forgets_it() -> None:
    from bakery.adapters.pacing import FORGET_AFTER_S, Pacer

    clock = _Clock()
    pacer = Pacer(lambda: clock.now, clock.wait)
    pacer.throttled(0.2)
    pacer.throttled(0.1)  # still refused at that pace: half as slow again
    assert pacer.interval == pytest.approx(0.3)
    clock.now += FORGET_AFTER_S + 1
    pacer.admit()
    assert pacer.interval == 0 and clock.waits == []


def test_two_passing_images_of_one_bake_in_one_sweep_promote_one_and_retire_nothing_yet() -> None:
    # An interrupted write can leave two images of a bake passing in one listing: the second must not retire
    # the first, whose `ready` is not written until the sweep ends.
    ecs = MagicMock(name="ecs")
    ecs.instances.return_value = []
    first, second = _image("m-1", state.CHECKING), _image("m-2", state.CHECKING)
    second.tags[tags.BAKE_ID] = first.tags[tags.BAKE_ID]
    second.tags[tags.ATTEMPT] = "2"
    ecs.images_tagged.return_value = [first, second]
    ctx = _context(ecs)
    sweep.sweep(ctx, "2026-01-05T09:03:00Z")
    ecs.delete_image_with_snapshots.assert_not_called()
    (call,) = ctx.bus.publish.call_args_list
    assert [e.data.get("imageId") for e in call.args if e.type == events.IMAGE_READY] == ["m-1"]


def test_an_image_without_a_family_is_done_at_once_and_a_familys_waits_for_retention() -> None:
    ctx = _context()
    alone, in_family = _image("m-1", state.CHECKING, family=""), _image("m-2", state.CHECKING)
    promote.finish(ctx, [(alone, BakeryEvent(events.IMAGE_READY, "m-1", {"family": ""})),
                         (in_family, BakeryEvent(events.IMAGE_READY, "m-2", {"family": "web"}))])  # fmt: skip
    writes = {tuple(c.args[1]): c.args[2][tags.IN_FLIGHT] for c in ctx.ecs.tag.call_args_list}
    assert writes == {("m-1",): "false", ("m-2",): "true"}


def test_the_sweep_sends_family_promoted_again_for_promotions_whose_retention_never_ran() -> None:
    ecs = MagicMock(name="ecs")
    waiting = _image("m-9", state.READY)  # promoted, its Family:Promoted lost: still marked in flight
    ecs.images_tagged.return_value = [waiting]
    ctx = _context(ecs)
    sweep.sweep(ctx, "2026-01-05T09:15:00Z")  # the cycle's repairs-and-retention minute
    (call,) = ctx.bus.publish.call_args_list
    (event,) = call.args
    assert (event.type, event.data["family"], event.data["imageIds"]) == (events.FAMILY_PROMOTED, "web", ["m-9"])
    sweep.sweep(ctx, "2026-01-05T09:18:00Z")  # other listing minutes leave it to that one
    assert ctx.bus.publish.call_count == 1


def test_lifecycle_clears_the_mark_only_on_bakerys_own_promotions_it_did_not_delete() -> None:
    from bakery import entrypoints

    mine, other = _finished(2, 2), _finished(1, 1)
    mine.tags.update({tags.STATE: state.READY, tags.IN_FLIGHT: "true"})
    other.tags.clear()  # an image someone else put in the family
    pipeline = MagicMock(name="pipeline")
    pipeline.settings = Settings(region="cn-hangzhou")
    pipeline.ecs.images_in_family.return_value = [mine, other]
    event = events.CloudEvent(id="bk-2", source="bakery", type=events.FAMILY_PROMOTED, subject="web",
                              time="2026-01-05T09:00:00Z", data={"family": "web", "imageIds": ["m-v2", "m-v1"]},
                              raw={})  # fmt: skip
    entrypoints.route_lifecycle(pipeline, event)
    pipeline.ecs.tag_existing.assert_called_once_with("image", ["m-v2"], {tags.IN_FLIGHT: "false"})
