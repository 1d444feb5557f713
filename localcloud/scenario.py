"""Scenario files: a region to emulate, described in YAML.

    region: cn-hangzhou
    account_id: "1234567890123456"
    seed: 7
    timings: {image_seconds_per_gib: 10, check_seconds: 300, repair_seconds: 1200}
    quotas: {images: 100}
    rate_limits: {CreateImage: 5}            # calls per (virtual) second, per action
    instances:
      - id: i-web1
        type: ecs.g7.large                   # i/d-series types get local disks
        status: Running
        os: linux
        platform: Ubuntu
        disks: [{type: system, category: cloud_essd, size: 40}, {type: data, category: cloud_essd, size: 100}]
        tags: {env: prod}
        guest: {check_failures: [Nvme], secrets: [/root/.ssh/id_rsa], system_disk_free_mb: 5000}
    faults:
      - {action: CreateImage, code: ServiceUnavailable, nth: 2}
    images:                                  # custom images that exist before the run (a family's history)
      - {id: m-web-v1, family: web, size: 40, age_days: 20, check_failures: []}
      - {id: m-web-v2, family: web, size: 40, age_days: 10, check_failures: []}
    launch_templates:                        # versions pin images (what retention must not delete)
      - {id: lt-web, name: web, default_version: 1, versions: [{image_id: m-web-v1}, {image_id: m-web-v2}]}
    buckets: [bakery-code]                   # OSS buckets that exist (also {name: x, owner: "<account id>"})

Unknown keys are errors that name the key and the keys allowed there: a typo must not pass silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from localcloud.clock import DEFAULT_START
from localcloud.guest.spec import GuestSpec
from localcloud.services.oss.model import bucket_name_problem


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message names the file, the key and what to do."""


@dataclass
class Timings:
    image_seconds_per_gib: float = 10.0
    snapshot_seconds_per_gib: float | None = None  # default: image_seconds_per_gib
    usable_seconds: float = 30.0  # Available → Usable
    check_seconds: float = 300.0  # image check: Processing → Finished
    repair_seconds: float = 1200.0  # ACS-ECS-RepairImage end to end
    stop_seconds: float = 10.0
    start_seconds: float = 15.0
    pending_seconds: float = 30.0
    command_seconds: float = 2.0  # Cloud Assistant delivery + run
    client_timeout_seconds: float = 60.0  # Cloud Assistant delivery timeout (no client → Aborted)
    # Simulated time each API call takes (0: calls are instantaneous). Set it (e.g. 0.05) when rate limits are
    # tighter than the calls a caller makes in one instant, so token buckets refill between calls.
    api_call_seconds: float = 0.0

    @property
    def snapshot_per_gib(self) -> float:
        return self.image_seconds_per_gib if self.snapshot_seconds_per_gib is None else self.snapshot_seconds_per_gib


@dataclass
class EventShapes:
    """Where Alibaba publishes no sample, which shape the emulated events take (README: wiring), so Bakery
    can be tested under each plausible answer."""

    # ActionTrail ApiCall `data`: flat (RPC wire keys `ResourceId.1`, `Tag.1.Key`, as ActionTrail's own samples
    # show), json (`requestParameterJson`, nested lists), or absent (EventBridge's ActionTrail sample: none).
    actiontrail_parameters: str = "flat"
    # Does the record carry responseElements (the API's answer: CreateImage's ImageId)? ActionTrail defines the
    # field; no published CreateImage record shows it (UNCONFIRMED), so a scenario can leave it out.
    actiontrail_response: bool = True
    # ACS-ECS-RepairImage's own CreateImage: recorded as the execution's starter (caller: an OOS template without
    # a RAM role acts as its caller), without userName (service), or not at all (none). UNCONFIRMED which.
    repair_create_image: str = "caller"
    assistant_invoke_id: bool = True  # does ecs:CloudAssistant:TaskCompleted carry invokeId?


@dataclass
class Quotas:
    images: int = 200
    snapshots: int = 1000


@dataclass
class DiskSpec:
    type: str = "system"
    category: str = "cloud_essd"
    size: int = 40
    encrypted: bool = False
    id: str | None = None


@dataclass
class ImageSpec:
    """A custom image that already exists when the scenario starts (an image family's history)."""

    id: str
    name: str | None = None
    family: str = ""
    status: str = "Available"  # Available | Deprecated | CreateFailed
    size: int = 40
    os: str = "linux"
    platform: str = "Ubuntu"
    architecture: str = "x86_64"
    age_days: float = 1.0  # created this long before the scenario starts
    tags: dict[str, str] = field(default_factory=dict)
    check_failures: list[str] | None = None  # None: never checked; []: check passed


