"""`bakery deploy --dry-run` and the first half of every deploy: Deployer.plan() validates the template locally,
builds (or reads) the artifacts, then only READS the cloud — buses, bucket, objects, the stack and its deployed
template — and says what would change: the template diff, per logical id, of the resolved documents."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bakery_tools.deploy.buses import bus_exists
from bakery_tools.deploy.clients import Engine, Step
from bakery_tools.deploy.errors import DeployError
from bakery_tools.deploy.settings import DeploySettings, target_settings
from bakery_tools.deploy.stack import RETRY_STATUSES, DeployedStack, Stacks
from bakery_tools.deploy.template import (
    declared_parameters,
    parse_template,
    resolve_document,
    resolved_parameters,
    stack_parameters,
    template_body,
    validate_template,
)
from bakery_tools.deploy.upload import ArtifactPlan, Uploading, code_prefix
from bakery_tools.exits import EXIT_USAGE


@dataclass(frozen=True)
class Change:
    """One line of a plan: `+` added, `-` removed, `~` changed (old -> new)."""

    op: str
    path: str
    old: Any = None
    new: Any = None

    def line(self) -> str:
        if self.op == "~":
            return f"~ {self.path}: {_shown(self.old)} -> {_shown(self.new)}"
        value = self.new if self.op == "+" else self.old
        return f"{self.op} {self.path}" + (f" ({_shown(value)})" if value is not None else "")

    def as_json(self) -> dict[str, Any]:
        return {"op": self.op, "path": self.path, "old": self.old, "new": self.new, "line": self.line()}


def diff_templates(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Resolved templates (resolve_document) compared per logical id: `+ Id (Type)`, `- Id (Type)`,
    `~ Id.Properties.X.Y: old -> new`; then Outputs and the Description."""
    changes: list[Change] = []
    old_resources, new_resources = old.get("Resources") or {}, new.get("Resources") or {}
    for lid in sorted(set(old_resources) | set(new_resources)):
        before, after = old_resources.get(lid), new_resources.get(lid)
        if before is None:
            changes.append(Change("+", lid, new=(after or {}).get("Type")))
        elif after is None:
            changes.append(Change("-", lid, old=(before or {}).get("Type")))
        elif before.get("Type") != after.get("Type"):
            changes.append(Change("~", f"{lid}.Type", before.get("Type"), after.get("Type")))
        else:
            changes += _diff_values(f"{lid}", {k: v for k, v in before.items() if k != "Type"},
                                    {k: v for k, v in after.items() if k != "Type"})  # fmt: skip
    changes += _diff_values("Outputs", old.get("Outputs") or {}, new.get("Outputs") or {})
    if old.get("Description") != new.get("Description"):
        changes.append(Change("~", "Description", old.get("Description"), new.get("Description")))
    return changes


def _diff_values(path: str, old: Any, new: Any) -> list[Change]:
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}"
            if key not in new:
                out.append(Change("-", sub, old=old[key]))
            elif key not in old:
                out.append(Change("+", sub, new=new[key]))
            else:
                out += _diff_values(sub, old[key], new[key])
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [c for i, (a, b) in enumerate(zip(old, new, strict=True)) for c in _diff_values(f"{path}[{i}]", a, b)]
    return [Change("~", path, old, new)]


def diff_parameters(old: Mapping[str, str], new: Mapping[str, str]) -> list[Change]:
    """Parameter values (pseudo parameters ALIYUN::* left out): `~ Parameter CodePrefix: a -> b`."""
    changes = []
    for key in sorted((set(old) | set(new)) - {k for k in set(old) | set(new) if k.startswith("ALIYUN::")}):
        if key not in old:
            changes.append(Change("+", f"Parameter {key}", new=new[key]))
        elif key not in new:
            changes.append(Change("-", f"Parameter {key}", old=old[key]))
        elif old[key] != new[key]:
            changes.append(Change("~", f"Parameter {key}", old[key], new[key]))
    return changes


def _shown(value: Any, width: int = 100) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class Plan:
    settings: DeploySettings
    template_name: str
    template_text: str  # as read
    template_body: str  # what CreateStack/UpdateStack send: template_body(the parsed text), JSON
    resource_count: int
    resource_types: dict[str, int]
    parameters: dict[str, str]  # what CreateStack/UpdateStack pass
    code_prefix: str
    buses: list[str]  # every custom bus the template uses
    buses_to_create: list[str]
    bucket: str
    bucket_exists: bool
    artifacts: list[ArtifactPlan]
    stack: DeployedStack | None
    action: str  # create | update | none | busy
    changes: list[Change]

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.settings.stack, "region": self.settings.region, "endpoint": self.settings.endpoint or None,
            "template": self.template_name, "action": self.action,
            "stackId": self.stack.stack_id if self.stack else None,
            "stackStatus": self.stack.status if self.stack else None,
            "buses": {"used": self.buses, "toCreate": self.buses_to_create},
            "bucket": {"name": self.bucket, "exists": self.bucket_exists},
            "codePrefix": self.code_prefix, "artifacts": [a.as_json() for a in self.artifacts],
            "parameters": self.parameters, "changes": [c.as_json() for c in self.changes],
            "resources": self.resource_count,
        }  # fmt: skip


