"""Deployer: plan, apply, follow and destroy one stack — the steps of plan.py, upload.py, stack.py and destroy.py in
one object. apply(plan) makes it so, in order: buses, bucket, uploads, CreateStack or UpdateStack, follow.
It never prints: progress goes to `on_step` / `on_event` (deploy/cli.py prints)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bakery.errors import CloudError
from bakery_tools.deploy.buses import ensure_buses
from bakery_tools.deploy.clients import CloudClients, Step
from bakery_tools.deploy.destroy import Destroying
from bakery_tools.deploy.plan import Plan, Planning
from bakery_tools.deploy.settings import DeploySettings
from bakery_tools.deploy.stack import POLL_SECONDS, STACK_TYPE, FollowResult, StackEvent, client_token, operation_of


@dataclass
class DeployResult:
    plan: Plan
    action: str  # create | update | none
    buses_created: list[str]
    bucket_created: bool
    uploaded: list[str]
    follow: FollowResult | None
    stack_id: str

    @property
    def ok(self) -> bool:
        return self.follow is None or self.follow.ok


class Deployer(Planning, Destroying):
    """Plan, apply, follow and destroy one stack. `clients` defaults to the ones `settings` name."""

    def __init__(
        self,
        settings: DeploySettings,
        *,
        clients: CloudClients | None = None,
        package_cache: Path | None = None,
        on_step: Callable[[Step], None] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.settings = settings
        self._clients = clients
        self.package_cache = package_cache
        self.on_step = on_step or (lambda step: None)
        self.poll_seconds = poll_seconds

    def apply(self, plan: Plan, on_event: Callable[[StackEvent, int, int], None] | None = None) -> DeployResult:
        """Make it so: buses, bucket, uploads, then CreateStack or UpdateStack, followed to its end."""
        settings = self.settings
        if plan.stack is not None and plan.action == "busy":
            self.on_step(Step("stack-busy", plan.stack.name, {"status": plan.stack.status}))
            history = self.stack_events(plan.stack.stack_id)  # show the operation in progress, not the history
            starts = [i for i, e in enumerate(history) if e.resource_type == STACK_TYPE and e.status.endswith(
                "_IN_PROGRESS")]  # fmt: skip
            seen = {e.event_id for e in history[: starts[-1]]} if starts else set()
            waited = self.follow(plan.stack.stack_id, operation_of(plan.stack.status), seen, on_event,
                                 total=plan.resource_count)  # fmt: skip
            if waited.timed_out:
                return DeployResult(plan, "busy", [], False, [], waited, plan.stack.stack_id)
            plan = self.plan()  # what is deployed now decides what is left to do
        created = ensure_buses(self.clients.eventbridge, plan.buses_to_create,
                               description=f"Bakery event bus (stack {settings.stack}, made by bakery deploy)")  # fmt: skip
        for bus in plan.buses:
            self.on_step(Step("bus-created" if bus in created else "bus-exists", bus))
        bucket_created = self.ensure_bucket(plan.bucket, exists=plan.bucket_exists)
        uploaded = self.upload(plan.bucket, plan.artifacts, bucket_created=bucket_created)

        body_hash = hashlib.sha256(plan.template_body.encode()).hexdigest()
        params_hash = hashlib.sha256(json.dumps(plan.parameters, sort_keys=True).encode()).hexdigest()
        if plan.stack is None:
            self.on_step(Step("stack-create", settings.stack, {"resources": plan.resource_count}))
            parts = [settings.stack, plan.code_prefix, body_hash, params_hash, str(settings.timeout)]
            stack_id = self._create_stack(plan, client_token(*parts))
            for _ in range(5):  # the same token after a destroy names the deleted stack: salt it with that id
                made = self.get_stack(stack_id)
                if made is None or made.status != "DELETE_COMPLETE":
                    break
                parts.append(stack_id)
                stack_id = self._create_stack(plan, client_token(*parts))
            followed = self.follow(stack_id, "create", set(), on_event, total=plan.resource_count)
            return DeployResult(plan, "create", created, bucket_created, uploaded, followed, stack_id)

        stack_id = plan.stack.stack_id
        if plan.action == "none":
            self.on_step(Step("no-changes", settings.stack, {"status": plan.stack.status}))
            return DeployResult(plan, "none", created, bucket_created, uploaded, None, stack_id)
        seen = {e.event_id for e in self.stack_events(stack_id)}
        token = client_token(
            stack_id, plan.code_prefix, body_hash, params_hash, str(settings.timeout), plan.stack.updated
        )
        self.on_step(Step("stack-update", settings.stack, {"changes": len(plan.changes)}))
        try:
            self._update_stack(plan, stack_id, token)
        except CloudError as exc:
            if exc.code == "NotSupported" and "completely same stack" in exc.message:
                self.on_step(Step("no-changes", settings.stack, {"status": plan.stack.status, "ros": exc.message}))
                return DeployResult(plan, "none", created, bucket_created, uploaded, None, stack_id)
            raise
        touched = {c.path.split(".")[0].split("[")[0] for c in plan.changes} & set(json.loads(plan.template_body)[
            "Resources"]) | {c.path for c in plan.changes if c.op == "-" and "." not in c.path}  # fmt: skip
        followed = self.follow(stack_id, "update", seen, on_event, total=len(touched) or plan.resource_count)
        return DeployResult(plan, "update", created, bucket_created, uploaded, followed, stack_id)
