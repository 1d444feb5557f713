"""One schema of truth for ROS resource definitions, derived from Alibaba's published ROS CDK.

Decision: the schema is **checked in** (`localcloud/fc/ros_schema.json`, shipped as package data) and
**regenerated** from the ROS CDK jsii packages pinned in pyproject.toml's `dev` extra by
`ros_schema_extract.py` (dev only; the generated JS is parsed in `ros_schema_js.py`):

    python -m localcloud.fc.ros_schema_extract regenerate   # (make ros-schema) rewrite the JSON
    python -m localcloud.fc.ros_schema_extract check        # exit 1 if the JSON differs from a fresh extraction

Why checked in: the local FC runtime (and anything deployed) reads it with the stdlib alone — no
node, no jsii, no network — and a review sees every rule a CDK bump adds or drops as a JSON diff.
Why regenerate instead of hand-writing: the rules are Alibaba's, not ours; `check` (and
tests/contract/test_ros_schema.py) fails as soon as the JSON and the pinned packages disagree.

This module is the runtime side: it loads the schema and checks properties against it.

`check_properties` mirrors ros-cdk-core's `runtime.js`:

- a value that is a ROS intrinsic (`isRosIntrinsic`: a one-key dict whose key is `Ref` or starts
  with `Fn::`) is not checked; `None` counts as absent (`requiredValidator`: `x == null`);
- validateString/Number/Boolean are `typeof` checks: the numeric string "512" is not a number, "true"
  is not a boolean, 5 is not a string (and a Python bool is not a number);
- listValidator needs a real list (`x.forEach`): a scalar where a list is declared is an error;
- allowedValues compare with `===` (type and value); patterns are JS `RegExp.test` (a search, not a
  full match).

Deliberate deviations, each stricter than the CDK and each in line with the jsii types it declares:
the CDK's `hashValidator` and struct validators never check that the value is an object (a string
passes `Object.keys`), here a map / struct must be a dict; the CDK skips range/length checks when the
value or the bound is 0 (`if (prop.min && ...)`), here the declared bounds are always enforced;
the CDK ignores unknown keys, here each one is a problem with the closest known name. Every problem
is reported, not only the first of a list.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

SCHEMA_FILE = "ros_schema.json"
SCHEMA_FORMAT = 1
VALUE_TYPES = ("string", "number", "boolean", "any", "list", "map", "struct")
_LIST_VALID_NAMES_UP_TO = 15


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a resource's properties; `path` is relative to the resource."""

    path: str
    message: str


@dataclass(frozen=True)
class PropertySchema:
    """A property (or a list/map element, then `required` is False) as the ROS CDK defines it."""

    type: str
    required: bool = False
    items: PropertySchema | None = None  # list / map
    properties: Mapping[str, PropertySchema] = field(default_factory=dict)  # struct, by ROS name
    allowed_values: tuple[Any, ...] | None = None
    range: tuple[float | None, float | None] | None = None
    length: tuple[int | None, int | None] | None = None
    pattern: str | None = None

    @property
    def required_properties(self) -> tuple[str, ...]:
        return tuple(sorted(name for name, spec in self.properties.items() if spec.required))

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, required: bool = False) -> PropertySchema:
        kind = data["type"]
        if kind not in VALUE_TYPES:
            raise ValueError(f"unknown value type {kind!r} in {SCHEMA_FILE}")
        items = cls.from_json(data["items"]) if "items" in data else None
        props = {
            name: cls.from_json(spec, required=bool(spec.get("required")))
            for name, spec in data.get("properties", {}).items()
        }
        return cls(
            type=kind,
            required=required,
            items=items,
            properties=props,
            allowed_values=tuple(data["allowedValues"]) if "allowedValues" in data else None,
            range=_bounds(data.get("range")),
            length=_bounds(data.get("length")),
            pattern=data.get("pattern"),
        )


def _bounds(data: Mapping[str, Any] | None) -> tuple[Any, Any] | None:
    return None if data is None else (data.get("min"), data.get("max"))


@dataclass(frozen=True)
class ResourceSchema:
    """One ROS resource type: what Fn::GetAtt may read and the properties it takes (by ROS name)."""

    type_name: str
    package: str
    doc_url: str | None
    attributes: frozenset[str]
    properties: Mapping[str, PropertySchema]

    @property
    def required_properties(self) -> tuple[str, ...]:
        return tuple(sorted(name for name, spec in self.properties.items() if spec.required))

    def as_struct(self) -> PropertySchema:
        return PropertySchema(type="struct", properties=self.properties)


