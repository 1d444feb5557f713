"""A fake guest root filesystem that Cloud Assistant (RunCommand) scripts run against.

This is a dev/test emulator: the script is arbitrary user shell and runs on the HOST, as the
current user, under the host's real bash. Nothing stops a hostile script; the sandbox only makes
an honest script see a guest instead of the host.

How a guest is faked:

* Files. ``GuestSandbox`` builds a throwaway tree (``root``) that looks like a small Linux root:
  /bin /sbin /lib /usr/bin /usr/lib /etc /root /home /var/log /tmp, /etc/os-release,
  /etc/hostname and an /etc/fstab generated from the attached disks. The system disk's partition
  (``/dev/vda1``) is mounted on / and data disks on /data, /data1, ... (in device-name order),
  all by filesystem UUID. UUIDs are uuid5 of the disk id, so a scenario always yields the same
  ones. ``fstab_mismatch`` adds an entry (/mnt/olddata) whose UUID belongs to no attached disk:
  the leftover of a detached data disk, the classic reason an image fails to boot.
  ``missing_dirs`` are removed after everything else is written. Planted ``secrets`` get content
  typical of their kind, next to harmless look-alikes (authorized_keys, .bashrc, *.pub) so a
  checker has to tell them apart.
* Paths. Scripts shipped with Bakery prefix guest paths with ``${GUEST_ROOT:-}``: the sandbox sets
  GUEST_ROOT to ``root``; on a real instance it is unset and the same script reads /etc/fstab.
  cwd is ``root`` + working_dir (created if missing, except inside a ``missing_dirs`` entry, where
  the script starts in ``root`` instead of repairing the guest), HOME is ``root``/root and
  TMPDIR ``root``/tmp (when present). ``env`` is applied last and may override any of these.
* Devices. The host's df/lsblk/blkid would describe the host, so generated bash shims that
  describe the guest's disks come first on PATH (then the host's /usr/bin:/bin). Each shim
  understands the flags listed in its own header and fails loudly (exit 2) on any other, so a
  script never silently gets host data or a wrong format. The shims need bash >= 4.4 on the host.
* Limits. Like Cloud Assistant, the output (stdout and stderr interleaved) keeps its first
  24 KiB and reports the rest in ``dropped``. A script still running after ``timeout_s`` seconds
  has its whole process group killed; the result then has ``timed_out=True`` and exit code 124
  (the code GNU ``timeout`` uses). A script killed by signal N reports 128+N, as a shell would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import posixpath
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

OUTPUT_LIMIT_BYTES = 24 * 1024
TIMEOUT_EXIT_CODE = 124

# Fixed namespace: filesystem UUIDs must be stable across runs and processes.
_FILESYSTEM_UUID_NAMESPACE = uuid.UUID("6f1c2a7e-5d0b-4c47-9b53-0c8e6a1f7d21")
_DEVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9]*$")
_DETACHED_DISK_MOUNTPOINT = "/mnt/olddata"
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


def filesystem_uuid(disk_id: str) -> str:
    """The UUID of the filesystem on a disk (its root partition for the system disk)."""
    return str(uuid.uuid5(_FILESYSTEM_UUID_NAMESPACE, f"filesystem/{disk_id}"))


def disk_serial(disk_id: str) -> str:
    """The virtio serial ECS gives a cloud disk: its id without the ``d-`` prefix."""
    return disk_id[2:] if disk_id.startswith("d-") else disk_id


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


@dataclass
class ScriptResult:
    exit_code: int
    output: str  # stdout and stderr interleaved, first OUTPUT_LIMIT_BYTES bytes
    dropped: int  # bytes beyond OUTPUT_LIMIT_BYTES
    timed_out: bool


@dataclass
class _BlockDevice:
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
class _Mount:
    """One mounted filesystem as df reports it."""

    source: str
    fstype: str
    target: str
    size_mb: int
    avail_mb: int


class GuestSandbox:
    """A throwaway directory tree standing in for one instance's root filesystem."""

    def __init__(
        self,
        instance_id: str,
        spec: GuestSpec,
        disks: list[GuestDisk],
        base_dir: str | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.spec = spec
        self.disks = list(disks)
        self._system_disk, self._data_disks = _split_disks(self.disks)
        system_size_mb = self._system_disk.size_gib * 1024
        if spec.system_disk_free_mb > system_size_mb:
            raise ValueError(
                f"guest.system_disk_free_mb={spec.system_disk_free_mb} exceeds the "
                f"{self._system_disk.size_gib} GiB system disk ({system_size_mb} MB)"
            )
        # GuestSpec may be built directly, without from_mapping: "/" here would wipe the whole root.
        for path in [*spec.missing_dirs, *spec.secrets]:
            if not path.startswith("/") or posixpath.normpath(path) in ("/", "//"):
                raise ValueError(f"guest path {path!r} is not an absolute path below /")
        self._missing_dirs = [posixpath.normpath(path) for path in spec.missing_dirs]
        for secret in spec.secrets:
            blocking = self._missing_dir_above(posixpath.normpath(secret))
            if blocking:
                raise ValueError(f"guest.secrets: {secret!r} lies in missing dir {blocking!r}")

        # A private parent even when base_dir is given, so cleanup() never removes the caller's files.
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", instance_id)
        self.base_dir = os.path.realpath(tempfile.mkdtemp(prefix=f"localcloud-guest-{safe_id}-", dir=base_dir))
        self.root = os.path.join(self.base_dir, "rootfs")
        self._shim_dir = os.path.join(self.base_dir, "shims")
        self._script_dir = os.path.join(self.base_dir, "scripts")
        self._cleaned = False
        try:
            for directory in (self.root, self._shim_dir, self._script_dir):
                os.mkdir(directory, 0o755)
            self.data_mountpoints = {
                disk.device: "/data" if index == 0 else f"/data{index}" for index, disk in enumerate(self._data_disks)
            }
            # fstab keeps pointing at a disk that is gone; only with fstab_mismatch.
            self.detached_disk_uuid: str | None = (
                str(uuid.uuid5(_FILESYSTEM_UUID_NAMESPACE, f"detached/{instance_id}")) if spec.fstab_mismatch else None
            )
            self._build_tree()
            self._write_shims()
        except BaseException:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            raise

    # ----------------------------------------------------------------- public API

    def run(
        self,
        script: str,
        *,
        timeout_s: int = 60,
        working_dir: str = "/root",
        env: dict[str, str] | None = None,
    ) -> ScriptResult:
        """Run ``script`` under the host's bash as if Cloud Assistant ran it on the guest."""
        if self._cleaned:
            raise RuntimeError(f"guest sandbox of {self.instance_id} was cleaned up")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        cwd = self._working_dir_path(working_dir)
        script_fd, script_path = tempfile.mkstemp(prefix="command-", suffix=".sh", dir=self._script_dir)
        with os.fdopen(script_fd, "wb") as script_file:
            script_file.write(script.encode("utf-8"))
        try:
            return self._execute(script_path, cwd, self._script_env(env), timeout_s)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(script_path)

    def cleanup(self) -> None:
        """Remove the whole sandbox (root, shims, scripts). Safe to call twice."""
        self._cleaned = True
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def guest_path(self, path: str) -> str:
        """Host path of a guest path; '..' cannot climb out of the sandbox root."""
        if not path.startswith("/"):
            raise ValueError(f"guest path must be absolute, got {path!r}")
        normalized = posixpath.normpath(path)
        if normalized.startswith("//"):  # POSIX keeps a leading '//'; the guest does not care
            normalized = "/" + normalized.lstrip("/")
        return self.root if normalized == "/" else self.root + normalized

    def __enter__(self) -> GuestSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()

    # ----------------------------------------------------------------- the tree

    def _missing_dir_above(self, guest_path: str) -> str | None:
        for missing in self._missing_dirs:
            if guest_path == missing or guest_path.startswith(missing.rstrip("/") + "/"):
                return missing
        return None

    def _write_file(self, guest_path: str, content: str, mode: int = 0o644) -> None:
        host_path = self.guest_path(guest_path)
        os.makedirs(os.path.dirname(host_path), exist_ok=True)
        with open(host_path, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(host_path, mode)

    def _build_tree(self) -> None:
        for directory in _GUEST_DIRS:
            os.makedirs(self.guest_path(directory), exist_ok=True)
        os.chmod(self.guest_path("/tmp"), 0o1777)
        os.chmod(self.guest_path("/root"), 0o700)
        # Placeholders so the system dirs are not suspiciously empty.
        for binary in ("/bin/bash", "/bin/sh", "/sbin/init", "/usr/bin/env"):
            self._write_file(binary, "# localcloud placeholder for a guest binary\n", 0o755)
        for library in ("/lib/libc.so.6", "/usr/lib/libc.so.6"):
            self._write_file(library, "# localcloud placeholder for a guest library\n")
        for mountpoint in [*self.data_mountpoints.values(), _DETACHED_DISK_MOUNTPOINT]:
            os.makedirs(self.guest_path(mountpoint), exist_ok=True)

        self._write_file("/etc/os-release", _os_release(self.spec.os))
        self._write_file("/etc/hostname", _hostname(self.instance_id) + "\n")
        self._write_file("/etc/fstab", self._fstab())
        for guest_path, content, mode in _harmless_files(self.instance_id):
            self._write_file(guest_path, content, mode)
        os.chmod(self.guest_path("/root/.ssh"), 0o700)
        # Secrets last: a planted secret replaces a harmless file at the same path.
        for secret in self.spec.secrets:
            if os.path.isdir(self.guest_path(secret)):
                raise ValueError(f"guest.secrets: {secret!r} is a directory of the guest tree")
            self._write_file(secret, _secret_content(secret), 0o600)
        for missing in self._missing_dirs:
            host_path = self.guest_path(missing)
            if os.path.isdir(host_path) and not os.path.islink(host_path):
                shutil.rmtree(host_path)
            elif os.path.lexists(host_path):
                os.unlink(host_path)

    def _fstab(self) -> str:
        lines = [
            "#",
            "# /etc/fstab",
            "# Accessible filesystems, by reference, are maintained under '/dev/disk/'.",
            "# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.",
            "#",
            _fstab_line(filesystem_uuid(self._system_disk.disk_id), "/", "1 1"),
        ]
        for disk in self._data_disks:
            lines.append(_fstab_line(filesystem_uuid(disk.disk_id), self.data_mountpoints[disk.device]))
        if self.detached_disk_uuid:
            lines.append(_fstab_line(self.detached_disk_uuid, _DETACHED_DISK_MOUNTPOINT))
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------- devices and shims

    def _block_devices(self) -> list[_BlockDevice]:
        devices: list[_BlockDevice] = []
        for index, disk in enumerate(sorted(self.disks, key=lambda d: _device_sort_key(d.device))):
            size_bytes = disk.size_gib * 2**30
            major_minor = f"253:{index * 16}"
            if disk.disk_type == "system":
                ptuuid = uuid.uuid5(_FILESYSTEM_UUID_NAMESPACE, f"ptable/{disk.disk_id}").hex[:8]
                partition = _partition_name(disk.device)
                devices.append(
                    _BlockDevice(
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
                    _BlockDevice(
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
                    _BlockDevice(
                        name=disk.device,
                        kind="disk",
                        parent="",
                        major_minor=major_minor,
                        size_bytes=size_bytes,
                        fstype="ext4",
                        uuid=filesystem_uuid(disk.disk_id),
                        serial=disk.serial,
                        mountpoint=self.data_mountpoints[disk.device],
                    )
                )
        return devices

    def _mounts(self) -> list[_Mount]:
        system_size_mb = self._system_disk.size_gib * 1024
        mounts = [
            _Mount(
                source=f"/dev/{_partition_name(self._system_disk.device)}",
                fstype="ext4",
                target="/",
                size_mb=system_size_mb,
                avail_mb=self.spec.system_disk_free_mb,
            )
        ]
        for disk in self._data_disks:
            size_mb = disk.size_gib * 1024
            mounts.append(
                _Mount(
                    source=f"/dev/{disk.device}",
                    fstype="ext4",
                    target=self.data_mountpoints[disk.device],
                    size_mb=size_mb,
                    avail_mb=size_mb - size_mb // 100,  # a freshly formatted data disk: ~1% used
                )
            )
        return mounts

    def _write_shims(self) -> None:
        preamble = _shim_preamble(self.root, self._block_devices(), self._mounts())
        for name, body in (("df", _DF_SHIM), ("lsblk", _LSBLK_SHIM), ("blkid", _BLKID_SHIM)):
            path = os.path.join(self._shim_dir, name)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(preamble.replace("@TOOL@", name) + body)
            os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)

    # ----------------------------------------------------------------- running

    def _working_dir_path(self, working_dir: str) -> str:
        if not working_dir.startswith("/"):
            raise ValueError(f"working_dir must be an absolute guest path, got {working_dir!r}")
        # Creating a dir inside a missing one would repair the guest behind the script's back.
        if self._missing_dir_above(posixpath.normpath(working_dir)):
            return self.root
        host_path = self.guest_path(working_dir)
        os.makedirs(host_path, exist_ok=True)
        return host_path

    def _script_env(self, extra: dict[str, str] | None) -> dict[str, str]:
        script_env = {
            "PATH": f"{self._shim_dir}:/usr/bin:/bin",
            "GUEST_ROOT": self.root,
            "HOME": self.guest_path("/root"),
        }
        if os.path.isdir(self.guest_path("/tmp")):  # keeps mktemp & co. inside the guest
            script_env["TMPDIR"] = self.guest_path("/tmp")
        script_env.update(extra or {})
        return script_env

    def _execute(self, script_path: str, cwd: str, script_env: dict[str, str], timeout_s: int) -> ScriptResult:
        process = subprocess.Popen(
            [_bash_path(), script_path],
            cwd=cwd,
            env=script_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group, so a timeout kills the script's children too
        )
        assert process.stdout is not None
        collector = _OutputCollector(process.stdout)
        collector.start()
        exited = _wait_unreaped(process, time.monotonic() + timeout_s)
        # The group is killed before the leader is reaped, so its id cannot belong to anyone else yet.
        # After a normal exit this ends background jobs the script left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        returncode = process.wait()
        collector.join(timeout=2)  # a process that escaped the group may keep the pipe open
        if not collector.is_alive():
            process.stdout.close()
        output, dropped = collector.result()
        if not exited:
            exit_code = TIMEOUT_EXIT_CODE
        elif returncode < 0:
            exit_code = 128 - returncode
        else:
            exit_code = returncode
        return ScriptResult(exit_code=exit_code, output=output, dropped=dropped, timed_out=not exited)


class _OutputCollector(threading.Thread):
    """Drains the script's pipe, keeping only what Cloud Assistant would report."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._kept = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        while True:
            try:
                chunk = self._stream.read1(65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            with self._lock:
                room = OUTPUT_LIMIT_BYTES - len(self._kept)
                self._kept += chunk[:room]
                self._dropped += max(0, len(chunk) - room)

    def result(self) -> tuple[str, int]:
        with self._lock:
            return self._kept.decode("utf-8", errors="replace"), self._dropped


def _wait_unreaped(process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait for exit without reaping (WNOWAIT), so the process group id stays ours to kill."""
    delay = 0.001
    while True:
        if hasattr(os, "waitid"):
            if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        elif process.poll() is not None:  # no waitid (macOS): reaping early is the best we can do
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.02)


def _bash_path() -> str:
    if os.path.exists("/bin/bash"):
        return "/bin/bash"
    found = shutil.which("bash")
    if not found:
        raise RuntimeError("the guest sandbox needs bash on the host")
    return found


# --------------------------------------------------------------------- helpers for the tree


def _split_disks(disks: list[GuestDisk]) -> tuple[GuestDisk, list[GuestDisk]]:
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
    data_disks = sorted((disk for disk in disks if disk.disk_type == "data"), key=lambda d: _device_sort_key(d.device))
    return system_disks[0], data_disks


def _device_sort_key(device: str) -> tuple[int, str]:
    return (len(device), device)  # vdz before vdaa, as the kernel hands them out


def _partition_name(device: str) -> str:
    return f"{device}p1" if device[-1].isdigit() else f"{device}1"  # nvme0n1 -> nvme0n1p1


def _fstab_line(filesystem: str, mountpoint: str, dump_pass: str = "0 0") -> str:
    return f"UUID={filesystem} {mountpoint:<15} ext4    defaults        {dump_pass}"


def _hostname(instance_id: str) -> str:
    return "iZ" + instance_id.removeprefix("i-") + "Z"  # ECS names hosts iZ<instance id>Z


_OS_RELEASES = {
    "linux": ("Alibaba Cloud Linux", "3 (OpenAnolis Edition)", "alinux", "3", "rhel fedora centos anolis"),
    "alinux": ("Alibaba Cloud Linux", "3 (OpenAnolis Edition)", "alinux", "3", "rhel fedora centos anolis"),
    "ubuntu": ("Ubuntu", "22.04.4 LTS (Jammy Jellyfish)", "ubuntu", "22.04", "debian"),
    "debian": ("Debian GNU/Linux", "12 (bookworm)", "debian", "12", ""),
    "centos": ("CentOS Linux", "7 (Core)", "centos", "7", "rhel fedora"),
}


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


def _fake_token(seed: str, length: int, alphabet: str = "") -> str:
    """Deterministic random-looking text, so the same scenario always plants the same secrets."""
    alphabet = alphabet or "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    digest = b""
    counter = 0
    while len(digest) < length:
        digest += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:length])


