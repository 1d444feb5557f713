"""Intrinsic functions: Ref, Fn::Sub and Fn::GetAtt resolved; any other ROS function refused by name."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from localcloud.fc.template.model import FUNCTION, NAME_PROPERTY, ROLE, RULE, SUB_VARIABLE
from localcloud.fc.template.parameters import as_text

if TYPE_CHECKING:
    from localcloud.fc.template.loader import Loader

_LOCAL_INTRINSICS = ("Ref", "Fn::Sub", "Fn::GetAtt")


class IntrinsicsMixin:
    """Ref, Fn::Sub and Fn::GetAtt, resolved as ROS resolves them (what the local runtime runs)."""

    def resolve(self: Loader, value: Any, resource: str, prop: str) -> Any:
        """Value with Ref / Fn::Sub / Fn::GetAtt replaced; errors name the resource and property."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref":
                    return self._ref(argument, resource, prop)
                if key == "Fn::Sub":
                    return self._sub(argument, resource, prop)
                if key == "Fn::GetAtt":
                    return self._get_att(argument, resource, prop)
                if isinstance(key, str) and key.startswith("Fn::"):
                    known = key in self.schema.intrinsic_functions
                    raise self.error(
                        f"{key} is {'valid ROS but ' if known else 'not a ROS function and '}not run by the local "
                        f"runtime (it runs {', '.join(_LOCAL_INTRINSICS)})",
                        resource,
                        prop,
                    )
            return {k: self.resolve(v, resource, f"{prop}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, resource, f"{prop}[{i}]") for i, v in enumerate(value)]
        return value

    def _ref(self: Loader, name: Any, resource: str, prop: str) -> Any:
        if name in self.parameters:
            return self.typed.get(name, self.parameters[name])  # a Number parameter refers as a number, ...
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.schema.pseudo_parameters:
            raise self.error(f"Ref {name!r} is a valid ROS pseudo parameter but not run by the local runtime (it "
                             f"runs {', '.join(self.pseudo)})", resource, prop)  # fmt: skip
        if name in self.resources:
            if name == resource:
                raise self.error(f"Ref {name!r}: a resource cannot refer to itself", resource, prop)
            # A resource's Ref is its physical id: the name ROS gives it (FunctionName, RoleName, ...).
            kind = self.resources[name]["Type"]
            key = NAME_PROPERTY.get(kind)
            own = (self.resources[name].get("Properties") or {}).get(key) if key else None
            return self._guarded(name, "Ref", lambda: as_text(self.resolve(own, name, key))) if own else str(name)
        raise self.error(f"Ref {name!r} names no parameter, pseudo parameter or resource", resource, prop)

    def _guarded(self: Loader, target: str, what: str, compute: Callable[[], str]) -> str:
        key = (target, what)
        if key in self._resolving:
            raise self.error(f"circular reference through {target}.{what}", target)
        self._resolving.add(key)
        try:
            return compute()
        finally:
            self._resolving.discard(key)

    def _sub(self: Loader, argument: Any, resource: str, prop: str) -> str:
        if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
            text, variables = argument[0], self.resolve(argument[1], resource, prop)
        else:
            text, variables = argument, {}
        if not isinstance(text, str):
            raise self.error("Fn::Sub takes a string or [string, {variables}]", resource, prop)

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):  # ${!Literal} writes ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return as_text(variables[name])
            if "." in name and not name.startswith("ALIYUN::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att([logical_id, attribute], resource, prop)
            return as_text(self._ref(name, resource, prop))

        return SUB_VARIABLE.sub(substitute, text)

    def _get_att(self: Loader, argument: Any, resource: str, prop: str) -> str:
        if isinstance(argument, str) and "." in argument:
            argument = argument.split(".", 1)
        if not (isinstance(argument, list) and len(argument) == 2 and all(isinstance(a, str) for a in argument)):
            raise self.error("Fn::GetAtt takes [LogicalId, Attribute]", resource, prop)
        target, attribute = argument
        if target not in self.resources:
            raise self.error(f"Fn::GetAtt names no resource {target!r}", resource, prop)
        kind = self.resources[target]["Type"]
        attributes = sorted(self.schema.resource(kind).attributes)
        if attribute not in attributes:
            raise self.error(f"Fn::GetAtt: {kind} has no attribute {attribute!r} (it has {', '.join(attributes)})",
                             resource, prop)  # fmt: skip
        return self._guarded(target, attribute, lambda: self._attribute(target, kind, attribute))

    def _attribute(self: Loader, target: str, kind: str, attribute: str) -> str:
        """The value an attribute has once ROS created the resource; what the local model cannot know is a
        stable placeholder (no Bakery wiring reads one)."""
        props = self.resources[target].get("Properties") or {}

        def own(name: str) -> str:
            if name not in props:
                raise self.error(f"{name} is required", target, name)
            return as_text(self.resolve(props[name], target, name))

        if kind == FUNCTION and attribute == "ARN":
            return f"acs:fc:{self.region}:{self.account_id}:functions/{own('FunctionName')}"
        if kind == ROLE and attribute == "Arn":
            return f"acs:ram::{self.account_id}:role/{own('RoleName')}"
        if kind == RULE and attribute == "RuleARN":
            return (
                f"acs:eventbridge:{self.region}:{self.account_id}:eventbus/{own('EventBusName')}/rule/{own('RuleName')}"
            )
        if attribute in props and isinstance(props[attribute], (str, dict)):
            return own(attribute)  # FunctionName, RoleName, RuleName, EventBusName, TriggerName ...
        return f"local:{target}.{attribute}"
