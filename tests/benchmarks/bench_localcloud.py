"""Local cloud benchmark: emulator requests per second (HTTP vs in-process) and the wall time to
simulate a 200-instance region through image Available. Results go to a JSON file.

Machines here are shared and noisy, so read the ratio between transports (measured in one run)
and the deterministic counts (API calls, simulated seconds) rather than absolute timings.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from alibabacloud_ecs20140526 import models as ecs_models

from localcloud import LocalCloud, Scenario
from localcloud.testing import running


def requests_per_second(transport: str, calls: int) -> dict[str, Any]:
    cloud = LocalCloud(Scenario.from_mapping({"instances": [{"id": f"i-{n}"} for n in range(20)]}))
    with running(cloud, transport) as env:
        request = ecs_models.DescribeInstancesRequest(region_id=env.region, max_results=10)
        env.ecs.describe_instances(request)  # warm the connection pool and imports
        started = time.perf_counter()
        for _ in range(calls):
            env.ecs.describe_instances(request)
        elapsed = time.perf_counter() - started
    cloud.close()
    return {
        "transport": transport,
        "calls": calls,
        "seconds": round(elapsed, 4),
        "requests_per_second": round(calls / elapsed, 1),
    }


def fleet_through_available(instances: int) -> dict[str, Any]:
    """CreateImage for every instance, then poll (paged DescribeImages) as a client would until all are Available."""
    scenario = Scenario.from_mapping(
        {
            "seed": 1,
            "instances": [
                {
                    "id": f"i-fleet{n:03d}",
                    "disks": [{"type": "system", "size": 40}, {"type": "data", "size": 20 + n % 5 * 20}],
                }
                for n in range(instances)
            ],
        }
    )
    cloud = LocalCloud(scenario)
    started = time.perf_counter()
    with running(cloud, "inprocess") as env:
        for n in range(instances):
            env.ecs.create_image(
                ecs_models.CreateImageRequest(
                    region_id=env.region,
                    instance_id=f"i-fleet{n:03d}",
                    image_name=f"fleet-{n:03d}",
                    detection_strategy="Standard",
                )
            )
        while True:
            available, page = 0, 1
            while True:
                body = env.ecs.describe_images(
                    ecs_models.DescribeImagesRequest(
                        region_id=env.region, image_owner_alias="self", page_size=100, page_number=page
                    )
                ).body
                available += len(body.images.image)
                if page * 100 >= body.total_count:
                    break
                page += 1
            if available == instances:
                break
            cloud.advance(60)
    wall = time.perf_counter() - started
    counts = cloud.call_counts()
    result = {
        "instances": instances,
        "wall_seconds": round(wall, 3),
        "simulated_seconds": cloud.clock.elapsed,
        "api_calls": counts["total"],
        "calls_by_action": counts["calls"],
        "simulated_seconds_per_wall_second": round(cloud.clock.elapsed / wall, 1),
    }
    cloud.close()
    return result


def measure(calls: int = 500, instances: int = 200) -> dict[str, Any]:
    http = requests_per_second("http", calls)
    inprocess = requests_per_second("inprocess", calls)
    return {
        "benchmark": "localcloud",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "requests_per_second": {"http": http, "inprocess": inprocess},
        "inprocess_over_http_ratio": round(inprocess["requests_per_second"] / http["requests_per_second"], 2),
        "fleet_through_available": fleet_through_available(instances),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="write the results here too (make bench records them in bench.json)")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--instances", type=int, default=200)
    args = parser.parse_args()
    report = measure(args.calls, args.instances)
    http, inprocess = report["requests_per_second"]["http"], report["requests_per_second"]["inprocess"]
    fleet = report["fleet_through_available"]
    print(f"requests/s  http: {http['requests_per_second']}  in-process: {inprocess['requests_per_second']}  "
          f"(ratio {report['inprocess_over_http_ratio']})")  # fmt: skip
    print(f"{fleet['instances']}-instance fleet through Available: {fleet['wall_seconds']} s wall, "
          f"{fleet['simulated_seconds']:.0f} s simulated, {fleet['api_calls']} API calls")  # fmt: skip
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
