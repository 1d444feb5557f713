"""The ROS stack: find it, CreateStack / UpdateStack (the template sent as JSON, template.py), and follow an operation
— ListStackEvents + GetStack until a terminal status; waiting advances a local cloud's clock instead of sleeping."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bakery.errors import CloudError
from bakery_tools.deploy.clients import Engine

if TYPE_CHECKING:
    from bakery_tools.deploy.plan import Plan

POLL_SECONDS = 5.0
ROLLBACK_GRACE_POLLS = 2  # polls a *_FAILED status gets to turn into the rollback that follows it
FOLLOW_MARGIN_SECONDS = 60.0  # ROS fails the stack at TimeoutInMinutes: follow a little longer to see it happen
SUCCESS = {"create": "CREATE_COMPLETE", "update": "UPDATE_COMPLETE", "delete": "DELETE_COMPLETE"}
# A stack left in one of these by a failed operation is updated even when nothing changed: UpdateStack
# makes what is missing (after CREATE_ROLLBACK_COMPLETE, nothing exists).
RETRY_STATUSES = ("CREATE_FAILED", "CREATE_ROLLBACK_COMPLETE", "CREATE_ROLLBACK_FAILED", "UPDATE_FAILED",
                  "ROLLBACK_FAILED", "DELETE_FAILED")  # fmt: skip
STACK_TYPE = "ALIYUN::ROS::Stack"  # the ResourceType of a stack's own events


def client_token(*parts: str) -> str:
    """A ClientToken (<= 64 characters of [A-Za-z0-9-]) derived from `parts`: a retried call is the same call."""
    return "bakery-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


@dataclass(frozen=True)
class StackEvent:
    event_id: str
    time: str  # ROS CreateTime (UTC, ISO 8601 without Z)
    status: str
    resource_type: str
    logical_id: str
    physical_id: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "time": self.time, "status": self.status, "resourceType": self.resource_type,
                "logicalResourceId": self.logical_id, "physicalResourceId": self.physical_id,
                "statusReason": self.reason}  # fmt: skip


@dataclass
class DeployedStack:
    stack_id: str
    name: str
    status: str
    status_reason: str = ""
    parameters: dict[str, str] = field(default_factory=dict)  # pseudo parameters left out
    outputs: list[dict[str, Any]] = field(default_factory=list)
    template_body: str | None = None
    updated: str = ""


@dataclass
class FollowResult:
    operation: str  # create | update | delete
    status: str
    status_reason: str
    events: list[StackEvent]
    failed: list[StackEvent]  # events of this operation whose status ends in _FAILED
    timed_out: bool
    elapsed: float  # seconds (simulated for a local cloud)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.status == SUCCESS[self.operation]


class Stacks(Engine):
    """Reading, creating, updating and following the stack (a step of Deployer)."""

    def find_stack(self, *, with_template: bool = False) -> DeployedStack | None:
        """The stack named settings.stack (ListStacks by name; DELETE_COMPLETE ones are history), with its
        parameters and outputs (GetStack) and, when asked, its template (GetTemplate)."""
        from alibabacloud_ros20190910 import models as m

        region, name = self.settings.region, self.settings.stack
        body = self._ros("ListStacks", m.ListStacksRequest(region_id=region, stack_name=[name], page_size=50))
        live = [s for s in body.stacks or [] if s.stack_name == name and s.status != "DELETE_COMPLETE"]
        if not live:
            return None
        stack = self.get_stack(live[0].stack_id)
        if stack is not None and with_template:
            stack.template_body = self._ros("GetTemplate", m.GetTemplateRequest(
                region_id=region, stack_id=stack.stack_id)).template_body  # fmt: skip
        return stack

    def get_stack(self, stack_id: str) -> DeployedStack | None:
        from alibabacloud_ros20190910 import models as m

        try:
            body = self._ros("GetStack", m.GetStackRequest(region_id=self.settings.region, stack_id=stack_id))
        except CloudError as exc:
            if exc.code == "StackNotFound":
                return None
            raise
        parameters = {p.parameter_key: p.parameter_value or "" for p in body.parameters or []
                      if p.parameter_key and not p.parameter_key.startswith("ALIYUN::")}  # fmt: skip
        return DeployedStack(stack_id=body.stack_id or stack_id, name=body.stack_name or self.settings.stack,
                             status=body.status or "", status_reason=body.status_reason or "", parameters=parameters,
                             outputs=list(body.outputs or []), updated=body.update_time or body.create_time or "")  # fmt: skip

    def _create_stack(self, plan: Plan, token: str) -> str:
        from alibabacloud_ros20190910 import models as m

        return self._ros("CreateStack", m.CreateStackRequest(
            region_id=self.settings.region, stack_name=self.settings.stack, template_body=plan.template_body,
            parameters=[m.CreateStackRequestParameters(parameter_key=k, parameter_value=v)
                        for k, v in plan.parameters.items()],
            timeout_in_minutes=self.settings.timeout, client_token=token, disable_rollback=False)).stack_id  # fmt: skip

    # -- following ---------------------------------------------------------------------------------

    def _update_stack(self, plan: Plan, stack_id: str, token: str) -> None:
        from alibabacloud_ros20190910 import models as m

        self._ros("UpdateStack", m.UpdateStackRequest(
            region_id=self.settings.region, stack_id=stack_id, template_body=plan.template_body,
            parameters=[m.UpdateStackRequestParameters(parameter_key=k, parameter_value=v)
                        for k, v in plan.parameters.items()],
            timeout_in_minutes=self.settings.timeout, client_token=token))  # fmt: skip

    def stack_events(self, stack_id: str) -> list[StackEvent]:
        """Every event of the stack, oldest first (ListStackEvents, all pages)."""
        from alibabacloud_ros20190910 import models as m

        events: list[StackEvent] = []
        page = 1
        while True:
            body = self._ros("ListStackEvents", m.ListStackEventsRequest(
                region_id=self.settings.region, stack_id=stack_id, page_number=page, page_size=50))  # fmt: skip
            batch = body.events or []
            events += [StackEvent(e.event_id or "", e.create_time or "", e.status or "", e.resource_type or "",
                                  e.logical_resource_id or "", e.physical_resource_id or "", e.status_reason or "")
                       for e in batch]  # fmt: skip
            if not batch or page * 50 >= (body.total_count or 0):
                break
            page += 1
        # ROS lists newest first (the console does; the API docs do not say): unless the page is clearly oldest
        # first, reverse it, then order by time (stable: events within one second keep their order).
        if not (len(events) > 1 and events[0].time < events[-1].time):
            events.reverse()
        return sorted(events, key=lambda e: e.time)

    def follow(
        self,
        stack_id: str,
        operation: str,
        seen: set[str],
        on_event: Callable[[StackEvent, int, int], None] | None = None,
        *,
        total: int = 0,
    ) -> FollowResult:
        """Poll ListStackEvents and GetStack until the stack leaves *_IN_PROGRESS (or the timeout passes),
        calling `on_event(event, done, total)` for each new event, oldest first. Waiting advances a local
        cloud's clock instead of sleeping."""
        started = self.clients.elapsed
        deadline = started + self.settings.timeout * 60 + FOLLOW_MARGIN_SECONDS
        fresh: list[StackEvent] = []
        done: set[str] = set()

        def show_new_events() -> None:
            for event in self._events_or_none(stack_id):
                if event.event_id in seen:
                    continue
                seen.add(event.event_id)
                fresh.append(event)
                if event.status.endswith("_COMPLETE") and event.resource_type != STACK_TYPE:
                    done.add(event.logical_id)
                if on_event:
                    on_event(event, len(done), total)

        grace = ROLLBACK_GRACE_POLLS
        while True:
            show_new_events()
            stack = self.get_stack(stack_id)
            if stack is None:  # a deleted stack may vanish from GetStack: that is DELETE_COMPLETE
                status, reason = ("DELETE_COMPLETE", "") if operation == "delete" else ("NOT_FOUND", "stack vanished")
                return FollowResult(operation, status, reason, fresh, _failed(fresh), False,
                                    self.clients.elapsed - started)  # fmt: skip
            if not stack.status.endswith("_IN_PROGRESS"):
                if stack.status == f"{operation.upper()}_FAILED" and operation != "delete" and grace:
                    grace -= 1  # ROS rolls a failed create/update back: follow the rollback to its end
                    self.clients.wait(self.poll_seconds)
                    continue
                show_new_events()  # the last events may land together with the status
                return FollowResult(operation, stack.status, stack.status_reason, fresh, _failed(fresh), False,
                                    self.clients.elapsed - started, stack.outputs)  # fmt: skip
            if self.clients.elapsed >= deadline:
                return FollowResult(operation, stack.status, stack.status_reason, fresh, _failed(fresh), True,
                                    self.clients.elapsed - started)  # fmt: skip
            self.clients.wait(self.poll_seconds)

    def _events_or_none(self, stack_id: str) -> list[StackEvent]:
        try:
            return self.stack_events(stack_id)
        except CloudError as exc:
            if exc.code == "StackNotFound":
                return []
            raise

    # -- destroy -----------------------------------------------------------------------------------


def operation_of(status: str) -> str:
    """Which operation a status belongs to (ROLLBACK_* follows a failed create)."""
    for prefix, operation in (("UPDATE", "update"), ("DELETE", "delete"), ("CREATE", "create"), ("ROLLBACK", "create")):
        if status.startswith(prefix):
            return operation
    return "update"


def _failed(events: Sequence[StackEvent]) -> list[StackEvent]:
    """The resources that failed (the stack's own events repeat their reason: its StatusReason says it)."""
    return [e for e in events if e.status.endswith("_FAILED") and e.resource_type != STACK_TYPE]
