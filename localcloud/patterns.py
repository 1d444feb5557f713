"""Alibaba Cloud EventBridge event-pattern matching for the local cloud.

Implements the pattern language of
https://help.aliyun.com/en/eventbridge/user-guide/event-patterns: the pattern mirrors the
nesting of the CloudEvent (``source``, ``type``, ``subject``, extension attributes such as
``aliyunregionid``, and ``data.*``), keys are AND-ed, the values listed for one key are OR-ed,
matching is case-sensitive, and every operator is wrapped in an array.

A pattern is validated once by :meth:`EventPattern.compile` and turned into an immutable tree, so
routing an event only walks that tree. Anything the real service would reject (unknown operators,
Amazon-only ones, malformed ``numeric`` or ``cidr``) raises :class:`InvalidEventPattern` instead of
silently matching or silently failing.
"""

from __future__ import annotations

import ipaddress
import json
import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["EventPattern", "InvalidEventPattern", "matches"]

_REASON_PREFIX = "Event pattern is not valid. Reason: "

# Amazon EventBridge operators missing from Alibaba's operator list: refuse them rather than guess
# (moto, for one, treats unknown operators as a match, which hides broken rules).
_AMAZON_ONLY_OPERATORS = frozenset({"wildcard", "equals-ignore-case", "$or"})
_AMAZON_ONLY_ANYTHING_BUT_FORMS = frozenset({"suffix", "wildcard", "equals-ignore-case"})

_NUMERIC_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
}
_LOWER_BOUND_OPERATORS = frozenset({">", ">="})
_UPPER_BOUND_OPERATORS = frozenset({"<", "<="})

# The Alibaba limits page says "each field can contain up to five expressions in a map data
# structure" for a "stringExpression" pattern without defining either term, and the event-patterns
# page states no cap; no per-field cap is enforced rather than reject patterns the service accepts.

# Marks a key that is absent from the event (``None`` is a real JSON null).
_MISSING: Any = object()


class InvalidEventPattern(ValueError):
    """The pattern is not one Alibaba Cloud EventBridge would accept."""

    def __init__(self, reason: str, key_path: tuple[str, ...] = (), operator: str | None = None) -> None:
        self.reason = reason
        self.key_path = ".".join(key_path)
        self.operator = operator
        location = f'key "{self.key_path}"' if key_path else "pattern root"
        if operator is not None:
            location += f', operator "{operator}"'
        super().__init__(f"{_REASON_PREFIX}{location}: {reason}")


# ---------------------------------------------------------------------------------------------
# Compiled form: immutable (and hashable) so an EventPattern can be shared and cached freely.


@dataclass(frozen=True)
class _Condition:
    """One element of a leaf array: an exact value or an operator with its checked operand."""

    operator: str  # "exact" for a bare value, otherwise the operator key
    operand: Any


@dataclass(frozen=True)
class _Leaf:
    """A field whose conditions are OR-ed."""

    conditions: tuple[_Condition, ...]


@dataclass(frozen=True)
class _Object:
    """A nested object whose fields are AND-ed."""

    fields: tuple[tuple[str, _Leaf | _Object], ...]


@dataclass(frozen=True)
class _Exclusion:
    """Operand of ``anything-but``: a set of excluded values, or an excluded prefix."""

    values: tuple[Any, ...] = ()
    prefix: str | None = None


@dataclass(frozen=True)
class EventPattern:
    """A validated event pattern, ready to test events against."""

    root: _Object  # build through EventPattern.compile, which validates the pattern

    @classmethod
    def compile(cls, pattern: dict[str, Any] | str) -> EventPattern:
        """Validate ``pattern`` (a dict or its JSON text, as template.yml stores it) once."""
        if isinstance(pattern, str):
            pattern = _parse_pattern_text(pattern)
        return cls(_compile_object(pattern, ()))

    def matches(self, event: dict[str, Any] | str) -> bool:
        """Whether ``event`` (a CloudEvent dict or its JSON text) satisfies the pattern."""
        return _object_matches(self.root, _parse_event(event))


def matches(pattern: dict[str, Any] | str, event: dict[str, Any] | str) -> bool:
    """Compile ``pattern`` and test ``event``; compile once with EventPattern when routing many."""
    return EventPattern.compile(pattern).matches(event)


# ---------------------------------------------------------------------------------------------
# Validation and compilation.


def _parse_pattern_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidEventPattern(f"the pattern is not valid JSON ({error})") from None


def _compile_object(pattern: Any, path: tuple[str, ...]) -> _Object:
    if not isinstance(pattern, dict):
        raise InvalidEventPattern(f"expected a JSON object, got {_json_type(pattern)}", path)
    # An empty object constrains nothing; that is almost certainly a mistake in a rule.
    if not pattern:
        raise InvalidEventPattern("an object must name at least one field", path)
    fields: list[tuple[str, _Leaf | _Object]] = []
    for key, spec in pattern.items():
        if not isinstance(key, str):
            raise InvalidEventPattern(f"field names must be strings, got {key!r}", path)
        key_path = (*path, key)
        if key in _AMAZON_ONLY_OPERATORS:
            raise _amazon_only(path, key)
        if isinstance(spec, dict):
            fields.append((key, _compile_object(spec, key_path)))
        elif isinstance(spec, list):
            fields.append((key, _compile_leaf(spec, key_path)))
        else:
            raise InvalidEventPattern(
                f"a field must map to an array of values or operators, got a bare {_json_type(spec)}",
                key_path,
            )
    return _Object(tuple(fields))


