"""What every emulated service shares: the action registry and the cloud it lives in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from localcloud.wire import Params

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud

ActionMethod = Callable[[Any, Params], dict[str, Any]]


@dataclass(frozen=True)
class ActionSpec:
    name: str
    write: bool  # write actions publish an ActionTrail ApiCall event, as the real services do
    method: ActionMethod


# Every action a fault or rate limit can name, with its service: filled as the services are defined (RPC services
# by their @api methods, REST ones by `register_actions`). Importing `localcloud` defines them all.
KNOWN_ACTIONS: dict[str, str] = {}


def register_actions(service: str, names: Iterable[str]) -> None:
    KNOWN_ACTIONS.update(dict.fromkeys(names, service))


def api(name: str, *, write: bool = False) -> Callable[[ActionMethod], ActionMethod]:
    """Mark a method as the implementation of the API action `name`."""

    def mark(method: ActionMethod) -> ActionMethod:
        method._api_action = (name, write)  # type: ignore[attr-defined]
        return method

    return mark


class Service:
    """An emulated service: `actions` maps API action names to methods (params → response body)."""

    name = ""
    product = ""  # as ActionTrail and error bodies spell it: Ecs, Oos, EventBridge
    host = ""
    actions: dict[str, ActionSpec]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.actions = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                marker = getattr(attr, "_api_action", None)
                if marker:
                    cls.actions[marker[0]] = ActionSpec(marker[0], marker[1], attr)
        register_actions(cls.name, cls.actions)

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud

    def state(self) -> dict[str, Any]:
        return {}

    def tick(self) -> None:
        """Called after the clock moves; services with polling-style state may override."""
