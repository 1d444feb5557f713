"""Extracting localcloud/fc/ros_schema.json from the ROS CDK packages pinned in pyproject.toml (dev only).

    python -m localcloud.fc.ros_schema_extract regenerate   # (make ros-schema) rewrite the JSON
    python -m localcloud.fc.ros_schema_extract check        # exit 1 if the JSON differs from a fresh extraction

Why the schema is checked in and what reads it: `ros_schema.py`. This module finds the pinned packages, reads
their jsii assemblies and assembles the schema; `ros_schema_js.py` parses the generated JS, statement by statement.

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
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import re
import sys
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from localcloud.fc.ros_schema import SCHEMA_FILE, SCHEMA_FORMAT
from localcloud.fc.ros_schema_js import (
    ExtractionError,
    Mapper,
    ResourceClass,
    Validator,
    fail,
    mapper_type,
    parse_class,
    parse_mapper,
    parse_validator,
    split_top_level,
)

CORE_PACKAGE = "ros-cdk-core"
REGENERATE_COMMAND = "python -m localcloud.fc.ros_schema_extract regenerate"
INSTALL_HINT = "run `.venv/bin/pip install -e '.[dev]'` (or `make setup`)"
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
_PIN = re.compile(r"""["'](ros-cdk-[a-z0-9-]+)==([0-9][0-9A-Za-z.+-]*)["']""")


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


# -- jsii: the types, optional flags and docs ------------------------------------------------------------


def _jsii_type(ref: Mapping[str, Any], structs: Mapping[str, Any], where: str) -> Any:
    """A jsii type reference without IResolvable -> "string" | ("list", ...) | ("struct", "RosX.YProperty")."""
    if "union" in ref:
        members = [t for t in ref["union"]["types"] if t.get("fqn") != "@alicloud/ros-cdk-core.IResolvable"]
        if len(members) != 1:
            raise fail(where, "unsupported jsii union", json.dumps(ref))
        return _jsii_type(members[0], structs, where)
    if "primitive" in ref:
        if ref["primitive"] not in ("string", "number", "boolean", "any"):
            raise fail(where, f"unsupported jsii primitive {ref['primitive']!r}")
        return ref["primitive"]
    if "collection" in ref:
        kind = {"array": "list", "map": "map"}.get(ref["collection"]["kind"])
        if kind is None:
            raise fail(where, "unsupported jsii collection", json.dumps(ref))
        return (kind, _jsii_type(ref["collection"]["elementtype"], structs, where))
    if "fqn" in ref and ref["fqn"] in structs:
        return ("struct", structs[ref["fqn"]])
    raise fail(where, "unsupported jsii type", json.dumps(ref))


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
    validators: dict[str, Validator] = {}
    mappers: dict[str, Mapper] = {}
    raw_entries: dict[str, list[tuple[str, str, str]]] = {}
    classes: dict[str, ResourceClass] = {}
    for kind, name, body in blocks:
        if name in validators or name in mappers or name in classes:
            raise fail(where, f"{name} defined twice")
        if kind == "class":
            classes[name] = parse_class(name, body, where)
        elif kind == "function(properties)" and name.startswith("Ros"):
            validators[name] = parse_validator(name, body, where)
        elif kind.startswith("function(") and name.startswith("ros"):
            mapper, raw = parse_mapper(name, kind[len("function(") : -1], body, where)
            mappers[name], raw_entries[name] = mapper, raw
        else:
            raise fail(where, f"unrecognised top-level function {name}({kind[9:-1]})")
    for name, mapper in mappers.items():
        if mapper.validator not in validators:
            raise fail(f"{where} {name}", f"asserts unknown validator {mapper.validator}")
        mapper.entries = [
            (ros, camel, mapper_type(expr, mappers, validators, f"{where} {name}"))
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
            raise fail(where, f"recursive struct {' -> '.join((*stack, struct))}")
        validator = next((v for v in validators.values() if v.struct == struct), None)
        mapper = next((m for m in mappers.values() if validator and m.validator == validator.name), None)
        jsii = by_struct.get(struct)
        if validator is None or mapper is None or jsii is None:
            raise fail(where, f"struct {struct}: validator {bool(validator)}, mapper {bool(mapper)}, jsii {bool(jsii)}")
        validator.used = mapper.used = True
        read_structs.add(struct)
        jsii_props = {p["name"]: p for p in jsii.get("properties", [])}
        camel_names = [camel for _, camel, _ in mapper.entries]
        if sorted(camel_names) != sorted(jsii_props) or sorted(validator.rules) != sorted(jsii_props):
            raise fail(
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
                raise fail(at, f"types differ: jsii {declared}, validator {rules['type']}, mapper {mapped_type}")
            required = bool(rules.get("required"))
            if required == bool(jsii_props[camel].get("optional")):
                raise fail(at, f"required by the validator: {required}, optional in jsii: {not required}")
            if ros_name in out:
                raise fail(at, f"ROS property {ros_name} mapped twice")
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
            raise fail(at, "no ROS_RESOURCE_TYPE_NAME")
        mapper = mappers.get(resource_class.mapper)
        if mapper is None or not mapper.is_props:
            raise fail(at, f"renderProperties calls {resource_class.mapper}, not a props mapper")
        props_struct = validators[mapper.validator].struct
        if props_struct != f"{class_name}Props":
            raise fail(at, f"renders {props_struct}")
        jsii_class = by_class.get(class_name)
        if jsii_class is None:
            raise fail(at, "no jsii class")
        documented = sorted(
            str(p["docs"]["custom"]["Attribute"]).split(":", 1)[0].strip()
            for p in jsii_class.get("properties", [])
            if p["name"].startswith("attr") and "Attribute" in p.get("docs", {}).get("custom", {})
        )
        if documented != sorted(resource_class.attributes):
            raise fail(at, f"attributes differ: jsii {documented}, getAtt {sorted(resource_class.attributes)}")
        if sorted(resource_class.props) != sorted(camel for _, camel, _ in mapper.entries):
            raise fail(at, "constructor props differ from the mapper's")
        mapper.used = True
        result[type_names[class_name]] = {
            "attributes": sorted(resource_class.attributes),
            "docUrl": _doc_url(jsii_class.get("docs", {})),
            "package": package.name,
            "properties": struct_schema(props_struct, ()),
        }
    if set(type_names) != set(classes):
        raise fail(where, f"ROS_RESOURCE_TYPE_NAME without a class: {sorted(set(type_names) - set(classes))}")
    unused = sorted(name for name, item in {**validators, **mappers}.items() if not item.used)
    if unused:
        raise fail(where, f"functions the extractor did not link to a resource: {unused}")
    unread = sorted(set(by_struct) - read_structs)
    if unread:
        raise fail(where, f"jsii structs the extractor did not read: {unread}")
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
    parser = argparse.ArgumentParser(
        prog="python -m localcloud.fc.ros_schema_extract", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("regenerate", "check"))
    args = parser.parse_args(argv)
    path = _schema_path()
    try:
        fresh = dumps(extract())
    except ExtractionError as exc:
        print(f"ros_schema_extract: {exc}", file=sys.stderr)
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
    print(f"ros_schema_extract: {path} is out of date: run `{REGENERATE_COMMAND}` (make ros-schema)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
