"""The long chaos run: many generated cases, every invariant after each, distinct violations shrunk to a
minimal reproduction.

    .venv/bin/python tests/chaos/run_chaos.py --seeds 300 --out tests/chaos/results/chaos.json
    .venv/bin/python tests/chaos/run_chaos.py --repro tests/chaos/results/repro-01.yml   # one case again

1. generate: `--seeds` cases from tests/chaos/strategies.py (Hypothesis, seeded by `--hypothesis-seed`, so the
   same command runs the same cases), each run through tests/chaos/harness.py and checked;
2. shrink: for each distinct violation (tests/chaos/invariants.signature), Hypothesis replays the same seeded
   generation until that case and shrinks it while the violation persists (`--shrink-seconds` each);
3. write the figures to `--out` and each minimal case to `repro-NN.yml` beside it.
`--fuzz-events M` also publishes up to M foreign or malformed events onto the bakery bus in every run (tools
anyone may write): the invariants must hold through them too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from the project root: `tests.chaos` must import
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.chaos.harness import CaseResult, run_case  # noqa: E402
from tests.chaos.invariants import signature  # noqa: E402
from tests.chaos.strategies import chaos_cases  # noqa: E402

SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def canonical(case: dict[str, Any]) -> str:
    return json.dumps(case, sort_keys=True)


class Campaign:
    """Every case run so far, by canonical JSON (a run is deterministic: a case is never run twice)."""

    def __init__(self) -> None:
        self.results: dict[str, CaseResult] = {}
        self.generated: list[str] = []  # the generate phase's cases, in order

    def run(self, case: dict[str, Any]) -> CaseResult:
        key = canonical(case)
        if key not in self.results:
            self.results[key] = run_case(case)
        return self.results[key]


def generate(campaign: Campaign, count: int, hypothesis_seed: int, max_instances: int, fuzz: int,
             budget_s: float) -> None:  # fmt: skip
    started = time.perf_counter()

    @seed(hypothesis_seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=SUPPRESSED)  # fmt: skip
    @given(chaos_cases(max_instances=max_instances, max_fuzz_events=fuzz))
    def each(case: dict[str, Any]) -> None:
        if time.perf_counter() - started > budget_s:
            return  # out of time: the figures say how many ran
        result = campaign.run(case)
        campaign.generated.append(canonical(case))
        n = len(campaign.generated)
        marks = f" {len(result.violations)} violation(s)" if result.violations else ""
        print(f"[{n:4d}/{count}] {result.wall_seconds:5.2f}s bakes={len(result.report['bakes'])}{marks}", flush=True)

    each()


def shrink(campaign: Campaign, wanted: str, hypothesis_seed: int, count: int, max_instances: int, fuzz: int,
           budget_s: float) -> dict[str, Any]:  # fmt: skip
    """The smallest case still showing `wanted` that Hypothesis's shrinker reaches within `budget_s`."""
    started = time.perf_counter()
    best: list[dict[str, Any]] = []

    def shows(case: dict[str, Any]) -> bool:
        return wanted in {signature(v) for v in campaign.run(case).violations}

    @seed(hypothesis_seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=SUPPRESSED, report_multiple_bugs=False)  # fmt: skip
    @given(chaos_cases(max_instances=max_instances, max_fuzz_events=fuzz))
    def each(case: dict[str, Any]) -> None:
        known = canonical(case) in campaign.results
        if not known and time.perf_counter() - started > budget_s:
            return  # out of time: stop shrinking (cached cases still answer, so the replay is stable)
        if shows(case):
            if not best or len(canonical(case)) < len(canonical(best[0])):
                best[:] = [case]
            raise AssertionError(wanted)

    try:
        each()
    except BaseException as exc:  # the shrunk failure (or Hypothesis giving up): `best` holds the smallest
        if isinstance(exc, KeyboardInterrupt):
            raise
    return best[0] if best else {}


def write_repro(path: Path, case: dict[str, Any], wanted: str, lines: list[str]) -> None:
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    header = [
        "# Chaos reproduction: a localcloud scenario plus the harness's `chaos:` extras (tests/chaos/strategies.py).",
        f"# Run it: .venv/bin/python tests/chaos/run_chaos.py --repro {shown}",
        f"# Violation: {wanted}",
        *[f"#   {line}" for line in lines],
    ]
    path.write_text("\n".join(header) + "\n" + yaml.safe_dump(case, sort_keys=False, width=120))


