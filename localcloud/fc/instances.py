"""A function instance, the two ways the local FC runtime runs one.

In-process (`call_in_process`): the handler module is imported into this interpreter and called with the
instance's environment in `os.environ` (restored afterwards); the root logger and sys.stdout / sys.stderr
are captured into the delivery's log lines, formatted as FC's python runtime formats them.

As a process (`ProcessInstance`): `worker.py` under the runtime's Python, with only the code directory on
sys.path, one JSON request and answer per line; started on first use (the cold start), killed when FC's
Timeout passes (FunctionTimeout) and started anew after it is lost.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from localcloud.fc.deliveries import Failure
from localcloud.fc.template.model import FunctionDef


def call_in_process(
    load: Callable[[], ModuleType], fn: FunctionDef, payload: bytes, context: Any, env: dict[str, str], log_prefix: str
) -> tuple[Any, Failure | None, list[str], float]:
    """Call `fn`'s handler (from the module `load` returns) in this interpreter: (result, failure, log lines, wall ms).

    The handler's `random` is seeded with the invocation's request id (itself drawn from the run's seed), and
    this process's own random state is put back afterwards: what a function draws (the SDK adapter's retry
    jitter, which moves the virtual clock) is then the same in every run of a scenario, so its calls are too.
    FC promises nothing about a function's random numbers, so any seed is a faithful one."""
    lines: list[str] = []
    capture = LogCapture(lines, log_prefix)
    root = logging.getLogger()
    saved_level = root.level
    saved_env = dict(os.environ)
    saved_random = random.getstate()
    result: Any = None
    failure: Failure | None = None
    os.environ.update(env)
    root.addHandler(capture)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)  # FC's python runtime logs INFO and above from the root logger
    random.seed(getattr(context, "request_id", None))
    started = time.perf_counter()
    try:
        with _STDOUT.capturing(lines), _STDERR.capturing(lines):
            handler = getattr(load(), fn.function_attr)
            result = handler(payload, context)
    except Exception as error:
        # The stack starts in the handler's code, as FC reports it, not in this runtime.
        tb = error.__traceback__.tb_next if error.__traceback__ is not None else None
        failure = Failure(type(error).__name__, str(error), traceback.format_exception(type(error), error, tb))
        lines.append(f"{capture.prefix} [ERROR] {failure}")
        lines.extend("".join(failure.stack).rstrip().splitlines())
    finally:
        wall_ms = (time.perf_counter() - started) * 1000
        root.removeHandler(capture)
        root.setLevel(saved_level)
        _restore_environ(saved_env)
        random.setstate(saved_random)
    if isinstance(result, bytes):
        result = result.decode("utf-8", "replace")
    return result, failure, lines, wall_ms


class LogCapture(logging.Handler):
    """Formats records as the FC python runtime's log lines: `<time> <request id> [LEVEL] message`."""

    def __init__(self, lines: list[str], prefix: str) -> None:
        super().__init__(logging.NOTSET)
        self.lines = lines
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not fail the invocation
            message = str(record.msg)
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        lines = message.splitlines() or [""]
        self.lines.append(f"{self.prefix} [{record.levelname}] {lines[0]}")
        self.lines.extend(lines[1:])


class _StreamProxy(io.TextIOBase):
    """sys.stdout / sys.stderr while a handler runs: its lines go into that delivery's logs.

    One object per stream for the whole process, not one per call: a logging.StreamHandler that a
    handler module creates on its first (cold) call keeps a reference to `sys.stdout`, and must
    still write into the current delivery's logs on every later (warm) call. Outside a call it
    passes writes on to the real stream.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] | None = None
        self.partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.lines is None:
            current = getattr(sys, self.name)
            target = current if current is not self else getattr(sys, f"__{self.name}__")
            return target.write(text) if target is not None else len(text)
        self.partial += text
        *complete, self.partial = self.partial.split("\n")
        self.lines.extend(complete)
        return len(text)

    def flush(self) -> None:
        pass

    @contextmanager
    def capturing(self, lines: list[str]) -> Iterator[None]:
        previous = getattr(sys, self.name)
        self.lines, self.partial = lines, ""
        setattr(sys, self.name, self)
        try:
            yield
        finally:
            if self.partial:
                lines.append(self.partial)
            self.lines, self.partial = None, ""
            setattr(sys, self.name, previous)


_STDOUT = _StreamProxy("stdout")
_STDERR = _StreamProxy("stderr")


def _restore_environ(saved: dict[str, str]) -> None:
    """Put os.environ back as it was, undoing the invocation env and whatever the handler set."""
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


_WORKER = str(Path(__file__).with_name("worker.py"))
TIMEOUT_MARGIN_S = 0.5  # the pipe round trip on top of the handler's own time
INSTANCE_LOST = ("FunctionTimeout", "InstanceCrashed")


class ProcessInstance:
    """A warm FC instance as a child process running worker.py; started on first use (the cold start)."""

    def __init__(self, python: str, fn: FunctionDef) -> None:
        self.python = python
        self.fn = fn
        self.process: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        # -I: no user site, no PYTHON* env, no script dir on sys.path; -S: no site-packages. The code
        # directory alone is the import root, as on FC (FC_FUNC_CODE_PATH).
        return subprocess.Popen(
            [self.python, "-I", "-S", "-u", _WORKER, str(self.fn.code_dir), self.fn.module_path, self.fn.function_attr],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, encoding="utf-8",
            cwd=str(self.fn.code_dir),
        )  # fmt: skip

    def call(self, payload: bytes, context: dict[str, Any], env: dict[str, str], log_prefix: str) -> dict[str, Any]:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        request = {"payload": base64.b64encode(payload).decode(), "context": context, "env": env,
                   "log_prefix": log_prefix}  # fmt: skip
        answer: dict[str, Any] = {}
        reader = threading.Thread(target=lambda: answer.update(self._read(process)), daemon=True)
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            return _lost("InstanceCrashed", "the function instance exited before it took the request")
        reader.start()
        reader.join(self.fn.timeout_s + TIMEOUT_MARGIN_S)  # FC's Timeout, in wall seconds (handlers run in real time)
        if reader.is_alive():
            self.close()
            return _lost("FunctionTimeout", f"Function timed out after {self.fn.timeout_s} seconds")
        return answer

    @staticmethod
    def _read(process: subprocess.Popen[str]) -> dict[str, Any]:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            return _lost("InstanceCrashed", f"the function instance exited (code {process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def _lost(error_type: str, message: str) -> dict[str, Any]:
    return {"result": None, "error": {"errorType": error_type, "errorMessage": message, "stackTrace": []}, "logs": []}


def answer_outcome(answer: dict[str, Any]) -> tuple[Any, Failure | None]:
    """A worker's answer as (result, failure): the result decoded as the in-process path returns it."""
    failure = None
    error = answer.get("error")
    if error:
        failure = Failure(str(error.get("errorType")), str(error.get("errorMessage")),
                          [" ".join(frame) + "\n" for frame in error.get("stackTrace") or []])  # fmt: skip
    result = answer.get("result")
    if isinstance(result, dict) and "bytes" in result:
        result = base64.b64decode(result["bytes"]).decode("utf-8", "replace")
    elif isinstance(result, dict):
        result = result.get("value")
    return result, failure
