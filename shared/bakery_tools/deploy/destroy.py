"""`bakery destroy`: DeleteStack followed to DELETE_COMPLETE, then the custom buses (unless --keep-buses), then what it
never deletes listed — the images Bakery made and their snapshots, instances still tagged bakery:*, the code objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bakery import tags
from bakery.errors import BakeFailure, CloudError, RetryableError
from bakery_tools.deploy.buses import bus_exists, delete_buses
from bakery_tools.deploy.clients import Step
from bakery_tools.deploy.errors import DeployError
from bakery_tools.deploy.settings import DeploySettings
from bakery_tools.deploy.stack import DeployedStack, FollowResult, StackEvent, Stacks
from bakery_tools.deploy.template import (
    BUS_PARAMETERS,
    PLAN_ACCOUNT_ID,
    declared_parameters,
    parse_template,
    resolved_parameters,
)

# Instance tags that say Bakery touched an instance (DescribeInstances filters need a key: one query each).
INSTANCE_TAG_KEYS = (tags.TRIGGER, tags.BAKE_ID, tags.LAST_IMAGE, tags.LAST_ERROR, tags.FAMILY)


@dataclass
class DestroyPlan:
    settings: DeploySettings
    stack: DeployedStack | None
    buses: list[str]  # the template's buses that exist now
    bucket: str
    prefix: str  # the objects under it are what deploys uploaded
    resource_count: int


@dataclass
class DestroyResult:
    plan: DestroyPlan
    follow: FollowResult | None
    buses: dict[str, str]  # name -> deleted | absent | kept: ... | left (--keep-buses)
    images: list[dict[str, Any]]
    snapshots: list[str]
    instances: list[dict[str, Any]]
    objects: list[tuple[str, int]]
    notes: list[str]  # what could not be looked at, and why

    @property
    def ok(self) -> bool:
        stack_ok = self.follow is None or self.follow.ok
        return stack_ok and not any(v.startswith("kept") for v in self.buses.values())


class Destroying(Stacks):
    """What destroy would delete, deleting it, and what is left (a step of Deployer)."""

    def destroy_plan(self) -> DestroyPlan:
        """What destroy would delete: the stack (if any) and the buses its template uses that exist."""
        stack = self.find_stack(with_template=True)
        count = 0
        if stack is not None:
            buses, count = self._deployed_buses(stack)
        else:
            buses = self._local_buses()
        existing = [b for b in buses if bus_exists(self.clients.eventbridge, b)]
        bucket = (stack.parameters.get("CodeBucket") if stack else "") or self.settings.bucket
        return DestroyPlan(self.settings, stack, existing, bucket, self.settings.prefix, count)

    def _deployed_buses(self, stack: DeployedStack) -> tuple[list[str], int]:
        from localcloud.fc.template import TemplateError, load_template_text, skip_code

        try:
            document = parse_template(stack.template_body or "", "the deployed template")
        except DeployError:
            return [v for k, v in stack.parameters.items() if k in BUS_PARAMETERS], 0
        declared = declared_parameters(document)
        given = {k: v for k, v in stack.parameters.items() if k in declared}
        try:
            loaded = load_template_text(stack.template_body or "", given, region=self.settings.region,
                                        account_id=PLAN_ACCOUNT_ID, stack_name=stack.name,
                                        code_locator=skip_code, name="the deployed template")  # fmt: skip
            buses = list(loaded.buses)
        except TemplateError:
            buses = [v for k, v in given.items() if k in BUS_PARAMETERS]
        return buses, len(document["Resources"])

    def _local_buses(self) -> list[str]:
        """Without a stack: the buses the local template would use with these settings' parameters."""
        from localcloud.fc.template import TemplateError, load_template_text, skip_code

        try:
            name, text, document = self.read_template()
        except DeployError:
            return []
        declared = declared_parameters(document)
        given = {k: v for k, v in self.settings.parameters.items() if k in declared}
        for key, spec in declared.items():
            if key not in given and "Default" not in spec:
                given[key] = f"{self.settings.prefix}/{'0' * 12}" if key == "CodePrefix" else "unset"
        try:
            return list(load_template_text(text, given, region=self.settings.region, account_id=PLAN_ACCOUNT_ID,
                                           stack_name=self.settings.stack, code_locator=skip_code,
                                           name=name).buses)  # fmt: skip
        except TemplateError:
            return [resolved_parameters(document, given)[k] for k in BUS_PARAMETERS if k in declared]

    def destroy(
        self,
        plan: DestroyPlan,
        *,
        keep_buses: bool = False,
        on_event: Callable[[StackEvent, int, int], None] | None = None,
    ) -> DestroyResult:
        """DeleteStack, followed to DELETE_COMPLETE; then the buses (unless keep_buses); then what is left."""
        from alibabacloud_ros20190910 import models as m

        followed = None
        if plan.stack is not None:
            seen = {e.event_id for e in self._events_or_none(plan.stack.stack_id)}
            self.on_step(Step("stack-deleting", plan.stack.name, {"status": plan.stack.status}))
            self._ros("DeleteStack", m.DeleteStackRequest(region_id=self.settings.region,
                                                          stack_id=plan.stack.stack_id))  # fmt: skip
            followed = self.follow(plan.stack.stack_id, "delete", seen, on_event, total=plan.resource_count)
        buses: dict[str, str] = {}
        if followed is None or followed.ok:
            if keep_buses:
                buses = dict.fromkeys(plan.buses, "left (--keep-buses)")
            else:
                buses = delete_buses(self.clients.eventbridge, plan.buses)
                self.on_step(Step("buses-deleted", "", {"buses": buses}))
        else:
            buses = dict.fromkeys(plan.buses, "left (the stack is not deleted)")
        result = DestroyResult(plan, followed, buses, [], [], [], [], [])
        self._leftovers(result)
        return result

    def _leftovers(self, result: DestroyResult) -> None:
        """What destroy never deletes: images Bakery made (tag bakery:bake-id, any status) and their snapshots,
        instances still tagged bakery:*, the code objects in OSS."""
        try:
            images = self.clients.ecs.images_tagged(tags.BAKE_ID)
            result.images = [{"imageId": i.image_id, "name": i.name, "status": i.status, "family": i.family or None,
                              "bakeId": i.tags.get(tags.BAKE_ID), "snapshotIds": list(i.snapshot_ids)}
                             for i in images]  # fmt: skip
            result.snapshots = sorted({s for i in images for s in i.snapshot_ids})
            instances: dict[str, dict[str, str]] = {}
            for key in INSTANCE_TAG_KEYS:
                for instance in self.clients.ecs.instances_tagged(key):
                    instances[instance.instance_id] = {k: v for k, v in instance.tags.items()
                                                       if k.startswith("bakery:")}  # fmt: skip
            result.instances = [{"instanceId": k, "tags": v} for k, v in sorted(instances.items())]
        except (CloudError, BakeFailure, RetryableError) as exc:
            result.notes.append(f"could not list Bakery's images and tagged instances: {exc}")
        if result.plan.bucket:
            try:
                result.objects = self.clients.oss.list_objects(result.plan.bucket, f"{result.plan.prefix}/")
            except (CloudError, BakeFailure, RetryableError) as exc:
                result.notes.append(f"could not list the code objects in oss://{result.plan.bucket}: {exc}")
