"""The guest's root filesystem: a small Linux tree with /etc/os-release, /etc/hostname and an /etc/fstab
generated from the attached disks, planted secrets, and the ``missing_dirs`` removed last."""

from __future__ import annotations

import errno
import os
import posixpath
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


# One step of writing the tree: (what, guest path, content, mode); what is dir | file | chmod | secret | remove.
_Step = tuple[str, str, str, int]


def build_tree(box: GuestSandbox) -> None:
    """Write the whole guest tree under ``box.root``."""
    # Directories this build made or found: a file's parent among them needs no os.makedirs (three system
    # calls even when it exists). Scripts of many guests start at once and each call here waits for the
    # interpreter lock again, so fewer of them start the scripts sooner.
    made: set[str] = {box.root}
    for what, guest_path, content, mode in _steps(box):
        host_path = box.guest_path(guest_path)
        if what == "dir":
            os.makedirs(host_path, exist_ok=True)
            made.add(host_path)
        elif what == "chmod":
            os.chmod(host_path, mode)
        elif what in ("file", "secret"):
            if what == "secret" and os.path.isdir(host_path):
                raise ValueError(f"guest.secrets: {guest_path!r} is a directory of the guest tree")
            _write_file(box, guest_path, content, mode, made)
        elif os.path.isdir(host_path) and not os.path.islink(host_path):  # remove
            shutil.rmtree(host_path)
            made = {d for d in made if d != host_path and not d.startswith(host_path + "/")}
        elif os.path.lexists(host_path):
            os.unlink(host_path)


def check_tree(box: GuestSandbox) -> None:
    """Raise what ``build_tree`` would raise for this guest (its scenario's mistakes: a secret that is a
    directory of the tree, or below a file), without writing anything, so that a tree built later (off the
    caller's thread) fails where it always did. Host failures (a full disk) are not foreseen."""
    kinds: dict[str, str] = {"/": "dir"}

    def make_dirs(guest_path: str) -> None:  # os.makedirs(exist_ok=True), on `kinds`
        parts = [part for part in guest_path.split("/") if part]
        for depth in range(1, len(parts) + 1):
            path = "/" + "/".join(parts[:depth])
            kind = kinds.get(path)
            if kind == "file":
                if depth == len(parts):
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), box.guest_path(path))
                below = "/" + "/".join(parts[: depth + 1])
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), box.guest_path(below))
            kinds[path] = "dir"

    for what, guest_path, _, _ in _steps(box):
        path = "/" + "/".join(part for part in posixpath.normpath(guest_path).split("/") if part)
        if what == "dir":
            make_dirs(path)
        elif what in ("file", "secret"):
            if kinds.get(path) == "dir":
                if what == "secret":
                    raise ValueError(f"guest.secrets: {guest_path!r} is a directory of the guest tree")
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), box.guest_path(guest_path))
            make_dirs(posixpath.dirname(path))
            kinds[path] = "file"
        elif what == "remove":
            kinds = {p: k for p, k in kinds.items() if p != path and not p.startswith(path.rstrip("/") + "/")}


def _steps(box: GuestSandbox) -> list[_Step]:
    """How the tree is written, in order (build_tree does it, check_tree foresees its errors)."""
    steps: list[_Step] = [("dir", directory, "", 0) for directory in _GUEST_DIRS]
    steps += [("chmod", "/tmp", "", 0o1777), ("chmod", "/root", "", 0o700)]
    # Placeholders so the system dirs are not suspiciously empty.
    for binary in ("/bin/bash", "/bin/sh", "/sbin/init", "/usr/bin/env"):
        steps.append(("file", binary, "# localcloud placeholder for a guest binary\n", 0o755))
    for library in ("/lib/libc.so.6", "/usr/lib/libc.so.6"):
        steps.append(("file", library, "# localcloud placeholder for a guest library\n", 0o644))
    for mountpoint in [*box.data_mountpoints.values(), DETACHED_DISK_MOUNTPOINT]:
        steps.append(("dir", mountpoint, "", 0))
    steps.append(("file", "/etc/os-release", _os_release(box.spec.os), 0o644))
    steps.append(("file", "/etc/hostname", hostname(box.instance_id) + "\n", 0o644))
    steps.append(("file", "/etc/fstab", _fstab(box), 0o644))
    steps += [("file", guest_path, content, mode) for guest_path, content, mode in harmless_files(box.instance_id)]
    steps.append(("chmod", "/root/.ssh", "", 0o700))
    # Secrets last: a planted secret replaces a harmless file at the same path.
    steps += [("secret", secret, secret_content(secret), 0o600) for secret in box.spec.secrets]
    steps += [("remove", missing, "", 0) for missing in box.missing_dirs]
    return steps


def _write_file(
    box: GuestSandbox, guest_path: str, content: str, mode: int = 0o644, made: set[str] | None = None
) -> None:
    host_path = box.guest_path(guest_path)
    parent = os.path.dirname(host_path)
    if made is None or parent not in made:
        os.makedirs(parent, exist_ok=True)
        if made is not None:
            made.add(parent)
    # What open(host_path, "w", encoding="utf-8") writes (POSIX: no newline translation), in fewer calls.
    fd = os.open(host_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        data = content.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
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
