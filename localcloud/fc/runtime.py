"""The local FC runtime: the template's functions, run in-process against a LocalCloud, on its virtual clock.

The shape is a message-bus drain loop (Cosmic Python ch. 9): pull new events from the cloud's
event log, queue one delivery per matching route, deliver the queue in order, collect the events
the deliveries published, repeat; when nothing is queued, move the virtual clock to the next timer
(an emulator state machine, an FC retry, or a timer trigger) and go on.

FC semantics kept (fc-eventbridge.md §1):
- a handler is `handler(event: bytes, context)`; its module is imported once per function and
  cached (a warm instance); an import error is a failed invocation, and the next one imports anew;
- during a call `os.environ` holds the instance's environment (`context.invocation_env`) and is
  restored afterwards; the cloud's lock is NOT held, so handlers call the cloud through the SDK;
- EventBridge deliveries are asynchronous invocations: an exception is retried up to the function's
  MaxAsyncRetryAttempts, after a backoff on the virtual clock of 2 s, 4 s, 8 s, ... (doubling from
  2 s: FC documents retries for function errors but not their spacing, so this choice is ours);
  then the event is dead-lettered and, when the OnFailure destination is a bus, published there as
  `fc:AsyncInvoke:Failure` with FC's destination payload. An event older than
  MaxAsyncEventAgeInSeconds when its turn comes is dropped as expired (and dead-lettered too);
- nothing is deduplicated: a duplicated event is delivered twice, as on real EventBridge;
- one invocation at a time per runtime (an instance serves one request at a time in FC's python
  runtimes), so a synchronous InvokeFunction from another thread waits for a delivery in progress.

Instances run in-process (`isolated=False`: the handler module imported into this interpreter, for fast
local runs of the source tree) or as their own process (`isolated=True`: `worker.py` under the runtime's
Python with only the code directory on sys.path — how stacks deployed from an uploaded zip run, so the
artifact itself is what is tested). Custom buses are not created here: like ROS, the runtime requires the
buses its rules use to exist (the deploy step creates them) and refuses to start otherwise.

How an instance runs (in-process, or as a process) is `instances.py`; what is recorded of each invocation
(Delivery, DeadLetter) and the reports made from it are `deliveries.py`.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter, deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from localcloud.fc.context import ENDPOINT_ENV, Credentials, instance_id, invocation_env, make_context
from localcloud.fc.deliveries import DeadLetter, Delivery, Failure, failure_destination_data, summarize, trace_table
from localcloud.fc.instances import INSTANCE_LOST, ProcessInstance, answer_outcome, call_in_process
from localcloud.fc.schedule import Schedule, parse_schedule
from localcloud.fc.template.model import FunctionDef, Template, TemplateError, TimerDef
from localcloud.gctune import tuned_gc

if TYPE_CHECKING:
    from localcloud.clock import _Timer
    from localcloud.cloud import LocalCloud

RETRY_BASE_S = 2.0  # first retry 2 s after the failure, then 4 s, 8 s, ... (virtual seconds)
FAILURE_EVENT_TYPE = "fc:AsyncInvoke:Failure"
MAX_ITERATIONS = 1_000_000
_BUS_ARN = re.compile(r"^acs:eventbridge:[^:]*:[^:]*:eventbus/([^/]+)$")
_RUNTIME_IDS = itertools.count(1)
# The STS credentials every local function gets (FC hands a function its role's; these name no real role).
LOCAL_FC_CREDENTIALS = Credentials("STS.LocalFcRoleAccessKey", "localcloud-fc-secret", "localcloud-fc-sts-token")


@dataclass
class _Job:
    """An asynchronous invocation waiting for its turn."""

    function: str
    payload: bytes
    event: Any
    event_id: str
    event_type: str
    source: str
    enqueued_at: float  # virtual epoch when the event reached FC: its age counts from here
    attempt: int = 1
    last_failure: Failure | None = None


class LocalRuntime:
    """Runs a Template's functions against `cloud`. `endpoint` is what the handlers' SDK clients dial."""

    def __init__(
        self,
        cloud: LocalCloud,
        template: Template,
        *,
        endpoint: str,
        extra_env: dict[str, str] | None = None,
        seed: int = 0,
        isolated: bool = False,
        python: str | None = None,
    ) -> None:
        self.cloud = cloud
        self.isolated = isolated
        self.python = python or sys.executable  # the interpreter isolated instances run under
        self.template = template
        self.extra_env = {ENDPOINT_ENV: endpoint, **(extra_env or {})}
        self.credentials = LOCAL_FC_CREDENTIALS
        # What ActionTrail records for the functions' calls: a session of the role they run as.
        role = next((fn.role_name for fn in template.functions.values() if fn.role_name), "")
        if role:
            cloud.role_sessions[self.credentials.access_key_id] = (role, "fc-runtime")
        self.deliveries: list[Delivery] = []
        self.dead_letters: list[DeadLetter] = []
        # Own RNG, seeded apart from the cloud's: request ids must neither shift nor repeat the cloud's ids.
        self._rng = random.Random(f"localcloud.fc/{seed}")
        self._tag = next(_RUNTIME_IDS)  # keeps two runtimes' module caches apart in sys.modules
        self._queue: deque[_Job] = deque()
        self._cursor: int | None = None
        self._modules: dict[str, ModuleType] = {}
        self._generations: Counter[str] = Counter()
        self._schedules: dict[str, Schedule] = {}
        self._periodic: dict[str, _Timer] = {}  # timer trigger logical id → its armed clock timer
        self._retries: dict[int, _Timer] = {}
        self._retry_ids = itertools.count()
        self._own_events: set[int] = set()  # seqs of failure events the runtime itself published
        self._foreign_events = 0  # events seen that the runtime did not publish: "something happened"
        self._exec_lock = threading.RLock()  # one invocation at a time (and os.environ is process-wide)
        self._processes: dict[str, ProcessInstance] = {}
        self._gc: AbstractContextManager[None] | None = None  # the GC tuning while started

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalRuntime:
        """Arm the template's timers and deliver only events published from now on. The buses its rules and
        dead letters use must exist (ROS refuses a Rule on a missing bus; the deploy step creates them)."""
        if self._cursor is not None:
            raise RuntimeError("the runtime is already started")
        cloud = self.cloud
        with cloud.lock:
            missing = [bus for bus in self.template.buses if bus not in cloud.events.buses]
            if missing:
                raise TemplateError(
                    f"{', '.join(missing)}: no such event bus in {cloud.region}. ROS does not create buses: create "
                    "them first (`bakery deploy` does, with EventBridge CreateEventBus)"
                )
            for timer in self.template.timers:
                if timer.enabled:
                    self._schedules[timer.logical_id] = parse_schedule(timer.expression)
                    self._arm(timer)
            self._cursor = cloud.events.cursor
        # From here on the runtime makes thousands of in-process calls: GC tuned for that (gctune.py,
        # which says why), undone by stop().
        self._gc = tuned_gc()
        self._gc.__enter__()
        return self

    def stop(self) -> None:
        """Disarm timers and pending retries, and forget the cached modules (the instances go away)."""
        if self._gc is not None:
            gc_tuning, self._gc = self._gc, None
            gc_tuning.__exit__(None, None, None)
        with self.cloud.lock:
            for handle in [*self._periodic.values(), *self._retries.values()]:
                self.cloud.clock.cancel(handle)
        self._periodic.clear()
        self._retries.clear()
        for module in self._modules.values():
            sys.modules.pop(module.__name__, None)
        self._modules.clear()
        for process in self._processes.values():
            process.close()
        self._processes.clear()

    def _arm(self, timer: TimerDef) -> None:
        """Schedule the next fire of a timer trigger; each fire queues an invocation and re-arms."""
        clock = self.cloud.clock
        due = self._schedules[timer.logical_id].next_after(clock.now)

        def fire() -> None:  # runs inside clock.advance_to, under the cloud's lock: only queue work here
            event = {"triggerTime": clock.iso(), "triggerName": timer.trigger_name, "payload": timer.payload}
            self._queue.append(
                _Job(timer.function, json.dumps(event).encode(), event, "", "timer", timer.trigger_name, clock.now)
            )
            self._arm(timer)

        self._periodic[timer.logical_id] = clock.call_at(due, fire, f"fc-timer:{timer.logical_id}")

    # -- the drain loop ------------------------------------------------------------------------

    def pump(self) -> int:
        """Queue a delivery for every new event and every route it matches. Returns deliveries queued."""
        if self._cursor is None:
            raise RuntimeError("start() the runtime before pumping events")
        with self.cloud.lock:
            published = self.cloud.events.read(self._cursor)
            self._cursor += len(published)
            now = self.cloud.clock.now
        queued = 0
        for item in published:
            if item.seq not in self._own_events:
                self._foreign_events += 1
            event = item.event
            for route in self.template.routes:
                if route.bus == item.bus and route.pattern.matches(event):
                    self._queue.append(
                        _Job(
                            route.function,
                            json.dumps(event).encode(),
                            event,
                            str(event.get("id", "")),
                            str(event.get("type", "")),
                            str(event.get("source", "")),
                            now,
                        )
                    )
                    queued += 1
        return queued

    def drain(self) -> int:
        """Pump and deliver until nothing is queued, without moving the clock. Returns deliveries made."""
        delivered = 0
        self.pump()
        while self._queue:
            self._deliver(self._queue.popleft())
            delivered += 1
            self.pump()  # events a delivery published join the end of the queue
        return delivered

    def run_until_idle(self, max_simulated_seconds: float = 7 * 86400) -> dict[str, Any]:
        """Drain, then advance to the next clock timer, until idle or `max_simulated_seconds` have passed.

        Idle: nothing queued, no retry pending, no emulator timer pending, and, if timer triggers
        exist, the last fire that only they caused brought no new event (no API write, no custom
        event; the runtime's own failure events do not count). Periodic timers alone never end, so
        they alone are not work: a quiet cloud stops after one more fire.
        """
        return self._drive(self.cloud.clock.now + max_simulated_seconds, stop_when_idle=True)

    def run_until(self, at: str | float) -> dict[str, Any]:
        """Drain and advance timer by timer up to `at` (ISO 8601 UTC or epoch seconds); the clock ends there."""
        return self._drive(_epoch(at), stop_when_idle=False)

    def _drive(self, deadline: float, *, stop_when_idle: bool) -> dict[str, Any]:
        clock = self.cloud.clock
        started = clock.now
        # _foreign_events just before the last advance that only periodic timers called for; kept while
        # retries or emulator timers run on, so a timer whose handler keeps failing does not run forever.
        quiet_mark: int | None = None
        stopped = "iteration-cap"
        for _ in range(MAX_ITERATIONS):
            self.drain()
            other_work = self._other_work()
            if stop_when_idle and not other_work and (not self._periodic or quiet_mark == self._activity()):
                stopped = "idle"
                break
            due = clock.next_due()
            if due is None or due > deadline:
                if stop_when_idle:
                    stopped = "idle" if due is None else "time-limit"
                else:
                    self.cloud.advance_to(deadline)  # nothing falls due on the way
                    stopped = "reached"
                break
            if not other_work:
                quiet_mark = self._activity()
            self.cloud.advance_to(due)
        return {
            **self.summary(),
            "stopped": stopped,
            "simulated_seconds": clock.now - started,
            "now": clock.iso(),
        }

    def _activity(self) -> int:
        """Grows whenever something happened: an event the runtime did not publish, or a write API call
        (which counts even when a fault dropped its event, so a sweep that still changes things goes on)."""
        return self._foreign_events + self.cloud.write_calls

    def _other_work(self) -> bool:
        """Anything but the runtime's own periodic timers: queued deliveries, retries, emulator timers.

        The clock's timers are counted, not listed: every timer the runtime armed is in `_periodic`
        or `_retries` until it fires, so whatever else is pending belongs to the emulator.
        """
        with self.cloud.lock:
            pending = self.cloud.clock.pending()
        return bool(self._queue) or bool(self._retries) or pending > len(self._periodic) + len(self._retries)

    # -- invocations ---------------------------------------------------------------------------

    def invoke(self, function_name: str, event: dict[str, Any] | bytes) -> Delivery:
        """One synchronous invocation (like `sam local invoke`): no retries, no dead letter."""
        fn = self.template.function(function_name)
        payload = event if isinstance(event, bytes) else json.dumps(event).encode()
        parsed: Any = event
        if isinstance(event, bytes):
            try:
                parsed = json.loads(event)
            except ValueError:
                parsed = None
        fields = parsed if isinstance(parsed, dict) else {}
        delivery, _ = self._invoke(
            fn,
            payload,
            event_id=str(fields.get("id", "")),
            event_type=str(fields.get("type", "invoke")),
            source=str(fields.get("source", "")),
            attempt=1,
        )
        return delivery

    def enqueue(self, function_name: str, payload: bytes) -> str:
        """An asynchronous invocation (InvokeFunction with `x-fc-invocation-type: Async`): queued like an event,
        with the function's async retries and dead letter. Returns the request id FC answers with."""
        fn = self.template.function(function_name)
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = None
        fields = parsed if isinstance(parsed, dict) else {}
        with self.cloud.lock:
            now = self.cloud.clock.now
        self._queue.append(_Job(fn.name, payload, parsed, str(fields.get("id", "")), str(fields.get("type", "invoke")),
                                str(fields.get("source", "")), now))  # fmt: skip
        return self._uuid()

    def _deliver(self, job: _Job) -> None:
        fn = self.template.functions[job.function]
        clock = self.cloud.clock
        if clock.now - job.enqueued_at > fn.max_event_age_s:
            self._record(
                Delivery(
                    len(self.deliveries) + 1, job.event_id, job.event_type, job.source, fn.name, job.attempt,
                    "expired", f"event older than MaxAsyncEventAgeInSeconds={fn.max_event_age_s}",
                    clock.iso(), 0.0, "", None, [],
                )
            )  # fmt: skip
            self._dead_letter(fn, job, "expired", job.last_failure, request_id=self._uuid())
            return
        delivery, failure = self._invoke(
            fn, job.payload, event_id=job.event_id, event_type=job.event_type, source=job.source, attempt=job.attempt
        )
        if failure is None:
            return
        if job.attempt <= fn.max_retries:
            self._schedule_retry(replace(job, attempt=job.attempt + 1, last_failure=failure))
            return
        delivery.outcome = "dead-letter"
        self._dead_letter(fn, replace(job, last_failure=failure), "retries-exhausted", failure, delivery.request_id)

    def _schedule_retry(self, job: _Job) -> None:
        key = next(self._retry_ids)
        delay = RETRY_BASE_S * 2 ** (job.attempt - 2)  # attempt 2 (first retry) waits 2 s, then 4 s, 8 s ...

        def fire() -> None:  # under the cloud's lock: queue only
            self._retries.pop(key, None)
            self._queue.append(job)

        with self.cloud.lock:
            self._retries[key] = self.cloud.clock.call_later(delay, fire, f"fc-retry:{job.function}#{job.attempt}")

    def _invoke(
        self, fn: FunctionDef, payload: bytes, *, event_id: str, event_type: str, source: str, attempt: int
    ) -> tuple[Delivery, Failure | None]:
        """Call the handler with the instance's environment; capture logs, result, error."""
        with self._exec_lock:
            with self.cloud.lock:
                before = self.cloud.calls.copy()
            invoke = self._invoke_isolated if self.isolated else self._invoke_in_process
            delivery, failure = invoke(fn, payload, event_id=event_id, event_type=event_type, source=source,
                                       attempt=attempt)  # fmt: skip
            with self.cloud.lock:  # the calls this invocation made (one invocation at a time: all of them its own)
                delivery.api_calls = dict(self.cloud.calls - before)
            return delivery, failure

    def _invoke_isolated(
        self, fn: FunctionDef, payload: bytes, *, event_id: str, event_type: str, source: str, attempt: int
    ) -> tuple[Delivery, Failure | None]:
        request_id = self._uuid()
        simulated_time = self.cloud.clock.iso()
        instance = self._processes.get(fn.name)
        if instance is None:
            instance = self._processes[fn.name] = ProcessInstance(self.python, fn)
        env = invocation_env(
            fn, self.cloud.region, self.cloud.account_id, self.credentials, self.extra_env,
            instance=instance_id(fn, self._generations[fn.name]),
        )  # fmt: skip
        env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
        context = {
            "request_id": request_id,
            "credentials": vars(self.credentials),
            "function": {"name": fn.name, "handler": fn.handler, "memory": fn.memory_mb, "timeout": fn.timeout_s},
            "region": self.cloud.region,
            "account_id": self.cloud.account_id,
        }
        started = time.perf_counter()
        answer = instance.call(payload, context, env, f"{self.cloud.clock.iso_millis()} {request_id}")
        wall_ms = (time.perf_counter() - started) * 1000
        result, failure = answer_outcome(answer)
        if failure is not None and failure.error_type in INSTANCE_LOST:
            self._generations[fn.name] += 1  # the process is gone; the next call starts a new one
        delivery = Delivery(
            seq=len(self.deliveries) + 1, event_id=event_id, event_type=event_type, source=source, function=fn.name,
            attempt=attempt, outcome="ok" if failure is None else "error", error=None if failure is None else str(failure),
            simulated_time=simulated_time, wall_ms=round(wall_ms, 3), request_id=request_id, result=result,
            logs=list(answer.get("logs") or []),
            error_type=failure.error_type if failure else "", stack=failure.stack if failure else [],
        )  # fmt: skip
        self._record(delivery)
        return delivery, failure

    def _invoke_in_process(
        self, fn: FunctionDef, payload: bytes, *, event_id: str, event_type: str, source: str, attempt: int
    ) -> tuple[Delivery, Failure | None]:
        request_id = self._uuid()
        simulated_time = self.cloud.clock.iso()
        context = make_context(
            fn, request_id=request_id, region=self.cloud.region, account_id=self.cloud.account_id,
            credentials=self.credentials,
        )  # fmt: skip
        env = invocation_env(
            fn, self.cloud.region, self.cloud.account_id, self.credentials, self.extra_env,
            instance=instance_id(fn, self._generations[fn.name]),
        )  # fmt: skip
        log_prefix = f"{self.cloud.clock.iso_millis()} {request_id}"
        result, failure, lines, wall_ms = call_in_process(functools.partial(self._module, fn), fn, payload, context, env,
                                                          log_prefix)  # fmt: skip
        delivery = Delivery(
            seq=len(self.deliveries) + 1,
            event_id=event_id,
            event_type=event_type,
            source=source,
            function=fn.name,
            attempt=attempt,
            outcome="ok" if failure is None else "error",
            error=None if failure is None else str(failure),
            simulated_time=simulated_time,
            wall_ms=round(wall_ms, 3),
            request_id=request_id,
            result=result,
            logs=lines,
            error_type=failure.error_type if failure else "",
            stack=failure.stack if failure else [],
        )
        self._record(delivery)
        return delivery, failure

    def _module(self, fn: FunctionDef) -> ModuleType:
        """The handler module of `fn`, imported on first use (a cold start) and cached (a warm instance)."""
        module = self._modules.get(fn.name)
        if module is not None:
            return module
        # A unique name per runtime and function: every function has its own index.py.
        safe_name = re.sub(r"\W", "_", fn.name)
        name = f"_localcloud_fc{self._tag}_{safe_name}_{fn.module_path.replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(name, fn.handler_file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {fn.handler_file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            self._generations[fn.name] += 1  # the failed instance is gone; the next call starts a new one
            raise
        if not callable(getattr(module, fn.function_attr, None)):
            sys.modules.pop(name, None)
            self._generations[fn.name] += 1
            raise AttributeError(f"{fn.handler_file} has no function {fn.function_attr!r} (Handler {fn.handler})")
        self._modules[fn.name] = module
        return module

    def _dead_letter(
        self, fn: FunctionDef, job: _Job, reason: Literal["retries-exhausted", "expired"], failure: Failure | None,
        request_id: str,
    ) -> None:  # fmt: skip
        cloud = self.cloud
        attempts = job.attempt if reason == "retries-exhausted" else job.attempt - 1
        published_to = None
        match = _BUS_ARN.match(fn.on_failure or "")
        with cloud.lock:
            if match and match.group(1) in cloud.events.buses:
                published_to = match.group(1)
                function_arn = f"acs:fc:{cloud.region}:{cloud.account_id}:functions/{fn.name}"
                data = failure_destination_data(
                    now=cloud.clock.now, request_id=request_id, function_arn=function_arn, reason=reason,
                    attempts=attempts, payload=job.payload, failure=failure,
                )  # fmt: skip
                event = cloud.events.envelope(
                    source="acs.fc", event_type=FAILURE_EVENT_TYPE, subject=function_arn, data=data, bus=published_to
                )
                first = cloud.events.cursor
                cloud.events.publish(event, published_to)
                self._own_events.update(range(first, cloud.events.cursor))
            at = cloud.clock.iso()
        self.dead_letters.append(
            DeadLetter(
                job.event, fn.name, attempts, None if failure is None else str(failure), reason, at, published_to
            )
        )

    def _record(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # -- reports -------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return summarize(self.deliveries, self.dead_letters)

    def trace(self) -> str:
        """One row per delivery: when (virtual), what, to whom, which try, how it went."""
        return trace_table(self.deliveries)


def _epoch(at: str | float) -> float:
    if isinstance(at, (int, float)):
        return float(at)
    moment = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
