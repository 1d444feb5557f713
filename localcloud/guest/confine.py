"""Confining a guest script to its guest: user, mount, PID and network namespaces, then a jail.

Cloud Assistant runs whatever script the API caller sends. Unconfined, that is the current user's shell
on this host for anyone who can reach the port, so by default a script runs in a jail:

* ``unshare --user --map-root-user --mount --net --pid --fork``: the script is uid 0 of a fresh user
  namespace (the current user outside, so its files stay ours), in a network namespace with nothing
  but a loopback that is down (no host service, no internet, no abstract unix socket of the host), and
  in its own PID namespace (it sees and signals only its own processes; when pid 1 exits, everything
  left in the namespace dies with it).
* The jail (``Jail``, built once per sandbox): a read-only view of the host's /usr (and the /bin, /sbin,
  /lib* it links to or holds), a minimal /etc copied from the host (passwd, group, nsswitch.conf,
  ld.so.cache, localtime, mtab; /etc/alternatives read-only, so that ``awk`` resolves), /dev with only
  null, zero, full, random and urandom (and /dev/fd for process substitution), a read-only /proc of
  its own PID namespace, and the sandbox's guest root (writable), shims and scripts (read-only) at
  their host paths, so ``GUEST_ROOT``, ``PATH`` and the working dir read exactly as unconfined.
  Nothing else of the host is there: no $HOME, /root, /tmp, /var, /run or /etc/shadow.
* ``pivot_root`` into the jail and detach the old root, so no chroot trick leads back to the host
  tree; then ``setpriv`` empties the capability bounding set and sets no_new_privs before bash starts,
  so the script (still uid 0, as on a real instance) cannot unmount, remount or mount anything.

That is six processes (unshare, bash, mount, pivot_root, umount, setpriv) per script: 15-45 ms on a
busy 2-core machine, where the preflight itself takes 100-150 ms.

Modes, from the sandbox's ``confinement`` argument or else ``LOCALCLOUD_SANDBOX``:

* ``auto`` (default): ``namespace`` when this host can (probed once per process), else ``none`` with
  a warning, so the local demo still works on a machine without user namespaces.
* ``namespace``: confined or not at all; a run is refused (``ConfinementError``) when it cannot be.
* ``none``: the script runs unconfined, as the current user, under the host's bash.

An unconfined run is refused, whatever the mode, while this process listens on a TCP address that is
not loopback (``localcloud serve --host 0.0.0.0 --allow-remote``): it would be a remote shell.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import shutil
import socket
import stat
import sys
import tempfile

from localcloud.guest.runner import ScriptResult, bash_path, run_process

MODES = ("auto", "namespace", "none")
MODE_VARIABLE = "LOCALCLOUD_SANDBOX"
_TOOLS = ("unshare", "mount", "umount", "pivot_root", "setpriv")
_TOOL_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
_SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC_FILES = ("passwd", "group", "nsswitch.conf", "ld.so.cache", "localtime", "mtab")
_DEVICES = ("null", "zero", "full", "random", "urandom")
_READY = b"ready"

log = logging.getLogger("localcloud.guest")

# pid 1 of the new namespaces, under bash (dash cannot name fds above 9). $1 fstab, $2 jail, $3 working dir,
# $4 where to start if that cannot be made, $5 status fd, $6-$8 mount, pivot_root, umount, then the command.
# pid 1 ignores signals it has no handler for (`kill $$` would do nothing), so the script is its child:
# the `exit` keeps bash from exec'ing the last command in its place, and its own stderr goes to
# /dev/null so that it does not add "Terminated" to the output of a script killed by a signal.
_SETUP = r"""
fail() { echo "localcloud sandbox: $1" >&2; exit 125; }
"$6" -a -T "$1" || fail "could not mount the jail"
cd "$2" && "$7" . . && "$8" -l . || fail "could not enter the jail"
cd / && { [ -d "$3" ] || command -p mkdir -p -- "$3" 2>/dev/null; cd -- "$3" 2>/dev/null || cd -- "$4"; } || fail "no working dir"
fd=$5 && printf ready >&"$fd" && exec {fd}>&- || fail "could not report"
shift 8
exec 3>&2 2>/dev/null
"$@" 2>&3 3>&-
exit $?
"""


class ConfinementError(RuntimeError):
    """The script was not run: it could not be confined, and running it unconfined is not allowed."""


def resolve_mode(explicit: str | None = None) -> str:
    """``explicit``, else ``$LOCALCLOUD_SANDBOX``, else ``auto``; an unknown value is an error, never 'none'."""
    mode = explicit if explicit is not None else os.environ.get(MODE_VARIABLE, "") or "auto"
    if mode not in MODES:
        source = "confinement" if explicit is not None else MODE_VARIABLE
        raise ConfinementError(f"{source}={mode!r} is not one of {', '.join(MODES)}")
    return mode


class Jail:
    """The directory a confined script sees as /, and the fstab that fills it (see the module doc)."""

    def __init__(self, jail_dir: str, writable: list[str], readonly: list[str], tools: dict[str, str]) -> None:
        self.dir = jail_dir
        self.tools = tools
        self.fstab = jail_dir + ".fstab"
        os.mkdir(jail_dir, 0o755)
        # First: the jail itself, read-only, so the scaffolding below is no place to write.
        entries = [(jail_dir, jail_dir, "none", _readonly_bind_options(jail_dir, "bind"))]
        for name in _SYSTEM_DIRS:
            host = "/" + name
            if os.path.islink(host):  # merged /usr: /bin -> usr/bin and so on
                os.symlink(os.readlink(host), os.path.join(jail_dir, name))
            elif os.path.isdir(host):
                os.mkdir(os.path.join(jail_dir, name))
                # rbind: a non-recursive bind of a mount with locked submounts is refused.
                entries.append((host, os.path.join(jail_dir, name), "none", _readonly_bind_options(host, "rbind")))
        self._copy_etc()
        if os.path.isdir("/etc/alternatives"):  # symlinks into /usr (Debian's awk); mounted: copying is slow
            os.mkdir(os.path.join(jail_dir, "etc", "alternatives"))
            options = _readonly_bind_options("/etc/alternatives", "rbind")
            entries.append(("/etc/alternatives", os.path.join(jail_dir, "etc", "alternatives"), "none", options))
        dev = os.path.join(jail_dir, "dev")
        os.mkdir(dev)
        for name in _DEVICES:
            host = "/dev/" + name
            if os.path.exists(host) and stat.S_ISCHR(os.stat(host).st_mode):
                open(os.path.join(dev, name), "w").close()  # an empty file to mount the device on
                entries.append((host, os.path.join(dev, name), "none", "bind"))  # writable: >/dev/null
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "fd/0"), ("stdout", "fd/1"), ("stderr", "fd/2")):
            os.symlink(target, os.path.join(dev, name))
        os.mkdir(os.path.join(jail_dir, "proc"))
        entries.append(("proc", os.path.join(jail_dir, "proc"), "proc", "ro,nosuid,nodev,noexec"))
        for host in writable + readonly:
            os.makedirs(jail_dir + host)
            options = "bind" if host in writable else _readonly_bind_options(host, "bind")
            entries.append((host, jail_dir + host, "none", options))
        with open(self.fstab, "w", encoding="utf-8") as handle:
            for source, target, fstype, options in entries:
                handle.write(f"{_fstab_field(source)} {_fstab_field(target)} {fstype} {options} 0 0\n")

    def _copy_etc(self) -> None:
        etc = os.path.join(self.dir, "etc")
        os.mkdir(etc)
        # Copies, not the host's /etc: it holds host secrets (shadow, ssh host keys, TLS keys) that
        # uid 0 inside could read when the host user is root.
        for name in _ETC_FILES:
            host = "/etc/" + name
            with contextlib.suppress(OSError):
                if os.path.islink(host):
                    os.symlink(os.readlink(host), os.path.join(etc, name))
                elif os.path.isfile(host):
                    shutil.copyfile(host, os.path.join(etc, name))

    def command(self, script_path: str, working_dir: str, fallback_dir: str, status_fd: int) -> list[str]:
        """The argv that runs ``bash script_path`` in this jail, starting in ``working_dir``."""
        tools = self.tools
        # --kill-child: if unshare dies (the timeout kills its process group), the namespace goes too.
        return [
            tools["unshare"], "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child",
            "--", bash_path(), "-c", _SETUP, "localcloud-sandbox",
            self.fstab, self.dir, working_dir, fallback_dir, str(status_fd),
            tools["mount"], tools["pivot_root"], tools["umount"],
            tools["setpriv"], "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--",
            bash_path(), script_path,
        ]  # fmt: skip


def run_confined(
    jail: Jail, script_path: str, working_dir: str, fallback_dir: str, env: dict[str, str], timeout_s: int
) -> ScriptResult:
    """Run ``script_path`` in ``jail``; ConfinementError if the jail could not be set up."""
    read_fd, write_fd = os.pipe()
    try:
        argv = jail.command(script_path, working_dir, fallback_dir, write_fd)
        result = run_process(argv, "/", env, timeout_s, pass_fds=(write_fd,))
        os.close(write_fd)
        write_fd = -1
        os.set_blocking(read_fd, False)
        try:
            ready = os.read(read_fd, len(_READY)) == _READY
        except BlockingIOError:  # nothing written, and a process still holds the pipe
            ready = False
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    # The status pipe, not the exit code, tells setup failures apart: a script may exit 125 too.
    if not ready and not result.timed_out:
        raise ConfinementError(f"the script's sandbox could not be set up: {result.output.strip()[:500]}")
    return result


@functools.cache
def namespace_unavailable_reason() -> str | None:
    """Why scripts cannot be confined on this host (None: they can). Probed once per process."""
    return probe_namespaces()


def probe_namespaces(tool_path: str = _TOOL_PATH) -> str | None:
    """Confine a one-line script for real, with the tools found on ``tool_path``; None if it worked."""
    if not sys.platform.startswith("linux"):
        return f"namespaces need Linux (this is {sys.platform})"
    tools = find_tools(tool_path)
    missing = [name for name in _TOOLS if name not in tools]
    if missing:
        return f"{', '.join(missing)} not found on {tool_path} (util-linux)"
    with tempfile.TemporaryDirectory(prefix="localcloud-probe-") as base:
        base = os.path.realpath(base)
        root, scripts = os.path.join(base, "rootfs"), os.path.join(base, "scripts")
        os.mkdir(root)
        os.mkdir(scripts)
        script = os.path.join(scripts, "probe.sh")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write("echo confined >probe && cat probe\n")
        try:
            jail = Jail(os.path.join(base, "jail"), [root], [scripts], tools)
            result = run_confined(jail, script, root, root, {"PATH": "/usr/bin:/bin"}, 10)
        except (OSError, ConfinementError) as exc:
            return str(exc)
        if (result.exit_code, result.output) != (0, "confined\n"):
            return f"a confined probe script failed (exit {result.exit_code}): {result.output.strip()[:300]}"
    return None


def find_tools(tool_path: str = _TOOL_PATH) -> dict[str, str]:
    """The util-linux tools a jail needs, by name, as found on ``tool_path`` (missing ones left out)."""
    found = {name: shutil.which(name, path=tool_path) for name in _TOOLS}
    return {name: path for name, path in found.items() if path}


def _readonly_bind_options(path: str, bind: str) -> str:
    """``bind``,ro plus the source mount's own flags: in a user namespace a remount may not clear them."""
    flags = os.statvfs(path).f_flag
    options = [bind, "ro", "nosuid", "nodev"]  # nosuid, nodev: only ever more restrictive
    if flags & os.ST_NOEXEC:
        options.append("noexec")
    if flags & os.ST_NOATIME:
        options.append("noatime")
    elif flags & os.ST_RELATIME:
        options.append("relatime")
    else:
        options.append("strictatime")
    if flags & os.ST_NODIRATIME:
        options.append("nodiratime")
    return ",".join(options)


