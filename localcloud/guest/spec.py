"""What a guest is made of: the scenario's ``guest:`` mapping (GuestSpec) and the disks attached to it.

Disk identities are stable: a filesystem UUID is the uuid5 of its disk id, so a scenario always yields the
same ones, and the serial is what ECS gives a cloud disk (its id without ``d-``).
"""

from __future__ import annotations

import posixpath
import re
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

# Fixed namespace: filesystem UUIDs must be stable across runs and processes.
FILESYSTEM_UUID_NAMESPACE = uuid.UUID("6f1c2a7e-5d0b-4c47-9b53-0c8e6a1f7d21")
_DEVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9]*$")


def filesystem_uuid(disk_id: str) -> str:
    """The UUID of the filesystem on a disk (its root partition for the system disk)."""
    return str(uuid.uuid5(FILESYSTEM_UUID_NAMESPACE, f"filesystem/{disk_id}"))


def disk_serial(disk_id: str) -> str:
    """The virtio serial ECS gives a cloud disk: its id without the ``d-`` prefix."""
    return disk_id[2:] if disk_id.startswith("d-") else disk_id


def hostname(instance_id: str) -> str:
    return "iZ" + instance_id.removeprefix("i-") + "Z"  # ECS names hosts iZ<instance id>Z


@dataclass
class GuestDisk:
    disk_id: str
    device: str  # kernel name without /dev, e.g. "vda"
    disk_type: str  # "system" | "data"
    size_gib: int
    category: str  # e.g. "cloud_essd", "local_ssd_pro"
    serial: str


@dataclass
class GuestSpec:
    """The scenario's ``guest:`` mapping for one instance (keys are identical)."""

    check_failures: list[str] = field(default_factory=list)  # not used by the sandbox itself
    secrets: list[str] = field(default_factory=list)  # absolute guest paths of planted secrets
    system_disk_free_mb: int = 20000
    fstab_mismatch: bool = False
    missing_dirs: list[str] = field(default_factory=list)  # e.g. ["/lib"]
    cloud_assistant: bool = True  # not used by the sandbox itself
    os: str = "linux"

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None) -> GuestSpec:
        """Validate a scenario mapping; unknown keys and wrong types raise ValueError."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"guest: expected a mapping, got {type(data).__name__}")
        allowed = [spec_field.name for spec_field in fields(cls)]
        for key in data:
            if key not in allowed:
                raise ValueError(f"guest: unknown key {key!r}; allowed keys: {', '.join(allowed)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:  # YAML "key:" with nothing after it means "the default"
                continue
            if key in ("check_failures", "secrets", "missing_dirs"):
                if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                    raise ValueError(f"guest.{key}: expected a list of strings, got {value!r}")
                if key != "check_failures":
                    for path in value:
                        if not path.startswith("/") or posixpath.normpath(path) == "/":
                            raise ValueError(f"guest.{key}: {path!r} is not an absolute path below /")
                values[key] = list(value)
            elif key == "system_disk_free_mb":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"guest.{key}: expected a non-negative integer, got {value!r}")
                values[key] = value
            elif key in ("fstab_mismatch", "cloud_assistant"):
                if not isinstance(value, bool):
                    raise ValueError(f"guest.{key}: expected true or false, got {value!r}")
                values[key] = value
            else:  # os
                if not isinstance(value, str) or not value:
                    raise ValueError(f"guest.{key}: expected a non-empty string, got {value!r}")
                values[key] = value
        return cls(**values)


def split_disks(disks: list[GuestDisk]) -> tuple[GuestDisk, list[GuestDisk]]:
    """(the system disk, the data disks in device order); ValueError for a layout no instance has."""
    seen_devices: set[str] = set()
    for disk in disks:
        if not _DEVICE_NAME_RE.match(disk.device):
            raise ValueError(f"disk {disk.disk_id}: device {disk.device!r} is not a kernel disk name like 'vdb'")
        if disk.device in seen_devices:
            raise ValueError(f"disk {disk.disk_id}: device {disk.device!r} is attached twice")
        seen_devices.add(disk.device)
        if disk.disk_type not in ("system", "data"):
            raise ValueError(f"disk {disk.disk_id}: disk_type must be 'system' or 'data', got {disk.disk_type!r}")
        if isinstance(disk.size_gib, bool) or not isinstance(disk.size_gib, int) or disk.size_gib <= 0:
            raise ValueError(f"disk {disk.disk_id}: size_gib must be a positive integer, got {disk.size_gib!r}")
    system_disks = [disk for disk in disks if disk.disk_type == "system"]
    if len(system_disks) != 1:
        raise ValueError(f"a guest needs exactly one system disk, got {len(system_disks)}")
    data_disks = sorted((disk for disk in disks if disk.disk_type == "data"), key=lambda d: device_sort_key(d.device))
    return system_disks[0], data_disks


def device_sort_key(device: str) -> tuple[int, str]:
    return (len(device), device)  # vdz before vdaa, as the kernel hands them out


def partition_name(device: str) -> str:
    return f"{device}p1" if device[-1].isdigit() else f"{device}1"  # nvme0n1 -> nvme0n1p1
