"""Running a script the way Cloud Assistant does: under bash, output capped, process group killed on timeout.

Like Cloud Assistant, the output (stdout and stderr interleaved) keeps its first 24 KiB and reports the
rest in ``dropped``. A script still running after ``timeout_s`` seconds has its whole process group
killed; the result then has ``timed_out=True`` and exit code 124 (the code GNU ``timeout`` uses). A
script killed by signal N reports 128+N, as a shell would.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

OUTPUT_LIMIT_BYTES = 24 * 1024
TIMEOUT_EXIT_CODE = 124


@dataclass
class ScriptResult:
    exit_code: int
    output: str  # stdout and stderr interleaved, first OUTPUT_LIMIT_BYTES bytes
    dropped: int  # bytes beyond OUTPUT_LIMIT_BYTES
    timed_out: bool


def run_script(script_path: str, cwd: str, script_env: dict[str, str], timeout_s: int) -> ScriptResult:
    """Run ``script_path`` under the host's bash in ``cwd``; its whole process group dies after ``timeout_s``."""
    return run_process([bash_path(), script_path], cwd, script_env, timeout_s)


def run_process(
    argv: list[str], cwd: str, script_env: dict[str, str], timeout_s: int, pass_fds: tuple[int, ...] = ()
) -> ScriptResult:
    """Run ``argv`` in ``cwd`` with only ``script_env``, output capped; its process group dies after ``timeout_s``."""
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=script_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group, so a timeout kills the script's children too
        pass_fds=pass_fds,
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
    exited = _wait_pidfd(process.pid, deadline)
    if exited is not None:
        return exited
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


def _wait_pidfd(pid: int, deadline: float) -> bool | None:
    """Wait on a pidfd (Linux 5.3+): it becomes readable when the process exits, which does not reap it,
    so the wait ends the moment the script does instead of at the next poll. None: no pidfds here."""
    if not hasattr(os, "pidfd_open") or not hasattr(os, "waitid"):
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                poller.poll(max(1, math.ceil(remaining * 1000)))
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            if deadline - time.monotonic() <= 0:
                return False
    finally:
        os.close(pidfd)


def bash_path() -> str:
    """The host's bash (a confined script runs the same one, through the jail's read-only /usr)."""
    if os.path.exists("/bin/bash"):
        return "/bin/bash"
    found = shutil.which("bash")
    if not found:
        raise RuntimeError("the guest sandbox needs bash on the host")
    return found
