"""bakery.handler.fc_handler: the one error policy at the FC edge, exercised with a fake route (no pipeline logic).

- InvalidEvent → dropped (logged at WARNING, never retried); RetryableError → re-raised for FC to retry;
- BakeFailure → reported as failed; malformed bytes never reach the route;
- every JSON log line carries the FC request id and what the invocation is about.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bakery.clients import reset_clients
from bakery.config import Settings
from bakery.errors import BakeFailure, CloudError, ConfigError, InvalidEvent, RetryableError
from bakery.events import CloudEvent, TimerEvent
from bakery.handler import fc_handler
from bakery.pipeline import Pipeline

EVENTS = Path(__file__).resolve().parents[2] / "events"
CONTEXT = SimpleNamespace(request_id="req-7f3a")


def event_bytes(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


class FakeRoute:
    """Records what it was called with, then returns `outcome` or raises `error`."""

    def __init__(self, outcome: dict[str, Any] | None = None, error: BaseException | None = None) -> None:
        self.outcome = outcome
        self.error = error
        self.calls: list[tuple[Pipeline, CloudEvent | TimerEvent]] = []

    def __call__(self, pipeline: Pipeline, event: CloudEvent | TimerEvent) -> dict[str, Any] | None:
        self.calls.append((pipeline, event))
        if self.error is not None:
            raise self.error
        return self.outcome


@pytest.fixture(autouse=True)
def fc_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What FC sets on an instance, and nothing else of Bakery's (so the test's own env cannot leak in)."""
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FC_REGION", "cn-hangzhou")
    monkeypatch.setenv("FC_ACCOUNT_ID", "1234567890123456")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "STS.fake")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "fake-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "fake-token")
    reset_clients()
    yield
    reset_clients()


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


# -- success ---------------------------------------------------------------------------------------------


def test_a_routed_event_reaches_the_route_parsed_with_a_pipeline_from_the_environment() -> None:
    # Given a handler over a fake route
    route = FakeRoute()
    handler = fc_handler("check", route)

    # When FC invokes it with a sample's bytes
    handler(event_bytes("bakery-image-creationstarted.json"), CONTEXT)

    # Then the route got the parsed CloudEvent and a Pipeline configured from FC's env
    ((pipeline, event),) = route.calls
    assert isinstance(pipeline, Pipeline)
    assert pipeline.settings == Settings.from_env()
    assert event == CloudEvent.parse(event_bytes("bakery-image-creationstarted.json"))


def test_the_route_outcome_is_returned_as_json_with_status_ok() -> None:
    # Given a route that reports what it did
    handler = fc_handler("check", FakeRoute(outcome={"swept": 3}))

    # When it handles a timer invocation / Then the handler returns that outcome as JSON, status ok
    assert json.loads(handler(event_bytes("timer-sweep.json"), CONTEXT)) == {"status": "ok", "swept": 3}


def test_a_route_with_nothing_to_report_returns_status_ok() -> None:
    # Given a route that returns None
    handler = fc_handler("bake", FakeRoute())

    # When it handles an event / Then the handler returns just the status
    assert json.loads(handler(event_bytes("ecs-actiontrail-tagresources.json"), CONTEXT)) == {"status": "ok"}


def test_a_timer_invocation_reaches_the_route_as_a_timer_event() -> None:
    # Given a handler over a fake route
    route = FakeRoute()

    # When FC's timer invokes it
    fc_handler("check", route)(event_bytes("timer-sweep.json"), CONTEXT)

    # Then the route got a TimerEvent
    assert route.calls[0][1] == TimerEvent("sweep", "2026-01-05T09:05:00Z", '{"sweep": true}')


# -- InvalidEvent: dropped ----------------------------------------------------------------------------------


def test_an_event_the_route_refuses_is_dropped_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a route that refuses the event as not its own
    handler = fc_handler("repair", FakeRoute(error=InvalidEvent("repair does not handle bakery bakery:Image:Ready")))

    # When it is invoked
    result = json.loads(handler(event_bytes("bakery-image-ready.json"), CONTEXT))

    # Then the handler returns "dropped" with the reason instead of raising (a retry cannot fix it)
    assert result == {"status": "dropped", "reason": "repair does not handle bakery bakery:Image:Ready"}


