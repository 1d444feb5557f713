"""A template's Parameters: ROS's parameter keys, types and constraints, and the values a Ref yields."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.fc.template.loader import Loader


class ParametersMixin:
    """The template's Parameters: declarations checked as ROS checks them, values given or defaulted."""

    def _parameters(self: Loader) -> dict[str, str]:
        declared = self.document.get("Parameters") or {}
        if not isinstance(declared, dict):
            raise self.error("Parameters must be a mapping", prop="Parameters")
        for name in self.given:
            if name not in declared:
                raise self.error(f"parameter {name!r} was given but the template declares no such parameter "
                                 f"(it declares {', '.join(declared) or 'none'})", prop=f"Parameters.{name}")  # fmt: skip
        values: dict[str, str] = {}
        for name, spec in declared.items():
            where = f"Parameters.{name}"
            if name in self.pseudo or str(name).startswith("ALIYUN::"):
                raise self.error("ALIYUN:: names are ROS pseudo parameters", prop=where)
            if not isinstance(spec, dict):
                raise self.error("a parameter is a mapping with at least Type", prop=where)
            for key in spec:
                if key not in self.schema.parameter_keys:
                    raise self.error(f"unknown parameter key {key!r} (ROS allows {', '.join(self.schema.parameter_keys)})",
                                     prop=f"{where}.{key}")  # fmt: skip
            kind = spec.get("Type")
            if kind not in self.schema.parameter_types:
                raise self.error(f"Type {kind!r} is not a ROS parameter type ({', '.join(self.schema.parameter_types)})",
                                 prop=f"{where}.Type")  # fmt: skip
            problem = _constraint_problem(spec)
            if problem:
                key = problem.split(" ", 1)[0]
                raise self.error(problem, prop=f"{where}.{key}")
            if "Default" in spec:
                problem = _parameter_problem(spec, as_text(spec["Default"]))
                if problem:
                    raise self.error(f"the Default {as_text(spec['Default'])!r} breaks its own constraints: {problem}",
                                     prop=f"{where}.Default")  # fmt: skip
            if name in self.given:
                value = as_text(self.given[name])
                problem = _parameter_problem(spec, value)
                if problem:
                    raise self.error(f"the value {value!r} given for {name} is refused: {problem}", prop=where)
            elif "Default" in spec:
                value = as_text(spec["Default"])
            else:
                raise self.error(f"parameter {name!r} is required (it has no Default) and was not given", prop=where)
            values[name] = value
            self.typed[name] = typed(kind, value)
        return values


def typed(kind: Any, value: str) -> Any:
    """A parameter's value as its ROS Type makes it (Ref to a Number parameter is a number, to Json an object...)."""
    try:
        if kind == "Number":
            number = float(value)
            return int(number) if number.is_integer() and "." not in value else number
        if kind == "Boolean":
            return value.lower() == "true"
        if kind == "Json":
            return json.loads(value)
        if kind == "CommaDelimitedList":
            return [part.strip() for part in value.split(",")] if value else []
    except ValueError:
        pass  # _parameter_problem already refused what does not convert
    return value


def _constraint_problem(spec: dict[str, Any]) -> str | None:
    """A constraint of the declaration itself that is not what ROS expects (MinLength: abc)."""
    for key in ("MinLength", "MaxLength", "MinValue", "MaxValue"):
        if key in spec:
            try:
                float(spec[key])
            except (TypeError, ValueError):
                return f"{key} must be a number, got {spec[key]!r}"
    allowed = spec.get("AllowedValues")
    if allowed is not None and not isinstance(allowed, list):
        return f"AllowedValues must be a list, got {allowed!r}"
    return None


def _parameter_problem(spec: dict[str, Any], value: str) -> str | None:
    """Why ROS would refuse `value` for a parameter declared by `spec`, or None (ROS "Parameters" constraints)."""
    kind = spec.get("Type")
    allowed = spec.get("AllowedValues")
    if isinstance(allowed, list) and value not in [as_text(a) for a in allowed]:
        return f"not one of AllowedValues {[as_text(a) for a in allowed]}"
    pattern = spec.get("AllowedPattern")
    if isinstance(pattern, str):
        try:
            matched = re.fullmatch(pattern, value) is not None
        except re.error as error:
            return f"AllowedPattern {pattern!r} is not a valid regular expression ({error})"
        if not matched:
            reason = spec.get("ConstraintDescription") or f"it must match AllowedPattern {pattern!r}"
            return str(reason)
    if kind == "Number":
        try:
            number = float(value)
        except ValueError:
            return "a Number parameter takes a number"
        for key, ok in (("MinValue", lambda bound: number >= bound), ("MaxValue", lambda bound: number <= bound)):
            if key in spec and not ok(float(spec[key])):
                return f"{key} is {spec[key]}"
    elif kind == "Json":
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return "a Json parameter takes JSON text"
    elif kind == "Boolean" and value.lower() not in ("true", "false"):
        return "a Boolean parameter takes true or false"
    if kind in ("String", "CommaDelimitedList"):
        if "MinLength" in spec and len(value) < float(spec["MinLength"]):
            return f"shorter than MinLength {spec['MinLength']}"
        if "MaxLength" in spec and len(value) > float(spec["MaxLength"]):
            return f"longer than MaxLength {spec['MaxLength']}"
    return None


def as_text(value: Any) -> str:
    """A parameter or environment value as ROS passes it on: text (JSON for lists and maps)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
