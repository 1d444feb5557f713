"""A ROS stack's state (resources, events, the spec it is or becomes, the operation in progress), the
timings of its resource operations, and the errors ROS answers with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcloud.errors import ApiError

_ROLE, _RULE = "ALIYUN::RAM::Role", "ALIYUN::EventBridge::Rule"
_FUNCTION, _TRIGGER, _ASYNC = "ALIYUN::FC3::Function", "ALIYUN::FC3::Trigger", "ALIYUN::FC3::AsyncInvokeConfig"
STACK_TYPE = "ALIYUN::ROS::Stack"  # what a stack's own events carry as ResourceType

# Simulated seconds one resource operation takes (the real ones: seconds to a minute). Resources go one by one.
CREATE_SECONDS = {_ROLE: 3, _RULE: 3, _FUNCTION: 8, _TRIGGER: 3, _ASYNC: 2}
DELETE_SECONDS = {_ROLE: 2, _RULE: 2, _FUNCTION: 3, _TRIGGER: 2, _ASYNC: 1}
STACK_SECONDS = 1  # before the first resource, and to bring the functions up at the end
DEFAULT_SECONDS = 2

MAX_TEMPLATE_BYTES = 524_288
MAX_CODE_BYTES = 500 * 1024 * 1024  # unpacked code; FC's limit for a code package
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,254}$")
_CLIENT_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_OUTPUT_STATES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "ROLLBACK_COMPLETE")
_PSEUDO = ("ALIYUN::StackName", "ALIYUN::StackId", "ALIYUN::Region", "ALIYUN::AccountId", "ALIYUN::TenantId")
_RESOURCE_KEYS = ("Type", "Properties", "Metadata", "DependsOn", "DeletionPolicy", "Description", "Condition")
IN_PROGRESS = (
    "CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS", "CREATE_ROLLBACK_IN_PROGRESS",
    "ROLLBACK_IN_PROGRESS",
)  # fmt: skip
# The property that names a resource: its physical id (and what Ref returns).
_NAME_PROPERTY = {_ROLE: "RoleName", _RULE: "RuleName", _FUNCTION: "FunctionName",
                  _TRIGGER: "TriggerName", _ASYNC: "FunctionName"}  # fmt: skip


def _missing(name: str) -> ApiError:
    return ApiError("MissingParameter", f"The input parameter {name} should be specified.")


def _missing_one_of(names: tuple[str, ...]) -> ApiError:
    return ApiError("MissingParameter", f"One of the input parameters {', '.join(names)} should be specified.")


def _invalid(name: str, reason: str) -> ApiError:
    return ApiError("InvalidParameter", f"The specified parameter {name} is invalid, {reason}.")


def _not_found(stack_id: str) -> ApiError:
    return ApiError("StackNotFound", f"The Stack ({stack_id}) could not be found.", 404)


def _in_progress(stack: Stack) -> ApiError:
    action = stack.status.removesuffix("_IN_PROGRESS")
    return ApiError("ActionInProgress", f"Stack {stack.name} already has an action ({action}) in progress.", 409)


class _ResourceFailure(Exception):
    """A resource operation failed; `reason` is what ROS shows (exception, resource, code, message)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class StackResource:
    logical_id: str
    type: str
    status: str = "INIT_COMPLETE"
    status_reason: str = ""
    physical_id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)  # resolved, as last applied
    create_time: float | None = None
    update_time: float | None = None
    claims: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) account-level names it holds


@dataclass
class StackEvent:
    event_id: str
    logical_id: str
    physical_id: str
    resource_type: str
    status: str
    reason: str
    time: float


@dataclass
class _Spec:
    """One template + parameters, checked and resolved: what a stack is (or is about to become)."""

    body: str
    document: dict[str, Any]
    given: dict[str, str]  # parameters the caller gave (what UsePreviousParameters carries over)
    values: dict[str, str]  # every parameter, defaults applied
    order: list[str]  # logical ids in dependency order
    properties: dict[str, dict[str, Any]]  # resolved Properties by logical id (the FC loader's resolution)
    outputs: list[dict[str, Any]]  # OutputKey / OutputValue / Description, as GetStack shows them
    template_url: str = ""

    def type_of(self, logical_id: str) -> str:
        return str(self.document["Resources"][logical_id].get("Type", ""))


@dataclass
class _Step:
    action: str  # CREATE | UPDATE | DELETE
    logical_id: str
    previous: StackResource | None = None  # the resource as it was (UPDATE / DELETE), for rollback


@dataclass
class _Operation:
    kind: str  # CREATE | UPDATE | DELETE | CREATE_ROLLBACK | ROLLBACK
    steps: list[_Step]
    target: _Spec | None  # the spec being applied (None for DELETE)
    previous: _Spec | None = None  # UPDATE: the spec to roll back to
    done: list[_Step] = field(default_factory=list)
    code_dirs: dict[str, Path] = field(default_factory=dict)  # functions whose code this operation fetched
    discard: list[Path] = field(default_factory=list)  # ROLLBACK: the failed update's code, removed at the end
    deploy_attempted: bool = False


@dataclass
class Stack:
    stack_id: str
    name: str
    spec: _Spec
    disable_rollback: bool
    timeout_minutes: int
    deletion_protection: str
    tags: list[dict[str, str]]
    ram_role_name: str
    create_time: float
    status: str = "CREATE_IN_PROGRESS"
    status_reason: str = ""
    update_time: float | None = None
    resources: dict[str, StackResource] = field(default_factory=dict)
    events: list[StackEvent] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    code_dirs: dict[str, Path] = field(default_factory=dict)  # logical id → unpacked code in use
    deployed: bool = False  # the FC service runs this stack's functions
    operation: _Operation | None = None

    @property
    def deleted(self) -> bool:
        return self.status == "DELETE_COMPLETE"
