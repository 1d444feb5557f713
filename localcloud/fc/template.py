"""Load a ROS template (template.yml) into the plain wiring the local FC runtime runs — refusing what ROS refuses.

The template is the single source of truth: the same rules, triggers, timers and async configs that ROS
deploys are what `LocalRuntime` wires up, and a template loads here only if ROS would accept it. Every
resource is checked against Alibaba's published ROS resource definitions (`localcloud/fc/ros_schema.json`,
extracted from the pinned `ros-cdk-*` packages): unknown type, unknown or misspelt property, missing
required property, value outside its allowed values, range, length or pattern, scalar where a list is
required, `Fn::GetAtt` of an attribute the type lacks, `Ref` to nothing, parameter defaults and given
values that break their own Type/AllowedValues/AllowedPattern/length/value bounds. Messages name the
resource and the property.

On top of what ROS accepts, the local runtime runs a subset: `ALIYUN::RAM::Role`, `ALIYUN::EventBridge::Rule`,
`ALIYUN::FC3::Function`, `ALIYUN::FC3::Trigger` (eventbridge on the default bus, timer) and
`ALIYUN::FC3::AsyncInvokeConfig`, with the intrinsics `Ref`, `Fn::Sub` and `Fn::GetAtt`. A valid ROS
construct outside that subset is refused as "not run by the local runtime", never silently ignored.

ROS has no EventBus resource type (ros-cdk-eventbridge 1.15.0 defines Rule, Connection and ApiDestination
only), so custom buses are not resources: `Template.buses` lists the custom buses the template *uses*
(rules' EventBusName, async OnFailure destinations) — what the deploy step creates before the stack, and
what a local runtime requires to exist when it starts.

A function's code is found by a `code_locator(logical_id, code) -> Path | None`; the default reads
`Metadata.LocalCodeUri` (relative to the template file; ROS ignores resource Metadata), the local ROS
unpacks the `Code.OssBucketName`/`OssObjectName` zip, and `skip_code` validates without looking at code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from localcloud.fc.ros_schema import check_properties, load_schema
from localcloud.fc.schedule import ScheduleError, parse_schedule
from localcloud.patterns import EventPattern, InvalidEventPattern

PYTHON_RUNTIMES = ("python3.9", "python3.10", "python3.12")
DEFAULT_BUS = "default"
FORMAT_VERSION = "2015-09-01"
# FC3 defaults when a template leaves them out (fc-eventbridge.md §1.6; memory/timeout as the ROS FC docs state).
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_EVENT_AGE_S = 86400

# ROS template sections (ROS "Template structure"); the local runtime runs the first six.
_RUN_SECTIONS = ("ROSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Resources", "Outputs")
_ROS_ONLY_SECTIONS = ("Mappings", "Conditions", "Rules", "Locals", "Transform", "Workspace")
_RESOURCE_KEYS = ("Type", "Properties", "Metadata", "DependsOn", "DeletionPolicy", "Description")
_ROS_ONLY_RESOURCE_KEYS = ("Condition", "Count")
_ROLE, _RULE = "ALIYUN::RAM::Role", "ALIYUN::EventBridge::Rule"
_FUNCTION, _TRIGGER, _ASYNC = "ALIYUN::FC3::Function", "ALIYUN::FC3::Trigger", "ALIYUN::FC3::AsyncInvokeConfig"
RESOURCE_TYPES = (_ROLE, _RULE, _FUNCTION, _TRIGGER, _ASYNC)  # what the local runtime runs
_NAME_PROPERTY = {_ROLE: "RoleName", _RULE: "RuleName", _FUNCTION: "FunctionName", _TRIGGER: "TriggerName",
                  _ASYNC: "FunctionName"}  # fmt: skip
_FC_FUNCTION_ARN = re.compile(r"^acs:fc:[^:]*:[^:]*:(?:services/[^/]+/)?functions/([^/]+)$")
_BUS_ARN = re.compile(r"^acs:eventbridge:[^:]*:[^:]*:eventbus/([^/]+)$")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_LOCAL_INTRINSICS = ("Ref", "Fn::Sub", "Fn::GetAtt")

CodeLocator = Callable[[str, dict[str, Any]], "Path | None"]


def skip_code(logical_id: str, code: dict[str, Any]) -> None:
    """A code locator that validates a template without looking at any function's code."""
    return None


