"""The custom buses: ROS has no ALIYUN::EventBridge::EventBus type, so `bakery deploy` creates the buses the template
uses before the stack (rules and async destinations need them) and destroy deletes them after it; a local run
(bakery_tools.local) creates them the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from bakery.errors import CloudError


def _eventbridge_call(client: Any, action: str, method: Callable[..., Any], request: Any) -> Any:
    """An EventBridge call whose failure may also hide in a 200 (`Success: false` + Code)."""
    from bakery.adapters.sdk import call

    body = call("eventbridge", action, method, request).body
    code = getattr(body, "code", None) or ""
    if getattr(body, "success", None) is False or (code and code != "Success"):
        raise CloudError(code or "Failed", getattr(body, "message", None) or "", status=200, action=action)
    return body


def ensure_buses(eventbridge_client: Any, names: Iterable[str], *, description: str) -> list[str]:
    """Create each custom bus in `names` that does not exist yet (GetEventBus, then CreateEventBus; "already
    exists" counts as success: another deployer was quicker). Returns the names created, in order.

    `bakery deploy` calls it before the stack (ROS has no ALIYUN::EventBridge::EventBus type: rules and async
    destinations need their buses to exist), and the local runtime calls it so local runs create buses the
    same way."""
    from alibabacloud_eventbridge20200401 import models as m

    created = []
    for name in dict.fromkeys(names):
        if bus_exists(eventbridge_client, name):
            continue
        try:
            _eventbridge_call(eventbridge_client, "CreateEventBus", eventbridge_client.create_event_bus,
                              m.CreateEventBusRequest(event_bus_name=name, description=description))  # fmt: skip
        except CloudError as exc:
            if "AlreadyExist" in exc.code:
                continue
            raise
        created.append(name)
    return created


def bus_exists(eventbridge_client: Any, name: str) -> bool:
    from alibabacloud_eventbridge20200401 import models as m

    try:
        _eventbridge_call(eventbridge_client, "GetEventBus", eventbridge_client.get_event_bus,
                          m.GetEventBusRequest(event_bus_name=name))  # fmt: skip
    except CloudError as exc:
        if exc.code in ("EventBusNotExist", "EventBusNotExisted") or exc.status == 404:
            return False
        raise
    return True


def delete_buses(eventbridge_client: Any, names: Iterable[str]) -> dict[str, str]:
    """DeleteEventBus for each: name -> "deleted", "absent", or "kept: <Code: Message>" (e.g. rules of yours
    still on it)."""
    from alibabacloud_eventbridge20200401 import models as m

    outcome = {}
    for name in dict.fromkeys(names):
        try:
            _eventbridge_call(eventbridge_client, "DeleteEventBus", eventbridge_client.delete_event_bus,
                              m.DeleteEventBusRequest(event_bus_name=name))  # fmt: skip
            outcome[name] = "deleted"
        except CloudError as exc:
            if exc.code in ("EventBusNotExist", "EventBusNotExisted"):
                outcome[name] = "absent"
            else:
                outcome[name] = f"kept: {exc.code}: {exc.message}"
    return outcome
