"""One schema of truth for ROS resource definitions, derived from Alibaba's published ROS CDK.

Decision: the schema is **checked in** (`localcloud/fc/ros_schema.json`, shipped as package data) and
**regenerated** from the ROS CDK jsii packages pinned in pyproject.toml's `dev` extra:

    python -m localcloud.fc.ros_schema regenerate   # (make ros-schema) rewrite the JSON
    python -m localcloud.fc.ros_schema check        # exit 1 if the JSON differs from a fresh extraction

Why checked in: the local FC runtime (and anything deployed) reads it with the stdlib alone — no
node, no jsii, no network — and a review sees every rule a CDK bump adds or drops as a JSON diff.
Why regenerate instead of hand-writing: the rules are Alibaba's, not ours; `check` (and
tests/contract/test_ros_schema.py) fails as soon as the JSON and the pinned packages disagree.

The packages are exact pins in the `dev` extra (installed by `make setup`), not downloaded by `check`:
they are pure-Python wheels (~9 MB with what they pull: jsii, constructs, cattrs, typeguard 2.13,
publication, importlib-resources, ros-cdk-assembly-schema, ros-cdk-cxapi), they install like every
other dev tool, and `check` and the tests then need no network. The one side effect:
jsii 1.85 requires attrs<24, so the dev venv runs attrs 23.2 (aiohttp needs >=17.3).

Where the facts come from (pure Python, nothing is imported from the CDK packages — importing them
starts a node jsii kernel): each installed wheel's `<pkg>/_jsii/<name>@<version>.jsii.tgz`, located
through `importlib.metadata`, holds

- `package/.jsii`, the jsii type assembly: every `Ros*Props` / `Ros*.*Property` struct, each
  property's type and `optional` flag, the class docs (doc URL) and `attr*` attribute docs;
- `package/lib/**/*.generated.js`, the generated code: `Ros*PropsValidator` / `Ros*_*PropertyValidator`
  (requiredValidator, validateString/Number/Boolean/Any, listValidator, hashValidator, struct
  validators, validateRange, validateLength, validateAllowedValues, validateAllowedPattern),
  `ros*ToRosTemplate` (camelCase prop -> ROS property name, e.g. `identity` -> `Id`), and the
  `Ros*` classes (`ROS_RESOURCE_TYPE_NAME`, `this.getAtt('X')` attributes);
- ros-cdk-core's `package/lib/`: `ros-parameter.js` (parameter keys from `_toRosTemplate`, types from
  `RosParameter.TYPE_ALLOWED_VALUES`), `ros-pseudo.js` (`ALIYUN::*` pseudo parameters), `ros-fn.js`
  (intrinsic function names), `ros-resource.js` / `ros-output.js` (resource / output keys),
  `ros-info.js` (ROSTemplateFormatVersion), and `runtime.js`, whose validators define what
  `check_properties` accepts.

The extractor is **strict**: every top-level statement of a generated file, every statement of a
validator / ToRosTemplate function and of a resource class constructor must match a known shape,
and the three views of a property (jsii type + optional flag, validator, mapper) must agree — anything
else raises `ExtractionError` naming the file, the function and the statement, so a new CDK version
can never silently drop a rule. A pinned package that is missing, or installed at another version,
is an `ExtractionError` that says how to install it.

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

import argparse
import difflib
import functools
import io
import json
import math
import re
import sys
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

SCHEMA_FILE = "ros_schema.json"
SCHEMA_FORMAT = 1
CORE_PACKAGE = "ros-cdk-core"
REGENERATE_COMMAND = "python -m localcloud.fc.ros_schema regenerate"
INSTALL_HINT = "run `.venv/bin/pip install -e '.[dev]'` (or `make setup`)"
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_PIN = re.compile(r"""["'](ros-cdk-[a-z0-9-]+)==([0-9][0-9A-Za-z.+-]*)["']""")
VALUE_TYPES = ("string", "number", "boolean", "any", "list", "map", "struct")
_LIST_VALID_NAMES_UP_TO = 15


# =====================================================================================================
# The schema as the runtime reads it (stdlib only)
# =====================================================================================================


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


# =====================================================================================================
# Extraction from the pinned ROS CDK packages (dev only)
# =====================================================================================================


class ExtractionError(RuntimeError):
    """The pinned packages cannot be read, or hold something the extractor does not recognise."""


@dataclass(frozen=True)
class CdkPackage:
    """One jsii package: its name, version, the `.jsii` assembly and the text of its `package/lib` JS files."""

    name: str
    version: str
    tarball: str
    assembly: Mapping[str, Any]
    sources: Mapping[str, str]  # "lib/fc3.generated.js" -> text


def read_pins(pyproject: Path = _PYPROJECT) -> dict[str, str]:
    """The `ros-cdk-*==X` pins of pyproject.toml (the dev extra): {distribution name: version}."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExtractionError(f"cannot read the ROS CDK pins from {pyproject}: {exc}") from exc
    pins: dict[str, str] = {}
    for name, version in _PIN.findall(text):
        if pins.get(name, version) != version:
            raise ExtractionError(f"{pyproject} pins {name} twice: =={pins[name]} and =={version}")
        pins[name] = version
    if CORE_PACKAGE not in pins or len(pins) < 2:
        raise ExtractionError(
            f"{pyproject} must pin {CORE_PACKAGE} and at least one resource package exactly "
            f'(e.g. "ros-cdk-fc3==1.15.0") in the dev extra; found {sorted(pins) or "none"}'
        )
    return dict(sorted(pins.items()))


def load_package(name: str, version: str) -> CdkPackage:
    """The installed pinned jsii package, read from its wheel's `_jsii/*.jsii.tgz` (never imported)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise ExtractionError(
            f"{name}=={version} is pinned in pyproject.toml but not installed: {INSTALL_HINT}"
        ) from None
    if dist.version != version:
        raise ExtractionError(
            f"{name}=={version} is pinned in pyproject.toml but {name} {dist.version} is installed: {INSTALL_HINT}"
        )
    tarballs = [f for f in (dist.files or []) if str(f).endswith(f"{name}@{version}.jsii.tgz")]
    if len(tarballs) != 1:
        raise ExtractionError(f"{name} {version}: expected one _jsii/{name}@{version}.jsii.tgz, found {tarballs}")
    path = Path(str(dist.locate_file(tarballs[0])))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExtractionError(f"{name} {version}: cannot read {path}: {exc}; {INSTALL_HINT}") from exc
    return read_tarball(name, version, data, tarball=tarballs[0].name)