def _compile_leaf(items: list[Any], path: tuple[str, ...]) -> _Leaf:
    if not items:
        raise InvalidEventPattern("the array of values must not be empty", path)
    conditions: list[_Condition] = []
    for item in items:
        if isinstance(item, dict):
            conditions.append(_compile_operator(item, path))
        elif isinstance(item, list):
            raise InvalidEventPattern("arrays of values cannot be nested", path)
        else:
            _require_json_scalar(item, path)
            conditions.append(_Condition("exact", item))
    return _Leaf(tuple(conditions))


def _compile_operator(spec: dict[Any, Any], path: tuple[str, ...]) -> _Condition:
    if len(spec) != 1:
        names = ", ".join(f'"{name}"' for name in spec) or "none"
        raise InvalidEventPattern(f"an operator object must have exactly one key, got {names}", path)
    ((name, operand),) = spec.items()
    if name in _AMAZON_ONLY_OPERATORS:
        raise _amazon_only(path, name)
    compile_operand = _OPERAND_COMPILERS.get(name)
    if compile_operand is None:
        raise InvalidEventPattern("unknown operator", path, str(name))
    return _Condition(name, compile_operand(operand, path, name))


def _compile_string_operand(operand: Any, path: tuple[str, ...], name: str) -> str:
    if isinstance(operand, dict) and "equals-ignore-case" in operand:
        raise _amazon_only(path, f"{name}/equals-ignore-case")
    if not isinstance(operand, str):
        raise InvalidEventPattern(f"expects a string, got {_json_type(operand)}", path, name)
    return operand


def _compile_anything_but(operand: Any, path: tuple[str, ...], name: str) -> _Exclusion:
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise InvalidEventPattern('expects an object with the single key "prefix"', path, name)
        ((form, value),) = operand.items()
        if form in _AMAZON_ONLY_ANYTHING_BUT_FORMS:
            raise _amazon_only(path, f"{name}/{form}")
        if form != "prefix":
            raise InvalidEventPattern(f'unknown form "{form}"; only "prefix" is supported', path, name)
        return _Exclusion(prefix=_compile_string_operand(value, path, f"{name}/prefix"))
    excluded = operand if isinstance(operand, list) else [operand]
    if not excluded:
        raise InvalidEventPattern("the list of excluded values must not be empty", path, name)
    for value in excluded:
        if not (isinstance(value, str) or _is_finite_number(value)):
            raise InvalidEventPattern(
                f"expects a string, a number or a list of them, got {_json_type(value)}", path, name
            )
    return _Exclusion(values=tuple(excluded))


def _compile_numeric(operand: Any, path: tuple[str, ...], name: str) -> tuple[tuple[str, Any], ...]:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise InvalidEventPattern('expects one or two comparisons such as [">", 0, "<=", 5]', path, name)
    comparisons: list[tuple[str, Any]] = []
    for comparator, bound in zip(operand[::2], operand[1::2], strict=True):
        if comparator not in _NUMERIC_COMPARATORS:
            raise InvalidEventPattern(
                f'unknown comparison {_json_text(comparator)}; use "<", "<=", "=", ">" or ">="', path, name
            )
        if not _is_finite_number(bound):
            raise InvalidEventPattern(
                f"the bound of {_json_text(comparator)} must be a finite number, got {_json_text(bound)}",
                path,
                name,
            )
        comparisons.append((comparator, bound))
    if len(comparisons) == 2:
        lower = [bound for comparator, bound in comparisons if comparator in _LOWER_BOUND_OPERATORS]
        upper = [bound for comparator, bound in comparisons if comparator in _UPPER_BOUND_OPERATORS]
        if len(lower) != 1 or len(upper) != 1:
            raise InvalidEventPattern(
                'two comparisons must be one lower bound (">" or ">=") and one upper bound ("<" or "<=")',
                path,
                name,
            )
        if lower[0] >= upper[0]:
            raise InvalidEventPattern("the lower bound must be below the upper bound", path, name)
    return tuple(comparisons)


def _compile_cidr(operand: Any, path: tuple[str, ...], name: str) -> ipaddress.IPv4Network:
    block = _compile_string_operand(operand, path, name)
    if ":" in block:
        raise InvalidEventPattern(f"only IPv4 blocks are supported, got {_json_text(block)}", path, name)
    try:
        # strict: "10.0.0.5/24" has host bits set and is more likely a typo than a network.
        return ipaddress.IPv4Network(block, strict=True)
    except ValueError as error:
        raise InvalidEventPattern(f"not a valid IPv4 network ({error})", path, name) from None


def _compile_exists(operand: Any, path: tuple[str, ...], name: str) -> bool:
    if not isinstance(operand, bool):
        raise InvalidEventPattern(f"expects true or false, got {_json_type(operand)}", path, name)
    return operand


