"""Red team (issue 11), kept as regression tests: the CreateImage pacer in a fleet against a slow CreateImage quota (local cloud)."""

from __future__ import annotations

import pytest

from bakery import tags
from bakery_tools.local import LocalRun
from localcloud import Scenario

FLEET = [f"i-p{n:02d}" for n in range(8)]


@pytest.fixture
def pacer_waits(monkeypatch):
    from bakery.adapters import pacing

    waits: list[float] = []
    orig = pacing.Pacer.__init__

    def init(self, now, wait):
        def recorded(s):
            waits.append(s)
            wait(s)

        orig(self, now, recorded)

    monkeypatch.setattr(pacing.Pacer, "__init__", init)
    return waits


@pytest.mark.parametrize("rate", [0.5, 0.05, 0.01, 0.004])
def test_fleet_under_a_slow_create_image_quota(rate, pacer_waits):
    scenario = Scenario.from_mapping(
        {
            "seed": 3,
            "rate_limits": {"CreateImage": rate},
            "instances": [{"id": i} for i in FLEET],
            "actions": [
                {"at": 0, "tag": {"instance": i, "tags": {tags.TRIGGER: "true", tags.FAMILY: "paced"}}} for i in FLEET
            ],
        }
    )
    run = LocalRun(scenario)
    try:
        report = run.run()
        waits = [d for d in run.runtime.deliveries if d.function == "bakery-bake"]
        longest = max((getattr(d, "duration_ms", 0) or 0) for d in waits)
        print(
            rate,
            run.outcome,
            report["simulated_seconds"],
            {b["state"] for b in report["bakes"]},
            "errors",
            report["deliveries"],
            "longest bake invocation ms",
            longest,
        )
        assert run.problems(report) == []
        # one admit() inside one invocation must stay well within the bake function's Timeout (120 s)
        assert max(pacer_waits, default=0) < 60, f"pacer waits inside invocations: {sorted(pacer_waits)[-5:]}"
    finally:
        run.close()
