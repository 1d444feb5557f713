"""Cold start and memory of the deployed artifacts (what `make package` builds), per function.

Everything runs in fresh `python3.10 -I -S -B` processes whose sys.path is the unzipped artifact plus the
standard library, as on FC's python3.10 runtime:

- import time (median of --repeat runs, interleaved across functions): `from index import handler`
  vs the bare SDK client modules the handler's first call imports (`alibabacloud_ecs20140526.client`,
  `alibabacloud_oos20190601.client`, `alibabacloud_eventbridge20200401.client`), both from the artifact as
  built (with its bytecode) and from the same files without bytecode (what every cold start would
  compile if the zip carried none);
- peak RSS of the function's own process (VmHWM; `getrusage(RUSAGE_SELF).ru_maxrss` is recorded too, but
  on Linux it starts from the high-water mark of whoever forked the process) over full invocations: a
  local cloud is served over HTTP by a separate process (`python -m localcloud serve --scenario
  localcloud/scenarios/bakery-demo.yml --port 0`), an instance whose image check fails is tagged, and
  every event the cloud publishes is routed by template.yml's triggers and rules to its function, each
  delivery a cold process with the environment FC gives (FC_*, fake ALIBABA_CLOUD_* STS keys, the
  template's variables, BAKERY_CLOUD_ENDPOINT). Timer triggers fire when the clock passes them; the
  clock jumps to the cloud's next state change (at least one minute), so the sweep runs once per jump
  rather than every simulated minute. The bake goes tag → preflight → CreateImage → check fails →
  ACS-ECS-RepairImage → repaired image checked → promoted, so every function runs on real events.

MemorySize: the smallest FC size (128 MB steps) with >= 50 % headroom over the largest peak RSS seen.
This is the function's own process; FC's runtime adds its own agent, so keep the headroom.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_eventbridge20200401 import models as eb_models
from alibabacloud_eventbridge20200401.client import Client as EbClient

from bakery_tools.local import LOCAL_PARAMETERS, OPERATOR_KEY
from bakery_tools.package import build, read_functions
from localcloud import Scenario
from localcloud.fc.context import Credentials, invocation_env
from localcloud.fc.pythons import find_python
from localcloud.fc.schedule import parse_schedule
from localcloud.fc.template import Template, load_template
from localcloud.testing import sdk_config

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yml"
SCENARIO = ROOT / "localcloud" / "scenarios" / "bakery-demo.yml"
SDK_CLIENTS = ("alibabacloud_ecs20140526.client", "alibabacloud_oos20190601.client",
               "alibabacloud_eventbridge20200401.client")  # fmt: skip
INSTANCE = "i-api1"  # bakery-demo.yml: its image check fails (NVMe), so repair runs too
BAKE_TAGS = {"bakery:bake": "true", "bakery:family": "api"}
END_EVENTS = ("bakery:Image:Ready", "bakery:Bake:Failed")
MEMORY_STEP_MB = 128
HEADROOM = 1.5
CREDENTIALS = Credentials("STS.BenchFcRoleKey", "bench-fc-secret", "bench-fc-sts-token")

# Peak RSS of this process's own address space. Not ru_maxrss alone: Linux carries the parent's high-water
# mark across fork/vfork + exec into ru_maxrss (here the ~120 MB benchmark process), so VmHWM is read too.
PEAK = r"""
import resource
def peak_kb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

