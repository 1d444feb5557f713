"""Emulated ROS, Resource Orchestration Service (2019-09-10): Bakery's stack, created, updated and
deleted on the virtual clock the way ROS does it.

ValidateTemplate, CreateStack, UpdateStack, DeleteStack, GetStack, ListStacks, ListStackEvents,
ListStackResources, GetTemplate and PreviewStack. A template is checked with the same loader the
local FC runtime uses (`localcloud.fc.template.load_template_text`), so what ROS would refuse is
refused here with the resource and the property named. Accepted stacks then progress like real ROS:
resources are created one at a time in dependency order (Ref, Fn::GetAtt, Fn::Sub, DependsOn), each
with its stack events; a function's code is fetched from the emulated OSS and unpacked into a work
directory this service owns; when every resource exists the functions are brought up through the
FC service (`cloud.services["fc"].deploy(stack_name, template)`), the outputs are resolved and the
stack is CREATE_COMPLETE. A failure is CREATE_FAILED, then (unless DisableRollback) a rollback that
deletes what was made: CREATE_ROLLBACK_COMPLETE. An update that fails rolls back to the previous
template: ROLLBACK_COMPLETE. Status names are ROS's, not CloudFormation's (GetStack `Status` docs;
terraform-provider-alicloud `resource_alicloud_ros_stack.go` waits on CREATE_ROLLBACK_COMPLETE).

Error codes and where they come from:

| situation | code (HTTP) | source |
|---|---|---|
| duplicate StackName | StackExists (409) "The Stack (name) already exists." | aliyun/aliyun-cli issue #557 (real output) |
| unknown / deleted stack | StackNotFound (404) "The Stack (id) could not be found." | aliyun-openapi-java-sdk core test; terraform treats it as gone |
| update/delete while an action runs | ActionInProgress (409) | ROS CDK CLI and Serverless Devs ROS component handle "ActionInProgress: code: 409" |
| update that changes nothing | NotSupported (400) "Update the completely same stack ..." | UpdateStack DryRun docstring ("a NotSupported error is returned"); ROS CDK CLI matches the message prefix |
| broken template / reference | InvalidTemplate (400) 'Resource [X]: The specified reference "Y" (in Z) is incorrect.' | alibabacloud-ros-tool-iact3 tests (a recorded ValidateTemplate error) |
| property / parameter value refused | StackValidationFailed (400) | alibabacloud-ros-tool-iact3 tests (PreviewStack/estimate mocks); ROS's Heat lineage |
| parameter given but not declared | UnknownUserParameter (400) "The Parameter (X) was not defined in template." | alibabacloud-ros-tool-iact3 `web/routes.py` parses this message |
| required parameter not given | UserParameterMissing (400) "The Parameter (X) was not provided." | ROS's Heat lineage (UNCONFIRMED for ROS) |
| common shapes | MissingParameter, InvalidParameter, MultipleParameter, InvalidIdempotenceParameter (400) | ROS "Common error codes" page |
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from localcloud.errors import ApiError
from localcloud.services.base import Service, api
from localcloud.wire import Params, paginate

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


# -- errors ---------------------------------------------------------------------------------------


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


# -- state ----------------------------------------------------------------------------------------


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


# -- the service ----------------------------------------------------------------------------------


class RosService(Service):
    name = "ros"
    product = "ROS"
    host = "ros.aliyuncs.com"

    def __init__(self, cloud: Any) -> None:
        super().__init__(cloud)
        self.stacks: dict[str, Stack] = {}
        self.tokens: dict[tuple[str, str], tuple[str, str]] = {}  # (action, token) → (fingerprint, stack id)
        self.claims: dict[tuple[str, str], str] = {}  # ("role", lower name) / ("bus", name) → stack id
        self._work: Path | None = None
        self._dirs = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Remove every unpacked code directory (cloud.close() / reset)."""
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def state(self) -> dict[str, Any]:
        return {
            "stacks": [
                {
                    "StackId": s.stack_id,
                    "StackName": s.name,
                    "Status": s.status,
                    "StatusReason": s.status_reason,
                    "Resources": {r.logical_id: r.status for r in s.resources.values()},
                }
                for s in self.stacks.values()
            ]
        }

    def stack_named(self, name: str) -> Stack | None:
        """The live (not deleted) stack called `name`, for tests and tools."""
        return next((s for s in self.stacks.values() if s.name == name and not s.deleted), None)

    # -- request helpers -------------------------------------------------------------------------

    def _region(self, p: Params, *, required: bool = True) -> None:
        region = p.str("RegionId")
        if not region:
            if required:
                raise _missing("RegionId")
            return
        if region != self.cloud.region:
            raise ApiError("InvalidRegionId.NotFound", f"This local cloud serves {self.cloud.region}, not {region}.",
                           404)  # fmt: skip

    def _stack(self, p: Params, *, allow_deleted: bool = False) -> Stack:
        stack_id = p.str("StackId")
        if not stack_id:
            raise _missing("StackId")
        stack = self.stacks.get(stack_id)
        if stack is None or (stack.deleted and not allow_deleted):
            raise _not_found(stack_id)
        return stack

    def _time(self, epoch: float | None) -> str | None:
        """ROS times: UTC, ISO 8601 without the trailing Z (GetStack CreateTime docs)."""
        return None if epoch is None else self.cloud.clock.iso(epoch).rstrip("Z")

    def _template_text(self, p: Params, *, required: bool = True) -> tuple[str, str]:
        """(TemplateBody text, TemplateURL) from TemplateBody or an oss:// TemplateURL."""
        sources = [n for n in ("TemplateBody", "TemplateURL", "TemplateId", "TemplateScratchId") if n in p]
        if len(sources) > 1:
            raise ApiError(
                "MultipleParameter", f"Only one of the input parameters {', '.join(sources)} can be specified."
            )
        if not sources:
            if not required:
                return "", ""
            raise _missing_one_of(("TemplateBody", "TemplateURL", "TemplateId", "TemplateScratchId"))
        source = sources[0]
        if source in ("TemplateId", "TemplateScratchId"):  # no template library here: every id is unknown
            raise ApiError("TemplateNotFound", f"The Template ({p.str(source)}) could not be found.", 404)
        if source == "TemplateBody":
            text = p.required("TemplateBody")
            url = ""
        else:
            url = p.required("TemplateURL")
            text = self._read_template_url(url)
        if len(text.encode("utf-8")) > MAX_TEMPLATE_BYTES:
            raise _invalid(source, f"the template must be 1 to {MAX_TEMPLATE_BYTES} bytes")
        return text, url

    def _read_template_url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "oss" or not parts.netloc or not parts.path.strip("/"):
            raise _invalid("TemplateURL", "the local cloud reads templates from oss://bucket/key URLs only")
        region = dict(parse_qsl(parts.query)).get("RegionId")
        if region and region != self.cloud.region:
            raise _invalid("TemplateURL", f"this local cloud serves {self.cloud.region}, not {region}")
        oss = getattr(self.cloud, "oss", None)
        if oss is None:
            raise _invalid("TemplateURL", "OSS is not emulated by this local cloud")
        try:
            data = oss.read_object(parts.netloc, parts.path.lstrip("/"))
        except ApiError as error:
            raise _invalid("TemplateURL", f"{error.code}: {error.message}") from None
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid("TemplateURL", "the template is not UTF-8 text") from None

    def _given_parameters(self, p: Params) -> dict[str, str]:
        given: dict[str, str] = {}
        for index, entry in enumerate(p.struct_list("Parameters"), start=1):
            key, value = entry.get("ParameterKey"), entry.get("ParameterValue")
            if not isinstance(key, str) or not key:
                raise _missing(f"Parameters.{index}.ParameterKey")
            if not isinstance(value, str):
                raise _missing(f"Parameters.{index}.ParameterValue")
            given[key] = value
        return given

    def _tags(self, p: Params, name: str = "Tags") -> list[dict[str, str]]:
        tags = []
        for index, entry in enumerate(p.struct_list(name), start=1):
            key = entry.get("Key")
            if not isinstance(key, str) or not key:
                raise _missing(f"{name}.{index}.Key")
            tags.append({"Key": key, "Value": str(entry.get("Value") or "")})
        if len(tags) > 20:
            raise _invalid(name, "at most 20 tags")
        return tags

    def _idempotent(self, action: str, p: Params) -> str | None:
        """A stack id this ClientToken already made (same request) — or None for a new request."""
        token = p.str("ClientToken")
        if token is None:
            return None
        if not _CLIENT_TOKEN.match(token):
            raise _invalid("ClientToken", "up to 64 letters, digits, hyphens (-) and underscores (_)")
        seen = self.tokens.get((action, token))
        if seen is None:
            return None
        if seen[0] != _fingerprint(p):
            raise ApiError("InvalidIdempotenceParameter", "The specified parameters are different from before.")
        return seen[1]

    def _remember(self, action: str, p: Params, stack_id: str) -> None:
        token = p.str("ClientToken")
        if token:
            self.tokens[(action, token)] = (_fingerprint(p), stack_id)

    # -- checking a template -----------------------------------------------------------------------

    def _spec(self, text: str, given: dict[str, str], *, stack_name: str, stack_id: str, validate_only: bool = False,
              template_url: str = "") -> _Spec:  # fmt: skip
        """Parse, check (with the FC loader) and resolve a template; raises the ApiError ROS answers."""
        document = _parse(text)
        declared = document.get("Parameters") or {}
        if not isinstance(declared, dict):
            raise ApiError("InvalidTemplate", "The template section is invalid: Parameters must be a mapping.")
        for key in given:
            if key not in declared:
                raise ApiError("UnknownUserParameter", f"The Parameter ({key}) was not defined in template.")
        values: dict[str, str] = {}
        loader_given = dict(given)
        for key, spec in declared.items():
            spec = spec if isinstance(spec, dict) else {}
            if key in given:
                values[key] = given[key]
            elif "Default" in spec:
                values[key] = _text(spec["Default"])
            elif validate_only:  # ValidateTemplate takes no parameters: check with a stand-in value
                loader_given[key] = values[key] = _placeholder(spec)
            else:
                raise ApiError("UserParameterMissing", f"The Parameter ({key}) was not provided.")
        resources = document.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise ApiError("InvalidTemplate", "The template section is invalid: Resources must declare a resource.")
        _check_references(document, set(declared))
        template = self._load(text, loader_given, stack_name=stack_name)
        order = _dependency_order(resources)
        values.update(template.parameters)
        properties = {lid: copy.deepcopy(res.get("Properties") or {}) for lid, res in template.resources.items()}
        # The loader stands in `local-stack-<name>` for ALIYUN::StackId; a created stack knows its id.
        local_id = f"local-stack-{stack_name}"
        outputs = [
            {
                "OutputKey": key,
                "OutputValue": _swap(output.get("Value", ""), local_id, stack_id),
                "Description": (document.get("Outputs") or {}).get(key, {}).get("Description", "No description given"),
            }
            for key, output in template.outputs.items()
        ]
        properties = {lid: _swap(props, local_id, stack_id) for lid, props in properties.items()}
        return _Spec(text, document, dict(given), values, order, properties, outputs, template_url)

    def _pseudo(self, stack_name: str, stack_id: str) -> dict[str, str]:
        return {
            "ALIYUN::StackName": stack_name,
            "ALIYUN::StackId": stack_id,
            "ALIYUN::Region": self.cloud.region,
            "ALIYUN::AccountId": self.cloud.account_id,
            "ALIYUN::TenantId": self.cloud.account_id,
        }

    def _load(
        self,
        text: str,
        given: dict[str, str],
        *,
        stack_name: str,
        code_locator: Callable[[str, dict[str, Any]], Path | None] | None = None,
    ) -> Any:
        """The FC loader's verdict on a template, as ROS's error (InvalidTemplate / StackValidationFailed)."""
        from localcloud.fc.template import TemplateError, load_template_text, skip_code

        try:
            return load_template_text(
                text,
                given,
                region=self.cloud.region,
                account_id=self.cloud.account_id,
                stack_name=stack_name,
                code_locator=code_locator or skip_code,
                name="template",
            )
        except TemplateError as error:
            raise _template_error(error) from None

    # -- ValidateTemplate ------------------------------------------------------------------------------

    @api("ValidateTemplate")
    def validate_template(self, p: Params) -> dict[str, Any]:
        self._region(p, required=False)
        text, _url = self._template_text(p)
        spec = self._spec(text, {}, stack_name="ValidateTemplate", stack_id="", validate_only=True)
        document = spec.document
        parameters = []
        for key, decl in (document.get("Parameters") or {}).items():
            decl = decl if isinstance(decl, dict) else {}
            entry: dict[str, Any] = {
                "ParameterKey": key,
                "Type": decl.get("Type", "String"),
                "Label": decl.get("Label", key),
                "Description": decl.get("Description", ""),
                "NoEcho": "true" if str(decl.get("NoEcho", "false")).lower() == "true" else "false",
            }
            if "Default" in decl:
                entry["DefaultValue"] = decl["Default"]
            for name in ("AllowedValues", "AllowedPattern", "ConstraintDescription", "MinLength", "MaxLength",
                         "MinValue", "MaxValue"):  # fmt: skip
                if name in decl:
                    entry[name] = decl[name]
            parameters.append(entry)
        outputs = []
        for key, decl in (document.get("Outputs") or {}).items():
            decl = decl if isinstance(decl, dict) else {}
            output = {"OutputKey": key, "Description": decl.get("Description", "No description given")}
            if "Label" in decl:
                output["Label"] = decl["Label"]
            outputs.append(output)
        kinds = [spec.type_of(lid) for lid in document["Resources"]]
        return {
            "Description": document.get("Description", "No description given"),
            "Parameters": parameters,
            "Outputs": outputs,
            "ResourceTypes": {"Resources": sorted(set(kinds)), "DataSources": []},
            "Resources": [
                {"LogicalResourceIdPattern": lid, "ResourcePath": lid, "ResourceType": spec.type_of(lid)}
                for lid in document["Resources"]
            ],
        }

    # -- CreateStack -----------------------------------------------------------------------------------

    @api("CreateStack", write=True)
    def create_stack(self, p: Params) -> dict[str, Any]:
        self._region(p)
        existing = self._idempotent("CreateStack", p)
        if existing is not None:
            return {"StackId": existing}
        name = p.str("StackName")
        if not name:
            raise _missing("StackName")
        if not _STACK_NAME.match(name):
            raise _invalid("StackName", "it must start with a letter and be up to 255 letters, digits, hyphens (-) "
                                        "and underscores (_)")  # fmt: skip
        timeout = p.int("TimeoutInMinutes", 60, low=10, high=1440) or 60
        protection = p.choice("DeletionProtection", ("Enabled", "Disabled"), "Disabled", code="InvalidParameter")
        text, url = self._template_text(p)
        given = self._given_parameters(p)
        tags = self._tags(p)
        if self.stack_named(name) is not None:
            raise ApiError("StackExists", f"The Stack ({name}) already exists.", 409)
        stack_id = self.cloud.ids.uuid()
        spec = self._spec(text, given, stack_name=name, stack_id=stack_id, template_url=url)
        stack = Stack(
            stack_id=stack_id,
            name=name,
            spec=spec,
            disable_rollback=p.bool("DisableRollback"),
            timeout_minutes=timeout,
            deletion_protection=protection or "Disabled",
            tags=tags,
            ram_role_name=p.str("RamRoleName", "") or "",
            create_time=self.cloud.clock.now,
            resources={lid: StackResource(lid, spec.type_of(lid)) for lid in spec.order},
        )
        self.stacks[stack_id] = stack
        self._remember("CreateStack", p, stack_id)
        steps = [_Step("CREATE", lid) for lid in spec.order]
        self._begin(stack, _Operation("CREATE", steps, spec), "CREATE_IN_PROGRESS", "Stack CREATE started")
        return {"StackId": stack_id}

    # -- UpdateStack -----------------------------------------------------------------------------------

    @api("UpdateStack", write=True)
    def update_stack(self, p: Params) -> dict[str, Any]:
        self._region(p)
        existing = self._idempotent("UpdateStack", p)
        if existing is not None:
            return {"StackId": existing}
        stack = self._stack(p)
        if stack.status in IN_PROGRESS:
            raise _in_progress(stack)
        text, url = self._template_text(p)
        given = self._given_parameters(p)
        if p.bool("UsePreviousParameters"):  # values the caller gave before, for parameters the new template has
            declared = _parse(text).get("Parameters") or {}
            for key, value in stack.spec.given.items():
                if key not in given and isinstance(declared, dict) and key in declared:
                    given[key] = value
        if "TimeoutInMinutes" in p:
            stack.timeout_minutes = p.int("TimeoutInMinutes", low=10, high=1440) or stack.timeout_minutes
        target = self._spec(text, given, stack_name=stack.name, stack_id=stack.stack_id, template_url=url)
        steps = self._plan(stack, target)
        dry_run = p.bool("DryRun")
        if _parsed_equal(stack.spec, target) and not steps:
            if dry_run:
                return {"StackId": stack.stack_id, "DryRunResult": _dry_run_result(stack, target)}
            raise ApiError("NotSupported", f"Update the completely same stack ({stack.name}) is not supported.")
        if dry_run:
            return {"StackId": stack.stack_id, "DryRunResult": _dry_run_result(stack, target)}
        if "Tags" in p:
            stack.tags = self._tags(p)
        self._remember("UpdateStack", p, stack.stack_id)
        operation = _Operation("UPDATE", steps, target, previous=stack.spec)
        stack.update_time = self.cloud.clock.now
        self._begin(stack, operation, "UPDATE_IN_PROGRESS", "Stack UPDATE started")
        return {"StackId": stack.stack_id}

    def _plan(self, stack: Stack, target: _Spec) -> list[_Step]:
        """Added and changed resources in the new dependency order, then removed ones in reverse old order."""
        steps: list[_Step] = []
        for lid in target.order:
            current = stack.resources.get(lid)
            if (
                current is None
                or current.status in ("INIT_COMPLETE", "DELETE_COMPLETE")
                or (current.status == "CREATE_FAILED")
            ):
                steps.append(_Step("CREATE", lid, copy.deepcopy(current) if current else None))
            elif current.type != target.type_of(lid):
                # A new type under the same logical id: ROS replaces it (delete the old one, create the new).
                steps.append(_Step("DELETE", lid, copy.deepcopy(current)))
                steps.append(_Step("CREATE", lid))
            elif current.properties != target.properties[lid] or current.status.endswith("_FAILED"):
                steps.append(_Step("UPDATE", lid, copy.deepcopy(current)))
        for lid in reversed(stack.spec.order):
            current = stack.resources.get(lid)
            if lid not in target.properties and current is not None and current.status != "INIT_COMPLETE":
                steps.append(_Step("DELETE", lid, copy.deepcopy(current)))
        return steps

    # -- PreviewStack ----------------------------------------------------------------------------------

    @api("PreviewStack")
    def preview_stack(self, p: Params) -> dict[str, Any]:
        self._region(p)
        name, stack = p.str("StackName"), None
        if name and "StackId" in p:
            raise ApiError("MultipleParameter", "Only one of the input parameters StackName, StackId can be specified.")
        if not name:
            if "StackId" not in p:
                raise _missing_one_of(("StackName", "StackId"))
            stack = self._stack(p)
            name = stack.name
        elif not _STACK_NAME.match(name):
            raise _invalid("StackName", "it must start with a letter and be up to 255 letters, digits, hyphens (-) "
                                        "and underscores (_)")  # fmt: skip
        text, _url = self._template_text(p)
        given = self._given_parameters(p)
        if stack is not None and p.bool("UsePreviousParameters"):
            given = {**stack.spec.given, **given}
        target = self._spec(text, given, stack_name=name, stack_id=stack.stack_id if stack else "")
        actions = {step.logical_id: step.action for step in self._plan(stack, target)} if stack else {}
        labels = {"CREATE": "Add", "UPDATE": "Modify", "DELETE": "Remove"}
        resources = []
        for lid in target.order:
            entry: dict[str, Any] = {
                "LogicalResourceId": lid,
                "ResourceType": target.type_of(lid),
                "Properties": target.properties[lid],
                "Description": str(target.document["Resources"][lid].get("Description", "")),
                "RequiredBy": [
                    other for other in target.order if lid in _depends_on(target.document["Resources"], other)
                ],
            }
            if stack is not None:
                entry["Action"] = labels.get(actions.get(lid, ""), "None")
                if entry["Action"] in ("Modify", "Remove"):
                    entry["PhysicalResourceId"] = stack.resources[lid].physical_id
                if entry["Action"] == "Modify":
                    entry["Replacement"] = "False"
            resources.append(entry)
        if stack is not None:
            for lid, action in actions.items():
                if action == "DELETE" and lid not in target.properties:
                    old = stack.resources[lid]
                    resources.append({"LogicalResourceId": lid, "ResourceType": old.type, "Action": "Remove",
                                      "PhysicalResourceId": old.physical_id, "Properties": old.properties})  # fmt: skip
        return {
            "Stack": {
                "StackName": name,
                "RegionId": self.cloud.region,
                "Description": target.document.get("Description", "No description given"),
                "TemplateDescription": target.document.get("Description", "No description given"),
                "DisableRollback": p.bool("DisableRollback"),
                "TimeoutInMinutes": p.int("TimeoutInMinutes", 60, low=10, high=1440),
                "Parameters": self._parameters_json(target, name, stack.stack_id if stack else ""),
                "Resources": resources,
                "Log": {"TerraformLogs": []},  # a ROS stack has no Terraform logs
            }
        }

    # -- DeleteStack -----------------------------------------------------------------------------------

    @api("DeleteStack", write=True)
    def delete_stack(self, p: Params) -> dict[str, Any]:
        self._region(p)
        stack = self._stack(p)
        if stack.status in IN_PROGRESS:
            raise _in_progress(stack)
        steps = [
            _Step("DELETE", lid, copy.deepcopy(stack.resources[lid]))
            for lid in reversed(stack.spec.order)
            if lid in stack.resources and stack.resources[lid].status not in ("INIT_COMPLETE", "DELETE_COMPLETE")
        ]
        self._begin(stack, _Operation("DELETE", steps, None), "DELETE_IN_PROGRESS", "Stack DELETE started")
        return {}

    # -- reads -------------------------------------------------------------------------------------------

    @api("GetStack")
    def get_stack(self, p: Params) -> dict[str, Any]:
        self._region(p)
        stack = self._stack(p, allow_deleted=True)  # ROS still answers for a deleted stack's id
        description = str(stack.spec.document.get("Description", "No description given"))
        body: dict[str, Any] = {
            **self._summary(stack),
            "Description": description,
            "TemplateDescription": description,
            "Parameters": self._parameters_json(stack.spec, stack.name, stack.stack_id),
            "NotificationURLs": [],
            "StackDriftStatus": "NOT_CHECKED",
        }
        if stack.ram_role_name:
            body["RamRoleName"] = stack.ram_role_name
        if stack.spec.template_url:
            body["TemplateURL"] = stack.spec.template_url
        if (p.str("OutputOption") or "Enabled") == "Enabled" and stack.status in _OUTPUT_STATES:
            body["Outputs"] = copy.deepcopy(stack.outputs)
        return body

    def _summary(self, stack: Stack) -> dict[str, Any]:
        """The fields GetStack and ListStacks share."""
        summary: dict[str, Any] = {
            "StackId": stack.stack_id,
            "StackName": stack.name,
            "StackType": "ROS",
            "RegionId": self.cloud.region,
            "Status": stack.status,
            "StatusReason": stack.status_reason,
            "CreateTime": self._time(stack.create_time),
            "DisableRollback": stack.disable_rollback,
            "TimeoutInMinutes": stack.timeout_minutes,
            "DeletionProtection": stack.deletion_protection,
            "ServiceManaged": False,
            "Tags": copy.deepcopy(stack.tags),
        }
        if stack.update_time is not None:
            summary["UpdateTime"] = self._time(stack.update_time)
        return summary

    def _parameters_json(self, spec: _Spec, stack_name: str, stack_id: str) -> list[dict[str, str]]:
        """Every parameter with its value, then ROS's pseudo parameters (ALIYUN::Region ...)."""
        declared = spec.document.get("Parameters") or {}
        out = []
        for key, value in spec.values.items():
            decl = declared.get(key) if isinstance(declared.get(key), dict) else {}
            no_echo = str((decl or {}).get("NoEcho", "false")).lower() == "true"
            out.append({"ParameterKey": key, "ParameterValue": "****" if no_echo else value})
        pseudo = self._pseudo(stack_name, stack_id)
        out.extend({"ParameterKey": key, "ParameterValue": pseudo[key]} for key in _PSEUDO)
        return out

    @api("ListStacks")
    def list_stacks(self, p: Params) -> dict[str, Any]:
        self._region(p)
        page_number = p.int("PageNumber", 1, low=1) or 1
        page_size = p.int("PageSize", 10, low=1, high=50) or 10
        names = set(p.list("StackName"))
        statuses = set(p.list("Status"))
        ids = set(p.list("StackIds")) | ({p.str("StackId")} if p.str("StackId") else set())
        tags = self._tags(p, "Tag")
        stacks = []
        for stack in reversed(list(self.stacks.values())):  # newest first (stacks are kept in creation order)
            if stack.deleted and "DELETE_COMPLETE" not in statuses:
                continue  # deleted stacks are listed only when asked for by status (UNCONFIRMED)
            if names and stack.name not in names:
                continue
            if statuses and stack.status not in statuses:
                continue
            if ids and stack.stack_id not in ids:
                continue
            if any(tag not in stack.tags and not (tag["Value"] == "" and any(t["Key"] == tag["Key"] for t in stack.tags))
                   for tag in tags):  # fmt: skip
                continue
            stacks.append(self._summary(stack))
        return {
            "Stacks": paginate(stacks, page_number, page_size),
            "TotalCount": len(stacks),
            "PageNumber": page_number,
            "PageSize": page_size,
        }

    @api("ListStackEvents")
    def list_stack_events(self, p: Params) -> dict[str, Any]:
        self._region(p)
        stack = self._stack(p, allow_deleted=True)
        page_number = p.int("PageNumber", 1, low=1) or 1
        page_size = p.int("PageSize", 10, low=1, high=50) or 10
        logical_ids, types, statuses = (
            set(p.list("LogicalResourceId")),
            set(p.list("ResourceType")),
            set(p.list("Status")),
        )
        events = [
            {
                "EventId": e.event_id,
                "StackId": stack.stack_id,
                "StackName": stack.name,
                "LogicalResourceId": e.logical_id,
                "PhysicalResourceId": e.physical_id,
                "ResourceType": e.resource_type,
                "Status": e.status,
                "StatusReason": e.reason,
                "CreateTime": self._time(e.time),
            }
            for e in reversed(stack.events)  # newest first, as the console shows them (UNCONFIRMED for the API)
            if (not logical_ids or e.logical_id in logical_ids)
            and (not types or e.resource_type in types)
            and (not statuses or e.status in statuses)
        ]
        return {
            "Events": paginate(events, page_number, page_size),
            "TotalCount": len(events),
            "PageNumber": page_number,
            "PageSize": page_size,
        }

    @api("ListStackResources")
    def list_stack_resources(self, p: Params) -> dict[str, Any]:
        self._region(p)
        stack = self._stack(p, allow_deleted=True)
        resources = []
        for r in stack.resources.values():
            if r.status == "DELETE_COMPLETE":
                continue
            entry = {
                "LogicalResourceId": r.logical_id,
                "PhysicalResourceId": r.physical_id,
                "ResourceType": r.type,
                "Status": r.status,
                "StatusReason": r.status_reason,
                "StackId": stack.stack_id,
                "StackName": stack.name,
                "CreateTime": self._time(r.create_time if r.create_time is not None else stack.create_time),
                "ResourceDriftStatus": "NOT_CHECKED",
            }
            if r.update_time is not None:
                entry["UpdateTime"] = self._time(r.update_time)
            resources.append(entry)
        return {"Resources": resources}

    @api("GetTemplate")
    def get_template(self, p: Params) -> dict[str, Any]:
        self._region(p, required=False)
        if "StackId" not in p:
            for other in ("ChangeSetId", "StackGroupName", "TemplateId"):
                if other in p:  # none of these exist in this local cloud
                    raise ApiError("TemplateNotFound", f"The Template ({p.str(other)}) could not be found.", 404)
            raise _missing_one_of(("StackId", "ChangeSetId", "StackGroupName", "TemplateId"))
        stack = self._stack(p, allow_deleted=True)
        p.choice("TemplateStage", ("Processed", "Original"), "Processed", code="InvalidParameter")
        return {"StackId": stack.stack_id, "RegionId": self.cloud.region, "TemplateBody": stack.spec.body}

    # -- the state machine ---------------------------------------------------------------------------------

    def _event(self, stack: Stack, logical_id: str, physical_id: str, kind: str, status: str, reason: str) -> None:
        stack.events.append(
            StackEvent(self.cloud.ids.uuid(), logical_id, physical_id, kind, status, reason, self.cloud.clock.now)
        )

    def _stack_status(self, stack: Stack, status: str, event_reason: str, status_reason: str | None = None) -> None:
        stack.status = status
        stack.status_reason = event_reason if status_reason is None else status_reason
        self._event(stack, stack.name, stack.stack_id, STACK_TYPE, status, event_reason)

    def _begin(self, stack: Stack, operation: _Operation, status: str, reason: str) -> None:
        stack.operation = operation
        self._stack_status(stack, status, reason)
        self._after(STACK_SECONDS, lambda: self._next(stack), f"ros:{stack.name}:{operation.kind}")

    def _after(self, seconds: float, callback: Callable[[], None], label: str) -> None:
        self.cloud.clock.call_later(seconds, callback, label)

    def _next(self, stack: Stack) -> None:
        """Start the operation's next resource step, or finish the operation."""
        operation = stack.operation
        assert operation is not None
        pending = operation.steps[len(operation.done) :]
        if not pending:
            self._finish(stack)
            return
        step = pending[0]
        resource = stack.resources.get(step.logical_id)
        if step.action == "CREATE" and (
            resource is None
            or resource.status == "DELETE_COMPLETE"
            or resource.type != self._target_type(stack, operation, step.logical_id)
        ):
            resource = stack.resources[step.logical_id] = self._blank(stack, operation, step.logical_id)
        assert resource is not None
        if step.action == "CREATE":
            resource.create_time = self.cloud.clock.now
        resource.status = f"{step.action}_IN_PROGRESS"
        resource.status_reason = "state changed"
        self._event(stack, resource.logical_id, resource.physical_id, resource.type, resource.status, "state changed")
        seconds = (DELETE_SECONDS if step.action == "DELETE" else CREATE_SECONDS).get(resource.type, DEFAULT_SECONDS)
        self._after(seconds, lambda: self._complete(stack, step), f"ros:{stack.name}:{step.action}:{step.logical_id}")

    def _blank(self, stack: Stack, operation: _Operation, logical_id: str) -> StackResource:
        return StackResource(logical_id, self._target_type(stack, operation, logical_id))

    def _target_type(self, stack: Stack, operation: _Operation, logical_id: str) -> str:
        for spec in (operation.target, operation.previous, stack.spec):
            if spec is not None and logical_id in spec.properties:
                return spec.type_of(logical_id)
        return stack.resources[logical_id].type if logical_id in stack.resources else ""

    def _complete(self, stack: Stack, step: _Step) -> None:
        operation = stack.operation
        assert operation is not None
        resource = stack.resources[step.logical_id]
        try:
            if step.action == "DELETE":
                self._delete_resource(stack, resource)
            else:
                spec = self._spec_for_step(stack, operation)
                self._apply_resource(stack, operation, resource, spec)
        except _ResourceFailure as failure:
            resource.status = f"{step.action}_FAILED"
            resource.status_reason = failure.reason
            self._event(
                stack, resource.logical_id, resource.physical_id, resource.type, resource.status, failure.reason
            )
            operation.done.append(step)
            self._fail(stack, f"Resource {step.action} failed: {failure.reason}")
            return
        if step.action == "UPDATE":
            resource.update_time = self.cloud.clock.now
        resource.status = f"{step.action}_COMPLETE"
        resource.status_reason = "state changed"
        self._event(stack, resource.logical_id, resource.physical_id, resource.type, resource.status, "state changed")
        operation.done.append(step)
        self._next(stack)

    def _spec_for_step(self, stack: Stack, operation: _Operation) -> _Spec:
        if operation.kind in ("CREATE", "UPDATE"):
            assert operation.target is not None
            return operation.target
        assert operation.previous is not None  # ROLLBACK: back to the previous spec
        return operation.previous

    # -- per resource type -----------------------------------------------------------------------------

    def _apply_resource(self, stack: Stack, operation: _Operation, resource: StackResource, spec: _Spec) -> None:
        """Create or update one resource from `spec`; raises _ResourceFailure with ROS's reason."""
        lid, kind = resource.logical_id, resource.type
        props = spec.properties[lid]
        name = str(props.get(_NAME_PROPERTY.get(kind, ""), "") or lid)
        if kind == _ROLE:  # RAM role names are unique in the account (case-insensitive)
            owner = self.claims.get(("role", name.lower()))
            if owner is not None and owner != f"{stack.stack_id}/{lid}":
                raise self._failure(lid, ApiError("EntityAlreadyExists.Role", f"The role already exists: {name}.", 409))
            self._release(resource, keep=("role", name.lower()))
            self._claim(stack, resource, ("role", name.lower()))
        elif kind == _RULE:
            bus = str(props.get("EventBusName", "") or "")
            try:
                self.cloud.eventbridge._bus(bus)  # EventBridge's own answer for a missing bus
            except ApiError as error:
                raise self._failure(lid, error) from None
        elif kind == _FUNCTION:
            # The code in use was fetched for the committed spec; the same Code property reuses it (no fetch).
            committed = (
                stack.spec.properties.get(lid)
                if lid in stack.spec.properties and stack.spec.type_of(lid) == _FUNCTION
                else None
            )
            in_use = lid in stack.code_dirs and committed is not None and committed.get("Code") == props.get("Code")
            if not in_use:
                operation.code_dirs[lid] = self._fetch_code(stack, lid, props.get("Code"))
        resource.physical_id = name
        resource.properties = copy.deepcopy(props)

    def _claim(self, stack: Stack, resource: StackResource, claim: tuple[str, str]) -> None:
        """An account-level name (a RAM role) belongs to one stack resource at a time."""
        self.claims[claim] = f"{stack.stack_id}/{resource.logical_id}"
        if claim not in resource.claims:
            resource.claims.append(claim)

    def _release(self, resource: StackResource, keep: tuple[str, str] | None = None) -> None:
        """Give back the names a resource holds (all of them, or all but `keep` when it was renamed)."""
        for claim in [c for c in resource.claims if c != keep]:
            self.claims.pop(claim, None)
            resource.claims.remove(claim)

    def _delete_resource(self, stack: Stack, resource: StackResource) -> None:
        self._release(resource)

    def _failure(self, logical_id: str, error: ApiError) -> _ResourceFailure:
        """How ROS words a service error on a resource: exception, resource path, HTTP code, message."""
        kind = "ServerException" if error.status >= 500 else "ClientException"
        request_id = self.cloud.ids.request_id()
        return _ResourceFailure(
            f"{kind}: resources.{logical_id}: code: {error.status}, {error.code}: {error.message} "
            f"request id: {request_id}"
        )

    def _fetch_code(self, stack: Stack, logical_id: str, code: Any) -> Path:
        """FC reads the code package from OSS: must exist, must be a zip; unpacked safely into our work dir."""
        if not isinstance(code, dict):
            raise self._failure(logical_id, ApiError("InvalidArgument", "Code is required.", 400))
        if code.get("ZipFile"):
            try:
                data = base64.b64decode(str(code["ZipFile"]), validate=True)
            except ValueError:
                raise self._failure(
                    logical_id, ApiError("InvalidArgument", "Code.ZipFile is not valid Base64.")
                ) from None
        else:
            bucket, key = code.get("OssBucketName"), code.get("OssObjectName")
            if not bucket or not key:
                raise self._failure(
                    logical_id, ApiError("InvalidArgument", "Code.OssBucketName and Code.OssObjectName are required.")
                )
            oss = getattr(self.cloud, "oss", None)
            if oss is None:
                raise self._failure(
                    logical_id, ApiError("NoSuchBucket", "OSS is not emulated by this local cloud.", 404)
                )
            try:
                data = bytes(oss.read_object(str(bucket), str(key)))
            except ApiError as error:
                raise self._failure(
                    logical_id,
                    ApiError(
                        error.code,
                        f"Failed to get code from OSS (bucket: {bucket}, object: {key}): {error.message}",
                        error.status,
                    ),
                ) from None
        self._dirs += 1
        target = self._work_dir() / stack.stack_id / f"{self._dirs:04d}-{logical_id}"
        try:
            _unzip(data, target)
        except ValueError as error:
            shutil.rmtree(target, ignore_errors=True)
            raise self._failure(
                logical_id, ApiError("InvalidArgument", f"The code package is invalid: {error}")
            ) from None
        return target

    def _work_dir(self) -> Path:
        if self._work is None:
            # A RAM-backed tmpfs when there is one: a code zip is ~5,000 small files, which take seconds to write
            # to a slow disk, and the unpacking runs under the cloud's lock.
            shm = Path("/dev/shm")
            fast = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
            self._work = Path(tempfile.mkdtemp(prefix="localcloud-ros-", dir=fast))
        return self._work

    # -- finishing, failing, rolling back --------------------------------------------------------------

    def _finish(self, stack: Stack) -> None:
        operation = stack.operation
        assert operation is not None
        kind = operation.kind
        if kind in ("CREATE", "UPDATE"):
            assert operation.target is not None
            code_dirs = {**stack.code_dirs, **operation.code_dirs}
            try:
                self._bring_up(stack, operation.target, code_dirs, operation)
            except _ResourceFailure as failure:
                self._fail(stack, failure.reason)
                return
            kept = {lid: d for lid, d in code_dirs.items() if operation.target.properties.get(lid) is not None}
            for directory in {*stack.code_dirs.values(), *operation.code_dirs.values()} - set(kept.values()):
                shutil.rmtree(directory, ignore_errors=True)  # code of replaced or removed functions
            stack.code_dirs = kept
            stack.spec = operation.target
            stack.outputs = copy.deepcopy(stack.spec.outputs)
            stack.resources = {lid: stack.resources[lid] for lid in operation.target.order if lid in stack.resources}
            stack.operation = None
            self._stack_status(stack, f"{kind}_COMPLETE", f"Stack {kind} completed successfully")
        elif kind == "DELETE":
            if stack.deployed:
                self._undeploy(stack)
            self._drop_code(stack)
            stack.resources = {}
            stack.operation = None
            self._stack_status(stack, "DELETE_COMPLETE", "Stack DELETE completed successfully")
        else:  # CREATE_ROLLBACK / ROLLBACK
            reason = stack.status_reason
            if kind == "CREATE_ROLLBACK":
                if stack.deployed:
                    self._undeploy(stack)
                self._drop_code(stack)
                stack.resources = {}
            else:
                assert operation.previous is not None
                for directory in operation.discard:
                    shutil.rmtree(directory, ignore_errors=True)
                stack.code_dirs.update(operation.code_dirs)
                stack.spec = operation.previous
                stack.resources = {lid: stack.resources[lid] for lid in stack.spec.order if lid in stack.resources}
                if operation.deploy_attempted:  # the FC service may hold half of the new deployment
                    try:
                        self._bring_up(stack, stack.spec, stack.code_dirs, None)
                    except _ResourceFailure as failure:
                        stack.operation = None
                        self._stack_status(stack, "ROLLBACK_FAILED", f"Stack ROLLBACK failed: {failure.reason}")
                        return
                stack.outputs = copy.deepcopy(stack.spec.outputs)
            stack.operation = None
            # The stack keeps saying which resource failed and why (the rollback event says it completed).
            self._stack_status(stack, f"{kind}_COMPLETE", "Stack ROLLBACK completed successfully", reason)

    def _fail(self, stack: Stack, reason: str) -> None:
        operation = stack.operation
        assert operation is not None
        kind = operation.kind
        if kind in ("CREATE_ROLLBACK", "ROLLBACK", "DELETE"):  # deletes here do not fail; keep the shape honest
            stack.operation = None
            self._stack_status(stack, f"{kind}_FAILED", reason)
            return
        self._stack_status(stack, f"{kind}_FAILED", reason)
        if stack.disable_rollback:
            # What was made stays; an update stays on the new template, half applied.
            if kind == "UPDATE":
                assert operation.target is not None
                stack.spec = operation.target
                stack.code_dirs.update(operation.code_dirs)
            elif kind == "CREATE":
                stack.code_dirs.update(operation.code_dirs)
            stack.operation = None
            return
        self._after(STACK_SECONDS, lambda: self._rollback(stack, reason), f"ros:{stack.name}:rollback")

    def _rollback(self, stack: Stack, reason: str) -> None:
        operation = stack.operation
        assert operation is not None
        steps: list[_Step] = []
        for step in reversed(operation.done):
            if step.action == "CREATE":
                if step.previous is not None and step.previous.status not in ("INIT_COMPLETE", "DELETE_COMPLETE"):
                    steps.append(_Step("UPDATE", step.logical_id))  # it existed before (a failed one): restore
                else:
                    steps.append(_Step("DELETE", step.logical_id))
            elif step.action == "UPDATE":
                steps.append(_Step("UPDATE", step.logical_id, step.previous))
            elif step.action == "DELETE" and operation.previous and step.logical_id in operation.previous.properties:
                steps.append(_Step("CREATE", step.logical_id, step.previous))
        if operation.kind == "CREATE":  # the fetched code goes with the stack's directory at the end
            stack.operation = _Operation("CREATE_ROLLBACK", steps, None)
            self._stack_status(stack, "CREATE_ROLLBACK_IN_PROGRESS", "Stack ROLLBACK started", reason)
        else:
            rollback = _Operation("ROLLBACK", steps, None, previous=operation.previous)
            rollback.discard = list(operation.code_dirs.values())
            rollback.deploy_attempted = operation.deploy_attempted
            stack.operation = rollback
            self._stack_status(stack, "ROLLBACK_IN_PROGRESS", "Stack ROLLBACK started", reason)
        self._after(STACK_SECONDS, lambda: self._next(stack), f"ros:{stack.name}:rollback-steps")

    # -- the FC service --------------------------------------------------------------------------------

    def _bring_up(self, stack: Stack, spec: _Spec, code_dirs: dict[str, Path], operation: _Operation | None) -> None:
        """Load the template with the unpacked code and hand it to the FC service (if the cloud has one)."""
        if operation is not None:
            operation.deploy_attempted = True

        def locate(logical_id: str, _code: dict[str, Any]) -> Path | None:
            return code_dirs.get(logical_id)

        try:
            template = self._load(spec.body, spec.given, stack_name=stack.name, code_locator=locate)
        except ApiError as error:
            raise _ResourceFailure(f"{error.code}: {error.message}") from None
        fc = self.cloud.services.get("fc")
        if fc is None:
            return
        if not template.functions:  # nothing to run: only stop what an earlier template ran
            if stack.deployed:
                self._undeploy(stack)
            return
        stack.deployed = True  # from the first attempt: a half-done deploy is undeployed like a whole one
        try:
            fc.deploy(stack.name, template)
        except Exception as exc:  # the FC service refused the functions: the stack operation fails
            raise _ResourceFailure(f"FC deploy failed: {type(exc).__name__}: {exc}") from None

    def _undeploy(self, stack: Stack) -> None:
        fc = self.cloud.services.get("fc")
        if fc is not None:
            fc.undeploy(stack.name)
        stack.deployed = False

    def _drop_code(self, stack: Stack) -> None:
        stack.code_dirs.clear()
        if stack.operation is not None:
            stack.operation.code_dirs.clear()
        if self._work is not None:
            shutil.rmtree(self._work / stack.stack_id, ignore_errors=True)