@dataclass
class InstanceSpec:
    id: str
    type: str = "ecs.g7.large"
    status: str = "Running"
    name: str | None = None
    os: str = "linux"
    platform: str = "Ubuntu"
    os_name: str | None = None
    architecture: str = "x86_64"
    zone: str | None = None
    image_id: str | None = None
    disks: list[DiskSpec] = field(default_factory=lambda: [DiskSpec()])
    tags: dict[str, str] = field(default_factory=dict)
    locks: list[str] = field(default_factory=list)  # OperationLocks reasons, e.g. security, financial
    guest: GuestSpec = field(default_factory=GuestSpec)
    create_image_failures: int = 0  # the first N images made from this instance end CreateFailed


@dataclass
class LaunchTemplateVersionSpec:
    image_id: str = ""
    instance_type: str = "ecs.g7.large"
    description: str | None = None


@dataclass
class LaunchTemplateSpec:
    """A launch template that exists when the scenario starts; version N is `versions[N-1]`."""

    id: str
    name: str
    versions: list[LaunchTemplateVersionSpec] = field(default_factory=list)
    default_version: int = 1
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class BucketSpec:
    """An OSS bucket that exists when the scenario starts. An `owner` other than the scenario's account
    means another account holds the name (bucket names are global): PutBucket answers BucketAlreadyExists."""

    name: str
    owner: str | None = None  # None: the scenario's account


OOS_EVENT_MODES = ("documented", "failed", "all")


@dataclass
class Scenario:
    region: str = "cn-hangzhou"
    account_id: str = "1234567890123456"
    seed: int = 0
    start_time: datetime = DEFAULT_START
    timings: Timings = field(default_factory=Timings)
    quotas: Quotas = field(default_factory=Quotas)
    rate_limits: dict[str, float] = field(default_factory=dict)
    # Which OOS execution status changes publish oos:CloudMonitor:Execution[StatusChange]:
    # documented (default): Started, Success, Failed -- the current OOS doc "System events for automated tasks
    #   in OOS" (help.aliyun.com/en/oos/getting-started/system-events, Feb 2025; wiring-facts.md §5);
    # failed: Failed only (the Dec 2023 edition of that doc); all: every status change.
    oos_events: str = "documented"
    event_shapes: EventShapes = field(default_factory=EventShapes)
    images: list[ImageSpec] = field(default_factory=list)
    instances: list[InstanceSpec] = field(default_factory=list)
    launch_templates: list[LaunchTemplateSpec] = field(default_factory=list)
    buckets: list[BucketSpec] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)  # for pipeline runs; kept as given
    source: str = "<inline>"

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ScenarioError(f"{path}: no such scenario file") from None
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_mapping(data or {}, source=str(path))

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "<inline>") -> Scenario:
        if not isinstance(data, dict):
            raise ScenarioError(f"{source}: a scenario is a mapping of keys, got {type(data).__name__}")
        _check_keys(data, cls, source, "", skip={"source"})
        scenario = cls(source=source)
        for key in ("region", "account_id", "oos_events"):
            if key in data:
                setattr(scenario, key, str(data[key]))
        if scenario.oos_events not in OOS_EVENT_MODES:
            raise ScenarioError(
                f"{source}: oos_events must be one of {', '.join(OOS_EVENT_MODES)}, got {scenario.oos_events!r}"
            )
        if "seed" in data:
            scenario.seed = _typed(data["seed"], int, source, "seed")
        if "start_time" in data:
            scenario.start_time = _parse_time(data["start_time"], source)
        scenario.timings = _numbers(
            _dataclass_from(Timings, data.get("timings") or {}, source, "timings"), source, "timings"
        )
        scenario.event_shapes = _dataclass_from(EventShapes, data.get("event_shapes") or {}, source, "event_shapes")
        if scenario.event_shapes.actiontrail_parameters not in ("flat", "json", "absent"):
            raise ScenarioError(f"{source}: event_shapes.actiontrail_parameters must be flat, json or absent, got "
                                f"{scenario.event_shapes.actiontrail_parameters!r}")  # fmt: skip
        if scenario.event_shapes.repair_create_image not in ("caller", "service", "none"):
            raise ScenarioError(f"{source}: event_shapes.repair_create_image must be caller, service or none, got "
                                f"{scenario.event_shapes.repair_create_image!r}")  # fmt: skip
        for flag in ("assistant_invoke_id", "actiontrail_response"):
            if not isinstance(getattr(scenario.event_shapes, flag), bool):
                raise ScenarioError(f"{source}: event_shapes.{flag} must be true or false")
        scenario.quotas = _numbers(
            _dataclass_from(Quotas, data.get("quotas") or {}, source, "quotas"), source, "quotas"
        )
        scenario.rate_limits = _mapping(data.get("rate_limits"), source, "rate_limits")
        scenario.faults = _list(data.get("faults"), source, "faults")
        scenario.actions = _list(data.get("actions"), source, "actions")
        _check_faults(scenario, source)
        image_ids: set[str] = set()
        for index, raw in enumerate(_list(data.get("images"), source, "images")):
            image = _image_from(raw, source, f"images[{index}]")
            if image.id in image_ids:
                raise ScenarioError(f"{source}: images[{index}]: duplicate image id {image.id!r}")
            image_ids.add(image.id)
            scenario.images.append(image)
        seen: set[str] = set()
        for index, raw in enumerate(_list(data.get("instances"), source, "instances")):
            spec = _instance_from(raw, source, f"instances[{index}]")
            if spec.id in seen:
                raise ScenarioError(f"{source}: instances[{index}]: duplicate instance id {spec.id!r}")
            seen.add(spec.id)
            scenario.instances.append(spec)
        template_keys: set[str] = set()
        for index, raw in enumerate(_list(data.get("launch_templates"), source, "launch_templates")):
            template = _launch_template_from(raw, source, f"launch_templates[{index}]")
            for key in (template.id, f"name:{template.name}"):
                if key in template_keys:
                    raise ScenarioError(
                        f"{source}: launch_templates[{index}]: duplicate {key.replace('name:', 'name ')!r}"
                    )
                template_keys.add(key)
            scenario.launch_templates.append(template)
        scenario.buckets = _buckets_from(data.get("buckets"), source)
        return scenario


