"""ECS resources and how the API renders them (field names and types as the SDK models expect)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from localcloud.guest.spec import GuestSpec
from localcloud.services.ecs.index import INDEXED_ATTRIBUTES, own_tags
from localcloud.services.ecs.validation import tag_list

# i/d-series instance families carry local disks (i2, i3, i4g, d1ne, d2s...; not ic5).
_LOCAL_DISK_FAMILY = re.compile(r"^ecs\.(?P<family>[id]\d[a-z0-9-]*)\.")


def instance_family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else instance_type


def has_local_disks_by_type(instance_type: str) -> bool:
    return bool(_LOCAL_DISK_FAMILY.match(instance_type))


def is_local_category(category: str) -> bool:
    return category.startswith("local_") or category == "ephemeral_ssd"


@dataclass
class Disk:
    disk_id: str
    instance_id: str | None
    disk_type: str  # system | data
    category: str
    size: int
    device: str  # /dev/xvda style, as DescribeDisks reports it
    serial: str
    zone: str
    created_at: str
    encrypted: bool = False
    status: str = "In_use"
    source_snapshot_id: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return is_local_category(self.category)

    def to_api(self, region: str) -> dict[str, Any]:
        return {
            "DiskId": self.disk_id,
            "DiskName": "",
            "Description": "",
            "InstanceId": self.instance_id or "",
            "Device": self.device if self.instance_id else "",
            "Type": self.disk_type,
            "Category": self.category,
            "Size": self.size,
            "Status": self.status,
            "SerialNumber": self.serial,
            "Encrypted": self.encrypted,
            "Portable": not self.is_local and self.disk_type == "data",
            "DeleteWithInstance": True,
            "SourceSnapshotId": self.source_snapshot_id,
            "RegionId": region,
            "ZoneId": self.zone,
            "CreationTime": self.created_at,
            "AttachedTime": self.created_at if self.instance_id else "",
            "DiskChargeType": "PostPaid",
            "Attachments": {
                "Attachment": [{"InstanceId": self.instance_id, "Device": self.device, "AttachedTime": self.created_at}]
                if self.instance_id
                else []
            },
            "MountInstances": {"MountInstance": []},
            "OperationLocks": {"OperationLock": []},
            "Tags": tag_list(self.tags),
        }


@dataclass
class Instance:
    instance_id: str
    name: str
    instance_type: str
    status: str
    os_type: str  # linux | windows
    platform: str
    os_name: str
    architecture: str
    zone: str
    image_id: str
    disk_ids: list[str]
    tags: dict[str, str]
    locks: list[str]
    guest: GuestSpec
    created_at: str
    create_image_failures: int = 0
    images_made: int = 0
    transition_timer: Any = None  # the pending Stopping→Stopped / Starting→Running timer

    def to_api(self, region: str, disks: list[Disk]) -> dict[str, Any]:
        local = [d for d in disks if d.is_local]
        return {
            "InstanceId": self.instance_id,
            "InstanceName": self.name,
            "HostName": self.name,
            "Description": "",
            "InstanceType": self.instance_type,
            "InstanceTypeFamily": instance_family(self.instance_type),
            "Status": self.status,
            "RegionId": region,
            "ZoneId": self.zone,
            "ImageId": self.image_id,
            "OSType": self.os_type,
            "OSName": self.os_name,
            "OSNameEn": self.os_name,
            "Cpu": 2,
            "Memory": 8192,
            "CreationTime": self.created_at,
            "StartTime": self.created_at,
            "InstanceChargeType": "PostPaid",
            "InternetChargeType": "PayByTraffic",
            "InstanceNetworkType": "vpc",
            "IoOptimized": True,
            "DeletionProtection": False,
            "StoppedMode": "Not-applicable" if self.status != "Stopped" else "KeepCharging",
            "SerialNumber": f"{self.instance_id}-serial",
            "LocalStorageAmount": len(local),
            "LocalStorageCapacity": sum(d.size for d in local),
            "VpcAttributes": {
                "VpcId": "vpc-local",
                "VSwitchId": "vsw-local",
                "NatIpAddress": "",
                "PrivateIpAddress": {"IpAddress": ["172.16.0.10"]},
            },
            "SecurityGroupIds": {"SecurityGroupId": ["sg-local"]},
            "PublicIpAddress": {"IpAddress": []},
            "InnerIpAddress": {"IpAddress": []},
            "EipAddress": {"AllocationId": "", "IpAddress": "", "InternetChargeType": ""},
            "NetworkInterfaces": {"NetworkInterface": []},
            "OperationLocks": {"LockReason": [{"LockReason": r, "LockMsg": ""} for r in self.locks]},
            "Tags": tag_list(self.tags),
            "RdmaIpAddress": {"IpAddress": []},
            "ImageOptions": {},
            "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "optional"},
        }


@dataclass
class Snapshot:
    snapshot_id: str
    name: str
    disk_id: str
    disk_type: str
    source_size: int
    category: str
    created_at: str
    created_epoch: float
    done_epoch: float
    instance_id: str | None
    guest: GuestSpec | None
    os_type: str
    platform: str
    architecture: str
    encrypted: bool = False
    status: str = "progressing"
    retention_days: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def progress(self, now: float) -> str:
        if self.status == "accomplished":
            return "100%"
        span = max(self.done_epoch - self.created_epoch, 1e-9)
        return f"{min(99, int((now - self.created_epoch) / span * 100))}%"

    def to_api(self, region: str, now: float, usage: str) -> dict[str, Any]:
        return {
            "SnapshotId": self.snapshot_id,
            "SnapshotName": self.name,
            "SnapshotSN": f"64{abs(hash(self.snapshot_id)) % 10**16:016d}",
            "Description": self.description,
            "Status": self.status,
            "Progress": self.progress(now),
            "RemainTime": 0 if self.status == "accomplished" else max(0, int(self.done_epoch - now)),
            "SourceDiskId": self.disk_id,
            "SourceDiskType": self.disk_type,
            "SourceDiskSize": str(self.source_size),
            "SourceStorageType": "disk",
            "Category": "standard",
            "SnapshotType": "user",
            "Usage": usage,
            "Available": self.status == "accomplished",
            "Encrypted": self.encrypted,
            "InstantAccess": False,
            "RetentionDays": self.retention_days or 0,
            "RegionId": region,
            "CreationTime": self.created_at,
            "LastModifiedTime": self.created_at,
            "ProductCode": "",
            "SourceSnapshotId": "",
            "ResourceGroupId": "",
            "Tags": tag_list(self.tags),
        }


@dataclass
class DiskMapping:
    device: str
    disk_type: str
    snapshot_id: str
    size: int


@dataclass
class Image:
    image_id: str
    name: str
    owner_alias: str  # self | system
    status: str
    os_type: str
    platform: str
    os_name: str
    architecture: str
    boot_mode: str
    size: int
    mappings: list[DiskMapping]
    created_at: str
    created_epoch: float
    done_epoch: float
    family: str = ""
    description: str = ""
    image_version: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    source_instance_id: str = ""
    guest: GuestSpec | None = None
    encrypted: bool = False
    detection_strategy: str = ""
    detection_status: str = ""  # "" (no check) | Processing | Finished
    detection_items: list[dict[str, str]] = field(default_factory=list)
    usable: bool = False
    shared_with: list[str] = field(default_factory=list)
    client_token: str = ""
    fails: bool = False  # ends CreateFailed instead of Available
    imds_support: str = ""
    # The ImageStore holding this image (index.py), told when an indexed attribute changes; not a field,
    # so equality, repr and the API never see it.
    _store: ClassVar[Any] = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "tags":
            value = own_tags(self, value)  # so that changing them in place re-indexes too
        store = self._store
        if store is None or name not in INDEXED_ATTRIBUTES:
            object.__setattr__(self, name, value)
            return
        store.before_change(self)
        try:
            object.__setattr__(self, name, value)
        finally:
            store.after_change(self)

    def __getstate__(self) -> dict[str, Any]:
        """A copy (copy.deepcopy, pickle) belongs to no store: it is indexed when stored, like a new image."""
        state = dict(self.__dict__)
        state.pop("_store", None)
        return state

    def progress(self, now: float) -> str:
        if self.status != "Creating":
            return "100%"
        span = max(self.done_epoch - self.created_epoch, 1e-9)
        return f"{min(99, int((now - self.created_epoch) / span * 100))}%"

    def to_api(self, region: str, account_id: str, now: float, usage: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ImageId": self.image_id,
            "ImageName": self.name,
            "ImageFamily": self.family,
            "ImageVersion": self.image_version,
            "Description": self.description,
            "Status": self.status,
            "Progress": self.progress(now),
            "CreationTime": self.created_at,
            "ImageOwnerAlias": self.owner_alias,
            "ImageOwnerId": int(account_id) if self.owner_alias == "self" else 0,
            "IsCopied": False,
            "IsPublic": self.owner_alias == "system",
            "IsSelfShared": "true" if self.shared_with else "false",
            "IsSubscribed": False,
            "IsSupportCloudinit": True,
            "IsSupportIoOptimized": True,
            "LoginAsNonRootSupported": False,
            "Usage": usage,
            "Size": self.size,
            "OSType": self.os_type,
            "OSName": self.os_name,
            "OSNameEn": self.os_name,
            "Platform": self.platform,
            "Architecture": self.architecture,
            "BootMode": self.boot_mode,
            "ResourceGroupId": "",
            "ProductCode": "",
            "SupplierName": "",
            "LicenseType": "Auto",
            "Usable": self.usable,
            "DiskDeviceMappings": {
                "DiskDeviceMapping": [
                    {
                        "Type": m.disk_type,
                        "Device": m.device,
                        "SnapshotId": m.snapshot_id,
                        "Size": str(m.size),
                        "Progress": self.progress(now),
                        "RemainTime": 0 if self.status != "Creating" else max(0, int(self.done_epoch - now)),
                        "Format": "",
                        "ImportOSSBucket": "",
                        "ImportOSSObject": "",
                        "Encrypted": self.encrypted,
                    }
                    for m in self.mappings
                ]
            },
            "Tags": tag_list(self.tags),
            "Features": {"NvmeSupport": "supported", "ImdsSupport": self.imds_support or "v1"},
            "SecureBootOptions": {"SecureBootSupport": "unsupported"},
        }
        if self.detection_status:
            body["DetectionOptions"] = {"Status": self.detection_status, "Items": {"Item": list(self.detection_items)}}
        return body