class TemplateError(ValueError):
    """The template cannot run (or ROS would refuse it); the message names the file, the resource and the
    property. `problems` holds every problem found when there were several (the first is the message)."""

    def __init__(
        self, message: str, *, resource: str | None = None, prop: str | None = None, problems: list[str] | None = None
    ) -> None:
        self.resource = resource
        self.property = prop
        self.problems = problems or [message]
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
    code_dir: Path | None  # None when the template was loaded with `skip_code`
    code: dict[str, Any] = field(default_factory=dict)  # the resolved Code property (OssBucketName, ...)
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
        if self.code_dir is None:
            raise ValueError(f"{self.name}: the template was loaded without its code")
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
    buses: list[str]  # custom buses the template uses (ROS cannot create them: the deploy step does)
    routes: list[Route]
    timers: list[TimerDef]
    roles: dict[str, RoleDef]  # by logical id
    parameters: dict[str, str] = field(default_factory=dict)  # resolved values
    path: Path | None = None
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # key → {"Value", "Description"}
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id → {"Type", "Properties"} resolved
    depends_on: dict[str, list[str]] = field(default_factory=dict)  # logical id → resources it needs first

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
    code_locator: CodeLocator | None = None,
) -> Template:
    """Parse and check a ROS template file; TemplateError names what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TemplateError(f"{path}: cannot read the template ({error})") from None
    template = load_template_text(text, parameters, region=region, account_id=account_id, stack_name=stack_name,
                                  code_locator=code_locator, name=path.name, base_dir=path.parent)  # fmt: skip
    template.path = path
    return template


def load_template_text(
    text: str,
    parameters: dict[str, str] | None = None,
    *,
    region: str,
    account_id: str,
    stack_name: str = "bakery",
    code_locator: CodeLocator | None = None,
    name: str = "template.yml",
    base_dir: Path | None = None,
) -> Template:
    """Parse and check a ROS template given as text (what CreateStack's TemplateBody carries).

    Without a `code_locator`, functions' code is found through `Metadata.LocalCodeUri` relative to `base_dir`."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TemplateError(f"{name}: not valid YAML ({error})") from None
    if not isinstance(document, dict):
        raise TemplateError(f"{name}: a template is a YAML mapping with Resources")
    loader = _Loader(document, name, base_dir or Path.cwd(), dict(parameters or {}), region, account_id, stack_name)
    return loader.load(code_locator)


# -- loading -------------------------------------------------------------------------------------


class _Loader:
    def __init__(
        self,
        document: dict[str, Any],
        name: str,
        base_dir: Path,
        given: dict[str, str],
        region: str,
        account_id: str,
        stack_name: str,
    ) -> None:
        self.document = document
        self.name = name
        self.base_dir = base_dir
        self.given = given
        self.schema = load_schema()
        self.pseudo = {
            "ALIYUN::Region": region,
            "ALIYUN::AccountId": account_id,
            "ALIYUN::TenantId": account_id,
            "ALIYUN::StackName": stack_name,
            "ALIYUN::StackId": f"local-stack-{stack_name}",
        }
        self.region = region
        self.account_id = account_id
        self.resources: dict[str, dict[str, Any]] = {}
        self.parameters: dict[str, str] = {}
        self.typed: dict[str, Any] = {}
        self._trigger_names: dict[
            tuple[str, str], str
        ] = {}  # parameter values as their Type makes them (what a Ref yields)
        self._resolving: set[tuple[str, str]] = set()

    def error(
        self, message: str, resource: str | None = None, prop: str | None = None, *, more: list[str] | None = None
    ) -> TemplateError:
        where = ".".join(p for p in (resource, prop) if p)
        prefix = f"{self.name}: {where}: " if where else f"{self.name}: "
        first = prefix + message
        problems = [first, *(more or [])]
        if more:
            first += f"\n  ({len(more)} more: " + "; ".join(more[:5]) + (" ..." if len(more) > 5 else "") + ")"
        return TemplateError(first, resource=resource, prop=prop, problems=problems)

    # -- structure ---------------------------------------------------------------------------

    def load(self, code_locator: CodeLocator | None) -> Template:
        for key in self.document:
            if key in _ROS_ONLY_SECTIONS:
                raise self.error(f"{key} is valid ROS but not run by the local runtime (it runs "
                                 f"{', '.join(_RUN_SECTIONS)})", prop=str(key))  # fmt: skip
            if key not in _RUN_SECTIONS:
                raise self.error(
                    f"unknown top-level key {key!r} (ROS templates have {', '.join(_RUN_SECTIONS + _ROS_ONLY_SECTIONS)})",
                    prop=str(key),
                )
        version = self.document.get("ROSTemplateFormatVersion")
        if version != FORMAT_VERSION:
            raise self.error(f"ROSTemplateFormatVersion must be '{FORMAT_VERSION}', got {version!r}",
                             prop="ROSTemplateFormatVersion")  # fmt: skip
        resources = self.document.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise self.error("the template declares no Resources", prop="Resources")
        for logical_id, resource in resources.items():
            self._check_resource(str(logical_id), resource)
        self.resources = resources
        self.parameters = self._parameters()
        for logical_id in resources:
            self._depends_on(logical_id)
        self._refuse_cycles()
        resolved: dict[str, dict[str, Any]] = {}
        problems: list[tuple[str, str, str]] = []  # (resource, property path, message): all of them, not the first
        for lid in resources:
            resolved[lid], found = self._checked_properties(lid)
            problems.extend((lid, path, message) for path, message in found)
        if problems:
            (lid, path, message), *rest = problems
            raise self.error(message, lid, path, more=[f"{r}.{p}: {m}" for r, p, m in rest])
        outputs = self._outputs()

        roles = {lid: self._role(lid) for lid in self._of_type(_ROLE)}
        functions: dict[str, FunctionDef] = {}
        for lid in self._of_type(_FUNCTION):
            fn = self._function(lid, roles, code_locator)
            if fn.name in functions:
                raise self.error(
                    f"FunctionName {fn.name!r} is also used by {functions[fn.name].logical_id}", lid, "FunctionName"
                )
            functions[fn.name] = fn
        configured: dict[str, str] = {}
        buses: list[str] = []
        for lid in self._of_type(_ASYNC):
            self._async_config(lid, functions, configured, buses)
        routes: list[Route] = []
        timers: list[TimerDef] = []
        for lid in self._of_type(_TRIGGER):
            self._trigger(lid, functions, routes, timers)
        for lid in self._of_type(_RULE):
            routes.extend(self._rule(lid, functions, buses))
        return Template(
            functions,
            sorted(buses),
            routes,
            timers,
            roles,
            dict(self.parameters),
            outputs=outputs,
            resources={lid: {"Type": res["Type"], "Properties": resolved[lid]} for lid, res in resources.items()},
            depends_on={lid: self._depends_on(lid) for lid in resources},
        )

    def _check_resource(self, logical_id: str, resource: Any) -> None:
        if not isinstance(resource, dict):
            raise self.error("a resource is a mapping with Type and Properties", logical_id)
        kind = resource.get("Type")
        if not isinstance(kind, str) or self.schema.resource(kind) is None:
            import difflib

            close = difflib.get_close_matches(str(kind), self.schema.resource_types, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise self.error(
                f"resource type {kind!r} does not exist in ROS{hint}; of its kind the local runtime runs "
                f"{', '.join(RESOURCE_TYPES)}",
                logical_id,
                "Type",
            )
        if kind not in RESOURCE_TYPES:
            raise self.error(
                f"resource type {kind!r} is valid ROS but not run by the local runtime (it runs "
                f"{', '.join(RESOURCE_TYPES)})",
                logical_id,
                "Type",
            )
        for key in resource:
            if key in _ROS_ONLY_RESOURCE_KEYS:
                raise self.error(f"{key} is valid ROS but not run by the local runtime", logical_id, key)
            if key not in _RESOURCE_KEYS:
                raise self.error(
                    f"unknown resource key {key!r} (allowed: {', '.join(_RESOURCE_KEYS + _ROS_ONLY_RESOURCE_KEYS)})",
                    logical_id,
                    key,
                )
        if not isinstance(resource.get("Properties", {}), dict):
            raise self.error("Properties must be a mapping", logical_id, "Properties")

    def _depends_on(self, logical_id: str) -> list[str]:
        value = self.resources[logical_id].get("DependsOn", [])
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self.error("DependsOn is a resource name or a list of them", logical_id, "DependsOn")
        for name in names:
            if name not in self.resources:
                raise self.error(f"DependsOn names no resource {name!r}", logical_id, "DependsOn")
            if name == logical_id:
                raise self.error("a resource cannot depend on itself", logical_id, "DependsOn")
        return list(names)

    def _needs(self, logical_id: str) -> list[str]:
        """What a resource must wait for: its DependsOn, and every resource its properties Ref, GetAtt or Sub."""
        found: list[str] = list(self._depends_on(logical_id))

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                if len(value) == 1:
                    ((key, argument),) = value.items()
                    if key == "Ref" and argument in self.resources:
                        found.append(argument)
                    elif key == "Fn::GetAtt":
                        target = argument.split(".", 1)[0] if isinstance(argument, str) else (argument or [None])[0]
                        if target in self.resources:
                            found.append(target)
                    elif key == "Fn::Sub":
                        text = argument[0] if isinstance(argument, list) and argument else argument
                        for name in _SUB_VARIABLE.findall(text if isinstance(text, str) else ""):
                            head = name.strip().split(".", 1)[0]
                            if head in self.resources and not name.strip().startswith("!"):
                                found.append(head)
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        walk(self.resources[logical_id].get("Properties") or {})
        return [name for name in dict.fromkeys(found) if name != logical_id]

    def _refuse_cycles(self) -> None:
        """ROS refuses a template whose resources wait for each other in a circle (InvalidTemplate: Circular
        Dependency Found), through DependsOn or through the references that imply an order."""
        needs = {lid: self._needs(lid) for lid in self.resources}
        done: set[str] = set()

        def visit(lid: str, path: list[str]) -> None:
            if lid in path:
                cycle = [*path[path.index(lid) :], lid]
                raise self.error(f"circular dependency: {' -> '.join(cycle)} (through DependsOn, Ref, Fn::GetAtt or "
                                 "Fn::Sub); ROS cannot order these resources", cycle[0], "DependsOn")  # fmt: skip
            if lid in done:
                return
            for other in needs[lid]:
                visit(other, [*path, lid])
            done.add(lid)

        for lid in self.resources:
            visit(lid, [])

    def _checked_properties(self, logical_id: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The resource's Properties resolved, and what the ROS resource definition refuses in them."""
        kind = self.resources[logical_id]["Type"]
        raw = self.resources[logical_id].get("Properties") or {}
        resolved = {name: self.resolve(value, logical_id, name) for name, value in raw.items()}
        problems = check_properties(kind, resolved)
        return resolved, [(p.path.removeprefix("Properties."), p.message) for p in problems]

    def _of_type(self, kind: str) -> list[str]:
        return [lid for lid, res in self.resources.items() if res["Type"] == kind]

    # -- parameters --------------------------------------------------------------------------

    def _parameters(self) -> dict[str, str]:
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
                problem = _parameter_problem(spec, _as_text(spec["Default"]))
                if problem:
                    raise self.error(f"the Default {_as_text(spec['Default'])!r} breaks its own constraints: {problem}",
                                     prop=f"{where}.Default")  # fmt: skip
            if name in self.given:
                value = _as_text(self.given[name])
                problem = _parameter_problem(spec, value)
                if problem:
                    raise self.error(f"the value {value!r} given for {name} is refused: {problem}", prop=where)
            elif "Default" in spec:
                value = _as_text(spec["Default"])
            else:
                raise self.error(f"parameter {name!r} is required (it has no Default) and was not given", prop=where)
            values[name] = value
            self.typed[name] = _typed(kind, value)
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

    def _ref(self, name: Any, resource: str, prop: str) -> Any:
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
            key = _NAME_PROPERTY.get(kind)
            own = (self.resources[name].get("Properties") or {}).get(key) if key else None
            return self._guarded(name, "Ref", lambda: _as_text(self.resolve(own, name, key))) if own else str(name)
        raise self.error(f"Ref {name!r} names no parameter, pseudo parameter or resource", resource, prop)

    def _guarded(self, target: str, what: str, compute: Callable[[], str]) -> str:
        key = (target, what)
        if key in self._resolving:
            raise self.error(f"circular reference through {target}.{what}", target)
        self._resolving.add(key)
        try:
            return compute()
        finally:
            self._resolving.discard(key)

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
            return _as_text(self._ref(name, resource, prop))

        return _SUB_VARIABLE.sub(substitute, text)

    def _get_att(self, argument: Any, resource: str, prop: str) -> str:
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

    def _attribute(self, target: str, kind: str, attribute: str) -> str:
        """The value an attribute has once ROS created the resource; what the local model cannot know is a
        stable placeholder (no Bakery wiring reads one)."""
        props = self.resources[target].get("Properties") or {}

        def own(name: str) -> str:
            if name not in props:
                raise self.error(f"{name} is required", target, name)
            return _as_text(self.resolve(props[name], target, name))

        if kind == _FUNCTION and attribute == "ARN":
            return f"acs:fc:{self.region}:{self.account_id}:functions/{own('FunctionName')}"
        if kind == _ROLE and attribute == "Arn":
            return f"acs:ram::{self.account_id}:role/{own('RoleName')}"
        if kind == _RULE and attribute == "RuleARN":
            return (
                f"acs:eventbridge:{self.region}:{self.account_id}:eventbus/{own('EventBusName')}/rule/{own('RuleName')}"
            )
        if attribute in props and isinstance(props[attribute], (str, dict)):
            return own(attribute)  # FunctionName, RoleName, RuleName, EventBusName, TriggerName ...
        return f"local:{target}.{attribute}"

    def _outputs(self) -> dict[str, dict[str, str]]:
        declared = self.document.get("Outputs") or {}
        if not isinstance(declared, dict):
            raise self.error("Outputs must be a mapping", prop="Outputs")
        outputs = {}
        for key, spec in declared.items():
            where = f"Outputs.{key}"
            if not isinstance(spec, dict) or "Value" not in spec:
                raise self.error("an output is a mapping with a Value", prop=where)
            for part in spec:
                if part in ("Condition", "Export"):
                    raise self.error(f"{part} is valid ROS but not run by the local runtime", prop=f"{where}.{part}")
                if part not in self.schema.output_keys:
                    raise self.error(f"unknown output key {part!r} (ROS allows {', '.join(self.schema.output_keys)})",
                                     prop=f"{where}.{part}")  # fmt: skip
            value = self.resolve(spec["Value"], "Outputs", f"{key}.Value")
            outputs[str(key)] = {"Value": _as_text(value), "Description": str(spec.get("Description", ""))}
        return outputs

    # -- resources (what the local runtime runs) -------------------------------------------------

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

    def _int(self, logical_id: str, name: str, default: int) -> int:
        """A number property the schema already range-checked; FC takes whole numbers only."""
        value = self._prop(logical_id, name, required=False, default=default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.error(f"{name} must be an integer, got {value!r}", logical_id, name) from None
        if isinstance(value, bool) or str(number) != str(value).strip():
            raise self.error(f"{name} must be a whole number, got {value!r}", logical_id, name)
        return number

    def _role(self, lid: str) -> RoleDef:
        name = self._text(lid, "RoleName")
        policies = self._prop(lid, "Policies", required=False, default=[]) or []
        actions: set[str] = set()
        for i, policy in enumerate(policies):
            statements = ((policy or {}).get("PolicyDocument") or {}).get("Statement") or []
            if not isinstance(statements, list):
                raise self.error("PolicyDocument.Statement must be a list", lid, f"Policies[{i}]")
            for statement in statements:
                action = (statement or {}).get("Action", [])
                actions.update([action] if isinstance(action, str) else action)
        return RoleDef(name, sorted(actions))

    def _function(self, lid: str, roles: dict[str, RoleDef], code_locator: CodeLocator | None) -> FunctionDef:
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
        for key in env:
            if str(key).startswith("FC_"):
                raise self.error("the FC_ prefix is reserved for the runtime", lid, f"EnvironmentVariables.{key}")
        role = self._prop(lid, "Role", required=False, default=None)
        role_actions: list[str] = []
        if isinstance(role, str):  # an ARN acs:ram::<account>:role/<name>; RAM role names are case-insensitive
            role_name = role.rpartition("/")[2].lower()
            role_actions = next((r.actions for r in roles.values() if r.name.lower() == role_name), [])
        code = self._prop(lid, "Code", required=False, default={}) or {}
        fn = FunctionDef(
            logical_id=lid,
            name=name,
            handler=handler,
            runtime=runtime,
            memory_mb=self._int(lid, "MemorySize", DEFAULT_MEMORY_MB),
            timeout_s=self._int(lid, "Timeout", DEFAULT_TIMEOUT_S),
            env={str(k): _as_text(v) for k, v in env.items()},
            code_dir=code_locator(lid, code) if code_locator else self._local_code_dir(lid),
            code=code,
            role_actions=list(role_actions),
        )
        if fn.code_dir is not None and not fn.handler_file.is_file():
            where = "Metadata.LocalCodeUri" if code_locator is None else "Code"
            raise self.error(f"handler file {fn.handler_file} for Handler {handler!r} does not exist", lid, where)
        return fn

    def _local_code_dir(self, lid: str) -> Path:
        metadata = self.resources[lid].get("Metadata") or {}
        uri = metadata.get("LocalCodeUri") if isinstance(metadata, dict) else None
        if not isinstance(uri, str) or not uri:
            raise self.error(
                "Metadata.LocalCodeUri (the function's code directory, relative to the template) is required",
                lid,
                "Metadata.LocalCodeUri",
            )
        code_dir = (self.base_dir / uri).resolve()
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
        self, lid: str, functions: dict[str, FunctionDef], configured: dict[str, str], buses: list[str]
    ) -> None:
        fn = self._function_named(lid, "FunctionName", self._text(lid, "FunctionName"), functions)
        if fn.name in configured:
            raise self.error(f"{fn.name} already has AsyncInvokeConfig {configured[fn.name]}", lid, "FunctionName")
        configured[fn.name] = lid
        fn.max_retries = self._int(lid, "MaxAsyncRetryAttempts", DEFAULT_MAX_RETRIES)
        fn.max_event_age_s = self._int(lid, "MaxAsyncEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S)
        destinations = self._prop(lid, "DestinationConfig", required=False, default={}) or {}
        on_failure = destinations.get("OnFailure")
        if on_failure is None:
            return
        prop = "DestinationConfig.OnFailure.Destination"
        target = on_failure.get("Destination") if isinstance(on_failure, dict) else None
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
        if match.group(1) != DEFAULT_BUS and match.group(1) not in buses:
            buses.append(match.group(1))
        fn.on_failure = target

    def _trigger(
        self, lid: str, functions: dict[str, FunctionDef], routes: list[Route], timers: list[TimerDef]
    ) -> None:
        fn = self._function_named(lid, "FunctionName", self._text(lid, "FunctionName"), functions)
        trigger_name = self._text(lid, "TriggerName")
        other = self._trigger_names.setdefault((fn.name, trigger_name), lid)
        if other != lid:  # FC's CreateTrigger refuses a second trigger of the same name on a function
            raise self.error(f"{fn.name} already has a trigger named {trigger_name!r} ({other})", lid, "TriggerName")
        trigger_type = self._text(lid, "TriggerType")
        config = self._prop(lid, "TriggerConfig", required=True)
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
            buses.append(bus)
        self._text(lid, "RuleName")
        pattern = self._pattern(lid, "FilterPattern", self._prop(lid, "FilterPattern"))
        status = self._text(lid, "Status", required=False, default="ENABLE")
        if status not in ("ENABLE", "DISABLE"):  # ROS passes it through; EventBridge's CreateRule refuses others
            raise self.error(
                f"Status must be ENABLE or DISABLE (EventBridge CreateRule), got {status!r}", lid, "Status"
            )
        targets = self._prop(lid, "Targets")
        routes = []
        for i, target in enumerate(targets):
            fn = self._target_function(lid, f"Targets[{i}]", target, functions)
            if status == "ENABLE":
                routes.append(Route(lid, bus, pattern, fn.name, "rule"))
        return routes

    def _target_function(self, lid: str, prop: str, target: Any, functions: dict[str, FunctionDef]) -> FunctionDef:
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
        if by_param is not None:
            return self._function_named(lid, f"{prop}.ParamList.functionName", by_param, functions)
        return self._function_named(lid, f"{prop}.Endpoint", by_endpoint, functions)


def _typed(kind: Any, value: str) -> Any:
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
    if isinstance(allowed, list) and value not in [_as_text(a) for a in allowed]:
        return f"not one of AllowedValues {[_as_text(a) for a in allowed]}"
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


def _as_text(value: Any) -> str:
    """A parameter or environment value as ROS passes it on: text (JSON for lists and maps)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
