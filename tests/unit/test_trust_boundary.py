"""The trust boundary at the FC edge (README "Trust boundary: who can start a bake"): a CloudEvent is routed only
when EventBridge stamped it with this function's own account and region; timers carry no stamps and pass.

Exercised through bakery.handler.fc_handler with a fake route, so "dropped" provably means "never routed"."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bakery.clients import reset_clients
from bakery.config import Settings
from bakery.errors import ConfigError
from bakery.events import CloudEvent, TimerEvent
from bakery.handler import fc_handler
from bakery.pipeline import Pipeline

EVENTS = Path(__file__).resolve().parents[2] / "events"
ACCOUNT, REGION = "1234567890123456", "cn-hangzhou"  # the samples' stamps
CONTEXT = SimpleNamespace(request_id="req-trust")


class Route:
    def __init__(self) -> None:
        self.calls: list[CloudEvent | TimerEvent] = []

    def __call__(self, pipeline: Pipeline, event: CloudEvent | TimerEvent) -> None:
        self.calls.append(event)


@pytest.fixture(autouse=True)
def fc_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FC_REGION", REGION)
    monkeypatch.setenv("FC_ACCOUNT_ID", ACCOUNT)
    reset_clients()
    yield
    reset_clients()


def sample(name: str, **envelope: Any) -> bytes:
    body = json.loads((EVENTS / name).read_text())
    for key, value in envelope.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body).encode()


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_an_event_of_the_functions_own_account_and_region_is_routed() -> None:
    route = Route()
    result = json.loads(fc_handler("check", route)(sample("bakery-image-creationstarted.json"), CONTEXT))
    assert result == {"status": "ok"} and len(route.calls) == 1


@pytest.mark.parametrize(
    ("envelope", "says"),
    [
        ({"aliyunaccountid": "9999888877776666"}, "from account '9999888877776666'"),
        ({"aliyunregionid": "cn-shanghai"}, "from region 'cn-shanghai'"),
        ({"aliyunaccountid": ""}, "from account ''"),
        ({"aliyunregionid": "CN-HANGZHOU"}, "from region 'CN-HANGZHOU'"),
        ({"aliyunaccountid": None}, "has no aliyunaccountid"),
        ({"aliyunregionid": None}, "has no aliyunregionid"),
        ({"aliyunaccountid": None, "aliyunregionid": None}, "has no aliyunaccountid or aliyunregionid"),
    ],
    ids=["other-account", "other-region", "empty-account", "region-case", "no-account", "no-region", "neither"],
)
def test_an_event_from_elsewhere_or_without_the_stamps_is_dropped_with_a_log_line_never_routed(
    envelope: dict[str, Any], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a well-formed Bake:Requested, stamped with another account / region, or not stamped at all
    route = Route()

    # When it reaches the bake function
    result = json.loads(fc_handler("bake", route)(sample("bakery-bake-requested.json", **envelope), CONTEXT))

    # Then it is dropped before routing, with one WARNING line that says why
    assert result["status"] == "dropped" and says in result["reason"]
    assert route.calls == []
    (line,) = lines(capsys)
    assert (line["level"], line["message"]) == ("WARNING", "dropped an event from outside this account and region")
    assert line["event_type"] == "bakery:Bake:Requested"


def test_a_timer_invocation_carries_no_stamps_and_is_routed() -> None:
    route = Route()
    fc_handler("check", route)((EVENTS / "timer-sweep.json").read_bytes(), CONTEXT)
    assert route.calls == [TimerEvent("sweep", "2026-01-05T09:05:00Z", '{"sweep": true}')]


def test_the_account_comes_from_the_context_when_fc_account_id_is_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given FC_ACCOUNT_ID unset, but the context's account_id (python3.10's context has one)
    monkeypatch.delenv("FC_ACCOUNT_ID")
    route = Route()
    context = SimpleNamespace(request_id="r", account_id="9999888877776666")

    # When an event of the samples' account arrives / Then it is foreign to this function
    result = json.loads(fc_handler("check", route)(sample("bakery-image-creationstarted.json"), context))
    assert result["status"] == "dropped" and route.calls == []
    # And one of the context's account is routed
    own = sample("bakery-image-creationstarted.json", aliyunaccountid="9999888877776666")
    assert json.loads(fc_handler("check", route)(own, context))["status"] == "ok"


def test_when_fc_does_not_say_the_account_a_cloud_event_fails_loudly_with_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given neither FC_ACCOUNT_ID nor context.account_id: no event can be checked
    monkeypatch.delenv("FC_ACCOUNT_ID")
    route = Route()

    # When a CloudEvent arrives / Then the invocation fails with ConfigError (FC retries, then dead-letters it:
    # nothing is lost, nothing foreign is acted on) and the route never ran
    with pytest.raises(ConfigError, match=r"^FC_ACCOUNT_ID is not set"):
        fc_handler("check", route)(sample("bakery-image-creationstarted.json"), CONTEXT)
    assert route.calls == []


def test_when_fc_does_not_say_the_account_the_sweep_timer_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FC_ACCOUNT_ID")
    route = Route()
    fc_handler("check", route)((EVENTS / "timer-sweep.json").read_bytes(), CONTEXT)
    assert len(route.calls) == 1


@pytest.mark.parametrize(
    ("function", "name", "source"),
    [("bake", "bakery-bake-requested.json", "acs.ecs"), ("bake", "ecs-actiontrail-tagresources.json", "bakery"),
     ("check", "bakery-image-creationstarted.json", "evil"), ("repair", "oos-execution-statuschange.failed.json", "")],
)  # fmt: skip
def test_a_handled_type_under_another_source_is_dropped(function: str, name: str, source: str) -> None:
    from bakery import entrypoints

    # Given a sample whose source is not the one its trigger / rule matches / When the real route gets it
    result = json.loads(getattr(entrypoints, function)(sample(name, source=source), CONTEXT))

    # Then it is dropped (an empty source is not even a CloudEvent)
    assert result["status"] == "dropped"


def test_a_drop_reason_with_odd_text_still_logs_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a foreign event whose account is control characters and right-to-left marks
    odd = sample("bakery-image-ready.json", aliyunaccountid="\u202e\x00\x1b[31m")
    fc_handler("lifecycle", Route())(odd, CONTEXT)
    (line,) = lines(capsys)
    assert "\\x00" in line["reason"]  # shown escaped (repr), never raw
