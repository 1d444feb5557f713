"""A fake guest root filesystem that Cloud Assistant (RunCommand) scripts run against.

This is a dev/test emulator, but the script is arbitrary shell from whoever calls the API: by default
it runs confined to the guest (user, mount, PID and network namespaces and a jail that holds the guest,
a read-only /usr and little else; see ``confine.py`` for how, for the ``confinement`` modes and for
``LOCALCLOUD_SANDBOX``). Where that is impossible it runs unconfined, as the current user, under the
host's bash, with a warning, and never while this process listens on a non-loopback address.

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
  Confined, every process the script started dies with it, even one that left its process group.

One module per concern: ``spec.py`` (GuestSpec, the disks), ``filesystem.py`` (the tree), ``secrets.py``
(planted secrets and their look-alikes), ``shims.py`` (df/lsblk/blkid), ``runner.py`` (running a script),
``confine.py`` (the jail and the modes); this module assembles them into one ``GuestSandbox``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import posixpath
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from localcloud.guest.confine import (
    ConfinementError,
    Jail,
    find_tools,
    namespace_unavailable_reason,
    remote_listeners,
    resolve_mode,
    run_confined,
    warn_unconfined,
)
from localcloud.guest.filesystem import build_tree, check_tree
from localcloud.guest.runner import ScriptResult, run_script
from localcloud.guest.shims import write_shims
from localcloud.guest.spec import FILESYSTEM_UUID_NAMESPACE, GuestDisk, GuestSpec, split_disks


class GuestSandbox:
    """A throwaway directory tree standing in for one instance's root filesystem."""

    def __init__(
        self,
        instance_id: str,
        spec: GuestSpec,
        disks: list[GuestDisk],
        base_dir: str | None = None,
        confinement: str | None = None,
        *,
        build: bool = True,
    ) -> None:
        """``confinement``: auto | namespace | none (default: ``$LOCALCLOUD_SANDBOX``, else auto).

        ``build=False`` only checks the guest now (the same errors, see filesystem.check_tree) and writes its
        tree when the first script runs (``build``), on whichever thread runs it."""
        self.instance_id = instance_id
        self.confinement = resolve_mode(confinement)
        self.spec = spec
        self.disks = list(disks)
        self.system_disk, self.data_disks = split_disks(self.disks)
        system_size_mb = self.system_disk.size_gib * 1024
        if spec.system_disk_free_mb > system_size_mb:
            raise ValueError(
                f"guest.system_disk_free_mb={spec.system_disk_free_mb} exceeds the "
                f"{self.system_disk.size_gib} GiB system disk ({system_size_mb} MB)"
            )
        # GuestSpec may be built directly, without from_mapping: "/" here would wipe the whole root.
        for path in [*spec.missing_dirs, *spec.secrets]:
            if not path.startswith("/") or posixpath.normpath(path) in ("/", "//"):
                raise ValueError(f"guest path {path!r} is not an absolute path below /")
        self.missing_dirs = [posixpath.normpath(path) for path in spec.missing_dirs]
        for secret in spec.secrets:
            blocking = self._missing_dir_above(posixpath.normpath(secret))
            if blocking:
                raise ValueError(f"guest.secrets: {secret!r} lies in missing dir {blocking!r}")

        # A private parent even when base_dir is given, so cleanup() never removes the caller's files.
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", instance_id)
        parent = base_dir if base_dir is not None else default_base_dir()
        prefix = f"localcloud-guest-{safe_id}-"
        if build:
            self.base_dir = os.path.realpath(tempfile.mkdtemp(prefix=prefix, dir=parent))
        else:  # named now, made by build(): a name no other sandbox of this process has, and random
            self.base_dir = os.path.join(
                _real_dir(parent), f"{prefix}{os.getpid()}-{next(_numbers)}-{uuid.uuid4().hex[:8]}"
            )
        self.root = os.path.join(self.base_dir, "rootfs")
        self.shim_dir = os.path.join(self.base_dir, "shims")
        self.script_dir = os.path.join(self.base_dir, "scripts")
        self._cleaned = False
        self._jail: Jail | None = None
        self._jail_lock = threading.Lock()  # the server runs commands from several threads
        self._built = False
        self._build_lock = threading.Lock()
        self.data_mountpoints = {
            disk.device: "/data" if index == 0 else f"/data{index}" for index, disk in enumerate(self.data_disks)
        }
        # fstab keeps pointing at a disk that is gone; only with fstab_mismatch.
        self.detached_disk_uuid: str | None = (
            str(uuid.uuid5(FILESYSTEM_UUID_NAMESPACE, f"detached/{instance_id}")) if spec.fstab_mismatch else None
        )
        try:
            if build:
                self.build()
            else:
                check_tree(self)
        except BaseException:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            raise

    def build(self) -> None:
        """Write the guest's tree and shims, once (a failed attempt leaves nothing, and the next one retries)."""
        with self._build_lock:
            if self._built:
                return
            try:
                if not os.path.isdir(self.base_dir):
                    os.mkdir(self.base_dir, 0o700)  # as mkdtemp makes it
                for directory in (self.root, self.shim_dir, self.script_dir):
                    os.mkdir(directory, 0o755)
                build_tree(self)
                write_shims(self)
            except BaseException:
                for directory in (self.root, self.shim_dir, self.script_dir):
                    shutil.rmtree(directory, ignore_errors=True)
                raise
            self._built = True

    # ----------------------------------------------------------------- public API

    def run(
        self,
        script: str,
        *,
        timeout_s: int = 60,
        working_dir: str = "/root",
        env: dict[str, str] | None = None,
    ) -> ScriptResult:
        """Run ``script`` under the host's bash as if Cloud Assistant ran it on the guest.

        ConfinementError (nothing ran) when it cannot be confined and may not run unconfined."""
        return self.prepare(script, timeout_s=timeout_s, working_dir=working_dir, env=env)()

    def prepare(
        self,
        script: str,
        *,
        timeout_s: int = 60,
        working_dir: str = "/root",
        env: dict[str, str] | None = None,
    ) -> Callable[[], ScriptResult]:
        """``run`` in two steps: everything that can refuse the script, now (the same errors as ``run``,
        ConfinementError included); the returned call runs it (and may still raise ConfinementError if the
        jail cannot be set up). Cloud Assistant uses the second step off its caller's thread."""
        if self._cleaned:
            raise RuntimeError(f"guest sandbox of {self.instance_id} was cleaned up")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        cwd = self._working_dir_path(working_dir)
        confined = self._confine()

        def execute() -> ScriptResult:
            if self._cleaned:
                raise RuntimeError(f"guest sandbox of {self.instance_id} was cleaned up")
            self.build()
            jail = self._jail_for_run() if confined else None
            script_fd, script_path = tempfile.mkstemp(prefix="command-", suffix=".sh", dir=self.script_dir)
            try:
                with os.fdopen(script_fd, "wb") as script_file:
                    script_file.write(script.encode("utf-8"))
                # The environment is read when the script starts: it depends on the guest (its /tmp),
                # which a script queued before this one may still change.
                script_env = self._script_env(env)
                if jail is not None:
                    # The working dir is made inside the jail: on the host, a symlink the script left in
                    # the guest could point mkdir anywhere.
                    return run_confined(jail, script_path, cwd, self.root, script_env, timeout_s)
                os.makedirs(cwd, exist_ok=True)
                return run_script(script_path, cwd, script_env, timeout_s)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(script_path)

        return execute

    @property
    def confined(self) -> bool:
        """Whether scripts run in namespaces (False: unconfined, on the host, as the current user)."""
        return self.confinement != "none" and namespace_unavailable_reason() is None

    def cleanup(self) -> None:
        """Remove the whole sandbox (root, shims, scripts). Safe to call twice. Its path is gone when this
        returns; the files themselves may be deleted a moment later, off the caller's thread (see _Reaper)."""
        self._cleaned = True
        _reaper.discard(self.base_dir)

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

    # ----------------------------------------------------------------- paths and environment

    def _missing_dir_above(self, guest_path: str) -> str | None:
        for missing in self.missing_dirs:
            if guest_path == missing or guest_path.startswith(missing.rstrip("/") + "/"):
                return missing
        return None

    def _working_dir_path(self, working_dir: str) -> str:
        if not working_dir.startswith("/"):
            raise ValueError(f"working_dir must be an absolute guest path, got {working_dir!r}")
        # Creating a dir inside a missing one would repair the guest behind the script's back.
        if self._missing_dir_above(posixpath.normpath(working_dir)):
            return self.root
        return self.guest_path(working_dir)

    def _confine(self) -> bool:
        """Whether to run in the jail (False: unconfined); ConfinementError when neither is allowed."""
        if self.confinement != "none":
            reason = namespace_unavailable_reason()
            if reason is None:
                return True
            if self.confinement == "namespace":
                raise ConfinementError(f"sandbox mode 'namespace', but scripts cannot be confined here: {reason}")
        else:
            reason = "sandbox mode 'none'"
        listeners = remote_listeners()
        if listeners:
            raise ConfinementError(
                f"refusing to run a script unconfined ({reason}) while this process listens on "
                f"{', '.join(listeners)}: that would be a remote shell on this host"
            )
        warn_unconfined(reason if self.confinement == "none" else f"no namespaces: {reason}")
        return False

    def _jail_for_run(self) -> Jail:
        """The sandbox's jail, made on its first confined run."""
        with self._jail_lock:
            if self._jail is None:
                jail_dir = os.path.join(self.base_dir, "jail")
                self._jail = Jail(jail_dir, [self.root], [self.shim_dir, self.script_dir], find_tools())
            return self._jail

    def _script_env(self, extra: dict[str, str] | None) -> dict[str, str]:
        script_env = {
            "PATH": f"{self.shim_dir}:/usr/bin:/bin",
            "GUEST_ROOT": self.root,
            "HOME": self.guest_path("/root"),
        }
        if os.path.isdir(self.guest_path("/tmp")):  # keeps mktemp & co. inside the guest
            script_env["TMPDIR"] = self.guest_path("/tmp")
        script_env.update(extra or {})
        return script_env