def test_an_event_the_route_refuses_is_logged_as_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a route that refuses the event
    handler = fc_handler("repair", FakeRoute(error=InvalidEvent("repair does not handle bakery bakery:Image:Ready")))

    # When it is invoked
    handler(event_bytes("bakery-image-ready.json"), CONTEXT)

    # Then one WARNING line says it was dropped and why
    (line,) = log_lines(capsys)
    assert line["level"] == "WARNING"
    assert line["message"] == "dropped an event this function does not handle"
    assert line["reason"] == "repair does not handle bakery bakery:Image:Ready"


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"source": "acs.ecs"}', b'"text"'])
def test_malformed_bytes_are_dropped_before_the_route_is_called(payload: bytes) -> None:
    # Given a handler over a fake route
    route = FakeRoute()

    # When FC invokes it with bytes that are no event
    result = json.loads(fc_handler("bake", route)(payload, CONTEXT))

    # Then it is dropped and the route never ran
    assert result["status"] == "dropped"
    assert route.calls == []


def test_malformed_bytes_are_logged_as_a_warning_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a handler / When FC invokes it with bytes that are not JSON
    result = json.loads(fc_handler("bake", FakeRoute())(b"\x00not json", CONTEXT))

    # Then the reason is returned and logged once at WARNING
    assert result == {"status": "dropped", "reason": "the invocation payload is not JSON"}
    (line,) = log_lines(capsys)
    assert (line["level"], line["message"], line["reason"]) == (
        "WARNING",
        "dropped an invalid event",
        "the invocation payload is not JSON",
    )


# -- RetryableError: re-raised --------------------------------------------------------------------------------


def test_a_retryable_error_is_re_raised_for_fc_to_retry() -> None:
    # Given a route that hits throttling
    error = RetryableError("DescribeImages was throttled", code="Throttling", retry_after_ms=1000)
    handler = fc_handler("check", FakeRoute(error=error))

    # When it is invoked / Then the very same error escapes the handler (FC's async retry comes back)
    with pytest.raises(RetryableError) as info:
        handler(event_bytes("bakery-image-creationstarted.json"), CONTEXT)
    assert info.value is error


