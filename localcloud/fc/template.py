"""Load the ROS template (template.yml) into the plain wiring the local FC runtime runs.

The template is the single source of truth: the same buses, rules, triggers, timers and async
configs that ROS deploys are what `LocalRuntime` wires up. Only what the project uses is
supported (fc-eventbridge.md §3.2): `ALIYUN::RAM::Role`, `ALIYUN::EventBridge::EventBus`,
`ALIYUN::EventBridge::Rule`, `ALIYUN::FC3::Function`, `ALIYUN::FC3::Trigger` (eventbridge on the
default bus, timer) and `ALIYUN::FC3::AsyncInvokeConfig`; intrinsics `Ref`, `Fn::Sub`, `Fn::GetAtt`.
Anything else is a `TemplateError` naming the resource and the property, raised at load time: a
wiring mistake must not surface as an event that silently goes nowhere.

A function's code is found through `Metadata.LocalCodeUri` (relative to the template file), the
same key `make package` reads; ROS itself ignores resource Metadata.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from localcloud.fc.schedule import ScheduleError, parse_schedule
from localcloud.patterns import EventPattern, InvalidEventPattern

PYTHON_RUNTIMES = ("python3.9", "python3.10", "python3.12")
DEFAULT_BUS = "default"
# FC3 defaults when a template leaves them out (fc-eventbridge.md §1.6; memory/timeout as the ROS FC docs state).
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_EVENT_AGE_S = 86400
MAX_EVENT_AGE_S = 604800

_TOP_LEVEL_KEYS = ("ROSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Resources", "Outputs")
_RESOURCE_KEYS = ("Type", "Properties", "Metadata", "DependsOn", "DeletionPolicy", "Description")
_ROLE, _BUS, _RULE = "ALIYUN::RAM::Role", "ALIYUN::EventBridge::EventBus", "ALIYUN::EventBridge::Rule"
_FUNCTION, _TRIGGER, _ASYNC = "ALIYUN::FC3::Function", "ALIYUN::FC3::Trigger", "ALIYUN::FC3::AsyncInvokeConfig"
RESOURCE_TYPES = (_ROLE, _BUS, _RULE, _FUNCTION, _TRIGGER, _ASYNC)
_PSEUDO = ("ALIYUN::Region", "ALIYUN::AccountId", "ALIYUN::TenantId", "ALIYUN::StackName")
_FC_FUNCTION_ARN = re.compile(r"^acs:fc:[^:]*:[^:]*:(?:services/[^/]+/)?functions/([^/]+)$")
_BUS_ARN = re.compile(r"^acs:eventbridge:[^:]*:[^:]*:eventbus/([^/]+)$")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template cannot run locally; the message names the file, the resource and the property."""

    def __init__(self, message: str, *, resource: str | None = None, prop: str | None = None) -> None:
        self.resource = resource
        self.property = prop
        super().__init__(message)


# -- what a template becomes ---------------------------------------------------------------------


@dataclass
class RoleDef:
    name: str
    actions: list[str]  # every Action of every policy statement, flattened, deduplicated, sorted