def read_tarball(name: str, version: str, data: bytes, *, tarball: str) -> CdkPackage:
    assembly: Any = None
    sources: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            if member.name == "package/.jsii":
                assembly = json.loads(_member_text(archive, member))
            elif member.name.startswith("package/lib/") and member.name.endswith(".js"):
                sources[member.name.removeprefix("package/")] = _member_text(archive, member)
    if not isinstance(assembly, dict):
        raise ExtractionError(f"{tarball}: no package/.jsii assembly")
    if assembly.get("version") != version:
        raise ExtractionError(f"{tarball}: assembly version {assembly.get('version')!r} is not the pinned {version}")
    return CdkPackage(name=name, version=version, tarball=tarball, assembly=assembly, sources=sources)


def _member_text(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    handle = archive.extractfile(member)
    if handle is None:
        raise ExtractionError(f"cannot read {member.name}")
    return handle.read().decode("utf-8")


def extract(pyproject: Path = _PYPROJECT) -> dict[str, Any]:
    """The schema document, freshly extracted from the installed pinned packages."""
    pins = read_pins(pyproject)
    packages = {name: load_package(name, version) for name, version in pins.items()}
    return build_schema(packages)


def build_schema(packages: Mapping[str, CdkPackage]) -> dict[str, Any]:
    if CORE_PACKAGE not in packages:
        raise ExtractionError(f"{CORE_PACKAGE} is needed for the template vocabulary")
    resources_out: dict[str, Any] = {}
    for name, package in sorted(packages.items()):
        if name == CORE_PACKAGE:
            continue
        files = sorted(path for path in package.sources if path.endswith(".generated.js"))
        if not files:
            raise ExtractionError(f"{package.tarball}: no lib/**/*.generated.js")
        for path in files:
            for type_name, spec in extract_generated(package, path).items():
                if type_name in resources_out:
                    raise ExtractionError(
                        f"{type_name} is defined twice ({resources_out[type_name]['package']}, {name})"
                    )
                resources_out[type_name] = spec
    return {
        "format": SCHEMA_FORMAT,
        "generatedBy": REGENERATE_COMMAND,
        "packages": {name: package.version for name, package in sorted(packages.items())},
        "resources": resources_out,
        "template": extract_core(packages[CORE_PACKAGE]),
    }


def dumps(schema: Mapping[str, Any]) -> str:
    """The deterministic text of a schema document (sorted keys, one property per line)."""
    return json.dumps(schema, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


# -- generated JS: the file, then each function and class --------------------------------------------

_TOP_LEVEL_FIXED = frozenset(
    {
        '"use strict";',
        'Object.defineProperty(exports, "__esModule", { value: true });',
        'const ros = require("@alicloud/ros-cdk-core");',
    }
)
_EXPORTS_VOID = re.compile(r"exports\.\w+ = (?:exports\.\w+ = )*void 0;")
_EXPORTS_SELF = re.compile(r"exports\.(\w+) = \1;")
_TYPE_NAME = re.compile(r'(Ros\w+)\.ROS_RESOURCE_TYPE_NAME = "([A-Z]+::[A-Za-z0-9]+::[A-Za-z0-9]+)";')
_BLOCK_START = re.compile(r"(?:function (\w+)\(([\w, ]*)\)|class (\w+) extends ros\.RosResource) \{")
_PROPS_VALIDATOR = re.compile(r"(Ros\w+?)PropsValidator")
_STRUCT_VALIDATOR = re.compile(r"(Ros[A-Za-z0-9]+)_(\w+Property)Validator")
_MAPPER = re.compile(r"ros\w+(?:Props|Property)ToRosTemplate")
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_BOUND = rf"(?:{_NUMBER}|undefined)"


@dataclass
class _Validator:
    name: str
    struct: str  # "RosRule.TargetsProperty" or "RosRuleProps"
    rules: dict[str, dict[str, Any]]  # camel name -> {"required", "type", "allowedValues", ...}
    order: list[str]
    used: bool = False


@dataclass
class _Mapper:
    name: str
    validator: str
    is_props: bool
    entries: list[tuple[str, str, Any]]  # (ROS name, camel name, type tree)
    used: bool = False


@dataclass
class _ResourceClass:
    name: str
    attributes: list[str]
    props: list[str]
    mapper: str


def _fail(where: str, what: str, text: str = "") -> ExtractionError:
    snippet = f": {text[:160]!r}" if text else ""
    return ExtractionError(f"{where}: {what}{snippet} (the ROS CDK changed? teach localcloud/fc/ros_schema.py)")


def split_top_level(text: str, where: str) -> tuple[list[tuple[str, str, list[str]]], dict[str, str]]:
    """A generated file -> its blocks [(kind, name, body lines)] and {Ros class: ROS type name}; strict."""
    lines = text.splitlines()
    blocks: list[tuple[str, str, list[str]]] = []
    type_names: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        at = f"{where}:{i + 1}"
        if not stripped or stripped.startswith("//"):
            i += 1
        elif stripped.startswith("/*"):
            while "*/" not in lines[i]:
                i += 1
                if i >= len(lines):
                    raise _fail(at, "unterminated comment")
            i += 1
        elif line in _TOP_LEVEL_FIXED or _EXPORTS_VOID.fullmatch(line) or _EXPORTS_SELF.fullmatch(line):
            i += 1
        elif match := _TYPE_NAME.fullmatch(line):
            if match[1] in type_names:
                raise _fail(at, f"{match[1]}.ROS_RESOURCE_TYPE_NAME set twice")
            type_names[match[1]] = match[2]
            i += 1
        elif match := _BLOCK_START.fullmatch(line):
            end = i + 1
            while end < len(lines) and lines[end] != "}":
                end += 1
            if end >= len(lines):
                raise _fail(at, "unterminated block", line)
            kind = "class" if match[3] else f"function({match[2]})"
            blocks.append((kind, match[3] or match[1], lines[i + 1 : end]))
            i = end + 1
        else:
            raise _fail(at, "unrecognised top-level statement", line)
    return blocks, type_names


def _joined(body: list[str]) -> str:
    return " ".join(line.strip() for line in body if line.strip())


class _Cursor:
    """Consume a normalised function body statement by statement; anything unrecognised is an error."""

    def __init__(self, text: str, where: str) -> None:
        self.text, self.pos, self.where = text, 0, where

    def take(self, pattern: str | re.Pattern[str]) -> re.Match[str] | None:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        match = regex.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            self.skip_space()
        return match

    def expect(self, pattern: str | re.Pattern[str], what: str) -> re.Match[str]:
        match = self.take(pattern)
        if match is None:
            raise _fail(self.where, f"expected {what}", self.rest)
        return match

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    @property
    def rest(self) -> str:
        return self.text[self.pos :]

    @property
    def done(self) -> bool:
        return self.pos >= len(self.text)


_V_PROLOGUE = re.compile(
    r"if \(!ros\.canInspect\(properties\)\) \{ return ros\.VALIDATION_SUCCESS; \} "
    r"const errors = new ros\.ValidationResults\(\);"
)
_V_EPILOGUE = re.compile(r"return errors\.wrap\('supplied properties not correct for \"(\w+)\"'\);$")
_V_COLLECT = re.compile(
    r"errors\.collect\(ros\.propertyValidator\('(?P<p>\w+)', (?P<v>[\w.()]+)\)\(properties\.(?P=p)\)\);"
)
_V_SCALAR_GUARD = re.compile(
    r"if \(properties\.(?P<p>\w+) && \(typeof properties\.(?P=p)\) !== 'object'\) \{ "
    r"errors\.collect\(ros\.propertyValidator\('(?P=p)', ros\.(?P<kind>\w+)\)\(\{ data: properties\.(?P=p), "
)
_V_LENGTH_GUARD = re.compile(
    r"if \(properties\.(?P<p>\w+) && \(Array\.isArray\(properties\.(?P=p)\) \|\| \(typeof properties\.(?P=p)\) === 'string'\)\) \{ "
    r"errors\.collect\(ros\.propertyValidator\('(?P=p)', ros\.validateLength\)\(\{ data: properties\.(?P=p)\.length, "
    rf"min: (?P<min>{_BOUND}), max: (?P<max>{_BOUND}), \}}\)\); \}}"
)
_V_RANGE_ARGS = re.compile(rf"min: (?P<min>{_BOUND}), max: (?P<max>{_BOUND}), \}}\)\); \}}")
_V_ALLOWED_ARGS = re.compile(r"allowedValues: (?P<values>\[.*?\]), \}\)\); \}")
_V_PATTERN_ARGS = re.compile(r"reg: ")
_V_GUARD_END = re.compile(r",? \}\)\); \}")

_M_PROLOGUE = re.compile(r"if \(!ros\.canInspect\(properties\)\) \{ return properties; \}")
_M_PROPS_ASSERT = re.compile(r"if \(enableResourcePropertyConstraint\) \{ (\w+)\(properties\)\.assertSuccess\(\); \}")
_M_STRUCT_ASSERT = re.compile(r"(\w+)\(properties\)\.assertSuccess\(\);")
_M_ENTRY = re.compile(r"'(?P<ros>[^']+)': (?P<m>[\w.()]+)\(properties\.(?P<p>\w+)\),")

_C_CONSTRUCTOR = re.compile(
    r"constructor\(scope, id, props, enableResourcePropertyConstraint\) \{ "
    r"super\(scope, id, \{ type: (\w+)\.ROS_RESOURCE_TYPE_NAME, properties: props \}\);"
)
_C_ATTR = re.compile(r"this\.attr(\w+) = this\.getAtt\('([^']+)'\);")
_C_ENABLE = re.compile(r"this\.enableResourcePropertyConstraint = enableResourcePropertyConstraint;")
_C_PROP = re.compile(r"this\.(\w+) = props\.\1;")
_C_GETTER_START = re.compile(r"\} get rosProperties\(\) \{ return \{")
_C_GETTER_PROP = re.compile(r"(\w+): this\.\1,")
_C_RENDER = re.compile(
    r"\}; \} renderProperties\(props\) \{ return (\w+)\(props, this\.enableResourcePropertyConstraint\); \}$"
)


def _number(text: str) -> int | float | None:
    if text == "undefined":
        return None
    return float(text) if any(c in text for c in ".eE") else int(text)


def _js_regex(cursor: _Cursor) -> str:
    """A JS regex literal at the cursor -> its source (flags are not supported: strict)."""
    text, pos = cursor.text, cursor.pos
    if pos >= len(text) or text[pos] != "/":
        raise _fail(cursor.where, "expected a regex literal", cursor.rest)
    i, in_class = pos + 1, False
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "/" and not in_class:
            break
        i += 1
    else:
        raise _fail(cursor.where, "unterminated regex literal", cursor.rest)
    source = text[pos + 1 : i]
    flags = re.match(r"[a-z]*", text[i + 1 :])
    if flags and flags.group():
        raise _fail(cursor.where, f"regex flags {flags.group()!r} are not supported", cursor.rest)
    try:
        re.compile(source)
    except re.error as exc:
        raise _fail(cursor.where, f"pattern {source!r} is not a valid Python regex ({exc})") from exc
    cursor.pos = i + 1
    return source


def _validator_type(expr: str, where: str) -> Any:
    """`ros.listValidator(ros.validateString)` -> ("list", "string"); struct validators -> ("struct", name)."""
    simple = {
        "ros.validateString": "string",
        "ros.validateNumber": "number",
        "ros.validateBoolean": "boolean",
        "ros.validateAny": "any",
    }
    if expr in simple:
        return simple[expr]
    for wrapper, kind in (("ros.listValidator(", "list"), ("ros.hashValidator(", "map")):
        if expr.startswith(wrapper) and expr.endswith(")"):
            return (kind, _validator_type(expr[len(wrapper) : -1], where))
    match = _STRUCT_VALIDATOR.fullmatch(expr)
    if match:
        return ("struct", f"{match[1]}.{match[2]}")
    raise _fail(where, "unrecognised validator", expr)


def _mapper_type(expr: str, mappers: Mapping[str, _Mapper], validators: Mapping[str, _Validator], where: str) -> Any:
    simple = {
        "ros.stringToRosTemplate": "string",
        "ros.numberToRosTemplate": "number",
        "ros.booleanToRosTemplate": "boolean",
        "ros.objectToRosTemplate": "any",
    }
    if expr in simple:
        return simple[expr]
    for wrapper, kind in (("ros.listMapper(", "list"), ("ros.hashMapper(", "map")):
        if expr.startswith(wrapper) and expr.endswith(")"):
            return (kind, _mapper_type(expr[len(wrapper) : -1], mappers, validators, where))
    if expr in mappers:
        mapper = mappers[expr]
        mapper.used = True
        if mapper.is_props or mapper.validator not in validators:
            raise _fail(where, f"mapper {expr} does not render a struct")
        return ("struct", validators[mapper.validator].struct)
    raise _fail(where, "unrecognised mapper", expr)


def parse_validator(name: str, body: list[str], where: str) -> _Validator:
    """A `Ros*PropsValidator` / `Ros*_*PropertyValidator` function -> its rules per camelCase property."""
    where = f"{where} {name}"
    if match := _STRUCT_VALIDATOR.fullmatch(name):
        struct = f"{match[1]}.{match[2]}"
    elif match := _PROPS_VALIDATOR.fullmatch(name):
        struct = f"{match[1]}Props"
    else:
        raise _fail(where, "unrecognised validator function name")
    cursor = _Cursor(_joined(body), where)
    cursor.expect(_V_PROLOGUE, "the validator prologue")
    rules: dict[str, dict[str, Any]] = {}
    order: list[str] = []

    def rule(prop: str) -> dict[str, Any]:
        if prop not in rules:
            rules[prop] = {}
            order.append(prop)
        return rules[prop]

    def put(prop: str, key: str, value: Any) -> None:
        target = rule(prop)
        if key in target:
            raise _fail(where, f"two {key} rules for {prop!r}")
        target[key] = value

    while not cursor.done:
        if match := cursor.take(_V_EPILOGUE):
            if match[1] != struct.rpartition(".")[2] or not cursor.done:
                raise _fail(where, f"validator wraps {match[1]!r}, expected {struct.rpartition('.')[2]!r}")
            break
        if match := cursor.take(_V_COLLECT):
            prop, expr = match["p"], match["v"]
            if expr == "ros.requiredValidator":
                put(prop, "required", True)
            else:
                put(prop, "type", _validator_type(expr, where))
        elif match := cursor.take(_V_LENGTH_GUARD):
            put(match["p"], "length", _bounds_json(match["min"], match["max"]))
        elif match := cursor.take(_V_SCALAR_GUARD):
            prop, kind = match["p"], match["kind"]
            if kind == "validateRange":
                args = cursor.expect(_V_RANGE_ARGS, "min/max of validateRange")
                put(prop, "range", _bounds_json(args["min"], args["max"]))
            elif kind == "validateAllowedValues":
                args = cursor.expect(_V_ALLOWED_ARGS, "the allowedValues array")
                try:
                    values = json.loads(args["values"])
                except json.JSONDecodeError as exc:
                    raise _fail(where, f"allowedValues of {prop!r} are not a JSON array", args["values"]) from exc
                put(prop, "allowedValues", values)
            elif kind == "validateAllowedPattern":
                cursor.expect(_V_PATTERN_ARGS, "reg: /.../")
                put(prop, "pattern", _js_regex(cursor))
                cursor.expect(_V_GUARD_END, "the end of validateAllowedPattern")
            else:
                raise _fail(where, f"unrecognised guarded validator ros.{kind} for {prop!r}")
        else:
            raise _fail(where, "unrecognised statement in a validator", cursor.rest)
    else:
        raise _fail(where, "validator does not end with `return errors.wrap(...)`")
    for prop in order:
        if "type" not in rules[prop]:
            raise _fail(where, f"{prop!r} has rules but no type validator")
    return _Validator(name=name, struct=struct, rules=rules, order=order)


def _bounds_json(low: str, high: str) -> dict[str, Any]:
    bounds = {"min": _number(low), "max": _number(high)}
    if bounds["min"] is None and bounds["max"] is None:
        raise ExtractionError("a range/length rule without bounds")
    return {k: v for k, v in bounds.items() if v is not None}


def parse_mapper(name: str, params: str, body: list[str], where: str) -> tuple[_Mapper, list[tuple[str, str, str]]]:
    """A `ros*ToRosTemplate` function -> the validator it asserts and its (ROS name, camel name, expr) entries."""
    where = f"{where} {name}"
    if not _MAPPER.fullmatch(name):
        raise _fail(where, "unrecognised mapper function name")
    cursor = _Cursor(_joined(body), where)
    cursor.expect(_M_PROLOGUE, "the mapper prologue")
    if params == "properties, enableResourcePropertyConstraint":
        validator = cursor.expect(_M_PROPS_ASSERT, "the props validator assertion")[1]
        is_props = True
    elif params == "properties":
        validator = cursor.expect(_M_STRUCT_ASSERT, "the struct validator assertion")[1]
        is_props = False
    else:
        raise _fail(where, f"unrecognised mapper parameters ({params})")
    cursor.expect(r"return \{", "return {")
    raw: list[tuple[str, str, str]] = []
    while not cursor.take(r"\};$"):
        match = cursor.take(_M_ENTRY)
        if match is None:
            raise _fail(where, "unrecognised entry in a ToRosTemplate mapping", cursor.rest)
        raw.append((match["ros"], match["p"], match["m"]))
    if not cursor.done:
        raise _fail(where, "statements after the mapping", cursor.rest)
    return _Mapper(name=name, validator=validator, is_props=is_props, entries=[]), raw


def parse_class(name: str, body: list[str], where: str) -> _ResourceClass:
    where = f"{where} class {name}"
    text = re.sub(r"/\*.*?\*/", " ", _joined(body))
    cursor = _Cursor(re.sub(r" +", " ", text).strip(), where)
    match = cursor.expect(_C_CONSTRUCTOR, "the RosResource constructor")
    if match[1] != name:
        raise _fail(where, f"constructor uses {match[1]}.ROS_RESOURCE_TYPE_NAME")
    attributes: list[str] = []
    while match := cursor.take(_C_ATTR):
        attributes.append(match[2])
    cursor.expect(_C_ENABLE, "this.enableResourcePropertyConstraint = ...")
    props: list[str] = []
    while match := cursor.take(_C_PROP):
        props.append(match[1])
    cursor.expect(_C_GETTER_START, "get rosProperties()")
    getter: list[str] = []
    while match := cursor.take(_C_GETTER_PROP):
        getter.append(match[1])
    render = cursor.expect(_C_RENDER, "renderProperties(props)")
    if not cursor.done:
        raise _fail(where, "unrecognised class member", cursor.rest)
    if getter != props:
        raise _fail(where, f"rosProperties {getter} differ from the constructor's props {props}")
    if " ".join(body).count("getAtt(") != len(attributes):
        raise _fail(where, "a getAtt the extractor did not read")
    return _ResourceClass(name=name, attributes=attributes, props=props, mapper=render[1])


# -- jsii: the types, optional flags and docs ------------------------------------------------------------


def _jsii_type(ref: Mapping[str, Any], structs: Mapping[str, Any], where: str) -> Any:
    """A jsii type reference without IResolvable -> "string" | ("list", ...) | ("struct", "RosX.YProperty")."""
    if "union" in ref:
        members = [t for t in ref["union"]["types"] if t.get("fqn") != "@alicloud/ros-cdk-core.IResolvable"]
        if len(members) != 1:
            raise _fail(where, "unsupported jsii union", json.dumps(ref))
        return _jsii_type(members[0], structs, where)
    if "primitive" in ref:
        if ref["primitive"] not in ("string", "number", "boolean", "any"):
            raise _fail(where, f"unsupported jsii primitive {ref['primitive']!r}")
        return ref["primitive"]
    if "collection" in ref:
        kind = {"array": "list", "map": "map"}.get(ref["collection"]["kind"])
        if kind is None:
            raise _fail(where, "unsupported jsii collection", json.dumps(ref))
        return (kind, _jsii_type(ref["collection"]["elementtype"], structs, where))
    if "fqn" in ref and ref["fqn"] in structs:
        return ("struct", structs[ref["fqn"]])
    raise _fail(where, "unsupported jsii type", json.dumps(ref))


def _doc_url(docs: Mapping[str, Any]) -> str | None:
    texts = [docs.get("summary", ""), docs.get("remarks", ""), *docs.get("custom", {}).values()]
    for text in texts:
        match = re.search(r"https?://[^\s`'\")]+", str(text))
        if match:
            return match.group().rstrip(".,;")
    return None


def extract_generated(package: CdkPackage, path: str) -> dict[str, Any]:
    """Every resource type of one `*.generated.js` (with its jsii types) -> {ROS type name: schema entry}."""
    where = f"{package.tarball} {path}"
    blocks, type_names = split_top_level(package.sources[path], where)
    validators: dict[str, _Validator] = {}
    mappers: dict[str, _Mapper] = {}
    raw_entries: dict[str, list[tuple[str, str, str]]] = {}
    classes: dict[str, _ResourceClass] = {}
    for kind, name, body in blocks:
        if name in validators or name in mappers or name in classes:
            raise _fail(where, f"{name} defined twice")
        if kind == "class":
            classes[name] = parse_class(name, body, where)
        elif kind == "function(properties)" and name.startswith("Ros"):
            validators[name] = parse_validator(name, body, where)
        elif kind.startswith("function(") and name.startswith("ros"):
            mapper, raw = parse_mapper(name, kind[len("function(") : -1], body, where)
            mappers[name], raw_entries[name] = mapper, raw
        else:
            raise _fail(where, f"unrecognised top-level function {name}({kind[9:-1]})")
    for name, mapper in mappers.items():
        if mapper.validator not in validators:
            raise _fail(f"{where} {name}", f"asserts unknown validator {mapper.validator}")
        mapper.entries = [
            (ros, camel, _mapper_type(expr, mappers, validators, f"{where} {name}"))
            for ros, camel, expr in raw_entries[name]
        ]

    # jsii: the same file's types
    ts_file = path.removesuffix(".js") + ".ts"
    jsii_types = {
        fqn: t
        for fqn, t in package.assembly.get("types", {}).items()
        if t.get("locationInModule", {}).get("filename") == ts_file
    }
    structs = {
        fqn: (f"{t['namespace'].rpartition('.')[2]}.{t['name']}" if _is_nested_struct(t) else t["name"])
        for fqn, t in jsii_types.items()
        if t.get("kind") == "interface" and t.get("datatype")
    }
    by_struct = {structs[fqn]: jsii_types[fqn] for fqn in structs}
    by_class = {t["name"]: t for t in jsii_types.values() if t.get("kind") == "class"}
    read_structs: set[str] = set()

    def struct_schema(struct: str, stack: tuple[str, ...]) -> dict[str, Any]:
        """The ROS-named properties of a struct, cross-checked across validator, mapper and jsii."""
        if struct in stack:
            raise _fail(where, f"recursive struct {' -> '.join((*stack, struct))}")
        validator = next((v for v in validators.values() if v.struct == struct), None)
        mapper = next((m for m in mappers.values() if validator and m.validator == validator.name), None)
        jsii = by_struct.get(struct)
        if validator is None or mapper is None or jsii is None:
            raise _fail(
                where, f"struct {struct}: validator {bool(validator)}, mapper {bool(mapper)}, jsii {bool(jsii)}"
            )
        validator.used = mapper.used = True
        read_structs.add(struct)
        jsii_props = {p["name"]: p for p in jsii.get("properties", [])}
        camel_names = [camel for _, camel, _ in mapper.entries]
        if sorted(camel_names) != sorted(jsii_props) or sorted(validator.rules) != sorted(jsii_props):
            raise _fail(
                where,
                f"{struct}: properties differ: jsii {sorted(jsii_props)}, validator {sorted(validator.rules)}, "
                f"mapper {sorted(camel_names)}",
            )
        out: dict[str, Any] = {}
        for ros_name, camel, mapped_type in mapper.entries:
            at = f"{where} {struct}.{camel}"
            rules = validator.rules[camel]
            declared = _jsii_type(jsii_props[camel]["type"], structs, at)
            if not (declared == rules["type"] == mapped_type):
                raise _fail(at, f"types differ: jsii {declared}, validator {rules['type']}, mapper {mapped_type}")
            required = bool(rules.get("required"))
            if required == bool(jsii_props[camel].get("optional")):
                raise _fail(at, f"required by the validator: {required}, optional in jsii: {not required}")
            if ros_name in out:
                raise _fail(at, f"ROS property {ros_name} mapped twice")
            spec = _type_schema(declared, lambda s: struct_schema(s, (*stack, struct)))
            spec["required"] = required
            for key in ("allowedValues", "range", "length", "pattern"):
                if key in rules:
                    spec[key] = rules[key]
            out[ros_name] = spec
        return out

    result: dict[str, Any] = {}
    for class_name, resource_class in sorted(classes.items()):
        at = f"{where} class {class_name}"
        if class_name not in type_names:
            raise _fail(at, "no ROS_RESOURCE_TYPE_NAME")
        mapper = mappers.get(resource_class.mapper)
        if mapper is None or not mapper.is_props:
            raise _fail(at, f"renderProperties calls {resource_class.mapper}, not a props mapper")
        props_struct = validators[mapper.validator].struct
        if props_struct != f"{class_name}Props":
            raise _fail(at, f"renders {props_struct}")
        jsii_class = by_class.get(class_name)
        if jsii_class is None:
            raise _fail(at, "no jsii class")
        documented = sorted(
            str(p["docs"]["custom"]["Attribute"]).split(":", 1)[0].strip()
            for p in jsii_class.get("properties", [])
            if p["name"].startswith("attr") and "Attribute" in p.get("docs", {}).get("custom", {})
        )
        if documented != sorted(resource_class.attributes):
            raise _fail(at, f"attributes differ: jsii {documented}, getAtt {sorted(resource_class.attributes)}")
        if sorted(resource_class.props) != sorted(camel for _, camel, _ in mapper.entries):
            raise _fail(at, "constructor props differ from the mapper's")
        mapper.used = True
        result[type_names[class_name]] = {
            "attributes": sorted(resource_class.attributes),
            "docUrl": _doc_url(jsii_class.get("docs", {})),
            "package": package.name,
            "properties": struct_schema(props_struct, ()),
        }
    if set(type_names) != set(classes):
        raise _fail(where, f"ROS_RESOURCE_TYPE_NAME without a class: {sorted(set(type_names) - set(classes))}")
    unused = sorted(name for name, item in {**validators, **mappers}.items() if not item.used)
    if unused:
        raise _fail(where, f"functions the extractor did not link to a resource: {unused}")
    unread = sorted(set(by_struct) - read_structs)
    if unread:
        raise _fail(where, f"jsii structs the extractor did not read: {unread}")
    return result


def _is_nested_struct(jsii_type: Mapping[str, Any]) -> bool:
    namespace = str(jsii_type.get("namespace", ""))
    return namespace.rpartition(".")[2].startswith("Ros") and jsii_type["name"].endswith("Property")


def _type_schema(tree: Any, struct_schema: Any) -> dict[str, Any]:
    if isinstance(tree, str):
        return {"type": tree}
    kind, inner = tree
    if kind == "struct":
        return {"type": "struct", "properties": struct_schema(inner)}
    return {"type": kind, "items": _type_schema(inner, struct_schema)}


# -- ros-cdk-core: the template vocabulary -----------------------------------------------------------------


def _core_source(core: CdkPackage, path: str) -> str:
    if path not in core.sources:
        raise ExtractionError(f"{core.tarball}: no {path}")
    text = core.sources[path]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def _block_keys(text: str, opener: str, where: str) -> list[str]:
    """The `Key:` names of the object literal that starts right after `opener` (one key per line)."""
    start = text.find(opener)
    if start < 0:
        raise ExtractionError(f"{where}: cannot find {opener!r}")
    keys: list[str] = []
    for line in text[start + len(opener) :].splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("}"):
            break
        match = re.match(r"(\w+): ", stripped)
        if match is None:
            if keys and not re.match(r"[\w.&() ]+,?$|[\w.()]+\.logicalId,?$", stripped):
                raise ExtractionError(f"{where}: unrecognised line in {opener!r}: {stripped!r}")
            continue
        keys.append(match[1])
    if not keys:
        raise ExtractionError(f"{where}: no keys after {opener!r}")
    return keys


def extract_core(core: CdkPackage) -> dict[str, Any]:
    """ros-cdk-core's template vocabulary, each list read from the file named in `sources`."""
    where = core.tarball
    jsii = core.assembly.get("types", {})

    param_src = _core_source(core, "lib/ros-parameter.js")
    parameter_keys = _block_keys(param_src, "[this.id]: {", f"{where} lib/ros-parameter.js")
    n_props = len(jsii.get("@alicloud/ros-cdk-core.RosParameterProps", {}).get("properties", []))
    if n_props != len(parameter_keys):
        raise ExtractionError(f"{where}: {len(parameter_keys)} parameter keys but RosParameterProps has {n_props}")
    allowed = re.search(r"RosParameter\.TYPE_ALLOWED_VALUES = (\[[^\]]*\]);", param_src)
    enum = dict(re.findall(r'RosParameterType\["(\w+)"\] = "([^"]+)";', param_src))
    if allowed is None or not enum:
        raise ExtractionError(f"{where} lib/ros-parameter.js: no RosParameter.TYPE_ALLOWED_VALUES / RosParameterType")
    parameter_types = json.loads(allowed[1].replace("'", '"'))
    jsii_enum = [m["name"] for m in jsii.get("@alicloud/ros-cdk-core.RosParameterType", {}).get("members", [])]
    if sorted(parameter_types) != sorted(enum.values()) or sorted(enum) != sorted(jsii_enum):
        raise ExtractionError(f"{where}: parameter types disagree: {parameter_types}, {enum}, {jsii_enum}")

    pseudo_src = _core_source(core, "lib/ros-pseudo.js")
    pseudo = re.findall(r'^const ROS_\w+ = "(ALIYUN::\w+)";$', pseudo_src, flags=re.M)
    n_pseudo = len(jsii.get("@alicloud/ros-cdk-core.RosPseudo", {}).get("properties", []))
    if not pseudo or len(pseudo) != n_pseudo:
        raise ExtractionError(f"{where} lib/ros-pseudo.js: {len(pseudo)} pseudo parameters, RosPseudo has {n_pseudo}")

    fn_src = _core_source(core, "lib/ros-fn.js")
    intrinsics = set(re.findall(r'super\("((?:Fn::)?\w+)", ', fn_src))
    intrinsics |= set(re.findall(r'return \{ "(Fn::\w+)": ', fn_src))
    if "Ref" not in intrinsics or any(name != "Ref" and not name.startswith("Fn::") for name in intrinsics):
        raise ExtractionError(f"{where} lib/ros-fn.js: unexpected intrinsic names {sorted(intrinsics)}")

    resource_keys = _block_keys(
        _core_source(core, "lib/ros-resource.js"), "new util_1.PostResolveToken({", f"{where} lib/ros-resource.js"
    )
    output_keys = _block_keys(
        _core_source(core, "lib/ros-output.js"), "[this.logicalId]: {", f"{where} lib/ros-output.js"
    )
    info_src = _core_source(core, "lib/ros-info.js")
    format_key = re.search(r"RosInfo\.formatVersion = '(\w+)';", info_src)
    versions = re.findall(r"RosInfo\.v\d+ = '([\d-]+)';", info_src)
    if format_key is None or not versions:
        raise ExtractionError(f"{where} lib/ros-info.js: no RosInfo.formatVersion / RosInfo.vXXXXXXXX")

    source = f"{core.name}@{core.version}"
    return {
        "formatVersion": {"key": format_key[1], "values": sorted(versions)},
        "intrinsicFunctions": sorted(intrinsics),
        "outputKeys": sorted(output_keys),
        "parameterKeys": sorted(parameter_keys),
        "parameterTypes": sorted(parameter_types),
        "pseudoParameters": sorted(pseudo),
        "resourceKeys": sorted(resource_keys),
        "sources": {
            "formatVersion": f"{source} package/lib/ros-info.js (RosInfo.formatVersion, RosInfo.v*)",
            "intrinsicFunctions": f"{source} package/lib/ros-fn.js (Fn* classes: super(name, ...), resolve())",
            "outputKeys": f"{source} package/lib/ros-output.js (RosOutput._toRosTemplate)",
            "parameterKeys": f"{source} package/lib/ros-parameter.js (RosParameter._toRosTemplate)",
            "parameterTypes": f"{source} package/lib/ros-parameter.js (RosParameter.TYPE_ALLOWED_VALUES)",
            "pseudoParameters": f"{source} package/lib/ros-pseudo.js (const ROS_* = 'ALIYUN::*')",
            "resourceKeys": f"{source} package/lib/ros-resource.js (RosResource._toRosTemplate)",
            "validatorSemantics": f"{source} package/lib/runtime.js (validate*, listValidator, hashValidator)",
        },
    }


# -- the command line ------------------------------------------------------------------------------------------


def _schema_path() -> Path:
    return Path(__file__).with_name(SCHEMA_FILE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcloud.fc.ros_schema", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("regenerate", "check"))
    args = parser.parse_args(argv)
    path = _schema_path()
    try:
        fresh = dumps(extract())
    except ExtractionError as exc:
        print(f"ros_schema: {exc}", file=sys.stderr)
        return 1
    if args.command == "regenerate":
        path.write_text(fresh, encoding="utf-8")
        count = len(json.loads(fresh)["resources"])
        print(f"wrote {path} ({count} resource types)")
        return 0
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == fresh:
        print(f"{path} matches the pinned ROS CDK packages")
        return 0
    diff = difflib.unified_diff(current.splitlines(), fresh.splitlines(), "checked-in", "extracted", lineterm="", n=1)
    print("\n".join(list(diff)[:60]), file=sys.stderr)
    print(f"ros_schema: {path} is out of date: run `{REGENERATE_COMMAND}` (make ros-schema)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
