"""Pipeline benchmark: API calls per clean bake, simulated overhead per bake, and the 50-instance fleet.

Overhead = how long a bake takes beyond the cloud's own work (image creation + Usable + the image
check), in simulated seconds: deterministic, so it compares across machines. Wall time for the fleet
is reported next to its simulated time; read it as a ratio, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bakery_tools.local import LocalRun
from localcloud import Scenario

TIMINGS = {"image_seconds_per_gib": 10, "usable_seconds": 30, "check_seconds": 300}


def _bake(instances: int, rate_limit: float | None, seed: int = 1) -> tuple[dict[str, Any], float, LocalRun]:
    scenario = Scenario.from_mapping(
        {
            "seed": seed,
            "timings": TIMINGS,
            **({"rate_limits": {"CreateImage": rate_limit}} if rate_limit else {}),
            "instances": [{"id": f"i-n{n:03d}", "disks": [{"type": "system", "size": 40}]} for n in range(instances)],
            "actions": [
                {"at": 0, "tag": {"instance": f"i-n{n:03d}", "tags": {"bakery:bake": "true", "bakery:family": "bench"}}}
                for n in range(instances)
            ],
        }
    )
    run = LocalRun(scenario)
    started = time.perf_counter()
    report = run.run()
    return report, time.perf_counter() - started, run


def clean_bake() -> dict[str, Any]:
    report, wall, run = _bake(1, None)
    try:
        (bake,) = report["bakes"]
        assert bake["state"] == "ready", bake
        assert not run.invariant_violations(report)
        events = {e["type"]: e for e in run.bakery_events()}
        ready = _epoch(events["bakery:Image:Ready"]["time"])
        tag_time = run.cloud.clock.start
        # The cloud's own work: the image (size x s/GiB), then its check, which starts at Available
        # and outlasts Usable. Everything else is Bakery's: preflight, polling delay, promotion.
        cloud_work = 40 * TIMINGS["image_seconds_per_gib"] + max(TIMINGS["usable_seconds"], TIMINGS["check_seconds"])
        return {
            "api_calls": sum(report["api_calls"].values())
            - report["api_calls"].get("TagResources", 0)
            + _bakery_tags(run),
            "api_calls_by_action": report["api_calls"],
            "deliveries": report["deliveries"],
            "seconds_tag_to_ready": ready - tag_time,
            "seconds_cloud_work": cloud_work,
            "overhead_seconds": round(ready - tag_time - cloud_work, 1),
            "wall_seconds": round(wall, 3),
        }
    finally:
        run.close()


def _bakery_tags(run: LocalRun) -> int:
    """TagResources calls made by Bakery itself (the operator's own tag call is not Bakery's cost)."""
    return sum(
        1
        for e in run.cloud.events.read(0, "default")
        if e.event["data"].get("eventName") == "TagResources"
        and e.event["data"]["userIdentity"]["accessKeyId"] != "LTAIoperator"
    )


def fleet(instances: int, rate_limit: float) -> dict[str, Any]:
    report, wall, run = _bake(instances, rate_limit, seed=2)
    try:
        states = [b["state"] for b in report["bakes"]]
        return {
            "instances": instances,
            "create_image_rate_limit_per_second": rate_limit,
            "ready": states.count("ready"),
            "failed": states.count("failed"),
            "invariant_violations": run.invariant_violations(report),
            "wall_seconds": round(wall, 3),
            "simulated_seconds": report["simulated_seconds"],
            "api_calls": sum(report["api_calls"].values()),
            "create_image_calls": report["api_calls"].get("CreateImage", 0),
            "deliveries": report["deliveries"],
        }
    finally:
        run.close()


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="tests/benchmarks/results/pipeline.json")
    parser.add_argument("--fleet", type=int, default=50)
    args = parser.parse_args()
    single = clean_bake()
    many = fleet(args.fleet, 5)
    report = {"benchmark": "pipeline", "python": platform.python_version(), "clean_bake": single, "fleet": many}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"clean bake: {single['api_calls']} API calls by Bakery, {single['overhead_seconds']} s simulated overhead "
          f"(tag → ready {single['seconds_tag_to_ready']:.0f} s, cloud's own work {single['seconds_cloud_work']} s)")  # fmt: skip
    print(f"{many['instances']}-instance fleet at CreateImage {many['create_image_rate_limit_per_second']}/s: "
          f"{many['ready']} ready, {many['failed']} failed, {many['wall_seconds']} s wall, "
          f"{many['simulated_seconds'] / 60:.0f} min simulated, {many['deliveries']}")  # fmt: skip
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