def _fake_base64_lines(seed: str, prefix: str, line_count: int) -> str:
    body = prefix + base64.b64encode(_fake_token(seed, 48 * line_count).encode()).decode()
    return "\n".join(body[i : i + 64] for i in range(0, 64 * line_count, 64))


def _private_key(seed: str, label: str) -> str:
    # The armor is assembled here, not written out, so secret scanners leave this source alone.
    armor = f"{label} PRIVATE KEY".strip()
    body_prefix = "b3BlbnNzaC1rZXktdjEAAAAA" if label == "OPENSSH" else "MIIEpAIBAAKCAQEA"
    body = _fake_base64_lines(seed, body_prefix, 6)
    return f"-----BEGIN {armor}-----\n{body}\n-----END {armor}-----\n"


def _access_key_pair(seed: str) -> tuple[str, str]:
    return "LTAI5t" + _fake_token(seed + "/id", 18), _fake_token(seed + "/secret", 30)


def _secret_content(guest_path: str) -> str:
    name = posixpath.basename(guest_path)
    if name in ("id_ed25519", "id_ecdsa"):
        return _private_key(guest_path, "OPENSSH")
    if name == "id_dsa":
        return _private_key(guest_path, "DSA")
    if name == "id_rsa" or name.endswith((".pem", ".key")):
        return _private_key(guest_path, "RSA")
    if guest_path.endswith("/.aliyun/config.json"):
        key_id, key_secret = _access_key_pair(guest_path)
        profile = {
            "current": "default",
            "profiles": [
                {
                    "name": "default",
                    "mode": "AK",
                    "access_key_id": key_id,
                    "access_key_secret": key_secret,
                    "region_id": "cn-hangzhou",
                    "output_format": "json",
                    "language": "en",
                }
            ],
            "meta_path": "",
        }
        return json.dumps(profile, indent=2) + "\n"
    if name in (".bash_history", ".zsh_history", ".sh_history"):
        password = _fake_token(guest_path, 10)
        return (
            "ls -la\n"
            "systemctl status nginx\n"
            f"mysql -uroot -p{password}! -h 127.0.0.1\n"
            "tail -n 100 /var/log/messages\n"
            "df -h\n"
        )
    if name == ".env" or name.startswith(".env.") or name.endswith(".env") or "credentials" in name:
        key_id, key_secret = _access_key_pair(guest_path)
        return f"ALIBABA_CLOUD_ACCESS_KEY_ID={key_id}\nALIBABA_CLOUD_ACCESS_KEY_SECRET={key_secret}\n"
    return f"password = {_fake_token(guest_path, 24)}\n"


