"""The floor of a local fleet run's wall time: what no emulator or Bakery speed-up can take away.

    .venv/bin/python tests/benchmarks/bench_floor.py [--out tests/benchmarks/results/floor.json] [--script-runs 40]

A local run (`bakery local run`, LocalRun) is one Python process that starts, imports its code, and then makes
every API call of every bake through the real Alibaba SDKs over an in-process `responses` transport
(localcloud/mock.py), while each preflight script runs as child processes (bash and the confinement's tools,
localcloud/guest). Three of its costs are measured here, each on its own, with nothing patched or wrapped:

1. Start and imports: a fresh interpreter importing what no local run can do without (NEEDED_IMPORTS:
   bakery_tools.local and the three SDK clients, the emulator pieces LocalRun imports, the functions' handler
   package), as a whole process: CPU and wall time, the least of a few. For reference, also bakery_tools.local
   with the SDK clients alone, and every module the captured run had loaded by its end (in its order).
2. SDK + transport per call, with no emulator: the SDK clients from Bakery's own factory (bakery.clients.client,
   the Config the adapters get, the local FC runtime's STS credentials) send the requests a real 200-instance
   fleet sent, in its order, through localcloud.mock's transport, answered by a callback that hands back the
   body the emulator gave that very call (recorded beforehand). So only the SDK's request building and
   signing, requests/urllib3/responses and the SDK's response parsing are timed. The calls, their order and
   their answers come from a real run (`LocalCloud.replies`); the requests of writes are those ActionTrail
   recorded (the exact parameters: RunCommand with its whole base64 preflight, TagResources with the tags a
   bake writes), rebuilt into SDK request models and checked against what the SDK then sends; those of reads
   (which ActionTrail does not record) are built as Bakery's adapters build them (bakery.adapters.ecs), and
   PutEvents carry the events that run's bus received.
3. Guest script CPU per preflight: the preflight Bakery sends (bakery.stages.claim.preflight_script_for), run
   in a fresh localcloud GuestSandbox per run (as every fleet instance gets its own), confinement as the
   default; CPU of the children (RUSAGE_CHILDREN: the script's processes, the confinement's included), the mean
   over the runs; for reference, this process's own side (writing the guest tree and jail, starting and
   reaping the processes, reading their output), which the floor counts as emulator work (zero).

The model (a lower bound; every cost not measured above counts as zero: the emulator, Bakery's own logic, the
local FC runtime, the event bus, garbage collection, the instance sandboxes' trees):

    main(N)    = imports + N * sdk_per_bake        CPU of the one interpreter, whose Python code runs one
                                                   thread at a time (GIL): no second core shares it
    scripts(N) = N * script_cpu                    CPU of the guest scripts' processes, which can run on
                                                   the other cores meanwhile
    wall(N)   >= max(main(N), (main(N) + scripts(N)) / cores)

`imports` there is the part the goals' figure includes: profile_fleet's wall_seconds (bench.py's wall_200 and
wall_1000) is timed from after `bakery_tools.local` is imported, so the interpreter's start and that import
(measured too, ~0.1 s) are left out; `process_wall_floor_seconds` keeps them (the whole `bakery local run`).

`sdk_per_bake` is the replayed fleet's SDK + transport CPU (the least of whole replays) over its bakes: the
operator's trigger tags included, as a run makes them; the deployment's 4 bus-setup calls, made before recording
can start, not. N = 1,000 scales it from the 200 fleet (bench.json: the 1,000 fleet makes the same calls per bake).
Goals (issue 11): a 200-instance run <= 8 s, a 1,000-instance run <= 60 s. "floor_under_goal" says only that
this lower bound is under the goal, not that the goal can be met: the headroom is what everything counted as
zero (the emulator, Bakery's logic, the FC runtime, the event bus) would have to fit in.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests/benchmarks/results/floor.json"
CAPTURE_FLEET = 200  # the fleet whose calls are replayed
RATE_LIMIT = 5.0  # CreateImage calls per simulated second, as in every benchmark fleet
SIZES = (200, 1000)
GOALS_S = {200: 8.0, 1000: 60.0}  # bench.py wall_200, wall_1000
# The least a local run's process imports: Bakery's local-run entry point and the SDK clients.
MINIMAL_IMPORTS = (
    "bakery_tools.local",
    "alibabacloud_ecs20140526.client",
    "alibabacloud_oos20190601.client",
    "alibabacloud_eventbridge20200401.client",
)
# What no local run can do without (the floor's): those, what LocalRun.__post_init__ imports (the emulator, its FC
# runtime and template loader, the in-process transport, the bus setup) and what the functions' index.py import.
NEEDED_IMPORTS = (
    *MINIMAL_IMPORTS,
    "localcloud",
    "localcloud.fc.runtime",
    "localcloud.fc.template",
    "localcloud.testing",
    "localcloud.mock",
    "bakery_tools.deploy.buses",
    "bakery.entrypoints",
)
# ActionTrail's own keys in a record's requestParameters (localcloud/cloud.py _publish_api_call): not the request's.
_ACTIONTRAIL_KEYS = {"AcsProduct", "AcsHost", "RequestId"}
_NOT_LOADED_AGAIN = re.compile(r"^(__main__|_localcloud_fc|tests(\.|$)|bench_floor$|profile_fleet$)")
_CAPTURE_FLAG = "--capture"


# == 0. the run that is replayed =================================================================


def capture(n: int, path: str) -> dict[str, Any]:
    """Run an N-instance fleet in this process (a fresh one: see `_captured`) and write to `path` what the
    replay needs: every call's answer in order, the writes' parameters, the bus's events, the modules loaded."""
    from bakery_tools.local import LocalRun
    from tests.benchmarks.profile_fleet import fleet_scenario

    started = time.perf_counter()
    run = LocalRun(fleet_scenario(n, RATE_LIMIT, fit_quotas=True))  # as bench.py's wall-time runs
    setup_calls = dict(run.cloud.calls)
    run.cloud.replies = []  # what record_replies=True keeps: (service, action, reply) of every call from here
    try:
        report = run.run()
        problems = run.problems(report)
        replies = [
            {"service": service, "action": action, "status": reply.status, "headers": headers,
             "body": base64.b64encode(payload).decode()}
            for service, action, reply in run.cloud.replies
            for payload, headers in [reply.wire()]
        ]  # fmt: skip
        writes: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
        bus_events: list[dict[str, Any]] = []
        for published in run.cloud.events.log:
            event = published.event
            data = event.get("data") or {}
            if "requestParameters" in data and event.get("type", "").endswith(":ActionTrail:ApiCall"):
                writes[data["eventName"]].append(dict(data["requestParameters"]))
            elif str(event.get("source", "")) == "bakery":
                bus_events.append({k: event.get(k) for k in ("id", "source", "type", "subject", "data")})
    finally:
        run.close()
    wall = time.perf_counter() - started
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    states = [b["state"] for b in report["bakes"]]
    result = {
        "instances": n,
        "region": run.cloud.region,
        "run": {
            "wall_seconds": round(wall, 2),
            "process_cpu_seconds": round(me.ru_utime + me.ru_stime, 2),  # imports included
            "children_cpu_seconds": round(children.ru_utime + children.ru_stime, 2),
            "bakes": len(states),
            "ready": states.count("ready"),
            "api_calls": report["api_calls"],
            "setup_calls": setup_calls,
            "outcome": report.get("outcome"),
            "problems": [str(p) for p in problems],
        },
        "replies": replies,
        "writes": writes,
        "bus_events": bus_events,
        "modules": [name for name in sys.modules if not _NOT_LOADED_AGAIN.match(name)],
    }
    Path(path).write_text(json.dumps(result), encoding="utf-8")
    return result


