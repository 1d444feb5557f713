"""The local FC runtime end to end: real SDK calls against a local cloud, events routed by the template,
fixture handlers invoked in-process with FC's event bytes, context and environment, on the virtual clock."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_eventbridge20200401 import models as eb_models

from bakery_tools.deploy.buses import ensure_buses
from localcloud import LocalCloud, Scenario
from localcloud.fc import LocalRuntime, load_template
from localcloud.testing import CloudEnv, running

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
FUNCTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "functions"
ACCOUNT = "1112223334445556"
SCENARIO: dict[str, Any] = {
    "seed": 11,
    "region": "cn-hangzhou",
    "account_id": ACCOUNT,
    "instances": [{"id": "i-src", "disks": [{"type": "system", "size": 20}]}],
}
START = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc).timestamp()  # the scenario clock's default start


@dataclass
class Rig:
    cloud: LocalCloud
    env: CloudEnv
    runtime: LocalRuntime
    record_file: Path

    def records(self) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines()]

    def tag_instance(self, key: str = "bakery", value: str = "bake") -> None:
        self.env.ecs.tag_resources(
            ecs_models.TagResourcesRequest(
                region_id=self.env.region,
                resource_type="instance",
                resource_id=["i-src"],
                tag=[ecs_models.TagResourcesRequestTag(key=key, value=value)],
            )
        )

    def put(self, event_type: str, event_id: str = "evt-1", bus: str = "fx-bus", source: str = "fixture") -> None:
        entry = eb_models.PutEventsRequestEventList(
            id=event_id, source=source, type=event_type, spec_version="1.0", data=json.dumps({"n": 1})
        )
        self.env.eventbridge.put_events(eb_models.PutEventsRequest(event_bus_name=bus, event_list=[entry]))

    def deliveries_to(self, function: str) -> list[Any]:
        return [d for d in self.runtime.deliveries if d.function == function]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """rig(template, transport=..., scenario=..., **parameters) → a started runtime over a fresh local cloud."""
    with ExitStack() as stack:

        def make(template: str, *, transport: str = "inprocess", scenario: dict[str, Any] | None = None,
                 **parameters: str) -> Rig:  # fmt: skip
            cloud = LocalCloud(Scenario.from_mapping(scenario or SCENARIO))
            stack.callback(cloud.close)
            env = stack.enter_context(running(cloud, transport))
            record_file = tmp_path / f"records-{template}.jsonl"
            loaded = load_template(
                TEMPLATES / template,
                {"RecordFile": str(record_file), **parameters},
                region=cloud.region,
                account_id=cloud.account_id,
            )
            ensure_buses(env.eventbridge, loaded.buses, description="fixture")  # what a deploy does first
            runtime = LocalRuntime(cloud, loaded, endpoint=env.endpoint).start()
            stack.callback(runtime.stop)
            return Rig(cloud, env, runtime, record_file)

        yield make


# -- routing ---------------------------------------------------------------------------------------


def test_tagging_an_instance_through_the_sdk_reaches_the_default_bus_trigger(rig: Callable[..., Rig]) -> None:
    # Given the routing fixture: a recorder triggered by ECS TagResources on instances
    r = rig("runtime_routes.yml")

    # When an instance is tagged through the real ECS SDK, and the runtime runs
    r.tag_instance()
    result = r.runtime.run_until_idle()

    # Then the recorder got the ActionTrail event from the default bus, once
    (record,) = r.records()
    event = record["event"]
    assert (event["source"], event["type"], event["aliyuneventbusname"]) == (
        "acs.ecs",
        "ecs:ActionTrail:ApiCall",
        "default",
    )
    assert event["data"]["eventName"] == "TagResources"
    assert event["data"]["requestParameters"]["ResourceType"] == "instance"
    (delivery,) = r.runtime.deliveries
    assert (delivery.function, delivery.outcome, delivery.event_id) == ("fx-recorder", "ok", event["id"])
    assert result["stopped"] == "idle"


def test_a_put_event_on_a_custom_bus_reaches_the_rule_target(rig: Callable[..., Rig]) -> None:
    # Given the routing fixture, whose rule on fx-bus targets the recorder
    r = rig("runtime_routes.yml")

    # When an event is put on fx-bus through the EventBridge SDK
    r.put("fixture:Thing:Happened", event_id="thing-1")
    r.runtime.run_until_idle()

    # Then the recorder got it as a CloudEvent from that bus
    (record,) = r.records()
    assert record["event"]["id"] == "thing-1"
    assert record["event"]["aliyuneventbusname"] == "fx-bus"
    assert record["event"]["data"] == {"n": 1}


def test_events_that_match_no_route_are_not_delivered(rig: Callable[..., Rig]) -> None:
    # Given the routing fixture
    r = rig("runtime_routes.yml")

    # When events arrive that no trigger or rule matches: another type on fx-bus, an image tagged
    r.put("fixture:Other:Thing")
    image_id = r.env.ecs.create_image(
        ecs_models.CreateImageRequest(region_id=r.env.region, instance_id="i-src")
    ).body.image_id
    r.env.ecs.tag_resources(
        ecs_models.TagResourcesRequest(region_id=r.env.region, resource_type="image", resource_id=[image_id],
                                       tag=[ecs_models.TagResourcesRequestTag(key="k", value="v")])
    )  # fmt: skip
    r.runtime.run_until_idle()

    # Then nothing was invoked
    assert r.runtime.deliveries == []
    assert r.records() == []


def test_events_published_before_start_are_not_delivered(rig: Callable[..., Rig]) -> None:
    # Given an instance tagged before the runtime starts
    r = rig("runtime_routes.yml")
    r.runtime.stop()
    r.tag_instance()
    late = LocalRuntime(r.cloud, r.runtime.template, endpoint=r.env.endpoint).start()

    # When the new runtime runs
    late.run_until_idle()

    # Then the old event is not delivered; a new one is
    assert late.deliveries == []
    r.tag_instance(value="again")
    late.run_until_idle()
    assert [d.function for d in late.deliveries] == ["fx-recorder"]
    late.stop()


def test_a_duplicated_event_is_delivered_twice(rig: Callable[..., Rig]) -> None:
    # Given a cloud that duplicates every fixture:Thing:Happened event (EventBridge is at-least-once)
    r = rig("runtime_routes.yml", scenario={**SCENARIO, "faults": [
        {"events": "duplicate", "probability": 1.0, "type": "fixture:Thing:Happened"}]})  # fmt: skip

    # When one event is put
    r.put("fixture:Thing:Happened", event_id="dup-1")
    r.runtime.run_until_idle()

    # Then the function sees it twice: deduplication is the function's job
    assert [rec["event"]["id"] for rec in r.records()] == ["dup-1", "dup-1"]


@pytest.mark.parametrize("transport", ["inprocess", "http"])
def test_a_handler_calls_the_cloud_through_the_sdk_and_its_events_are_routed_on(
    rig: Callable[..., Rig], transport: str
) -> None:
    # Given a relay that answers instance tagging with PutEvents (SDK, BAKERY_CLOUD_ENDPOINT), and a
    # recorder subscribed to what it puts; over HTTP the call would deadlock if the runtime held the lock
    r = rig("runtime_relay.yml", transport=transport)

    # When an instance is tagged
    r.tag_instance()
    r.runtime.run_until_idle()

    # Then the relay ran, and its event reached the recorder in the same run
    assert [(d.function, d.outcome) for d in r.runtime.deliveries] == [("fx-relay", "ok"), ("fx-recorder", "ok")]
    (record,) = r.records()
    assert record["event"]["type"] == "fixture:Relay:Forwarded"
    assert record["event"]["id"] == f"relayed-{r.runtime.deliveries[0].event_id}"


# -- what a handler gets ---------------------------------------------------------------------------


def test_the_handler_gets_bytes_and_an_fc_python310_context(rig: Callable[..., Rig]) -> None:
    # Given the routing fixture (fx-recorder: 256 MB, 30 s)
    r = rig("runtime_routes.yml")

    # When it is invoked by an event
    r.put("fixture:Thing:Happened")
    r.runtime.run_until_idle()

    # Then the event came as bytes of a JSON object
    (record,) = r.records()
    assert (record["event_bytes_type"], record["event_type"]) == ("bytes", "dict")
    # And the context has the python3.10 shape, with this invocation's request id
    context = record["context"]
    (delivery,) = r.runtime.deliveries
    assert context["request_id"] == delivery.request_id
    assert context["function"] == {"name": "fx-recorder", "handler": "index.handler", "memory": 256, "timeout": 30}
    assert context["service"] == {"name": "", "log_project": "", "log_store": "", "qualifier": "LATEST",
                                  "version_id": ""}  # fmt: skip
    assert (context["region"], context["account_id"]) == ("cn-hangzhou", ACCOUNT)
    assert context["tracing"] == {"span_context": None, "jaeger_endpoint": "", "span_baggages": {}}
    assert set(context["credentials"]) == {"access_key_id", "access_key_secret", "security_token"}
    assert all(context["credentials"].values())


def test_the_handler_environment_has_fc_template_and_endpoint_variables_then_is_restored(
    rig: Callable[..., Rig],
) -> None:
    # Given the routing fixture
    r = rig("runtime_routes.yml")
    before = dict(os.environ)

    # When the recorder runs
    r.put("fixture:Thing:Happened")
    r.runtime.run_until_idle()

    # Then it saw FC's variables, the template's, the role credentials and the local endpoint
    env = r.records()[0]["env"]
    credentials = r.records()[0]["context"]["credentials"]
    assert env["FC_FUNCTION_NAME"] == "fx-recorder"
    assert env["FC_FUNCTION_HANDLER"] == "index.handler"
    assert env["FC_FUNCTION_MEMORY_SIZE"] == "256"
    assert (env["FC_REGION"], env["FC_ACCOUNT_ID"]) == ("cn-hangzhou", ACCOUNT)
    assert env["FC_FUNC_CODE_PATH"] == str(FUNCTIONS / "recorder")
    assert env["FC_INSTANCE_ID"]
    assert env["ALIBABA_CLOUD_ACCESS_KEY_ID"] == credentials["access_key_id"]
    assert env["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] == credentials["access_key_secret"]
    assert env["ALIBABA_CLOUD_SECURITY_TOKEN"] == credentials["security_token"]
    assert env["RECORDER_LABEL"] == f"bakery-cn-hangzhou-{ACCOUNT}"
    assert env["BAKERY_CLOUD_ENDPOINT"] == r.env.endpoint
    # And the test process's environment is as it was
    assert dict(os.environ) == before


def test_a_warm_instance_keeps_module_state_between_calls(rig: Callable[..., Rig]) -> None:
    # Given the routing fixture
    r = rig("runtime_routes.yml")

    # When the recorder is invoked twice
    r.put("fixture:Thing:Happened", event_id="a")
    r.put("fixture:Thing:Happened", event_id="b")
    r.runtime.run_until_idle()

    # Then its module was imported once: the second call sees the first call's count, same instance
    first, second = r.records()
    assert (first["calls_in_instance"], second["calls_in_instance"]) == (1, 2)
    assert first["env"]["FC_INSTANCE_ID"] == second["env"]["FC_INSTANCE_ID"]
    assert first["context"]["request_id"] != second["context"]["request_id"]


def test_logs_and_prints_are_captured_per_delivery(rig: Callable[..., Rig]) -> None:
    # Given the routing fixture, whose recorder logs through `logging` and prints
    r = rig("runtime_routes.yml")

    # When it is invoked twice
    r.put("fixture:Thing:Happened", event_id="a")
    r.tag_instance()
    r.runtime.run_until_idle()

    # Then each delivery holds its own lines, in FC's `<time> <request id> [LEVEL] message` form
    thing, tag = r.runtime.deliveries
    assert thing.logs == [
        f"2026-01-05T09:00:00.000Z {thing.request_id} [INFO] recorded fixture:Thing:Happened",
        "printed by the recorder",
    ]
    assert tag.logs[0].endswith(f"{tag.request_id} [INFO] recorded ecs:ActionTrail:ApiCall")
    assert json.loads(thing.result) == {"recorded": 1}


# -- timers ----------------------------------------------------------------------------------------


def test_timers_fire_at_their_simulated_times(rig: Callable[..., Rig]) -> None:
    # Given timers: @every 5m (sweep), on the hour (hourly), and a disabled @every 1m
    r = rig("runtime_timers.yml")

    # When an hour of virtual time passes
    result = r.runtime.run_until(START + 3600)

    # Then the sweep fired 12 times, at 09:05 ... 10:00, the hourly once at 10:00, the disabled never
    events = [rec["event"] for rec in r.records()]
    sweeps = [e for e in events if e["triggerName"] == "sweep"]
    assert [e["triggerTime"] for e in sweeps] == [
        f"2026-01-05T{9 + m // 60:02d}:{m % 60:02d}:00Z" for m in range(5, 61, 5)
    ]
    assert {e["payload"] for e in sweeps} == {'{"sweep": true}'}
    assert [(e["triggerTime"], e["payload"]) for e in events if e["triggerName"] == "hourly"] == [
        ("2026-01-05T10:00:00Z", "hourly")
    ]
    assert not [e for e in events if e["triggerName"] == "disabled"]
    assert (result["stopped"], result["simulated_seconds"], result["now"]) == ("reached", 3600, "2026-01-05T10:00:00Z")
    # And every timer delivery is recorded as such at its simulated time
    assert {(d.event_type, d.simulated_time) for d in r.runtime.deliveries if d.source == "hourly"} == {
        ("timer", "2026-01-05T10:00:00Z")
    }


def test_run_until_idle_ends_with_periodic_timers_once_the_cloud_is_quiet(rig: Callable[..., Rig]) -> None:
    # Given timers that never end, and a 100 GiB image being created (~1000 s of emulator timers)
    big = {**SCENARIO, "instances": [{"id": "i-src", "disks": [{"type": "system", "size": 100}]}]}
    r = rig("runtime_timers.yml", scenario=big)
    image_id = r.env.ecs.create_image(
        ecs_models.CreateImageRequest(region_id=r.env.region, instance_id="i-src")
    ).body.image_id
    assert r.cloud.clock.pending() > 2

    # When the runtime runs until idle
    result = r.runtime.run_until_idle()

    # Then it went on through the sweeps while the image was being made, and stopped at the first
    # sweep after it: only the runtime's own timers are left, and that fire published nothing new
    assert result["stopped"] == "idle"
    assert result["simulated_seconds"] == 1200
    assert r.cloud.clock.pending() == 2  # sweep and hourly, re-armed
    images = r.env.ecs.describe_images(
        ecs_models.DescribeImagesRequest(region_id=r.env.region, image_id=image_id)
    ).body.images.image
    assert [i.status for i in images] == ["Available"]
    assert [d.simulated_time[11:16] for d in r.runtime.deliveries] == ["09:05", "09:10", "09:15", "09:20"]


def test_run_until_idle_with_nothing_to_do_fires_each_timer_at_most_once_more(rig: Callable[..., Rig]) -> None:
    # Given timers only
    r = rig("runtime_timers.yml")
    # When run until idle from a quiet cloud
    result = r.runtime.run_until_idle()
    # Then one sweep fired, nothing came of it, and the run stopped 5 minutes in
    assert (result["stopped"], result["simulated_seconds"], result["deliveries"]) == ("idle", 300, 1)


def test_run_until_idle_ends_when_a_timer_handler_keeps_failing(rig: Callable[..., Rig]) -> None:
    # Given a timer whose handler always fails (2 retries, failures to a dead-letter bus)
    r = rig("runtime_failing_timer.yml")
    # When run until idle
    result = r.runtime.run_until_idle()
    # Then one fire, its retries and its dead letter happened, and the run ended there: the runtime's
    # own failure event is not news, and nothing else moved
    assert [(d.simulated_time[11:], d.outcome) for d in r.runtime.deliveries] == [
        ("09:05:00Z", "error"),
        ("09:05:02Z", "error"),
        ("09:05:06Z", "dead-letter"),
    ]
    assert (result["stopped"], result["simulated_seconds"]) == ("idle", 306)
    assert [d.published_to for d in r.runtime.dead_letters] == ["fx-dead-letter"]


# -- failures --------------------------------------------------------------------------------------


def test_a_failing_handler_is_retried_with_backoff_then_dead_lettered(rig: Callable[..., Rig]) -> None:
    # Given fx-failing (always raises; MaxAsyncRetryAttempts 3; OnFailure → fx-dead-letter, where a
    # rule sends failures to the recorder)
    r = rig("runtime_failures.yml")

    # When an event for it is put
    r.put("fixture:Fail:Please", event_id="poison-1")
    result = r.runtime.run_until_idle()

    # Then it ran 4 times (1 + 3 retries), 2 s, 4 s, 8 s apart on the virtual clock, the last a dead letter
    tries = r.deliveries_to("fx-failing")
    assert [(d.attempt, d.outcome, d.simulated_time) for d in tries] == [
        (1, "error", "2026-01-05T09:00:00Z"),
        (2, "error", "2026-01-05T09:00:02Z"),
        (3, "error", "2026-01-05T09:00:06Z"),
        (4, "dead-letter", "2026-01-05T09:00:14Z"),
    ]
    assert [d.error for d in tries] == [f"RuntimeError: boom on call {n}" for n in (1, 2, 3, 4)]
    assert all(d.event_id == "poison-1" for d in tries)
    assert any("[WARNING] failing call 1" in line for line in tries[0].logs)
    # And it is recorded as a dead letter
    (dead,) = r.runtime.dead_letters
    assert (dead.function, dead.attempts, dead.reason, dead.published_to) == (
        "fx-failing",
        4,
        "retries-exhausted",
        "fx-dead-letter",
    )
    assert dead.event["id"] == "poison-1"
    assert dead.error == "RuntimeError: boom on call 4"
    # And FC's failure payload went to the dead-letter bus as fc:AsyncInvoke:Failure, and on to the recorder
    (failure,) = [e.event for e in r.cloud.events.read(bus="fx-dead-letter")]
    assert (failure["source"], failure["type"]) == ("acs.fc", "fc:AsyncInvoke:Failure")
    data = failure["data"]
    assert data["requestContext"]["functionArn"] == f"acs:fc:cn-hangzhou:{ACCOUNT}:functions/fx-failing"
    assert data["requestContext"]["approximateInvokeCount"] == 4
    assert data["requestContext"]["requestId"] == tries[-1].request_id
    assert json.loads(data["requestPayload"])["id"] == "poison-1"
    assert data["responseContext"] == {"statusCode": 200, "functionError": "UnhandledInvocationError"}
    assert json.loads(data["responsePayload"])["errorType"] == "RuntimeError"
    assert isinstance(data["timestamp"], int)
    assert [rec["event"]["type"] for rec in r.records()] == ["fc:AsyncInvoke:Failure"]
    # And the summary counts it all
    assert (result["errors"], result["retries"], result["dead_letters"], result["stopped"]) == (4, 3, 1, "idle")
    assert result["by_function"]["fx-failing"] == {"deliveries": 4, "ok": 0, "errors": 4, "expired": 0}


def test_a_handler_that_recovers_on_retry_is_not_dead_lettered(rig: Callable[..., Rig]) -> None:
    # Given fx-failing set to fail only its first call
    r = rig("runtime_failures.yml", FailTimes="1")
    # When an event for it is put
    r.put("fixture:Fail:Please")
    r.runtime.run_until_idle()
    # Then the retry 2 s later succeeded, and nothing was dead-lettered
    assert [(d.attempt, d.outcome, d.result) for d in r.deliveries_to("fx-failing")] == [
        (1, "error", None),
        (2, "ok", "ok on call 2"),
    ]
    assert r.runtime.dead_letters == []


def test_an_event_older_than_its_max_age_expires_instead_of_being_retried(rig: Callable[..., Rig]) -> None:
    # Given fx-expiring (always raises; 8 retries allowed, but MaxAsyncEventAgeInSeconds 5)
    r = rig("runtime_failures.yml")
    # When an event for it is put
    r.put("fixture:Expire:Please", event_id="old-1")
    r.runtime.run_until_idle()
    # Then it ran at 0 s and 2 s; at 6 s the event was too old and was dropped as expired
    assert [(d.attempt, d.outcome, d.simulated_time) for d in r.deliveries_to("fx-expiring")] == [
        (1, "error", "2026-01-05T09:00:00Z"),
        (2, "error", "2026-01-05T09:00:02Z"),
        (3, "expired", "2026-01-05T09:00:06Z"),
    ]
    (dead,) = r.runtime.dead_letters
    assert (dead.reason, dead.attempts, dead.published_to) == ("expired", 2, "fx-dead-letter")
    (failure,) = [e.event for e in r.cloud.events.read(bus="fx-dead-letter")]
    assert failure["data"]["requestContext"]["condition"] == "EventAgeExceeded"


def test_a_module_that_cannot_import_is_a_failed_invocation(rig: Callable[..., Rig]) -> None:
    # Given fx-broken, whose module raises at import, with no retries
    r = rig("runtime_failures.yml")
    # When an event for it is put
    r.put("fixture:Broken:Please")
    r.runtime.run_until_idle()
    # Then its one invocation failed with the import error and was dead-lettered
    (delivery,) = r.deliveries_to("fx-broken")
    assert (delivery.outcome, delivery.error) == ("dead-letter", "ImportError: this instance cannot start")


def test_invoke_is_one_synchronous_call_without_retries(rig: Callable[..., Rig]) -> None:
    # Given the failures fixture
    r = rig("runtime_failures.yml")

    # When fx-failing is invoked directly (like `sam local invoke`) and the runtime then runs
    failed = r.runtime.invoke("fx-failing", {"id": "direct-1", "type": "manual"})
    r.runtime.run_until_idle()

    # Then there was exactly one call: no retry, no dead letter
    assert (failed.outcome, failed.attempt, failed.event_id, failed.event_type) == ("error", 1, "direct-1", "manual")
    assert r.runtime.deliveries == [failed]
    assert r.runtime.dead_letters == []
    # And raw bytes go through unchanged, to a function named by logical id too
    ok = r.runtime.invoke("RecorderFunction", b'{"hello": "world"}')
    assert ok.outcome == "ok"
    assert r.records()[0]["event"] == {"hello": "world"}


# -- reports ---------------------------------------------------------------------------------------


def test_the_trace_has_one_row_per_delivery(rig: Callable[..., Rig]) -> None:
    # Given a run with a success and a retried failure
    r = rig("runtime_failures.yml", FailTimes="1")
    r.put("fixture:Fail:Please", event_id="t-1")
    r.runtime.run_until_idle()
    r.runtime.invoke("fx-recorder", {"id": "t-2", "type": "manual"})

    # When the trace is rendered
    lines = r.runtime.trace().splitlines()

    # Then it has a header, a rule, and one row per delivery, in order
    assert lines[0].split() == ["#", "simulated", "time", "function", "try", "outcome", "wall", "ms", "event", "error"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = lines[2:]
    assert len(rows) == len(r.runtime.deliveries) == 3
    assert rows[0].split()[:5] == ["1", "2026-01-05T09:00:00Z", "fx-failing", "1", "error"]
    assert "RuntimeError: boom on call 1" in rows[0]
    assert rows[1].split()[:5] == ["2", "2026-01-05T09:00:02Z", "fx-failing", "2", "ok"]
    assert "manual t-2" in rows[2]
