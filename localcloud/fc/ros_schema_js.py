"""The generated JS of a ROS CDK package (`lib/**/*.generated.js`), read statement by statement (dev only).

Strict: every top-level statement, every statement of a validator / ToRosTemplate function and of a
resource class constructor must match a known shape, or `ExtractionError` names the file, the function and
the statement (see `ros_schema_extract.py`, which links what is read here to the jsii types).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ExtractionError(RuntimeError):
    """The pinned packages cannot be read, or hold something the extractor does not recognise."""


# -- the file, then each function and class ----------------------------------------------------------

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
class Validator:
    name: str
    struct: str  # "RosRule.TargetsProperty" or "RosRuleProps"
    rules: dict[str, dict[str, Any]]  # camel name -> {"required", "type", "allowedValues", ...}
    order: list[str]
    used: bool = False


@dataclass
class Mapper:
    name: str
    validator: str
    is_props: bool
    entries: list[tuple[str, str, Any]]  # (ROS name, camel name, type tree)
    used: bool = False


@dataclass
class ResourceClass:
    name: str
    attributes: list[str]
    props: list[str]
    mapper: str


def fail(where: str, what: str, text: str = "") -> ExtractionError:
    snippet = f": {text[:160]!r}" if text else ""
    return ExtractionError(f"{where}: {what}{snippet} (the ROS CDK changed? teach localcloud/fc/ros_schema_js.py)")


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
                    raise fail(at, "unterminated comment")
            i += 1
        elif line in _TOP_LEVEL_FIXED or _EXPORTS_VOID.fullmatch(line) or _EXPORTS_SELF.fullmatch(line):
            i += 1
        elif match := _TYPE_NAME.fullmatch(line):
            if match[1] in type_names:
                raise fail(at, f"{match[1]}.ROS_RESOURCE_TYPE_NAME set twice")
            type_names[match[1]] = match[2]
            i += 1
        elif match := _BLOCK_START.fullmatch(line):
            end = i + 1
            while end < len(lines) and lines[end] != "}":
                end += 1
            if end >= len(lines):
                raise fail(at, "unterminated block", line)
            kind = "class" if match[3] else f"function({match[2]})"
            blocks.append((kind, match[3] or match[1], lines[i + 1 : end]))
            i = end + 1
        else:
            raise fail(at, "unrecognised top-level statement", line)
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
            raise fail(self.where, f"expected {what}", self.rest)
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
        raise fail(cursor.where, "expected a regex literal", cursor.rest)
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
        raise fail(cursor.where, "unterminated regex literal", cursor.rest)
    source = text[pos + 1 : i]
    flags = re.match(r"[a-z]*", text[i + 1 :])
    if flags and flags.group():
        raise fail(cursor.where, f"regex flags {flags.group()!r} are not supported", cursor.rest)
    try:
        re.compile(source)
    except re.error as exc:
        raise fail(cursor.where, f"pattern {source!r} is not a valid Python regex ({exc})") from exc
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
    raise fail(where, "unrecognised validator", expr)


def mapper_type(expr: str, mappers: Mapping[str, Mapper], validators: Mapping[str, Validator], where: str) -> Any:
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
            return (kind, mapper_type(expr[len(wrapper) : -1], mappers, validators, where))
    if expr in mappers:
        mapper = mappers[expr]
        mapper.used = True
        if mapper.is_props or mapper.validator not in validators:
            raise fail(where, f"mapper {expr} does not render a struct")
        return ("struct", validators[mapper.validator].struct)
    raise fail(where, "unrecognised mapper", expr)


def parse_validator(name: str, body: list[str], where: str) -> Validator:
    """A `Ros*PropsValidator` / `Ros*_*PropertyValidator` function -> its rules per camelCase property."""
    where = f"{where} {name}"
    if match := _STRUCT_VALIDATOR.fullmatch(name):
        struct = f"{match[1]}.{match[2]}"
    elif match := _PROPS_VALIDATOR.fullmatch(name):
        struct = f"{match[1]}Props"
    else:
        raise fail(where, "unrecognised validator function name")
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
            raise fail(where, f"two {key} rules for {prop!r}")
        target[key] = value

    while not cursor.done:
        if match := cursor.take(_V_EPILOGUE):
            if match[1] != struct.rpartition(".")[2] or not cursor.done:
                raise fail(where, f"validator wraps {match[1]!r}, expected {struct.rpartition('.')[2]!r}")
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
                    raise fail(where, f"allowedValues of {prop!r} are not a JSON array", args["values"]) from exc
                put(prop, "allowedValues", values)
            elif kind == "validateAllowedPattern":
                cursor.expect(_V_PATTERN_ARGS, "reg: /.../")
                put(prop, "pattern", _js_regex(cursor))
                cursor.expect(_V_GUARD_END, "the end of validateAllowedPattern")
            else:
                raise fail(where, f"unrecognised guarded validator ros.{kind} for {prop!r}")
        else:
            raise fail(where, "unrecognised statement in a validator", cursor.rest)
    else:
        raise fail(where, "validator does not end with `return errors.wrap(...)`")
    for prop in order:
        if "type" not in rules[prop]:
            raise fail(where, f"{prop!r} has rules but no type validator")
    return Validator(name=name, struct=struct, rules=rules, order=order)


def _bounds_json(low: str, high: str) -> dict[str, Any]:
    bounds = {"min": _number(low), "max": _number(high)}
    if bounds["min"] is None and bounds["max"] is None:
        raise ExtractionError("a range/length rule without bounds")
    return {k: v for k, v in bounds.items() if v is not None}


def parse_mapper(name: str, params: str, body: list[str], where: str) -> tuple[Mapper, list[tuple[str, str, str]]]:
    """A `ros*ToRosTemplate` function -> the validator it asserts and its (ROS name, camel name, expr) entries."""
    where = f"{where} {name}"
    if not _MAPPER.fullmatch(name):
        raise fail(where, "unrecognised mapper function name")
    cursor = _Cursor(_joined(body), where)
    cursor.expect(_M_PROLOGUE, "the mapper prologue")
    if params == "properties, enableResourcePropertyConstraint":
        validator = cursor.expect(_M_PROPS_ASSERT, "the props validator assertion")[1]
        is_props = True
    elif params == "properties":
        validator = cursor.expect(_M_STRUCT_ASSERT, "the struct validator assertion")[1]
        is_props = False
    else:
        raise fail(where, f"unrecognised mapper parameters ({params})")
    cursor.expect(r"return \{", "return {")
    raw: list[tuple[str, str, str]] = []
    while not cursor.take(r"\};$"):
        match = cursor.take(_M_ENTRY)
        if match is None:
            raise fail(where, "unrecognised entry in a ToRosTemplate mapping", cursor.rest)
        raw.append((match["ros"], match["p"], match["m"]))
    if not cursor.done:
        raise fail(where, "statements after the mapping", cursor.rest)
    return Mapper(name=name, validator=validator, is_props=is_props, entries=[]), raw


def parse_class(name: str, body: list[str], where: str) -> ResourceClass:
    where = f"{where} class {name}"
    text = re.sub(r"/\*.*?\*/", " ", _joined(body))
    cursor = _Cursor(re.sub(r" +", " ", text).strip(), where)
    match = cursor.expect(_C_CONSTRUCTOR, "the RosResource constructor")
    if match[1] != name:
        raise fail(where, f"constructor uses {match[1]}.ROS_RESOURCE_TYPE_NAME")
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
        raise fail(where, "unrecognised class member", cursor.rest)
    if getter != props:
        raise fail(where, f"rosProperties {getter} differ from the constructor's props {props}")
    if " ".join(body).count("getAtt(") != len(attributes):
        raise fail(where, "a getAtt the extractor did not read")
    return ResourceClass(name=name, attributes=attributes, props=props, mapper=render[1])
