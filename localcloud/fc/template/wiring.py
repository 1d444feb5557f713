"""The resources the local runtime runs, turned into wiring: roles, functions (and their code), async configs,
triggers (eventbridge on the default bus, timer) and EventBridge rules targeting functions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.fc.schedule import ScheduleError, parse_schedule
from localcloud.fc.template.model import (
    DEFAULT_BUS,
    DEFAULT_MAX_EVENT_AGE_S,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    PYTHON_RUNTIMES,
    CodeLocator,
    FunctionDef,
    RoleDef,
    Route,
    TimerDef,
)
from localcloud.fc.template.parameters import as_text
from localcloud.patterns import EventPattern, InvalidEventPattern

if TYPE_CHECKING:
    from localcloud.fc.template.loader import Loader

_FC_FUNCTION_ARN = re.compile(r"^acs:fc:[^:]*:[^:]*:(?:services/[^/]+/)?functions/([^/]+)$")
_BUS_ARN = re.compile(r"^acs:eventbridge:[^:]*:[^:]*:eventbus/([^/]+)$")


class WiringMixin:
    """Each resource the local runtime runs, turned into its wiring: roles, functions, async configs, triggers, rules."""

    def _prop(self: Loader, logical_id: str, name: str, *, required: bool = True, default: Any = None) -> Any:
        properties = self.resources[logical_id].get("Properties") or {}
        if name not in properties:
            if required:
                raise self.error(f"{name} is required", logical_id, name)
            return default
        return self.resolve(properties[name], logical_id, name)

    def _text(self: Loader, logical_id: str, name: str, *, required: bool = True, default: str | None = None) -> str:
        value = self._prop(logical_id, name, required=required, default=default)
        if value is None:
            return default or ""
        if not isinstance(value, str) or (required and not value):
            raise self.error(f"{name} must be a non-empty string, got {value!r}", logical_id, name)
        return value

    def _int(self: Loader, logical_id: str, name: str, default: int) -> int:
        """A number property the schema already range-checked; FC takes whole numbers only."""
        value = self._prop(logical_id, name, required=False, default=default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.error(f"{name} must be an integer, got {value!r}", logical_id, name) from None
        if isinstance(value, bool) or str(number) != str(value).strip():
            raise self.error(f"{name} must be a whole number, got {value!r}", logical_id, name)
        return number

    def _role(self: Loader, lid: str) -> RoleDef:
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

    def _function(self: Loader, lid: str, roles: dict[str, RoleDef], code_locator: CodeLocator | None) -> FunctionDef:
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
        role_name = role.rpartition("/")[2] if isinstance(role, str) else ""  # as spelled: ActionTrail shows it so
        if isinstance(role, str):  # an ARN acs:ram::<account>:role/<name>; RAM role names are case-insensitive
            role_actions = next((r.actions for r in roles.values() if r.name.lower() == role_name.lower()), [])
        code = self._prop(lid, "Code", required=False, default={}) or {}
        fn = FunctionDef(
            logical_id=lid,
            name=name,
            handler=handler,
            runtime=runtime,
            memory_mb=self._int(lid, "MemorySize", DEFAULT_MEMORY_MB),
            timeout_s=self._int(lid, "Timeout", DEFAULT_TIMEOUT_S),
            env={str(k): as_text(v) for k, v in env.items()},
            code_dir=code_locator(lid, code) if code_locator else self._local_code_dir(lid),
            code=code,
            role_actions=list(role_actions),
            role_name=role_name,
        )
        if fn.code_dir is not None and not fn.handler_file.is_file():
            where = "Metadata.LocalCodeUri" if code_locator is None else "Code"
            raise self.error(f"handler file {fn.handler_file} for Handler {handler!r} does not exist", lid, where)
        return fn

    def _local_code_dir(self: Loader, lid: str) -> Path:
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

    def _function_named(self: Loader, lid: str, prop: str, name: Any, functions: dict[str, FunctionDef]) -> FunctionDef:
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

    def _pattern(self: Loader, lid: str, prop: str, pattern: Any) -> EventPattern:
        if pattern is None or pattern == "":
            raise self.error("an event pattern is required", lid, prop)
        try:
            return EventPattern.compile(pattern)
        except InvalidEventPattern as error:
            raise self.error(str(error), lid, prop) from None

    def _rule(self: Loader, lid: str, functions: dict[str, FunctionDef], buses: list[str]) -> list[Route]:
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

    def _target_function(
        self: Loader, lid: str, prop: str, target: Any, functions: dict[str, FunctionDef]
    ) -> FunctionDef:
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
