"""What every stage works with: the settings, the cloud adapters, and the one way a stage writes a state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bakery import state, tags
from bakery.adapters.ecs import Ecs
from bakery.adapters.eventbridge import EventBus
from bakery.adapters.oos import Oos
from bakery.config import Settings
from bakery.model import Image, Instance


@dataclass
class Context:
    settings: Settings
    ecs: Ecs
    oos: Oos
    bus: EventBus

    def set_state(self, resource: Instance | Image, new: str, also: Mapping[str, str] | None = None) -> None:
        """Tag `resource` `bakery:state=new` (with the tags `also`, in the same call), moving on from the state
        its tags were read with; a move not in `state.TRANSITIONS` raises StateError before anything is written."""
        if isinstance(resource, Instance):
            where, resource_id = state.INSTANCE, resource.instance_id
        else:
            where, resource_id = state.IMAGE, resource.image_id
        self.ecs.tag(
            where, resource_id, {tags.STATE: state.to(where, resource.tags.get(tags.STATE), new), **(also or {})}
        )
