"""`bakery:stop-first`: Bakery stops a Running instance to image it and always starts it again.

The tests see the stop happen, not just the end state: the instance's status is sampled through the SDK
every few simulated seconds while the pipeline runs, and ECS's own ecs:Instance:StateChange events record
every transition (including a Stopped that lasts no time, when a bake fails right at the stop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bakery import tags
from tests.e2e.conftest import Baked, trigger


def status_watcher(instance_id: str) -> tuple[list[str], Callable[[Any], None]]:
    """An on_step callback recording each distinct status of `instance_id` (via DescribeInstances)."""
    seen: list[str] = []

    def watch(run: Any) -> None:
        status = Baked(run, {}).status(instance_id)
        if not seen or seen[-1] != status:
            seen.append(status)

    return seen, watch


def test_stop_first_instance_is_stopped_for_imaging_and_running_afterwards(bake):
    # Given a Running instance whose owner wants a crash-consistent image
    scenario = {
        "seed": 4,
        "instances": [{"id": "i-db"}],
        # When it is tagged with stop-first
        "actions": [trigger("i-db", family="db", stop_first="true")],
    }
    seen, watch = status_watcher("i-db")
    baked = bake(scenario, on_step=watch, step_seconds=5)

    # Then it was Stopped while the image was made (seen through DescribeInstances during the run), and is
    # Running again now
    assert seen == ["Stopping", "Stopped", "Starting", "Running"], seen
    assert baked.state_changes("i-db") == ["Stopping", "Stopped", "Starting", "Running"]
    assert baked.status("i-db") == "Running"
    assert baked.calls("StopInstance") == baked.calls("StartInstance") == 1
    result = baked.bake_of("i-db")
    assert result["state"] == "ready"
    assert baked.newest_in_family("db") == result["imageId"]
    remaining = baked.assert_released("i-db")
    assert tags.STOPPED_BY_BAKERY not in remaining
    assert remaining[tags.STOP_FIRST] == "true"  # the operator's own setting stays for the next bake


FAILURES_AFTER_THE_STOP = [
    # Every image made from the instance ends CreateFailed: both attempts fail after the stop.
    pytest.param({"create_image_failures": 5}, {}, "create-failed", id="create-failed"),
    # The template's MandatoryTags hold a value CreateImage refuses (InvalidTagValue.Malformed).
    pytest.param({}, {"MandatoryTags": '{"runbook": "https://wiki.example.com/bake"}'}, "mandatory-tag",
                 id="mandatory-tag"),
]  # fmt: skip


@pytest.mark.parametrize(("instance_extra", "parameters", "reason"), FAILURES_AFTER_THE_STOP)
def test_stop_first_instance_is_started_again_when_the_bake_fails_after_the_stop(
    bake, instance_extra, parameters, reason
):
    # Given a Running instance for which imaging will fail once it has been stopped
    scenario = {
        "seed": 5,
        "instances": [{"id": "i-db", **instance_extra}],
        # When it is tagged with stop-first (the preflight passes: it runs before the stop)
        "actions": [trigger("i-db", family="db", stop_first="true")],
    }
    baked = bake(scenario, parameters=parameters)

    # Then the bake fails with an actionable reason ...
    result = baked.bake_of("i-db")
    assert result["state"] == "failed"
    assert result["reason"] == reason
    # ... after the stop, and Bakery started the instance again (a bake ending at the moment the instance
    # reports Stopped restarts it in that same instant, so ECS's own state-change events are the witness)
    assert baked.state_changes("i-db") == ["Stopping", "Stopped", "Starting", "Running"]
    assert baked.status("i-db") == "Running"
    assert baked.calls("StopInstance") == baked.calls("StartInstance") == 1
    remaining = baked.assert_released("i-db")
    assert remaining[tags.LAST_ERROR] == reason
    # ... leaving no image behind and the family empty
    assert baked.images() == []
    assert baked.newest_in_family("db") is None


def test_instance_that_was_already_stopped_stays_stopped(bake):
    # Given a Stopped instance; Cloud Assistant cannot inspect a stopped guest, so its owner skips the
    # guest checks explicitly
    scenario = {
        "seed": 6,
        "instances": [{"id": "i-cold", "status": "Stopped", "tags": {tags.SKIP_GUEST_CHECKS: "true"}}],
        # When it is tagged with stop-first as well
        "actions": [trigger("i-cold", family="cold", stop_first="true")],
    }
    baked = bake(scenario)

    # Then it is imaged as it is, and never started (nor stopped) by Bakery
    result = baked.bake_of("i-cold")
    assert result["state"] == "ready", result
    assert baked.newest_in_family("cold") == result["imageId"]
    assert baked.status("i-cold") == "Stopped"
    assert baked.state_changes("i-cold") == []
    assert baked.calls("StartInstance") == baked.calls("StopInstance") == 0
    assert "RunCommand" not in baked.mutations()
    assert tags.STOPPED_BY_BAKERY not in baked.assert_released("i-cold")


@pytest.mark.parametrize("cloud_assistant", [True, False])
def test_stopped_instance_without_guest_checks_is_blocked_by_default(bake, cloud_assistant):
    # Given a Stopped instance (with or without a Cloud Assistant client) and no skip-guest-checks tag
    scenario = {
        "seed": 7,
        "instances": [{"id": "i-cold", "status": "Stopped", "guest": {"cloud_assistant": cloud_assistant}}],
        # When it is tagged for baking
        "actions": [trigger("i-cold", family="cold", stop_first="true")],
    }
    baked = bake(scenario)

    # Then the default policy (BAKERY_UNCHECKED_GUEST_POLICY=block) refuses it and says how to proceed
    result = baked.bake_of("i-cold")
    assert result["state"] == "failed"
    assert result["reason"] == "guest-unchecked"
    assert f"{tags.SKIP_GUEST_CHECKS}=true" in result["message"]
    # ... the way through for a Stopped instance: start it and let Bakery stop it (or skip the checks)
    assert f"Start it and tag {tags.STOP_FIRST}=true" in result["message"], result["message"]
    # ... without imaging, starting or stopping it
    assert baked.images() == []
    assert baked.mutations() == set()
    assert baked.status("i-cold") == "Stopped"
    assert baked.assert_released("i-cold")[tags.LAST_ERROR] == "guest-unchecked"
