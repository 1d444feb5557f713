"""Cloud Assistant through the real SDK: RunCommand runs real bash against the instance's fake guest
root; DescribeInvocationResults / DescribeInvocations reveal the result on the virtual clock."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ClientException

from localcloud.guest.confine import namespace_unavailable_reason
from tests.integration._ecs import assert_api_error, disks_of, events_of_type

TIMINGS = {"command_seconds": 2, "client_timeout_seconds": 60}
LINUX = {"id": "i-web", "disks": [{"type": "system", "size": 40}, {"type": "data", "size": 100}]}

# Every fstab UUID must belong to a filesystem blkid can see (the classic unbootable-image check).
FSTAB_CHECK = r"""
status=0
while read -r spec mountpoint _; do
    case "$spec" in UUID=*) ;; *) continue ;; esac
    uuid=${spec#UUID=}
    if ! blkid -s UUID -o value | grep -qx "$uuid"; then
        echo "fstab: $mountpoint needs missing UUID $uuid"
        status=1
    fi
done < "${GUEST_ROOT:-}/etc/fstab"
[ "$status" -eq 0 ] && echo "fstab ok"
exit "$status"
"""

# Private keys left in the image (public keys and authorized_keys are fine).
SECRET_SCAN = r"""
found=$(grep -rl -- "PRIVATE KEY" "${GUEST_ROOT:-}/root" "${GUEST_ROOT:-}/home" 2>/dev/null | sed "s|^${GUEST_ROOT:-}||" | sort)
if [ -n "$found" ]; then echo "$found"; exit 3; fi
echo "no secrets"
"""

ROOT_FREE_MB = "df -Pm / | awk 'NR==2 {print $4}'"

NAMESPACES_MISSING = namespace_unavailable_reason()


def _env(make_env, **instance):
    return make_env({"timings": TIMINGS, "instances": [{**LINUX, **instance}]})


def _run(env, script, instance_ids=("i-web",), **fields):
    fields.setdefault("type", "RunShellScript")
    body = env.ecs.run_command(
        ecs_models.RunCommandRequest(
            region_id=env.region, command_content=script, instance_id=list(instance_ids), **fields
        )
    ).body
    return body.invoke_id


def _result(env, invoke_id, **fields):
    body = env.ecs.describe_invocation_results(
        ecs_models.DescribeInvocationResultsRequest(region_id=env.region, invoke_id=invoke_id, **fields)
    ).body
    (result,) = body.invocation.invocation_results.invocation_result
    return result


def _finished(env, invoke_id, **fields):
    env.cloud.advance(TIMINGS["command_seconds"])
    return _result(env, invoke_id, content_encoding="PlainText", **fields)


def _invocation(env, invoke_id, **fields):
    body = env.ecs.describe_invocations(
        ecs_models.DescribeInvocationsRequest(region_id=env.region, invoke_id=invoke_id, **fields)
    ).body
    (invocation,) = body.invocations.invocation
    return invocation


# -- running real scripts --------------------------------------------------------------------------------


def test_run_command_is_running_until_command_seconds_pass(make_env):
    # Given a running Linux instance
    env = _env(make_env)

    # When a command is run and no time has passed yet
    invoke_id = _run(env, "echo hi")
    result = _result(env, invoke_id)

    # Then the invocation is Running with no exit code
    assert (result.invocation_status, result.invoke_record_status) == ("Running", "Running")
    assert result.exit_code is None
    assert result.instance_id == "i-web"


def test_fstab_check_on_a_healthy_guest_succeeds(make_env):
    # Given a guest whose fstab matches its disks
    env = _env(make_env)

    # When the fstab check runs
    result = _finished(env, _run(env, FSTAB_CHECK))

    # Then it finishes with Success, exit code 0 and its output
    assert (result.invocation_status, result.invoke_record_status) == ("Success", "Finished")
    assert result.exit_code == 0
    assert result.output == "fstab ok\n"
    assert result.error_code == ""


def test_fstab_check_on_a_guest_with_a_stale_fstab_entry_fails(make_env):
    # Given a guest whose fstab still mounts a detached disk
    env = _env(make_env, guest={"fstab_mismatch": True})

    # When the fstab check runs
    result = _finished(env, _run(env, FSTAB_CHECK))

    # Then it is Failed with the script's exit code, ExitCodeNonzero and the offending mount in the output
    assert (result.invocation_status, result.invoke_record_status) == ("Failed", "Finished")
    assert result.exit_code == 1
    assert result.error_code == "ExitCodeNonzero"
    assert "/mnt/olddata needs missing UUID" in result.output


def test_secret_scan_finds_planted_private_keys_only(make_env):
    # Given a guest with a private key and an AccessKey profile left behind
    env = _env(make_env, guest={"secrets": ["/root/.ssh/id_rsa", "/home/admin/.ssh/id_ed25519"]})

    # When scanning the guest for private keys
    result = _finished(env, _run(env, SECRET_SCAN))

    # Then exactly the planted keys are reported (not authorized_keys or *.pub)
    assert (result.invocation_status, result.exit_code) == ("Failed", 3)
    assert result.output.split() == ["/home/admin/.ssh/id_ed25519", "/root/.ssh/id_rsa"]


def test_secret_scan_on_a_clean_guest_succeeds(make_env):
    # Given a guest without secrets
    env = _env(make_env)

    # When scanning it
    result = _finished(env, _run(env, SECRET_SCAN))

    # Then nothing is found
    assert (result.invocation_status, result.output) == ("Success", "no secrets\n")


def test_df_reports_the_guest_system_disk_free_space(make_env):
    # Given a guest with 1234 MB free on /
    env = _env(make_env, guest={"system_disk_free_mb": 1234})

    # When reading df -Pm /
    result = _finished(env, _run(env, ROOT_FREE_MB))

    # Then the guest's figure comes back, not the host's
    assert result.output.strip() == "1234"


def test_lsblk_serials_in_the_guest_match_describe_disks(make_env):
    # Given an instance with two disks
    env = _env(make_env)

    # When listing disk serials inside the guest
    result = _finished(env, _run(env, "lsblk -dn -o SERIAL"))

    # Then they are the SerialNumber values DescribeDisks reports
    assert sorted(result.output.split()) == sorted(d.serial_number for d in disks_of(env, "i-web"))


def test_invocation_output_is_base64_by_default(make_env):
    # Given a finished command
    env = _env(make_env)
    invoke_id = _run(env, "echo 'héllo bakery'")
    env.cloud.advance(TIMINGS["command_seconds"])

    # When reading its result without ContentEncoding
    result = _result(env, invoke_id)

    # Then Output is Base64 of the UTF-8 output
    assert base64.b64decode(result.output).decode() == "héllo bakery\n"


def test_invocation_output_is_plain_text_on_request(make_env):
    # Given a finished command
    env = _env(make_env)
    invoke_id = _run(env, "echo plain")
    env.cloud.advance(TIMINGS["command_seconds"])

    # When reading its result with ContentEncoding=PlainText
    result = _result(env, invoke_id, content_encoding="PlainText")

    # Then Output is the raw text
    assert result.output == "plain\n"


def test_run_command_accepts_base64_content(make_env):
    # Given a script sent Base64-encoded
    env = _env(make_env)
    script = "echo from-base64"

    # When running it with ContentEncoding=Base64
    invoke_id = _run(env, base64.b64encode(script.encode()).decode(), content_encoding="Base64")

    # Then the decoded script ran
    assert _finished(env, invoke_id).output == "from-base64\n"


def test_run_command_rejects_content_that_is_not_base64(make_env):
    # Given a region
    env = _env(make_env)

    # When ContentEncoding=Base64 but the content is not Base64
    with pytest.raises(ClientException) as excinfo:
        _run(env, "echo not base64!", content_encoding="Base64")

    # Then CommandContent is refused
    assert_api_error(excinfo.value, "InvalidParameter", 400, "CommandContent", "Base64")


def test_run_command_substitutes_parameters_when_enabled(make_env):
    # Given a script with {{name}} and {{count}} placeholders
    env = _env(make_env)
    script = "echo 'hello {{name}}' {{ count }}"

    # When running it with EnableParameter and Parameters
    invoke_id = _run(env, script, enable_parameter=True, parameters={"name": "bakery", "count": 3})

    # Then the placeholders were replaced before the script ran
    assert _finished(env, invoke_id).output == "hello bakery 3\n"


def test_run_command_without_enable_parameter_leaves_placeholders_alone(make_env):
    # Given a script with a {{name}} placeholder
    env = _env(make_env)

    # When running it without EnableParameter
    invoke_id = _run(env, "echo '{{name}}'")

    # Then the placeholder is printed as is
    assert _finished(env, invoke_id).output == "{{name}}\n"


def test_run_command_with_a_missing_parameter_value_is_refused(make_env):
    # Given a script with two placeholders
    env = _env(make_env)

    # When only one value is supplied
    with pytest.raises(ClientException) as excinfo:
        _run(env, "echo {{name}} {{zone}}", enable_parameter=True, parameters={"name": "bakery"})

    # Then 403 Parameter.NotMatched names the missing one
    assert_api_error(excinfo.value, "Parameter.NotMatched", 403, "zone")


def test_run_command_on_two_instances_reports_a_result_per_instance(make_env):
    # Given a healthy and a broken guest
    env = make_env(
        {"timings": TIMINGS, "instances": [LINUX, {**LINUX, "id": "i-bad", "guest": {"fstab_mismatch": True}}]}
    )

    # When the fstab check runs on both
    invoke_id = _run(env, FSTAB_CHECK, instance_ids=("i-web", "i-bad"))
    env.cloud.advance(TIMINGS["command_seconds"])

    # Then each instance has its own result
    body = env.ecs.describe_invocation_results(
        ecs_models.DescribeInvocationResultsRequest(region_id=env.region, invoke_id=invoke_id)
    ).body
    results = {r.instance_id: r.invocation_status for r in body.invocation.invocation_results.invocation_result}
    assert results == {"i-web": "Success", "i-bad": "Failed"}
    assert _invocation(env, invoke_id).invocation_status == "PartialFailed"


@pytest.mark.parametrize(("field", "value", "code"), [("page_size", 51, "PageSize"), ("page_number", 0, "PageNumber")])
def test_describe_invocation_results_rejects_bad_paging(make_env, field, value, code):
    # Given a finished command
    env = _env(make_env)
    invoke_id = _run(env, "echo x")

    # When asking for results with PageSize over 50 or PageNumber below 1
    with pytest.raises(ClientException) as excinfo:
        env.ecs.describe_invocation_results(
            ecs_models.DescribeInvocationResultsRequest(region_id=env.region, invoke_id=invoke_id, **{field: value})
        )

    # Then the documented 403 InvalidParam.<name>
    assert_api_error(excinfo.value, f"InvalidParam.{code}", 403, code, str(value))


def test_describe_invocation_results_pages_with_page_size(make_env):
    # Given one command on two instances
    env = make_env({"timings": TIMINGS, "instances": [LINUX, {**LINUX, "id": "i-two"}]})
    invoke_id = _run(env, "echo x", instance_ids=("i-web", "i-two"))

    # When reading the results one per page
    pages = [
        env.ecs.describe_invocation_results(
            ecs_models.DescribeInvocationResultsRequest(
                region_id=env.region, invoke_id=invoke_id, page_size=1, page_number=number
            )
        ).body.invocation
        for number in (1, 2)
    ]

    # Then each page holds one instance's result out of two
    assert [p.total_count for p in pages] == [2, 2]
    assert {p.invocation_results.invocation_result[0].instance_id for p in pages} == {"i-web", "i-two"}


# -- DescribeInvocations -----------------------------------------------------------------------------------


def test_describe_invocations_reports_the_finished_invocation(make_env):
    # Given a finished successful command
    env = _env(make_env)
    invoke_id = _run(env, "echo done", name="probe")
    env.cloud.advance(TIMINGS["command_seconds"])

    # When describing the invocation
    invocation = _invocation(env, invoke_id)

    # Then it is Finished/Success, with its command and per-instance status
    assert (invocation.invoke_status, invocation.invocation_status) == ("Finished", "Success")
    assert (invocation.command_type, invocation.command_name) == ("RunShellScript", "probe")
    assert base64.b64decode(invocation.command_content).decode() == "echo done"
    (instance,) = invocation.invoke_instances.invoke_instance
    assert (instance.instance_id, instance.invocation_status, instance.exit_code) == ("i-web", "Success", 0)


def test_describe_invocations_is_running_before_the_command_finishes(make_env):
    # Given a command just sent
    env = _env(make_env)
    invoke_id = _run(env, "echo later")

    # When describing the invocation at once
    invocation = _invocation(env, invoke_id)

    # Then it is Running
    assert (invocation.invoke_status, invocation.invocation_status) == ("Running", "Running")


def test_describe_invocations_includes_output_only_on_request(make_env):
    # Given a finished command
    env = _env(make_env)
    invoke_id = _run(env, "echo out")
    env.cloud.advance(TIMINGS["command_seconds"])

    # When describing it with and without IncludeOutput
    without = _invocation(env, invoke_id).invoke_instances.invoke_instance[0].output
    with_output = _invocation(env, invoke_id, include_output=True, content_encoding="PlainText")

    # Then only IncludeOutput=True carries the output
    assert without == ""
    assert with_output.invoke_instances.invoke_instance[0].output == "out\n"


def test_describe_invocations_reports_parameters_as_json(make_env):
    # Given a command run with parameters
    env = _env(make_env)
    invoke_id = _run(env, "echo {{name}}", enable_parameter=True, parameters={"name": "bakery"})

    # When describing it
    invocation = _invocation(env, invoke_id)

    # Then Parameters is a JSON object string
    assert json.loads(invocation.parameters) == {"name": "bakery"}


@pytest.mark.skipif(
    NAMESPACES_MISSING is not None,
    reason=f"scripts cannot be confined on this host ({NAMESPACES_MISSING}); the fallback is covered by "
    "test_a_script_the_sandbox_refuses_fails_with_execution_exception_saying_why and "
    "tests/unit/test_guest_sandbox.py::test_a_host_without_user_namespaces_falls_back_or_refuses",
)
def test_a_script_stays_inside_its_guest(make_env, tmp_path, monkeypatch):
    # Given a guest (sandbox mode from the environment: unset, so auto) and, on this host, a secret and
    # a file the script should not touch
    monkeypatch.delenv("LOCALCLOUD_SANDBOX", raising=False)
    env = _env(make_env)
    secret = tmp_path / "host-secret"
    secret.write_text("TOPSECRET\n")
    escape = Path("/tmp", f"localcloud-escape-{uuid.uuid4().hex}")
    script = f"""
        cat "{secret}" 2>/dev/null || echo no-secret
        {{ echo escaped >"{escape}"; }} 2>/dev/null || echo no-escape
        echo mine >"${{GUEST_ROOT:-}}/root/mine" && cat "${{GUEST_ROOT:-}}/root/mine"
    """

    # When a script tries to read the secret and write outside the guest, and writes inside it
    try:
        result = _finished(env, _run(env, script))
    finally:
        escape.unlink(missing_ok=True)

    # Then only the guest was there for it
    assert (result.invocation_status, result.output) == ("Success", "no-secret\nno-escape\nmine\n")
    assert not escape.exists()


# -- when a command cannot run ----------------------------------------------------------------------------


def test_run_command_on_a_stopped_instance_is_aborted(make_env):
    # Given a stopped instance
    env = _env(make_env, status="Stopped")

    # When running a command on it
    result = _finished(env, _run(env, "echo never"))

    # Then it is Aborted with InstanceNotRunning, and nothing ran
    assert (result.invocation_status, result.error_code) == ("Aborted", "InstanceNotRunning")
    assert result.exit_code is None
    assert result.output == ""


def test_run_command_without_the_cloud_assistant_client_aborts_after_the_delivery_timeout(make_env):
    # Given an instance whose Cloud Assistant client is not running
    env = _env(make_env, guest={"cloud_assistant": False})
    invoke_id = _run(env, "echo never")

    # When 59 s pass, then one more (delivery timeout 60 s)
    env.cloud.advance(59)
    waiting = _result(env, invoke_id)
    env.cloud.advance(1)
    result = _result(env, invoke_id)

    # Then it waited Running, then ended Aborted with ClientNotRunning
    assert waiting.invocation_status == "Running"
    assert (result.invocation_status, result.error_code) == ("Aborted", "ClientNotRunning")
    assert _invocation(env, invoke_id).invoke_status == "Failed"


def test_run_shell_script_on_windows_is_invalid(make_env):
    # Given a Windows instance
    env = _env(make_env, os="windows", platform="Windows Server 2022")

    # When sending it a RunShellScript
    result = _finished(env, _run(env, "echo never"))

    # Then it is Invalid with CommandNotApplicable
    assert (result.invocation_status, result.error_code) == ("Invalid", "CommandNotApplicable")
    assert result.error_info


def test_run_power_shell_script_on_windows_fails_because_windows_guests_are_not_emulated(make_env):
    # Given a Windows instance
    env = _env(make_env, os="windows", platform="Windows Server 2022")

    # When sending it a RunPowerShellScript (which the local cloud cannot run)
    result = _finished(env, _run(env, "Write-Output never", type="RunPowerShellScript"))

    # Then it fails saying so, instead of running PowerShell under bash
    assert (result.invocation_status, result.error_code) == ("Failed", "ExecutionException")
    assert "Windows guests are not emulated" in result.error_info
    assert result.output == ""


def test_run_power_shell_script_on_linux_is_invalid(make_env):
    # Given a Linux instance
    env = _env(make_env)

    # When sending it a RunPowerShellScript
    result = _finished(env, _run(env, "Write-Output never", type="RunPowerShellScript"))

    # Then it is Invalid with CommandNotApplicable
    assert (result.invocation_status, result.error_code) == ("Invalid", "CommandNotApplicable")


def test_a_script_the_sandbox_refuses_fails_with_execution_exception_saying_why(make_env, monkeypatch):
    # Given scripts that would run unconfined (LOCALCLOUD_SANDBOX=none) while this process listens beyond
    # loopback, as `localcloud serve --host 0.0.0.0 --allow-remote` does
    monkeypatch.setenv("LOCALCLOUD_SANDBOX", "none")
    env = _env(make_env)
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()

        # When a command is run
        result = _finished(env, _run(env, "echo never"))

    # Then nothing ran, and the result says why, in ErrorInfo and in Output
    assert (result.invocation_status, result.invoke_record_status) == ("Failed", "Finished")
    assert (result.error_code, result.exit_code) == ("ExecutionException", None)
    assert "refusing to run a script unconfined" in result.error_info and "0.0.0.0:" in result.error_info
    assert result.output.startswith("localcloud: the script was not run: refusing to run a script unconfined")


def test_a_mistyped_sandbox_mode_refuses_scripts_instead_of_running_them_unconfined(make_env, monkeypatch):
    # Given LOCALCLOUD_SANDBOX set to something that is not a mode
    monkeypatch.setenv("LOCALCLOUD_SANDBOX", "off")
    env = _env(make_env)

    # When a command is run
    result = _finished(env, _run(env, "echo never"))

    # Then it fails, naming the modes
    assert (result.invocation_status, result.error_code) == ("Failed", "ExecutionException")
    assert "LOCALCLOUD_SANDBOX='off' is not one of auto, namespace, none" in result.error_info


def test_run_command_with_an_unknown_type_is_refused(make_env):
    # Given a Linux instance
    env = _env(make_env)

    # When the command Type is not a Cloud Assistant type
    with pytest.raises(ClientException) as excinfo:
        _run(env, "echo x", type="RunPythonScript")

    # Then 403 InvalidCmdType.NotFound
    assert_api_error(excinfo.value, "InvalidCmdType.NotFound", 403, "RunPythonScript")


def test_run_command_on_an_unknown_instance_is_not_found(make_env):
    # Given a region without that instance
    env = _env(make_env)

    # When running a command on it
    with pytest.raises(ClientException) as excinfo:
        _run(env, "echo x", instance_ids=("i-ghost",))

    # Then 404 InvalidInstance.NotFound names it
    assert_api_error(excinfo.value, "InvalidInstance.NotFound", 404, "i-ghost")


def test_run_command_without_content_is_missing_parameter(make_env):
    # Given a Linux instance
    env = _env(make_env)

    # When CommandContent is left out
    with pytest.raises(ClientException) as excinfo:
        env.ecs.run_command(
            ecs_models.RunCommandRequest(region_id=env.region, type="RunShellScript", instance_id=["i-web"])
        )

    # Then MissingParameter names CommandContent
    assert_api_error(excinfo.value, "MissingParameter", 400, "CommandContent")


def test_run_command_with_too_large_content_is_refused(make_env):
    # Given a Linux instance
    env = _env(make_env)

    # When the script is over 18 KB, i.e. over 24 KB once Base64-encoded (alibaba-apis.md §2.13)
    with pytest.raises(ClientException) as excinfo:
        _run(env, "#" * (24 * 1024 * 3 // 4 + 1))

    # Then 403 CmdContent.ExceedLimit
    assert_api_error(excinfo.value, "CmdContent.ExceedLimit", 403, "24 KB in Base64")


# -- events ----------------------------------------------------------------------------------------------


def test_finished_command_emits_a_task_completed_event(make_env):
    # Given a command on a running instance
    env = _env(make_env)
    invoke_id = _run(env, "exit 4")

    # When it finishes
    before = events_of_type(env, "ecs:CloudAssistant:TaskCompleted")
    env.cloud.advance(TIMINGS["command_seconds"])

    # Then one ecs:CloudAssistant:TaskCompleted event reports the instance, invocation and outcome
    (event,) = events_of_type(env, "ecs:CloudAssistant:TaskCompleted")
    assert before == []
    assert event["source"] == "acs.ecs"
    assert event["data"]["invokeId"] == invoke_id
    assert event["data"]["instanceId"] == "i-web"
    # (exitCode is a string in ECS's documented sample, whose keys are alphabetical and show no errorCode)
    assert (event["data"]["invocationStatus"], event["data"]["exitCode"]) == ("Failed", "4")
    assert set(event["data"]) == {"commandId", "commandName", "exitCode", "finishTime", "instanceId",
                                  "invocationStatus", "invokeId"}  # fmt: skip


def test_aborted_command_also_emits_a_task_completed_event(make_env):
    # Given a stopped instance
    env = _env(make_env, status="Stopped")

    # When a command to it is aborted
    _run(env, "echo never")
    env.cloud.advance(TIMINGS["command_seconds"])

    # Then the TaskCompleted event reports the abort
    (event,) = events_of_type(env, "ecs:CloudAssistant:TaskCompleted")
    assert (event["data"]["invocationStatus"], event["data"]["exitCode"]) == ("Aborted", "")


def test_task_completed_without_invoke_id_when_the_scenario_says_so(make_env):
    # Given a region whose TaskCompleted events do not carry invokeId (the documented sample is cut off there)
    env = make_env({"timings": TIMINGS, "instances": [LINUX], "event_shapes": {"assistant_invoke_id": False}})
    _run(env, "true")
    env.cloud.advance(TIMINGS["command_seconds"])
    # Then the event names the command and instance but no invocation
    (event,) = events_of_type(env, "ecs:CloudAssistant:TaskCompleted")
    assert "invokeId" not in event["data"]
    assert event["data"]["invocationStatus"] == "Success"
