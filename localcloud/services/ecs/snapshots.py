"""Snapshots: CreateSnapshot, DeleteSnapshot, DescribeSnapshots."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError, not_found
from localcloud.services.base import api
from localcloud.services.ecs.instances import _dry_run, _page, _tags_match
from localcloud.services.ecs.models import Disk, Snapshot
from localcloud.services.ecs.validation import check_tags
from localcloud.wire import Params

if TYPE_CHECKING:
    from localcloud.services.ecs import EcsService


class SnapshotsMixin:
    def snapshot_usage(self: EcsService, snapshot: Snapshot) -> str:
        used_by_image = bool(self.images.using_snapshot(snapshot.snapshot_id))  # indexed: index.py
        used_by_disk = any(d.source_snapshot_id == snapshot.snapshot_id for d in self.disks.values())
        return {(True, True): "image_disk", (True, False): "image", (False, True): "disk"}.get(
            (used_by_image, used_by_disk), "none"
        )

    def _refuse_if_snapshotting(self: EcsService, disk_id: str) -> None:
        if any(s.disk_id == disk_id and s.status == "progressing" for s in self.snapshots.values()):
            raise ApiError(
                "IncorrectDiskStatus.CreatingSnapshot",
                f"A previous snapshot creation is in process (disk {disk_id}).",
                403,
            )

    def refuse_over_snapshot_quota(self: EcsService, new: int) -> None:
        """QuotaExceed.Snapshot when `new` more snapshots would pass the scenario's quota (CreateSnapshot,
        CreateImage's own snapshots and the OOS repair simulation all count)."""
        if len(self.snapshots) + new > self.cloud.quotas.snapshots:
            raise ApiError("QuotaExceed.Snapshot", "The snapshot quota exceeds.", 403)

    def take_snapshot(
        self: EcsService, disk: Disk, *, name: str, for_image: bool = False, retention_days: int | None = None
    ) -> Snapshot:
        """Start a snapshot of `disk`; it completes on the clock and publishes CreateSnapshotCompleted."""
        cloud = self.cloud
        instance = self.instances.get(disk.instance_id or "")
        now = cloud.clock.now
        snapshot = Snapshot(
            snapshot_id=cloud.ids.resource("s"),
            name=name,
            disk_id=disk.disk_id,
            disk_type=disk.disk_type,
            source_size=disk.size,
            category=disk.category,
            created_at=cloud.clock.iso(),
            created_epoch=now,
            done_epoch=now + max(1.0, disk.size * cloud.timings.snapshot_per_gib),
            instance_id=disk.instance_id,
            guest=copy.deepcopy(instance.guest) if instance is not None else None,
            os_type=instance.os_type if instance is not None else "linux",
            platform=instance.platform if instance is not None else "Others Linux",
            architecture=instance.architecture if instance is not None else "x86_64",
            encrypted=disk.encrypted,
            retention_days=retention_days,
            description=f"Created for image {name}" if for_image else "",
        )
        self.snapshots[snapshot.snapshot_id] = snapshot
        # Evaluated when the timer fires, so an image that shortens done_epoch is honoured.
        cloud.clock.call_at(
            snapshot.done_epoch, lambda: self._finish_snapshot(snapshot), f"{snapshot.snapshot_id} done"
        )
        return snapshot

    def _finish_snapshot(self: EcsService, snapshot: Snapshot) -> None:
        if self.snapshots.get(snapshot.snapshot_id) is not snapshot or snapshot.status != "progressing":
            return
        if snapshot.done_epoch > self.cloud.clock.now:  # rescheduled later; not yet
            self.cloud.clock.call_at(
                snapshot.done_epoch, lambda: self._finish_snapshot(snapshot), f"{snapshot.snapshot_id} done"
            )
            return
        snapshot.status = "accomplished"
        self.cloud.events.emit(
            "acs.ecs",
            "ecs:Snapshot:CreateSnapshotCompleted",
            snapshot.snapshot_id,
            {
                "result": "accomplished",
                "snapshotId": snapshot.snapshot_id,
                "snapshotName": snapshot.name,
                "snapshotType": "user",
                "diskId": snapshot.disk_id,
                "startTime": snapshot.created_at,
                "endTime": self.cloud.clock.iso(),
            },
        )

    # -- API -------------------------------------------------------------------------------------

    @api("CreateSnapshot", write=True)
    def create_snapshot(self: EcsService, p: Params) -> dict[str, Any]:
        """No RegionId param: the region comes from the endpoint. Not processed: Category, InstantAccess."""
        disk = self.disks.get(p.required("DiskId"))
        if disk is None:
            raise not_found("InvalidDiskId.NotFound", "DiskId")
        name = p.str("SnapshotName", "")
        if name and (not 2 <= len(name) <= 128 or name.startswith("auto") or name.startswith(("http://", "https://"))):
            raise ApiError(
                "InvalidSnapshotName.Malformed",
                "The snapshot name is 2-128 characters and cannot start with auto, http:// or https://.",
            )
        if disk.is_local:
            # UNCONFIRMED code; the documented fact is that local disks cannot be snapshotted.
            raise ApiError(
                "InvalidDiskCategory.NotSupported",
                f"Disk {disk.disk_id} is a local disk ({disk.category}); snapshots cannot be created for local disks.",
                403,
            )
        if disk.status not in ("In_use", "Available"):
            raise ApiError(
                "IncorrectDiskStatus",
                f"The current status of disk {disk.disk_id} does not support this operation.",
                403,
            )
        self._refuse_if_snapshotting(disk.disk_id)
        self.refuse_over_snapshot_quota(1)
        tags = p.tags()
        check_tags(tags)
        if p.bool("DryRun"):
            raise _dry_run()
        snapshot = self.take_snapshot(disk, name=name, retention_days=p.int("RetentionDays", None, low=1, high=65536))
        snapshot.tags = dict(tags)
        snapshot.description = p.str("Description", "") or ""
        return {"SnapshotId": snapshot.snapshot_id}

    @api("DeleteSnapshot", write=True)
    def delete_snapshot(self: EcsService, p: Params) -> dict[str, Any]:
        """A missing snapshot is silently ignored, as documented. Force does not override SnapshotCreatedImage."""
        snapshot_id = p.required("SnapshotId")
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None:
            return {}
        images = [i.image_id for i in self.images.using_snapshot(snapshot_id)]
        if images:
            raise ApiError(
                "SnapshotCreatedImage",
                f"The snapshot has been used to create user defined image(s): {', '.join(images)}. Delete the image(s) first.",
                403,
            )
        if any(d.source_snapshot_id == snapshot_id for d in self.disks.values()) and not p.bool("Force"):
            raise ApiError("SnapshotCreatedDisk", "The snapshot has been used to create disk(s).", 403)
        del self.snapshots[snapshot_id]
        self.cloud.events.emit(
            "acs.ecs",
            "ecs:Snapshot:SnapshotDeleted",
            snapshot_id,
            {"snapshotId": snapshot_id, "diskId": snapshot.disk_id, "result": "accomplished"},
        )
        return {}

    @api("DescribeSnapshots")
    def describe_snapshots(self: EcsService, p: Params) -> dict[str, Any]:
        """Filters: InstanceId, DiskId, SnapshotIds, SnapshotName, Status, SourceDiskType, Usage, Tag.N."""
        self._region(p)
        ids = p.json_list("SnapshotIds")
        status = p.str("Status", "all")
        if status not in ("progressing", "accomplished", "failed", "all"):
            raise ApiError("InvalidStatus.ValueNotSupported", f"The specified Status {status!r} is not valid.")
        usage = p.str("Usage")
        tags = p.tag_filter()
        source_type = (p.str("SourceDiskType") or "").lower()
        instance_id, disk_id, name = (p.filter_str(k) for k in ("InstanceId", "DiskId", "SnapshotName"))
        selected = [
            s
            for s in self.snapshots.values()
            if (ids is None or s.snapshot_id in ids)
            and (not instance_id or s.instance_id == instance_id)
            and (not disk_id or s.disk_id == disk_id)
            and (not name or s.name == name)
            and (status == "all" or s.status == status)
            and (not source_type or s.disk_type == source_type)
            and (not usage or self.snapshot_usage(s) == usage)
            and _tags_match(s.tags, tags)
        ]
        selected.sort(key=lambda s: (s.created_epoch, s.snapshot_id), reverse=True)
        page, meta = _page(p, selected, default_size=10, max_size=100)
        now = self.cloud.clock.now
        return {
            **meta,
            "Snapshots": {"Snapshot": [s.to_api(self.cloud.region, now, self.snapshot_usage(s)) for s in page]},
        }
