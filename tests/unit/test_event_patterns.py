"""Alibaba Cloud EventBridge event-pattern matcher: conformance suite plus API checks.

Each ``patterns/<name>.json`` holds ``{"event": ..., "pattern": ...}``. The file stem says what
must happen: ``_NEG`` must not match, ``_EXC`` must be rejected as invalid, anything else must match.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from localcloud import patterns
from localcloud.patterns import EventPattern, InvalidEventPattern, matches

CASES_DIR = Path(__file__).parent / "patterns"
CASE_FILES = sorted(CASES_DIR.glob("*.json"))

TAG_EVENT: dict[str, Any] = {
    "id": "45ef4dewdwe1-7c35-447a-bd93-fab0001",
    "source": "acs.ecs",
    "specversion": "1.0",
    "type": "ecs:ActionTrail:ApiCall",
    "subject": "acs.ecs:cn-hangzhou:1234567890123456:instance/i-web1",
    "time": "2024-05-10T08:12:31Z",
    "aliyunaccountid": "1234567890123456",
    "aliyunregionid": "cn-hangzhou",
    "aliyuneventbusname": "default",
    "data": {
        "eventName": "TagResources",
        "serviceName": "Ecs",
        "eventRW": "Write",
        "requestParameters": {
            "ResourceType": "instance",
            "ResourceId.1": "i-web1",
            "Tag.1.Key": "bakery:bake",
            "Tag.1.Value": "true",
        },
    },
}

# As template.yml stores it: the pattern is JSON text.
TAG_RULE_TEXT = json.dumps(
    {
        "source": ["acs.ecs"],
        "type": ["ecs:ActionTrail:ApiCall"],
        "data": {"eventName": ["TagResources"], "requestParameters": {"Tag.1.Key": ["bakery:bake"]}},
    }
)


def _expected_outcome(case_file: Path) -> str:
    if case_file.stem.endswith("_EXC"):
        return "invalid"
    if case_file.stem.endswith("_NEG"):
        return "no match"
    return "match"


def test_conformance_suite_is_present() -> None:
    outcomes = [_expected_outcome(case_file) for case_file in CASE_FILES]
    assert len(CASE_FILES) >= 60
    assert {"match", "no match", "invalid"} <= set(outcomes)


@pytest.mark.parametrize("case_file", CASE_FILES, ids=lambda case_file: case_file.stem)
def test_conformance_case(case_file: Path) -> None:
    case = json.loads(case_file.read_text(encoding="utf-8"))
    assert set(case) == {"event", "pattern"}, "a case file holds exactly an event and a pattern"
    outcome = _expected_outcome(case_file)

    if outcome == "invalid":
        with pytest.raises(InvalidEventPattern):
            EventPattern.compile(case["pattern"])
        return
    assert EventPattern.compile(case["pattern"]).matches(case["event"]) is (outcome == "match")


def test_pattern_and_event_given_as_json_text() -> None:
    rule = EventPattern.compile(TAG_RULE_TEXT)

    assert rule.matches(json.dumps(TAG_EVENT)) is True
    assert matches(TAG_RULE_TEXT, json.dumps(TAG_EVENT)) is True
    assert matches(json.loads(TAG_RULE_TEXT), TAG_EVENT) is True


def test_compiled_pattern_is_reused_without_revalidation(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = EventPattern.compile(TAG_RULE_TEXT)

    def fail_if_compiled_again(*_args: object) -> None:
        raise AssertionError("matching must not compile the pattern again")

    monkeypatch.setattr(patterns, "_compile_object", fail_if_compiled_again)
    untagged = json.loads(json.dumps(TAG_EVENT))
    untagged["data"]["eventName"] = "UntagResources"

    assert rule.matches(TAG_EVENT) is True
    assert rule.matches(untagged) is False
    assert rule.matches(TAG_EVENT) is True


def test_compiled_pattern_is_immutable_and_detached_from_its_source() -> None:
    source = {"source": ["acs.ecs"], "data": {"eventName": ["TagResources"]}}
    rule = EventPattern.compile(source)

    source["source"].append("bakery")
    source["data"]["eventName"] = ["Anything"]

    assert rule.matches(TAG_EVENT) is True
    same_rule = EventPattern.compile('{"source": ["acs.ecs"], "data": {"eventName": ["TagResources"]}}')
    assert rule == same_rule
    assert hash(rule) == hash(same_rule)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.root = rule.root  # type: ignore[misc]


def test_invalid_pattern_message_names_key_path_and_operator() -> None:
    with pytest.raises(InvalidEventPattern) as raised:
        EventPattern.compile({"data": {"requestParameters": {"Tag.1.Key": [{"wildcard": "bakery:*"}]}}})

    message = str(raised.value)
    assert message.startswith("Event pattern is not valid. Reason: ")
    assert "data.requestParameters.Tag.1.Key" in message
    assert '"wildcard"' in message
    assert raised.value.key_path == "data.requestParameters.Tag.1.Key"
    assert raised.value.operator == "wildcard"
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("pattern", "key_path", "operator", "detail"),
    [
        ({"data": {"c-count": [{"numeric": [">", 0, "<=", 5, "<", 9]}]}}, "data.c-count", "numeric", "two"),
        ({"data": {"ip": [{"cidr": "10.0.0.0/33"}]}}, "data.ip", "cidr", "IPv4"),
        ({"state": [{"anything-but": {"suffix": ".png"}}]}, "state", "anything-but/suffix", "Amazon"),
        ({"state": [{"exists": 1}]}, "state", "exists", "true or false"),
        ({"state": [{"regex": ".*"}]}, "state", "regex", "unknown operator"),
    ],
)
def test_invalid_operator_messages(pattern: dict[str, Any], key_path: str, operator: str, detail: str) -> None:
    with pytest.raises(InvalidEventPattern) as raised:
        EventPattern.compile(pattern)

    assert raised.value.key_path == key_path
    assert raised.value.operator == operator
    assert f'key "{key_path}", operator "{operator}"' in str(raised.value)
    assert detail in str(raised.value)


def test_structural_errors_name_the_key_path() -> None:
    with pytest.raises(InvalidEventPattern, match=r'key "data\.eventName": .*bare string'):
        EventPattern.compile({"data": {"eventName": "TagResources"}})
    with pytest.raises(InvalidEventPattern, match=r"pattern root: expected a JSON object, got array"):
        EventPattern.compile('[{"source": ["acs.ecs"]}]')


def test_pattern_text_that_is_not_json_is_invalid() -> None:
    with pytest.raises(InvalidEventPattern, match=r"^Event pattern is not valid\. Reason: .*not valid JSON"):
        EventPattern.compile('{"source": ["acs.ecs"],}')


def test_event_must_be_a_json_object() -> None:
    rule = EventPattern.compile(TAG_RULE_TEXT)

    with pytest.raises(ValueError, match="event must be a JSON object"):
        rule.matches("[1, 2, 3]")
