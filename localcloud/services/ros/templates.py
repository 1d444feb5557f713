"""A ROS template as the local ROS reads it: parsed, its references checked, its resources in dependency order."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from localcloud.errors import ApiError
from localcloud.fc.template.parameters import as_text as _text
from localcloud.services.ros.models import _PSEUDO, _RESOURCE_KEYS, _SUB_VARIABLE, Stack, _Spec
from localcloud.wire import Params


def _parse(text: str) -> dict[str, Any]:
    """A template is JSON or YAML text whose top level is a mapping."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ApiError("InvalidTemplate", f"The template is not valid JSON or YAML: {error}") from None
    if not isinstance(document, dict):
        raise ApiError("InvalidTemplate", "The template must be a JSON or YAML mapping with Resources.")
    return document


def _placeholder(spec: dict[str, Any]) -> str:
    """A stand-in for a parameter without Default when ValidateTemplate checks a template (no values given)."""
    allowed = spec.get("AllowedValues")
    if isinstance(allowed, list) and allowed:
        return _text(allowed[0])
    if spec.get("Type") == "Number":
        return _text(spec.get("MinValue", 1))
    return "placeholder"


def _template_error(error: Any) -> ApiError:
    """The FC loader's TemplateError as ROS answers it: structure → InvalidTemplate, values → StackValidationFailed."""
    message = str(error)
    if message.startswith("template: "):
        message = message[len("template: ") :]
    resource, prop = getattr(error, "resource", None), getattr(error, "property", None)
    structural = resource is None and not (prop or "").startswith("Parameters")
    if resource is not None and (prop is None or prop.split(".")[0] in _RESOURCE_KEYS):
        structural = True
    if structural:
        where = f"Resource [{resource}]: " if resource and not message.startswith(f"{resource}") else ""
        return ApiError("InvalidTemplate", f"{where}{message}")
    return ApiError("StackValidationFailed", message)


def _reference_names(value: Any, local: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(kind, name) of every Ref / Fn::GetAtt target / Fn::Sub variable inside `value`."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" and isinstance(argument, str):
                return [("Ref", argument)]
            if key == "Fn::GetAtt":
                target = argument.split(".", 1)[0] if isinstance(argument, str) else (argument or [None])[0]
                return [("GetAtt", str(target)), *_reference_names(argument[1:] if isinstance(argument, list) else [])]
            if key == "Fn::Sub":
                text, variables = (
                    (argument[0], argument[1]) if isinstance(argument, list) and len(argument) == 2 else (argument, {})
                )
                names = set(variables) if isinstance(variables, dict) else set()
                if isinstance(text, str):
                    for match in _SUB_VARIABLE.finditer(text):
                        name = match.group(1).strip()
                        if name.startswith("!") or name in names:
                            continue
                        if "." in name and not name.startswith("ALIYUN::"):
                            found.append(("GetAtt", name.split(".", 1)[0]))
                        else:
                            found.append(("Ref", name))
                return found + _reference_names(variables)
        for item in value.values():
            found.extend(_reference_names(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_reference_names(item))
    return found


def _depends_on(resources: dict[str, Any], logical_id: str) -> list[str]:
    """The resources `logical_id` waits for: DependsOn, and every resource its properties reference."""
    resource = resources.get(logical_id) or {}
    explicit = resource.get("DependsOn") or []
    names = (
        [explicit] if isinstance(explicit, str) else [str(n) for n in explicit] if isinstance(explicit, list) else []
    )
    for _kind, name in _reference_names(resource.get("Properties") or {}):
        if name in resources and name != logical_id and name not in names:
            names.append(name)
    return names


def _check_references(document: dict[str, Any], parameters: set[str]) -> None:
    """Every Ref / GetAtt / DependsOn names something the template has (ROS: InvalidTemplate)."""
    resources = document["Resources"]
    known = set(parameters) | set(_PSEUDO)
    for lid, resource in resources.items():
        if not isinstance(resource, dict):
            raise ApiError("InvalidTemplate", f"Resource [{lid}]: a resource is a mapping with Type and Properties.")
        explicit = resource.get("DependsOn") or []
        for name in [explicit] if isinstance(explicit, str) else explicit if isinstance(explicit, list) else []:
            if name not in resources:
                raise ApiError("InvalidTemplate",
                               f'Resource [{lid}]: The specified reference "{name}" (in DependsOn) is incorrect.')  # fmt: skip
        for prop, value in (
            (resource.get("Properties") or {}).items() if isinstance(resource.get("Properties"), dict) else []
        ):
            for kind, name in _reference_names(value):
                if (kind == "Ref" and name not in known and name not in resources) or (
                    kind == "GetAtt" and name not in resources
                ):
                    raise ApiError("InvalidTemplate",
                                   f'Resource [{lid}]: The specified reference "{name}" (in {prop}) is incorrect.')  # fmt: skip


def _dependency_order(resources: dict[str, Any]) -> list[str]:
    """Logical ids so that each comes after what it depends on; template order breaks ties."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(lid: str, path: list[str]) -> None:
        if state.get(lid) == "done":
            return
        if state.get(lid) == "visiting":
            cycle = [*path[path.index(lid) :], lid]
            raise ApiError("InvalidTemplate", f"Circular Dependency Found: {' -> '.join(cycle)}")
        state[lid] = "visiting"
        for dependency in _depends_on(resources, lid):
            visit(dependency, [*path, lid])
        state[lid] = "done"
        order.append(lid)

    for lid in resources:
        visit(lid, [])
    return order


def _swap(value: Any, old: str, new: str) -> Any:
    """`value` with every occurrence of the text `old` replaced by `new` (inside lists and mappings too)."""
    if not new or old == new:
        return value
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _swap(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, old, new) for v in value]
    return value


def _parsed_equal(current: _Spec, target: _Spec) -> bool:
    """The same template (as parsed: formatting and comments aside) with the same parameter values."""
    return current.document == target.document and current.values == target.values


def _dry_run_result(stack: Stack, target: _Spec) -> dict[str, Any]:
    changed = sorted(k for k in target.values if stack.spec.values.get(k) != target.values[k])
    return {"ParametersAllowedToBeModified": changed, "ParametersNotAllowedToBeModified": []}


def _fingerprint(p: Params) -> str:
    flat = {k: v for k, v in p.flat.items() if k not in ("ClientToken",)}
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()
