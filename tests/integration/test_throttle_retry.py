"""A throttled call is retried after waiting what x-acs-retry-after asks — on the local cloud's virtual clock."""

from __future__ import annotations

import pytest

from bakery.adapters.ecs import Ecs
from bakery.clients import reset_clients
from bakery.config import Settings
from bakery.errors import RetryableError
from localcloud import LocalCloud, Scenario
from localcloud.testing import running


def _ecs(env) -> Ecs:
    reset_clients()
    return Ecs(Settings(region=env.region, cloud_endpoint=env.endpoint, access_key_id="ak", access_key_secret="sk"))


def test_a_throttled_call_waits_the_retry_after_on_the_virtual_clock_then_succeeds() -> None:
    # Given DescribeInstances limited to 1 call per simulated second, and one call already made this second
    cloud = LocalCloud(Scenario.from_mapping({"rate_limits": {"DescribeInstances": 1}, "instances": [{"id": "i-1"}]}))
    with running(cloud, "inprocess") as env:
        ecs = _ecs(env)
        assert ecs.instance("i-1") is not None
        before = cloud.clock.now
        # When the next call is made in the same instant
        instance = ecs.instance("i-1")
        # Then it was throttled once, waited about a simulated second, and succeeded
        assert instance is not None and instance.instance_id == "i-1"
        assert cloud.errors["DescribeInstances:Throttling"] == 1
        assert 1.0 <= cloud.clock.now - before <= 2.0
    cloud.close()


def test_throttling_that_outlasts_the_quick_retries_is_handed_on_as_retryable() -> None:
    # Given a call that is always throttled
    scenario = {"faults": [{"action": "DescribeInstances", "code": "Throttling", "probability": 1}]}
    cloud = LocalCloud(Scenario.from_mapping(scenario))
    with running(cloud, "inprocess") as env:
        # When it is made / Then after 1 + 2 quick retries it surfaces as RetryableError (FC or the sweep take over)
        with pytest.raises(RetryableError) as info:
            _ecs(env).instance("i-1")
        assert info.value.code == "Throttling"
        assert cloud.calls["DescribeInstances"] == 3
    cloud.close()


def test_api_call_seconds_makes_each_call_take_simulated_time() -> None:
    # Given a scenario where every API call takes half a simulated second
    cloud = LocalCloud(Scenario.from_mapping({"timings": {"api_call_seconds": 0.5}, "instances": [{"id": "i-1"}]}))
    with running(cloud, "inprocess") as env:
        before = cloud.clock.now
        # When two calls are made
        _ecs(env).instance("i-1")
        _ecs(env).instance("i-1")
        # Then one simulated second has passed
        assert cloud.clock.now - before == 1.0
    cloud.close()


def test_a_burst_of_create_image_calls_is_paced_after_the_first_throttle() -> None:
    # Given CreateImage limited to 5 calls per simulated second and 12 instances to image at the same instant
    scenario = {"rate_limits": {"CreateImage": 5}, "instances": [{"id": f"i-{n}"} for n in range(12)]}
    cloud = LocalCloud(Scenario.from_mapping(scenario))
    with running(cloud, "inprocess") as env:
        ecs = _ecs(env)
        before = cloud.clock.now
        # When each is imaged, one after another, from one process (one warm FC instance)
        for n in range(12):
            ecs.create_image(f"i-{n}", name=f"img-{n}", description="", tags={}, client_token=f"t-{n}")
        # Then once the limit refused a call, the rest waited their turn instead of being refused one by one
        assert cloud.errors["CreateImage:Throttling"] <= 2
        assert cloud.calls["CreateImage"] == 12 + cloud.errors["CreateImage:Throttling"]
        assert cloud.clock.now - before >= (12 - 5) / 5 - 0.01  # at the limit's pace, not faster
    cloud.close()