# -- templates ------------------------------------------------------------------------------------


def _parse(text: str) -> dict[str, Any]:
    """A template is JSON or YAML text whose top level is a mapping."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ApiError("InvalidTemplate", f"The template is not valid JSON or YAML: {error}") from None
    if not isinstance(document, dict):
        raise ApiError("InvalidTemplate", "The template must be a JSON or YAML mapping with Resources.")
    return document


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


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


def _unzip(data: bytes, target: Path) -> None:
    """Unpack a code zip under `target`: no absolute paths, no `..`, no links, bounded size (zip-slip safe).

    The checks are lexical — every entry is refused before anything is written if one is unsafe, no link is
    ever created, and `target` is a fresh directory — so no path needs resolving (resolving each of a code
    zip's ~5,000 entries made one unpack take seconds, all of it under the cloud's lock)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError("the object is not a zip file") from None
    with archive:
        members = archive.infolist()
        if sum(m.file_size for m in members) > MAX_CODE_BYTES:
            raise ValueError(f"it unpacks to more than {MAX_CODE_BYTES // (1024 * 1024)} MB")
        planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for member in members:
            name = member.filename.replace("\\", "/")
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or re.match(r"^[A-Za-z]:", name):
                raise ValueError(f"entry {member.filename!r} would be written outside the code directory")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise ValueError(f"entry {member.filename!r} is a symbolic link")
            planned.append((member, path))
        target.mkdir(parents=True, exist_ok=True)
        made: set[PurePosixPath] = set()
        for member, path in planned:
            folder = path if member.is_dir() else path.parent
            if folder not in made:
                (target / folder).mkdir(parents=True, exist_ok=True)
                made.add(folder)
            if not member.is_dir():
                (target / path).write_bytes(archive.read(member))
