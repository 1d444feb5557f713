"""Device shims: df, lsblk and blkid as generated bash scripts that describe the guest's disks, not the host's.

Each shim is this guest's data (bash arrays, written here) followed by the tool's code, which lives in
``shim-<tool>.sh`` next to this file (with ``shim-common.sh``, the helpers they share). A shim understands
the flags listed in its own header and fails loudly (exit 2) on any other, so a script never silently gets
host data or a wrong format. The shims need bash >= 4.4 on the host.
"""

from __future__ import annotations

import functools
import math
import os
import shlex
import stat
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from localcloud.guest.spec import FILESYSTEM_UUID_NAMESPACE, device_sort_key, filesystem_uuid, partition_name

if TYPE_CHECKING:
    from localcloud.guest.sandbox import GuestSandbox

TOOLS = ("df", "lsblk", "blkid")


@dataclass
class BlockDevice:
    """One row of the guest's block device table, shared by the lsblk and blkid shims."""

    name: str
    kind: str  # "disk" | "part"
    parent: str
    major_minor: str
    size_bytes: int
    fstype: str = ""
    uuid: str = ""
    partuuid: str = ""
    pttype: str = ""
    ptuuid: str = ""
    serial: str = ""
    mountpoint: str = ""


@dataclass
class Mount:
    """One mounted filesystem as df reports it."""

    source: str
    fstype: str
    target: str
    size_mb: int
    avail_mb: int


