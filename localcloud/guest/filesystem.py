"""The guest's root filesystem: a small Linux tree with /etc/os-release, /etc/hostname and an /etc/fstab
generated from the attached disks, planted secrets, and the ``missing_dirs`` removed last."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

from localcloud.guest.secrets import harmless_files, secret_content
from localcloud.guest.spec import filesystem_uuid, hostname

if TYPE_CHECKING:
    from localcloud.guest.sandbox import GuestSandbox

DETACHED_DISK_MOUNTPOINT = "/mnt/olddata"
_GUEST_DIRS = (
    "/bin",
    "/sbin",
    "/lib",
    "/usr/bin",
    "/usr/lib",
    "/etc",
    "/etc/ssh",
    "/root",
    "/home",
    "/home/admin",
    "/var/log",
    "/tmp",
    "/mnt",
)
_OS_RELEASES = {
    "linux": ("Alibaba Cloud Linux", "3 (OpenAnolis Edition)", "alinux", "3", "rhel fedora centos anolis"),
    "alinux": ("Alibaba Cloud Linux", "3 (OpenAnolis Edition)", "alinux", "3", "rhel fedora centos anolis"),
    "ubuntu": ("Ubuntu", "22.04.4 LTS (Jammy Jellyfish)", "ubuntu", "22.04", "debian"),
    "debian": ("Debian GNU/Linux", "12 (bookworm)", "debian", "12", ""),
    "centos": ("CentOS Linux", "7 (Core)", "centos", "7", "rhel fedora"),
}


def build_tree(box: GuestSandbox) -> None:
    """Write the whole guest tree under ``box.root``."""
    for directory in _GUEST_DIRS:
        os.makedirs(box.guest_path(directory), exist_ok=True)
    os.chmod(box.guest_path("/tmp"), 0o1777)
    os.chmod(box.guest_path("/root"), 0o700)
    # Placeholders so the system dirs are not suspiciously empty.
    for binary in ("/bin/bash", "/bin/sh", "/sbin/init", "/usr/bin/env"):
        _write_file(box, binary, "# localcloud placeholder for a guest binary\n", 0o755)
    for library in ("/lib/libc.so.6", "/usr/lib/libc.so.6"):
        _write_file(box, library, "# localcloud placeholder for a guest library\n")
    for mountpoint in [*box.data_mountpoints.values(), DETACHED_DISK_MOUNTPOINT]:
        os.makedirs(box.guest_path(mountpoint), exist_ok=True)

    _write_file(box, "/etc/os-release", _os_release(box.spec.os))
    _write_file(box, "/etc/hostname", hostname(box.instance_id) + "\n")
    _write_file(box, "/etc/fstab", _fstab(box))
    for guest_path, content, mode in harmless_files(box.instance_id):
        _write_file(box, guest_path, content, mode)
    os.chmod(box.guest_path("/root/.ssh"), 0o700)
    # Secrets last: a planted secret replaces a harmless file at the same path.
    for secret in box.spec.secrets:
        if os.path.isdir(box.guest_path(secret)):
            raise ValueError(f"guest.secrets: {secret!r} is a directory of the guest tree")
        _write_file(box, secret, secret_content(secret), 0o600)
    for missing in box.missing_dirs:
        host_path = box.guest_path(missing)
        if os.path.isdir(host_path) and not os.path.islink(host_path):
            shutil.rmtree(host_path)
        elif os.path.lexists(host_path):
            os.unlink(host_path)


def _write_file(box: GuestSandbox, guest_path: str, content: str, mode: int = 0o644) -> None:
    host_path = box.guest_path(guest_path)
    os.makedirs(os.path.dirname(host_path), exist_ok=True)
    with open(host_path, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(host_path, mode)


def _fstab(box: GuestSandbox) -> str:
    lines = [
        "#",
        "# /etc/fstab",
        "# Accessible filesystems, by reference, are maintained under '/dev/disk/'.",
        "# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.",
        "#",
        _fstab_line(filesystem_uuid(box.system_disk.disk_id), "/", "1 1"),
    ]
    for disk in box.data_disks:
        lines.append(_fstab_line(filesystem_uuid(disk.disk_id), box.data_mountpoints[disk.device]))
    if box.detached_disk_uuid:
        lines.append(_fstab_line(box.detached_disk_uuid, DETACHED_DISK_MOUNTPOINT))
    return "\n".join(lines) + "\n"


def _fstab_line(filesystem: str, mountpoint: str, dump_pass: str = "0 0") -> str:
    return f"UUID={filesystem} {mountpoint:<15} ext4    defaults        {dump_pass}"


def _os_release(os_name: str) -> str:
    name, version, os_id, version_id, id_like = _OS_RELEASES.get(
        os_name.lower(), (os_name, "", os_name.lower(), "", "")
    )
    pretty = f"{name} {version.split(' (')[0]}".strip() if version else name
    lines = [f'NAME="{name}"', f'VERSION="{version}"', f'ID="{os_id}"']
    if id_like:
        lines.append(f'ID_LIKE="{id_like}"')
    lines += [f'VERSION_ID="{version_id}"', f'PRETTY_NAME="{pretty}"']
    return "\n".join(lines) + "\n"
