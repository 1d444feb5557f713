"""Instances and disks: DescribeInstances, DescribeDisks, StopInstance, StartInstance."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError, not_found
from localcloud.services.base import api
from localcloud.services.ecs.models import Disk, Instance, has_local_disks_by_type
from localcloud.wire import Params, paginate

if TYPE_CHECKING:
    from localcloud.scenario import InstanceSpec
    from localcloud.services.ecs import EcsService

_DEFAULT_IMAGE_BY_PLATFORM = {
    "Ubuntu": "ubuntu_22_04_x64_20G_alibase_20240101.vhd",
    "Aliyun": "aliyun_3_x64_20G_alibase_20230727.vhd",
    "CentOS": "centos_7_9_x64_20G_alibase_20240101.vhd",
    "Debian": "debian_12_x64_20G_alibase_20240101.vhd",
    "Windows Server 2022": "win2022_21H2_x64_dtc_en-us_40G_alibase_20240101.vhd",
}
INSTANCE_STATUSES = ("Pending", "Running", "Starting", "Stopping", "Stopped")


class InstancesMixin:
    # -- scenario --------------------------------------------------------------------------------

    def load(self: EcsService, specs: list[InstanceSpec]) -> None:
        for spec in specs:
            self._add_instance(spec)

    def _add_instance(self: EcsService, spec: InstanceSpec) -> Instance:
        cloud = self.cloud
        zone = spec.zone or f"{cloud.region}-h"
        disk_specs = list(spec.disks)
        local_family = has_local_disks_by_type(spec.type)
        if local_family and not any(d.category.startswith("local_") for d in disk_specs):
            # i-series carry local SSDs, d-series local HDDs: the reason they cannot be imaged.
            category, size = (
                ("local_ssd_pro", 894) if spec.type.split(".")[1].startswith("i") else ("local_hdd_pro", 5500)
            )
            from localcloud.scenario import DiskSpec

            disk_specs.append(DiskSpec(type="data", category=category, size=size))
        disk_ids = []
        data_index = 0
        for disk_spec in sorted(disk_specs, key=lambda d: d.type != "system"):
            if disk_spec.type == "system":
                device = "/dev/xvda"
            else:
                data_index += 1
                device = f"/dev/xvd{chr(ord('a') + data_index)}"
            disk_id = disk_spec.id or f"d-{spec.id.removeprefix('i-')}-{len(disk_ids)}"
            self.disks[disk_id] = Disk(
                disk_id=disk_id,
                instance_id=spec.id,
                disk_type=disk_spec.type,
                category=disk_spec.category,
                size=disk_spec.size,
                device=device,
                serial=f"bp1{disk_id.replace('-', '')[:17]}",
                zone=zone,
                created_at=cloud.clock.iso(),
                encrypted=disk_spec.encrypted,
            )
            disk_ids.append(disk_id)
        if spec.image_id and spec.image_id not in self.images:
            from localcloud.scenario import ScenarioError

            raise ScenarioError(
                f"instance {spec.id}: image_id {spec.image_id!r} is neither a public image nor one of the scenario's images"
            )
        os_name = spec.os_name or (f"{spec.platform} 64-bit" if spec.os == "linux" else spec.platform)
        instance = Instance(
            instance_id=spec.id,
            name=spec.name or spec.id,
            instance_type=spec.type,
            status=spec.status,
            os_type=spec.os,
            platform=spec.platform,
            os_name=os_name,
            architecture=spec.architecture,
            zone=zone,
            image_id=spec.image_id
            or _DEFAULT_IMAGE_BY_PLATFORM.get(spec.platform, "ubuntu_22_04_x64_20G_alibase_20240101.vhd"),
            disk_ids=disk_ids,
            tags=dict(spec.tags),
            locks=list(spec.locks),
            guest=spec.guest,
            created_at=cloud.clock.iso(),
            create_image_failures=spec.create_image_failures,
        )
        self.instances[spec.id] = instance
        # Transitional states settle on the clock, as a freshly booted region would.
        settle = {"Pending": "Running", "Starting": "Running", "Stopping": "Stopped"}
        if spec.status in settle:
            delay = cloud.timings.pending_seconds if spec.status == "Pending" else cloud.timings.stop_seconds
            self._schedule_transition(instance, settle[spec.status], delay)
        return instance

    # -- helpers ---------------------------------------------------------------------------------

    def _instance(self: EcsService, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise not_found("InvalidInstanceId.NotFound", "InstanceId")
        return instance

    def instance_disks(self: EcsService, instance: Instance) -> list[Disk]:
        return [self.disks[d] for d in instance.disk_ids if d in self.disks]

    def _set_status(self: EcsService, instance: Instance, status: str) -> None:
        instance.status = status
        self.cloud.events.emit(
            "acs.ecs",
            "ecs:Instance:StateChange",
            instance.instance_id,
            {"resourceId": instance.instance_id, "resourceType": "ALIYUN::ECS::Instance", "state": status},
        )

    def _schedule_transition(self: EcsService, instance: Instance, target: str, delay: float) -> None:
        def settle() -> None:
            instance.transition_timer = None
            self._set_status(instance, target)

        instance.transition_timer = self.cloud.clock.call_later(delay, settle, f"{instance.instance_id}→{target}")

    def _refuse_if_locked(self: EcsService, instance: Instance) -> None:
        if "security" in instance.locks:
            raise ApiError(
                "InstanceLockedForSecurity",
                "The specified operation is denied as your instance is locked for security reasons.",
                403,
            )

    # -- API -------------------------------------------------------------------------------------

    @api("DescribeInstances")
    def describe_instances(self: EcsService, p: Params) -> dict[str, Any]:
        """Filters: InstanceIds, Status, InstanceType, InstanceTypeFamily, ImageId, InstanceName (`*`), Tag.N.
        Paging: NextToken/MaxResults, or PageNumber/PageSize. Other filters are not processed."""
        self._region(p)
        ids = p.json_list("InstanceIds")
        if ids is not None and len(ids) > 100:
            raise ApiError("InvalidParameter.InstanceIds", "At most 100 InstanceIds may be given.")
        status = p.str("Status")
        if status and status not in INSTANCE_STATUSES:
            raise ApiError("InvalidStatus.NotFound", f"The specified Status {status!r} is not valid.", 404)
        name = p.str("InstanceName")
        tags = p.tag_filter()
        selected = []
        # Looked up once, tested where p.str was (Params.filter_str): a bad value fails where it always did.
        instance_type, family, image_id = (p.filter_str(k) for k in ("InstanceType", "InstanceTypeFamily", "ImageId"))
        for instance in self.instances.values():
            if ids is not None and instance.instance_id not in ids:
                continue
            if status and instance.status != status:
                continue
            if instance_type and instance.instance_type != instance_type:
                continue
            if family and not instance.instance_type.startswith(family + "."):
                continue
            if image_id and instance.image_id != image_id:
                continue
            if name and not _wildcard_match(name, instance.name):
                continue
            if not _tags_match(instance.tags, tags):
                continue
            selected.append(instance)
        page, meta = _page(p, selected, default_size=10, max_size=100)
        return {
            **meta,
            "Instances": {"Instance": [i.to_api(self.cloud.region, self.instance_disks(i)) for i in page]},
        }

    @api("DescribeDisks")
    def describe_disks(self: EcsService, p: Params) -> dict[str, Any]:
        """Filters: InstanceId, DiskIds, DiskType, Category, Status, SnapshotId, Tag.N."""
        self._region(p)
        disk_ids = p.json_list("DiskIds")
        disk_type = p.str("DiskType", "all")
        if disk_type not in ("all", "system", "data"):
            raise ApiError("InvalidDiskType.ValueNotSupported", f"The specified DiskType {disk_type!r} is not valid.")
        tags = p.tag_filter()
        instance_id, category, status, snapshot_id = (
            p.filter_str(k) for k in ("InstanceId", "Category", "Status", "SnapshotId")
        )
        selected = [
            d
            for d in self.disks.values()
            if (disk_ids is None or d.disk_id in disk_ids)
            and (not instance_id or d.instance_id == instance_id)
            and (disk_type == "all" or d.disk_type == disk_type)
            and (not category or d.category == category)
            and (not status or d.status == status)
            and (not snapshot_id or d.source_snapshot_id == snapshot_id)
            and _tags_match(d.tags, tags)
        ]
        page, meta = _page(p, selected, default_size=10, max_size=500)
        return {**meta, "Disks": {"Disk": [d.to_api(self.cloud.region) for d in page]}}

    @api("StopInstance", write=True)
    def stop_instance(self: EcsService, p: Params) -> dict[str, Any]:
        instance = self._instance(p.required("InstanceId"))
        self._refuse_if_locked(instance)
        if instance.status != "Running":
            raise ApiError(
                "IncorrectInstanceStatus",
                f"The current status of the resource does not support this operation. (status: {instance.status})",
                403,
            )
        if any(d.is_local for d in self.instance_disks(instance)) and not p.bool("ConfirmStop"):
            raise ApiError(
                "InstanceType.ParameterMismatch",
                "The input parameter ConfirmStop must be true when an instance have localstorage.",
                403,
            )
        p.choice("StoppedMode", ("StopCharging", "KeepCharging"))
        if p.bool("DryRun"):
            raise _dry_run()
        self._set_status(instance, "Stopping")
        self._schedule_transition(instance, "Stopped", 1 if p.bool("ForceStop") else self.cloud.timings.stop_seconds)
        return {}

    @api("StartInstance", write=True)
    def start_instance(self: EcsService, p: Params) -> dict[str, Any]:
        instance = self._instance(p.required("InstanceId"))
        self._refuse_if_locked(instance)
        if instance.status != "Stopped":
            raise ApiError(
                "IncorrectInstanceStatus",
                f"The current status of the resource does not support this operation. (status: {instance.status})",
                403,
            )
        if p.bool("DryRun"):
            raise _dry_run()
        self._set_status(instance, "Starting")
        self._schedule_transition(instance, "Running", self.cloud.timings.start_seconds)
        return {}


# -- shared helpers used by every ECS mixin ------------------------------------------------------------


def _dry_run() -> ApiError:
    return ApiError("DryRunOperation", "Request validation has been passed with DryRun flag set.", 400)


def _wildcard_match(pattern: str, value: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(value, pattern) if "*" in pattern else value == pattern


def _tags_match(tags: dict[str, str], wanted: list[tuple[str, str]]) -> bool:
    """Tag.N filters: every key must be present; a non-empty value must match too."""
    return all(key in tags and (not value or tags[key] == value) for key, value in wanted)


def _page(p: Params, items: list[Any], *, default_size: int, max_size: int) -> tuple[list[Any], dict[str, Any]]:
    """NextToken/MaxResults when the caller uses them, else PageNumber/PageSize."""
    if "MaxResults" in p or "NextToken" in p:
        size = p.int("MaxResults", default_size, low=1, high=max_size) or default_size
        token = p.str("NextToken")
        start = 0
        if token:
            try:
                start = int(json.loads(token)["offset"]) if token.startswith("{") else int(token)
            except (ValueError, KeyError, TypeError):
                raise ApiError("InvalidParameter.NextToken", "The specified NextToken is not valid.") from None
        page = items[start : start + size]
        next_token = str(start + size) if start + size < len(items) else ""
        return page, {"TotalCount": len(items), "NextToken": next_token, "MaxResults": size}
    number = p.int("PageNumber", 1, low=1) or 1
    size = p.int("PageSize", default_size, low=1, high=max_size) or default_size
    return paginate(items, number, size), {"TotalCount": len(items), "PageNumber": number, "PageSize": size}
