"""The template as deploy reads it: its parameters, local validation (what ROS would refuse), the resolved view
the plan diffs, and the TemplateBody sent to ROS.

The body is JSON made from our own parse of template.yml: YAML anchors, aliases and merge keys are resolved here,
so what ROS deploys never depends on how ROS's YAML parser treats them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from bakery_tools.deploy.errors import DeployError
from bakery_tools.deploy.settings import DeploySettings
from bakery_tools.exits import EXIT_USAGE
from localcloud.fc.template.parameters import as_text as _text

CODE_PARAMETERS = ("CodeBucket", "CodePrefix")
BUS_PARAMETERS = ("NotificationBus", "DeadLetterBus")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
PLAN_ACCOUNT_ID = "1234567890123456"  # validation needs one; the diff keeps ${ALIYUN::TenantId} symbolic


def parse_template(text: str, name: str = "template.yml") -> dict[str, Any]:
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DeployError(EXIT_USAGE, "invalid-template", f"{name}: not valid YAML ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise DeployError(EXIT_USAGE, "invalid-template", f"{name}: a ROS template is a mapping with Resources")
    return document


def template_body(document: Mapping[str, Any], name: str = "template.yml") -> str:
    """The TemplateBody of CreateStack/UpdateStack: the parsed template as JSON (anchors and aliases resolved)."""
    try:
        return json.dumps(document, ensure_ascii=False)
    except (TypeError, ValueError) as exc:  # a YAML date or binary value, a recursive alias
        raise DeployError(EXIT_USAGE, "invalid-template", f"{name}: cannot be sent to ROS as JSON ({exc}): quote "
                          "the value (ROS takes strings, numbers, booleans, lists and mappings)") from None  # fmt: skip


def declared_parameters(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    declared = document.get("Parameters") or {}
    return (
        {str(k): (v if isinstance(v, dict) else {}) for k, v in declared.items()} if isinstance(declared, dict) else {}
    )


def stack_parameters(
    document: Mapping[str, Any], given: Mapping[str, str], *, bucket: str, code_prefix: str, name: str = "template.yml"
) -> dict[str, str]:
    """What CreateStack/UpdateStack pass: the given parameters, CodeBucket, CodePrefix and the bus parameters
    (their defaults when not given, so the stack records the buses it uses). Checks every parameter without a
    Default is given, naming it and the flag."""
    declared = declared_parameters(document)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DeployError(EXIT_USAGE, "unknown-parameter", f"{name} declares no parameter {', '.join(unknown)} "
                          f"(it declares: {', '.join(declared) or 'none'}).")  # fmt: skip
    if "CodePrefix" in given:
        raise DeployError(EXIT_USAGE, "code-prefix-given", "CodePrefix is set by bakery deploy (<prefix>/<hash of the "
                          "artifacts>): change the part before the hash with --prefix.")  # fmt: skip
    if given.get("CodeBucket") not in (None, bucket):
        raise DeployError(EXIT_USAGE, "two-buckets", f"--parameter CodeBucket={given['CodeBucket']} and --bucket "
                          f"{bucket} disagree: give the bucket once, with --bucket.")  # fmt: skip
    values = dict(given)
    if "CodeBucket" in declared:
        values["CodeBucket"] = bucket
    if "CodePrefix" in declared:
        values["CodePrefix"] = code_prefix
    for bus in BUS_PARAMETERS:
        if bus in declared and bus not in values and "Default" in declared[bus]:
            values[bus] = _text(declared[bus]["Default"])
    missing = [p for p, spec in declared.items() if p not in values and "Default" not in spec]
    if missing:
        described = "; ".join(f"{p}: {declared[p].get('Description', 'no description')}" for p in missing)
        raise DeployError(EXIT_USAGE, "missing-parameter", f"{name}: parameter{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)} {'have' if len(missing) > 1 else 'has'} no Default and "
                          f"{'were' if len(missing) > 1 else 'was'} not given. Pass "
                          + " ".join(f"--parameter {p}=VALUE" for p in missing)
                          + " (or set them in a [tool.bakery.deploy.parameters] table of pyproject.toml). "
                          f"{described}")  # fmt: skip
    return values


def resolved_parameters(document: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Every declared parameter's value: given, else its Default (what ROS resolves it to)."""
    values = {p: _text(spec["Default"]) for p, spec in declared_parameters(document).items() if "Default" in spec}
    values.update({k: v for k, v in given.items() if not k.startswith("ALIYUN::")})
    return values


def validate_template(text: str, parameters: Mapping[str, str], settings: DeploySettings, *, name: str) -> Any:
    """Load the template as ROS would (localcloud.fc.template: what ROS refuses, naming the resource and
    property), without looking at the code. Returns the loaded Template (its `buses`)."""
    from localcloud.fc.template import TemplateError, load_template_text, skip_code

    try:
        return load_template_text(text, dict(parameters), region=settings.region or "cn-hangzhou",
                                  account_id=PLAN_ACCOUNT_ID, stack_name=settings.stack,
                                  code_locator=skip_code, name=name)  # fmt: skip
    except TemplateError as exc:
        raise DeployError(EXIT_USAGE, "invalid-template", f"{exc}") from None


def resolve_document(document: Mapping[str, Any], parameters: Mapping[str, str], *, region: str,
                     stack: str) -> dict[str, Any]:  # fmt: skip
    """The template with Ref/Fn::Sub of parameters and pseudo parameters replaced; Fn::GetAtt stays symbolic
    (`${FunctionRole.Arn}`), as do values only ROS knows (`${ALIYUN::TenantId}`). What the diff compares."""
    values = resolved_parameters(document, parameters)
    pseudo = {"ALIYUN::Region": region, "ALIYUN::StackName": stack}
    resources = document.get("Resources") or {}

    def ref(name: str) -> Any:
        if name in values:
            return values[name]
        if name in pseudo:
            return pseudo[name]
        return "${" + name + "}"  # a resource (its physical id) or a pseudo parameter only ROS knows

    def resolve(value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, argument),) = value.items()
                if key == "Ref" and isinstance(argument, str):
                    return ref(argument)
                if key == "Fn::GetAtt":
                    parts = argument.split(".", 1) if isinstance(argument, str) else argument
                    if isinstance(parts, list) and len(parts) == 2:
                        return "${" + f"{parts[0]}.{parts[1]}" + "}"
                if key == "Fn::Sub":
                    text, variables = (argument[0], resolve(argument[1])) if isinstance(argument, list) and len(
                        argument) == 2 and isinstance(argument[1], dict) else (argument, {})  # fmt: skip
                    if isinstance(text, str):
                        return _SUB_VARIABLE.sub(lambda m: _sub(m.group(1).strip(), variables, ref), text)
                if key == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
                    parts = resolve(argument[1])
                    if isinstance(argument[0], str) and isinstance(parts, list) and all(
                            isinstance(p, str) for p in parts):  # fmt: skip
                        return argument[0].join(parts)
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return {
        "Description": document.get("Description"),
        "Resources": {str(lid): {k: (resolve(v) if k == "Properties" else v) for k, v in (res or {}).items()}
                      for lid, res in resources.items()},
        "Outputs": resolve(document.get("Outputs") or {}),
    }  # fmt: skip


def _sub(name: str, variables: Mapping[str, Any], ref: Callable[[str], Any]) -> str:
    if name.startswith("!"):
        return "${" + name[1:] + "}"
    if name in variables:
        return _text(variables[name])
    if "." in name and not name.startswith("ALIYUN::"):
        return "${" + name + "}"
    return _text(ref(name))
