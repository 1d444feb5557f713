"""bakery.events: the CloudEvents FC delivers (validated at the edge) and the events Bakery publishes.

The samples in events/ are the exact payloads FC receives; they double as fixtures here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bakery import events
from bakery import tags as _tags
from bakery.errors import InvalidEvent
from bakery.events import BakeryEvent, CloudEvent, TagCall, TimerEvent, parse_invocation

EVENTS = Path(__file__).resolve().parents[2] / "events"
CLOUD_EVENT_SAMPLES = sorted(p.name for p in EVENTS.glob("*.json") if not p.name.startswith("timer-"))


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def event_bytes(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


def test_the_samples_include_cloud_events_and_a_timer() -> None:
    # Given events/ / Then there is something for each parser below to chew on
    assert CLOUD_EVENT_SAMPLES
    assert (EVENTS / "timer-sweep.json").exists()


# -- the samples -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLOUD_EVENT_SAMPLES)
def test_each_cloud_event_sample_parses_from_the_bytes_fc_delivers(name: str) -> None:
    # Given a sample exactly as FC delivers it (bytes)
    raw = load_event(name)

    # When it is parsed
    event = CloudEvent.parse(event_bytes(name))

    # Then the envelope fields and data are carried over, and the raw body is kept
    assert (event.id, event.source, event.type, event.subject, event.time) == (
        raw["id"], raw["source"], raw["type"], raw["subject"], raw["time"],
    )  # fmt: skip
    assert event.data == raw["data"]
    assert event.raw == raw


@pytest.mark.parametrize("name", CLOUD_EVENT_SAMPLES)
def test_parse_invocation_turns_each_cloud_event_sample_into_a_cloud_event(name: str) -> None:
    # Given a bus event sample / When FC's invocation payload is parsed
    parsed = parse_invocation(event_bytes(name))

    # Then it is the same CloudEvent CloudEvent.parse makes
    assert parsed == CloudEvent.parse(event_bytes(name))


@pytest.mark.parametrize("form", ["bytes", "str", "dict"])
def test_cloud_event_parse_accepts_bytes_text_and_a_decoded_mapping(form: str) -> None:
    # Given the same sample as bytes, as text and already decoded
    payload = {"bytes": event_bytes, "str": lambda n: event_bytes(n).decode(), "dict": load_event}[form](
        "bakery-image-creationstarted.json"
    )

    # When it is parsed / Then the result is the same event
    assert CloudEvent.parse(payload) == CloudEvent.parse(event_bytes("bakery-image-creationstarted.json"))


def test_bakery_samples_carry_bakery_types_and_source() -> None:
    # Given the samples Bakery itself publishes
    bakery = [CloudEvent.parse(event_bytes(n)) for n in CLOUD_EVENT_SAMPLES if n.startswith("bakery-")]

    # Then each has source "bakery" and one of the declared bakery:* types
    assert bakery
    assert all(e.source == events.SOURCE and e.type in events.BAKERY_TYPES for e in bakery)


# -- timers ----------------------------------------------------------------------------------------------


def test_the_timer_sample_parses_into_a_timer_event() -> None:
    # Given what an FC timer trigger sends / When the invocation is parsed
    parsed = parse_invocation(event_bytes("timer-sweep.json"))

    # Then it is a TimerEvent with the trigger's name, time and payload text
    assert parsed == TimerEvent(trigger_name="sweep", trigger_time="2026-01-05T09:05:00Z", payload='{"sweep": true}')


def test_a_timer_event_without_payload_has_empty_payload() -> None:
    # Given a timer invocation whose trigger has no payload
    body = {k: v for k, v in load_event("timer-sweep.json").items() if k != "payload"}

    # When it is parsed / Then the payload is empty text
    assert parse_invocation(json.dumps(body).encode()) == TimerEvent("sweep", "2026-01-05T09:05:00Z", "")


def test_a_body_with_only_a_trigger_name_is_not_a_timer() -> None:
    # Given a body with triggerName but no triggerTime (so not an FC timer invocation)
    body = {"triggerName": "sweep", "payload": "{}"}

    # When it is parsed / Then it is treated as a CloudEvent, and refused as one
    with pytest.raises(InvalidEvent, match=r"^not a CloudEvent: missing id, source, type$"):
        parse_invocation(json.dumps(body).encode())


def test_cloud_event_parse_refuses_a_timer_invocation() -> None:
    # Given a timer invocation / When parsed as a CloudEvent / Then it is not one
    with pytest.raises(InvalidEvent, match=r"^not a CloudEvent: missing id, source, type$"):
        CloudEvent.parse(event_bytes("timer-sweep.json"))


# -- what cannot be an event ---------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"not json", b'{"id": ', b"\xff\xfe\x00garbage", b""])
def test_bytes_that_are_not_json_are_invalid(payload: bytes) -> None:
    # Given bytes that are not JSON (or not even UTF-8) / When parsed / Then the event is refused as such
    with pytest.raises(InvalidEvent, match=r"^the invocation payload is not JSON$"):
        parse_invocation(payload)


def test_a_batch_of_events_is_invalid_with_a_reason_about_the_trigger_mode() -> None:
    # Given a list of events (what event-streaming mode delivers)
    batch = json.dumps([load_event("bakery-image-creationstarted.json")]).encode()

    # When parsed / Then it is refused, saying Bakery's triggers deliver one event each
    with pytest.raises(InvalidEvent) as info:
        parse_invocation(batch)
    assert str(info.value) == ("a batch of events arrived; Bakery's triggers use event-driven mode (one event each)")


@pytest.mark.parametrize("payload", [b"42", b'"text"', b"null", b"true"])
def test_json_that_is_not_an_object_is_invalid(payload: bytes) -> None:
    # Given JSON that is a scalar / When parsed / Then it is refused
    with pytest.raises(InvalidEvent, match=r"^the invocation payload is not a JSON object$"):
        CloudEvent.parse(payload)


@pytest.mark.parametrize("key", ["id", "source", "type"])
def test_a_cloud_event_missing_a_required_attribute_is_invalid(key: str) -> None:
    # Given a sample without one of id, source, type
    body = {k: v for k, v in load_event("bakery-image-checkfailed.json").items() if k != key}

    # When parsed / Then the error names the missing attribute
    with pytest.raises(InvalidEvent) as info:
        CloudEvent.parse(body)
    assert str(info.value) == f"not a CloudEvent: missing {key}"


@pytest.mark.parametrize("value", ["", 7, None, ["x"]])
def test_a_cloud_event_with_an_empty_or_non_text_type_is_invalid(value: Any) -> None:
    # Given a sample whose type is empty or not a string
    body = {**load_event("bakery-image-checkfailed.json"), "type": value}

    # When parsed / Then it counts as missing
    with pytest.raises(InvalidEvent, match=r"^not a CloudEvent: missing type$"):
        CloudEvent.parse(body)


def test_every_missing_attribute_is_named_at_once() -> None:
    # Given an object with none of the required attributes
    # When parsed / Then all of them are named in one message
    with pytest.raises(InvalidEvent, match=r"^not a CloudEvent: missing id, source, type$"):
        CloudEvent.parse({"data": {}})


@pytest.mark.parametrize("data", [["m-1"], 3, None, True])
def test_data_that_is_not_an_object_is_invalid(data: Any) -> None:
    # Given a sample whose data is a list, a number, null or a bool
    body = {**load_event("bakery-image-checkfailed.json"), "data": data}

    # When parsed / Then the error names the event and what data must be
    with pytest.raises(InvalidEvent) as info:
        CloudEvent.parse(body)
    assert str(info.value) == "event bk-bakery-image-checkfa (bakery:Image:CheckFailed): data must be a JSON object"


def test_a_cloud_event_without_data_is_invalid() -> None:
    # Given a sample with no data at all
    body = {k: v for k, v in load_event("bakery-image-checkfailed.json").items() if k != "data"}

    # When parsed / Then it is refused: every event Bakery handles carries its facts in data
    with pytest.raises(InvalidEvent, match=r"data must be a JSON object$"):
        CloudEvent.parse(body)


def test_data_as_a_json_string_is_decoded() -> None:
    # Given a sample whose data arrived double-encoded (RawData-style): a JSON object inside a string
    raw = load_event("bakery-image-checkfailed.json")
    body = {**raw, "data": json.dumps(raw["data"])}

    # When parsed / Then data is the decoded object
    assert CloudEvent.parse(body).data == raw["data"]


def test_data_as_a_string_that_is_not_json_is_invalid() -> None:
    # Given a sample whose data is a string that is not JSON
    body = {**load_event("bakery-image-checkfailed.json"), "data": "m-bp1example000000001"}

    # When parsed / Then the error names the event
    with pytest.raises(InvalidEvent, match=r"^event bk-bakery-image-checkfa: data is not JSON$"):
        CloudEvent.parse(body)


def test_data_as_a_json_string_of_a_list_is_invalid() -> None:
    # Given a sample whose data is a JSON string holding a list
    body = {**load_event("bakery-image-checkfailed.json"), "data": '["m-1"]'}

    # When parsed / Then it is refused like any non-object data
    with pytest.raises(InvalidEvent, match=r"data must be a JSON object$"):
        CloudEvent.parse(body)


def test_subject_and_time_are_optional() -> None:
    # Given a sample without subject and time
    body = {
        k: v for k, v in load_event("ecs-snapshot-createsnapshotcompleted.json").items() if k not in ("subject", "time")
    }

    # When parsed / Then they are empty strings
    event = CloudEvent.parse(body)
    assert (event.subject, event.time) == ("", "")


# -- BakeryEvent ---------------------------------------------------------------------------------------


def _sample_as_bakery_event(name: str) -> BakeryEvent:
    event = CloudEvent.parse(event_bytes(name))
    return BakeryEvent(event.type, event.subject, event.data)


def test_bakery_event_id_is_the_same_for_the_same_fact() -> None:
    # Given the same fact built twice, with data keys in a different order
    first = _sample_as_bakery_event("bakery-image-ready.json")
    second = BakeryEvent(first.type, first.subject, dict(reversed(list(first.data.items()))))

    # When their ids are computed / Then they are equal (a retried publish carries the same id)
    assert first.event_id == second.event_id


def test_bakery_event_id_has_a_stable_known_value() -> None:
    # Given a fixed fact / When its id is computed
    event = BakeryEvent("bakery:Image:Ready", "m-1", {"bakeId": "b-1", "imageId": "m-1"})

    # Then it is the value it has always been: receivers dedupe on it across deploys
    assert event.event_id == "bk-c7a0ec04ab26626a0c13bb95"


@pytest.mark.parametrize(
    "change",
    [
        {"type": "bakery:Bake:Failed"},
        {"subject": "m-other"},
        {"data": {"bakeId": "b-0123456789abcdef", "imageId": "m-bp1example000000002", "attempts": 3}},
    ],
    ids=["type", "subject", "data"],
)
def test_bakery_event_id_differs_when_the_fact_differs(change: dict[str, Any]) -> None:
    # Given a fact and the same fact with its type, subject or data changed
    base = _sample_as_bakery_event("bakery-image-ready.json")
    changed = BakeryEvent(**{"type": base.type, "subject": base.subject, "data": base.data, **change})

    # When their ids are computed / Then they differ
    assert changed.event_id != base.event_id


def test_bakery_event_id_is_short_and_prefixed() -> None:
    # Given any fact / When its id is computed / Then it is "bk-" and 24 hex digits
    event_id = _sample_as_bakery_event("bakery-bake-failed.json").event_id
    assert re.fullmatch(r"bk-[0-9a-f]{24}", event_id)


def test_bakery_events_have_source_bakery() -> None:
    # Given a BakeryEvent / Then its source is Bakery's
    assert _sample_as_bakery_event("bakery-image-repaired.json").source == "bakery"


# -- TagResources records, in every shape Alibaba might deliver (README: wiring) ---------------------------


def _tag_call(data: dict[str, Any]) -> TagCall:
    return TagCall.parse(data, _tags.TRIGGER, _tags.truthy)


def test_a_flat_record_gives_type_ids_and_whether_it_set_the_trigger() -> None:
    # Given ActionTrail's flat RPC keys, with the platform's own keys mixed in
    data = {"requestParameters": {"RegionId": "cn-hangzhou", "ResourceType": "instance", "ResourceId.2": "i-b",
                                  "ResourceId.1": "i-a", "Tag.1.Key": "bakery:bake", "Tag.1.Value": "true",
                                  "AcsHost": "ecs.aliyuncs.com", "RequestId": "R"}}  # fmt: skip
    # Then the ids come in index order and the trigger is known to be set
    assert _tag_call(data) == TagCall("instance", ("i-a", "i-b"), True)


def test_a_flat_record_of_other_tags_is_known_not_to_trigger() -> None:
    data = {"requestParameters": {"ResourceType": "instance", "ResourceId.1": "i-a", "Tag.1.Key": "bakery:state",
                                  "Tag.1.Value": "preflight"}}  # fmt: skip
    assert _tag_call(data) == TagCall("instance", ("i-a",), False)


def test_a_json_record_is_read_like_the_flat_one() -> None:
    # Given only requestParameterJson (ActionTrail's management-event structure), as text or as an object
    nested = {"ResourceType": "Instance", "ResourceId": ["i-a"], "Tag": [{"Key": "bakery:bake", "Value": "True"}]}
    for value in (json.dumps(nested), nested):
        assert _tag_call({"requestParameterJson": value}) == TagCall("instance", ("i-a",), True)


def test_a_record_without_parameters_names_the_instances_but_not_the_tags() -> None:
    # Given EventBridge's own ActionTrail sample shape: referencedResources only
    data = {"referencedResources": {"ACS::ECS::Instance": ["i-a"], "ACS::ECS::Image": ["m-x"]}}
    # Then the instances are candidates and the trigger is unknown (the bake re-reads the instance's tags)
    assert _tag_call(data) == TagCall("instance", ("i-a",), None)


@pytest.mark.parametrize("data", [{}, {"requestParameters": "x"}, {"requestParameterJson": "{not json"},
                                  {"referencedResources": ["i-a"]}, {"requestParameters": {"RegionId": "r"}}])  # fmt: skip
def test_a_record_that_says_nothing_usable_names_no_instance(data: dict[str, Any]) -> None:
    assert _tag_call(data).resource_ids == ()
