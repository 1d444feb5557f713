"""Red team (issue 12): an adopted bake's promotion interrupted by a transient error is run again (the sweep, FC's
retry) — `adopt.promote` says every step is idempotent. It is not: the first run renames the original
`<name>-broken-<id>` and drops `bakery:original-name` from the repaired image; the second run then takes the
original's *current* name (the broken one) as the target, renames the original `...-broken-<id>-broken-<id>` and
gives the repaired image `<name>-broken-<id>`. The family then resolves to an image under the wrong name."""

from __future__ import annotations

import pytest

from bakery import tags
from tests.chaos.strategies import FAULTABLE_ACTIONS
from tests.e2e.test_adoption import adopted_bake, region


def _assert_identity_taken_over(baked) -> None:  # type: ignore[no-untyped-def]
    baked.run.cloud.faults.clear()  # the storm is over: read the outcome through the SDK without it
    result = adopted_bake(baked)
    assert result["state"] == "ready", result
    repaired, original = baked.image(result["imageId"]), baked.image(result["originalImageId"])
    assert repaired.image_name == "web-2026-01-05"
    assert original.image_name == f"web-2026-01-05-broken-{original.image_id}"
    assert original.status == "Deprecated" and baked.image_tags(original)[tags.STATE] == tags.RETIRED


@pytest.mark.parametrize("code", ["OperationConflict", "Throttling"])
def test_a_promotion_retried_after_a_transient_error_still_gives_the_original_name(bake, code: str):
    # The promotion's first share read fails three times in a row (the adapter retries a throttle twice in the
    # call), after the original was renamed and bakery:original-name dropped from the repaired image.
    faults = [{"action": "DescribeImageSharePermission", "code": code, "nth": n} for n in (1, 2, 3)]
    _assert_identity_taken_over(bake({**region("Nvme"), "faults": faults}))


@pytest.mark.parametrize("seed", [3, 5, 6])
def test_a_5xx_storm_on_every_action_still_gives_the_original_name(bake, seed: int):
    # tests/chaos/strategies.py's storm (30% ServiceUnavailable on every action) plus duplicated events
    faults = [{"action": a, "code": "ServiceUnavailable", "probability": 0.3} for a in FAULTABLE_ACTIONS]
    _assert_identity_taken_over(bake({**region("Nvme"), "seed": seed,
                                      "faults": [*faults, {"events": "duplicate", "probability": 0.3}]}))  # fmt: skip
