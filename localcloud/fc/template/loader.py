"""Loading a template: its structure checked (sections, resource keys, DependsOn, cycles), every resource's
Properties resolved and checked against the ROS schema, then turned into a Template by the mixins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from localcloud.fc.ros_schema import check_properties, load_schema
from localcloud.fc.template.intrinsics import IntrinsicsMixin
from localcloud.fc.template.model import (
    ASYNC,
    FORMAT_VERSION,
    FUNCTION,
    RESOURCE_TYPES,
    ROLE,
    RULE,
    SUB_VARIABLE,
    TRIGGER,
    CodeLocator,
    FunctionDef,
    Route,
    Template,
    TemplateError,
    TimerDef,
)
from localcloud.fc.template.parameters import ParametersMixin, as_text
from localcloud.fc.template.wiring import WiringMixin

# ROS template sections (ROS "Template structure"); the local runtime runs the first six.
_RUN_SECTIONS = ("ROSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Resources", "Outputs")
_ROS_ONLY_SECTIONS = ("Mappings", "Conditions", "Rules", "Locals", "Transform", "Workspace")
_RESOURCE_KEYS = ("Type", "Properties", "Metadata", "DependsOn", "DeletionPolicy", "Description")
_ROS_ONLY_RESOURCE_KEYS = ("Condition", "Count")


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
    loader = Loader(document, name, base_dir or Path.cwd(), dict(parameters or {}), region, account_id, stack_name)
    return loader.load(code_locator)


class Loader(ParametersMixin, IntrinsicsMixin, WiringMixin):
    """One template document being checked and turned into a Template (one loader per load)."""

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
        self.typed: dict[str, Any] = {}  # parameter values as their Type makes them (what a Ref yields)
        self._trigger_names: dict[tuple[str, str], str] = {}  # (function, trigger name) → the Trigger declaring it
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

        roles = {lid: self._role(lid) for lid in self._of_type(ROLE)}
        functions: dict[str, FunctionDef] = {}
        for lid in self._of_type(FUNCTION):
            fn = self._function(lid, roles, code_locator)
            if fn.name in functions:
                raise self.error(
                    f"FunctionName {fn.name!r} is also used by {functions[fn.name].logical_id}", lid, "FunctionName"
                )
            functions[fn.name] = fn
        configured: dict[str, str] = {}
        buses: list[str] = []
        for lid in self._of_type(ASYNC):
            self._async_config(lid, functions, configured, buses)
        routes: list[Route] = []
        timers: list[TimerDef] = []
        for lid in self._of_type(TRIGGER):
            self._trigger(lid, functions, routes, timers)
        for lid in self._of_type(RULE):
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
                        for name in SUB_VARIABLE.findall(text if isinstance(text, str) else ""):
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
            outputs[str(key)] = {"Value": as_text(value), "Description": str(spec.get("Description", ""))}
        return outputs