def _harmless_files(instance_id: str) -> list[tuple[str, str, int]]:
    """Files that look sensitive to a naive checker but are fine in an image."""
    public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + _fake_token(instance_id + "/pub", 43)
    return [
        ("/root/.ssh/authorized_keys", f"{public_key} ops@bastion\n", 0o600),
        ("/root/.ssh/id_ed25519.pub", f"{public_key} root@{_hostname(instance_id)}\n", 0o644),
        (
            "/root/.bashrc",
            "# .bashrc\nalias rm='rm -i'\nalias cp='cp -i'\nalias mv='mv -i'\n"
            "if [ -f /etc/bashrc ]; then\n    . /etc/bashrc\nfi\n",
            0o644,
        ),
        ("/root/.bash_profile", "# .bash_profile\n[ -f ~/.bashrc ] && . ~/.bashrc\n", 0o644),
        ("/home/admin/.bashrc", "# .bashrc\nexport PATH=$HOME/bin:$PATH\n", 0o644),
        ("/etc/hosts", "127.0.0.1   localhost localhost.localdomain\n::1         localhost\n", 0o644),
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nadmin:x:1000:1000::/home/admin:/bin/bash\n",
            0o644,
        ),
        (
            "/etc/ssh/sshd_config",
            "PermitRootLogin yes\nPasswordAuthentication no\nUseDNS no\n",
            0o600,
        ),
        ("/var/log/messages", "systemd[1]: Started Aliyun Assist.\n", 0o600),
    ]


