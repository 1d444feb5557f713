"""The admin API (`/_localcloud/...`) over both transports, and run determinism: the same scenario
driven by the same calls gives the same ids, events and state."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_eventbridge20200401 import models as eb_models
from alibabacloud_oos20190601 import models as oos_models

from localcloud.testing import CloudEnv

ALL_IMAGE_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
SCENARIO: dict[str, Any] = {
    "seed": 5,
    "start_time": "2026-03-01T08:00:00Z",
    "timings": {"image_seconds_per_gib": 10, "check_seconds": 120, "repair_seconds": 300},
    "instances": [
        {
            "id": "i-web1",
            "disks": [{"type": "system", "size": 20}, {"type": "data", "size": 10}],
            "tags": {"env": "prod"},
            "guest": {"check_failures": ["Nvme"]},
        },
    ],
}


def get(env: CloudEnv, route: str, **params: Any) -> requests.Response:
    return requests.get(f"http://{env.endpoint}/_localcloud/{route}", params=params, timeout=10)


def post(env: CloudEnv, route: str, **params: Any) -> requests.Response:
    return requests.post(f"http://{env.endpoint}/_localcloud/{route}", params=params, timeout=10)


def create_image(env: CloudEnv, name: str = "web", **extra: Any) -> str:
    request = ecs_models.CreateImageRequest(region_id=env.region, instance_id="i-web1", image_name=name, **extra)
    return env.ecs.create_image(request).body.image_id


def image_status(env: CloudEnv, image_id: str) -> str:
    request = ecs_models.DescribeImagesRequest(region_id=env.region, image_id=image_id, status=ALL_IMAGE_STATUSES)
    return env.ecs.describe_images(request).body.images.image[0].status


@pytest.fixture
def env(make_env: Callable[..., CloudEnv]) -> CloudEnv:
    return make_env(SCENARIO)


# -- clock -----------------------------------------------------------------------------------------


def test_get_clock_starts_at_the_scenario_start_time(env: CloudEnv) -> None:
    # Given a fresh cloud
    # When the clock is read
    response = get(env, "clock")
    # Then it is at the scenario's start time with nothing scheduled
    assert response.status_code == 200
    clock = response.json()
    assert clock["now"] == "2026-03-01T08:00:00Z"
    assert clock["elapsed"] == 0
    assert clock["pending_timers"] == 0
    assert clock["next_due_in"] is None


def test_get_clock_shows_pending_timers(env: CloudEnv) -> None:
    # Given an image being created (30 GiB at 10 s/GiB)
    create_image(env)
    # When the clock is read
    clock = get(env, "clock").json()
    # Then its completion (and its snapshots') is scheduled, the first within the image's 300 s
    assert clock["pending_timers"] >= 1
    assert 0 < clock["next_due_in"] <= 300


def test_advance_moves_the_clock_and_runs_state_machines(env: CloudEnv) -> None:
    # Given an image being created
    image_id = create_image(env)
    assert image_status(env, image_id) == "Creating"
    # When the clock is advanced past its creation time through the admin API
    response = post(env, "clock/advance", seconds=300)
    # Then the clock moved, timers fired, and the image is Available
    assert response.status_code == 200
    assert response.json()["now"] == "2026-03-01T08:05:00Z"
    assert response.json()["timers_fired"] >= 1
    assert image_status(env, image_id) == "Available"


def test_advance_until_idle_runs_every_timer(env: CloudEnv) -> None:
    # Given an image being created with a check to run afterwards
    create_image(env, detection_strategy="Standard")
    # When the clock is advanced until idle
    response = post(env, "clock/advance", until_idle=1)
    # Then nothing is left scheduled
    assert response.status_code == 200
    assert get(env, "clock").json()["pending_timers"] == 0


@pytest.mark.parametrize("params", [{}, {"seconds": "soon"}, {"seconds": -5}])
def test_advance_without_a_valid_amount_is_refused(env: CloudEnv, params: dict[str, Any]) -> None:
    # Given a fresh cloud
    # When advance is called without a usable amount of time
    response = post(env, "clock/advance", **params)
    # Then it is a 400 that says what to send, and the clock did not move
    assert response.status_code == 400
    assert "error" in response.json()
    assert get(env, "clock").json()["elapsed"] == 0


# -- reset -----------------------------------------------------------------------------------------


def test_reset_restores_the_scenario(env: CloudEnv) -> None:
    # Given an image made and time passed
    create_image(env)
    post(env, "clock/advance", seconds=1000)
    # When the cloud is reset
    response = post(env, "reset")
    # Then the image is gone and the clock is back at the start
    assert response.status_code == 200
    assert response.json()["now"] == "2026-03-01T08:00:00Z"
    assert get(env, "state").json()["images"] == []


def test_reset_replays_the_same_ids_for_the_same_calls(env: CloudEnv) -> None:
    # Given an image made before a reset
    before = create_image(env)
    # When the cloud is reset and the same call is made
    post(env, "reset")
    after = create_image(env)
    # Then the same seed gives the same image id
    assert after == before


# -- state, events, calls --------------------------------------------------------------------------


def test_state_lists_every_resource_kind(env: CloudEnv) -> None:
    # Given an image (with its snapshots) and a repair execution
    image_id = create_image(env)
    parameters = {
        "zoneId": "cn-hangzhou-h",
        "repairImageId": image_id,
        "baseImageId": "aliyun_3_x64_20G_alibase_20230727.vhd",
        "instanceType": "ecs.g7.large",
        "securityGroupId": "sg-1",
        "vSwitchId": "vsw-1",
    }
    execution_id = env.oos.start_execution(
        oos_models.StartExecutionRequest(
            region_id=env.region, template_name="ACS-ECS-RepairImage", parameters=json.dumps(parameters)
        )
    ).body.execution.execution_id
    # When the state is read
    state = get(env, "state").json()
    # Then it lists instances, disks, images, snapshots and executions
    assert [i["InstanceId"] for i in state["instances"]] == ["i-web1"]
    assert len(state["disks"]) == 2
    assert [i["ImageId"] for i in state["images"]] == [image_id]
    assert len(state["snapshots"]) == 2
    assert [e["ExecutionId"] for e in state["executions"]] == [execution_id]
    assert state["region"] == "cn-hangzhou"


def test_events_since_a_cursor_returns_only_newer_events(env: CloudEnv) -> None:
    # Given one event already published and the cursor after it
    create_image(env)
    first = get(env, "events").json()
    # When another write call publishes more, and events are read since the cursor
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-web1"))
    newer = get(env, "events", since=first["cursor"]).json()
    # Then only the newer events come back, numbered after the cursor, with the new cursor
    assert [e["event"]["data"].get("eventName") for e in first["events"]] == ["CreateImage"]
    assert newer["events"]
    assert all(e["seq"] >= first["cursor"] for e in newer["events"])
    assert "StopInstance" in [e["event"]["data"].get("eventName") for e in newer["events"]]
    assert newer["cursor"] == first["cursor"] + len(newer["events"])


def test_events_since_a_negative_cursor_is_refused(env: CloudEnv) -> None:
    # Given a cloud with events
    create_image(env)
    # When events are read since a negative cursor
    response = get(env, "events", since=-1)
    # Then it is a 400 naming the parameter (it used to return the tail of the log)
    assert response.status_code == 400
    assert "since" in response.json()["error"]


def test_events_can_be_read_per_bus(env: CloudEnv) -> None:
    # Given an event on a custom bus next to service events on the default bus
    env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name="bakery"))
    env.eventbridge.put_events(
        eb_models.PutEventsRequest(
            event_bus_name="bakery",
            event_list=[eb_models.PutEventsRequestEventList(id="e-1", source="bakery", type="bakery:Bake:Requested")],
        )
    )
    # When the custom bus's events are read
    events = get(env, "events", bus="bakery").json()["events"]
    # Then only the custom event comes back
    assert [(e["bus"], e["event"]["id"]) for e in events] == [("bakery", "e-1")]


def test_calls_counts_calls_and_errors_per_action(env: CloudEnv) -> None:
    # Given two DescribeInstances calls and a failing CreateImage
    env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region))
    env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region))
    with pytest.raises(Exception):  # noqa: B017 - the error itself is covered elsewhere
        env.ecs.create_image(ecs_models.CreateImageRequest(region_id=env.region, instance_id="i-nope"))
    # When the call counts are read
    calls = get(env, "calls").json()
    # Then each action is counted, and the error by action and code
    assert calls["calls"] == {"DescribeInstances": 2, "CreateImage": 1}
    assert calls["errors"] == {"CreateImage:InvalidInstanceId.NotFound": 1}
    assert calls["total"] == 3


def test_unknown_route_is_404_listing_the_routes(env: CloudEnv) -> None:
    # Given a fresh cloud
    # When an unknown admin route is requested
    response = get(env, "nope")
    # Then it is a 404 that names the route and lists the real ones
    assert response.status_code == 404
    body = response.json()
    assert "/_localcloud/nope" in body["error"]
    assert "GET /_localcloud/state" in body["routes"]
    assert "POST /_localcloud/clock/advance?seconds=N" in body["routes"]


def test_wrong_method_on_a_known_route_is_404(env: CloudEnv) -> None:
    # Given a fresh cloud
    # When a read-only route is POSTed to
    response = post(env, "state")
    # Then it is a 404 naming method and route
    assert response.status_code == 404
    assert "POST /_localcloud/state" in response.json()["error"]


# -- determinism -----------------------------------------------------------------------------------


def _drive(env: CloudEnv) -> dict[str, Any]:
    """A fixed sequence of calls touching every service; returns what a run observes.

    Each env is driven to the end before the next one is made: with the in-process transport, a
    second env's `responses` mock captures the first env's requests too (reported to the lead)."""
    image_id = create_image(env, detection_strategy="Standard")
    env.ecs.tag_resources(
        ecs_models.TagResourcesRequest(
            region_id=env.region,
            resource_type="image",
            resource_id=[image_id],
            tag=[ecs_models.TagResourcesRequestTag(key="bakery:state", value="checking")],
        )
    )
    env.cloud.run_until_idle()
    parameters = {
        "zoneId": "cn-hangzhou-h",
        "repairImageId": image_id,
        "baseImageId": "aliyun_3_x64_20G_alibase_20230727.vhd",
        "instanceType": "ecs.g7.large",
        "securityGroupId": "sg-1",
        "vSwitchId": "vsw-1",
        "repairItems": ["nvme"],
    }
    execution = env.oos.start_execution(
        oos_models.StartExecutionRequest(
            region_id=env.region, template_name="ACS-ECS-RepairImage", parameters=json.dumps(parameters)
        )
    ).body.execution
    env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name="bakery"))
    env.eventbridge.put_events(
        eb_models.PutEventsRequest(
            event_bus_name="bakery",
            event_list=[
                eb_models.PutEventsRequestEventList(
                    id="e-1", source="bakery", type="bakery:Image:CheckFailed", data=json.dumps({"imageId": image_id})
                )
            ],
        )
    )
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-web1"))
    env.cloud.run_until_idle()
    return {
        "ids": [image_id, execution.execution_id],
        "events": get(env, "events").json(),
        "state": get(env, "state").json(),
        "calls": get(env, "calls").json(),
    }


def test_two_clouds_driven_alike_produce_identical_ids_events_and_state(make_env: Callable[..., CloudEnv]) -> None:
    # Given two clouds built from the same scenario
    # When both receive the same calls (one after the other: see _drive)
    first = _drive(make_env(SCENARIO))
    second = _drive(make_env(SCENARIO))
    # Then ids, events (ids, times, payloads) and state are identical
    assert first["ids"] == second["ids"]
    assert first["events"] == second["events"]
    assert first["state"] == second["state"]
    assert first["calls"] == second["calls"]
    assert len(first["events"]["events"]) > 5  # the run really did something


def test_a_different_seed_gives_different_ids(make_env: Callable[..., CloudEnv]) -> None:
    # Given two clouds that differ only in their seed
    # When both receive the same call
    first = create_image(make_env(SCENARIO))
    second = create_image(make_env({**SCENARIO, "seed": 6}))
    # Then the ids differ (ids come from the seeded generator, not from a global one)
    assert first != second
