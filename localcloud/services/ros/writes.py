"""ROS's write actions and ValidateTemplate: a template checked with the FC loader and resolved into a spec,
then a stack created, updated (with a plan of resource steps), previewed or deleted."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError
from localcloud.fc.template.loader import load_template_text
from localcloud.fc.template.model import TemplateError, skip_code
from localcloud.services.base import api
from localcloud.services.ros.models import (
    _STACK_NAME,
    IN_PROGRESS,
    Stack,
    StackResource,
    _in_progress,
    _invalid,
    _missing,
    _missing_one_of,
    _Operation,
    _Spec,
    _Step,
)
from localcloud.services.ros.templates import (
    _check_references,
    _dependency_order,
    _depends_on,
    _dry_run_result,
    _parse,
    _parsed_equal,
    _placeholder,
    _swap,
    _template_error,
    _text,
)
from localcloud.wire import Params

if TYPE_CHECKING:
    from localcloud.services.ros import RosService


class StackWritesMixin:
    """ValidateTemplate, CreateStack, UpdateStack, PreviewStack and DeleteStack (the state lives on RosService)."""

    def _spec(
        self: RosService,
        text: str,
        given: dict[str, str],
        *,
        stack_name: str,
        stack_id: str,
        validate_only: bool = False,
        template_url: str = "",
    ) -> _Spec:
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

    def _load(
        self: RosService,
        text: str,
        given: dict[str, str],
        *,
        stack_name: str,
        code_locator: Callable[[str, dict[str, Any]], Path | None] | None = None,
    ) -> Any:
        """The FC loader's verdict on a template, as ROS's error (InvalidTemplate / StackValidationFailed)."""
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
    def validate_template(self: RosService, p: Params) -> dict[str, Any]:
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
    def create_stack(self: RosService, p: Params) -> dict[str, Any]:
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
    def update_stack(self: RosService, p: Params) -> dict[str, Any]:
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

    def _plan(self: RosService, stack: Stack, target: _Spec) -> list[_Step]:
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
    def preview_stack(self: RosService, p: Params) -> dict[str, Any]:
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
    def delete_stack(self: RosService, p: Params) -> dict[str, Any]:
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
