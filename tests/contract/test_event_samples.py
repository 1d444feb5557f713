"""Contract: the system-event samples in events/ (the fixtures every test and `bakery invoke` uses) have the
shapes Alibaba documents, and localcloud emits those same shapes.

Sources (README "Wiring: every cloud contract, and its source"): ECS "Subscribe to Cloud Assistant events"
(TaskCompleted sample; its keys are alphabetical and cut off after invocationStatus), OOS "System events for
automated tasks" (execution content), ECS snapshot and instance event notifications (content), ActionTrail's
samples (flat RPC request parameters), EventBridge's service-event samples (subject acs.<svc>:<region>:<acct>:<id>).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from localcloud import LocalCloud, Scenario
from localcloud.testing import running

EVENTS = Path(__file__).resolve().parents[2] / "events"
SUBJECT = re.compile(r"^acs\.(ecs|oos):[a-z0-9-]+:\d+:[\w-]*$")

# Documented data keys per system event type (None: any keys, the record is ActionTrail's own).
DOCUMENTED_KEYS: dict[str, set[str] | None] = {
    "ecs:CloudAssistant:TaskCompleted": {
        "commandId",
        "commandName",
        "exitCode",
        "finishTime",
        "instanceId",
        "invocationStatus",
        "invokeId",
    },
    "oos:CloudMonitor:Execution[StatusChange]": {
        "executionId",
        "status",
        "templateId",
        "templateVersion",
        "templateName",
        "executedBy",
        "startTime",
        "endTime",
        "duration",
        "parentExecutionId",
    },
    "ecs:Snapshot:CreateSnapshotCompleted": {
        "result",
        "snapshotId",
        "snapshotName",
        "snapshotType",
        "diskId",
        "startTime",
        "endTime",
    },
    "ecs:Instance:StateChange": {"resourceId", "resourceType", "state"},
    "ecs:ActionTrail:ApiCall": None,
    "ecs:ActionTrail:ConsoleOperation": None,  # ActionTrail's record of a console operation (eventType)
}


def _samples() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if str(event.get("source", "")).startswith("acs."):
            out.append((path.name, event))
    return out


@pytest.mark.parametrize(("name", "event"), _samples(), ids=[n for n, _ in _samples()])
def test_a_system_event_sample_has_the_documented_shape(name: str, event: dict[str, Any]) -> None:
    # Given a sample of an Alibaba service event
    documented = DOCUMENTED_KEYS[event["type"]]
    # Then its subject is the service-event form and its data carries the documented keys, nothing invented
    assert SUBJECT.match(event["subject"]), event["subject"]
    if documented is not None:
        assert set(event["data"]) == documented, name
    if event["type"] == "ecs:CloudAssistant:TaskCompleted":
        assert isinstance(event["data"]["exitCode"], str)  # "0" in the documented sample
    if event["type"] == "ecs:ActionTrail:ApiCall":
        params = event["data"]["requestParameters"]
        assert all(isinstance(v, str) for v in params.values())  # RPC wire values
        if event["data"]["eventName"] == "TagResources":
            assert any(re.fullmatch(r"ResourceId\.\d+", k) for k in params)  # flat, as ActionTrail's samples show
    if event["data"].get("eventName") == "CreateImage":
        # responseElements is "the API response" (ActionTrail management event structure): CreateImage's body
        assert set(event["data"]["responseElements"]) == {"RequestId", "ImageId"}


def test_localcloud_emits_the_documented_shapes() -> None:
    # Given a region where a command runs, an instance stops, and a snapshot is made
    from alibabacloud_ecs20140526 import models as m

    cloud = LocalCloud(Scenario.from_mapping({"seed": 2, "instances": [{"id": "i-web"}]}))
    with running(cloud, "inprocess") as env:
        env.ecs.run_command(m.RunCommandRequest(region_id=env.region, command_content="true", type="RunShellScript",
                                                instance_id=["i-web"]))  # fmt: skip
        env.ecs.stop_instance(m.StopInstanceRequest(instance_id="i-web"))
        disk = next(iter(cloud.ecs.disks))
        env.ecs.create_snapshot(m.CreateSnapshotRequest(disk_id=disk))
        cloud.run_until_idle()
    # Then every system event it published has the documented keys and subject form
    seen = set()
    for published in cloud.events.read(0):
        event = published.event
        documented = DOCUMENTED_KEYS.get(event["type"])
        if event["type"] in DOCUMENTED_KEYS:
            seen.add(event["type"])
            assert SUBJECT.match(event["subject"]), event["subject"]
            if documented is not None:
                assert set(event["data"]) == documented, event["type"]
    assert {"ecs:CloudAssistant:TaskCompleted", "ecs:Instance:StateChange", "ecs:Snapshot:CreateSnapshotCompleted",
            "ecs:ActionTrail:ApiCall"} <= seen  # fmt: skip
    cloud.close()