def repro(path: Path) -> int:
    case = yaml.safe_load(path.read_text())
    result = run_case(case)
    print(json.dumps({"bakes": result.report["bakes"], "faults": dict(result.observed.faults)}, indent=2))
    for line in result.violations:
        print("VIOLATION:", line)
    return 1 if result.violations else 0


def figures(campaign: Campaign, args: argparse.Namespace, distinct: list[dict[str, Any]],
            wall: float) -> dict[str, Any]:  # fmt: skip
    runs = [campaign.results[k] for k in campaign.generated]
    bakes = [b for r in runs for b in r.report["bakes"]]
    faults: Counter[str] = Counter()
    by_action: Counter[str] = Counter()
    deliveries: Counter[str] = Counter()
    for r in runs:
        faults.update(r.observed.faults)
        by_action.update(r.observed.faults_by_action)
        deliveries.update(r.deliveries)
    return {
        "command": " ".join(["tests/chaos/run_chaos.py", *sys.argv[1:]]),
        "hypothesis_seed": args.hypothesis_seed,
        "runs": len(runs),
        "seeds": len({json.loads(k)["seed"] for k in campaign.generated}),
        "instances": sum(len(r.case["instances"]) for r in runs),
        "bakes": {"total": len(bakes), **Counter(b["state"] for b in bakes)},
        "failure_reasons": dict(Counter(b["reason"] for b in bakes if b["state"] == "failed").most_common()),
        "faults_injected": {"total": sum(faults.values()), **dict(faults.most_common())},
        "faults_by_target": dict(by_action.most_common(40)),
        "deliveries": dict(deliveries),
        "violations": {
            "total": sum(len(r.violations) for r in runs),
            "runs_with_violations": sum(1 for r in runs if r.violations),
            "distinct": distinct,
        },
        "shrink_runs": len(campaign.results) - len(set(campaign.generated)),
        "wall_seconds": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="cases to generate and run")
    parser.add_argument("--out", type=Path, default=ROOT / "tests/chaos/results/chaos.json")
    parser.add_argument("--fuzz-events", type=int, default=0, help="up to M foreign/malformed bakery events per run")
    parser.add_argument("--hypothesis-seed", type=int, default=10)
    parser.add_argument("--max-instances", type=int, default=4)
    parser.add_argument("--budget-seconds", type=float, default=3600, help="wall time for the generate phase")
    parser.add_argument("--shrink-seconds", type=float, default=90, help="wall time to shrink each violation")
    parser.add_argument("--repro", type=Path, help="run one repro-*.yml case and print its violations")
    args = parser.parse_args(argv)
    if args.repro:
        return repro(args.repro)
    started = time.perf_counter()
    campaign = Campaign()
    generate(campaign, args.seeds, args.hypothesis_seed, args.max_instances, args.fuzz_events, args.budget_seconds)
    hits: dict[str, list[CaseResult]] = {}
    for key in dict.fromkeys(campaign.generated):
        for wanted in dict.fromkeys(signature(v) for v in campaign.results[key].violations):
            hits.setdefault(wanted, []).append(campaign.results[key])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for old in args.out.parent.glob("repro-*.yml"):
        old.unlink()  # a repro of a violation this run no longer finds would mislead
    distinct = []
    for n, (wanted, results) in enumerate(sorted(hits.items(), key=lambda kv: -len(kv[1])), start=1):
        print(f"shrinking {n}/{len(hits)}: {wanted}", flush=True)
        minimal = shrink(campaign, wanted, args.hypothesis_seed, args.seeds, args.max_instances, args.fuzz_events,
                         args.shrink_seconds)  # fmt: skip
        if not minimal or len(canonical(minimal)) > len(canonical(results[0].case)):
            minimal = min((r.case for r in results), key=lambda c: len(canonical(c)))
        lines = [v for v in campaign.run(minimal).violations if signature(v) == wanted]
        path = args.out.parent / f"repro-{n:02d}.yml"
        write_repro(path, minimal, wanted, lines)
        distinct.append({"violation": wanted, "runs": len(results), "example": lines[0] if lines else "",
                         "repro": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)})  # fmt: skip
    record = figures(campaign, args, distinct, time.perf_counter() - started)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k not in ("faults_by_target",)}, indent=2))
    if distinct:  # the figures are written either way; the exit code says whether a promise was broken
        print(f"chaos: {len(distinct)} distinct violation(s); reproductions in {args.out.parent}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