@dataclass
class FunctionDef:
    logical_id: str
    name: str
    handler: str  # "<module>.<function>", e.g. index.handler → <code_dir>/index.py
    runtime: str
    memory_mb: int
    timeout_s: int
    env: dict[str, str]  # EnvironmentVariables, resolved
    code_dir: Path
    max_retries: int = DEFAULT_MAX_RETRIES
    max_event_age_s: int = DEFAULT_MAX_EVENT_AGE_S
    on_failure: str | None = None  # DestinationConfig.OnFailure.Destination ARN
    role_actions: list[str] = field(default_factory=list)

    @property
    def module_path(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def function_attr(self) -> str:
        return self.handler.rpartition(".")[2]

    @property
    def handler_file(self) -> Path:
        return self.code_dir / (self.module_path.replace(".", "/") + ".py")


@dataclass(frozen=True)
class Route:
    logical_id: str  # the Trigger or Rule that declares the route
    bus: str  # "default" for FC3 eventbridge triggers
    pattern: EventPattern
    function: str  # function name
    kind: Literal["trigger", "rule"]


@dataclass(frozen=True)
class TimerDef:
    logical_id: str
    function: str
    expression: str  # `@every 5m` or `sec min hour dom month dow` (UTC)
    payload: str
    enabled: bool
    trigger_name: str = ""  # what the timer event's `triggerName` says


@dataclass
class Template:
    functions: dict[str, FunctionDef]  # by function name
    buses: list[str]  # custom buses the template declares
    routes: list[Route]
    timers: list[TimerDef]
    roles: dict[str, RoleDef]  # by logical id
    parameters: dict[str, str] = field(default_factory=dict)  # resolved values
    path: Path | None = None

    def function(self, name_or_logical_id: str) -> FunctionDef:
        """A function by name (bakery-bake) or logical id (BakeFunction)."""
        if name_or_logical_id in self.functions:
            return self.functions[name_or_logical_id]
        for fn in self.functions.values():
            if fn.logical_id == name_or_logical_id:
                return fn
        raise KeyError(f"no function {name_or_logical_id!r}; the template declares {sorted(self.functions)}")


def load_template(
    path: str | Path,
    parameters: dict[str, str] | None = None,
    *,
    region: str,
    account_id: str,
    stack_name: str = "bakery",
) -> Template:
    """Parse and check a ROS template; TemplateError names what is wrong and where."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TemplateError(f"{path}: cannot read the template ({error})") from None
    except yaml.YAMLError as error:
        raise TemplateError(f"{path.name}: not valid YAML ({error})") from None
    if not isinstance(document, dict):
        raise TemplateError(f"{path.name}: a template is a YAML mapping with Resources")
    return _Loader(document, path, dict(parameters or {}), region, account_id, stack_name).load()


# -- loading -------------------------------------------------------------------------------------


class _Loader:
    def __init__(
        self,
        document: dict[str, Any],
        path: Path,
        given: dict[str, str],
        region: str,
        account_id: str,
        stack_name: str,
    ) -> None:
        self.document = document
        self.path = path
        self.given = given
        self.pseudo = {
            "ALIYUN::Region": region,
            "ALIYUN::AccountId": account_id,
            "ALIYUN::TenantId": account_id,
            "ALIYUN::StackName": stack_name,
        }
        self.region = region
        self.account_id = account_id
        self.resources: dict[str, dict[str, Any]] = {}
        self.parameters: dict[str, str] = {}
        self._resolving: set[tuple[str, str]] = set()

    def error(self, message: str, resource: str | None = None, prop: str | None = None) -> TemplateError:
        where = ".".join(p for p in (resource, prop) if p)
        prefix = f"{self.path.name}: {where}: " if where else f"{self.path.name}: "
        return TemplateError(prefix + message, resource=resource, prop=prop)

    # -- structure ---------------------------------------------------------------------------

    def load(self) -> Template:
        for key in self.document:
            if key not in _TOP_LEVEL_KEYS:
                raise self.error(
                    f"unknown top-level key {key!r} (the local runtime supports {', '.join(_TOP_LEVEL_KEYS)})",
                    prop=str(key),
                )
        resources = self.document.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise self.error("the template declares no Resources", prop="Resources")
        for logical_id, resource in resources.items():
            self._check_resource(str(logical_id), resource)
        self.resources = resources
        self.parameters = self._parameters()

        roles = {lid: self._role(lid) for lid in self._of_type(_ROLE)}
        buses = [self._bus(lid) for lid in self._of_type(_BUS)]
        functions: dict[str, FunctionDef] = {}
        for lid in self._of_type(_FUNCTION):
            fn = self._function(lid, roles)
            if fn.name in functions:
                raise self.error(
                    f"FunctionName {fn.name!r} is also used by {functions[fn.name].logical_id}", lid, "FunctionName"
                )
            functions[fn.name] = fn
        configured: dict[str, str] = {}
        for lid in self._of_type(_ASYNC):
            self._async_config(lid, functions, buses, configured)
        routes: list[Route] = []
        timers: list[TimerDef] = []
        for lid in self._of_type(_TRIGGER):
            self._trigger(lid, functions, routes, timers)
        for lid in self._of_type(_RULE):
            routes.extend(self._rule(lid, functions, buses))
        return Template(functions, buses, routes, timers, roles, dict(self.parameters), self.path)

    def _check_resource(self, logical_id: str, resource: Any) -> None:
        if not isinstance(resource, dict):
            raise self.error("a resource is a mapping with Type and Properties", logical_id)
        kind = resource.get("Type")
        if kind not in RESOURCE_TYPES:
            raise self.error(
                f"resource type {kind!r} is not supported by the local runtime (supported: {', '.join(RESOURCE_TYPES)})",
                logical_id,
                "Type",
            )
        for key in resource:
            if key not in _RESOURCE_KEYS:
                raise self.error(
                    f"unknown resource key {key!r} (allowed: {', '.join(_RESOURCE_KEYS)})", logical_id, key
                )
        if not isinstance(resource.get("Properties", {}), dict):
            raise self.error("Properties must be a mapping", logical_id, "Properties")

    def _of_type(self, kind: str) -> list[str]:
        return [lid for lid, res in self.resources.items() if res["Type"] == kind]

    def _parameters(self) -> dict[str, str]:
        declared = self.document.get("Parameters") or {}
        if not isinstance(declared, dict):
            raise self.error("Parameters must be a mapping", prop="Parameters")
        for name in self.given:
            if name not in declared:
                raise self.error(f"parameter {name!r} was given but the template declares no such parameter",
                                 prop=f"Parameters.{name}")  # fmt: skip
        values: dict[str, str] = {}
        for name, spec in declared.items():
            spec = spec if isinstance(spec, dict) else {}
            if name in self.given:
                value = _as_text(self.given[name])
            elif "Default" in spec:
                value = _as_text(spec["Default"])
            else:
                raise self.error(
                    f"parameter {name!r} is required (it has no Default) and was not given", prop=f"Parameters.{name}"
                )
            allowed = spec.get("AllowedValues")
            if isinstance(allowed, list) and value not in [_as_text(a) for a in allowed]:
                raise self.error(f"{value!r} is not one of AllowedValues {allowed}", prop=f"Parameters.{name}")
            values[name] = value
        return values

    # -- intrinsic functions -------------------------------------------------------------------

    def resolve(self, value: Any, resource: str, prop: str) -> Any:
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
                    raise self.error(
                        f"{key} is not supported by the local runtime (supported: Ref, Fn::Sub, Fn::GetAtt)",
                        resource,
                        prop,
                    )
            return {k: self.resolve(v, resource, f"{prop}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, resource, f"{prop}[{i}]") for i, v in enumerate(value)]
        return value

    def _ref(self, name: Any, resource: str, prop: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.resources:
            return str(name)  # a resource's Ref is its logical name here
        raise self.error(f"Ref {name!r} names no parameter, pseudo parameter or resource", resource, prop)

    def _sub(self, argument: Any, resource: str, prop: str) -> str:
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
                return _as_text(variables[name])
            if "." in name and not name.startswith("ALIYUN::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att([logical_id, attribute], resource, prop)
            return self._ref(name, resource, prop)

        return _SUB_VARIABLE.sub(substitute, text)

    def _get_att(self, argument: Any, resource: str, prop: str) -> str:
        if isinstance(argument, str) and "." in argument:
            argument = argument.split(".", 1)
        if not (isinstance(argument, list) and len(argument) == 2 and all(isinstance(a, str) for a in argument)):
            raise self.error("Fn::GetAtt takes [LogicalId, Attribute]", resource, prop)
        target, attribute = argument
        if target not in self.resources:
            raise self.error(f"Fn::GetAtt names no resource {target!r}", resource, prop)
        key = (target, attribute)
        if key in self._resolving:
            raise self.error(f"circular reference through {target}.{attribute}", resource, prop)
        self._resolving.add(key)
        try:
            value = self._attribute(target, attribute)
        finally:
            self._resolving.discard(key)
        if value is None:
            kind = self.resources[target]["Type"]
            raise self.error(f"Fn::GetAtt: {kind} {target} has no attribute {attribute!r} here", resource, prop)
        return value

    def _attribute(self, target: str, attribute: str) -> str | None:
        kind = self.resources[target]["Type"]
        own = self._prop  # resolves the target's own property, errors naming the target
        if kind == _FUNCTION:
            if attribute == "FunctionName":
                return own(target, "FunctionName")
            if attribute in ("Arn", "ARN"):
                return f"acs:fc:{self.region}:{self.account_id}:functions/{own(target, 'FunctionName')}"
        elif kind == _ROLE:
            if attribute == "RoleName":
                return own(target, "RoleName")
            if attribute in ("Arn", "ARN"):
                return f"acs:ram::{self.account_id}:role/{own(target, 'RoleName')}"
        elif kind == _BUS:
            if attribute == "EventBusName":
                return own(target, "EventBusName")
            if attribute in ("Arn", "ARN", "EventBusARN"):
                return f"acs:eventbridge:{self.region}:{self.account_id}:eventbus/{own(target, 'EventBusName')}"
        elif kind == _RULE:
            if attribute in ("RuleName", "EventBusName"):
                return own(target, attribute)
            if attribute in ("Arn", "ARN", "RuleARN"):
                return (
                    f"acs:eventbridge:{self.region}:{self.account_id}:eventbus/{own(target, 'EventBusName')}"
                    f"/rule/{own(target, 'RuleName')}"
                )
        elif kind == _TRIGGER and attribute in ("TriggerName", "FunctionName"):
            return own(target, attribute)
        return None

    def _prop(self, logical_id: str, name: str, *, required: bool = True, default: Any = None) -> Any:
        properties = self.resources[logical_id].get("Properties") or {}
        if name not in properties:
            if required:
                raise self.error(f"{name} is required", logical_id, name)
            return default
        return self.resolve(properties[name], logical_id, name)

    def _text(self, logical_id: str, name: str, *, required: bool = True, default: str | None = None) -> str:
        value = self._prop(logical_id, name, required=required, default=default)
        if value is None:
            return default or ""
        if not isinstance(value, str) or (required and not value):
            raise self.error(f"{name} must be a non-empty string, got {value!r}", logical_id, name)
        return value

    def _int(self, logical_id: str, name: str, default: int, low: int, high: int) -> int:
        value = self._prop(logical_id, name, required=False, default=default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.error(f"{name} must be an integer, got {value!r}", logical_id, name) from None
        if isinstance(value, bool) or str(number) != str(value).strip() or not low <= number <= high:
            raise self.error(f"{name} must be an integer in [{low}, {high}], got {value!r}", logical_id, name)
        return number

    # -- resources -----------------------------------------------------------------------------

    def _role(self, lid: str) -> RoleDef:
        name = self._text(lid, "RoleName")
        policies = self._prop(lid, "Policies", required=False, default=[]) or []
        if not isinstance(policies, list):
            raise self.error("Policies must be a list", lid, "Policies")
        actions: set[str] = set()
        for i, policy in enumerate(policies):
            statements = ((policy or {}).get("PolicyDocument") or {}).get("Statement") or []
            if not isinstance(statements, list):
                raise self.error("PolicyDocument.Statement must be a list", lid, f"Policies[{i}]")
            for statement in statements:
                action = (statement or {}).get("Action", [])
                actions.update([action] if isinstance(action, str) else action)
        return RoleDef(name, sorted(actions))

    def _bus(self, lid: str) -> str:
        name = self._text(lid, "EventBusName")
        if name == DEFAULT_BUS:
            raise self.error("the default bus exists already; a custom bus needs another name", lid, "EventBusName")
        return name

    def _function(self, lid: str, roles: dict[str, RoleDef]) -> FunctionDef:
        name = self._text(lid, "FunctionName")
        handler = self._text(lid, "Handler")
        runtime = self._text(lid, "Runtime")
        if runtime not in PYTHON_RUNTIMES:
            raise self.error(
                f"runtime {runtime!r} is not supported; the local runtime runs {', '.join(PYTHON_RUNTIMES)}",
                lid,
                "Runtime",
            )
        module, _, attribute = handler.rpartition(".")
        if not module or not attribute or not all(part.isidentifier() for part in handler.split(".")):
            raise self.error(f"Handler {handler!r} is not '<module>.<function>' (e.g. index.handler)", lid, "Handler")
        env = self._prop(lid, "EnvironmentVariables", required=False, default={}) or {}
        if not isinstance(env, dict):
            raise self.error("EnvironmentVariables must be a mapping", lid, "EnvironmentVariables")
        for key in env:
            if str(key).startswith("FC_"):
                raise self.error("the FC_ prefix is reserved for the runtime", lid, f"EnvironmentVariables.{key}")
        role = self._prop(lid, "Role", required=False, default=None)
        role_actions: list[str] = []
        if isinstance(role, str):  # an ARN acs:ram::<account>:role/<name>; RAM role names are case-insensitive
            role_name = role.rpartition("/")[2].lower()
            role_actions = next((r.actions for r in roles.values() if r.name.lower() == role_name), [])
        fn = FunctionDef(
            logical_id=lid,
            name=name,
            handler=handler,
            runtime=runtime,
            memory_mb=self._int(lid, "MemorySize", DEFAULT_MEMORY_MB, 64, 32768),
            timeout_s=self._int(lid, "Timeout", DEFAULT_TIMEOUT_S, 1, 86400),
            env={str(k): _as_text(v) for k, v in env.items()},
            code_dir=self._code_dir(lid),
            role_actions=list(role_actions),
        )
        if not fn.handler_file.is_file():
            raise self.error(
                f"handler file {fn.handler_file} for Handler {handler!r} does not exist", lid, "Metadata.LocalCodeUri"
            )
        return fn

    def _code_dir(self, lid: str) -> Path:
        metadata = self.resources[lid].get("Metadata") or {}
        uri = metadata.get("LocalCodeUri") if isinstance(metadata, dict) else None
        if not isinstance(uri, str) or not uri:
            raise self.error(
                "Metadata.LocalCodeUri (the function's code directory, relative to the template) is required",
                lid,
                "Metadata.LocalCodeUri",
            )
        code_dir = (self.path.parent / uri).resolve()
        if not code_dir.is_dir():
            raise self.error(f"code directory {code_dir} does not exist", lid, "Metadata.LocalCodeUri")
        return code_dir

    def _function_named(self, lid: str, prop: str, name: Any, functions: dict[str, FunctionDef]) -> FunctionDef:
        if name not in functions:
            raise self.error(
                f"{name!r} is not a function declared in this template (declared: {', '.join(sorted(functions))})",
                lid,
                prop,
            )
        return functions[name]

    def _async_config(
        self, lid: str, functions: dict[str, FunctionDef], buses: list[str], configured: dict[str, str]
    ) -> None:
        fn = self._function_named(lid, "FunctionName", self._text(lid, "FunctionName"), functions)
        if fn.name in configured:
            raise self.error(f"{fn.name} already has AsyncInvokeConfig {configured[fn.name]}", lid, "FunctionName")
        configured[fn.name] = lid
        fn.max_retries = self._int(lid, "MaxAsyncRetryAttempts", DEFAULT_MAX_RETRIES, 0, 8)
        fn.max_event_age_s = self._int(lid, "MaxAsyncEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S, 1, MAX_EVENT_AGE_S)
        destinations = self._prop(lid, "DestinationConfig", required=False, default={}) or {}
        if not isinstance(destinations, dict):
            raise self.error("DestinationConfig must be a mapping", lid, "DestinationConfig")
        # Key casing is UNCONFIRMED for ROS (fc-eventbridge.md §3.2): accept OnFailure and onFailure.
        for key in destinations:
            if key not in ("OnFailure", "onFailure", "OnSuccess", "onSuccess"):
                raise self.error(f"unknown key {key!r} (OnFailure, OnSuccess)", lid, f"DestinationConfig.{key}")
        on_failure = destinations.get("OnFailure", destinations.get("onFailure"))
        if on_failure is None:
            return
        prop = "DestinationConfig.OnFailure.Destination"
        target = on_failure.get("Destination", on_failure.get("destination")) if isinstance(on_failure, dict) else None
        if not isinstance(target, str) or not target:
            raise self.error("Destination (an ARN) is required", lid, prop)
        match = _BUS_ARN.match(target)
        if not match:
            raise self.error(
                f"{target!r}: only EventBridge bus destinations (acs:eventbridge:<region>:<account>:eventbus/<bus>) "
                "run locally",
                lid,
                prop,
            )
        if match.group(1) not in buses:
            raise self.error(f"bus {match.group(1)!r} is not declared in this template", lid, prop)
        fn.on_failure = target

    def _trigger(
        self, lid: str, functions: dict[str, FunctionDef], routes: list[Route], timers: list[TimerDef]
    ) -> None:
        fn = self._function_named(lid, "FunctionName", self._text(lid, "FunctionName"), functions)
        trigger_name = self._text(lid, "TriggerName")
        trigger_type = self._text(lid, "TriggerType")
        config = self._prop(lid, "TriggerConfig", required=True)
        if isinstance(config, str):
            try:
                config = json.loads(config)
            except json.JSONDecodeError:
                raise self.error("TriggerConfig is not a mapping nor JSON text", lid, "TriggerConfig") from None
        if not isinstance(config, dict):
            raise self.error("TriggerConfig must be a mapping", lid, "TriggerConfig")
        if trigger_type == "eventbridge":
            source = (config.get("eventSourceConfig") or {}).get("eventSourceType", "Default")
            if source != "Default":
                raise self.error(
                    f"eventSourceType {source!r} is not supported locally (only Default: the default bus)",
                    lid,
                    "TriggerConfig.eventSourceConfig.eventSourceType",
                )
            pattern = self._pattern(lid, "TriggerConfig.eventRuleFilterPattern", config.get("eventRuleFilterPattern"))
            if config.get("triggerEnable", True) is not False:
                routes.append(Route(lid, DEFAULT_BUS, pattern, fn.name, "trigger"))
        elif trigger_type == "timer":
            expression = config.get("cronExpression")
            try:
                parse_schedule(expression)
            except ScheduleError as error:
                raise self.error(str(error), lid, "TriggerConfig.cronExpression") from None
            payload = config.get("payload", "")
            timers.append(
                TimerDef(
                    logical_id=lid,
                    function=fn.name,
                    expression=expression.strip(),
                    payload=payload if isinstance(payload, str) else json.dumps(payload),
                    enabled=config.get("enable", True) is not False,
                    trigger_name=trigger_name,
                )
            )
        else:
            raise self.error(
                f"TriggerType {trigger_type!r} is not supported locally (eventbridge, timer)", lid, "TriggerType"
            )

    def _pattern(self, lid: str, prop: str, pattern: Any) -> EventPattern:
        if pattern is None or pattern == "":
            raise self.error("an event pattern is required", lid, prop)
        try:
            return EventPattern.compile(pattern)
        except InvalidEventPattern as error:
            raise self.error(str(error), lid, prop) from None

    def _rule(self, lid: str, functions: dict[str, FunctionDef], buses: list[str]) -> list[Route]:
        bus = self._text(lid, "EventBusName")
        if bus != DEFAULT_BUS and bus not in buses:
            raise self.error(
                f"bus {bus!r} is not declared in this template (declared: {', '.join(buses) or 'none'})",
                lid,
                "EventBusName",
            )
        self._text(lid, "RuleName")
        pattern = self._pattern(lid, "FilterPattern", self._prop(lid, "FilterPattern"))
        status = self._text(lid, "Status", required=False, default="ENABLE")
        if status not in ("ENABLE", "DISABLE"):
            raise self.error(f"Status must be ENABLE or DISABLE, got {status!r}", lid, "Status")
        targets = self._prop(lid, "Targets")
        if not isinstance(targets, list) or not targets:
            raise self.error("Targets must be a non-empty list", lid, "Targets")
        routes = []
        for i, target in enumerate(targets):
            fn = self._target_function(lid, f"Targets[{i}]", target, functions)
            if status == "ENABLE":
                routes.append(Route(lid, bus, pattern, fn.name, "rule"))
        return routes

    def _target_function(self, lid: str, prop: str, target: Any, functions: dict[str, FunctionDef]) -> FunctionDef:
        if not isinstance(target, dict):
            raise self.error("a target is a mapping (Id, Type, Endpoint, ParamList)", lid, prop)
        if target.get("Type") != "acs.fc.function":
            raise self.error(
                f"target Type {target.get('Type')!r} is not supported locally (acs.fc.function)", lid, f"{prop}.Type"
            )
        params = {p.get("ResourceKey"): p for p in target.get("ParamList") or [] if isinstance(p, dict)}
        body = params.get("Body")
        if body is not None and body.get("Form", "ORIGINAL") != "ORIGINAL":
            raise self.error("only Form ORIGINAL (the whole event) is supported locally", lid, f"{prop}.ParamList.Body")
        by_param = (params.get("functionName") or params.get("FunctionName") or {}).get("Value")
        endpoint = target.get("Endpoint")
        by_endpoint = None
        if endpoint is not None:
            match = _FC_FUNCTION_ARN.match(endpoint) if isinstance(endpoint, str) else None
            if not match:
                raise self.error(
                    f"{endpoint!r} is not a function ARN acs:fc:<region>:<account>:functions/<name>",
                    lid,
                    f"{prop}.Endpoint",
                )
            by_endpoint = match.group(1)
        if by_param is None and by_endpoint is None:
            raise self.error("name the function in Endpoint or a functionName param", lid, prop)
        if by_param is not None and by_endpoint is not None and by_param != by_endpoint:
            raise self.error(f"Endpoint names {by_endpoint!r} but the functionName param names {by_param!r}", lid, prop)
        if by_endpoint is not None:
            self._function_named(lid, f"{prop}.Endpoint", by_endpoint, functions)
        return self._function_named(lid, f"{prop}.ParamList.functionName", by_param or by_endpoint, functions)


def _as_text(value: Any) -> str:
    """A parameter or environment value as ROS passes it on: text (JSON for lists and maps)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