_OPERAND_COMPILERS: dict[str, Callable[[Any, tuple[str, ...], str], Any]] = {
    "prefix": _compile_string_operand,
    "suffix": _compile_string_operand,
    "contains": _compile_string_operand,
    "anything-but": _compile_anything_but,
    "numeric": _compile_numeric,
    "cidr": _compile_cidr,
    "exists": _compile_exists,
}


def _require_json_scalar(value: Any, path: tuple[str, ...]) -> None:
    if value is None or isinstance(value, (str, bool)):
        return
    if _is_finite_number(value):
        return
    raise InvalidEventPattern(f"{value!r} is not a JSON string, number, boolean or null", path)


def _amazon_only(path: tuple[str, ...], name: str) -> InvalidEventPattern:
    return InvalidEventPattern(
        "this is an Amazon EventBridge operator that Alibaba Cloud EventBridge does not support",
        path,
        name,
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _is_finite_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _is_number(value: Any) -> bool:
    # JSON true/false are not numbers, although Python's bool subclasses int.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Matching.


def _parse_event(event: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(event, str):
        event = json.loads(event)
    if not isinstance(event, dict):
        raise ValueError(f"an event must be a JSON object, got {_json_type(event)}")
    return event


def _object_matches(node: _Object, event_object: Any) -> bool:
    for key, child in node.fields:
        value = event_object.get(key, _MISSING) if isinstance(event_object, dict) else _MISSING
        matched = _leaf_matches(child, value) if isinstance(child, _Leaf) else _nested_matches(child, value)
        if not matched:
            return False
    return True


def _nested_matches(node: _Object, value: Any) -> bool:
    if isinstance(value, list):
        objects = [item for item in value if isinstance(item, dict)]
        # One array element must satisfy the whole sub-pattern, not fields picked across elements.
        if objects:
            return any(_object_matches(node, item) for item in objects)
    # A missing or non-object parent means every field below it is missing (so exists:false holds).
    return _object_matches(node, value if isinstance(value, dict) else _MISSING)


def _leaf_matches(leaf: _Leaf, value: Any) -> bool:
    present = value is not _MISSING
    # An array in the event matches when any of its elements matches (the AWS convention, assumed here).
    candidates = tuple(_scalar_values(value)) if present else ()
    for condition in leaf.conditions:
        if condition.operator == "exists":
            if _evaluate_exists(condition.operand, present):
                return True
            continue
        evaluate = _VALUE_EVALUATORS[condition.operator]
        if any(evaluate(condition.operand, candidate) for candidate in candidates):
            return True
    return False


def _scalar_values(value: Any) -> Iterator[Any]:
    # Objects never satisfy a value condition, not even anything-but: the pattern expected a leaf.
    if isinstance(value, list):
        for item in value:
            yield from _scalar_values(item)
    elif not isinstance(value, dict):
        yield value


def _same_json_value(expected: Any, actual: Any) -> bool:
    # The docs compare numbers as written (300 != 300.0); after parsing, the type is what is left of
    # that, so int vs float and true vs 1 differ. 300.0 and 3.0e2 are indistinguishable here.
    return type(expected) is type(actual) and expected == actual


def _evaluate_exact(expected: Any, value: Any) -> bool:
    return _same_json_value(expected, value)


def _evaluate_prefix(prefix: str, value: Any) -> bool:
    return isinstance(value, str) and value.startswith(prefix)


def _evaluate_suffix(suffix: str, value: Any) -> bool:
    return isinstance(value, str) and value.endswith(suffix)


def _evaluate_contains(fragment: str, value: Any) -> bool:
    return isinstance(value, str) and fragment in value


def _evaluate_anything_but(exclusion: _Exclusion, value: Any) -> bool:
    # A missing field never reaches here: anything-but needs a value to compare, so absence fails.
    if exclusion.prefix is not None:
        # Only strings have a prefix; a number or null is not "a string outside the prefix".
        return isinstance(value, str) and not value.startswith(exclusion.prefix)
    return not any(_same_json_value(excluded, value) for excluded in exclusion.values)


def _evaluate_numeric(comparisons: tuple[tuple[str, Any], ...], value: Any) -> bool:
    # Only JSON numbers take part: "5" is a string, and numeric strings are not coerced.
    if not _is_number(value):
        return False
    return all(_NUMERIC_COMPARATORS[comparator](value, bound) for comparator, bound in comparisons)


def _evaluate_cidr(network: ipaddress.IPv4Network, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return address in network


def _evaluate_exists(should_exist: bool, present: bool) -> bool:
    # Presence of the key is what counts: a null or an empty array is present.
    return present is should_exist


_VALUE_EVALUATORS: dict[str, Callable[[Any, Any], bool]] = {
    "exact": _evaluate_exact,
    "prefix": _evaluate_prefix,
    "suffix": _evaluate_suffix,
    "contains": _evaluate_contains,
    "anything-but": _evaluate_anything_but,
    "numeric": _evaluate_numeric,
    "cidr": _evaluate_cidr,
}
