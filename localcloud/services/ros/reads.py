"""ROS's reads: GetStack, ListStacks, ListStackEvents, ListStackResources and GetTemplate."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError
from localcloud.services.base import api
from localcloud.services.ros.models import _OUTPUT_STATES, _PSEUDO, Stack, _missing_one_of, _Spec
from localcloud.wire import Params, paginate

if TYPE_CHECKING:
    from localcloud.services.ros import RosService


class StackReadsMixin:
    """GetStack, ListStacks, ListStackEvents, ListStackResources and GetTemplate."""

    @api("GetStack")
    def get_stack(self: RosService, p: Params) -> dict[str, Any]:
        self._region(p)
        stack = self._stack(p, allow_deleted=True)  # ROS still answers for a deleted stack's id
        description = str(stack.spec.document.get("Description", "No description given"))
        body: dict[str, Any] = {
            **self._summary(stack),
            "Description": description,
            "TemplateDescription": description,
            "Parameters": self._parameters_json(stack.spec, stack.name, stack.stack_id),
            "NotificationURLs": [],
            "StackDriftStatus": "NOT_CHECKED",
        }
        if stack.ram_role_name:
            body["RamRoleName"] = stack.ram_role_name
        if stack.spec.template_url:
            body["TemplateURL"] = stack.spec.template_url
        if (p.str("OutputOption") or "Enabled") == "Enabled" and stack.status in _OUTPUT_STATES:
            body["Outputs"] = copy.deepcopy(stack.outputs)
        return body

    def _summary(self: RosService, stack: Stack) -> dict[str, Any]:
        """The fields GetStack and ListStacks share."""
        summary: dict[str, Any] = {
            "StackId": stack.stack_id,
            "StackName": stack.name,
            "StackType": "ROS",
            "RegionId": self.cloud.region,
            "Status": stack.status,
            "StatusReason": stack.status_reason,
            "CreateTime": self._time(stack.create_time),
            "DisableRollback": stack.disable_rollback,
            "TimeoutInMinutes": stack.timeout_minutes,
            "DeletionProtection": stack.deletion_protection,
            "ServiceManaged": False,
            "Tags": copy.deepcopy(stack.tags),
        }
        if stack.update_time is not None:
            summary["UpdateTime"] = self._time(stack.update_time)
        return summary

    def _parameters_json(self: RosService, spec: _Spec, stack_name: str, stack_id: str) -> list[dict[str, str]]:
        """Every parameter with its value, then ROS's pseudo parameters (ALIYUN::Region ...)."""
        declared = spec.document.get("Parameters") or {}
        out = []
        for key, value in spec.values.items():
            decl = declared.get(key) if isinstance(declared.get(key), dict) else {}
            no_echo = str((decl or {}).get("NoEcho", "false")).lower() == "true"
            out.append({"ParameterKey": key, "ParameterValue": "****" if no_echo else value})
        pseudo = self._pseudo(stack_name, stack_id)
        out.extend({"ParameterKey": key, "ParameterValue": pseudo[key]} for key in _PSEUDO)
        return out

    @api("ListStacks")
    def list_stacks(self: RosService, p: Params) -> dict[str, Any]:
        self._region(p)
        page_number = p.int("PageNumber", 1, low=1) or 1
        page_size = p.int("PageSize", 10, low=1, high=50) or 10
        names = set(p.list("StackName"))
        statuses = set(p.list("Status"))
        ids = set(p.list("StackIds")) | ({p.str("StackId")} if p.str("StackId") else set())
        tags = self._tags(p, "Tag")
        stacks = []
        for stack in reversed(list(self.stacks.values())):  # newest first (stacks are kept in creation order)
            if stack.deleted and "DELETE_COMPLETE" not in statuses:
                continue  # deleted stacks are listed only when asked for by status (UNCONFIRMED)
            if names and stack.name not in names:
                continue
            if statuses and stack.status not in statuses:
                continue
            if ids and stack.stack_id not in ids:
                continue
            if any(tag not in stack.tags and not (tag["Value"] == "" and any(t["Key"] == tag["Key"] for t in stack.tags))
                   for tag in tags):  # fmt: skip
                continue
            stacks.append(self._summary(stack))
        return {
            "Stacks": paginate(stacks, page_number, page_size),
            "TotalCount": len(stacks),
            "PageNumber": page_number,
            "PageSize": page_size,
        }

    @api("ListStackEvents")
    def list_stack_events(self: RosService, p: Params) -> dict[str, Any]:
        self._region(p)
        stack = self._stack(p, allow_deleted=True)
        page_number = p.int("PageNumber", 1, low=1) or 1
        page_size = p.int("PageSize", 10, low=1, high=50) or 10
        logical_ids, types, statuses = (
            set(p.list("LogicalResourceId")),
            set(p.list("ResourceType")),
            set(p.list("Status")),
        )
        events = [
            {
                "EventId": e.event_id,
                "StackId": stack.stack_id,
                "StackName": stack.name,
                "LogicalResourceId": e.logical_id,
                "PhysicalResourceId": e.physical_id,
                "ResourceType": e.resource_type,
                "Status": e.status,
                "StatusReason": e.reason,
                "CreateTime": self._time(e.time),
            }
            for e in reversed(stack.events)  # newest first, as the console shows them (UNCONFIRMED for the API)
            if (not logical_ids or e.logical_id in logical_ids)
            and (not types or e.resource_type in types)
            and (not statuses or e.status in statuses)
        ]
        return {
            "Events": paginate(events, page_number, page_size),
            "TotalCount": len(events),
            "PageNumber": page_number,
            "PageSize": page_size,
        }

    @api("ListStackResources")
    def list_stack_resources(self: RosService, p: Params) -> dict[str, Any]:
        self._region(p)
        stack = self._stack(p, allow_deleted=True)
        resources = []
        for r in stack.resources.values():
            if r.status == "DELETE_COMPLETE":
                continue
            entry = {
                "LogicalResourceId": r.logical_id,
                "PhysicalResourceId": r.physical_id,
                "ResourceType": r.type,
                "Status": r.status,
                "StatusReason": r.status_reason,
                "StackId": stack.stack_id,
                "StackName": stack.name,
                "CreateTime": self._time(r.create_time if r.create_time is not None else stack.create_time),
                "ResourceDriftStatus": "NOT_CHECKED",
            }
            if r.update_time is not None:
                entry["UpdateTime"] = self._time(r.update_time)
            resources.append(entry)
        return {"Resources": resources}

    @api("GetTemplate")
    def get_template(self: RosService, p: Params) -> dict[str, Any]:
        self._region(p, required=False)
        if "StackId" not in p:
            for other in ("ChangeSetId", "StackGroupName", "TemplateId"):
                if other in p:  # none of these exist in this local cloud
                    raise ApiError("TemplateNotFound", f"The Template ({p.str(other)}) could not be found.", 404)
            raise _missing_one_of(("StackId", "ChangeSetId", "StackGroupName", "TemplateId"))
        stack = self._stack(p, allow_deleted=True)
        p.choice("TemplateStage", ("Processed", "Original"), "Processed", code="InvalidParameter")
        return {"StackId": stack.stack_id, "RegionId": self.cloud.region, "TemplateBody": stack.spec.body}