def test_a_retryable_error_is_logged_as_a_warning_with_its_code(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a route that hits throttling
    handler = fc_handler("check", FakeRoute(error=RetryableError("DescribeImages was throttled", code="Throttling")))

    # When it is invoked
    with pytest.raises(RetryableError):
        handler(event_bytes("bakery-image-creationstarted.json"), CONTEXT)

    # Then one WARNING line says it will be retried, with the reason and code
    (line,) = log_lines(capsys)
    assert (line["level"], line["message"], line["reason"], line["code"]) == (
        "WARNING",
        "will be retried",
        "DescribeImages was throttled",
        "Throttling",
    )


def test_throttling_in_a_swept_function_is_deferred_to_the_sweep_not_retried(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a function the sweep resumes, whose route hits throttling
    handler = fc_handler(
        "check", FakeRoute(error=RetryableError("CreateImage was throttled", code="Throttling")), swept=True
    )

    # When it is invoked
    result = json.loads(handler(event_bytes("bakery-image-creationstarted.json"), CONTEXT))

    # Then it returns "deferred" (no FC retry, no dead letter) and says so in one WARNING line
    assert result == {"status": "deferred", "reason": "Throttling"}
    (line,) = log_lines(capsys)
    assert (line["level"], line["code"]) == ("WARNING", "Throttling")
    assert "sweep" in line["message"]


def test_a_server_error_in_a_swept_function_is_still_re_raised_for_fc_to_retry() -> None:
    # Given a swept function whose route hits a 5xx (not flow control)
    error = RetryableError("CreateImage: ServiceUnavailable", code="ServiceUnavailable")
    handler = fc_handler("bake", FakeRoute(error=error), swept=True)

    # When it is invoked / Then FC's async retry gets it
    with pytest.raises(RetryableError) as info:
        handler(event_bytes("bakery-image-creationstarted.json"), CONTEXT)
    assert info.value is error


# -- BakeFailure: failed --------------------------------------------------------------------------------------


def test_a_bake_failure_returns_failed_with_its_reason() -> None:
    # Given a route whose bake cannot succeed
    failure = BakeFailure("local-disks", "Instance i-db1 has local disks; bake an instance with cloud disks.")
    handler = fc_handler("bake", FakeRoute(error=failure))

    # When it is invoked / Then the handler reports the failure's reason code instead of raising (no retry)
    result = json.loads(handler(event_bytes("ecs-actiontrail-tagresources.json"), CONTEXT))
    assert result == {"status": "failed", "reason": "local-disks"}


def test_a_bake_failure_is_logged_as_an_error_with_reason_and_detail(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a route whose bake cannot succeed
    failure = BakeFailure("local-disks", "Instance i-db1 has local disks; bake an instance with cloud disks.")

    # When it is invoked
    fc_handler("bake", FakeRoute(error=failure))(event_bytes("ecs-actiontrail-tagresources.json"), CONTEXT)

    # Then one ERROR line names the reason and the message a person can act on
    (line,) = log_lines(capsys)
    assert (line["level"], line["message"], line["reason"], line["detail"]) == (
        "ERROR",
        "bake failed",
        "local-disks",
        "Instance i-db1 has local disks; bake an instance with cloud disks.",
    )


# -- anything else -----------------------------------------------------------------------------------------


def test_any_other_error_escapes_so_fc_retries_then_dead_letters() -> None:
    # Given a route that hits a permanent cloud error the step did not handle
    error = CloudError(
        "InvalidImageId.NotFound", "The specified image does not exist.", status=404, action="DescribeImages"
    )
    handler = fc_handler("check", FakeRoute(error=error))

    # When it is invoked / Then the error is not swallowed
    with pytest.raises(CloudError) as info:
        handler(event_bytes("bakery-image-creationstarted.json"), CONTEXT)
    assert info.value is error


def test_a_configuration_error_fails_the_invocation_before_the_route_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a function deployed with a bad policy value
    monkeypatch.setenv("BAKERY_RETIRE_POLICY", "keep")
    route = FakeRoute()

    # When it is invoked / Then the invocation fails loudly with the config message, and the route never ran
    with pytest.raises(ConfigError, match=r"^BAKERY_RETIRE_POLICY must be one of delete, deprecate, got 'keep'\.$"):
        fc_handler("bake", route)(event_bytes("ecs-actiontrail-tagresources.json"), CONTEXT)
    assert route.calls == []


# -- structured logs ---------------------------------------------------------------------------------------


def test_log_lines_carry_the_request_id_function_and_event(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a route that refuses the event (so the handler logs one line)
    handler = fc_handler("repair", FakeRoute(error=InvalidEvent("not mine")))

    # When FC invokes it with request id req-7f3a
    handler(event_bytes("bakery-image-ready.json"), CONTEXT)

    # Then the JSON line carries the request id, the function, and the event's id and type
    (line,) = log_lines(capsys)
    assert {k: line[k] for k in ("request_id", "function", "event_id", "event_type")} == {
        "request_id": "req-7f3a",
        "function": "repair",
        "event_id": "bk-bakery-image-ready",
        "event_type": "bakery:Image:Ready",
    }


def test_log_lines_of_a_dropped_payload_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a handler / When FC invokes it with bytes that are no event
    fc_handler("bake", FakeRoute())(b"garbage", SimpleNamespace(request_id="req-drop"))

    # Then even the drop line carries the request id and function (there is no event id to bind)
    (line,) = log_lines(capsys)
    assert (line["request_id"], line["function"]) == ("req-drop", "bake")
    assert "event_id" not in line


def test_log_lines_of_a_timer_invocation_carry_the_timer_name(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a route that refuses timers / When the sweep timer invokes it
    fc_handler("bake", FakeRoute(error=InvalidEvent("bake has no timer trigger")))(
        event_bytes("timer-sweep.json"), CONTEXT
    )

    # Then the line names the timer instead of an event
    (line,) = log_lines(capsys)
    assert (line["timer"], line["request_id"]) == ("sweep", "req-7f3a")


def test_lines_the_route_logs_are_bound_to_the_invocation(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a route that logs its own decision
    from bakery.log import get_logger

    def route(pipeline: Pipeline, event: CloudEvent | TimerEvent) -> None:
        get_logger("bakery.pipeline").info("image created", image_id="m-1")

    # When FC invokes it
    fc_handler("check", route)(event_bytes("bakery-image-creationstarted.json"), CONTEXT)

    # Then the route's line carries the request id and event id without the route passing them
    (line,) = log_lines(capsys)
    assert (line["message"], line["image_id"], line["request_id"], line["event_id"]) == (
        "image created",
        "m-1",
        "req-7f3a",
        "bk-bakery-image-creatio",
    )


def test_a_context_without_request_id_logs_no_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a context object with no request_id (a bare local invocation)
    fc_handler("bake", FakeRoute())(b"garbage", object())

    # Then the line simply has no request_id field
    (line,) = log_lines(capsys)
    assert "request_id" not in line


def test_bakery_log_level_silences_lower_levels(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given BAKERY_LOG_LEVEL=ERROR
    monkeypatch.setenv("BAKERY_LOG_LEVEL", "ERROR")

    # When an event is dropped (a WARNING)
    fc_handler("bake", FakeRoute())(b"garbage", CONTEXT)

    # Then nothing is printed
    assert log_lines(capsys) == []