@dataclass(frozen=True)
class RosSchema:
    """The whole checked-in schema: resource types plus ros-cdk-core's template vocabulary."""

    packages: Mapping[str, str]
    resources: Mapping[str, ResourceSchema]
    # ros-cdk-core's vocabulary, each sorted (so a message that joins one reads the same every time)
    pseudo_parameters: tuple[str, ...]
    parameter_types: tuple[str, ...]
    parameter_keys: tuple[str, ...]
    intrinsic_functions: tuple[str, ...]
    resource_keys: tuple[str, ...]
    output_keys: tuple[str, ...]
    format_versions: tuple[str, ...]

    @property
    def resource_types(self) -> tuple[str, ...]:
        return tuple(sorted(self.resources))

    def resource(self, type_name: str) -> ResourceSchema | None:
        return self.resources.get(type_name)

    def check_properties(self, type_name: str, properties: Any) -> list[Problem]:
        """Every problem with `properties` (a resource's `Properties`) for resource type `type_name`."""
        resource = self.resource(type_name)
        if resource is None:
            return [Problem("Type", self._unknown_type_message(type_name))]
        problems: list[Problem] = []
        if properties is None:
            properties = {}
        _check_value(properties, resource.as_struct(), "Properties", problems, where=type_name)
        return problems

    def _unknown_type_message(self, type_name: str) -> str:
        covered = ", ".join(f"{name}@{version}" for name, version in sorted(self.packages.items()))
        message = f"unknown resource type {type_name!r}: no ROS CDK package this schema covers ({covered}) defines it"
        namespace = type_name.rpartition("::")[0]
        siblings = [name.rpartition("::")[2] for name in self.resource_types if name.rpartition("::")[0] == namespace]
        if siblings:
            message += f"; {namespace} defines only: {', '.join(siblings)}"
        else:
            close = difflib.get_close_matches(type_name, self.resource_types, n=1, cutoff=0.8)
            if close:
                message += f"; did you mean {close[0]!r}?"
        return message

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RosSchema:
        if data.get("format") != SCHEMA_FORMAT:
            raise ValueError(f"{SCHEMA_FILE} has format {data.get('format')!r}, this code reads {SCHEMA_FORMAT}")
        template = data["template"]
        return cls(
            packages=dict(data["packages"]),
            resources={
                name: ResourceSchema(
                    type_name=name,
                    package=spec["package"],
                    doc_url=spec.get("docUrl"),
                    attributes=frozenset(spec["attributes"]),
                    properties={
                        prop: PropertySchema.from_json(pspec, required=bool(pspec.get("required")))
                        for prop, pspec in spec["properties"].items()
                    },
                )
                for name, spec in data["resources"].items()
            },
            pseudo_parameters=tuple(sorted(template["pseudoParameters"])),
            parameter_types=tuple(sorted(template["parameterTypes"])),
            parameter_keys=tuple(sorted(template["parameterKeys"])),
            intrinsic_functions=tuple(sorted(template["intrinsicFunctions"])),
            resource_keys=tuple(sorted(template["resourceKeys"])),
            output_keys=tuple(sorted(template["outputKeys"])),
            format_versions=tuple(sorted(template["formatVersion"]["values"])),
        )


@functools.lru_cache(maxsize=1)
def load_schema() -> RosSchema:
    """The checked-in schema (cached)."""
    text = resources.files("localcloud.fc").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return RosSchema.from_json(json.loads(text))


def check_properties(type_name: str, properties: dict[str, Any]) -> list[Problem]:
    """Every problem with a resource's `Properties` against the checked-in schema (intrinsics are skipped)."""
    return load_schema().check_properties(type_name, properties)


# -- the checks (ros-cdk-core lib/runtime.js semantics, see the module docstring) -----------------------


