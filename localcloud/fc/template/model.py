"""What a template becomes: the plain wiring the local FC runtime runs (functions, routes, timers, roles)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from localcloud.patterns import EventPattern

PYTHON_RUNTIMES = ("python3.9", "python3.10", "python3.12")
DEFAULT_BUS = "default"
FORMAT_VERSION = "2015-09-01"
# FC3 defaults when a template leaves them out (fc-eventbridge.md §1.6; memory/timeout as the ROS FC docs state).
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3
DEFAULT_MAX_RETRIES = 3
DEFAULT_MAX_EVENT_AGE_S = 86400

ROLE, RULE = "ALIYUN::RAM::Role", "ALIYUN::EventBridge::Rule"
FUNCTION, TRIGGER, ASYNC = "ALIYUN::FC3::Function", "ALIYUN::FC3::Trigger", "ALIYUN::FC3::AsyncInvokeConfig"
RESOURCE_TYPES = (ROLE, RULE, FUNCTION, TRIGGER, ASYNC)  # what the local runtime runs
NAME_PROPERTY = {ROLE: "RoleName", RULE: "RuleName", FUNCTION: "FunctionName", TRIGGER: "TriggerName",
                 ASYNC: "FunctionName"}  # fmt: skip
SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")

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
    role_name: str = ""  # the RAM role it runs as, as its ARN spells it ("" = none)

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