def _captured(n: int) -> dict[str, Any]:
    """`capture(n)` in a fresh interpreter (its heap and imports are not this process's)."""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        path = os.path.join(tmp, "capture.json")
        done = subprocess.run([sys.executable, __file__, _CAPTURE_FLAG, str(n), path], cwd=ROOT,
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the {n}-instance capture run failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(Path(path).read_text(encoding="utf-8"))


# == 1. interpreter start and imports =============================================================

_IMPORT_CHILD = """
import importlib, json, sys, time
started = time.perf_counter()
names = json.loads(sys.stdin.read())
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}")
print(json.dumps({"import_seconds": time.perf_counter() - started, "failed": failed, "loaded": len(sys.modules)}))
"""


def imports(modules: list[str] | tuple[str, ...], repeat: int) -> dict[str, Any]:
    """A fresh interpreter importing `modules` (in order), `repeat` times: its whole process's CPU and wall time
    (start and exit included). The least of the samples is the floor's (a busy machine only adds)."""
    cpu, wall, inside = [], [], []
    last: dict[str, Any] = {}
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", _IMPORT_CHILD], input=json.dumps(list(modules)), cwd=ROOT,
                              capture_output=True, text=True, check=True)  # fmt: skip
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        last = json.loads(done.stdout.strip().splitlines()[-1])
        inside.append(last["import_seconds"])
    return {
        "modules_asked": len(modules),
        "modules_loaded": last.get("loaded"),
        "failed": last.get("failed", []),
        "process_cpu_seconds": round(min(cpu), 3),
        "process_cpu_seconds_median": round(statistics.median(cpu), 3),
        "process_wall_seconds": round(min(wall), 3),
        "import_wall_seconds": round(min(inside), 3),  # inside the child: interpreter start and exit aside
        "samples_cpu": [round(x, 3) for x in cpu],
    }


