"""Fault injection seen through the real SDKs: failing calls, throttling, latency, lost and duplicated
events, from the scenario (`faults:`, `rate_limits:`) and from the admin API (`POST /_localcloud/faults`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ServerException, ThrottlingException

from localcloud import LocalCloud, Scenario, ScenarioError
from localcloud.faults import FaultSpecError
from localcloud.testing import CloudEnv

INSTANCES: list[dict[str, Any]] = [{"id": f"i-web{n}", "disks": [{"type": "system", "size": 20}]} for n in (1, 2, 3)]
ALL_IMAGE_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
SNAPSHOT_COMPLETED = "ecs:Snapshot:CreateSnapshotCompleted"


def create_image(env: CloudEnv, instance_id: str) -> str:
    request = ecs_models.CreateImageRequest(
        region_id=env.region, instance_id=instance_id, image_name=f"img-{instance_id}"
    )
    return env.ecs.create_image(request).body.image_id


def own_image_ids(env: CloudEnv) -> set[str]:
    request = ecs_models.DescribeImagesRequest(
        region_id=env.region, image_owner_alias="self", status=ALL_IMAGE_STATUSES, page_size=100
    )
    return {image.image_id for image in env.ecs.describe_images(request).body.images.image}


def describe_instances(env: CloudEnv) -> Any:
    return env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region))


def admin_url(env: CloudEnv, route: str) -> str:
    return f"http://{env.endpoint}/_localcloud/{route}"


# -- failing calls ---------------------------------------------------------------------------------


def test_nth_fault_fails_only_the_nth_call(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario where the 2nd CreateImage fails with ServiceUnavailable
    env = make_env(
        {"instances": INSTANCES, "faults": [{"action": "CreateImage", "code": "ServiceUnavailable", "nth": 2}]}
    )
    # When CreateImage is called three times
    first = create_image(env, "i-web1")
    with pytest.raises(ServerException) as caught:
        create_image(env, "i-web2")
    third = create_image(env, "i-web3")
    # Then only the second call failed, as a 503 ServiceUnavailable
    assert caught.value.code == "ServiceUnavailable"
    assert caught.value.status_code == 503
    assert caught.value.data["Message"]
    assert first.startswith("m-")
    assert third.startswith("m-")


def test_a_call_failed_by_a_fault_makes_no_image(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario where the 2nd CreateImage fails
    env = make_env(
        {"instances": INSTANCES, "faults": [{"action": "CreateImage", "code": "ServiceUnavailable", "nth": 2}]}
    )
    # When CreateImage is called three times
    made = [create_image(env, "i-web1")]
    with pytest.raises(ServerException):
        create_image(env, "i-web2")
    made.append(create_image(env, "i-web3"))
    # Then exactly the two successful calls made images
    assert own_image_ids(env) == set(made)


def test_throttling_fault_raises_a_throttling_exception_with_retry_after(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario where every DescribeInstances is throttled
    env = make_env({"faults": [{"action": "DescribeInstances", "code": "Throttling", "probability": 1}]})
    # When DescribeInstances is called
    with pytest.raises(ThrottlingException) as caught:
        describe_instances(env)
    # Then the SDK raises ThrottlingException with the server's retry hint
    assert caught.value.code == "Throttling"
    assert caught.value.status_code == 400
    assert caught.value.retry_after is not None
    assert int(caught.value.retry_after) > 0


def _failure_sequence(make_env: Callable[..., CloudEnv], seed: int, calls: int = 24) -> list[bool]:
    env = make_env(
        {"seed": seed, "faults": [{"action": "DescribeInstances", "code": "InternalError", "probability": 0.5}]}
    )
    outcomes = []
    for _ in range(calls):
        try:
            describe_instances(env)
            outcomes.append(False)
        except ServerException as error:
            assert error.code == "InternalError"
            outcomes.append(True)
    return outcomes


def test_seeded_probability_faults_are_deterministic(make_env: Callable[..., CloudEnv]) -> None:
    # Given two clouds with the same seed and a 50% fault on DescribeInstances
    # When both receive the same calls
    first = _failure_sequence(make_env, seed=42)
    second = _failure_sequence(make_env, seed=42)
    # Then the same calls fail in both (and the sequence really mixes failures and successes)
    assert first == second
    assert any(first)
    assert not all(first)


def test_latency_fault_slows_the_call_down(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario that delays DescribeInstances by 200 ms
    env = make_env({"faults": [{"action": "DescribeInstances", "latency_ms": 200}]})
    # When DescribeInstances is called
    started = time.monotonic()
    describe_instances(env)
    elapsed = time.monotonic() - started
    # Then the answer took at least that long (lower bound only: machines are noisy)
    assert elapsed >= 0.2


# -- rate limits -----------------------------------------------------------------------------------


def test_rate_limit_throttles_the_call_over_the_limit(make_env: Callable[..., CloudEnv]) -> None:
    # Given DescribeInstances limited to 2 calls per (virtual) second
    env = make_env({"rate_limits": {"DescribeInstances": 2}})
    describe_instances(env)
    describe_instances(env)
    # When a third call comes in the same virtual second
    with pytest.raises(ThrottlingException) as caught:
        describe_instances(env)
    # Then it is throttled, with a positive retry hint
    assert caught.value.code == "Throttling"
    assert int(caught.value.retry_after) > 0


def test_rate_limit_recovers_when_the_virtual_clock_moves(make_env: Callable[..., CloudEnv]) -> None:
    # Given DescribeInstances limited to 2 calls per second and used up
    env = make_env({"rate_limits": {"DescribeInstances": 2}})
    describe_instances(env)
    describe_instances(env)
    with pytest.raises(ThrottlingException):
        describe_instances(env)
    # When one virtual second passes
    env.cloud.advance(1)
    # Then two calls succeed again
    assert describe_instances(env).body.total_count == 0
    assert describe_instances(env).body.total_count == 0


def test_rate_limit_below_one_call_per_second_allows_a_call_every_few_seconds(
    make_env: Callable[..., CloudEnv],
) -> None:
    # Given DescribeInstances limited to one call every two seconds
    env = make_env({"rate_limits": {"DescribeInstances": 0.5}})
    # When it is called, called again at once, then again two virtual seconds later
    describe_instances(env)
    with pytest.raises(ThrottlingException) as caught:
        describe_instances(env)
    env.cloud.advance(2)
    # Then the first call passes, the second is told to wait 2 s, and the third passes
    assert int(caught.value.retry_after) == 2000
    assert describe_instances(env).body.total_count == 0


def test_rate_limit_applies_only_to_its_action(make_env: Callable[..., CloudEnv]) -> None:
    # Given DescribeInstances limited to 1 call per second and used up
    env = make_env({"rate_limits": {"DescribeInstances": 1}})
    describe_instances(env)
    # When another action is called many times in the same second
    results = [env.ecs.describe_images(ecs_models.DescribeImagesRequest(region_id=env.region)).body for _ in range(5)]
    # Then none of those calls is throttled
    assert len(results) == 5


# -- event faults ----------------------------------------------------------------------------------


def test_drop_event_fault_drops_only_its_event_type(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario that drops every CreateSnapshotCompleted event
    env = make_env(
        {"instances": INSTANCES, "faults": [{"events": "drop", "probability": 1, "type": SNAPSHOT_COMPLETED}]}
    )
    # When an image is made (its snapshot completes) and the clock runs on
    create_image(env, "i-web1")
    env.cloud.run_until_idle()
    # Then the snapshot event is in `dropped`, not in the log, while the ActionTrail event was delivered
    delivered = [e.event["type"] for e in env.cloud.events.read()]
    dropped = [d["event"]["type"] for d in env.cloud.events.dropped]
    assert dropped == [SNAPSHOT_COMPLETED]
    assert SNAPSHOT_COMPLETED not in delivered
    assert "ecs:ActionTrail:ApiCall" in delivered


def test_duplicate_event_fault_delivers_each_event_twice_with_the_same_id(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario that duplicates every event
    env = make_env({"instances": INSTANCES, "faults": [{"events": "duplicate", "probability": 1}]})
    # When an image is made and the clock runs on
    create_image(env, "i-web1")
    env.cloud.run_until_idle()
    # Then every event id was delivered exactly twice, and both copies are identical
    log = env.cloud.events.read()
    ids = Counter(e.event["id"] for e in log)
    assert len(ids) >= 2
    assert set(ids.values()) == {2}
    for event_id in ids:
        copies = [e.event for e in log if e.event["id"] == event_id]
        assert copies[0] == copies[1]


# -- installing faults -----------------------------------------------------------------------------


def test_fault_posted_to_the_admin_api_fails_the_next_call(make_env: Callable[..., CloudEnv]) -> None:
    # Given a cloud without faults
    env = make_env({})
    # When a fault is installed through the admin API
    response = requests.post(
        admin_url(env, "faults"), json=[{"action": "DescribeInstances", "code": "InternalError", "nth": 1}], timeout=10
    )
    # Then the admin API lists it, and the next DescribeInstances fails with it
    assert response.status_code == 200
    assert response.json()["faults"] == [{"action": "DescribeInstances", "code": "InternalError", "nth": 1}]
    with pytest.raises(ServerException) as caught:
        describe_instances(env)
    assert caught.value.code == "InternalError"
    assert caught.value.status_code == 500


def test_rate_limits_posted_to_the_admin_api_throttle(make_env: Callable[..., CloudEnv]) -> None:
    # Given a cloud without rate limits
    env = make_env({})
    # When a rate limit is installed through the admin API, in the scenario's shape
    response = requests.post(admin_url(env, "faults"), json={"rate_limits": {"DescribeInstances": 1}}, timeout=10)
    describe_instances(env)
    # Then it is listed, and the second call in the same virtual second is throttled
    assert response.json()["rate_limits"] == {"DescribeInstances": 1.0}
    with pytest.raises(ThrottlingException):
        describe_instances(env)


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ({"action": "CreateImage", "code": "Throttling", "nth": 1, "codee": "x"}, "codee"),
        ({"action": "CreateImage", "code": "Throttling", "nth": 0}, "nth"),
        ({"action": "CreateImage", "code": "Throttling", "probability": 2}, "probability"),
        ({"action": "CreateImage", "code": "Throttling"}, "nth"),
        ({"action": "CreateImage"}, "latency_ms"),
        ({"action": "CreateImage", "latency_ms": "slow"}, "latency_ms"),
        ({"action": "CreateImage", "code": 503, "nth": 1}, "code"),
        ({"action": "CreateImage", "code": "X", "nth": 1, "status": 200}, "status"),
        ({"code": "Throttling", "nth": 1}, "action"),
        ({"events": "explode"}, "events"),
        ({"events": "drop", "kind": "x"}, "kind"),
    ],
)
def test_malformed_fault_is_refused_by_the_admin_api_naming_the_key(
    make_env: Callable[..., CloudEnv], fault: dict[str, Any], named: str
) -> None:
    # Given a cloud without faults
    env = make_env({})
    # When a malformed fault is posted
    response = requests.post(admin_url(env, "faults"), json=[fault], timeout=10)
    # Then it is refused with 400 naming the bad key, and nothing was installed
    assert response.status_code == 400
    assert named in response.json()["error"]
    assert requests.get(admin_url(env, "faults"), timeout=10).json()["faults"] == []


def test_admin_api_refuses_a_fault_batch_with_one_bad_entry_as_a_whole(make_env: Callable[..., CloudEnv]) -> None:
    # Given a cloud without faults
    env = make_env({})
    # When a good fault and a bad one are posted together
    good = {"action": "DescribeInstances", "code": "InternalError", "nth": 1}
    response = requests.post(admin_url(env, "faults"), json=[good, {"action": "X", "nth": 1}], timeout=10)
    # Then the batch is refused and the good one was not installed either
    assert response.status_code == 400
    assert describe_instances(env).body.total_count == 0


def test_admin_api_refuses_a_bare_fault_mapping(make_env: Callable[..., CloudEnv]) -> None:
    # Given a cloud without faults
    env = make_env({})
    # When a single fault is posted as a mapping instead of a list
    response = requests.post(
        admin_url(env, "faults"), json={"action": "DescribeInstances", "code": "InternalError", "nth": 1}, timeout=10
    )
    # Then it is refused naming the keys it did not expect (it used to be ignored with a 200)
    assert response.status_code == 400
    assert "action" in response.json()["error"]


@pytest.mark.parametrize(
    ("scenario", "named"),
    [
        ({"faults": [{"action": "CreateImage", "code": "Throttling", "nth": 1, "when": "later"}]}, "when"),
        ({"faults": [{"events": "drop", "probability": -1}]}, "probability"),
        ({"rate_limits": {"DescribeInstances": 0}}, "DescribeInstances"),
        ({"rate_limits": {"DescribeInstances": "fast"}}, "DescribeInstances"),
    ],
)
def test_malformed_faults_in_a_scenario_are_refused_when_it_loads(scenario: dict[str, Any], named: str) -> None:
    # Given a scenario with a malformed fault or rate limit
    # When it is loaded
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_mapping(scenario)
    # Then ScenarioError names the bad key
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("faults", "named"),
    [
        ([{"action": "CreateImage", "code": "Throttling", "nth": 1, "when": "later"}], "when"),
        ([{"events": "drop", "probability": -1}], "probability"),
    ],
)
def test_malformed_faults_built_in_code_raise_fault_spec_error(faults: list[dict[str, Any]], named: str) -> None:
    # Given a scenario built in code, bypassing the loader, with a malformed fault
    # When a cloud is built from it
    with pytest.raises(FaultSpecError) as caught:
        LocalCloud(Scenario(faults=faults))
    # Then FaultSpecError names the bad key
    assert named in str(caught.value)


# -- unknown actions, clearing, EventBridge throttling (issue 10, item 11) -------------------------


def test_a_fault_on_an_unknown_action_is_refused_naming_the_close_matches(make_env: Callable[..., CloudEnv]) -> None:
    # Given a cloud without faults
    env = make_env({})
    # When a fault naming an action no service has is posted (it used to be accepted and never fire)
    response = requests.post(
        admin_url(env, "faults"), json=[{"action": "DescribeInstance", "code": "InternalError", "nth": 1}], timeout=10
    )
    # Then 400 names the action and the close matches, and nothing was installed
    assert response.status_code == 400
    error = response.json()["error"]
    assert "DescribeInstance" in error and "DescribeInstances" in error
    assert requests.get(admin_url(env, "faults"), timeout=10).json()["faults"] == []


@pytest.mark.parametrize(
    "scenario",
    [
        {"faults": [{"action": "CreateImages", "code": "InternalError", "nth": 1}]},
        {"rate_limits": {"CreateImages": 1}},
    ],
)
def test_a_scenario_fault_on_an_unknown_action_is_refused_when_it_loads(scenario: dict[str, Any]) -> None:
    # Given a scenario whose fault or rate limit names an action no service has
    # When it is loaded
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_mapping(scenario)
    # Then ScenarioError names it and suggests the real one
    assert "'CreateImages'" in str(caught.value)
    assert "CreateImage" in str(caught.value).replace("'CreateImages'", "")


def test_delete_faults_clears_faults_and_rate_limits(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario with a throttling fault on DescribeInstances and a rate limit on CreateImage
    env = make_env(
        {
            "faults": [{"action": "DescribeInstances", "code": "Throttling", "probability": 1}],
            "rate_limits": {"CreateImage": 1},
        }
    )
    with pytest.raises(ThrottlingException):
        describe_instances(env)
    # When the faults are deleted through the admin API
    response = requests.delete(admin_url(env, "faults"), timeout=10)
    # Then nothing is listed any more and the calls go through
    assert response.status_code == 200
    assert response.json() == {"faults": [], "rate_limits": {}}
    assert requests.get(admin_url(env, "faults"), timeout=10).json() == {"faults": [], "rate_limits": {}}
    assert describe_instances(env).body.total_count == 0


def test_eventbridge_throttling_answers_429_too_many_requests(make_env: Callable[..., CloudEnv]) -> None:
    # Given a rate limit of 1 call/s on EventBridge CreateEventBus and a throttling fault on PutEvents
    from alibabacloud_eventbridge20200401 import models as eb_models

    env = make_env(
        {
            "rate_limits": {"CreateEventBus": 1},
            "faults": [{"action": "PutEvents", "code": "Throttling", "probability": 1}],
        }
    )
    env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name="one"))
    # When a second CreateEventBus comes in the same virtual second, and PutEvents is called
    with pytest.raises(ThrottlingException) as limited:
        env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name="two"))
    with pytest.raises(ThrottlingException) as faulted:
        env.eventbridge.put_events(eb_models.PutEventsRequest(event_bus_name="one", event_list=[]))
    # Then both answer as EventBridge documents throttling: HTTP 429 TooManyRequests (not ECS's 400 Throttling)
    for caught in (limited, faulted):
        assert (caught.value.code, caught.value.status_code) == ("TooManyRequests", 429)
        assert int(caught.value.retry_after) > 0