def _fstab_field(path: str) -> str:
    return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")


# ----------------------------------------------------------------- unconfined runs


_warned: set[str] = set()


def warn_unconfined(reason: str) -> None:
    """Say once per process, loudly, that scripts run on this host as the current user."""
    if reason in _warned:
        return
    _warned.add(reason)
    log.warning(
        "localcloud: WARNING: Cloud Assistant scripts run UNCONFINED on this host, as this user (%s). They are "
        "refused while this process listens on a non-loopback address. %s=namespace refuses them instead.",
        reason,
        MODE_VARIABLE,
    )


def remote_listeners() -> list[str]:
    """TCP addresses this process listens on that are not loopback ('0.0.0.0:8080', '[::]:80').

    Every socket fd is asked, not just Python's server objects: reading /proc/net/tcp instead walks the
    whole host's socket table (about 15 ms here)."""
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    found = []
    for name in os.listdir(fd_dir):
        try:
            if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))  # a dup: closing it leaves the listener alone
        except (OSError, ValueError):  # closed meanwhile, or listdir's own fd
            continue
        with sock, contextlib.suppress(OSError):
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                continue
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            host, port = sock.getsockname()[:2]
            address = ipaddress.ip_address(host.split("%")[0])
            if not _is_loopback(address):
                found.append(f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}")
    return found


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
