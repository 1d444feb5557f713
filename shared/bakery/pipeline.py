"""The bake state machine: preflight → (stop) → CreateImage → check → (repair → check)* → promote.

Every step is safe to run twice and concurrently with the sweep: it re-reads the resources, acts only
when their tags say the bake is in the state the step expects, and uses ClientTokens derived from the
bake id so a retried call never makes a second image or execution.

`Pipeline` is the stages' `Context` (the settings and the adapters) with the entry points `entrypoints.py`
routes events to; each stage is one module of `bakery.stages`, and the states they write are `bakery.state`.
"""

from __future__ import annotations

from bakery import events
from bakery.adapters.ecs import Ecs
from bakery.adapters.eventbridge import EventBus
from bakery.adapters.oos import Oos
from bakery.config import Settings
from bakery.errors import BakeFailure
from bakery.model import Image, Instance
from bakery.stages import adopt, check, claim, create, failure, repair, sweep
from bakery.stages.context import Context


class Pipeline(Context):
    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        return cls(settings, Ecs(settings), Oos(settings), EventBus(settings))

    # bake: the trigger, the claim, the preflight, CreateImage (stages.claim, stages.create)
    def on_tagged(self, event: events.CloudEvent) -> None:
        claim.on_tagged(self, event)

    def begin(self, instance_id: str, bake_id: str, *, requested: bool = False, certain: bool = True) -> None:
        claim.begin(self, instance_id, bake_id, requested=requested, certain=certain)

    def advance_instance(self, instance: Instance) -> None:
        claim.advance_instance(self, instance)

    def on_preflight_done(self, event: events.CloudEvent) -> None:
        claim.on_preflight_done(self, event)

    def on_instance_state(self, event: events.CloudEvent) -> None:
        create.on_instance_state(self, event)

    def begin_from_snapshots(self, snapshot_ids: list[str], bake_id: str, *, family: str = "", name: str = "") -> None:
        create.begin_from_snapshots(self, snapshot_ids, bake_id, family=family, name=name)

    # check: follow an image to Available + checked, then promote (stages.check, stages.promote)
    def follow(self, image_id: str) -> None:
        check.follow(self, image_id)

    # adoption: an image made outside Bakery, followed like a bake's (stages.adopt, then stages.check)
    def adopt(self, image_id: str, *, requested: bool = False, check_requested: bool | None = None,
              image: Image | None = None, opted_in: bool = False) -> Image | None:  # fmt: skip
        adopted = adopt.adopt(self, image_id, requested=requested, check_requested=check_requested, image=image,
                              opted_in=opted_in)  # fmt: skip
        if adopted is not None:
            check.follow_image(self, adopted)  # already checked (an image that failed before): decided now
        return adopted

    # repair: ACS-ECS-RepairImage for a failed check (stages.repair)
    def on_check_failed(self, image_id: str) -> None:
        repair.on_check_failed(self, image_id)

    def on_execution_changed(self, execution_id: str) -> None:
        repair.on_execution_changed(self, execution_id)

    def follow_repair(self, image: Image) -> None:
        repair.follow_repair(self, image)

    # the timer, and the end of a bake that cannot succeed (stages.sweep, stages.failure)
    def sweep(self, trigger_time: str) -> dict[str, int]:
        return sweep.sweep(self, trigger_time)

    def fail(self, instance_id: str, bake_id: str, reason: BakeFailure) -> None:
        failure.fail(self, instance_id, bake_id, reason)
