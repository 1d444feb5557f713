"""A stack operation on the virtual clock: one resource step after another, each with its stack events; then the
functions brought up through the FC service, or a failure and (unless DisableRollback) the rollback."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError
from localcloud.services.ros.models import (
    _FUNCTION,
    _NAME_PROPERTY,
    _ROLE,
    _RULE,
    CREATE_SECONDS,
    DEFAULT_SECONDS,
    DELETE_SECONDS,
    STACK_SECONDS,
    STACK_TYPE,
    Stack,
    StackEvent,
    StackResource,
    _Operation,
    _ResourceFailure,
    _Spec,
    _Step,
)

if TYPE_CHECKING:
    from localcloud.services.ros import RosService


class StackEngineMixin:
    """Stack operations on the virtual clock: resource steps, their events, finishing, failing and rolling back."""

    def _event(
        self: RosService, stack: Stack, logical_id: str, physical_id: str, kind: str, status: str, reason: str
    ) -> None:
        stack.events.append(
            StackEvent(self.cloud.ids.uuid(), logical_id, physical_id, kind, status, reason, self.cloud.clock.now)
        )

    def _stack_status(
        self: RosService, stack: Stack, status: str, event_reason: str, status_reason: str | None = None
    ) -> None:
        stack.status = status
        stack.status_reason = event_reason if status_reason is None else status_reason
        self._event(stack, stack.name, stack.stack_id, STACK_TYPE, status, event_reason)

    def _begin(self: RosService, stack: Stack, operation: _Operation, status: str, reason: str) -> None:
        stack.operation = operation
        self._stack_status(stack, status, reason)
        self._after(STACK_SECONDS, lambda: self._next(stack), f"ros:{stack.name}:{operation.kind}")

    def _after(self: RosService, seconds: float, callback: Callable[[], None], label: str) -> None:
        self.cloud.clock.call_later(seconds, callback, label)

    def _next(self: RosService, stack: Stack) -> None:
        """Start the operation's next resource step, or finish the operation."""
        operation = stack.operation
        assert operation is not None
        pending = operation.steps[len(operation.done) :]
        if not pending:
            self._finish(stack)
            return
        step = pending[0]
        resource = stack.resources.get(step.logical_id)
        if step.action == "CREATE" and (
            resource is None
            or resource.status == "DELETE_COMPLETE"
            or resource.type != self._target_type(stack, operation, step.logical_id)
        ):
            resource = stack.resources[step.logical_id] = self._blank(stack, operation, step.logical_id)
        assert resource is not None
        if step.action == "CREATE":
            resource.create_time = self.cloud.clock.now
        resource.status = f"{step.action}_IN_PROGRESS"
        resource.status_reason = "state changed"
        self._event(stack, resource.logical_id, resource.physical_id, resource.type, resource.status, "state changed")
        seconds = (DELETE_SECONDS if step.action == "DELETE" else CREATE_SECONDS).get(resource.type, DEFAULT_SECONDS)
        self._after(seconds, lambda: self._complete(stack, step), f"ros:{stack.name}:{step.action}:{step.logical_id}")

    def _blank(self: RosService, stack: Stack, operation: _Operation, logical_id: str) -> StackResource:
        return StackResource(logical_id, self._target_type(stack, operation, logical_id))

    def _target_type(self: RosService, stack: Stack, operation: _Operation, logical_id: str) -> str:
        for spec in (operation.target, operation.previous, stack.spec):
            if spec is not None and logical_id in spec.properties:
                return spec.type_of(logical_id)
        return stack.resources[logical_id].type if logical_id in stack.resources else ""

    def _complete(self: RosService, stack: Stack, step: _Step) -> None:
        operation = stack.operation
        assert operation is not None
        resource = stack.resources[step.logical_id]
        try:
            if step.action == "DELETE":
                self._delete_resource(stack, resource)
            else:
                spec = self._spec_for_step(stack, operation)
                self._apply_resource(stack, operation, resource, spec)
        except _ResourceFailure as failure:
            resource.status = f"{step.action}_FAILED"
            resource.status_reason = failure.reason
            self._event(
                stack, resource.logical_id, resource.physical_id, resource.type, resource.status, failure.reason
            )
            operation.done.append(step)
            self._fail(stack, f"Resource {step.action} failed: {failure.reason}")
            return
        if step.action == "UPDATE":
            resource.update_time = self.cloud.clock.now
        resource.status = f"{step.action}_COMPLETE"
        resource.status_reason = "state changed"
        self._event(stack, resource.logical_id, resource.physical_id, resource.type, resource.status, "state changed")
        operation.done.append(step)
        self._next(stack)

    def _spec_for_step(self: RosService, stack: Stack, operation: _Operation) -> _Spec:
        if operation.kind in ("CREATE", "UPDATE"):
            assert operation.target is not None
            return operation.target
        assert operation.previous is not None  # ROLLBACK: back to the previous spec
        return operation.previous

    # -- per resource type -----------------------------------------------------------------------------

    def _apply_resource(
        self: RosService, stack: Stack, operation: _Operation, resource: StackResource, spec: _Spec
    ) -> None:
        """Create or update one resource from `spec`; raises _ResourceFailure with ROS's reason."""
        lid, kind = resource.logical_id, resource.type
        props = spec.properties[lid]
        name = str(props.get(_NAME_PROPERTY.get(kind, ""), "") or lid)
        if kind == _ROLE:  # RAM role names are unique in the account (case-insensitive)
            owner = self.claims.get(("role", name.lower()))
            if owner is not None and owner != f"{stack.stack_id}/{lid}":
                raise self._failure(lid, ApiError("EntityAlreadyExists.Role", f"The role already exists: {name}.", 409))
            self._release(resource, keep=("role", name.lower()))
            self._claim(stack, resource, ("role", name.lower()))
        elif kind == _RULE:
            bus = str(props.get("EventBusName", "") or "")
            try:
                self.cloud.eventbridge._bus(bus)  # EventBridge's own answer for a missing bus
            except ApiError as error:
                raise self._failure(lid, error) from None
        elif kind == _FUNCTION:
            # The code in use was fetched for the committed spec; the same Code property reuses it (no fetch).
            committed = (
                stack.spec.properties.get(lid)
                if lid in stack.spec.properties and stack.spec.type_of(lid) == _FUNCTION
                else None
            )
            in_use = lid in stack.code_dirs and committed is not None and committed.get("Code") == props.get("Code")
            if not in_use:
                operation.code_dirs[lid] = self._fetch_code(stack, lid, props.get("Code"))
        resource.physical_id = name
        resource.properties = copy.deepcopy(props)

    def _claim(self: RosService, stack: Stack, resource: StackResource, claim: tuple[str, str]) -> None:
        """An account-level name (a RAM role) belongs to one stack resource at a time."""
        self.claims[claim] = f"{stack.stack_id}/{resource.logical_id}"
        if claim not in resource.claims:
            resource.claims.append(claim)

    def _release(self: RosService, resource: StackResource, keep: tuple[str, str] | None = None) -> None:
        """Give back the names a resource holds (all of them, or all but `keep` when it was renamed)."""
        for claim in [c for c in resource.claims if c != keep]:
            self.claims.pop(claim, None)
            resource.claims.remove(claim)

    def _delete_resource(self: RosService, stack: Stack, resource: StackResource) -> None:
        self._release(resource)

    def _failure(self: RosService, logical_id: str, error: ApiError) -> _ResourceFailure:
        """How ROS words a service error on a resource: exception, resource path, HTTP code, message."""
        kind = "ServerException" if error.status >= 500 else "ClientException"
        request_id = self.cloud.ids.request_id()
        return _ResourceFailure(
            f"{kind}: resources.{logical_id}: code: {error.status}, {error.code}: {error.message} "
            f"request id: {request_id}"
        )

    # -- finishing, failing, rolling back --------------------------------------------------------------

    def _finish(self: RosService, stack: Stack) -> None:
        operation = stack.operation
        assert operation is not None
        kind = operation.kind
        if kind in ("CREATE", "UPDATE"):
            assert operation.target is not None
            code_dirs = {**stack.code_dirs, **operation.code_dirs}
            try:
                self._bring_up(stack, operation.target, code_dirs, operation)
            except _ResourceFailure as failure:
                self._fail(stack, failure.reason)
                return
            kept = {lid: d for lid, d in code_dirs.items() if operation.target.properties.get(lid) is not None}
            for directory in {*stack.code_dirs.values(), *operation.code_dirs.values()} - set(kept.values()):
                shutil.rmtree(directory, ignore_errors=True)  # code of replaced or removed functions
            stack.code_dirs = kept
            stack.spec = operation.target
            stack.outputs = copy.deepcopy(stack.spec.outputs)
            stack.resources = {lid: stack.resources[lid] for lid in operation.target.order if lid in stack.resources}
            stack.operation = None
            self._stack_status(stack, f"{kind}_COMPLETE", f"Stack {kind} completed successfully")
        elif kind == "DELETE":
            if stack.deployed:
                self._undeploy(stack)
            self._drop_code(stack)
            stack.resources = {}
            stack.operation = None
            self._stack_status(stack, "DELETE_COMPLETE", "Stack DELETE completed successfully")
        else:  # CREATE_ROLLBACK / ROLLBACK
            reason = stack.status_reason
            if kind == "CREATE_ROLLBACK":
                if stack.deployed:
                    self._undeploy(stack)
                self._drop_code(stack)
                stack.resources = {}
            else:
                assert operation.previous is not None
                for directory in operation.discard:
                    shutil.rmtree(directory, ignore_errors=True)
                stack.code_dirs.update(operation.code_dirs)
                stack.spec = operation.previous
                stack.resources = {lid: stack.resources[lid] for lid in stack.spec.order if lid in stack.resources}
                if operation.deploy_attempted:  # the FC service may hold half of the new deployment
                    try:
                        self._bring_up(stack, stack.spec, stack.code_dirs, None)
                    except _ResourceFailure as failure:
                        stack.operation = None
                        self._stack_status(stack, "ROLLBACK_FAILED", f"Stack ROLLBACK failed: {failure.reason}")
                        return
                stack.outputs = copy.deepcopy(stack.spec.outputs)
            stack.operation = None
            # The stack keeps saying which resource failed and why (the rollback event says it completed).
            self._stack_status(stack, f"{kind}_COMPLETE", "Stack ROLLBACK completed successfully", reason)

    def _fail(self: RosService, stack: Stack, reason: str) -> None:
        operation = stack.operation
        assert operation is not None
        kind = operation.kind
        if kind in ("CREATE_ROLLBACK", "ROLLBACK", "DELETE"):  # deletes here do not fail; keep the shape honest
            stack.operation = None
            self._stack_status(stack, f"{kind}_FAILED", reason)
            return
        self._stack_status(stack, f"{kind}_FAILED", reason)
        if stack.disable_rollback:
            # What was made stays; an update stays on the new template, half applied.
            if kind == "UPDATE":
                assert operation.target is not None
                stack.spec = operation.target
                stack.code_dirs.update(operation.code_dirs)
            elif kind == "CREATE":
                stack.code_dirs.update(operation.code_dirs)
            stack.operation = None
            return
        self._after(STACK_SECONDS, lambda: self._rollback(stack, reason), f"ros:{stack.name}:rollback")

    def _rollback(self: RosService, stack: Stack, reason: str) -> None:
        operation = stack.operation
        assert operation is not None
        steps: list[_Step] = []
        for step in reversed(operation.done):
            if step.action == "CREATE":
                if step.previous is not None and step.previous.status not in ("INIT_COMPLETE", "DELETE_COMPLETE"):
                    steps.append(_Step("UPDATE", step.logical_id))  # it existed before (a failed one): restore
                else:
                    steps.append(_Step("DELETE", step.logical_id))
            elif step.action == "UPDATE":
                steps.append(_Step("UPDATE", step.logical_id, step.previous))
            elif step.action == "DELETE" and operation.previous and step.logical_id in operation.previous.properties:
                steps.append(_Step("CREATE", step.logical_id, step.previous))
        if operation.kind == "CREATE":  # the fetched code goes with the stack's directory at the end
            stack.operation = _Operation("CREATE_ROLLBACK", steps, None)
            self._stack_status(stack, "CREATE_ROLLBACK_IN_PROGRESS", "Stack ROLLBACK started", reason)
        else:
            rollback = _Operation("ROLLBACK", steps, None, previous=operation.previous)
            rollback.discard = list(operation.code_dirs.values())
            rollback.deploy_attempted = operation.deploy_attempted
            stack.operation = rollback
            self._stack_status(stack, "ROLLBACK_IN_PROGRESS", "Stack ROLLBACK started", reason)
        self._after(STACK_SECONDS, lambda: self._next(stack), f"ros:{stack.name}:rollback-steps")

    # -- the FC service --------------------------------------------------------------------------------

    def _bring_up(
        self: RosService, stack: Stack, spec: _Spec, code_dirs: dict[str, Path], operation: _Operation | None
    ) -> None:
        """Load the template with the unpacked code and hand it to the FC service (if the cloud has one)."""
        if operation is not None:
            operation.deploy_attempted = True

        def locate(logical_id: str, _code: dict[str, Any]) -> Path | None:
            return code_dirs.get(logical_id)

        try:
            template = self._load(spec.body, spec.given, stack_name=stack.name, code_locator=locate)
        except ApiError as error:
            raise _ResourceFailure(f"{error.code}: {error.message}") from None
        fc = self.cloud.services.get("fc")
        if fc is None:
            return
        if not template.functions:  # nothing to run: only stop what an earlier template ran
            if stack.deployed:
                self._undeploy(stack)
            return
        stack.deployed = True  # from the first attempt: a half-done deploy is undeployed like a whole one
        try:
            fc.deploy(stack.name, template)
        except Exception as exc:  # the FC service refused the functions: the stack operation fails
            raise _ResourceFailure(f"FC deploy failed: {type(exc).__name__}: {exc}") from None

    def _undeploy(self: RosService, stack: Stack) -> None:
        fc = self.cloud.services.get("fc")
        if fc is not None:
            fc.undeploy(stack.name)
        stack.deployed = False

    def _drop_code(self: RosService, stack: Stack) -> None:
        stack.code_dirs.clear()
        if stack.operation is not None:
            stack.operation.code_dirs.clear()
        if self._work is not None:
            shutil.rmtree(self._work / stack.stack_id, ignore_errors=True)