def _buckets_from(value: Any, source: str) -> list[BucketSpec]:
    buckets: list[BucketSpec] = []
    for index, raw in enumerate(_list(value, source, "buckets")):
        where = f"buckets[{index}]"
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ScenarioError(f"{source}: {where}: a bucket is a name, or a mapping {{name: x, owner: account id}}")
        spec = _dataclass_from(BucketSpec, raw, source, where)
        problem = bucket_name_problem(spec.name)
        if problem:
            raise ScenarioError(f"{source}: {where}: bucket name {spec.name!r} is not valid: {problem}")
        if spec.owner is not None:
            spec.owner = str(spec.owner)
        if any(b.name == spec.name for b in buckets):
            raise ScenarioError(f"{source}: {where}: duplicate bucket {spec.name!r}")
        buckets.append(spec)
    return buckets


def _launch_template_from(raw: Any, source: str, where: str) -> LaunchTemplateSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"].startswith("lt-"):
        raise ScenarioError(f"{source}: {where}: a launch template is a mapping with an 'id' like lt-web")
    _check_keys(raw, LaunchTemplateSpec, source, where)
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ScenarioError(f"{source}: {where}.name is required (the LaunchTemplateName)")
    versions = [
        _dataclass_from(LaunchTemplateVersionSpec, v, source, f"{where}.versions[{i}]")
        for i, v in enumerate(_list(raw.get("versions"), source, f"{where}.versions"))
    ]
    if not versions:
        raise ScenarioError(f"{source}: {where}.versions needs at least one version, e.g. [{{image_id: m-web-v1}}]")
    default = raw.get("default_version", 1)
    if isinstance(default, bool) or not isinstance(default, int) or not 1 <= default <= len(versions):
        raise ScenarioError(f"{source}: {where}.default_version must be a version number 1..{len(versions)}")
    tags = {str(k): "" if v is None else str(v) for k, v in _mapping(raw.get("tags"), source, f"{where}.tags").items()}
    return LaunchTemplateSpec(raw["id"], raw["name"], versions, default, tags)


def _image_from(raw: Any, source: str, where: str) -> ImageSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"].startswith("m-"):
        raise ScenarioError(f"{source}: {where}: an image is a mapping with an 'id' like m-web-v1")
    _check_keys(raw, ImageSpec, source, where)
    values = {k: v for k, v in raw.items() if k != "tags"}
    image = _numbers(_dataclass_from(ImageSpec, values, source, where), source, where)
    image.tags = {
        str(k): "" if v is None else str(v) for k, v in _mapping(raw.get("tags"), source, f"{where}.tags").items()
    }
    if image.status not in ("Available", "Deprecated", "CreateFailed"):
        raise ScenarioError(f"{source}: {where}.status must be Available, Deprecated or CreateFailed")
    if image.check_failures is not None and not isinstance(image.check_failures, list):
        raise ScenarioError(f"{source}: {where}.check_failures must be a list of check item names")
    return image


