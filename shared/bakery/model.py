"""What Bakery knows about cloud resources: small immutable views the adapters build from SDK models."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Disk:
    disk_id: str
    disk_type: str  # system | data
    category: str
    size_gib: int
    encrypted: bool = False

    @property
    def is_local(self) -> bool:
        return self.category.startswith("local_") or self.category == "ephemeral_ssd"


@dataclass(frozen=True)
class Instance:
    instance_id: str
    status: str
    instance_type: str
    os_type: str
    platform: str
    architecture: str
    tags: dict[str, str] = field(default_factory=dict)
    lock_reasons: tuple[str, ...] = ()
    local_disk_count: int = 0
    name: str = ""


@dataclass(frozen=True)
class CheckItem:
    name: str
    value: str
    risk_level: str = ""
    risk_code: str = ""


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    status: str  # progressing | accomplished | failed
    progress: str
    size_gib: int  # SourceDiskSize
    tags: dict[str, str] = field(default_factory=dict)
    created: str = ""  # CreationTime (UTC, ISO 8601)


@dataclass(frozen=True)
class ImageDisk:
    """One DiskDeviceMapping of an image: a disk an instance launched from it gets."""

    device: str
    disk_type: str  # system | data
    snapshot_id: str
    size_gib: int


@dataclass(frozen=True)
class Image:
    image_id: str
    name: str
    status: str  # Creating | Waiting | Available | UnAvailable | CreateFailed | Deprecated
    usable: bool
    family: str
    description: str
    os_type: str
    platform: str
    architecture: str
    tags: dict[str, str]
    snapshot_ids: tuple[str, ...]
    detection_status: str  # "" when the image has no DetectionOptions
    check_items: tuple[CheckItem, ...] = ()
    creation_time: str = ""
    disks: tuple[ImageDisk, ...] = ()  # DiskDeviceMappings in order: the system disk first
    boot_mode: str = ""

    @property
    def failing_items(self) -> tuple[CheckItem, ...]:
        return tuple(item for item in self.check_items if item.risk_level)


@dataclass(frozen=True)
class Execution:
    execution_id: str
    status: str  # Started | Queued | Running | Waiting | Success | Failed | Cancelled
    outputs: dict[str, str]
    message: str

    @property
    def finished(self) -> bool:
        return self.status in ("Success", "Failed", "Cancelled")


@dataclass(frozen=True)
class CommandResult:
    invoke_id: str
    instance_id: str
    record_status: str  # Running | Finished | Failed | Stopped
    invocation_status: str
    exit_code: int | None
    output: str
    error_code: str
    error_info: str = ""  # Cloud Assistant's reason when it could not run the command (ErrorInfo)

    @property
    def finished(self) -> bool:
        return self.record_status in ("Finished", "Failed", "Stopped")
