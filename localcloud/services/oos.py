"""Emulated OOS (2019-06-01): StartExecution, ListExecutions, CancelExecution, and a faithful
simulation of the public template ACS-ECS-RepairImage (alibaba-apis.md §3.4).

The simulation follows the template's tasks on the virtual clock: checkImage (own, Linux,
x86_64/arm64, Available image) → repair of the image's system snapshot on a temporary instance →
CreateImage named `repaired_<name>_<UTC %Y%m%d%H%M%S>` with DetectionStrategy=Standard and no
family, tags or description. Only the check items covered by `repairItems` are fixed. The
temporary repair instance is not modelled as an ECS instance; its cost is the repair time.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from localcloud.errors import ApiError, missing_parameter
from localcloud.services.base import Service, api
from localcloud.services.ecs.checks import REPAIR_ITEMS, failing_items, fixed_by
from localcloud.services.ecs.models import Disk
from localcloud.wire import Params

REPAIR_TEMPLATE = "ACS-ECS-RepairImage"
BASE_IMAGES = {
    "aliyun_3_x64_20G_alibase_20230727.vhd": "x86_64",
    "aliyun_3_arm64_20G_alibase_20230731.vhd": "arm64",
}
_REQUIRED = ("zoneId", "repairImageId", "baseImageId", "instanceType", "securityGroupId", "vSwitchId")
_OPTIONAL = ("regionId", "systemDiskCategory", "repairItems")
TERMINAL = ("Success", "Failed", "Cancelled")
# Template Platform mapping (Fn::Select in createImage): "Red Hat" is the one name that changes.
_PLATFORM_MAP = {"Red Hat": "RedHat"}


@dataclass
class Execution:
    execution_id: str
    template_name: str
    parameters: dict[str, Any]
    mode: str
    safety_check: str
    tags: dict[str, Any]
    description: str
    executed_by: str
    created_at: str
    created_epoch: float
    status: str = "Started"
    status_message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    end_date: str = ""
    current_task: str = ""
    client_token: str = ""
    timers: list[Any] = field(default_factory=list)
    caller: tuple[str, str] = ("", "")  # (access key, user agent) of StartExecution: the template acts as it

    def to_api(self, *, listing: bool, updated: str) -> dict[str, Any]:
        """The execution as StartExecution (`listing=False`) or ListExecutions (`listing=True`) shows it.

        The two SDK models differ, and so does this: StartExecution has `Parameters` as a JSON string and
        `LoopMode`; ListExecutions has `Parameters` as an object plus StatusReason, Category, Targets,
        ResourceStatus and WaitingStatus (alibaba-apis.md §3.1-3.2; was one shape for both, with fields
        neither SDK model knows)."""
        body: dict[str, Any] = {
            "ExecutionId": self.execution_id,
            "TemplateName": self.template_name,
            "TemplateId": "t-repairimage0001",
            "TemplateVersion": "v1",
            "Mode": self.mode,
            "SafetyCheck": self.safety_check,
            "Status": self.status,
            "StatusMessage": self.status_message,
            "Parameters": dict(self.parameters) if listing else json.dumps(self.parameters),
            "Outputs": json.dumps(self.outputs),
            "Counters": {"Total": 1, "Success": int(self.status == "Success"), "Failed": int(self.status == "Failed")},
            "Tags": dict(self.tags),
            "CurrentTasks": [] if self.status in TERMINAL else [
                {"TaskName": self.current_task, "TaskAction": "ACS::ExecuteAPI", "TaskExecutionId": f"task-{self.execution_id}"}
            ],
            "CreateDate": self.created_at,
            "StartDate": self.created_at,
            "EndDate": self.end_date,
            "UpdateDate": updated,
            "ExecutedBy": self.executed_by,
            "RamRole": "",
            "IsParent": False,
            "ParentExecutionId": "",
            "ResourceGroupId": "",
            "Description": self.description,
        }  # fmt: skip
        if listing:
            body.update(
                {"StatusReason": self.status_message, "Category": "image_manage", "Targets": "",
                 "ResourceStatus": "", "WaitingStatus": ""}
            )  # fmt: skip
        else:
            body["LoopMode"] = "Automatic"
        return body


class OosService(Service):
    name = "oos"
    product = "Oos"
    host = "oos.aliyuncs.com"

    def __init__(self, cloud: Any) -> None:
        super().__init__(cloud)
        self.executions: dict[str, Execution] = {}
        self.client_tokens: dict[str, str] = {}

    def state(self) -> dict[str, Any]:
        updated = self.cloud.clock.iso()
        return {"executions": [e.to_api(listing=True, updated=updated) for e in self.executions.values()]}

    # -- API -------------------------------------------------------------------------------------

    @api("StartExecution", write=True)
    def start_execution(self, p: Params) -> dict[str, Any]:
        """Only ACS-ECS-RepairImage is simulated; TemplateContent/TemplateURL are not processed.
        ClientToken: the same token returns the same execution (OOS semantics are UNCONFIRMED)."""
        self._region(p)
        template = p.str("TemplateName")
        if not template:
            raise missing_parameter("TemplateName")
        if template != REPAIR_TEMPLATE:
            raise ApiError(
                "EntityNotExists.Template",
                f"The specified template {template!r} does not exist (the local cloud simulates {REPAIR_TEMPLATE}).",
                404,
            )
        token = p.str("ClientToken")
        if token and token in self.client_tokens:
            existing = self.executions[self.client_tokens[token]]
            return {"Execution": existing.to_api(listing=False, updated=self.cloud.clock.iso())}
        parameters = p.json("Parameters", {}) or {}
        if not isinstance(parameters, dict):
            raise ApiError("InvalidParameter", "Parameters must be a JSON object.")
        parameters = self._validate_repair_parameters(parameters)
        mode = p.str("Mode", "Automatic") or "Automatic"
        if mode not in ("Automatic", "FailurePause", "Debug"):
            raise ApiError("InvalidParameter", f"Mode must be Automatic, FailurePause or Debug, got {mode!r}.")
        tags = p.json("Tags", {}) or {}
        cloud = self.cloud
        execution = Execution(
            execution_id="exec-" + cloud.ids.resource("x").removeprefix("x-"),
            template_name=template,
            parameters=parameters,
            mode=mode,
            safety_check=p.choice("SafetyCheck", ("ConfirmEveryHighRiskAction", "Skip"), "ConfirmEveryHighRiskAction")
            or "ConfirmEveryHighRiskAction",
            tags=tags if isinstance(tags, dict) else {},
            description=p.str("Description", "") or "",
            executed_by=f"{cloud.account_id}",
            created_at=cloud.clock.iso(),
            created_epoch=cloud.clock.now,
            current_task="checkImage",
            client_token=token or "",
            caller=cloud.caller,
        )
        self.executions[execution.execution_id] = execution
        if token:
            self.client_tokens[token] = execution.execution_id
        self._simulate_repair(execution)
        return {"Execution": execution.to_api(listing=False, updated=cloud.clock.iso())}

    @api("ListExecutions")
    def list_executions(self, p: Params) -> dict[str, Any]:
        """Filters: ExecutionId, TemplateName (substring), Status, Tags, SortField/SortOrder; paging."""
        self._region(p)
        wanted_tags = p.json("Tags", {}) or {}
        p.choice(
            "Status",
            ("Running", "Started", "Success", "Failed", "Waiting", "Cancelled", "Pending", "Skipped", "Queued"),
        )
        p.choice("SortOrder", ("Ascending", "Descending"))
        execution_id, template_name, status = (p.filter_str(k) for k in ("ExecutionId", "TemplateName", "Status"))
        selected = [
            e
            for e in self.executions.values()
            if (not execution_id or e.execution_id == execution_id)
            and (not template_name or template_name in e.template_name)
            and (not status or e.status == status)
            and all(e.tags.get(k) == v for k, v in wanted_tags.items())
        ]
        field_name = p.str("SortField", "StartDate") or "StartDate"
        if field_name not in ("StartDate", "EndDate", "Status"):
            raise ApiError("InvalidParameter", "SortField must be StartDate, EndDate or Status.")
        key = {"StartDate": lambda e: (e.created_epoch, e.execution_id), "EndDate": lambda e: e.end_date,
               "Status": lambda e: e.status}[field_name]  # fmt: skip
        selected.sort(key=key, reverse=(p.str("SortOrder", "Descending") != "Ascending"))
        size = p.int("MaxResults", 50, low=10, high=100) or 50
        token = p.str("NextToken")
        if token and not token.isdigit():
            raise ApiError("InvalidParameter.NextToken", "The specified NextToken is not valid.")
        start = int(token) if token else 0
        page = selected[start : start + size]
        updated = self.cloud.clock.iso()
        return {
            "TotalCount": len(selected),
            "MaxResults": size,
            "NextToken": str(start + size) if start + size < len(selected) else "",
            "Executions": [e.to_api(listing=True, updated=updated) for e in page],
        }

    @api("CancelExecution", write=True)
    def cancel_execution(self, p: Params) -> dict[str, Any]:
        self._region(p)
        execution_id = p.required("ExecutionId")
        execution = self.executions.get(execution_id)
        if execution is None:
            raise ApiError(
                "EntityNotExists.Execution", f"The specified execution {execution_id!r} does not exist.", 404
            )
        if execution.status not in TERMINAL:
            for timer in execution.timers:
                self.cloud.clock.cancel(timer)
            self._end(execution, "Cancelled", "Execution is cancelled by user.")
        return {}

    # -- the repair template ---------------------------------------------------------------------

    def _region(self, p: Params) -> None:
        region = p.str("RegionId")
        if region and region != self.cloud.region:
            raise ApiError(
                "InvalidRegionId.NotFound", f"This local cloud serves {self.cloud.region}, not {region}.", 404
            )

    def _validate_repair_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(parameters) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise ApiError("InvalidParameter", f"Parameter(s) {unknown} are not defined in template {REPAIR_TEMPLATE}.")
        missing = [name for name in _REQUIRED if not parameters.get(name)]
        if missing:
            raise ApiError(
                "InvalidParameter", f"Required parameter(s) {missing} of template {REPAIR_TEMPLATE} are missing."
            )
        if parameters["baseImageId"] not in BASE_IMAGES:
            raise ApiError(
                "InvalidParameter",
                f"baseImageId {parameters['baseImageId']!r} is not an AllowedValue: {sorted(BASE_IMAGES)}.",
            )
        items = parameters.get("repairItems", ["assist"])
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not all(i in REPAIR_ITEMS for i in items):
            raise ApiError("InvalidParameter", f"repairItems must be a list of {list(REPAIR_ITEMS)}, got {items!r}.")
        return {"regionId": self.cloud.region, "systemDiskCategory": "cloud_essd", **parameters, "repairItems": items}

    def _simulate_repair(self, execution: Execution) -> None:
        clock, total = self.cloud.clock, self.cloud.timings.repair_seconds
        self._maybe_publish(execution)  # Started
        execution.status = "Running"
        self._maybe_publish(execution)
        execution.timers.append(
            clock.call_later(min(10.0, total * 0.01), lambda: self._check_image(execution), "checkImage")
        )

    def _check_image(self, execution: Execution) -> None:
        ecs, params = self.cloud.ecs, execution.parameters
        image = ecs.images.get(params["repairImageId"])
        problem = None
        if image is None or image.owner_alias != "self":
            problem = f"checkImage: image {params['repairImageId']} is not a custom image of this account."
        elif image.status != "Available":
            problem = f"checkImage: image {image.image_id} is {image.status}, not Available."
        elif image.os_type != "linux":
            problem = f"checkImage: {REPAIR_TEMPLATE} repairs Linux images only; {image.image_id} is {image.os_type}."
        elif image.architecture not in ("x86_64", "arm64"):
            problem = f"checkImage: Images.Image[0].Architecture {image.architecture!r} is not in [x86_64, arm64]."
        elif not image.mappings or not image.mappings[0].snapshot_id:
            problem = f"checkImage: image {image.image_id} has no snapshot to repair."
        if problem:
            self._end(execution, "Failed", problem)
            return
        assert image is not None
        execution.current_task = "runCommand"
        if BASE_IMAGES[execution.parameters["baseImageId"]] != image.architecture:
            remaining = self.cloud.timings.repair_seconds * 0.5
            message = (f"runCommand: the repair instance ({execution.parameters['baseImageId']}) cannot repair a "
                       f"{image.architecture} disk; baseImageId must match the image's architecture.")  # fmt: skip
            execution.timers.append(
                self.cloud.clock.call_later(remaining, lambda: self._end(execution, "Failed", message), "runCommand")
            )
            return
        remaining = max(0.0, self.cloud.timings.repair_seconds - (self.cloud.clock.now - execution.created_epoch))
        execution.timers.append(
            self.cloud.clock.call_later(
                remaining, lambda: self._create_repaired_image(execution, image.image_id), "createImage"
            )
        )

    def _create_repaired_image(self, execution: Execution, source_id: str) -> None:
        ecs = self.cloud.ecs
        source = ecs.images.get(source_id)
        if source is None:
            self._end(execution, "Failed", f"createImage: source image {source_id} was deleted during the repair.")
            return
        # The template's createSnapshot and createImage tasks are ECS calls under this account's quotas.
        try:
            ecs.refuse_over_snapshot_quota(1)
        except ApiError as error:
            self._end(execution, "Failed", f"createSnapshot: {error.code}: {error.message}")
            return
        try:
            ecs.refuse_over_image_quota()
        except ApiError as error:
            self._end(execution, "Failed", f"createImage: {error.code}: {error.message}")
            return
        stamp = datetime.fromtimestamp(self.cloud.clock.now, timezone.utc).strftime("%Y%m%d%H%M%S")
        name = f"repaired_{source.name}_{stamp}"
        if len(name) > 128:  # the template's createImage is a CreateImage: 2-128 characters (SDK CreateImageRequest)
            self._end(execution, "Failed", f"createImage: InvalidImageName.Malformed: the image name {name!r} is "
                      "longer than 128 characters.")  # fmt: skip
            return
        guest = copy.deepcopy(source.guest)
        if guest is not None:
            failing = failing_items(list(guest.check_failures), guest.fstab_mismatch)
            fixed = set(fixed_by(execution.parameters["repairItems"], failing))
            guest.check_failures = [name for name in guest.check_failures if name not in fixed]
            if "Fstab" in fixed:
                guest.fstab_mismatch = False
        system = source.mappings[0]
        # The template snapshots the repaired data disk (retentionDays 1; whether ECS still releases a
        # snapshot an image uses is UNCONFIRMED: here the image keeps it).
        disk = Disk(
            disk_id=self.cloud.ids.resource("d"),
            instance_id=None,
            disk_type="data",
            category=execution.parameters["systemDiskCategory"],
            size=system.size,
            device="/dev/xvdb",
            serial="",
            zone=execution.parameters["zoneId"],
            created_at=self.cloud.clock.iso(),
        )
        snapshot = ecs.take_snapshot(disk, name=f"image_repair_{disk.disk_id}", retention_days=1)
        snapshot.guest, snapshot.os_type = guest, source.os_type
        snapshot.platform, snapshot.architecture = source.platform, source.architecture
        snapshot.done_epoch = self.cloud.clock.now  # the template waits for it (waitDiskFlush + createSnapshot)
        ecs._finish_snapshot(snapshot)  # accomplished now, publishing CreateSnapshotCompleted as any snapshot does
        image = ecs.register_image(
            name=name,
            family="",
            description="",
            tags={},
            detection_strategy="Standard",
            platform=_PLATFORM_MAP.get(source.platform, source.platform),
            architecture=source.architecture,
            boot_mode=source.boot_mode,
            os_type=source.os_type,
            os_name=source.os_name,
            guest=guest,
            source_instance=None,
            snapshot_sources=[("mapping", ("/dev/xvda", "system", snapshot, system.size))],
            encrypted=False,
        )
        self.cloud.record_call("ecs", "CreateImage", {
            "RegionId": self.cloud.region, "SnapshotId": snapshot.snapshot_id, "ImageName": image.name,
            "DetectionStrategy": "Standard", "Platform": image.platform, "Architecture": image.architecture,
            "BootMode": image.boot_mode}, {"ImageId": image.image_id}, execution.caller,
            identity=self.cloud.scenario.event_shapes.repair_create_image)  # fmt: skip
        execution.outputs = {"imageId": image.image_id}
        self._end(execution, "Success", "")

    def _end(self, execution: Execution, status: str, message: str) -> None:
        execution.status = status
        execution.status_message = message
        execution.end_date = self.cloud.clock.iso()
        execution.current_task = ""
        self._maybe_publish(execution)

    def _maybe_publish(self, execution: Execution) -> None:
        # Documented (current OOS doc "System events for automated tasks in OOS",
        # help.aliyun.com/en/oos/getting-started/system-events, Feb 2025): an event is sent only when the
        # execution status changes to Started, Success or Failed, never for child executions.
        # Scenario `oos_events: failed` keeps the Dec 2023 edition (Failed only); `all` publishes every change.
        mode = self.cloud.scenario.oos_events
        if mode == "failed" and execution.status != "Failed":
            return
        if mode == "documented" and execution.status not in ("Started", "Success", "Failed"):
            return
        started = execution.created_epoch
        self.cloud.events.emit(
            "acs.oos",
            "oos:CloudMonitor:Execution[StatusChange]",
            execution.execution_id,
            {
                "executionId": execution.execution_id,
                "status": execution.status,
                "templateId": "t-repairimage0001",
                "templateVersion": "v1",
                "templateName": execution.template_name,
                "executedBy": execution.executed_by,
                "startTime": execution.created_at,
                "endTime": execution.end_date,
                "duration": int(self.cloud.clock.now - started),
                "parentExecutionId": "",
            },  # the documented content fields only: the reason is ListExecutions' StatusMessage
        )
