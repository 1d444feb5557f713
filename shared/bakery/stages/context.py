"""What every stage works with: the settings, the cloud adapters, and the one way a stage writes a state."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from bakery import state, tags
from bakery.adapters.ecs import Ecs
from bakery.adapters.eventbridge import EventBus
from bakery.adapters.oos import Oos
from bakery.config import Settings
from bakery.events import BakeryEvent
from bakery.model import Image, Instance

SWEPT = "b-s"  # the prefix of a bake the sweep claimed for a trigger tag whose event it never saw


def bake_id_for(trigger: str, resource_id: str, *, swept: bool = False) -> str:
    """A bake id derived from what triggered it: the same event delivered twice is the same bake."""
    digest = hashlib.sha256(f"{trigger}:{resource_id}".encode()).hexdigest()
    return SWEPT + digest[:15] if swept else "b-" + digest[:16]


@dataclass
class Context:
    settings: Settings
    ecs: Ecs
    oos: Oos
    bus: EventBus
    # Set by the sweep: the promotions it made, finished together (`promote.finish`) — one PutEvents and one
    # TagResources per 50 images, one retention per family — instead of one by one.
    promotions: list[tuple[Image, BakeryEvent]] | None = field(default=None, compare=False)
    # Set by the sweep: the instances of the images it is about to promote, read in one call (each used once).
    instances: dict[str, Instance | None] | None = field(default=None, compare=False)

    def instance(self, instance_id: str) -> Instance | None:
        """The instance: from the sweep's batch read when it has it (once), else DescribeInstances."""
        if self.instances is not None and instance_id in self.instances:
            return self.instances.pop(instance_id)
        return self.ecs.instance(instance_id)

    def set_state(self, resource: Instance | Image, new: str, also: Mapping[str, str] | None = None) -> None:
        """Tag `resource` `bakery:state=new` (with the tags `also`, in the same call), moving on from the state
        its tags were read with; a move not in `state.TRANSITIONS` raises StateError before anything is written."""
        current = resource.tags.get(tags.STATE)
        if isinstance(resource, Instance):
            where, resource_id = state.INSTANCE, resource.instance_id
            moved = {tags.STATE: state.to(where, current, new)}
        else:
            where, resource_id = state.IMAGE, resource.image_id
            moved = tags.image_state(current, new)  # the in-flight marker moves with the state
        self.ecs.tag(where, resource_id, {**moved, **(also or {})})
