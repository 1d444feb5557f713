"""Cloud Assistant: RunCommand, DescribeInvocations, DescribeInvocationResults.

A RunCommand script really runs, under bash on this host, against a sandbox root built from the
instance's `guest:` description, confined to it (see localcloud/guest/sandbox.py and confine.py); its
result is revealed when the invocation finishes on the virtual clock (the script runs on a worker thread
meanwhile: _start_script). A script the sandbox refuses to run (it cannot be confined and may not run
unconfined) fails with ExecutionException saying why.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError, missing_parameter, not_found
from localcloud.guest.confine import ConfinementError
from localcloud.guest.pool import KeyedRunner
from localcloud.guest.runner import ScriptResult
from localcloud.guest.sandbox import GuestSandbox
from localcloud.guest.spec import GuestDisk
from localcloud.services.base import api
from localcloud.services.ecs.instances import _page
from localcloud.wire import Params, decode_content

if TYPE_CHECKING:
    from localcloud.services.ecs import EcsService
    from localcloud.services.ecs.models import Instance

COMMAND_TYPES = ("RunShellScript", "RunBatScript", "RunPowerShellScript")
MAX_CONTENT_BYTES = 24 * 1024 * 3 // 4  # plain text that is at most 24 KB once Base64-encoded (§2.13)
_PARAMETER = re.compile(r"\{\{\s*([A-Za-z0-9_\-]+)\s*\}\}")


@dataclass
class InstanceRun:
    instance_id: str
    status: str  # InvocationStatus: Pending, Running, Success, Failed, Timeout, Aborted, Invalid
    record_status: str  # InvokeRecordStatus: Running, Finished, Failed
    exit_code: int | None = None
    output: str = ""
    dropped: int = 0
    error_code: str = ""
    error_info: str = ""
    start_time: str = ""
    finish_time: str = ""


@dataclass
class Invocation:
    invoke_id: str
    command_id: str
    name: str
    command_type: str
    content: str
    timeout: int
    working_dir: str
    username: str
    parameters: dict[str, Any]
    created_at: str
    runs: dict[str, InstanceRun] = field(default_factory=dict)

    @property
    def status(self) -> str:
        statuses = {r.status for r in self.runs.values()}
        if statuses & {"Pending", "Running"}:
            return "Running"
        if statuses == {"Success"}:
            return "Success"
        if "Success" in statuses:
            return "PartialFailed"
        return "Failed"

    @property
    def invoke_status(self) -> str:  # the deprecated InvokeStatus field, still read by OOS actions
        return {"Running": "Running", "Success": "Finished", "PartialFailed": "PartialFinished"}.get(
            self.status, "Failed"
        )


class AssistantMixin:
    def _sandbox(self: EcsService, instance: Instance) -> GuestSandbox:
        sandbox = self.sandboxes.get(instance.instance_id)
        if sandbox is None:
            disks = [
                GuestDisk(
                    disk_id=d.disk_id,
                    device="vd" + d.device.removeprefix("/dev/xvd"),
                    disk_type=d.disk_type,
                    size_gib=d.size,
                    category=d.category,
                    serial=d.serial,
                )
                for d in self.instance_disks(instance)
            ]
            # Checked now, written by the first script's worker (off the thread that answers calls).
            sandbox = GuestSandbox(instance.instance_id, instance.guest, disks, build=False)
            self.sandboxes[instance.instance_id] = sandbox
        return sandbox

    @api("RunCommand", write=True)
    def run_command(self: EcsService, p: Params) -> dict[str, Any]:
        """Not processed: RepeatMode other than Once, Frequency, ContainerId/Name, Launcher, OSS output."""
        self._region(p)
        command_type = p.required("Type")
        if command_type not in COMMAND_TYPES:
            raise ApiError(
                "InvalidCmdType.NotFound", f"The specified command type {command_type!r} does not exist.", 403
            )
        raw = p.required("CommandContent")
        content = decode_content(raw, p.choice("ContentEncoding", ("PlainText", "Base64"), "PlainText"))
        p.choice("RepeatMode", ("Once", "Period", "NextRebootOnly", "EveryReboot", "DryRun"), "Once")
        if len(content.encode()) > MAX_CONTENT_BYTES:
            raise ApiError(
                "CmdContent.ExceedLimit",
                f"The command content exceeds the maximum size ({MAX_CONTENT_BYTES} bytes, 24 KB in Base64).",
                403,
            )
        instance_ids = p.list("InstanceId")
        if not instance_ids:
            raise missing_parameter("InstanceId")
        if len(instance_ids) > 100:
            raise ApiError("InstanceIds.ExceedLimit", "At most 100 instances per invocation.", 403)
        instances = []
        for instance_id in instance_ids:
            if instance_id not in self.instances:
                raise not_found("InvalidInstance.NotFound", f"instance {instance_id}")
            instances.append(self.instances[instance_id])
        parameters = p.json("Parameters", {}) or {}
        if p.bool("EnableParameter"):
            wanted = set(_PARAMETER.findall(content))
            missing = sorted(wanted - set(parameters))
            if missing:
                raise ApiError("Parameter.NotMatched", f"Parameters not supplied: {', '.join(missing)}.", 403)
            content = _PARAMETER.sub(lambda m: str(parameters[m.group(1)]), content)
        timeout = p.int("Timeout", 60, low=10, high=86400) or 60
        invocation = Invocation(
            invoke_id=self.cloud.ids.resource("t"),
            command_id=self.cloud.ids.resource("c"),
            name=p.str("Name", "") or "",
            command_type=command_type,
            content=content,
            timeout=timeout,
            working_dir=p.str("WorkingDir", "/root") or "/root",
            username=p.str("Username", "root") or "root",
            parameters=parameters,
            created_at=self.cloud.clock.iso(),
        )
        self.invocations[invocation.invoke_id] = invocation
        for instance in instances:
            self._dispatch(invocation, instance)
        return {"CommandId": invocation.command_id, "InvokeId": invocation.invoke_id}

    def _dispatch(self: EcsService, invocation: Invocation, instance: Instance) -> None:
        timings = self.cloud.timings
        run = InstanceRun(instance.instance_id, "Running", "Running", start_time=self.cloud.clock.iso())
        invocation.runs[instance.instance_id] = run
        shell = invocation.command_type == "RunShellScript"
        if instance.status != "Running":
            outcome: dict[str, Any] = {"status": "Aborted", "error_code": "InstanceNotRunning",
                                       "error_info": "the instance is not running when the command is delivered."}  # fmt: skip
            delay = timings.command_seconds
        elif not instance.guest.cloud_assistant:
            outcome = {"status": "Aborted", "error_code": "ClientNotRunning",
                       "error_info": "the Cloud Assistant client is not running on the instance."}  # fmt: skip
            delay = timings.client_timeout_seconds
        elif shell != (instance.os_type == "linux"):
            outcome = {"status": "Invalid", "error_code": "CommandNotApplicable",
                       "error_info": f"{invocation.command_type} does not apply to a {instance.os_type} instance."}  # fmt: skip
            delay = timings.command_seconds
        elif not shell:
            # Windows guests are not emulated: say so instead of running PowerShell/Bat under bash.
            outcome = {"status": "Failed", "error_code": "ExecutionException",
                       "error_info": f"the local cloud cannot run {invocation.command_type}: Windows guests are not emulated."}  # fmt: skip
            delay = timings.command_seconds
        else:
            self._start_script(invocation, instance, run)
            return
        self.cloud.clock.call_later(
            delay, lambda: self._finish_run(invocation, run, outcome), f"{invocation.invoke_id} done"
        )

    def _start_script(self: EcsService, invocation: Invocation, instance: Instance, run: InstanceRun) -> None:
        """Run the script off this thread, and reveal its outcome on the clock exactly as if it had run here.

        Why: a confined script takes 50-100 ms of real time, mostly waiting for its processes; run inline,
        a 1,000-instance fleet spent over a minute waiting. A few workers run them (guest/pool.py): one
        guest's scripts one at a time, in the order they were sent, as before, other guests' at once;
        meanwhile this thread answers the next calls. The outcome is
        needed only when the clock reaches it: the first possible reveal (command_seconds, or the timeout
        if shorter) waits for the script. Its timer is set now, and the other possible one gets its place
        in the timers' order now (clock.reserve), so timers fire in the order they did with the script
        run inline, and the same calls fail: whatever refuses the script before it runs still refuses it
        here (GuestSandbox.prepare), as a ConfinementError outcome or an error of this call."""
        clock, timings = self.cloud.clock, self.cloud.timings
        try:
            execute = self._sandbox(instance).prepare(
                invocation.content, timeout_s=invocation.timeout, working_dir=invocation.working_dir
            )
        except ConfinementError as exc:
            outcome = self._confinement_outcome(exc)
            clock.call_later(timings.command_seconds, lambda: self._finish_run(invocation, run, outcome),
                             f"{invocation.invoke_id} done")  # fmt: skip
            return
        future = self._script_runner().submit(instance.instance_id, execute)
        started = clock.now
        first = min(timings.command_seconds, float(invocation.timeout))
        place = clock.reserve()

        def reveal() -> None:
            try:
                result = future.result()
            except ConfinementError as exc:
                outcome, delay = self._confinement_outcome(exc), timings.command_seconds
            except Exception as exc:
                # The host failed (fork, disk): inline, that was an error of RunCommand, which has answered
                # by now; the invocation fails instead, saying why.
                outcome, delay = self._confinement_outcome(exc), timings.command_seconds
            else:
                outcome, delay = self._script_outcome(invocation, result)
            if delay == first:
                self._finish_run(invocation, run, outcome)
            else:
                clock.call_at(started + delay, lambda: self._finish_run(invocation, run, outcome),
                              f"{invocation.invoke_id} done", place=place)  # fmt: skip

        clock.call_later(first, reveal, f"{invocation.invoke_id} done")

    def _script_runner(self: EcsService) -> KeyedRunner:
        if self.script_runner is None:
            self.script_runner = KeyedRunner()  # one guest's scripts in order; other guests' at once (pool.py)
        return self.script_runner

    def _confinement_outcome(self: EcsService, exc: Exception) -> dict[str, Any]:
        # Nothing ran (README: the local cloud). The reason is in Output too, for callers that read only that.
        return {"status": "Failed", "error_code": "ExecutionException",
                "error_info": f"the local cloud did not run the script: {exc}",
                "output": f"localcloud: the script was not run: {exc}\n"}  # fmt: skip

    def _script_outcome(self: EcsService, invocation: Invocation, result: ScriptResult) -> tuple[dict[str, Any], float]:
        """The outcome of a script that ran in the instance's guest, and when it is revealed."""
        timings = self.cloud.timings
        if result.timed_out:
            outcome: dict[str, Any] = {"status": "Timeout", "error_code": "ExecutionTimeout",
                                       "error_info": "the command execution timed out.", "exit_code": result.exit_code}  # fmt: skip
            delay = float(invocation.timeout)
        else:
            outcome = {"status": "Success" if result.exit_code == 0 else "Failed", "exit_code": result.exit_code}
            if result.exit_code != 0:
                outcome.update(error_code="ExitCodeNonzero", error_info="the command execution exit code is not zero.")
            delay = timings.command_seconds
        outcome.update(output=result.output, dropped=result.dropped)
        return outcome, delay

    def _finish_run(self: EcsService, invocation: Invocation, run: InstanceRun, outcome: dict[str, Any]) -> None:
        run.status = outcome["status"]
        run.record_status = "Finished" if run.status in ("Success", "Failed", "Timeout") else "Failed"
        run.exit_code = outcome.get("exit_code")
        run.output = outcome.get("output", "")
        run.dropped = outcome.get("dropped", 0)
        run.error_code = outcome.get("error_code", "")
        run.error_info = outcome.get("error_info", "")
        run.finish_time = self.cloud.clock.iso()
        # The fields of ECS's documented sample (commandId, commandName, exitCode as a string, finishTime,
        # instanceId, invocationStatus); invokeId is cut off in that sample, so `event_shapes.assistant_invoke_id`
        # decides whether it is there (README: wiring).
        data = {
            "commandId": invocation.command_id,
            "commandName": invocation.name,
            "exitCode": "" if run.exit_code is None else str(run.exit_code),
            "finishTime": run.finish_time,
            "instanceId": run.instance_id,
            "invocationStatus": run.status,
        }
        if self.cloud.scenario.event_shapes.assistant_invoke_id:
            data["invokeId"] = invocation.invoke_id
        self.cloud.events.emit("acs.ecs", "ecs:CloudAssistant:TaskCompleted", run.instance_id, data)

    def _invocations_of(self: EcsService, invoke_id: Any) -> Iterable[Invocation]:
        """The invocations a scan filtered by InvokeId can match, in order: the one with that id (they are
        kept by id), or all of them (no InvokeId, or one p.str refuses: the scan's first test raises)."""
        if isinstance(invoke_id, str):
            found = self.invocations.get(invoke_id)
            return [found] if found is not None else []
        return self.invocations.values()

    @api("DescribeInvocations")
    def describe_invocations(self: EcsService, p: Params) -> dict[str, Any]:
        self._region(p)
        encoding = p.str("ContentEncoding", "Base64") or "Base64"
        include_output = p.bool("IncludeOutput")
        invoke_id, command_id, instance_id, invoke_status, command_type = (
            p.filter_str(k) for k in ("InvokeId", "CommandId", "InstanceId", "InvokeStatus", "CommandType")
        )
        selected = [
            inv
            for inv in self._invocations_of(invoke_id)
            if (not invoke_id or inv.invoke_id == invoke_id)
            and (not command_id or inv.command_id == command_id)
            and (not instance_id or instance_id in inv.runs)
            and (not invoke_status or inv.invoke_status == invoke_status)
            and (not command_type or inv.command_type == command_type)
        ]
        selected.reverse()  # newest first
        page, meta = _page(p, selected, default_size=10, max_size=50)
        return {
            **meta,
            "Invocations": {
                "Invocation": [
                    {
                        "InvokeId": inv.invoke_id,
                        "CommandId": inv.command_id,
                        "CommandName": inv.name,
                        "CommandType": inv.command_type,
                        "CommandContent": _encode(inv.content, encoding),
                        "CommandDescription": "",
                        "CreationTime": inv.created_at,
                        "InvocationStatus": inv.status,
                        "InvokeStatus": inv.invoke_status,
                        # A JSON object string, as the API documents it (was the Python repr).
                        "Parameters": json.dumps(inv.parameters) if inv.parameters else "",
                        "RepeatMode": "Once",
                        "Timed": False,
                        "Frequency": "",
                        "Timeout": inv.timeout,
                        "Username": inv.username,
                        "WorkingDir": inv.working_dir,
                        "Tags": {"Tag": []},
                        "InvokeInstances": {
                            "InvokeInstance": [
                                {
                                    "InstanceId": run.instance_id,
                                    "InstanceInvokeStatus": run.record_status,
                                    "InvocationStatus": run.status,
                                    "ExitCode": run.exit_code,
                                    "ErrorCode": run.error_code,
                                    "ErrorInfo": run.error_info,
                                    "Output": _encode(run.output, encoding) if include_output else "",
                                    "Dropped": run.dropped,
                                    "Repeats": 1,
                                    "CreationTime": inv.created_at,
                                    "StartTime": run.start_time,
                                    "FinishTime": run.finish_time,
                                    "UpdateTime": run.finish_time or run.start_time,
                                    "StopTime": "",
                                    "Timed": 0,
                                }
                                for run in inv.runs.values()
                            ]
                        },
                    }
                    for inv in page
                ]
            },
        }

    @api("DescribeInvocationResults")
    def describe_invocation_results(self: EcsService, p: Params) -> dict[str, Any]:
        """Output is Base64 unless ContentEncoding=PlainText, as documented."""
        self._region(p)
        _check_invocation_paging(p)
        encoding = p.choice("ContentEncoding", ("PlainText", "Base64"), "Base64") or "Base64"
        record_status = p.str("InvokeRecordStatus")
        invoke_id, command_id, instance_id = (p.filter_str(k) for k in ("InvokeId", "CommandId", "InstanceId"))
        rows = []
        for inv in self._invocations_of(invoke_id):
            if invoke_id and inv.invoke_id != invoke_id:
                continue
            if command_id and inv.command_id != command_id:
                continue
            for run in inv.runs.values():
                if instance_id and run.instance_id != instance_id:
                    continue
                if record_status and run.record_status != record_status:
                    continue
                rows.append((inv, run))
        page, meta = _page(p, rows, default_size=10, max_size=50)
        return {
            "Invocation": {
                **meta,
                "InvocationResults": {
                    "InvocationResult": [
                        {
                            "InvokeId": inv.invoke_id,
                            "CommandId": inv.command_id,
                            "InstanceId": run.instance_id,
                            "InvocationStatus": run.status,
                            "InvokeRecordStatus": run.record_status,
                            "ExitCode": run.exit_code,
                            "Output": _encode(run.output, encoding),
                            "Dropped": run.dropped,
                            "ErrorCode": run.error_code,
                            "ErrorInfo": run.error_info,
                            "StartTime": run.start_time,
                            "FinishedTime": run.finish_time,
                            "StopTime": "",
                            "Repeats": 1,
                            "Username": inv.username,
                            "Tags": {"Tag": []},
                        }
                        for inv, run in page
                    ]
                },
            }
        }


def _check_invocation_paging(p: Params) -> None:
    """DescribeInvocationResults documents its own paging errors: 403 InvalidParam.PageNumber /
    InvalidParam.PageSize (alibaba-apis.md §2.13), not the generic 400 InvalidParameter."""
    for name, low, high in (("PageNumber", 1, None), ("PageSize", 1, 50)):
        text = p.str(name)
        if text is None:
            continue
        if not text.lstrip("-").isdigit() or int(text) < low or (high is not None and int(text) > high):
            limit = f"{low}..{high}" if high is not None else f"at least {low}"
            raise ApiError(f"InvalidParam.{name}", f"The specified {name} {text!r} is not valid ({limit}).", 403)


def _encode(text: str, encoding: str) -> str:
    if encoding.lower() == "plaintext":
        return text
    return base64.b64encode(text.encode()).decode()