# --------------------------------------------------------------------- shim sources


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


def _shim_preamble(root: str, devices: list[_BlockDevice], mounts: list[_Mount]) -> str:
    def percent(mount: _Mount) -> str:
        used = mount.size_mb - mount.avail_mb
        return f"{math.ceil(used * 100 / mount.size_mb)}%" if mount.size_mb else "-"

    lines = [
        "#!/bin/bash",
        "# localcloud guest shim for @TOOL@: answers for the emulated instance's disks, not the host's.",
        "# Generated by localcloud/guest/sandbox.py; the data below is this guest's.",
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
    return "\n".join(lines) + "\n" + _SHIM_COMMON


_SHIM_COMMON = r"""
unsupported() {  # an unknown flag must not quietly yield host data or a wrong format
    echo "$TOOL: $1 is not supported by the localcloud guest shim" >&2
    exit 2
}

# print_table ALIGN: TABLE holds ${#ALIGN} cells per row; ALIGN has one L or R per column.
print_table() {
    local align=$1 ncols=${#1} i col cell line
    local -a width=()
    for ((i = 0; i < ${#TABLE[@]}; i++)); do
        col=$((i % ncols))
        cell=${TABLE[i]}
        if ((${#cell} > ${width[col]:-0})); then width[col]=${#cell}; fi
    done
    for ((i = 0; i < ${#TABLE[@]}; i += ncols)); do
        line=""
        for ((col = 0; col < ncols; col++)); do
            cell=${TABLE[i + col]}
            if [[ ${align:col:1} == R ]]; then
                printf -v cell '%*s' "${width[col]}" "$cell"
            elif ((col < ncols - 1)); then
                printf -v cell '%-*s' "${width[col]}" "$cell"
            fi
            line+=$cell
            if ((col < ncols - 1)); then line+=" "; fi
        done
        printf '%s\n' "$line"
    done
}
"""

_DF_SHIM = r"""
# Flags: -P/--portability, -k, -m, -h/--human-readable, -T/--print-type, -a, -l,
# --output[=source,fstype,size,used,avail,pcent,target], then optional paths.
# Paths are guest paths or paths under $GUEST_ROOT.
TOOL=df
unit=k posix=0 show_type=0 output_fields="" paths=()
while (($#)); do
    arg=$1
    shift
    case $arg in
    --) paths+=("$@"); break ;;
    --portability) posix=1 ;;
    --human-readable) unit=h ;;
    --print-type) show_type=1 ;;
    --all | --local) ;;
    --output) output_fields=source,fstype,size,used,avail,pcent,target ;;
    --output=*) output_fields=${arg#--output=} ;;
    --*) unsupported "$arg" ;;
    -?*)
        for ((i = 1; i < ${#arg}; i++)); do
            case ${arg:i:1} in
            P) posix=1 ;;
            k) unit=k ;;
            m) unit=m ;;
            h) unit=h ;;
            T) show_type=1 ;;
            a | l) ;;
            *) unsupported "-${arg:i:1}" ;;
            esac
        done
        ;;
    *) paths+=("$arg") ;;
    esac
done
if [[ -n $output_fields ]] && ((posix || show_type)); then
    echo "df: options --output and -P/-T are mutually exclusive" >&2
    exit 1
fi

# mount_index PATH: sets MOUNT_INDEX to the mount holding PATH; fails if PATH does not exist.
mount_index() {
    local path=$1 host guest target i best_len=-1
    [[ $path == /* ]] || path="$PWD/$path"
    host=$GUEST_ROOT_DIR$path
    if [[ $path == "$GUEST_ROOT_DIR" || $path == "$GUEST_ROOT_DIR"/* ]]; then host=$path; fi
    [[ -e $host ]] || return 1
    host=$(realpath -m -- "$host")
    guest=/
    if [[ $host == "$GUEST_ROOT_DIR"/* ]]; then guest=${host#"$GUEST_ROOT_DIR"}; fi
    for i in "${!MNT_TARGET[@]}"; do
        target=${MNT_TARGET[i]}
        [[ $target == / || $guest == "$target" || $guest == "$target"/* ]] || continue
        if ((${#target} > best_len)); then
            MOUNT_INDEX=$i
            best_len=${#target}
        fi
    done
}

status=0 rows=()
if ((${#paths[@]} == 0)); then
    rows=("${!MNT_TARGET[@]}")
else
    for path in "${paths[@]}"; do
        if mount_index "$path"; then
            rows+=("$MOUNT_INDEX")
        else
            echo "df: $path: No such file or directory" >&2
            status=1
        fi
    done
fi
((${#rows[@]})) || exit "$status"

# Headers as GNU df prints them: POSIX mode names the block size, --output abbreviates "Avail".
case $unit in
k) blocks_header=1K-blocks posix_blocks_header=1024-blocks ;;
m) blocks_header=1M-blocks posix_blocks_header=1048576-blocks ;;
h) blocks_header=Size posix_blocks_header=Size ;;
esac
((posix)) && blocks_header=$posix_blocks_header
avail_header=Available pcent_header=Use%
[[ $unit == h || -n $output_fields ]] && avail_header=Avail
((posix)) && [[ $unit != h ]] && pcent_header=Capacity
size_of() { local -n values="MNT_$1_${unit^^}"; CELL=${values[$2]}; }

if [[ -z $output_fields ]]; then
    output_fields=source
    ((show_type)) && output_fields+=,fstype
    output_fields+=,size,used,avail,pcent,target
fi
IFS=, read -r -a fields <<<"$output_fields"
TABLE=() align=""
for field in "${fields[@]}"; do
    case $field in
    source) TABLE+=(Filesystem) align+=L ;;
    fstype) TABLE+=(Type) align+=L ;;
    size) TABLE+=("$blocks_header") align+=R ;;
    used) TABLE+=(Used) align+=R ;;
    avail) TABLE+=("$avail_header") align+=R ;;
    pcent) TABLE+=("$pcent_header") align+=R ;;
    target) TABLE+=("Mounted on") align+=L ;;
    *) unsupported "--output field '$field'" ;;
    esac
done
for row in "${rows[@]}"; do
    for field in "${fields[@]}"; do
        case $field in
        source) TABLE+=("${MNT_SOURCE[row]}") ;;
        fstype) TABLE+=("${MNT_FSTYPE[row]}") ;;
        size) size_of SIZE "$row"; TABLE+=("$CELL") ;;
        used) size_of USED "$row"; TABLE+=("$CELL") ;;
        avail) size_of AVAIL "$row"; TABLE+=("$CELL") ;;
        pcent) TABLE+=("${MNT_PCENT[row]}") ;;
        target) TABLE+=("${MNT_TARGET[row]}") ;;
        esac
    done
done
print_table "$align"
exit "$status"
"""

_LSBLK_SHIM = r"""
# Flags: -r/--raw, -n/--noheadings, -d/--nodeps, -P/--pairs, -l/--list, -b/--bytes, -p/--paths,
# -f/--fs, -a/--all, -o/--output COLUMNS (a leading '+' adds to the defaults), then optional
# devices (/dev/vdb or vdb). Columns: NAME KNAME PATH PKNAME MAJ:MIN RM RO SIZE TYPE FSTYPE
# LABEL UUID PARTUUID PTTYPE PTUUID SERIAL MOUNTPOINT MOUNTPOINTS.
TOOL=lsblk
raw=0 pairs=0 headings=1 nodeps=0 bytes=0 full_paths=0 list=0 fs=0 columns="" devices=()
set_columns() { columns=$1; }
while (($#)); do
    arg=$1
    shift
    case $arg in
    --) devices+=("$@"); break ;;
    --raw) raw=1 ;;
    --pairs) pairs=1 ;;
    --noheadings) headings=0 ;;
    --nodeps) nodeps=1 ;;
    --list) list=1 ;;
    --bytes) bytes=1 ;;
    --paths) full_paths=1 ;;
    --fs) fs=1 ;;
    --all) ;;
    --output=*) set_columns "${arg#--output=}" ;;
    --output) (($#)) || unsupported "--output without columns"; set_columns "$1"; shift ;;
    --*) unsupported "$arg" ;;
    -?*)
        for ((i = 1; i < ${#arg}; i++)); do
            case ${arg:i:1} in
            r) raw=1 ;;
            P) pairs=1 ;;
            n) headings=0 ;;
            d) nodeps=1 ;;
            l) list=1 ;;
            b) bytes=1 ;;
            p) full_paths=1 ;;
            f) fs=1 ;;
            a) ;;
            o)
                if ((i + 1 < ${#arg})); then
                    set_columns "${arg:i+1}"
                else
                    (($#)) || unsupported "-o without columns"
                    set_columns "$1"
                    shift
                fi
                break
                ;;
            *) unsupported "-${arg:i:1}" ;;
            esac
        done
        ;;
    *) devices+=("$arg") ;;
    esac
done

default_columns=NAME,MAJ:MIN,RM,SIZE,RO,TYPE,MOUNTPOINT
((fs)) && default_columns=NAME,FSTYPE,LABEL,UUID,MOUNTPOINT
if [[ -z $columns ]]; then
    columns=$default_columns
elif [[ $columns == +* ]]; then
    columns=$default_columns,${columns#+}
fi
IFS=, read -r -a column_list <<<"${columns^^}"
for column in "${column_list[@]}"; do
    case $column in
    NAME | KNAME | PATH | PKNAME | MAJ:MIN | RM | RO | SIZE | TYPE | FSTYPE | LABEL) ;;
    UUID | PARTUUID | PTTYPE | PTUUID | SERIAL | MOUNTPOINT | MOUNTPOINTS) ;;
    *) echo "lsblk: unknown column: $column" >&2; exit 1 ;;
    esac
done

device_index() {  # device_index NAME-or-/dev/NAME: sets DEVICE_INDEX
    local name=${1#/dev/} i
    for i in "${!DEV_NAME[@]}"; do
        if [[ ${DEV_NAME[i]} == "$name" ]]; then DEVICE_INDEX=$i; return 0; fi
    done
    return 1
}
rows=() status=0
add_with_children() {
    local i=$1 j
    rows+=("$i")
    ((nodeps)) && return
    for j in "${!DEV_NAME[@]}"; do
        [[ ${DEV_PARENT[j]} == "${DEV_NAME[i]}" ]] && rows+=("$j")
    done
}
if ((${#devices[@]} == 0)); then
    for i in "${!DEV_NAME[@]}"; do
        [[ ${DEV_TYPE[i]} == disk ]] && add_with_children "$i"
    done
else
    found=0
    for device in "${devices[@]}"; do
        if device_index "$device"; then
            found=1
            if [[ ${DEV_TYPE[DEVICE_INDEX]} == disk ]]; then
                add_with_children "$DEVICE_INDEX"
            else
                rows+=("$DEVICE_INDEX")
            fi
        else
            echo "lsblk: $device: not a block device" >&2
            status=64
        fi
    done
    ((found)) || exit 32
fi

cell_value() {  # cell_value COLUMN INDEX: sets CELL
    local i=$2
    case $1 in
    NAME)
        CELL=${DEV_NAME[i]}
        ((full_paths)) && CELL=/dev/$CELL
        if ((!raw && !pairs && !list)) && [[ -n ${DEV_PARENT[i]} ]]; then CELL="\`-$CELL"; fi
        ;;
    KNAME) CELL=${DEV_NAME[i]} ;;
    PATH) CELL=/dev/${DEV_NAME[i]} ;;
    PKNAME) CELL=${DEV_PARENT[i]} ;;
    MAJ:MIN) CELL=${DEV_MAJMIN[i]} ;;
    RM | RO) CELL=0 ;;
    SIZE) if ((bytes)); then CELL=${DEV_SIZE_BYTES[i]}; else CELL=${DEV_SIZE_HUMAN[i]}; fi ;;
    TYPE) CELL=${DEV_TYPE[i]} ;;
    FSTYPE) CELL=${DEV_FSTYPE[i]} ;;
    LABEL) CELL="" ;;
    UUID) CELL=${DEV_UUID[i]} ;;
    PARTUUID) CELL=${DEV_PARTUUID[i]} ;;
    PTTYPE) CELL=${DEV_PTTYPE[i]} ;;
    PTUUID) CELL=${DEV_PTUUID[i]} ;;
    SERIAL) CELL=${DEV_SERIAL[i]} ;;
    MOUNTPOINT | MOUNTPOINTS) CELL=${DEV_MOUNT[i]} ;;
    esac
}

if ((pairs)); then
    for row in "${rows[@]}"; do
        line=""
        for column in "${column_list[@]}"; do
            cell_value "$column" "$row"
            line+="${line:+ }$column=\"$CELL\""
        done
        printf '%s\n' "$line"
    done
elif ((raw)); then
    ((headings)) && (IFS=" "; printf '%s\n' "${column_list[*]}")
    for row in "${rows[@]}"; do
        line="" sep=""
        for column in "${column_list[@]}"; do
            cell_value "$column" "$row"
            line+="$sep${CELL// /\\x20}"
            sep=" "
        done
        printf '%s\n' "$line"
    done
else
    TABLE=() align=""
    for column in "${column_list[@]}"; do
        case $column in RM | RO | SIZE) align+=R ;; *) align+=L ;; esac
        ((headings)) && TABLE+=("$column")
    done
    for row in "${rows[@]}"; do
        for column in "${column_list[@]}"; do
            cell_value "$column" "$row"
            TABLE+=("$CELL")
        done
    done
    print_table "$align"
fi
exit "$status"
"""

_BLKID_SHIM = r"""
# Flags: -s/--match-tag TAG (repeatable), -o/--output value|full|export|device, -U/--uuid UUID,
# -L/--label LABEL, -c/--cache-file FILE (ignored), -p, -g, -l (ignored), then optional devices.
# Tags: UUID BLOCK_SIZE TYPE PARTUUID (filesystems), PTUUID PTTYPE (the system disk itself).
# Exit status 2 when nothing matched, as blkid does.
TOOL=blkid
tags=() format=full devices=() find_uuid="" find_label="" lookup=0
while (($#)); do
    arg=$1
    shift
    case $arg in
    --) devices+=("$@"); break ;;
    -s | --match-tag) tags+=("${1:?}"); shift ;;
    -s*) tags+=("${arg#-s}") ;;
    --match-tag=*) tags+=("${arg#*=}") ;;
    -o | --output) format=${1:?}; shift ;;
    -o*) format=${arg#-o} ;;
    --output=*) format=${arg#*=} ;;
    -U | --uuid) find_uuid=${1:?}; lookup=1; shift ;;
    --uuid=*) find_uuid=${arg#*=}; lookup=1 ;;
    -L | --label) find_label=${1:?}; lookup=1; shift ;;
    --label=*) find_label=${arg#*=}; lookup=1 ;;
    -c | --cache-file) shift ;;
    -p | --probe | -g | --garbage-collect | -l | --list-one) ;;
    -*) unsupported "$arg" ;;
    *) devices+=("$arg") ;;
    esac
done
case $format in value | full | export | device) ;; *) unsupported "-o $format" ;; esac

if ((lookup)); then  # -U/-L print the matching device, like findfs
    if [[ -n $find_label ]]; then exit 2; fi  # guest filesystems carry no labels
    for i in "${!DEV_NAME[@]}"; do
        if [[ -n ${DEV_UUID[i]} && ${DEV_UUID[i]} == "$find_uuid" ]]; then
            echo "/dev/${DEV_NAME[i]}"
            exit 0
        fi
    done
    exit 2
fi

rows=()
if ((${#devices[@]} == 0)); then
    for i in "${!DEV_NAME[@]}"; do [[ -n ${DEV_FSTYPE[i]} ]] && rows+=("$i"); done
else
    for device in "${devices[@]}"; do
        name=${device#/dev/}
        for i in "${!DEV_NAME[@]}"; do [[ ${DEV_NAME[i]} == "$name" ]] && rows+=("$i"); done
    done
fi

wanted() {  # wanted TAG: is TAG selected by -s (all tags when there is no -s)
    local tag
    ((${#tags[@]} == 0)) && return 0
    for tag in "${tags[@]}"; do [[ ${tag^^} == "$1" ]] && return 0; done
    return 1
}
status=2
for i in "${rows[@]}"; do
    pairs=()
    if [[ -n ${DEV_FSTYPE[i]} ]]; then
        pairs+=(UUID "${DEV_UUID[i]}" BLOCK_SIZE 4096 TYPE "${DEV_FSTYPE[i]}")
        [[ -n ${DEV_PARTUUID[i]} ]] && pairs+=(PARTUUID "${DEV_PARTUUID[i]}")
    elif [[ -n ${DEV_PTTYPE[i]} ]]; then
        pairs+=(PTUUID "${DEV_PTUUID[i]}" PTTYPE "${DEV_PTTYPE[i]}")
    fi
    selected=()
    for ((p = 0; p < ${#pairs[@]}; p += 2)); do
        wanted "${pairs[p]}" && selected+=("${pairs[p]}" "${pairs[p + 1]}")
    done
    ((${#selected[@]})) || continue
    status=0
    device=/dev/${DEV_NAME[i]}
    case $format in
    device) echo "$device" ;;
    value) for ((p = 1; p < ${#selected[@]}; p += 2)); do echo "${selected[p]}"; done ;;
    export)
        echo "DEVNAME=$device"
        for ((p = 0; p < ${#selected[@]}; p += 2)); do echo "${selected[p]}=${selected[p + 1]}"; done
        echo
        ;;
    full)
        line="$device:"
        for ((p = 0; p < ${#selected[@]}; p += 2)); do line+=" ${selected[p]}=\"${selected[p + 1]}\""; done
        echo "$line"
        ;;
    esac
done
exit "$status"
"""
