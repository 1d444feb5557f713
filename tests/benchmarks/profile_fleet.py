"""Fleet scale probe: N instances tagged for baking into one family, run locally; wall time, peak RSS, outcome.

    .venv/bin/python tests/benchmarks/profile_fleet.py 200 1000 [--rate-limit 5] [--json]
    .venv/bin/python tests/benchmarks/profile_fleet.py 200 --profile out.prof   # cProfile, in this process

`measure_fleet(n)` is what the benchmark suite calls. Each measurement runs in a fresh interpreter, because
ru_maxrss is a high-water mark for the whole process: two sizes measured in one process would report the
larger one's peak for both, and a caller's own memory would be counted too.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TIMINGS = {"image_seconds_per_gib": 10, "usable_seconds": 30, "check_seconds": 300}
_CHILD_FLAG = "--child"


def fleet_scenario(n: int, rate_limit: float | None, seed: int = 2, fit_quotas: bool = False) -> Any:
    """The same fleet as bench_pipeline: N 40 GiB instances, all tagged at t=0 for family `bench`.
    `fit_quotas`: raise the image and snapshot quotas (default 200 and 1000) so that every bake can
    succeed; with the defaults, bakes past the 200th image fail with QuotaExceed.Image."""
    from localcloud import Scenario

    return Scenario.from_mapping(
        {
            "seed": seed,
            "timings": TIMINGS,
            **({"rate_limits": {"CreateImage": rate_limit}} if rate_limit else {}),
            **({"quotas": {"images": n + 50, "snapshots": 2 * n + 1000}} if fit_quotas else {}),
            "instances": [{"id": f"i-n{i:03d}", "disks": [{"type": "system", "size": 40}]} for i in range(n)],
            "actions": [
                {"at": 0, "tag": {"instance": f"i-n{i:03d}", "tags": {"bakery:bake": "true", "bakery:family": "bench"}}}
                for i in range(n)
            ],
        }
    )


def measure_here(n: int, rate_limit: float = 5.0, *, fit_quotas: bool = False) -> dict[str, Any]:
    """Run the fleet in this process. peak_rss_mb is this process's high-water mark, so only meaningful in
    a fresh process: use measure_fleet unless you are that process."""
    from bakery_tools.local import LocalRun

    scenario = fleet_scenario(n, rate_limit, fit_quotas=fit_quotas)
    started = time.perf_counter()
    run = LocalRun(scenario)  # setup (deploying template.yml, N instances) is part of what a run costs
    try:
        report = run.run()
    finally:
        run.close()
    wall = time.perf_counter() - started
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    states = [b["state"] for b in report["bakes"]]
    return {
        "instances": n,
        "rate_limit": rate_limit,
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(me.ru_maxrss / 1024, 1),  # KiB on Linux
        # CPU time (this process, and the guest scripts it ran) reads steadier than wall time on a busy
        # machine; it includes the imports before the run.
        "cpu_seconds": round(me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime, 2),
        "bakes": len(states),
        "ready": states.count("ready"),
        "failed": states.count("failed"),
        "api_calls": sum(report["api_calls"].values()),
        "simulated_seconds": report["simulated_seconds"],
        "outcome": report.get("outcome"),
        "fit_quotas": fit_quotas,
    }


def measure_fleet(n: int, rate_limit: float = 5.0, *, fit_quotas: bool = False) -> dict[str, Any]:
    """Run an N-instance fleet in a fresh interpreter and return wall_seconds, peak_rss_mb, bakes, ready,
    api_calls (total), simulated_seconds (plus instances, rate_limit, failed, outcome, cpu_seconds, fit_quotas,
    process_seconds)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, _CHILD_FLAG, str(n), str(rate_limit), "1" if fit_quotas else "0"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"fleet of {n} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The whole child, interpreter start and exit included: at exit it finishes deleting the guest
    # sandboxes that closing the run handed to a background thread (localcloud/guest/sandbox.py _Reaper).
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    return result


def _profile(n: int, rate_limit: float, out: str, fit_quotas: bool) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(measure_here, n, rate_limit, fit_quotas=fit_quotas)
    profiler.dump_stats(out)
    pstats.Stats(out).sort_stats("cumulative").print_stats(40)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == _CHILD_FLAG:  # the measured process: one line of JSON, nothing else on stdout
        result = measure_here(int(argv[1]), float(argv[2]), fit_quotas=argv[3] == "1")
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="+", type=int, help="fleet sizes (instances), each in its own process")
    parser.add_argument("--rate-limit", type=float, default=5.0, help="CreateImage calls per simulated second")
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument("--fit-quotas", action="store_true", help="quotas large enough for every bake to succeed")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the first size in this process instead")
    args = parser.parse_args(argv)
    if args.profile:
        _profile(args.sizes[0], args.rate_limit, args.profile, args.fit_quotas)
        return 0
    for n in args.sizes:
        r = measure_fleet(n, args.rate_limit, fit_quotas=args.fit_quotas)
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{n} instances: {r['wall_seconds']} s wall ({r['cpu_seconds']} s CPU), {r['peak_rss_mb']} MB peak RSS, "
                  f"{r['ready']}/{r['bakes']} ready, {r['api_calls']} API calls, "
                  f"{r['simulated_seconds'] / 60:.0f} min simulated ({r['outcome']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
