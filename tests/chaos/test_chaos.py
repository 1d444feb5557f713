"""The chaos suite's time-boxed slice: a fixed, derandomized handful of generated fleets and fault schedules,
every promise checked after each run (the long version is `make chaos`: tests/chaos/run_chaos.py).

No shrinking here (it can take minutes): a failure prints the whole case as YAML, which
`tests/chaos/run_chaos.py --repro FILE` runs again.
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, example, given, settings

from bakery import tags
from bakery_tools.local import LocalRun
from localcloud import Scenario
from tests.chaos.harness import Observed, run_case
from tests.chaos.invariants import signature, violations
from tests.chaos.strategies import chaos_cases

# Minimal reproductions the long run found (tests/chaos/results/repro-*.yml), kept as explicit examples so the
# slice keeps checking them whatever the generator draws.
FOUND: list[dict[str, Any]] = [
    {  # 17 user tags + 3 bakery tags: claiming the requested instance would make 21 → dead letter, no Bake:Failed
        "seed": 0,
        "instances": [{"id": "i-chaos0", "disks": [{"type": "system", "size": 20}],
                       "tags": {**{f"user-{n:02d}": f"v{n}" for n in range(17)}, tags.ALLOW_REQUESTS: "true",
                                tags.FAMILY: "web", tags.NAME: "chaos0"}}],
        "chaos": {"requests": ["i-chaos0"]},
    },
]  # fmt: skip
EXAMPLES = 10  # ~1-2 s each on one core: the slice stays well under a minute


def as_yaml(case: dict[str, Any]) -> str:
    return yaml.safe_dump(case, sort_keys=False, width=120)


@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same cases on every machine and every run: CI is deterministic
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=chaos_cases(max_instances=3, max_fuzz_events=2))
@example(case=FOUND[0])
def test_no_promise_is_broken_under_random_fleets_and_faults(case: dict[str, Any]) -> None:
    # Given a random fleet, operator requests and a random fault schedule (5xx, throttling, latency, events
    # dropped/duplicated/delayed/reordered); When it runs to the end
    result = run_case(case)

    # Then every bake ended (ready, or failed with a reason), nothing is orphaned or duplicated, no disk was
    # lost, no instance is left stopped or tagged, nothing was dead-lettered, retention kept its promise
    assert result.violations == [], (
        "promises broken:\n  " + "\n  ".join(result.violations) + "\n\nreproduce with run_chaos.py --repro:\n"
        + as_yaml(case)
    )  # fmt: skip


PLAIN = {
    "seed": 3,
    "instances": [{"id": "i-a", "disks": [{"type": "system", "size": 20}, {"type": "data", "size": 10}]}],
    "actions": [{"at": 0, "tag": {"instance": "i-a", "tags": {tags.TRIGGER: "true", tags.FAMILY: "web"}}}],
}


def test_a_clean_bake_breaks_no_promise_and_runs_the_same_twice() -> None:
    # Given one plain bake; When it runs twice
    first, second = run_case({**PLAIN, "chaos": {}}), run_case({**PLAIN, "chaos": {}})

    # Then it is ready with nothing broken, and both runs agree (shrinking and CI rely on it)
    assert [b["state"] for b in first.report["bakes"]] == ["ready"]
    assert first.violations == []
    assert first.report["bakes"] == second.report["bakes"]
    assert first.report["api_calls"] == second.report["api_calls"]


def test_the_invariants_catch_each_broken_promise() -> None:
    # Given a finished clean bake
    with LocalRun(Scenario.from_mapping(PLAIN)) as run:
        report = run.run()
        ecs = run.cloud.ecs
        (bake,) = report["bakes"]
        image = ecs.images[bake["imageId"]]
        # When the end state is broken by hand: a work tag left, a disk dropped from the image, a bake claimed
        # that never published an outcome, a dead letter
        ecs.instances["i-a"].tags[tags.BAKE_ID] = "b-left"
        image.mappings.pop()
        observed = Observed(claimed={"b-lost": "i-a"}, outcomes={bake["bakeId"]: [{"type": "bakery:Image:Ready"}]})
        run.runtime.dead_letters.append(_letter())
        found = [signature(v) for v in violations(run, run.report(), observed)]

    # Then each is reported
    assert any("still carries Bakery work tags" in v for v in found), found
    assert any("has N disk(s)" in v and "its source has N" in v for v in found), found
    assert any(v.startswith("bake <id> (instance <id>) never ended") for v in found), found
    assert any(v.startswith("dead letter: bakery-check") for v in found), found


def test_delayed_and_reordered_events_are_injected_and_survived() -> None:
    # Given a stop-first bake whose every event is delayed a minute or overtaken by the next one
    case = {
        **PLAIN,
        "actions": [{"at": 0, "tag": {"instance": "i-a", "tags": {tags.TRIGGER: "true", tags.STOP_FIRST: "true"}}}],
        "chaos": {"event_faults": [{"events": "delay", "probability": 0.5, "seconds": 60},
                                   {"events": "reorder", "probability": 0.5}]},
    }  # fmt: skip
    result = run_case(case)

    # Then both faults really fired, and the bake still ended ready with nothing broken (a TagResources event
    # arriving after the sweep claimed the instance is refused as a second bake, `already-baking`)
    assert result.observed.faults["delay"] > 0 and result.observed.faults["reorder"] > 0, result.observed.faults
    states = sorted((b["state"], b["reason"]) for b in result.report["bakes"])
    assert states in ([("ready", None)], [("failed", "already-baking"), ("ready", None)]), states
    assert result.violations == []


def _letter() -> Any:
    from localcloud.fc.deliveries import DeadLetter

    return DeadLetter({"type": "timer"}, "bakery-check", 4, "CloudError: boom", "retries-exhausted", "", None)