IMPORT_PROBE = (
    PEAK
    + r"""
import json, resource, sys, time
root, modules = sys.argv[1], sys.argv[2].split(",")
sys.path.insert(0, root)
started = time.perf_counter()
for name in modules:
    __import__(name)
ms = (time.perf_counter() - started) * 1000
print(json.dumps({"ms": ms, "rss_kb": peak_kb(), "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
)

INVOKE_PROBE = (
    PEAK
    + r"""
import json, os, resource, sys, time
root, event_path, out_path = sys.argv[1:4]
sys.path.insert(0, root)
started = time.perf_counter()
from index import handler
imported = time.perf_counter()
env = os.environ
class _Obj:
    def __init__(self, **kw): self.__dict__.update(kw)
context = _Obj(
    request_id="bench-" + str(os.getpid()), region=env["FC_REGION"], account_id=env["FC_ACCOUNT_ID"],
    credentials=_Obj(access_key_id=env["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                     access_key_secret=env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                     security_token=env["ALIBABA_CLOUD_SECURITY_TOKEN"]),
    function=_Obj(name=env["FC_FUNCTION_NAME"], handler=env["FC_FUNCTION_HANDLER"],
                  memory=int(env["FC_FUNCTION_MEMORY_SIZE"]), timeout=0),
    service=_Obj(name="", log_project="", log_store="", qualifier="LATEST", version_id=""),
)
with open(event_path, "rb") as f:
    payload = f.read()
result, error = None, None
try:
    result = handler(payload, context)
except Exception as exc:
    error = f"{type(exc).__name__}: {exc}"
done = time.perf_counter()
with open(out_path, "w") as f:
    json.dump({"import_ms": (imported - started) * 1000, "call_ms": (done - imported) * 1000,
               "peak_rss_kb": peak_kb(), "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "result": result, "error": error}, f)
"""
)


def _run(python: str, args: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run([python, "-I", "-S", "-B", *args], capture_output=True, text=True, timeout=timeout,
                            env=env, cwd=tempfile.gettempdir())  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{python} {args[:2]} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _import(python: str, root: Path, modules: tuple[str, ...] | list[str]) -> dict[str, float]:
    out = _run(python, ["-c", IMPORT_PROBE, str(root), ",".join(modules)], env={"PATH": os.environ["PATH"]})
    return json.loads(out.strip().splitlines()[-1])


def _unzip(artifact: Path, target: Path, *, bytecode: bool) -> Path:
    with zipfile.ZipFile(artifact) as archive:
        names = [n for n in archive.namelist() if bytecode or not n.endswith(".pyc")]
        archive.extractall(target, members=names)
    return target


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else 0.0


def memory_size(peak_rss_mb: float, step: int = MEMORY_STEP_MB, headroom: float = HEADROOM) -> int:
    """The smallest multiple of `step` MB (at least 128) that is >= headroom x peak."""
    return max(128, step * math.ceil(peak_rss_mb * headroom / step))


# -- the local cloud, served by its own process --------------------------------------------------


class ServedCloud:
    def __init__(self, scenario: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localcloud", "serve", "--scenario", str(scenario), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        self.endpoint = ""
        deadline = time.monotonic() + 60
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.strip().startswith("endpoint:"):
                self.endpoint = line.split()[1]
                break
        if not self.endpoint:
            self.close()
            raise RuntimeError("localcloud serve did not print its endpoint")

    def admin(self, method: str, route: str) -> dict[str, Any]:
        request = urllib.request.Request(f"http://{self.endpoint}/_localcloud/{route}", method=method, data=b"" if method == "POST" else None)  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Chain:
    """Routes the served cloud's events to cold function processes, as EventBridge + FC would."""

    def __init__(self, cloud: ServedCloud, template: Template, python: str, roots: dict[str, Path], work: Path) -> None:
        self.cloud, self.template, self.python, self.roots, self.work = cloud, template, python, roots, work
        scenario = Scenario.load(SCENARIO)
        self.region, self.account_id = scenario.region, scenario.account_id
        self.invocations: list[dict[str, Any]] = []

    def run(self, max_simulated_s: float = 3 * 3600, max_invocations: int = 200) -> dict[str, Any]:
        cloud = self.cloud
        cloud.admin("POST", "reset")
        clock = cloud.admin("GET", "clock")
        started, now = clock["epoch"], clock["epoch"]
        eb = EbClient(sdk_config(cloud.endpoint, self.region))
        for bus in self.template.buses:
            try:
                eb.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name=bus))
            except Exception as exc:  # already there after a reset that keeps buses: fine
                if "Exist" not in str(exc):
                    raise
        cursor = cloud.admin("GET", "events?since=0")["cursor"]
        due = {t.logical_id: parse_schedule(t.expression).next_after(now) for t in self.template.timers if t.enabled}
        operator = EcsClient(sdk_config(cloud.endpoint, self.region, access_key_id=OPERATOR_KEY))
        operator.tag_resources(ecs_models.TagResourcesRequest(
            region_id=self.region, resource_type="instance", resource_id=[INSTANCE],
            tag=[ecs_models.TagResourcesRequestTag(key=k, value=v) for k, v in BAKE_TAGS.items()]))  # fmt: skip
        outcome = None
        first = len(self.invocations)
        while len(self.invocations) - first < max_invocations:
            published = cloud.admin("GET", f"events?since={cursor}")
            cursor = published["cursor"]
            for item in published["events"]:
                event = item["event"]
                if event.get("type") in END_EVENTS:
                    outcome = event["type"]
                for route in self.template.routes:
                    if route.bus == item["bus"] and route.pattern.matches(event):
                        self.invoke(route.function, event, str(event.get("type")))
            if published["events"]:
                continue
            if outcome or now - started >= max_simulated_s:
                break
            info = cloud.admin("GET", "clock")
            step = max(60.0, float(info["next_due_in"] or 60.0))
            cloud.admin("POST", f"clock/advance?seconds={step}")
            now = cloud.admin("GET", "clock")["epoch"]
            for timer in self.template.timers:
                if timer.logical_id in due and due[timer.logical_id] <= now:
                    at = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    self.invoke(timer.function, {"triggerTime": at, "triggerName": timer.trigger_name,
                                                 "payload": timer.payload}, "timer")  # fmt: skip
                    due[timer.logical_id] = parse_schedule(timer.expression).next_after(now)
        return {
            "instance": INSTANCE,
            "outcome": outcome or "unfinished",
            "simulated_seconds": round(now - started),
            "invocations": len(self.invocations) - first,
        }

    def invoke(self, function: str, event: dict[str, Any], kind: str) -> None:
        fn = self.template.functions[function]
        n = len(self.invocations)
        event_path, out_path = self.work / f"event-{n}.json", self.work / f"result-{n}.json"
        event_path.write_text(json.dumps(event), encoding="utf-8")
        env = invocation_env(fn, self.region, self.account_id,
                             CREDENTIALS, {"BAKERY_CLOUD_ENDPOINT": self.cloud.endpoint, "BAKERY_LOG_LEVEL": "WARNING"})  # fmt: skip
        env["FC_FUNC_CODE_PATH"] = str(self.roots[function])
        env["PATH"] = os.environ["PATH"]
        _run(self.python, ["-c", INVOKE_PROBE, str(self.roots[function]), str(event_path), str(out_path)], env=env)
        record = json.loads(out_path.read_text(encoding="utf-8"))
        status = record["error"] or (json.loads(record["result"]).get("status") if record["result"] else None)
        self.invocations.append({"function": function, "event": kind, "import_ms": record["import_ms"],
                                 "call_ms": record["call_ms"], "peak_rss_mb": record["peak_rss_kb"] / 1024,
                                 "ru_maxrss_mb": record["ru_maxrss_kb"] / 1024,
                                 "status": status, "error": record["error"]})  # fmt: skip


# -- the benchmark -------------------------------------------------------------------------------


def measure(repeat: int = 5, chains: int = 2, *, source_only: bool = True,
            log: Any = lambda m: print(m, flush=True)) -> dict[str, Any]:  # fmt: skip
    """Build the artifacts, time their imports (`repeat` fresh processes each; `source_only`: also without
    bytecode) and run `chains` full bakes of cold invocations. Returns the results document."""
    specs = read_functions(TEMPLATE)
    version = specs[0].python_version
    python = find_python(version)
    override = None
    if python is None:  # no python3.10 here: build for this interpreter instead, and say so
        python, override = sys.executable, f"{sys.version_info.major}.{sys.version_info.minor}"
    runtime = _run(python, ["-c", "import platform; print(platform.python_version())"]).strip()
    scenario = Scenario.load(SCENARIO)
    template = load_template(TEMPLATE, {"RepairZoneId": f"{scenario.region}-h", **LOCAL_PARAMETERS},
                             region=scenario.region, account_id=scenario.account_id)  # fmt: skip
    by_artifact = {s.artifact: s for s in specs}
    variants = (("", True), ("_no_bytecode", False)) if source_only else (("", True),)

    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        work = Path(tmp)
        log(f"building the artifacts for python{override or version} ...")
        artifacts = build(work / "dist", template=TEMPLATE, python_version=override, log=lambda _m: None)
        roots: dict[str, dict[str, Path]] = {key: {} for key, _ in variants}
        for artifact in artifacts:
            name = by_artifact[artifact.path.name].name
            for key, bytecode in variants:
                roots[key][name] = _unzip(artifact.path, work / f"fn{key}" / name, bytecode=bytecode)

        names = [by_artifact[a.path.name].name for a in artifacts]
        samples: dict[str, dict[str, list[float]]] = {n: defaultdict(list) for n in names}
        log(f"import times: {repeat} fresh python{runtime} processes per measurement ...")
        for _ in range(repeat):
            for name in names:
                for key, _bytecode in variants:
                    handler = _import(python, roots[key][name], ["index"])
                    sdk = _import(python, roots[key][name], SDK_CLIENTS)
                    samples[name]["import_ms" + key].append(handler["ms"])
                    samples[name]["sdk_import_ms" + key].append(sdk["ms"])
                    samples[name]["import_rss_mb" + key].append(handler["rss_kb"] / 1024)
        baseline_rss_mb = json.loads(_run(python, ["-c", PEAK + "print(peak_kb())"]))

        log(f"full invocations: {chains} bake(s) of {INSTANCE} against `localcloud serve` ...")
        cloud = ServedCloud(SCENARIO)
        chain = Chain(cloud, template, python, roots[""], work)
        try:
            runs = [chain.run() for _ in range(chains)]
        finally:
            cloud.close()

    functions: dict[str, Any] = {}
    for artifact in artifacts:
        spec = by_artifact[artifact.path.name]
        s = samples[spec.name]
        calls = [i for i in chain.invocations if i["function"] == spec.name]
        peak = max((i["peak_rss_mb"] for i in calls), default=0.0)
        import_ms, sdk_ms = _median(s["import_ms"]), _median(s["sdk_import_ms"])
        functions[spec.name] = {
            "artifact": artifact.path.name,
            "artifact_mb": round(artifact.size / 1e6, 1),
            "import_ms_median": import_ms,
            "sdk_import_ms_median": sdk_ms,
            "ratio": round(import_ms / sdk_ms, 2) if sdk_ms else None,
            "import_ms_median_no_bytecode": _median(s["import_ms_no_bytecode"]) if source_only else None,
            "sdk_import_ms_median_no_bytecode": _median(s["sdk_import_ms_no_bytecode"]) if source_only else None,
            "import_rss_mb_median": _median(s["import_rss_mb"]),
            "invocations": len(calls),
            "events": dict(sorted(Counter(i["event"] for i in calls).items())),
            "outcomes": dict(sorted(Counter(str(i["status"]) for i in calls).items())),
            "cold_call_ms_median": _median([i["call_ms"] for i in calls]),
            "cold_start_ms_median": _median([i["import_ms"] + i["call_ms"] for i in calls]),
            "peak_rss_mb": round(peak, 1),
            "peak_rss_mb_median": _median([i["peak_rss_mb"] for i in calls]),
            "ru_maxrss_mb_max": round(max((i["ru_maxrss_mb"] for i in calls), default=0.0), 1),
            "template_memory_size_mb": template.functions[spec.name].memory_mb,
            "recommended_memory_size_mb": memory_size(peak) if calls else None,
        }
    return {
        "benchmark": "coldstart",
        "runtime_python": runtime,
        "host_python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus",
        "artifacts_built_for": f"python{override or version}",
        "bytecode_in_artifacts": artifacts[0].compiled,
        "repeat": repeat,
        "baseline_rss_mb": round(baseline_rss_mb / 1024, 1),
        "memory_rule": f"smallest {MEMORY_STEP_MB} MB step >= {HEADROOM} x peak_rss_mb (>= 50% headroom)",
        "chains": runs,
        "errors": [i for i in chain.invocations if i["error"]][:5],
        "functions": functions,
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{'function':<16} {'import ms':>9} {'SDK ms':>7} {'ratio':>5} {'no-pyc ms':>9} {'cold ms':>8} "
          f"{'calls':>5} {'peak RSS':>9} {'MemorySize':>10}")  # fmt: skip
    for name, row in result["functions"].items():
        print(f"{name:<16} {row['import_ms_median']:>9.0f} {row['sdk_import_ms_median']:>7.0f} {row['ratio'] or 0:>5.2f} "
              f"{row['import_ms_median_no_bytecode'] or 0:>9.0f} {row['cold_start_ms_median']:>8.0f} {row['invocations']:>5} "
              f"{row['peak_rss_mb']:>6.1f} MB {row['recommended_memory_size_mb'] or 0:>7} MB")  # fmt: skip
    for c in result["chains"]:
        print(f"bake of {c['instance']}: {c['outcome']} after {c['simulated_seconds']} simulated s, "
              f"{c['invocations']} invocations")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results here too (make bench records them in bench.json)")
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per import measurement")
    parser.add_argument("--chains", type=int, default=2, help="full bakes (tag to promoted) for the RSS samples")
    parser.add_argument("--no-source-only", action="store_true", help="skip the imports without bytecode")
    args = parser.parse_args()
    result = measure(args.repeat, args.chains, source_only=not args.no_source_only)
    print_table(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0 if all(c["outcome"] == "bakery:Image:Ready" for c in result["chains"]) and not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
