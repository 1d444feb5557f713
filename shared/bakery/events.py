"""Events, both directions: CloudEvents FC receives (validated at the edge) and the `bakery:*` events
Bakery publishes on its custom bus. `type` = `bakery:<Resource>:<Event>`, `subject` = the resource id."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from bakery.errors import InvalidEvent

SOURCE = "bakery"

BAKE_REQUESTED = "bakery:Bake:Requested"
IMAGE_CREATION_STARTED = "bakery:Image:CreationStarted"
IMAGE_CHECK_FAILED = "bakery:Image:CheckFailed"
IMAGE_REPAIR_STARTED = "bakery:Image:RepairStarted"
IMAGE_REPAIRED = "bakery:Image:Repaired"
IMAGE_READY = "bakery:Image:Ready"
BAKE_FAILED = "bakery:Bake:Failed"
FAMILY_RETENTION_APPLIED = "bakery:Family:RetentionApplied"  # subject: the family; what retention did
BAKERY_TYPES = (BAKE_REQUESTED, IMAGE_CREATION_STARTED, IMAGE_CHECK_FAILED, IMAGE_REPAIR_STARTED, IMAGE_REPAIRED,
                IMAGE_READY, BAKE_FAILED, FAMILY_RETENTION_APPLIED)  # fmt: skip

ACTIONTRAIL_API_CALL = "ecs:ActionTrail:ApiCall"
SNAPSHOT_COMPLETED = "ecs:Snapshot:CreateSnapshotCompleted"
INSTANCE_STATE_CHANGE = "ecs:Instance:StateChange"
ASSISTANT_TASK_COMPLETED = "ecs:CloudAssistant:TaskCompleted"
OOS_EXECUTION_STATUS = "oos:CloudMonitor:Execution[StatusChange]"


@dataclass(frozen=True)
class CloudEvent:
    """The envelope every EventBridge-triggered invocation carries (CloudEvents 1.0 + Alibaba extensions)."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    data: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def parse(cls, payload: bytes | str | dict[str, Any]) -> CloudEvent:
        body = _json_object(payload)
        missing = [k for k in ("id", "source", "type") if not isinstance(body.get(k), str) or not body.get(k)]
        if missing:
            raise InvalidEvent(f"not a CloudEvent: missing {', '.join(missing)}")
        data = body.get("data")
        if isinstance(data, str):  # RawData-style or double-encoded payloads
            try:
                data = json.loads(data)
            except json.JSONDecodeError:
                raise InvalidEvent(f"event {body['id']}: data is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidEvent(f"event {body['id']} ({body['type']}): data must be a JSON object")
        return cls(body["id"], body["source"], body["type"], str(body.get("subject", "")), str(body.get("time", "")),
                   data, body)  # fmt: skip


@dataclass(frozen=True)
class TimerEvent:
    """What an FC timer trigger sends: {"triggerTime", "triggerName", "payload"}."""

    trigger_name: str
    trigger_time: str
    payload: str


def parse_invocation(payload: bytes | str | dict[str, Any]) -> CloudEvent | TimerEvent:
    body = _json_object(payload)
    if "triggerName" in body and "triggerTime" in body:
        payload = body.get("payload", "")
        return TimerEvent(str(body["triggerName"]), str(body["triggerTime"]),
                          payload if isinstance(payload, str) else json.dumps(payload))  # fmt: skip
    return CloudEvent.parse(body)


def _json_object(payload: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    try:
        body = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidEvent("the invocation payload is not JSON") from None
    if isinstance(body, list):  # event-streaming mode delivers batches; event-driven (ours) delivers one
        raise InvalidEvent("a batch of events arrived; Bakery's triggers use event-driven mode (one event each)")
    if not isinstance(body, dict):
        raise InvalidEvent("the invocation payload is not a JSON object")
    return body


@dataclass(frozen=True)
class BakeryEvent:
    type: str
    subject: str
    data: dict[str, Any]

    @property
    def source(self) -> str:
        return SOURCE

    @property
    def event_id(self) -> str:
        """Deterministic: a retried publish of the same fact carries the same id (receivers dedupe on it)."""
        digest = hashlib.sha256(json.dumps([self.type, self.subject, self.data], sort_keys=True).encode()).hexdigest()
        return f"bk-{digest[:24]}"