class Planning(Uploading, Stacks, Engine):
    """Reading the template and everything a deploy would touch (a step of Deployer)."""

    def read_template(self) -> tuple[str, str, dict[str, Any]]:
        path = self.settings.template
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DeployError(EXIT_USAGE, "no-template", f"cannot read the template {path}: {exc.strerror or exc} "
                              "(run from the project root or pass --template PATH)") from None  # fmt: skip
        return path.name, text, parse_template(text, path.name)

    def plan(self) -> Plan:
        """Everything deploy would do, reading only: the template validated locally (before anything else), the
        artifacts built, then buses, bucket, objects and the stack read from the cloud."""
        name, text, document = self.read_template()
        bucket = self.settings.bucket or self.settings.parameters.get("CodeBucket", "")
        if not bucket and "CodeBucket" in declared_parameters(document):
            raise DeployError(EXIT_USAGE, "no-bucket", "Name the OSS bucket for the code: --bucket NAME (or bucket = "
                              "\"NAME\" in [tool.bakery.deploy]); bakery deploy creates it in the stack's region if it "
                              "is missing.")  # fmt: skip
        if not self.settings.region:
            target_settings(self.settings)  # raises the actionable no-region error
        placeholder = f"{self.settings.prefix}/{'0' * 12}"
        parameters = stack_parameters(document, self.settings.parameters, bucket=bucket, code_prefix=placeholder,
                                      name=name)  # fmt: skip
        template = validate_template(text, parameters, self.settings, name=name)
        body = template_body(document, name)
        resources = document["Resources"]
        types: dict[str, int] = {}
        for resource in resources.values():
            kind = str((resource or {}).get("Type"))
            types[kind] = types.get(kind, 0) + 1
        self.on_step(Step("validated", name, {"resources": len(resources)}))

        stack = self.find_stack(with_template=True)  # first: wrong credentials or region show before the build
        local = self.build(document)
        prefix = code_prefix(self.settings.prefix, {a.name: a.sha256 for a in local})
        parameters = stack_parameters(document, self.settings.parameters, bucket=bucket, code_prefix=prefix, name=name)

        buses = list(dict.fromkeys(template.buses))
        to_create = [b for b in buses if not bus_exists(self.clients.eventbridge, b)]
        bucket_exists = self.find_bucket(bucket)
        artifacts = self.plan_artifacts(bucket, local, prefix, bucket_exists=bucket_exists)

        action, changes = "create", []
        if stack is not None:
            if stack.status.endswith("_IN_PROGRESS"):
                action = "busy"
            else:  # what ROS would get (the JSON body, parsed back) against what it has
                changes = self._changes(stack, json.loads(body), parameters)
                action = "update" if changes else "none"
        return Plan(settings=self.settings, template_name=name, template_text=text, template_body=body,
                    resource_count=len(resources), resource_types=types, parameters=parameters, code_prefix=prefix,
                    buses=buses, buses_to_create=to_create, bucket=bucket, bucket_exists=bucket_exists,
                    artifacts=artifacts, stack=stack, action=action, changes=changes)  # fmt: skip

    def _changes(self, stack: DeployedStack, document: dict[str, Any], parameters: Mapping[str, str]) -> list[Change]:
        new_values = resolved_parameters(document, parameters)
        try:
            old_document = _as_sent(parse_template(stack.template_body or "", "the deployed template"))
        except DeployError:
            old_document = {"Resources": {}}
        old_values = resolved_parameters(old_document, stack.parameters)
        if old_document == document and old_values == new_values:
            if stack.status in RETRY_STATUSES:  # same template, but the last operation failed: try again
                return [Change("~", "Stack status", stack.status, "(retried: UpdateStack makes what is missing)")]
            return []
        region, name = self.settings.region, self.settings.stack
        changes = diff_templates(resolve_document(old_document, stack.parameters, region=region, stack=name),
                                 resolve_document(document, parameters, region=region, stack=name))  # fmt: skip
        changes += diff_parameters(old_values, new_values)
        if not changes:  # the text differs in a way that resolves to the same stack (a Ref for its value...)
            changes.append(Change("~", "template (no resolved property changes)"))
        return changes


def _as_sent(document: dict[str, Any]) -> dict[str, Any]:
    """A deployed template as this deploy would have sent it (JSON: a YAML body deployed before reads the same)."""
    try:
        return json.loads(template_body(document))
    except DeployError:
        return document