BASE_DIR_VARIABLE = "LOCALCLOUD_GUEST_DIR"
_MEMORY_DIRS = ("/dev/shm",)
_MEMORY_DIR_MIN_FREE = 512 * 2**20  # below this much free space, sandboxes go to the temp dir instead


def default_base_dir() -> str | None:
    """Where a sandbox goes when its caller does not say: ``$LOCALCLOUD_GUEST_DIR``, else a memory-backed
    filesystem (tmpfs ``/dev/shm``) that lets its files be executed and has room, else the temp dir (None).

    Why memory: a sandbox is ~40 files and ~40 dirs, written once and thrown away, and on a journalled
    disk that costs real CPU: 60-80 ms a sandbox (its jail included) on this kind of host against 5-8 ms on
    tmpfs, and as much again to delete it. What it costs in memory is ~150 KiB a sandbox while it exists
    (one page a file); `LOCALCLOUD_GUEST_DIR=/tmp` keeps them on disk."""
    chosen = os.environ.get(BASE_DIR_VARIABLE, "")
    if chosen:
        return chosen
    now = time.monotonic()
    with _base_dir_lock:  # asked again at most once a second: it is asked for every sandbox
        if not _base_dir_choice or now - _base_dir_choice[0] >= 1.0:
            _base_dir_choice[:] = [now, _memory_dir()]
        return _base_dir_choice[1]


