"""CreateImage, from an instance, disk device mappings or a snapshot: the snapshots it takes, the image
becoming Available then usable on the clock, and the image check (DetectionStrategy Standard)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError, not_found
from localcloud.guest.spec import GuestSpec
from localcloud.services.base import api
from localcloud.services.ecs.checks import UNSUPPORTED_PLATFORMS, check_result_items, failing_items
from localcloud.services.ecs.instances import _dry_run
from localcloud.services.ecs.models import DiskMapping, Image, Snapshot
from localcloud.services.ecs.validation import (
    ARCHITECTURES,
    BOOT_MODES,
    PLATFORMS,
    check_description,
    check_family,
    check_image_name,
    check_tags,
)
from localcloud.wire import Params

if TYPE_CHECKING:
    from localcloud.services.ecs import EcsService

# Params that do not change what CreateImage makes: left out of the ClientToken fingerprint.
_TOKEN_NEUTRAL = {"ClientToken", "DryRun", "RegionId"}


class ImageCreationMixin:
    # -- CreateImage -----------------------------------------------------------------------------

    @api("CreateImage", write=True)
    def create_image(self: EcsService, p: Params) -> dict[str, Any]:
        """Sources, by the documented priority: InstanceId > DiskDeviceMapping > SnapshotId.
        Not processed: ImageVersion checks against Marketplace, ResourceGroupId, KMS, SecureBootOptions."""
        self._region(p)
        instance_id = p.str("InstanceId")
        mappings = p.struct_list("DiskDeviceMapping")
        snapshot_id = p.str("SnapshotId")
        if not (instance_id or mappings or snapshot_id):
            raise ApiError(
                "MissingParameter",
                "The input parameter SnapshotId or InstanceId or DiskDeviceMapping that is mandatory "
                "for processing this request is not supplied.",
            )
        name = p.str("ImageName", "")
        if name:
            check_image_name(name)
        family = p.str("ImageFamily", "")
        if family:
            check_family(family)
        description = p.str("Description", "")
        if description:
            check_description(description)
        tags = p.tags()
        check_tags(tags)
        imds = p.struct("Features").get("ImdsSupport")
        if imds is not None and imds not in ("v1", "v2"):
            raise ApiError("InvalidParameter.ImdsSupport", f"Features.ImdsSupport must be v1 or v2, got {imds!r}.")
        strategy = p.str("DetectionStrategy", "")
        if strategy and strategy != "Standard":
            raise ApiError("InvalidParameter.DetectionStrategy", "DetectionStrategy only accepts Standard.")
        platform = p.str("Platform")
        if platform and platform not in PLATFORMS:
            raise ApiError("InvalidPlatform.Malformed", f"The specified Platform {platform!r} is not supported.")
        architecture = p.str("Architecture")
        if architecture and architecture not in ARCHITECTURES:
            raise ApiError(
                "InvalidArchitecture.Malformed", f"The specified Architecture {architecture!r} is not valid."
            )
        boot_mode = p.str("BootMode")
        if boot_mode and boot_mode not in BOOT_MODES:
            raise ApiError("InvalidBootMode.ValueNotSupported", f"The specified BootMode {boot_mode!r} is not valid.")

        token = p.str("ClientToken")
        if token:
            if len(token) > 64 or not token.isascii():
                raise ApiError("InvalidClientToken.Malformed", "ClientToken is at most 64 ASCII characters.")
            fingerprint = _fingerprint(p)
            known = self.client_tokens.get(("CreateImage", token))
            if known is not None:
                if known[0] != fingerprint:
                    raise ApiError(
                        "IdempotenceParamNotMatch",
                        "Request uses a client token in a previous request but is not identical to that request.",
                    )
                return {"ImageId": known[1]}

        self.refuse_over_image_quota()
        if name and self._name_taken(name):
            raise ApiError("InvalidImageName.Duplicated", "The specified Image name has already bean used.")

        if instance_id:
            plan = self._plan_from_instance(instance_id)
        elif mappings:
            plan = self._plan_from_mappings(mappings)
        else:
            plan = self._plan_from_snapshot(snapshot_id or "")
        # The snapshots CreateImage takes of an instance's disks count against the snapshot quota too.
        self.refuse_over_snapshot_quota(sum(1 for kind, _ in plan["snapshots"] if kind == "disk"))
        if p.bool("DryRun"):
            raise _dry_run()

        image = self.register_image(
            name=name,
            family=family,
            description=description,
            tags=dict(tags),
            detection_strategy=strategy,
            platform=platform or plan["platform"],
            architecture=architecture or plan["architecture"],
            boot_mode=boot_mode or "BIOS",
            os_type=plan["os_type"],
            os_name=plan["os_name"],
            guest=plan["guest"],
            source_instance=plan.get("instance"),
            snapshot_sources=plan["snapshots"],
            encrypted=plan["encrypted"],
            imds_support=p.struct("Features").get("ImdsSupport", ""),
            image_version=p.str("ImageVersion", "") or "",
        )
        if token:
            self.client_tokens[("CreateImage", token)] = (_fingerprint(p), image.image_id)
            image.client_token = token
        return {"ImageId": image.image_id}

    def refuse_over_image_quota(self: EcsService) -> None:
        """QuotaExceed.Image when one more custom image would pass the scenario's quota (CreateImage and the
        OOS repair simulation both count)."""
        if self._custom_image_count() >= self.cloud.quotas.images:
            raise ApiError("QuotaExceed.Image", "The Image Quota exceeds.", 403)

    def _custom_image_count(self: EcsService) -> int:
        return self.images.count_with("owner_alias", "self")  # indexed (index.py): no scan per CreateImage

    def _name_taken(self: EcsService, name: str, except_id: str = "") -> bool:
        return any(
            i.name == name and i.image_id != except_id and i.owner_alias == "self"
            for i in self.images.with_field("name", name)
        )

    def _plan_from_instance(self: EcsService, instance_id: str) -> dict[str, Any]:
        instance = self._instance(instance_id)
        if "security" in instance.locks:
            raise ApiError(
                "InstanceLockedForSecurity",
                "The specified operation is denied as your instance is locked for security reasons.",
            )
        if instance.status not in ("Running", "Stopped"):
            raise ApiError(
                "IncorrectInstanceStatus",
                f"The current status of the instance does not support this operation. (status: {instance.status})",
            )
        disks = self.instance_disks(instance)
        local = [d for d in disks if d.is_local]
        if local:
            # The exact code is UNCONFIRMED (alibaba-apis.md §2.2); this one names the cause: local disks
            # cannot be snapshotted, so an image cannot be made of them.
            raise ApiError(
                "InvalidDiskCategory.CreateImage",
                f"The specified diskCategory is not allowed to create image. Instance {instance_id} has local "
                f"disk(s) {', '.join(f'{d.disk_id} ({d.category})' for d in local)}, which cannot be snapshotted.",
            )
        for disk in disks:
            self._refuse_if_snapshotting(disk.disk_id)
        return {
            "instance": instance,
            "platform": instance.platform,
            "architecture": instance.architecture,
            "os_type": instance.os_type,
            "os_name": instance.os_name,
            "guest": copy.deepcopy(instance.guest),
            "encrypted": any(d.encrypted for d in disks),
            "snapshots": [("disk", d) for d in disks],
        }

    def _plan_from_mappings(self: EcsService, mappings: list[dict[str, Any]]) -> dict[str, Any]:
        sources: list[tuple[str, Any]] = []
        devices: set[str] = set()
        system: list[Snapshot] = []
        for index, entry in enumerate(mappings, start=1):
            odd = [k for k, v in entry.items() if not isinstance(v, str)]
            if odd:
                raise ApiError("InvalidParameter", f"DiskDeviceMapping.{index}.{odd[0]} must be a single value.")
            disk_type = entry.get("DiskType", "data" if index > 1 else "system")
            if disk_type not in ("system", "data"):
                raise ApiError("InvalidDiskType.ValueNotSupported", f"DiskDeviceMapping.{index}.DiskType {disk_type!r}")
            device = entry.get("Device") or ("/dev/xvda" if disk_type == "system" else f"/dev/xvd{chr(97 + index)}")
            if device in devices:
                raise ApiError("InvalidDevice.InUse", f"The device {device} is used by more than one mapping.")
            devices.add(device)
            snapshot_id = entry.get("SnapshotId")
            size_text = entry.get("Size")
            snapshot = self._ready_snapshot(snapshot_id) if snapshot_id else None
            try:
                size = int(size_text) if size_text else (snapshot.source_size if snapshot else 20)
            except ValueError:
                raise ApiError(
                    "InvalidSize.ValueNotSupported", f"DiskDeviceMapping.{index}.Size {size_text!r}"
                ) from None
            if snapshot and size < snapshot.source_size:
                raise ApiError(
                    "InvalidSize.ValueNotSupported",
                    f"DiskDeviceMapping.{index}.Size {size} GiB is smaller than snapshot {snapshot_id} ({snapshot.source_size} GiB).",
                )
            if disk_type == "system":
                if snapshot is None:
                    raise ApiError("InvalidSystemSnapshot.Missing", "The system disk mapping needs a SnapshotId.", 403)
                system.append(snapshot)
            sources.append(("mapping", (device, disk_type, snapshot, size)))
        if len(system) != 1:
            reason = (
                "does not contain system disk snapshot" if not system else "contains two or more system disk snapshots"
            )
            raise ApiError("OperationDenied", f"The specified DiskDeviceMapping {reason}.")
        root = system[0]
        return {
            "platform": root.platform,
            "architecture": root.architecture,
            "os_type": root.os_type,
            "os_name": f"{root.platform} 64-bit",
            "guest": copy.deepcopy(root.guest),
            "encrypted": any(s[1][2] is not None and s[1][2].encrypted for s in sources),
            "snapshots": sources,
        }

    def _plan_from_snapshot(self: EcsService, snapshot_id: str) -> dict[str, Any]:
        snapshot = self._ready_snapshot(snapshot_id)
        return {
            "platform": snapshot.platform,
            "architecture": snapshot.architecture,
            "os_type": snapshot.os_type,
            "os_name": f"{snapshot.platform} 64-bit",
            "guest": copy.deepcopy(snapshot.guest),
            "encrypted": snapshot.encrypted,
            "snapshots": [("mapping", ("/dev/xvda", "system", snapshot, snapshot.source_size))],
        }

    def _ready_snapshot(self: EcsService, snapshot_id: str) -> Snapshot:
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None:
            raise not_found("InvalidSnapshotId.NotFound", "SnapshotId")
        if snapshot.status != "accomplished":
            raise ApiError(
                "InvalidSnapshotId.NotReady",
                f"The current status of the snapshot {snapshot_id} ({snapshot.status}) does not support this operation.",
                403,
            )
        return snapshot

    def register_image(
        self: EcsService,
        *,
        name: str,
        family: str,
        description: str,
        tags: dict[str, str],
        detection_strategy: str,
        platform: str,
        architecture: str,
        boot_mode: str,
        os_type: str,
        os_name: str,
        guest: GuestSpec | None,
        source_instance: Any,
        snapshot_sources: list[tuple[str, Any]],
        encrypted: bool,
        imds_support: str = "",
        image_version: str = "",
    ) -> Image:
        """Make an image (and the snapshots it needs) and schedule its lifecycle on the clock.

        Also used by the OOS repair simulation, which creates images as the template does."""
        cloud = self.cloud
        timings = cloud.timings
        now = cloud.clock.now
        image_id = cloud.ids.resource("m")
        mappings: list[DiskMapping] = []
        new_snapshots: list[Snapshot] = []
        for kind, source in snapshot_sources:
            if kind == "disk":
                disk = source
                snapshot = self.take_snapshot(disk, name=f"image_{image_id}_{disk.disk_id}", for_image=True)
                new_snapshots.append(snapshot)
                mappings.append(DiskMapping(disk.device, disk.disk_type, snapshot.snapshot_id, disk.size))
            else:
                device, disk_type, snapshot, size = source
                mappings.append(DiskMapping(device, disk_type, snapshot.snapshot_id if snapshot else "", size))
        total_gib = sum(m.size for m in mappings) or 1
        fails = False
        if source_instance is not None:
            source_instance.images_made += 1
            fails = source_instance.images_made <= source_instance.create_image_failures
        image = Image(
            image_id=image_id,
            name=name,
            owner_alias="self",
            status="Creating",
            os_type=os_type,
            platform=platform,
            os_name=os_name,
            architecture=architecture,
            boot_mode=boot_mode,
            size=next((m.size for m in mappings if m.disk_type == "system"), total_gib),
            mappings=mappings,
            created_at=cloud.clock.iso(),
            created_epoch=now,
            done_epoch=now + max(1.0, total_gib * timings.image_seconds_per_gib),
            family=family,
            description=description,
            image_version=image_version,
            tags=tags,
            source_instance_id=source_instance.instance_id if source_instance is not None else "",
            guest=guest,
            encrypted=encrypted,
            detection_strategy=detection_strategy,
            fails=fails,
            imds_support=imds_support,
        )
        self.images[image_id] = image
        for snapshot in new_snapshots:
            if image.done_epoch < snapshot.done_epoch:
                # An image's snapshots are done when the image is: its own timer fires at the original,
                # later time, so without this one an Available image kept "progressing" snapshots
                # (and refused the next CreateImage with IncorrectDiskStatus.CreatingSnapshot).
                snapshot.done_epoch = image.done_epoch
                cloud.clock.call_at(
                    snapshot.done_epoch,
                    lambda s=snapshot: self._finish_snapshot(s),
                    f"{snapshot.snapshot_id} done",
                )
        cloud.clock.call_at(image.done_epoch, lambda: self._finish_image(image), f"{image_id} created")
        return image

    def _finish_image(self: EcsService, image: Image) -> None:
        if self.images.get(image.image_id) is not image:
            return  # deleted while being created
        timings = self.cloud.timings
        if image.fails:
            image.status = "CreateFailed"
            for mapping in image.mappings:
                snapshot = self.snapshots.get(mapping.snapshot_id)
                if snapshot is not None and snapshot.status == "progressing":
                    snapshot.status = "failed"
            return
        image.status = "Available"
        self.cloud.clock.call_later(
            timings.usable_seconds, lambda: setattr(image, "usable", True), f"{image.image_id} usable"
        )
        if image.detection_strategy == "Standard" and self._check_supported(image):
            image.detection_status = "Processing"
            self.cloud.clock.call_later(
                timings.check_seconds, lambda: self._finish_check(image), f"{image.image_id} checked"
            )

    def _check_supported(self: EcsService, image: Image) -> bool:
        # Unsupported images get no DetectionOptions at all (UNCONFIRMED how real ECS reports it;
        # we invent no status value): Available + Usable without DetectionOptions = not checked.
        return not image.encrypted and image.platform not in UNSUPPORTED_PLATFORMS

    def _finish_check(self: EcsService, image: Image) -> None:
        if self.images.get(image.image_id) is not image:
            return
        guest = image.guest or GuestSpec()
        failing = failing_items(list(guest.check_failures), guest.fstab_mismatch)
        image.detection_items = check_result_items(failing)
        image.detection_status = "Finished"
        if not failing:
            # Images that pass are tagged by the service itself (system tags, not user tags).
            image.tags.setdefault("acs:ecs:image:osVersion", image.os_name)
            image.tags.setdefault("acs:ecs:image:kernelVersion", "5.10.134-16.al8.x86_64")


def _fingerprint(p: Params) -> str:
    relevant = {k: v for k, v in sorted(p.flat.items()) if k not in _TOKEN_NEUTRAL}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
