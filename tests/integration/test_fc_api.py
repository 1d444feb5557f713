"""FC 3.0's own API (InvokeFunction, GetFunction, ListFunctions) over the local FC runtime, through the real
`alibabacloud-fc20230330` SDK — the way a user's script, or `bakery invoke --endpoint`, reaches a function.

Two kinds of function answer: ones a runtime someone else drives has attached (a local run of template.yml,
in-process instances), and ones a deployed stack runs as isolated processes (only their code directory on
sys.path, as on FC).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_fc20230330 import models as fc_models
from alibabacloud_fc20230330.client import Client as FcClient
from alibabacloud_tea_openapi.exceptions import ClientException

from bakery_tools.deploy.buses import ensure_buses
from localcloud import LocalCloud, Scenario
from localcloud.fc import LocalRuntime, load_template
from localcloud.testing import CloudEnv, running, sdk_config

TEMPLATES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
SCENARIO: dict[str, Any] = {"seed": 5, "region": "cn-hangzhou", "account_id": "1112223334445556"}


@dataclass
class Rig:
    cloud: LocalCloud
    env: CloudEnv
    runtime: LocalRuntime
    fc: Any
    record_file: Path

    def invoke(self, name: str, body: bytes, **headers: str) -> Any:
        return self.fc.invoke_function_with_options(
            name, fc_models.InvokeFunctionRequest(body=body), fc_models.InvokeFunctionHeaders(**headers), _runtime()
        )

    def records(self) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines()]


def _runtime() -> Any:
    from darabonba.runtime import RuntimeOptions

    return RuntimeOptions()


@pytest.fixture
def rig(tmp_path: Path, transport: str) -> Iterator[Callable[..., Rig]]:
    with ExitStack() as stack:

        def make(template: str, *, isolated: bool = False) -> Rig:
            cloud = LocalCloud(Scenario.from_mapping(SCENARIO))
            stack.callback(cloud.close)
            env = stack.enter_context(running(cloud, "http" if isolated else transport))
            record_file = tmp_path / "records.jsonl"
            given = {"RecordFile": str(record_file)} if "RecordFile" in (TEMPLATES / template).read_text() else {}
            loaded = load_template(TEMPLATES / template, given, region=cloud.region, account_id=cloud.account_id)
            ensure_buses(env.eventbridge, loaded.buses, description="fixture")
            if isolated:  # what a ROS stack does once its resources exist
                cloud.fc.deploy("fixture", loaded)
                runtime = cloud.fc.stacks["fixture"]
            else:
                runtime = LocalRuntime(cloud, loaded, endpoint=env.endpoint).start()
                stack.callback(runtime.stop)
                cloud.fc.attach(runtime)
            fc = FcClient(sdk_config(env.endpoint, cloud.region))
            return Rig(cloud, env, runtime, fc, record_file)

        yield make


def test_a_sync_invocation_returns_what_the_handler_returned(rig: Callable[..., Rig]) -> None:
    # Given an attached runtime whose recorder returns a short text
    r = rig("runtime_routes.yml")
    # When it is invoked synchronously through FC's API
    response = r.invoke("fx-recorder", b'{"type": "hello"}', x_fc_invocation_type="Sync", x_fc_log_type="Tail")
    # Then the body is the handler's result, with FC's request id and the tail of its log
    assert response.status_code == 200
    assert json.loads(response.body.read()) == {"recorded": 1}
    assert response.headers["x-fc-request-id"]
    assert "x-fc-error-type" not in response.headers
    log = base64.b64decode(response.headers["x-fc-log-result"]).decode()
    assert "recorded hello" in log and "printed by the recorder" in log
    # ... and the handler got the bytes it was sent, with FC's context
    (record,) = r.records()
    assert record["event"] == {"type": "hello"} and record["event_bytes_type"] == "bytes"


def test_a_function_error_is_signalled_by_the_error_type_header(rig: Callable[..., Rig]) -> None:
    # Given a function that always raises
    r = rig("runtime_failures.yml")
    # When it is invoked synchronously
    response = r.invoke("fx-failing", b"{}", x_fc_invocation_type="Sync")
    # Then FC answers 200 with X-Fc-Error-Type and the runtime's error body (FC python "Error handling")
    assert response.status_code == 200
    assert response.headers["x-fc-error-type"] == "UnhandledInvocationError"
    body = json.loads(response.body.read())
    assert (body["errorType"], body["errorMessage"]) == ("RuntimeError", "boom on call 1")
    assert any("raise RuntimeError" in line for line in body["stackTrace"])
    # ... and a synchronous call is never retried
    assert [d.attempt for d in r.runtime.deliveries] == [1]


def test_an_async_invocation_is_queued_and_retried_then_dead_lettered(rig: Callable[..., Rig]) -> None:
    # Given a function that always fails, with 3 async retries and a dead-letter bus
    r = rig("runtime_failures.yml")
    # When it is invoked asynchronously
    response = r.invoke("fx-failing", b'{"id": "job-1"}', x_fc_invocation_type="Async")
    # Then FC accepts it at once (202), and nothing ran yet
    assert response.status_code == 202
    assert response.headers["x-fc-request-id"]
    assert r.runtime.deliveries == []
    # ... when the runtime runs, it is tried 1 + MaxAsyncRetryAttempts times, then dead-lettered
    r.runtime.run_until_idle()
    assert [d.attempt for d in r.runtime.deliveries if d.function == "fx-failing"] == [1, 2, 3, 4]
    assert [d.function for d in r.runtime.dead_letters] == ["fx-failing"]


def test_a_repeated_async_task_id_is_refused(rig: Callable[..., Rig]) -> None:
    r = rig("runtime_routes.yml")
    r.invoke("fx-recorder", b"{}", x_fc_invocation_type="Async", x_fc_async_task_id="task_1")
    with pytest.raises(ClientException) as caught:
        r.invoke("fx-recorder", b"{}", x_fc_invocation_type="Async", x_fc_async_task_id="task_1")
    assert caught.value.status_code == 409


def test_an_unknown_function_is_function_not_found(rig: Callable[..., Rig]) -> None:
    r = rig("runtime_routes.yml")
    with pytest.raises(ClientException) as caught:
        r.invoke("fx-nobody", b"{}")
    assert (caught.value.code, caught.value.status_code) == ("FunctionNotFound", 404)


def test_only_latest_runs_locally(rig: Callable[..., Rig]) -> None:
    r = rig("runtime_routes.yml")
    with pytest.raises(ClientException) as caught:
        r.fc.invoke_function_with_options("fx-recorder", fc_models.InvokeFunctionRequest(body=b"{}", qualifier="prod"),
                                          fc_models.InvokeFunctionHeaders(), _runtime())  # fmt: skip
    assert caught.value.status_code == 404


def test_get_and_list_functions_describe_what_runs(rig: Callable[..., Rig]) -> None:
    r = rig("runtime_routes.yml")
    function = r.fc.get_function("fx-recorder", fc_models.GetFunctionRequest()).body
    assert (function.function_name, function.runtime, function.memory_size, function.timeout) == (
        "fx-recorder", "python3.10", 256, 30)  # fmt: skip
    assert function.function_arn == "acs:fc:cn-hangzhou:1112223334445556:functions/fx-recorder"
    listed = r.fc.list_functions(fc_models.ListFunctionsRequest()).body.functions
    assert [f.function_name for f in listed] == ["fx-recorder"]


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
@pytest.mark.parametrize("transport", ["http"])
def test_a_function_s_random_numbers_come_from_its_request_id(rig: Callable[..., Rig], isolated: bool) -> None:
    # Given the recorder, run in this process or as its own
    import random

    r = rig("runtime_routes.yml", isolated=isolated)
    # When it is invoked twice
    for body in (b'{"type": "one"}', b'{"type": "two"}'):
        r.invoke("fx-recorder", body, x_fc_invocation_type="Sync")
    # Then each draw is the one its request id seeds (so a scenario's retry jitter is the same in every run)
    records = r.records()
    assert [rec["random"] for rec in records] == [
        random.Random(rec["context"]["request_id"]).random() for rec in records
    ]
    assert records[0]["random"] != records[1]["random"]


def test_an_in_process_function_leaves_this_process_s_random_state_as_it_was() -> None:
    # Given this process's random state, and a handler that draws from random
    import random
    from types import ModuleType, SimpleNamespace

    from localcloud.fc.instances import call_in_process

    module = ModuleType("drawer")
    module.handler = lambda event, context: str(random.random())  # type: ignore[attr-defined]
    fn = SimpleNamespace(function_attr="handler")
    random.seed(11)
    before = random.getstate()
    # When it is called in this process
    result, failure, _, _ = call_in_process(lambda: module, fn, b"{}", SimpleNamespace(request_id="r-1"), {}, "p")  # type: ignore[arg-type]
    # Then it drew from the request id's sequence, and this process's state is untouched
    assert failure is None and float(result) == random.Random("r-1").random()
    assert random.getstate() == before


# -- deployed stacks: isolated instances ---------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http"])
def test_a_deployed_function_runs_as_its_own_process_from_its_code_directory(rig: Callable[..., Rig]) -> None:
    # Given the routing fixture deployed as a stack (its functions run isolated)
    r = rig("runtime_routes.yml", isolated=True)
    # When the recorder is invoked twice
    first = r.invoke("fx-recorder", b'{"type": "one"}', x_fc_invocation_type="Sync")
    second = r.invoke("fx-recorder", b'{"type": "two"}', x_fc_invocation_type="Sync")
    # Then both answered, from one warm instance (module state survives), in a process of its own
    assert [json.loads(first.body.read()), json.loads(second.body.read())] == [{"recorded": 1}, {"recorded": 2}]
    records = r.records()
    assert [rec["calls_in_instance"] for rec in records] == [1, 2]
    assert records[0]["env"]["FC_FUNC_CODE_PATH"].endswith("recorder")


@pytest.mark.parametrize("transport", ["http"])
def test_a_deployed_stack_delivers_its_events_without_anyone_driving_it(rig: Callable[..., Rig]) -> None:
    # Given the routing fixture deployed as a stack: the FC service's own driver delivers its events
    r = rig("runtime_routes.yml", isolated=True)
    # When an event its rule matches is put on the bus
    from alibabacloud_eventbridge20200401 import models as eb_models

    entry = eb_models.PutEventsRequestEventList(id="e-1", source="fixture", type="fixture:Thing:Happened",
                                                spec_version="1.0", data=json.dumps({"n": 1}))  # fmt: skip
    r.env.eventbridge.put_events(eb_models.PutEventsRequest(event_bus_name="fx-bus", event_list=[entry]))
    # Then the recorder gets it within a few seconds, though no test code pumps the runtime
    import time

    deadline = time.monotonic() + 20
    while not r.records() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [rec["event"]["type"] for rec in r.records()] == ["fixture:Thing:Happened"]


@pytest.mark.parametrize("transport", ["http"])
def test_a_deployed_function_cannot_import_what_its_artifact_does_not_ship(rig: Callable[..., Rig]) -> None:
    # Given a deployed stack whose relay function imports the EventBridge SDK, which its code directory lacks
    r = rig("runtime_relay.yml", isolated=True)
    # When it is invoked
    response = r.invoke("fx-relay", b'{"type": "x"}', x_fc_invocation_type="Sync")
    # Then the cold start fails the way it would on FC: the developer's site-packages are not there
    assert response.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(response.body.read())["errorType"] == "ModuleNotFoundError"


@pytest.mark.parametrize("transport", ["http"])
def test_bakery_invoke_with_an_endpoint_goes_through_fc_s_api(
    rig: Callable[..., Rig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bakery_tools.cli import main

    # Given a served region whose recorder is reachable through FC's API, and an event file
    r = rig("runtime_routes.yml")
    event = tmp_path / "event.json"
    event.write_text('{"type": "from-the-cli"}')
    # When `bakery invoke --endpoint` calls it, synchronously and then asynchronously
    code = main(["invoke", "fx-recorder", str(event), "--endpoint", r.env.endpoint, "--json"])
    out = json.loads(capsys.readouterr().out)
    # Then the handler ran once, its result and log come back, and the exit code says it went well
    assert code == 0
    assert (out["statusCode"], out["invocationType"], out["errorType"]) == (200, "Sync", None)
    assert json.loads(out["result"]) == {"recorded": 1}
    assert any("recorded from-the-cli" in line for line in out["logs"])
    assert main(["invoke", "fx-recorder", str(event), "--endpoint", r.env.endpoint, "--async"]) == 0
    assert "accepted" in capsys.readouterr().out
    # ... and an unknown function is bad input (exit 2), naming FC's error
    assert main(["invoke", "fx-nobody", str(event), "--endpoint", r.env.endpoint]) == 2
    assert "FunctionNotFound" in capsys.readouterr().err


@pytest.mark.parametrize("transport", ["http"])
def test_a_deployed_function_past_its_timeout_is_stopped_and_the_next_call_gets_a_fresh_instance(
    rig: Callable[..., Rig],
) -> None:
    import time

    # Given a deployed function with a 1-second Timeout
    r = rig("runtime_sleeper.yml", isolated=True)
    # When a call runs past it
    started = time.monotonic()
    response = r.invoke("fx-sleeper", b'{"seconds": 5}', x_fc_invocation_type="Sync")
    # Then FC's timeout ends it, on time (not seconds later), as a function error
    assert time.monotonic() - started < 3
    assert response.headers["x-fc-error-type"] == "UnhandledInvocationError"
    assert json.loads(response.body.read())["errorType"] == "FunctionTimeout"
    # ... and the next call is served by a new instance
    again = r.invoke("fx-sleeper", b'{"seconds": 0}', x_fc_invocation_type="Sync")
    assert again.body.read() == b"slept 0.0"
