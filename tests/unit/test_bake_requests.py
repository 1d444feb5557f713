"""`bakery:Bake:Requested` is a request, not authority (README "Trust boundary"): it bakes an instance only when
the instance carries `bakery:allow-requests=true`, and stops it only when the instance carries
`bakery:stop-first=true`. Delivered to the real bake handler in-process, against a LocalCloud."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bakery import entrypoints, tags
from localcloud import LocalCloud, Scenario
from localcloud.testing import running
from tests.fuzz.fuzz_events import WRITE_PREFIXES, fc_environment

REQUEST = json.loads((Path(__file__).resolve().parents[2] / "events" / "bakery-bake-requested.json").read_text())


@pytest.fixture
def region() -> Iterator[Callable[[dict[str, str]], Any]]:
    """region(tags of i-web1) → a LocalCloud in-process, FC's environment set for the handlers."""
    from alibabacloud_eventbridge20200401 import models as eb

    with ExitStack() as stack:

        def make(instance_tags: dict[str, str]) -> Any:
            scenario = {"seed": 3, "instances": [{"id": "i-web1", "tags": instance_tags}]}
            cloud = LocalCloud(Scenario.from_mapping(scenario))
            stack.callback(cloud.close)
            env = stack.enter_context(running(cloud, "inprocess"))
            stack.enter_context(fc_environment(env.endpoint, cloud))
            env.eventbridge.create_event_bus(eb.CreateEventBusRequest(event_bus_name="bakery"))
            return cloud

        yield make


def request(cloud: Any, **data: Any) -> tuple[str, Counter[str]]:
    """Deliver one Bake:Requested to the bake handler; (status, write calls it made)."""
    body = {**REQUEST, "data": {**REQUEST["data"], **data}}
    before = Counter(cloud.calls)
    status = json.loads(entrypoints.bake(json.dumps(body).encode(), SimpleNamespace(request_id="r")))["status"]
    writes = Counter(
        {a: n - before[a] for a, n in cloud.calls.items() if n > before[a] and a.startswith(WRITE_PREFIXES)}
    )
    return status, writes


def bakery_events(cloud: Any, event_type: str) -> list[dict[str, Any]]:
    return [e.event for e in cloud.events.read(0, "bakery") if e.event["type"] == event_type]


@pytest.mark.parametrize("opt_in", [None, "false", "", "no"], ids=["absent", "false", "empty", "no"])
def test_a_request_for_an_instance_without_the_opt_in_ends_in_one_failed_and_changes_nothing(region, opt_in) -> None:
    # Given an instance that would bake (and stop first) — but has not opted in to requests
    instance_tags = {tags.FAMILY: "web", tags.STOP_FIRST: "true", tags.SKIP_GUEST_CHECKS: "true"}
    if opt_in is not None:
        instance_tags[tags.ALLOW_REQUESTS] = opt_in
    cloud = region(instance_tags)

    # When a Bake:Requested for it arrives
    status, writes = request(cloud)

    # Then the only write is the one Bake:Failed, saying exactly which tag to set and which permission that takes
    assert status == "ok"
    assert writes == Counter({"PutEvents": 1})
    (failed,) = bakery_events(cloud, "bakery:Bake:Failed")
    assert failed["data"]["reason"] == "request-not-allowed"
    assert failed["data"]["instanceId"] == "i-web1" and failed["data"]["bakeId"] == "b-0123456789abcdef"
    assert "bakery:allow-requests=true" in failed["data"]["message"]
    assert "ecs:TagResources" in failed["data"]["message"]
    # And the instance is as it was: no claim, not stopped
    assert cloud.ecs.instances["i-web1"].tags == instance_tags
    assert cloud.ecs.instances["i-web1"].status == "Running"


def test_a_request_for_an_opted_in_instance_claims_it_and_never_stops_it_unasked(region) -> None:
    # Given an opted-in instance without bakery:stop-first
    cloud = region({tags.ALLOW_REQUESTS: "true", tags.SKIP_GUEST_CHECKS: "true"})

    # When a Bake:Requested arrives
    status, writes = request(cloud)

    # Then the bake starts (claimed, CreateImage) and no StopInstance was called
    assert status == "ok"
    assert cloud.ecs.instances["i-web1"].tags[tags.BAKE_ID] == "b-0123456789abcdef"
    assert writes["CreateImage"] == 1 and writes["StopInstance"] == 0
    assert bakery_events(cloud, "bakery:Bake:Failed") == []


def test_a_request_stops_an_opted_in_instance_only_because_the_instance_asks(region) -> None:
    # Given an opted-in instance that carries bakery:stop-first=true itself
    cloud = region({tags.ALLOW_REQUESTS: "true", tags.STOP_FIRST: "true", tags.SKIP_GUEST_CHECKS: "true"})

    # When a Bake:Requested arrives / Then the instance is stopped before imaging, as its tag asks
    status, writes = request(cloud)
    assert status == "ok" and writes["StopInstance"] == 1


def test_a_redelivered_request_resumes_its_own_bake_even_after_the_opt_in_is_removed(region) -> None:
    # Given a request that was accepted (the bake is in flight), then the opt-in tag removed
    cloud = region({tags.ALLOW_REQUESTS: "true", tags.SKIP_GUEST_CHECKS: "true"})
    request(cloud)
    del cloud.ecs.instances["i-web1"].tags[tags.ALLOW_REQUESTS]

    # When the same request is delivered again (EventBridge may re-send) / Then no refusal is reported for it
    status, writes = request(cloud)
    assert status == "ok" and writes["PutEvents"] == 0
    assert bakery_events(cloud, "bakery:Bake:Failed") == []


def test_a_new_request_for_an_instance_already_baking_is_refused_without_the_opt_in(region) -> None:
    # Given a bake in flight (started by the tag), on an instance that has not opted in to requests
    cloud = region({tags.SKIP_GUEST_CHECKS: "true", tags.BAKE_ID: "b-inflight0000001", tags.STATE: "creating"})

    # When another bake is requested / Then it is refused as not allowed, and the bake in flight is untouched
    status, writes = request(cloud, bakeId="b-second000000001")
    assert status == "ok" and writes == Counter({"PutEvents": 1})
    (failed,) = bakery_events(cloud, "bakery:Bake:Failed")
    assert failed["data"]["reason"] == "request-not-allowed"
    assert cloud.ecs.instances["i-web1"].tags[tags.BAKE_ID] == "b-inflight0000001"