# == 2. SDK + transport, no emulator ==============================================================


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


class Requests:
    """The SDK request of each replayed call: a write as ActionTrail recorded it, a read as the adapter builds
    it, PutEvents with the bus's events. `ids` are taken from the run (any id of the same shape costs the same)."""

    def __init__(self, captured: dict[str, Any]) -> None:
        from alibabacloud_ecs20140526 import models as ecs
        from alibabacloud_eventbridge20200401 import models as eventbridge

        from bakery import tags
        from bakery.adapters.ecs import ALL_IMAGE_STATUSES

        self.models = {"ecs": ecs, "eventbridge": eventbridge}
        region = captured["region"]
        self.writes = {
            action: [self._request_parameters(p) for p in params] for action, params in captured["writes"].items()
        }
        self._next: collections.Counter[str] = collections.Counter()
        tagged = self.writes.get("TagResources") or [{"ResourceId.1": "i-n000"}]
        instance_id = tagged[0].get("ResourceId.1", "i-n000")
        image_id = (self.writes.get("ModifyImageAttribute") or [{}])[0].get("ImageId", "m-bp1nn116bd07lg4xb7hx")
        invoke_id = "t-hz0jdfwd6x2tkr4"
        bake_id = "b-395335eadc405953"
        # The adapters' requests (bakery/adapters/ecs.py): instance(), disks(), command_result(), images_tagged()
        # (the sweep's listing, one page), shared_accounts(), snapshots_tagged() (promote.py's retiring snapshots).
        self.reads: dict[str, Callable[[], Any]] = {
            "DescribeInstances": lambda: ecs.DescribeInstancesRequest(
                region_id=region, instance_ids=json.dumps([instance_id])),
            "DescribeDisks": lambda: ecs.DescribeDisksRequest(
                region_id=region, instance_id=instance_id, max_results=100),
            "DescribeInvocationResults": lambda: ecs.DescribeInvocationResultsRequest(
                region_id=region, invoke_id=invoke_id, instance_id=instance_id, content_encoding="PlainText"),
            "DescribeImages": lambda: ecs.DescribeImagesRequest(
                region_id=region, status=ALL_IMAGE_STATUSES, image_owner_alias="self", page_size=100, page_number=1,
                tag=[ecs.DescribeImagesRequestTag(key=tags.IN_FLIGHT, value="true")]),
            "DescribeImageSharePermission": lambda: ecs.DescribeImageSharePermissionRequest(
                region_id=region, image_id=image_id, page_size=100, page_number=1),
            "DescribeSnapshots": lambda: ecs.DescribeSnapshotsRequest(
                region_id=region, tag=[ecs.DescribeSnapshotsRequestTag(key=tags.RETIRING, value=bake_id)],
                max_results=100),
            "GetEventBus": lambda: eventbridge.GetEventBusRequest(event_bus_name="bakery"),
        }  # fmt: skip
        calls = sum(1 for r in captured["replies"] if r["action"] == "PutEvents")
        events = captured["bus_events"]
        # The bus's events over the PutEvents calls, in order, as evenly as they go (Bakery sends <= 16 a call).
        self.put_events = [events[len(events) * i // calls : len(events) * (i + 1) // calls] for i in range(calls)]

    def rewind(self) -> None:
        self._next.clear()

    @staticmethod
    def _request_parameters(params: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in params.items() if k not in _ACTIONTRAIL_KEYS}

    def build(self, service: str, action: str) -> tuple[Any, dict[str, str] | None]:
        """(SDK request, the parameters it must send, when known) for the next call of `action`."""
        index = self._next[action]
        self._next[action] += 1
        models = self.models[service]
        if action == "PutEvents":
            batch = self.put_events[index % len(self.put_events)] if self.put_events else []
            entries = [
                models.PutEventsRequestEventList(id=e["id"], source=e["source"], type=e["type"], subject=e["subject"],
                                                 spec_version="1.0", data_content_type="application/json",
                                                 data=json.dumps(e["data"]))
                for e in batch
            ]  # fmt: skip
            return models.PutEventsRequest(event_bus_name="bakery", event_list=entries), None
        if action in self.writes:
            from localcloud.wire import unflatten  # the emulator's reading of flat RPC parameters

            params = self.writes[action][index % len(self.writes[action])]
            return getattr(models, f"{action}Request")().from_map(unflatten(params)), params
        if action in self.reads:
            return self.reads[action](), None
        raise KeyError(f"no request for {service} {action}: add it to Requests")


@contextmanager
def _canned_transport(answer: Callable[[Any], tuple[int, dict[str, str], bytes]]) -> Iterator[str]:
    """localcloud.mock's transport (the route a run's SDK calls take), its callback `answer` instead of the
    emulator. Yields the host to send to."""
    from localcloud.mock import MOCK_DOMAIN, routing_mock

    mock = routing_mock(answer)
    mock.start()
    try:
        yield f"floor.{MOCK_DOMAIN}"
    finally:
        mock.stop()
        mock.reset()


def _sent_params(request: Any) -> dict[str, str]:
    """What the SDK sent: query and form body."""
    sent = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and "x-www-form-urlencoded" in (request.headers.get("Content-Type") or ""):
        sent.update(parse_qsl(body, keep_blank_values=True))
    return sent


def sdk(captured: dict[str, Any], bakes: int, passes: int = 2, check_first: int = 5) -> dict[str, Any]:
    """Replay the captured run's calls through the SDK clients, each answered with the body it got then: first
    a check of the first `check_first` calls of each action (untimed: the warm-up too), then `passes` timed replays."""
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    from bakery.clients import client, reset_clients
    from bakery.config import Settings
    from localcloud.fc.runtime import LOCAL_FC_CREDENTIALS

    replies = captured["replies"]
    bodies = [base64.b64decode(r["body"]) for r in replies]
    requests = Requests(captured)
    current: list[Any] = [None]  # the reply the call being made gets
    seen: list[Any] = []  # what the SDK sent, while checking
    checking, answered = [True], [0]

    def answer(request: Any) -> tuple[int, dict[str, str], bytes]:
        answered[0] += 1
        if checking[0]:
            seen.append(request)
        status, headers, body = current[0]
        return status, dict(headers), body

    problems: list[str] = []
    with _canned_transport(answer) as host:
        credentials = LOCAL_FC_CREDENTIALS
        settings = Settings(region=captured["region"], cloud_endpoint=host, access_key_id=credentials.access_key_id,
                            access_key_secret=credentials.access_key_secret,
                            security_token=credentials.security_token)  # fmt: skip
        reset_clients()
        clients = {service: client(service, settings) for service in {r["service"] for r in replies}}

        def one(i: int) -> tuple[str, dict[str, str] | None, bool]:
            r = replies[i]
            request, params = requests.build(r["service"], r["action"])
            current[0] = (r["status"], r["headers"], bodies[i])
            try:
                getattr(clients[r["service"]], _snake(r["action"]))(request)
            except AlibabaCloudException:  # the recorded answer was an error (a throttled CreateImage): as then
                return r["action"], params, False
            return r["action"], params, True

        # Checking pass (untimed, also the warm-up): the first few calls of each action, the writes' parameters
        # compared with what the SDK sends.
        firsts: dict[str, list[int]] = collections.defaultdict(list)
        checked = [0, 0]  # calls, write parameters
        for i, r in enumerate(replies):
            if len(firsts[r["action"]]) < check_first:
                firsts[r["action"]].append(i)
        for action, indexes in firsts.items():
            for i in indexes:
                seen.clear()
                _, params, _ = one(i)
                if len(seen) != 1:
                    problems.append(f"{action}: the SDK sent {len(seen)} requests for one call")
                    continue
                sent = _sent_params(seen[0])
                if sent.get("Action", seen[0].headers.get("x-acs-action")) != action:
                    problems.append(f"{action}: the SDK sent action {sent.get('Action')!r}")
                checked[0] += 1
                if params is not None:
                    checked[1] += len(params)
                    differ = sorted(k for k, v in params.items() if sent.get(k) != v)
                    if differ:
                        problems.append(f"{action}: sent differently from the run: {', '.join(differ[:5])}")
        requests.rewind()
        checking[0], answered[0] = False, 0

        thread_time, perf = time.thread_time, time.perf_counter
        timed: list[dict[str, Any]] = []
        for _ in range(passes):  # the least CPU of `passes` whole replays is the floor's (a busy machine only adds)
            requests.rewind()
            answered[0], errors = 0, 0
            per_action_cpu: collections.Counter[str] = collections.Counter()
            per_action_calls: collections.Counter[str] = collections.Counter()
            wall_started, cpu_started = perf(), thread_time()
            for i in range(len(replies)):
                before = thread_time()
                action, _, ok = one(i)
                per_action_cpu[action] += thread_time() - before
                per_action_calls[action] += 1
                errors += not ok
            timed.append({"cpu": thread_time() - cpu_started, "wall": perf() - wall_started, "errors": errors,
                          "cpu_by": per_action_cpu, "calls_by": per_action_calls})  # fmt: skip
            if answered[0] != len(replies):
                problems.append(f"{answered[0]} requests answered for {len(replies)} calls (an SDK retry?)")
        reset_clients()
    best = min(timed, key=lambda t: t["cpu"])
    cpu, wall, errors, per_action_cpu, per_action_calls = (
        best[k] for k in ("cpu", "wall", "errors", "cpu_by", "calls_by")
    )
    recorded = sum(captured["run"]["api_calls"].values())
    return {
        "transport": "localcloud.mock.routing_mock (a run's), canned answers",
        "calls": len(replies),
        "calls_in_run": recorded,
        "not_replayed": "the deployment's bus setup, made before recording could start"
        if recorded != len(replies)
        else "",
        "checked": {"calls": checked[0], "write_parameters": checked[1]},
        "errors_as_recorded": errors,
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "passes_cpu_seconds": [round(t["cpu"], 3) for t in timed],
        "bakes": bakes,
        "cpu_seconds_per_bake": round(cpu / bakes, 5),
        "cpu_ms_per_call": round(cpu * 1000 / len(replies), 3),
        "by_action": {
            a: {
                "calls": per_action_calls[a],
                "cpu_ms_per_call": round(per_action_cpu[a] * 1000 / per_action_calls[a], 3),
                "cpu_seconds": round(per_action_cpu[a], 3),
            }
            for a in sorted(per_action_cpu, key=lambda a: -per_action_cpu[a])
        },
        "problems": problems,
    }


# == 3. guest script CPU ==========================================================================


def scripts(runs: int, captured_script: str | None) -> dict[str, Any]:
    """The preflight in `runs` fresh guest sandboxes, one after another, default confinement."""
    from bakery.config import Settings
    from bakery.stages.claim import preflight_script_for
    from localcloud.guest import GuestDisk, GuestSandbox, GuestSpec

    script = preflight_script_for(Settings(), [])  # the fleet's instances allow no rule to be skipped

    def sandbox(k: int) -> Any:
        disk = GuestDisk(disk_id=f"d-bpfloor{k:012d}", device="vda", disk_type="system", size_gib=40,
                         category="cloud_essd", serial=f"bpfloor{k:012d}")  # fmt: skip
        return GuestSandbox(f"i-floor{k:04d}", GuestSpec(), [disk], build=False)  # as the emulator makes them

    warm = sandbox(runs)  # the first run of a process probes namespaces and finds the tools: not counted
    try:
        confined = warm.confined
        warm.run(script, timeout_s=120)
    finally:
        warm.cleanup()
    children, own, walls, exits = [], [], [], collections.Counter()
    for k in range(runs):
        box = sandbox(k)
        kids, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        try:
            result = box.run(script, timeout_s=120)
        finally:
            walls.append(time.perf_counter() - started)
            kids2, me2 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
            box.cleanup()
        children.append(kids2.ru_utime + kids2.ru_stime - kids.ru_utime - kids.ru_stime)
        own.append(me2.ru_utime + me2.ru_stime - me.ru_utime - me.ru_stime)
        exits[result.exit_code] += 1
    problems = [] if set(exits) == {0} else [f"preflight exit codes {dict(exits)} (the fleet's pass: 0)"]
    if captured_script is not None and captured_script != script:
        problems.append("the preflight run here differs from the one the fleet sent")
    return {
        "runs": runs,
        "confined": confined,
        "script_bytes": len(script.encode()),
        "children_cpu_ms_per_run": round(statistics.mean(children) * 1000, 2),
        "children_cpu_ms_median": round(statistics.median(children) * 1000, 2),
        "own_cpu_ms_per_run": round(statistics.mean(own) * 1000, 2),  # this process's side: not in the floor
        "wall_ms_median": round(statistics.median(walls) * 1000, 2),
        "exit_codes": {str(k): v for k, v in exits.items()},
        "problems": problems,
    }


# == the floor ====================================================================================


def floor(
    import_cpu: float, before_window_cpu: float, sdk_per_bake: float, script_cpu: float, cores: int
) -> dict[int, dict[str, Any]]:
    """The model (module doc) for each of SIZES. The goals' figure (profile_fleet's wall_seconds) is timed from
    after `bakery_tools.local` is imported: the interpreter's start and that import (`before_window_cpu`) are
    outside it, so they are left out of `wall_floor_seconds` and kept in `process_wall_floor_seconds`."""
    out = {}
    for n in SIZES:
        imports_in_window = max(0.0, import_cpu - before_window_cpu)
        main = imports_in_window + n * sdk_per_bake
        guest = n * script_cpu
        wall = max(main, (main + guest) / cores)
        whole = max(main + before_window_cpu, (main + before_window_cpu + guest) / cores)
        out[n] = {
            "instances": n,
            "imports_cpu_seconds": round(imports_in_window, 2),
            "sdk_cpu_seconds": round(n * sdk_per_bake, 2),
            "main_cpu_seconds": round(main, 2),
            "scripts_cpu_seconds": round(guest, 2),
            "cores": cores,
            "bound_by": "main process" if main >= (main + guest) / cores else f"all CPU over {cores} cores",
            "wall_floor_seconds": round(wall, 2),
            "process_wall_floor_seconds": round(whole, 2),  # the whole process: `bakery local run` from a shell
            "goal_seconds": GOALS_S[n],
            "floor_under_goal": wall <= GOALS_S[n],
            "headroom_seconds": round(GOALS_S[n] - wall, 2),  # for everything the floor counts as zero
        }
    return out


def measure(
    script_runs: int = 40, import_repeat: int = 3, sdk_passes: int = 2, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Every measurement and the floor (see the module's doc). Run in a process of its own or not: the fleet is
    captured in a child, imports are timed in fresh children, the SDK's clients are made afresh here."""
    started = time.perf_counter()
    cores = os.cpu_count() or 1
    log(f"  capture: a {CAPTURE_FLEET}-instance fleet run, every answer recorded ...")
    stages: dict[str, float] = {}
    captured = _captured(CAPTURE_FLEET)
    stages["capture"] = round(time.perf_counter() - started, 1)
    run = captured["run"]
    problems = [f"capture run: {p}" for p in run["problems"]]
    if run["ready"] != CAPTURE_FLEET or run["outcome"] != "settled":
        problems.append(f"capture run: {run['ready']}/{run['bakes']} ready, outcome {run['outcome']}")
    log(f"  imports: a fresh interpreter x{import_repeat}, and the run's {len(captured['modules'])} modules ...")
    needed = imports(NEEDED_IMPORTS, import_repeat)
    minimal = imports(MINIMAL_IMPORTS, 1)
    before_window = imports(("bakery_tools.local",), import_repeat)  # start + what precedes the goals' timing
    everything = imports(captured["modules"], 1)  # a few loaded ones cannot be imported by name (cffi's _openssl)
    problems += [f"import failed: {f}" for f in needed["failed"] + minimal["failed"]]
    stages["imports"] = round(time.perf_counter() - started - sum(stages.values()), 1)
    log(f"  SDK + transport: {len(captured['replies'])} calls replayed x{sdk_passes}, canned answers ...")
    calls = sdk(captured, run["bakes"], sdk_passes)
    problems += [f"sdk: {p}" for p in calls["problems"]]
    stages["sdk"] = round(time.perf_counter() - started - sum(stages.values()), 1)
    log(f"  guest scripts: the preflight x{script_runs} in fresh sandboxes ...")
    commands = captured["writes"].get("RunCommand") or []
    fleet_script = base64.b64decode(commands[0]["CommandContent"]).decode() if commands else None
    guest = scripts(script_runs, fleet_script)
    stages["scripts"] = round(time.perf_counter() - started - sum(stages.values()), 1)
    problems += [f"scripts: {p}" for p in guest["problems"]]
    floors = floor(needed["process_cpu_seconds"], before_window["process_cpu_seconds"], calls["cpu_seconds_per_bake"],
                   guest["children_cpu_ms_per_run"] / 1000, cores)  # fmt: skip
    return {
        "benchmark": "bakery local-run wall-time floor (bench_floor.py)",
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {cores} cpus",
        "model": "main = imports + N * sdk_per_bake; scripts = N * script_cpu; "
        "wall >= max(main, (main + scripts) / cores); emulator, Bakery logic, FC runtime, event bus: 0; "
        "imports: those after bakery_tools.local's (the goals' timing starts there; process_wall_floor_seconds: all)",
        "floor": {str(n): f for n, f in floors.items()},
        "imports": {**needed, "modules": list(NEEDED_IMPORTS)},
        "imports_minimal": {**minimal, "modules": list(MINIMAL_IMPORTS)},
        "imports_before_timing": {**before_window, "modules": ["bakery_tools.local"]},
        "imports_all_a_run_loads": everything,
        "sdk": calls,
        "scripts": guest,
        "capture_run": {
            **{k: v for k, v in run.items() if k != "problems"},
            # Not measured: its process's CPU less what it imported and its SDK calls' floor. Roughly what the floor
            # counts as zero (the emulator, Bakery's logic, the FC runtime, the guests' host side; the recording too).
            "rest_of_process_cpu_seconds": round(
                run["process_cpu_seconds"] - everything["process_cpu_seconds"] - calls["cpu_seconds"], 2
            ),
        },
        "problems": problems,
        "seconds": round(time.perf_counter() - started, 1),
        "seconds_by_stage": stages,
    }


def table(result: dict[str, Any]) -> str:
    s, g, i = result["sdk"], result["scripts"], result["imports"]
    everything = result["imports_all_a_run_loads"]
    lines = [
        f"start + imports (fresh interpreter; bakery_tools.local, the SDK clients, the emulator, the handlers): "
        f"{i['process_cpu_seconds']} s CPU, {i['process_wall_seconds']} s wall; bakery_tools.local + SDK clients "
        f"alone {result['imports_minimal']['process_cpu_seconds']} s, all {everything['modules_asked']:,} "
        f"modules a run loads {everything['process_cpu_seconds']} s; the floor's imports leave out the start and "
        f"bakery_tools.local ({result['imports_before_timing']['process_cpu_seconds']} s), before the goals' timing",
        f"SDK + transport: {s['calls']} calls, {s['cpu_seconds']} s CPU = {s['cpu_ms_per_call']} ms a call, "
        f"{s['cpu_seconds_per_bake'] * 1000:.1f} ms a bake ({s['transport']})",
        "  by action (ms a call): "
        + ", ".join(f"{a} {v['cpu_ms_per_call']} x{v['calls']}" for a, v in list(s["by_action"].items())[:8]),
        f"guest preflight ({'confined' if g['confined'] else 'UNCONFINED'}): {g['children_cpu_ms_per_run']} ms CPU "
        f"in its processes a run (+{g['own_cpu_ms_per_run']} ms in the host process, not in the floor), "
        f"{g['runs']} runs; in the replayed run its children took "
        f"{result['capture_run']['children_cpu_seconds'] * 1000 / max(result['capture_run']['bakes'], 1):.1f} ms a bake",
        "",
    ]
    header = ("instances", "imports", "SDK", "main", "scripts", "wall floor", "goal", "floor under goal", "headroom",
              "whole process")  # fmt: skip
    rows = [header] + [
        (f"{f['instances']:,}", f"{f['imports_cpu_seconds']} s", f"{f['sdk_cpu_seconds']} s",
         f"{f['main_cpu_seconds']} s", f"{f['scripts_cpu_seconds']} s", f"{f['wall_floor_seconds']} s",
         f"<= {f['goal_seconds']:g} s", "yes" if f["floor_under_goal"] else "NO", f"{f['headroom_seconds']} s",
         f"{f['process_wall_floor_seconds']} s")
        for f in result["floor"].values()
    ]  # fmt: skip
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(len(lines) - len(rows) + 1, "-+-".join("-" * w for w in widths))
    c = result["capture_run"]
    lines.append(
        f"(the replayed {c['bakes']}-instance run itself, recording its answers: {c['wall_seconds']} s wall, "
        f"{c['process_cpu_seconds']} s CPU in its process, {c['children_cpu_seconds']} s in its children; its process "
        f"less imports and the SDK floor, i.e. what the floor counts as 0: ~{c['rest_of_process_cpu_seconds']} s)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == _CAPTURE_FLAG:
        capture(int(argv[1]), argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--script-runs", type=int, default=40, help="preflight runs in fresh sandboxes")
    parser.add_argument("--import-repeat", type=int, default=3, help="fresh interpreters importing (the least)")
    parser.add_argument("--sdk-passes", type=int, default=2, help="timed replays of the calls (the least)")
    args = parser.parse_args(argv)
    result = measure(args.script_runs, args.import_repeat, args.sdk_passes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print()
    print(table(result))
    print(f"\nwritten to {args.out} in {result['seconds']} s")
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:  # run as a script: `tests.benchmarks` must be importable
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