def write_shims(box: GuestSandbox) -> None:
    """The df, lsblk and blkid shims for ``box``, executable, in ``box.shim_dir``."""
    preamble = _shim_preamble(box.root, block_devices(box), mounts(box))
    for name in TOOLS:
        path = os.path.join(box.shim_dir, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(preamble.replace("@TOOL@", name) + "\n" + _source(f"shim-{name}.sh"))
        os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


@functools.cache
def _source(name: str) -> str:
    return resources.files("localcloud.guest").joinpath(name).read_text(encoding="utf-8")


def block_devices(box: GuestSandbox) -> list[BlockDevice]:
    devices: list[BlockDevice] = []
    for index, disk in enumerate(sorted(box.disks, key=lambda d: device_sort_key(d.device))):
        size_bytes = disk.size_gib * 2**30
        major_minor = f"253:{index * 16}"
        if disk.disk_type == "system":
            ptuuid = uuid.uuid5(FILESYSTEM_UUID_NAMESPACE, f"ptable/{disk.disk_id}").hex[:8]
            partition = partition_name(disk.device)
            devices.append(
                BlockDevice(
                    name=disk.device,
                    kind="disk",
                    parent="",
                    major_minor=major_minor,
                    size_bytes=size_bytes,
                    pttype="dos",
                    ptuuid=ptuuid,
                    serial=disk.serial,
                )
            )
            devices.append(
                BlockDevice(
                    name=partition,
                    kind="part",
                    parent=disk.device,
                    major_minor=f"253:{index * 16 + 1}",
                    size_bytes=size_bytes - 2**20,  # the first MiB holds the partition table
                    fstype="ext4",
                    uuid=filesystem_uuid(disk.disk_id),
                    partuuid=f"{ptuuid}-01",
                    mountpoint="/",
                )
            )
        else:  # data disks carry the filesystem directly, as ECS formatting guides do
            devices.append(
                BlockDevice(
                    name=disk.device,
                    kind="disk",
                    parent="",
                    major_minor=major_minor,
                    size_bytes=size_bytes,
                    fstype="ext4",
                    uuid=filesystem_uuid(disk.disk_id),
                    serial=disk.serial,
                    mountpoint=box.data_mountpoints[disk.device],
                )
            )
    return devices


def mounts(box: GuestSandbox) -> list[Mount]:
    system_size_mb = box.system_disk.size_gib * 1024
    found = [
        Mount(
            source=f"/dev/{partition_name(box.system_disk.device)}",
            fstype="ext4",
            target="/",
            size_mb=system_size_mb,
            avail_mb=box.spec.system_disk_free_mb,
        )
    ]
    for disk in box.data_disks:
        size_mb = disk.size_gib * 1024
        found.append(
            Mount(
                source=f"/dev/{disk.device}",
                fstype="ext4",
                target=box.data_mountpoints[disk.device],
                size_mb=size_mb,
                avail_mb=size_mb - size_mb // 100,  # a freshly formatted data disk: ~1% used
            )
        )
    return found


def _bash_array(name: str, values: list[str] | list[int]) -> str:
    return f"{name}=(" + " ".join(shlex.quote(str(value)) for value in values) + ")"


def _lsblk_size(size_bytes: int) -> str:
    """lsblk's human size: powers of 1024, one decimal only when it is not zero ("40G", "1.8T")."""
    units = "BKMGTPE"
    value = float(size_bytes)
    exponent = 0
    while value >= 1024 and exponent < len(units) - 1:
        value /= 1024
        exponent += 1
    whole = int(value)
    tenths = round((value - whole) * 10)
    if tenths == 10:
        whole, tenths = whole + 1, 0
    return f"{whole}.{tenths}{units[exponent]}" if tenths else f"{whole}{units[exponent]}"


def _df_size(size_mb: int) -> str:
    """df -h's size: rounded up, one decimal below 10 ("9.6G", "22G")."""
    if size_mb == 0:
        return "0"
    units = "MGTPE"
    value = float(size_mb)
    exponent = 0
    while value >= 1024 and exponent < len(units) - 1:
        value /= 1024
        exponent += 1
    if value < 10 and math.ceil(value * 10) < 100:
        return f"{math.ceil(value * 10) / 10:.1f}{units[exponent]}"
    return f"{math.ceil(value)}{units[exponent]}"


def _shim_preamble(root: str, devices: list[BlockDevice], mounts: list[Mount]) -> str:
    def percent(mount: Mount) -> str:
        used = mount.size_mb - mount.avail_mb
        return f"{math.ceil(used * 100 / mount.size_mb)}%" if mount.size_mb else "-"

    lines = [
        "#!/bin/bash",
        "# localcloud guest shim for @TOOL@: answers for the emulated instance's disks, not the host's.",
        "# Generated by localcloud/guest/shims.py; the data below is this guest's.",
        "set -u",
        f"GUEST_ROOT_DIR={shlex.quote(root)}",
        _bash_array("DEV_NAME", [d.name for d in devices]),
        _bash_array("DEV_TYPE", [d.kind for d in devices]),
        _bash_array("DEV_PARENT", [d.parent for d in devices]),
        _bash_array("DEV_MAJMIN", [d.major_minor for d in devices]),
        _bash_array("DEV_SIZE_BYTES", [d.size_bytes for d in devices]),
        _bash_array("DEV_SIZE_HUMAN", [_lsblk_size(d.size_bytes) for d in devices]),
        _bash_array("DEV_FSTYPE", [d.fstype for d in devices]),
        _bash_array("DEV_UUID", [d.uuid for d in devices]),
        _bash_array("DEV_PARTUUID", [d.partuuid for d in devices]),
        _bash_array("DEV_PTTYPE", [d.pttype for d in devices]),
        _bash_array("DEV_PTUUID", [d.ptuuid for d in devices]),
        _bash_array("DEV_SERIAL", [d.serial for d in devices]),
        _bash_array("DEV_MOUNT", [d.mountpoint for d in devices]),
        _bash_array("MNT_SOURCE", [m.source for m in mounts]),
        _bash_array("MNT_FSTYPE", [m.fstype for m in mounts]),
        _bash_array("MNT_TARGET", [m.target for m in mounts]),
        _bash_array("MNT_SIZE_K", [m.size_mb * 1024 for m in mounts]),
        _bash_array("MNT_USED_K", [(m.size_mb - m.avail_mb) * 1024 for m in mounts]),
        _bash_array("MNT_AVAIL_K", [m.avail_mb * 1024 for m in mounts]),
        _bash_array("MNT_SIZE_M", [m.size_mb for m in mounts]),
        _bash_array("MNT_USED_M", [m.size_mb - m.avail_mb for m in mounts]),
        _bash_array("MNT_AVAIL_M", [m.avail_mb for m in mounts]),
        _bash_array("MNT_SIZE_H", [_df_size(m.size_mb) for m in mounts]),
        _bash_array("MNT_USED_H", [_df_size(m.size_mb - m.avail_mb) for m in mounts]),
        _bash_array("MNT_AVAIL_H", [_df_size(m.avail_mb) for m in mounts]),
        _bash_array("MNT_PCENT", [percent(m) for m in mounts]),
    ]
    return "\n".join(lines) + "\n\n" + _source("shim-common.sh")
