"""EventBridge through the real SDK: bus management and PutEvents (fc-eventbridge.md §2.1, §2.3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from alibabacloud_eventbridge20200401 import models as eb_models
from alibabacloud_tea_openapi.exceptions import ClientException

from localcloud.testing import CloudEnv

BUS = "bakery"
SCENARIO: dict[str, Any] = {"seed": 3, "account_id": "1112223334445556", "region": "cn-hangzhou"}


def event(n: int, **overrides: Any) -> eb_models.PutEventsRequestEventList:
    fields: dict[str, Any] = {
        "id": f"evt-{n}",
        "source": "bakery",
        "type": "bakery:Image:Ready",
        "subject": f"m-bp1image{n}",
        "spec_version": "1.0",
        "data_content_type": "application/json",
        "data": json.dumps({"imageId": f"m-bp1image{n}", "attempt": n}),
    }
    fields.update(overrides)
    return eb_models.PutEventsRequestEventList(**{k: v for k, v in fields.items() if v is not None})


def put(env: CloudEnv, events: list[eb_models.PutEventsRequestEventList], bus: str = BUS) -> Any:
    return env.eventbridge.put_events(eb_models.PutEventsRequest(event_bus_name=bus, event_list=events)).body


def on_bus(env: CloudEnv, bus: str = BUS) -> list[dict[str, Any]]:
    return [e.event for e in env.cloud.events.read(bus=bus)]


@pytest.fixture
def env(make_env: Callable[..., CloudEnv]) -> CloudEnv:
    return make_env(SCENARIO)


@pytest.fixture
def bus(env: CloudEnv) -> str:
    env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name=BUS, description="bake events"))
    return BUS


# -- buses -----------------------------------------------------------------------------------------


def test_create_event_bus_returns_its_arn(env: CloudEnv) -> None:
    # Given no custom bus
    # When one is created
    body = env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name=BUS)).body
    # Then the call succeeds with the bus ARN
    assert body.success is True
    assert body.data.event_bus_arn == f"acs:eventbridge:cn-hangzhou:1112223334445556:eventbus/{BUS}"


def test_get_event_bus_describes_the_bus(env: CloudEnv, bus: str) -> None:
    # Given a custom bus with a description
    # When it is read
    data = env.eventbridge.get_event_bus(eb_models.GetEventBusRequest(event_bus_name=bus)).body.data
    # Then name, description and ARN come back
    assert data.event_bus_name == bus
    assert data.description == "bake events"
    assert data.event_bus_arn.endswith(f":eventbus/{bus}")


def test_get_event_bus_reports_when_the_bus_was_created(env: CloudEnv) -> None:
    # Given a bus created one simulated hour after the cloud started
    env.cloud.advance(3600)
    env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name=BUS))
    # When it and the default bus are read
    custom = env.eventbridge.get_event_bus(eb_models.GetEventBusRequest(event_bus_name=BUS)).body.data
    default = env.eventbridge.get_event_bus(eb_models.GetEventBusRequest(event_bus_name="default")).body.data
    # Then each reports its own creation time, in epoch milliseconds
    assert custom.create_timestamp == int(env.cloud.clock.now * 1000)
    assert custom.create_timestamp - default.create_timestamp == 3600 * 1000


def test_list_event_buses_lists_default_and_custom_buses(env: CloudEnv, bus: str) -> None:
    # Given a custom bus next to the built-in default bus
    # When buses are listed, all and by prefix
    everything = env.eventbridge.list_event_buses(eb_models.ListEventBusesRequest()).body.data
    by_prefix = env.eventbridge.list_event_buses(eb_models.ListEventBusesRequest(name_prefix="bak")).body.data
    # Then both are listed, and the prefix selects the custom one
    assert sorted(b.event_bus_name for b in everything.event_buses) == [bus, "default"]
    assert everything.total == 2
    assert [b.event_bus_name for b in by_prefix.event_buses] == [bus]


def test_deleted_event_bus_is_gone(env: CloudEnv, bus: str) -> None:
    # Given a custom bus
    # When it is deleted
    env.eventbridge.delete_event_bus(eb_models.DeleteEventBusRequest(event_bus_name=bus))
    # Then reading it is 404 EventBusNotExist
    with pytest.raises(ClientException) as caught:
        env.eventbridge.get_event_bus(eb_models.GetEventBusRequest(event_bus_name=bus))
    assert caught.value.code == "EventBusNotExist"
    assert caught.value.status_code == 404
    assert bus in caught.value.data["Message"]


def test_creating_a_bus_twice_is_refused(env: CloudEnv, bus: str) -> None:
    # Given a custom bus
    # When a bus of the same name is created again
    with pytest.raises(ClientException) as caught:
        env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name=bus))
    # Then it is refused as a conflict naming the bus
    assert caught.value.code == "EventBusAlreadyExist"
    assert caught.value.status_code == 409
    assert bus in caught.value.data["Message"]


@pytest.mark.parametrize("name", ["default", "eventbridge-reserved-x", "-starts-with-dash", "has_underscore"])
def test_creating_a_bus_with_a_forbidden_name_is_refused(env: CloudEnv, name: str) -> None:
    # Given a name the bus naming rules forbid
    # When a bus with it is created
    with pytest.raises(ClientException) as caught:
        env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name=name))
    # Then it is refused as InvalidArgument naming the name
    assert caught.value.code == "InvalidArgument"
    assert caught.value.status_code == 400
    assert name in caught.value.data["Message"]


def test_deleting_the_default_bus_is_refused(env: CloudEnv) -> None:
    # Given the built-in default bus
    # When it is deleted
    with pytest.raises(ClientException) as caught:
        env.eventbridge.delete_event_bus(eb_models.DeleteEventBusRequest(event_bus_name="default"))
    # Then it is refused, and the bus is still there
    assert caught.value.code == "InvalidArgument"
    assert "default" in caught.value.data["Message"]
    assert env.eventbridge.get_event_bus(eb_models.GetEventBusRequest(event_bus_name="default")).body.success


# -- PutEvents -------------------------------------------------------------------------------------


def test_put_events_reports_a_result_per_entry(env: CloudEnv, bus: str) -> None:
    # Given a custom bus
    # When two events are put
    body = put(env, [event(1), event(2)])
    # Then both are accepted, each with its own result
    assert body.success is True
    assert body.data.failed_entry_count == 0
    assert [e.event_id for e in body.data.entry_list] == ["evt-1", "evt-2"]
    assert all(e.error_code == "" and e.trace_id for e in body.data.entry_list)


def test_put_events_publishes_cloudevents_with_alibaba_extensions(env: CloudEnv, bus: str) -> None:
    # Given a custom bus
    # When an event is put
    put(env, [event(1)])
    # Then the bus carries it as a CloudEvent with Alibaba's extensions, data parsed from the JSON string
    [published] = on_bus(env)
    assert published["id"] == "evt-1"
    assert published["source"] == "bakery"
    assert published["type"] == "bakery:Image:Ready"
    assert published["subject"] == "m-bp1image1"
    assert published["specversion"] == "1.0"
    assert published["datacontenttype"] == "application/json"
    assert published["aliyuneventbusname"] == bus
    assert published["aliyunregionid"] == "cn-hangzhou"
    assert published["aliyunaccountid"] == "1112223334445556"
    assert published["aliyunpublishtime"].endswith("Z")
    assert published["time"] == env.cloud.clock.iso()
    assert published["data"] == {"imageId": "m-bp1image1", "attempt": 1}


def test_put_events_keeps_non_json_data_as_a_string(env: CloudEnv, bus: str) -> None:
    # Given a custom bus
    # When an event with plain-text data is put
    put(env, [event(1, data="not json", data_content_type="text/plain")])
    # Then its data is delivered as the string it was
    assert on_bus(env)[0]["data"] == "not json"


def test_an_invalid_entry_fails_alone(env: CloudEnv, bus: str) -> None:
    # Given a custom bus
    # When three events are put and the middle one has no Source
    body = put(env, [event(1), event(2, source=None), event(3)])
    # Then only that entry failed, naming Source, and the other two were published
    assert body.data.failed_entry_count == 1
    results = {e.event_id: e for e in body.data.entry_list}
    assert results["evt-2"].error_code == "InvalidArgument"
    assert "Source" in results["evt-2"].error_message
    assert results["evt-1"].error_code == results["evt-3"].error_code == ""
    assert [e["id"] for e in on_bus(env)] == ["evt-1", "evt-3"]


def test_more_than_16_entries_are_refused(env: CloudEnv, bus: str) -> None:
    # Given a custom bus
    # When 17 events are put at once
    with pytest.raises(ClientException) as caught:
        put(env, [event(n) for n in range(17)])
    # Then the request is refused naming the limit, and nothing was published
    assert caught.value.code == "InvalidArgument"
    assert caught.value.status_code == 400
    assert "16" in caught.value.data["Message"]
    assert on_bus(env) == []


def test_put_events_to_the_default_bus_is_refused(env: CloudEnv) -> None:
    # Given only the default bus, which takes Alibaba Cloud service events only
    cursor = env.cloud.events.cursor
    # When a custom event is put on it
    with pytest.raises(ClientException) as caught:
        put(env, [event(1)], bus="default")
    # Then it is refused with a message saying to use a custom bus, and nothing was published
    assert caught.value.code == "InvalidArgument"
    assert caught.value.status_code == 400
    assert "custom bus" in caught.value.data["Message"]
    assert env.cloud.events.read(cursor) == []


def test_put_events_to_an_unknown_bus_is_not_found(env: CloudEnv) -> None:
    # Given no bus named nosuchbus
    # When events are put on it
    with pytest.raises(ClientException) as caught:
        put(env, [event(1)], bus="nosuchbus")
    # Then the answer is 404 EventBusNotExist naming the bus
    assert caught.value.code == "EventBusNotExist"
    assert caught.value.status_code == 404
    assert "nosuchbus" in caught.value.data["Message"]
