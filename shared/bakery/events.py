"""Events, both directions: CloudEvents FC receives (validated at the edge) and the `bakery:*` events
Bakery publishes on its custom bus. `type` = `bakery:<Resource>:<Event>`, `subject` = the resource id."""

from __future__ import annotations

import hashlib
import json
import re
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


@dataclass(frozen=True)
class TagCall:
    """What an ActionTrail `TagResources` record says, whatever shape it arrived in.

    Alibaba does not publish an EventBridge sample of this record (README: wiring). Its ActionTrail
    samples keep RPC params flat (`ResourceId.1`, `Tag.1.Key`), its management-event structure also
    defines `requestParameterJson` (nested lists), and EventBridge's own ActionTrail sample carries no
    request parameters at all — only `referencedResources`. Each shape is read; what a shape does not
    say is None, and the bake re-reads the instance before acting, so an unknown is never a guess."""

    resource_type: str | None  # "instance", "image"... (lower case); None when the record does not say
    resource_ids: tuple[str, ...]
    trigger: bool | None  # did this call set bakery:bake=true? None when the record does not carry the tags

    @classmethod
    def parse(cls, data: dict[str, Any], trigger_key: str, truthy: Any) -> TagCall:
        flat = data.get("requestParameters")
        nested = data.get("requestParameterJson")
        if isinstance(nested, str):
            try:
                nested = json.loads(nested)
            except json.JSONDecodeError:
                nested = None
        if isinstance(flat, dict) and any(_FLAT_TAG_KEY.match(str(k)) or _FLAT_ID_KEY.match(str(k)) for k in flat):
            ids = tuple(
                str(v) for k, v in sorted(flat.items(), key=lambda kv: _index(kv[0])) if _FLAT_ID_KEY.match(str(k))
            )
            pairs = [(flat.get(k), flat.get(k[:-4] + ".Value")) for k in flat if _FLAT_TAG_KEY.match(str(k))]
            return cls(_lower(flat.get("ResourceType")), ids, _trigger(pairs, trigger_key, truthy))
        if isinstance(nested, dict) and ("Tag" in nested or "ResourceId" in nested):
            raw_ids = nested.get("ResourceId")
            ids = tuple(str(v) for v in (raw_ids if isinstance(raw_ids, list) else [raw_ids] if raw_ids else []))
            tag_list = nested.get("Tag") if isinstance(nested.get("Tag"), list) else []
            pairs = [(t.get("Key"), t.get("Value")) for t in tag_list if isinstance(t, dict)]
            return cls(_lower(nested.get("ResourceType")), ids, _trigger(pairs, trigger_key, truthy))
        referenced = data.get("referencedResources")
        instances = referenced.get("ACS::ECS::Instance") if isinstance(referenced, dict) else None
        ids = tuple(str(v) for v in instances) if isinstance(instances, list) else ()
        return cls("instance" if ids else None, ids, None)


_FLAT_TAG_KEY = re.compile(r"^Tag\.\d+\.Key$")
_FLAT_ID_KEY = re.compile(r"^ResourceId\.\d+$")


def _index(key: str) -> int:
    match = re.search(r"\.(\d+)", str(key))
    return int(match.group(1)) if match else 0


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _trigger(pairs: list[tuple[Any, Any]], trigger_key: str, truthy: Any) -> bool:
    return any(key == trigger_key and isinstance(value, str) and truthy(value) for key, value in pairs)