def is_intrinsic(value: Any) -> bool:
    """ros-cdk-core `isRosIntrinsic`: a one-key object whose key is `Ref` or starts with `Fn::`."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    return isinstance(key, str) and (key == "Ref" or key.startswith("Fn::"))


def _check_value(value: Any, spec: PropertySchema, path: str, problems: list[Problem], *, where: str = "") -> None:
    if value is None or is_intrinsic(value):
        return
    type_problem = _type_problem(value, spec)
    if type_problem:
        problems.append(Problem(path, type_problem))
        return
    if spec.type == "struct":
        _check_struct(value, spec, path, problems, where)
    elif spec.type == "list" and spec.items is not None:
        for index, element in enumerate(value):
            _check_value(element, spec.items, f"{path}[{index}]", problems)
    elif spec.type == "map" and spec.items is not None:
        for key, element in value.items():
            _check_value(element, spec.items, f"{path}.{key}", problems)
    problems.extend(Problem(path, message) for message in _constraint_problems(value, spec))


def _check_struct(value: dict[str, Any], spec: PropertySchema, path: str, problems: list[Problem], where: str) -> None:
    known = spec.properties
    for key in value:
        if key not in known:
            problems.append(Problem(f"{path}.{key}", _unknown_message(str(key), known, where)))
    for name, prop in known.items():
        if prop.required and value.get(name) is None:
            problems.append(Problem(f"{path}.{name}", _missing_message(name, spec, where)))
    for name, element in value.items():
        if name in known:
            _check_value(element, known[name], f"{path}.{name}", problems)


def _unknown_message(key: str, known: Mapping[str, PropertySchema], where: str) -> str:
    names = sorted(known)
    message = f"unknown property {key!r}" + (f" of {where}" if where else "")
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if not close:
        lowered = {name.lower(): name for name in names}
        close = [lowered[key.lower()]] if key.lower() in lowered else []
    if close:
        message += f"; did you mean {close[0]!r}?"
    if not names:
        message += "; this takes no properties"
    elif len(names) <= _LIST_VALID_NAMES_UP_TO:
        message += f" Valid: {', '.join(names)}."
    else:
        message += f" ({len(names)} valid properties)"
    return message


def _missing_message(name: str, spec: PropertySchema, where: str) -> str:
    required = spec.required_properties
    message = f"required property {name!r} is missing" + (f" from {where}" if where else "")
    if len(required) > 1:
        message += f" (required here: {', '.join(required)})"
    return message


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return f"a {type(value).__name__}"


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(value: Any, spec: PropertySchema) -> str | None:
    kind = spec.type
    if kind == "any":
        return None
    if kind == "string":
        if isinstance(value, str):
            return None
        hint = f"; quote it: '{_show(value)}'" if _is_number(value) or isinstance(value, bool) else ""
        return f"expected a string, got {_kind(value)} {_show(value)}{hint}"
    if kind == "number":
        if _is_number(value):
            return None
        hint = ""
        if isinstance(value, str) and _looks_numeric(value):
            hint = f"; write it unquoted: {value.strip()}"
        return f"expected a number, got {_kind(value)} {_show(value)}{hint}"
    if kind == "boolean":
        if isinstance(value, bool):
            return None
        hint = ""
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            hint = f"; write it unquoted: {value.strip().lower()}"
        return f"expected a boolean (true or false), got {_kind(value)} {_show(value)}{hint}"
    if kind == "list":
        if isinstance(value, list):
            return None
        hint = f"; write it as a one-item list: [{_show(value)}]" if not isinstance(value, dict) else ""
        return f"expected a list, got {_kind(value)} {_show(value)}{hint}"
    if kind in ("map", "struct"):
        if isinstance(value, dict):
            return None
        what = "a map" if kind == "map" else "a map of properties"
        hint = ""
        if isinstance(value, str) and value.lstrip().startswith("{"):
            hint = "; write the object itself, not a JSON string"
        return f"expected {what}, got {_kind(value)} {_show(value)}{hint}"
    raise ValueError(f"unknown value type {kind!r}")


def _looks_numeric(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _between(bounds: tuple[Any, Any], unit: str = "") -> str:
    low, high = bounds
    if low is not None and high is not None:
        return f"between {low} and {high}{unit}"
    if low is not None:
        return f"at least {low}{unit}"
    return f"at most {high}{unit}"


def _outside(number: float, bounds: tuple[Any, Any]) -> bool:
    low, high = bounds
    return (low is not None and number < low) or (high is not None and number > high)


def _is_allowed(value: Any, allowed_values: tuple[Any, ...]) -> bool:
    """validateAllowedValues: `value === allowed` (same type and value; True is not 1)."""
    return any(type(value) is type(allowed) and value == allowed for allowed in allowed_values)


def _constraint_problems(value: Any, spec: PropertySchema) -> Iterator[str]:
    allowed_values = spec.allowed_values
    if allowed_values is not None and not isinstance(value, (dict, list)) and not _is_allowed(value, allowed_values):
        yield f"{_show(value)} is not an allowed value; allowed: {', '.join(_show(v) for v in allowed_values)}"
    if spec.range is not None and _is_number(value) and _outside(value, spec.range):
        yield f"{_show(value)} is out of range: must be {_between(spec.range)}"
    if spec.length is not None and isinstance(value, (str, list)) and _outside(len(value), spec.length):
        unit = " items" if isinstance(value, list) else " characters"
        yield f"has {len(value)}{unit}, must have {_between(spec.length, unit)}"
    if spec.pattern is not None and isinstance(value, str) and re.search(spec.pattern, value) is None:
        yield f"{_show(value)} does not match the pattern {spec.pattern}"
