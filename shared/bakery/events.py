"""Events, both directions: CloudEvents FC receives (validated at the edge) and the `bakery:*` events
Bakery publishes on its custom bus. `type` = `bakery:<Resource>:<Event>`, `subject` = the resource id."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
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
FAMILY_PROMOTED = "bakery:Family:Promoted"  # subject: the family; the images one sweep promoted into it
FAMILY_RETENTION_APPLIED = "bakery:Family:RetentionApplied"  # subject: the family; what retention did
IMAGE_ADOPTED = "bakery:Image:Adopted"  # an image made outside Bakery is followed (stages.adopt)
IMAGE_NOT_ADOPTED = "bakery:Image:NotAdopted"  # ... or reported and left as it is (no check, no tag room...)
BAKERY_TYPES = (BAKE_REQUESTED, IMAGE_CREATION_STARTED, IMAGE_CHECK_FAILED, IMAGE_REPAIR_STARTED, IMAGE_REPAIRED,
                IMAGE_READY, BAKE_FAILED, FAMILY_PROMOTED, FAMILY_RETENTION_APPLIED, IMAGE_ADOPTED,
                IMAGE_NOT_ADOPTED)  # fmt: skip

# The source each handled type is published under (template.yml's triggers and rules match both).
_SOURCES = {"bakery:": SOURCE, "ecs:": "acs.ecs", "oos:": "acs.oos"}


def source_of(event_type: str) -> str | None:
    """The source an event of `event_type` comes from, None for a type Bakery knows nothing about."""
    return next((source for prefix, source in _SOURCES.items() if event_type.startswith(prefix)), None)


ACTIONTRAIL_API_CALL = "ecs:ActionTrail:ApiCall"
# The ECS console's operations (its "Create Custom Image"): ActionTrail eventType ConsoleOperation, which
# EventBridge types <service>:ActionTrail:ConsoleOperation (EventBridge "ActionTrail events"; ActionTrail
# "Management event structure": eventType).
ACTIONTRAIL_CONSOLE_OPERATION = "ecs:ActionTrail:ConsoleOperation"
ACTIONTRAIL_WRITES = (ACTIONTRAIL_API_CALL, ACTIONTRAIL_CONSOLE_OPERATION)
IMAGE_CREATING_CALLS = ("CreateImage",)  # the ActionTrail eventName of a call that makes an image Bakery may adopt
SNAPSHOT_COMPLETED = "ecs:Snapshot:CreateSnapshotCompleted"
INSTANCE_STATE_CHANGE = "ecs:Instance:StateChange"
ASSISTANT_TASK_COMPLETED = "ecs:CloudAssistant:TaskCompleted"
OOS_EXECUTION_STATUS = "oos:CloudMonitor:Execution[StatusChange]"


# -- the edge: bytes → a well-formed JSON object --------------------------------------------------------
# Limits on what is accepted at all, before any field is read. EventBridge caps an event at 64 KB (PutEvents);
# nothing Bakery is routed nests deeper than ActionTrail's requestParameterJson (about 5 levels).
MAX_PAYLOAD_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_ID_CHARS = 256  # id, source, type, subject, time, timer names: short strings


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")  # json.loads accepts NaN/Infinity; JSON does not


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} does not fit a float")
    return value


def _json_object(payload: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(payload, dict):
        body: Any = payload
    else:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise InvalidEvent(f"the invocation payload is larger than {MAX_PAYLOAD_BYTES // 1024} KB")
        try:
            # Strict UTF-8: FC hands over the bytes EventBridge delivered (json.loads would also guess UTF-16/32).
            text = payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload
            body = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except (ValueError, UnicodeDecodeError, RecursionError):  # ValueError: JSONDecodeError, 4300+ digit ints
            raise InvalidEvent("the invocation payload is not JSON") from None
    if isinstance(body, list):  # event-streaming mode delivers batches; event-driven (ours) delivers one
        raise InvalidEvent("a batch of events arrived; Bakery's triggers use event-driven mode (one event each)")
    if not isinstance(body, dict):
        raise InvalidEvent("the invocation payload is not a JSON object")
    _check_tree(body)
    return body


def _check_tree(body: dict[str, Any]) -> None:
    """Refuse what no later step should have to think about: nesting past MAX_DEPTH (recursion in any
    consumer), lone surrogates in any string or key (they cannot be encoded: hashing a bake id, an SDK
    request, a log line), and non-JSON values in a decoded mapping. Iterative: a deep tree cannot recurse."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                raise InvalidEvent("the invocation payload has text that is not valid Unicode (a lone surrogate)")
        elif isinstance(value, dict):
            if depth > MAX_DEPTH:
                raise InvalidEvent(f"the invocation payload nests deeper than {MAX_DEPTH} levels")
            for key, item in value.items():
                if not isinstance(key, str) or not _encodable(key):
                    raise InvalidEvent("the invocation payload has a key that is not valid Unicode text")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > MAX_DEPTH:
                raise InvalidEvent(f"the invocation payload nests deeper than {MAX_DEPTH} levels")
            stack.extend((item, depth + 1) for item in value)
        elif value is not None and not isinstance(value, (bool, int, float)):
            raise InvalidEvent(f"the invocation payload holds a {type(value).__name__}, which JSON cannot")
        elif isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise InvalidEvent("the invocation payload holds a number JSON cannot (NaN or infinity)")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def show(value: Any, limit: int = 60) -> str:
    """A value for an error message or log line: repr (escapes control characters), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short_text(body: dict[str, Any], key: str, what: str, *, required: bool) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > MAX_ID_CHARS:
        raise InvalidEvent(f"{what}: {key} must be a string of at most {MAX_ID_CHARS} characters ({show(value)})")
    return value


@dataclass(frozen=True)
class CloudEvent:
    """The envelope every EventBridge-triggered invocation carries (CloudEvents 1.0 + Alibaba extensions).

    `account_id` / `region_id` are EventBridge's `aliyunaccountid` / `aliyunregionid` (None when absent):
    the handler compares them with the function's own before anything is routed."""

    id: str
    source: str
    type: str
    subject: str
    time: str
    data: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)
    account_id: str | None = None
    region_id: str | None = None

    @classmethod
    def parse(cls, payload: bytes | str | dict[str, Any]) -> CloudEvent:
        body = _json_object(payload)
        missing = [k for k in ("id", "source", "type") if not isinstance(body.get(k), str) or not body.get(k)]
        if missing:
            raise InvalidEvent(f"not a CloudEvent: missing {', '.join(missing)}")
        for key in ("id", "source", "type"):
            _short_text(body, key, "not a CloudEvent", required=True)
        what = f"event {show(body['id'])}"
        subject = _short_text(body, "subject", what, required=False) or ""
        time = _short_text(body, "time", what, required=False) or ""
        account = _short_text(body, "aliyunaccountid", what, required=False)
        region = _short_text(body, "aliyunregionid", what, required=False)
        data = body.get("data")
        if isinstance(data, str):  # RawData-style or double-encoded payloads
            if len(data) > MAX_PAYLOAD_BYTES:
                raise InvalidEvent(f"{what}: data is too large")
            try:
                data = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
            except (ValueError, RecursionError):
                raise InvalidEvent(f"event {body['id']}: data is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidEvent(f"event {body['id']} ({body['type']}): data must be a JSON object")
        _check_tree(data)  # a decoded string is checked like the body was
        return cls(body["id"], body["source"], body["type"], subject, time, data, body, account, region)

    def with_data(self, data: dict[str, Any]) -> CloudEvent:
        """The same envelope with only the validated fields a stage may read (entrypoints' typed parsing)."""
        return replace(self, data=data)


# FC timer triggers: triggerTime is UTC ISO 8601 ("2026-01-05T09:05:00Z"); names are FC's resource names.
_TRIGGER_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?", re.ASCII)
_TRIGGER_NAME = re.compile(r"[A-Za-z_][\w-]{0,127}", re.ASCII)


@dataclass(frozen=True)
class TimerEvent:
    """What an FC timer trigger sends: {"triggerTime", "triggerName", "payload"}."""

    trigger_name: str
    trigger_time: str
    payload: str

    @classmethod
    def parse(cls, body: dict[str, Any]) -> TimerEvent:
        name, when, payload = body.get("triggerName"), body.get("triggerTime"), body.get("payload", "")
        if not isinstance(name, str) or not _TRIGGER_NAME.fullmatch(name):
            raise InvalidEvent(f"timer invocation: triggerName must be a trigger's name ({show(name)})")
        if not isinstance(when, str) or not _TRIGGER_TIME.fullmatch(when):
            raise InvalidEvent(f"timer {name}: triggerTime must be an ISO 8601 time ({show(when)})")
        if payload is None:
            payload = ""
        return cls(name, when, payload if isinstance(payload, str) else json.dumps(payload))


def parse_invocation(payload: bytes | str | dict[str, Any]) -> CloudEvent | TimerEvent:
    body = _json_object(payload)
    if "triggerName" in body and "triggerTime" in body:
        return TimerEvent.parse(body)
    return CloudEvent.parse(body)


# -- typed data: the fields each routed event type is read for, checked before any stage runs ------------
# ASCII ids, matched whole (re.fullmatch: `$` would let a trailing newline through; `\w` alone is Unicode).
IMAGE_ID = re.compile(r"m-[A-Za-z0-9_-]{1,64}", re.ASCII)
INSTANCE_ID = re.compile(r"i-[A-Za-z0-9_-]{1,64}", re.ASCII)
SNAPSHOT_ID = re.compile(r"s-[A-Za-z0-9_-]{1,62}", re.ASCII)
EXECUTION_ID = re.compile(r"exec-[A-Za-z0-9_-]{1,64}", re.ASCII)
BAKE_ID = re.compile(r"b-[A-Za-z0-9_-]{1,64}", re.ASCII)
MAX_SNAPSHOTS = 17  # DiskDeviceMapping: one system disk + up to 16 data disks (alibaba-apis.md §2.2)
MAX_TAG_VALUE = 128  # ECS tag values (TagResources), and so family / name prefix


def required_text(event: CloudEvent, name: str, pattern: re.Pattern[str] | None = None, *,
                  limit: int = MAX_TAG_VALUE) -> str:  # fmt: skip
    """data.<name>: a non-empty string of at most `limit` characters, matching `pattern` whole."""
    value = event.data.get(name)
    if (not isinstance(value, str) or not value or len(value) > limit
            or (pattern is not None and not pattern.fullmatch(value))):  # fmt: skip
        raise InvalidEvent(f"{event.type} event {show(event.id)}: data.{name} is missing or malformed ({show(value)})")
    return value


def optional_text(event: CloudEvent, name: str, *, limit: int = MAX_TAG_VALUE) -> str:
    """data.<name> when it may be absent, null or empty: "" then."""
    value = event.data.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidEvent(f"{event.type} event {show(event.id)}: data.{name} must be a string of at most {limit} "
                           f"characters ({show(value)})")  # fmt: skip
    return value


MAX_PROMOTED = 1000  # image ids in one bakery:Family:Promoted (a sweep's promotions into one family)


def image_ids(event: CloudEvent, name: str = "imageIds") -> tuple[str, ...]:
    """data.<name>: 1-MAX_PROMOTED distinct image ids."""
    value = event.data.get(name)
    if (not isinstance(value, list) or not 1 <= len(value) <= MAX_PROMOTED
            or not all(isinstance(v, str) and IMAGE_ID.fullmatch(v) for v in value) or len(set(value)) != len(value)):  # fmt: skip
        raise InvalidEvent(f"{event.type} event {show(event.id)}: data.{name} must be 1-{MAX_PROMOTED} distinct image "
                           f"ids ({show(value)})")  # fmt: skip
    return tuple(value)


@dataclass(frozen=True)
class BakeRequest:
    """`bakery:Bake:Requested`: {"instanceId"} or {"snapshotIds", "family", "name"}; "bakeId" optional."""

    instance_id: str | None
    snapshot_ids: tuple[str, ...]
    bake_id: str | None
    family: str
    name: str

    @classmethod
    def parse(cls, event: CloudEvent) -> BakeRequest:
        bake_id = required_text(event, "bakeId", BAKE_ID) if event.data.get("bakeId") is not None else None
        # Checked in both forms (a malformed request is dropped whole); an instance bake takes its family and
        # name from the instance's tags, never from the request.
        family, name = optional_text(event, "family"), optional_text(event, "name")
        if "snapshotIds" in event.data:
            value = event.data["snapshotIds"]
            if (
                not isinstance(value, list)
                or not 1 <= len(value) <= MAX_SNAPSHOTS
                or not all(isinstance(v, str) and SNAPSHOT_ID.fullmatch(v) for v in value)
                or len(set(value)) != len(value)
            ):
                raise InvalidEvent(
                    f"{event.type} event {show(event.id)}: data.snapshotIds must be 1-{MAX_SNAPSHOTS} distinct "
                    f"snapshot ids, the system disk's first ({show(value)})"
                )
            if "instanceId" in event.data:
                raise InvalidEvent(f"{event.type} event {show(event.id)}: give instanceId or snapshotIds, not both")
            return cls(None, tuple(value), bake_id, family, name)
        return cls(required_text(event, "instanceId", INSTANCE_ID), (), bake_id, "", "")


def tag_call_data(event: CloudEvent) -> dict[str, Any]:
    """ActionTrail TagResources: the record's fields TagCall and the claim read, each of the type they assume.

    RPC request parameters are strings on the wire (ActionTrail's samples; tests/contract/test_event_samples.py):
    a record whose parameters are not a string map, or whose JSON form is not the documented shape, is malformed."""
    what = f"{event.type} event {show(event.id)}"
    out: dict[str, Any] = {"eventName": event.data.get("eventName"), **_record_basics(event)}
    flat = _flat_parameters(event)
    if flat is not None:
        out["requestParameters"] = flat
    nested = _nested_parameters(event)
    if nested is not None:
        ids, tag_list, kind = nested.get("ResourceId"), nested.get("Tag"), nested.get("ResourceType")
        if not (
            ids is None or isinstance(ids, str) or (isinstance(ids, list) and all(isinstance(i, str) for i in ids))
        ):
            raise InvalidEvent(f"{what}: requestParameterJson.ResourceId must be ids ({show(ids)})")
        if not (tag_list is None or (isinstance(tag_list, list) and all(
                isinstance(t, dict) and all(isinstance(t.get(k), (str, type(None))) for k in ("Key", "Value"))
                for t in tag_list))):  # fmt: skip
            raise InvalidEvent(f"{what}: requestParameterJson.Tag must be a list of {{Key, Value}} ({show(tag_list)})")
        if kind is not None and not isinstance(kind, str):
            raise InvalidEvent(f"{what}: requestParameterJson.ResourceType must be a string ({show(kind)})")
        out["requestParameterJson"] = nested
    return out


def _record_basics(event: CloudEvent) -> dict[str, Any]:
    """Any ActionTrail record's eventId (a string when present) and referencedResources (the instance and image
    id lists Bakery reads), each of the type its readers assume: a record that breaks them is malformed."""
    what = f"{event.type} event {show(event.id)}"
    out: dict[str, Any] = {}
    event_id = event.data.get("eventId")
    if event_id is not None:
        if not isinstance(event_id, str) or not event_id or len(event_id) > MAX_ID_CHARS:
            raise InvalidEvent(f"{what}: data.eventId must be a string ({show(event_id)})")
        out["eventId"] = event_id
    referenced = event.data.get("referencedResources")
    if referenced is not None:
        listed = (
            [referenced.get(k) for k in ("ACS::ECS::Instance", "ACS::ECS::Image")]
            if isinstance(referenced, dict)
            else []
        )
        if not isinstance(referenced, dict) or not all(
            ids is None or (isinstance(ids, list) and all(isinstance(i, str) for i in ids)) for ids in listed
        ):
            raise InvalidEvent(f"{what}: data.referencedResources must map resource types to ids ({show(referenced)})")
        out["referencedResources"] = referenced
    return out


@dataclass(frozen=True)
class ImageCall:
    """What an ActionTrail CreateImage record says about the image it made, whatever shape it arrived in.

    Alibaba publishes no EventBridge sample of this record (README: wiring). ActionTrail's management-event
    structure defines `responseElements` ("the API response": CreateImage answers {RequestId, ImageId}),
    `referencedResources` (the resources involved: new and source ids alike) and `errorCode` (a failed call).
    Each is read; what the record does not say is None, and adoption re-reads the image before acting."""

    image_id: str | None  # the new image; None when the record does not name it (the sweep discovers it)
    failed: bool  # the call failed (errorCode): no image was made
    check_requested: bool | None  # DetectionStrategy given? None when the record does not carry the request
    bakery_tagged: bool  # the request tagged the image bakery:bake-id: Bakery's own CreateImage

    @classmethod
    def parse(cls, event: CloudEvent, bake_id_key: str) -> ImageCall:
        what = f"{event.type} event {show(event.id)}"
        data = {**event.data, **_record_basics(event)}
        failed = bool(data.get("errorCode"))
        response = data.get("responseElements")
        if response is not None and not isinstance(response, dict):
            raise InvalidEvent(f"{what}: data.responseElements must be an object ({show(response)})")
        image_id = (response or {}).get("ImageId")
        if image_id is not None and not (isinstance(image_id, str) and IMAGE_ID.fullmatch(image_id)):
            raise InvalidEvent(f"{what}: data.responseElements.ImageId is not an image id ({show(image_id)})")
        request = _request_parameters(event)
        odd = {k: v for k, v in (request or {}).items() if k.endswith("ImageId") and not isinstance(v, str)}
        if odd:  # an image id in a request is one string (SourceImageId, ImageId), whatever the record's shape
            raise InvalidEvent(f"{what}: the request's {', '.join(sorted(odd))} must be an image id ({show(odd)})")
        if image_id is None:
            listed = (data.get("referencedResources") or {}).get("ACS::ECS::Image")
            # The request's own image ids are inputs (a source image), never the new one.
            inputs = {v for k, v in (request or {}).items() if k.endswith("ImageId")}
            made = [i for i in listed or [] if IMAGE_ID.fullmatch(i) and i not in inputs]
            image_id = made[0] if len(made) == 1 else None
        check: bool | None = None
        bakery_tagged = False
        if request is not None and any(k in request for k in _IMAGE_SOURCE_KEYS):
            # The request as the caller sent it (an API caller's record). "If you do not configure this parameter,
            # detection is not triggered" (CreateImage DetectionStrategy, SDK docstring): its absence is an answer.
            # A console record may use names of its own, so only an ApiCall's absence counts.
            strategy = request.get("DetectionStrategy")
            check = bool(strategy) if strategy or event.type == ACTIONTRAIL_API_CALL else None
            tag_keys = [v for k, v in request.items() if _FLAT_TAG_KEY.match(str(k))]
            if isinstance(request.get("Tag"), list):
                tag_keys += [t.get("Key") for t in request["Tag"] if isinstance(t, dict)]
            bakery_tagged = bake_id_key in tag_keys
        return cls(image_id, failed, check, bakery_tagged)


_IMAGE_SOURCE_KEYS = ("InstanceId", "SnapshotId", "DiskDeviceMapping.1.SnapshotId", "DiskDeviceMapping")


def _request_parameters(event: CloudEvent) -> dict[str, Any] | None:
    """requestParameters (flat RPC keys) or requestParameterJson (nested), as one mapping; None when absent."""
    flat = _flat_parameters(event)
    return flat if flat is not None else _nested_parameters(event)


def _flat_parameters(event: CloudEvent) -> dict[str, str] | None:
    """data.requestParameters: an object of strings (RPC wire values) when present."""
    flat = event.data.get("requestParameters")
    if flat is not None and (not isinstance(flat, dict) or not all(isinstance(v, str) for v in flat.values())):
        raise InvalidEvent(f"{event.type} event {show(event.id)}: data.requestParameters must be an object of "
                           f"strings ({show(flat)})")  # fmt: skip
    return flat


def _nested_parameters(event: CloudEvent) -> dict[str, Any] | None:
    """data.requestParameterJson: an object, given as one or as JSON text, when present."""
    what = f"{event.type} event {show(event.id)}"
    nested = event.data.get("requestParameterJson")
    if isinstance(nested, str):
        try:
            nested = json.loads(nested, parse_constant=_refuse_constant, parse_float=_finite_float)
        except (ValueError, RecursionError):
            raise InvalidEvent(f"{what}: data.requestParameterJson is not JSON") from None
        if isinstance(nested, (dict, list)):
            _check_tree({"requestParameterJson": nested})
    if nested is not None and not isinstance(nested, dict):
        raise InvalidEvent(f"{what}: data.requestParameterJson must be an object ({show(nested)})")
    return nested


def task_completed_data(event: CloudEvent) -> dict[str, Any]:
    """Cloud Assistant TaskCompleted: instanceId, and invokeId / commandName when present (both strings)."""
    out: dict[str, Any] = {"instanceId": required_text(event, "instanceId", INSTANCE_ID)}
    for key in ("invokeId", "commandName"):
        if event.data.get(key) is not None:
            out[key] = required_text(event, key, limit=MAX_ID_CHARS)
    return out


def instance_state_data(event: CloudEvent) -> dict[str, Any]:
    """ECS InstanceStateChange: the instance (resourceId) and its new state."""
    return {
        "resourceId": required_text(event, "resourceId", INSTANCE_ID),
        "state": required_text(event, "state", limit=32),
    }


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
        for kind, name in (("ACS::ECS::Instance", "instance"), ("ACS::ECS::Image", "image")):
            listed = referenced.get(kind) if isinstance(referenced, dict) else None
            ids = tuple(str(v) for v in listed) if isinstance(listed, list) else ()
            if ids:
                return cls(name, ids, None)
        return cls(None, (), None)


_FLAT_TAG_KEY = re.compile(r"^Tag\.\d+\.Key$")
_FLAT_ID_KEY = re.compile(r"^ResourceId\.\d+$")


def _index(key: str) -> int:
    match = re.search(r"\.(\d+)", str(key))
    return int(match.group(1)) if match else 0


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _trigger(pairs: list[tuple[Any, Any]], trigger_key: str, truthy: Any) -> bool:
    return any(key == trigger_key and isinstance(value, str) and truthy(value) for key, value in pairs)
