"""Where Cloud Assistant's scripts run: a few worker threads, one guest's scripts one at a time.

A confined script spends about half its 100-150 ms of real time waiting (namespace setup and teardown,
its processes), not computing. One worker for every script left a 1,000-instance fleet waiting on them
for most of its wall time; a few workers overlap those waits. What a script sees stays the same: the
scripts of one guest (a `key`, the instance id) still run one at a time, in the order they were sent,
because a script may change its guest for the next one; different guests share nothing (each has its
own tree and jail), so their scripts may run at once. Nothing waits on a script until the virtual clock
reaches its outcome (assistant.py), so the order timers fire in, and what the calls answer, do not
depend on how many workers there are or how fast they go.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")

# Scripts wait longer than they compute (most of a confined script's time is the kernel setting up and
# tearing down its namespaces): four per core keep the cores busy.
DEFAULT_WORKERS = max(2, min(8, 4 * (os.cpu_count() or 1)))
# Scripts run ahead of the thread that answers calls, which is what everything waits for: they get the
# cores it leaves idle. A worker thread's niceness is inherited by the processes it starts (Linux). At 5,
# eight scripts' processes still took more than half of that thread's core from it (CFS weighs nice 5 at a
# third of nice 0, per process): a 200-instance run's first minute, when it starts every preflight, ran at
# a third of its speed. At 19 they weigh 1/68 each, so they take the idle cores, and all of them while
# that thread waits for their outcomes.
WORKER_NICENESS = 19


def _lower_priority() -> None:
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        # Not allowed, or not per thread here: the scripts run at the caller's priority.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


class KeyedRunner:
    """A thread pool that runs calls with the same key one at a time, in submission order."""

    def __init__(self, workers: int | None = None, name: str = "localcloud-guest-script") -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=workers or DEFAULT_WORKERS, thread_name_prefix=name, initializer=_lower_priority
        )
        self._lock = threading.Lock()
        self._tails: dict[str, Future[object]] = {}  # key -> its latest call not yet finished

    def submit(self, key: str, call: Callable[[], T]) -> Future[T]:
        result: Future[T] = Future()

        def run() -> None:
            if not result.set_running_or_notify_cancel():
                return
            try:
                value = call()
            except BaseException as exc:
                result.set_exception(exc)
            else:
                result.set_result(value)

        with self._lock:
            previous = self._tails.get(key)
            self._tails[key] = result  # type: ignore[assignment]
        result.add_done_callback(lambda done: self._forget(key, done))
        if previous is None:
            self._pool.submit(run)
        else:  # after the key's previous call, from whichever thread ends it
            previous.add_done_callback(lambda _: self._pool.submit(run))
        return result

    def _forget(self, key: str, done: Future[object]) -> None:
        with self._lock:
            if self._tails.get(key) is done:
                del self._tails[key]

    def shutdown(self) -> None:
        """Wait for every call submitted (those chained behind others too), then stop the workers."""
        while True:
            with self._lock:
                pending = list(self._tails.values())
            if not pending:
                break
            wait(pending)
        self._pool.shutdown(wait=True)