def _real_dir(parent: str | None) -> str:
    """realpath of a sandbox's parent (the temp dir when None), asked of the filesystem once per parent."""
    key = parent if parent is not None else tempfile.gettempdir()
    with _base_dir_lock:
        if key not in _real_dirs:
            _real_dirs[key] = os.path.realpath(key)
        return _real_dirs[key]


_numbers = itertools.count(1)
_real_dirs: dict[str, str] = {}
_base_dir_lock = threading.Lock()
_base_dir_choice: list[Any] = []  # [when, the memory dir or None]


def _memory_dir() -> str | None:
    for candidate in _MEMORY_DIRS:
        try:
            stats = os.statvfs(candidate)
        except OSError:
            continue
        if stats.f_flag & (os.ST_NOEXEC | os.ST_RDONLY):  # the shims are executables
            continue
        if stats.f_bavail * stats.f_frsize >= _MEMORY_DIR_MIN_FREE and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return None


class _Reaper:
    """Deletes discarded sandboxes in the background.

    A sandbox is ~80 files and dirs; on this kind of disk (ext4 with online discard, shared) an rmtree
    took ~100 ms, and a local run of N instances removes N sandboxes when it closes: the biggest single
    cost of closing a 1,000-instance run. So cleanup() renames the sandbox into a trash dir beside it
    (one metadata operation; the path is gone at once, as before) and a daemon thread deletes the trash,
    its syscalls overlapping whatever the caller does next. At exit, whatever is left is deleted before
    the process ends, so nothing outlives it. Where the rename cannot work (the trash cannot be made
    beside the sandbox), the sandbox is deleted on the spot, as it always was.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trash: dict[str, str] = {}  # parent dir -> its trash dir
        self._queue: list[str] = []
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def discard(self, path: str) -> None:
        if not os.path.isdir(path):
            return
        parent = os.path.dirname(path)
        try:
            with self._lock:
                trash = self._trash.get(parent)
                if trash is None or not os.path.isdir(trash):
                    trash = tempfile.mkdtemp(prefix="localcloud-trash-", dir=parent)
                    self._trash[parent] = trash
            target = os.path.join(trash, os.path.basename(path))
            os.rename(path, target)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            return
        with self._lock:
            self._queue.append(target)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="localcloud-sandbox-reaper", daemon=True)
                self._thread.start()
                atexit.register(self.drain)
            self._wake.notify()

    def _next(self, block: bool) -> str | None:
        with self._lock:
            while block and not self._queue:
                self._wake.wait()
            return self._queue.pop(0) if self._queue else None

    def _run(self) -> None:
        while True:
            path = self._next(block=True)
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)

    def drain(self) -> None:
        """Delete everything still in the trash, then the trash dirs (atexit; tests may call it too)."""
        while (path := self._next(block=False)) is not None:
            shutil.rmtree(path, ignore_errors=True)
        with self._lock:
            trash_dirs, self._trash = list(self._trash.values()), {}
        for trash in trash_dirs:
            shutil.rmtree(trash, ignore_errors=True)  # also what the thread was deleting when we exited


_reaper = _Reaper()
