"""Cloud Assistant runs scripts on a worker thread (assistant.py _start_script): the outcome, when it is
revealed and the order of everything on the clock must be what they were with the script run inline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alibabacloud_ecs20140526 import models as m

from localcloud import LocalCloud, Scenario
from localcloud.guest.runner import ScriptResult
from localcloud.guest.sandbox import GuestSandbox
from localcloud.testing import CloudEnv, running
from tests.integration._ecs import events_of_type

LINUX = {"id": "i-web", "disks": [{"type": "system", "size": 40}]}


def _env(command_seconds: float = 2) -> Iterator[CloudEnv]:
    cloud = LocalCloud(Scenario.from_mapping({"timings": {"command_seconds": command_seconds}, "instances": [LINUX]}))
    with running(cloud, "inprocess") as env:
        yield env
    cloud.close()


@pytest.fixture
def env() -> Iterator[CloudEnv]:
    yield from _env()


def _run(env: CloudEnv, script: str, timeout: int | None = None) -> str:
    request = m.RunCommandRequest(region_id=env.region, command_content=script, instance_id=["i-web"],
                                  type="RunShellScript", timeout=timeout)  # fmt: skip
    return env.ecs.run_command(request).body.invoke_id


def _result(
    env: CloudEnv, invoke_id: str
) -> m.DescribeInvocationResultsResponseBodyInvocationInvocationResultsInvocationResult:
    body = env.ecs.describe_invocation_results(m.DescribeInvocationResultsRequest(
        region_id=env.region, invoke_id=invoke_id, content_encoding="PlainText")).body  # fmt: skip
    (result,) = body.invocation.invocation_results.invocation_result
    return result


def test_commands_sent_together_run_in_order_on_the_same_guest(env: CloudEnv) -> None:
    # Given three commands sent in the same instant, each reading what the one before wrote
    first = _run(env, 'echo one >"$GUEST_ROOT/tmp/log"; cat "$GUEST_ROOT/tmp/log"')
    second = _run(env, 'echo two >>"$GUEST_ROOT/tmp/log"; cat "$GUEST_ROOT/tmp/log"')
    third = _run(env, 'rm -rf "$GUEST_ROOT/tmp"; echo "${TMPDIR:-none}"')
    fourth = _run(env, 'echo "${TMPDIR:-none}"')  # its environment follows the guest as the third left it
    # When their time comes
    env.cloud.advance(2)
    # Then each saw the guest as the ones before left it
    assert _result(env, first).output == "one\n"
    assert _result(env, second).output == "one\ntwo\n"
    assert _result(env, third).output.endswith("/tmp\n")
    assert _result(env, fourth).output == "none\n"


def test_a_timed_out_script_is_revealed_at_its_timeout_in_its_old_place(
    env: CloudEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a script that times out (faked: a real one would take its 10 s)
    monkeypatch.setattr(GuestSandbox, "prepare", lambda self, *a, **k: lambda: ScriptResult(124, "slow\n", 0, True))
    start = env.cloud.clock.now
    invoke_id = _run(env, "sleep 100", timeout=10)
    fired = []
    # and a timer set after the command, due the same instant as its timeout
    env.cloud.clock.call_at(start + 10, lambda: fired.append(_result(env, invoke_id).invocation_status))
    # When the clock passes command_seconds, then the timeout
    env.cloud.advance(2)
    assert _result(env, invoke_id).invocation_status == "Running"
    env.cloud.advance(8)
    # Then it is Timeout from its timeout on, revealed before the later timer, as when it ran inline
    result = _result(env, invoke_id)
    assert (result.invocation_status, result.error_code, result.exit_code) == ("Timeout", "ExecutionTimeout", 124)
    assert fired == ["Timeout"]
    (event,) = events_of_type(env, "ecs:CloudAssistant:TaskCompleted")
    assert event["data"]["invocationStatus"] == "Timeout"


def test_a_command_slower_than_its_timeout_is_revealed_at_command_seconds() -> None:
    # Given command_seconds (30) above the command's timeout (10), and a script that finishes
    for env in _env(command_seconds=30):
        invoke_id = _run(env, "echo done", timeout=10)
        # When 10 s pass / Then it is still running; at 30 s it is done
        env.cloud.advance(10)
        assert _result(env, invoke_id).invocation_status == "Running"
        env.cloud.advance(20)
        assert (_result(env, invoke_id).invocation_status, _result(env, invoke_id).output) == ("Success", "done\n")


def test_a_host_failure_while_running_fails_the_invocation_saying_why(
    env: CloudEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: GuestSandbox, *args: object, **kwargs: object) -> object:
        def execute() -> ScriptResult:
            raise OSError("no more processes")

        return execute

    monkeypatch.setattr(GuestSandbox, "prepare", broken)
    invoke_id = _run(env, "true")
    env.cloud.advance(2)
    result = _result(env, invoke_id)
    assert (result.invocation_status, result.error_code) == ("Failed", "ExecutionException")
    assert "no more processes" in result.error_info
