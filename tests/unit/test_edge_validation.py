"""Validation at the edge, total: every malformed input is refused by bakery.events (InvalidEvent, with a reason)
before any route or stage reads it — the crashes the fuzzer (tests/fuzz) was built around, one test each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bakery import events
from bakery.errors import InvalidEvent
from bakery.events import CloudEvent, TimerEvent, parse_invocation

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def encoded(body: Any) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as a \\udXXX escape, as JSON allows


# -- the payload as a whole ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 5_000, 100_000])
def test_deeply_nested_json_is_refused_without_recursing(depth: int) -> None:
    # Given an event whose data nests `depth` levels (json.loads itself recurses out past ~1,000)
    body = sample("bakery-image-creationstarted.json")
    raw = encoded(body).replace(b'"data": {', b'"data": {"deep": ' + b"[" * depth + b"]" * depth + b", ", 1)

    # When it is parsed / Then it is refused as malformed, not a RecursionError
    with pytest.raises(InvalidEvent, match=r"not JSON|nests deeper than 32 levels"):
        parse_invocation(raw)


def test_nesting_in_a_decoded_mapping_is_refused_too() -> None:
    # Given a mapping (what `bakery invoke` or a test hands over) nested past the limit
    deep: Any = "leaf"
    for _ in range(50):
        deep = {"d": deep}
    body = {**sample("bakery-image-creationstarted.json"), "extra": deep}

    # When it is parsed / Then the limit applies to it as to bytes
    with pytest.raises(InvalidEvent, match=r"nests deeper than 32 levels$"):
        CloudEvent.parse(body)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999999", b"1" * 5000])
def test_numbers_json_does_not_have_are_refused(token: bytes) -> None:
    # Given an event with NaN, an infinity, or a number Python will not parse (4300+ digits: ValueError)
    raw = encoded(sample("bakery-image-ready.json")).replace(b'"repairs": 1', b'"repairs": ' + token)

    # When parsed / Then it is malformed JSON
    with pytest.raises(InvalidEvent, match=r"^the invocation payload is not JSON$"):
        parse_invocation(raw)


@pytest.mark.parametrize("raw", [b"\xef\xbb\xbf{}", '{"id": "x"}'.encode("utf-16"), b'{"id": "\xff"}'])
def test_bytes_that_are_not_utf8_json_are_refused(raw: bytes) -> None:
    # Given a BOM, UTF-16, or a byte that is never UTF-8 / When parsed / Then not JSON
    with pytest.raises(InvalidEvent, match=r"^the invocation payload is not JSON$"):
        parse_invocation(raw)


def test_a_payload_larger_than_any_event_is_refused_before_parsing() -> None:
    raw = b'{"id": "' + b"x" * (events.MAX_PAYLOAD_BYTES + 1) + b'"}'
    with pytest.raises(InvalidEvent, match=r"larger than 256 KB$"):
        parse_invocation(raw)


@pytest.mark.parametrize(
    "where",
    ["id", "subject", "data.imageId", "data.family", "key"],
)
def test_a_lone_surrogate_in_any_string_or_key_is_refused(where: str) -> None:
    # Given an event with a lone surrogate (valid JSON escape, not encodable text) somewhere
    body = sample("bakery-image-creationstarted.json")
    if where == "key":
        body["data"]["fam\udc00ily"] = "web"
    elif where.startswith("data."):
        body["data"][where[5:]] += "\ud800"
    else:
        body[where] += "\udfff"

    # When parsed / Then it is refused before anything hashes, logs or sends it
    with pytest.raises(InvalidEvent, match=r"not valid Unicode"):
        parse_invocation(encoded(body))


def test_a_decoded_mapping_with_a_value_json_cannot_hold_is_refused() -> None:
    body = {**sample("bakery-image-creationstarted.json"), "extra": b"bytes"}
    with pytest.raises(InvalidEvent, match=r"holds a bytes"):
        CloudEvent.parse(body)


@pytest.mark.parametrize("key", ["subject", "time", "aliyunaccountid", "aliyunregionid"])
@pytest.mark.parametrize("value", [5, True, ["x"], {"a": "b"}, "x" * 300])
def test_envelope_attributes_of_the_wrong_type_are_refused(key: str, value: Any) -> None:
    body = {**sample("bakery-image-creationstarted.json"), key: value}
    with pytest.raises(InvalidEvent, match=rf"{key} must be a string"):
        CloudEvent.parse(body)


def test_the_account_and_region_stamps_are_carried_on_the_event() -> None:
    event = CloudEvent.parse(encoded(sample("bakery-image-creationstarted.json")))
    assert (event.account_id, event.region_id) == ("1234567890123456", "cn-hangzhou")


# -- timers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2026-01-05T09:05:00Z\ud800", 20260105, None, ["2026-01-05T09:05:00Z"], "yesterday", "2026-01-05T09:05:00Z\n"],
)
def test_a_timer_whose_trigger_time_is_not_an_iso_time_is_refused(value: Any) -> None:
    # Given a timer invocation with a lone surrogate, a number, a list... in triggerTime
    body = {**sample("timer-sweep.json"), "triggerTime": value}

    # When parsed / Then refused (the sweep hashes it into bake ids: a surrogate there was a UnicodeEncodeError)
    with pytest.raises(InvalidEvent):
        parse_invocation(encoded(body))


@pytest.mark.parametrize("value", [7, "", "x" * 200, "a b", None])
def test_a_timer_whose_name_is_not_a_trigger_name_is_refused(value: Any) -> None:
    body = {**sample("timer-sweep.json"), "triggerName": value}
    with pytest.raises(InvalidEvent, match=r"triggerName"):
        parse_invocation(encoded(body))


def test_a_timer_with_an_offset_time_and_an_object_payload_parses() -> None:
    body = {"triggerTime": "2026-01-05T17:05:00.123+08:00", "triggerName": "sweep", "payload": {"sweep": True}}
    assert parse_invocation(encoded(body)) == TimerEvent("sweep", "2026-01-05T17:05:00.123+08:00", '{"sweep": true}')


# -- typed data, per event type ---------------------------------------------------------------------------------


def tag_event(**data: Any) -> CloudEvent:
    body = sample("ecs-actiontrail-tagresources.json")
    body["data"].update(data)
    return CloudEvent.parse(body)


@pytest.mark.parametrize("params", [["ResourceId.1"], "ResourceId.1=i-web1", 5, True])
def test_request_parameters_that_are_not_an_object_are_refused(params: Any) -> None:
    with pytest.raises(InvalidEvent, match=r"requestParameters must be an object of strings"):
        events.tag_call_data(tag_event(requestParameters=params))


@pytest.mark.parametrize("value", [5, 1.5, True, None, ["true"]])
def test_a_tag_value_that_is_not_a_string_is_refused(value: Any) -> None:
    # Given TagResources whose Tag.1.Value is a number (RPC parameters are strings on the wire)
    event = tag_event()
    event.data["requestParameters"]["Tag.1.Value"] = value

    # When its data is read for the claim / Then it is malformed
    with pytest.raises(InvalidEvent, match=r"requestParameters must be an object of strings"):
        events.tag_call_data(event)


@pytest.mark.parametrize(
    "nested",
    [5, ["x"], {"ResourceId": [5]}, {"Tag": "bakery:bake"}, {"Tag": [{"Key": 5}]}, {"ResourceType": ["instance"]},
     "{not json"],
)  # fmt: skip
def test_request_parameter_json_of_the_wrong_shape_is_refused(nested: Any) -> None:
    event = tag_event(requestParameterJson=nested)
    del event.data["requestParameters"]
    with pytest.raises(InvalidEvent, match=r"requestParameterJson"):
        events.tag_call_data(event)


@pytest.mark.parametrize("referenced", [5, ["i-web1"], {"ACS::ECS::Instance": "i-web1"}, {"ACS::ECS::Instance": [1]}])
def test_referenced_resources_of_the_wrong_shape_are_refused(referenced: Any) -> None:
    with pytest.raises(InvalidEvent, match=r"referencedResources"):
        events.tag_call_data(tag_event(referencedResources=referenced))


def test_the_tag_call_data_keeps_only_the_fields_the_claim_reads() -> None:
    data = events.tag_call_data(tag_event())
    assert set(data) == {"eventName", "eventId", "requestParameters", "referencedResources"}


@pytest.mark.parametrize("value", [["i-web1"], 5, None, True, "i-web1\n", "i-\u00fcber", "i-" + "a" * 100, "m-web1"])
def test_an_instance_id_of_the_wrong_type_or_form_is_refused(value: Any) -> None:
    body = sample("bakery-bake-requested.json")
    body["data"]["instanceId"] = value
    with pytest.raises(InvalidEvent, match=r"data.instanceId is missing or malformed"):
        events.BakeRequest.parse(CloudEvent.parse(body))


@pytest.mark.parametrize(("key", "value"), [("bakeId", 5), ("bakeId", "x"), ("bakeId", ""), ("family", ["web"]),
                                            ("name", 7), ("family", "f" * 129)])  # fmt: skip
def test_a_bake_request_with_a_malformed_optional_field_is_refused_in_either_form(key: str, value: Any) -> None:
    for name in ("bakery-bake-requested.json", "bakery-bake-requested.snapshots.json"):
        body = sample(name)
        body["data"][key] = value
        with pytest.raises(InvalidEvent, match=rf"data.{key}"):
            events.BakeRequest.parse(CloudEvent.parse(body))


def test_a_bake_request_naming_an_instance_and_snapshots_is_refused() -> None:
    body = sample("bakery-bake-requested.snapshots.json")
    body["data"]["instanceId"] = "i-web1"
    with pytest.raises(InvalidEvent, match=r"not both$"):
        events.BakeRequest.parse(CloudEvent.parse(body))


def test_the_sample_bake_requests_parse_into_their_forms() -> None:
    one = events.BakeRequest.parse(CloudEvent.parse(sample("bakery-bake-requested.json")))
    many = events.BakeRequest.parse(CloudEvent.parse(sample("bakery-bake-requested.snapshots.json")))
    assert one == events.BakeRequest("i-web1", (), "b-0123456789abcdef", "", "")
    assert many == events.BakeRequest(None, ("s-web1sys0000001", "s-db1data000001"), "b-fedcba9876543210", "web",
                                      "web-merged")  # fmt: skip


@pytest.mark.parametrize(("key", "value"), [("instanceId", 5), ("invokeId", ["t-1"]), ("commandName", True),
                                            ("instanceId", None)])  # fmt: skip
def test_task_completed_fields_of_the_wrong_type_are_refused(key: str, value: Any) -> None:
    body = sample("ecs-cloudassistant-taskcompleted.json")
    body["data"][key] = value
    with pytest.raises(InvalidEvent, match=rf"data.{key}"):
        events.task_completed_data(CloudEvent.parse(body))


@pytest.mark.parametrize(("key", "value"), [("resourceId", 5), ("state", ["Stopped"]), ("state", None)])
def test_state_change_fields_of_the_wrong_type_are_refused(key: str, value: Any) -> None:
    body = sample("ecs-instance-statechange.stopped.json")
    body["data"][key] = value
    with pytest.raises(InvalidEvent, match=rf"data.{key}"):
        events.instance_state_data(CloudEvent.parse(body))


def test_error_messages_show_a_huge_value_cut_short() -> None:
    body = sample("bakery-bake-requested.json")
    body["data"]["instanceId"] = "i-" + "a" * 10_000
    with pytest.raises(InvalidEvent) as info:
        events.BakeRequest.parse(CloudEvent.parse(body))
    assert len(str(info.value)) < 200


def test_each_handled_type_has_the_source_its_trigger_matches() -> None:
    assert events.source_of(events.BAKE_REQUESTED) == "bakery"
    assert events.source_of(events.ACTIONTRAIL_API_CALL) == "acs.ecs"
    assert events.source_of(events.OOS_EXECUTION_STATUS) == "acs.oos"
    assert events.source_of("acs:Unknown") is None