def _instance_from(raw: Any, source: str, where: str) -> InstanceSpec:
    if not isinstance(raw, dict) or "id" not in raw:
        raise ScenarioError(f"{source}: {where}: an instance is a mapping with at least an 'id'")
    if not isinstance(raw["id"], str) or not raw["id"].startswith("i-"):
        raise ScenarioError(f"{source}: {where}.id must be a string like i-web1, got {raw['id']!r}")
    _check_keys(raw, InstanceSpec, source, where)
    values = {k: v for k, v in raw.items() if k not in ("disks", "guest", "tags", "locks")}
    spec = _dataclass_from(InstanceSpec, values, source, where)
    if "disks" in raw:
        disks = raw["disks"] or []
        spec.disks = [
            _numbers(_dataclass_from(DiskSpec, d, source, f"{where}.disks[{i}]"), source, f"{where}.disks[{i}]")
            for i, d in enumerate(_list(disks, source, f"{where}.disks"))
        ]
    if sum(1 for d in spec.disks if d.type == "system") != 1:
        raise ScenarioError(f"{source}: {where}: an instance needs exactly one disk of type 'system'")
    for i, disk in enumerate(spec.disks):
        if disk.type not in ("system", "data"):
            raise ScenarioError(f"{source}: {where}.disks[{i}].type must be system or data, got {disk.type!r}")
    spec.tags = {
        str(k): "" if v is None else str(v) for k, v in _mapping(raw.get("tags"), source, f"{where}.tags").items()
    }
    spec.locks = [str(x) for x in _list(raw.get("locks"), source, f"{where}.locks")]
    if not isinstance(spec.create_image_failures, int) or spec.create_image_failures < 0:
        raise ScenarioError(f"{source}: {where}.create_image_failures must be a whole number >= 0")
    try:
        spec.guest = GuestSpec.from_mapping(raw.get("guest") or {})
    except ValueError as exc:
        raise ScenarioError(f"{source}: {where}.guest: {exc}") from None
    if spec.os not in ("linux", "windows"):
        raise ScenarioError(f"{source}: {where}.os must be linux or windows, got {spec.os!r}")
    if spec.status not in ("Pending", "Running", "Starting", "Stopping", "Stopped"):
        raise ScenarioError(f"{source}: {where}.status must be one of Pending, Running, Starting, Stopping, Stopped")
    return spec


def _check_keys(data: dict[str, Any], klass: type, source: str, where: str, skip: set[str] = frozenset()) -> None:
    allowed = {f.name for f in fields(klass)} - set(skip)
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"{where}: " if where else ""
        raise ScenarioError(f"{source}: {prefix}unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _dataclass_from(klass: type, data: Any, source: str, where: str) -> Any:
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: {where} must be a mapping, got {data!r}")
    _check_keys(data, klass, source, where)
    try:
        return klass(**data)
    except TypeError as exc:
        raise ScenarioError(f"{source}: {where}: {exc}") from None


def _numbers(obj: Any, source: str, where: str) -> Any:
    """Every int/float field of a dataclass must hold a number (YAML "10" is a string, not 10)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        wants_number = f.type in ("float", "int", "float | None", "int | None")
        if wants_number and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ScenarioError(f"{source}: {where}.{f.name} must be a number, got {value!r}")
    return obj


def _mapping(value: Any, source: str, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ScenarioError(f"{source}: {where} must be a mapping, got {value!r}")
    return dict(value)


def _list(value: Any, source: str, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScenarioError(f"{source}: {where} must be a list, got {value!r}")
    return list(value)


def _check_faults(scenario: Scenario, source: str) -> None:
    """Faults and rate limits are checked when the scenario loads, not when the first call trips them."""
    import random

    from localcloud.clock import VirtualClock
    from localcloud.faults import FaultPlan, FaultSpecError

    plan = FaultPlan(VirtualClock(), random.Random(0))
    try:
        plan.set_rate_limits(scenario.rate_limits)
        plan.install(scenario.faults)
    except FaultSpecError as exc:
        raise ScenarioError(f"{source}: faults/rate_limits: {exc}") from None


def _typed(value: Any, kind: type, source: str, where: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ScenarioError(f"{source}: {where} must be {kind.__name__}, got {value!r}")
    return value


def _parse_time(value: Any, source: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ScenarioError(f"{source}: start_time must be ISO 8601, e.g. 2026-01-05T09:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
