"""Contract: template.yml is held to Alibaba's published ROS resource definitions (localcloud/fc/ros_schema.json,
extracted from the pinned ros-cdk-* packages), and the loader refuses what ROS refuses.

Each case below mutates a copy of the real template.yml (or gives a bad parameter) the way a person editing it
might, and names the resource, the property and the words the refusal must carry. The real template itself
passes the same checks with no problem at all.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bakery_tools.local import LOCAL_PARAMETERS
from localcloud.fc.ros_schema import check_properties
from localcloud.fc.template import TemplateError, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yml"
REGION, ACCOUNT = "cn-hangzhou", "1234567890123456"
PARAMETERS = {"RepairZoneId": f"{REGION}-h", **LOCAL_PARAMETERS}
DOCUMENT = yaml.safe_load(TEMPLATE.read_text())

Mutation = Callable[[dict[str, Any]], None]


def _props(resource: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda doc: doc["Resources"][resource]["Properties"]


def _set(resource: str, path: list[Any], value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target = _props(resource)(doc)
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(resource: str, path: list[Any]) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target = _props(resource)(doc)
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _rename(resource: str, old: str, new: str, within: tuple[str, ...] = ()) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        props = _props(resource)(doc)
        for key in within:
            props = props[key]
        props[new] = props.pop(old)

    return mutate


def _add_bus_resource(doc: dict[str, Any]) -> None:
    doc["Resources"]["BakeryBus"] = {"Type": "ALIYUN::EventBridge::EventBus", "Properties": {"EventBusName": "bakery"}}


def _parameter(name: str, **spec: Any) -> Mutation:
    return lambda doc: doc["Parameters"][name].update(spec)


_STATEMENT = ["Policies", 0, "PolicyDocument", "Statement"]

# (id, mutation, extra --parameter values, resource, property, words in the message)
CASES: list[tuple[str, Mutation | None, dict[str, str], str | None, str, str]] = [
    (
        "unknown-type",
        _add_bus_resource,
        {},
        "BakeryBus",
        "Type",
        "'ALIYUN::EventBridge::EventBus' does not exist in ROS",
    ),
    (
        "misspelt-property",
        _rename("BakeFunction", "MemorySize", "MemroySize"),
        {},
        "BakeFunction",
        "MemroySize",
        "did you mean 'MemorySize'",
    ),
    (
        "missing-required",
        _delete("CheckFunction", ["Runtime"]),
        {},
        "CheckFunction",
        "Runtime",
        "required property 'Runtime' is missing",
    ),
    (
        "memory-out-of-range",
        _set("BakeFunction", ["MemorySize"], 64),
        {},
        "BakeFunction",
        "MemorySize",
        "between 128 and 65536",
    ),
    (
        "timeout-out-of-range",
        _set("RepairFunction", ["Timeout"], 90000),
        {},
        "RepairFunction",
        "Timeout",
        "between 1 and 86400",
    ),
    (
        "retries-out-of-range",
        _set("BakeAsyncConfig", ["MaxAsyncRetryAttempts"], 9),
        {},
        "BakeAsyncConfig",
        "MaxAsyncRetryAttempts",
        "between 0 and 8",
    ),
    (
        "not-an-allowed-value",
        _set("LifecycleRule", ["Targets", 0, "ErrorsTolerance"], "SOME"),
        {},
        "LifecycleRule",
        "Targets[0].ErrorsTolerance",
        "ALL",
    ),
    (
        "scalar-where-a-list-is-required",
        _set("FunctionRole", [*_STATEMENT, 0, "Resource"], "*"),
        {},
        "FunctionRole",
        "Policies[0].PolicyDocument.Statement[0].Resource",
        "expected a list",
    ),
    (
        "param-list-entry-without-value",
        _delete("RepairRule", ["Targets", 0, "ParamList", 2, "Value"]),
        {},
        "RepairRule",
        "Targets[0].ParamList[2].Value",
        "required property 'Value' is missing",
    ),
    (
        "target-without-endpoint",
        _delete("LifecycleRule", ["Targets", 0, "Endpoint"]),
        {},
        "LifecycleRule",
        "Targets[0].Endpoint",
        "required property 'Endpoint' is missing",
    ),
    (
        "too-many-targets",
        _set(
            "BakeRequestedRule",
            ["Targets"],
            [
                {**DOCUMENT["Resources"]["BakeRequestedRule"]["Properties"]["Targets"][0], "Id": f"t{i}"}
                for i in range(6)
            ],
        ),
        {},
        "BakeRequestedRule",
        "Targets",
        "between 1 and 5 items",
    ),
    (
        "misspelt-nested-key",
        _rename("BakeAsyncConfig", "OnFailure", "OnFailur", within=("DestinationConfig",)),
        {},
        "BakeAsyncConfig",
        "DestinationConfig.OnFailur",
        "did you mean 'OnFailure'",
    ),
    (
        "map-where-a-scalar-is-required",
        _set("BakeFunction", ["Handler"], {"module": "index"}),
        {},
        "BakeFunction",
        "Handler",
        "expected a string",
    ),
    (
        "string-where-a-map-is-required",
        _set("BakeFunction", ["EnvironmentVariables"], "BAKERY_LOG_LEVEL=INFO"),
        {},
        "BakeFunction",
        "EnvironmentVariables",
        "expected a map",
    ),
    (
        "description-too-long",
        _set("LifecycleFunction", ["Description"], "x" * 257),
        {},
        "LifecycleFunction",
        "Description",
        "256",
    ),
    (
        "getatt-of-a-missing-attribute",
        _set("BakeAsyncConfig", ["FunctionName"], {"Fn::GetAtt": ["BakeFunction", "Arn"]}),
        {},
        "BakeAsyncConfig",
        "FunctionName",
        "has no attribute 'Arn' (it has ARN, FunctionId, FunctionName)",
    ),
    (
        "ref-to-nothing",
        # the environment is one YAML anchor on BakeFunction that the other functions alias
        _set("BakeFunction", ["EnvironmentVariables", "BAKERY_EVENT_BUS"], {"Ref": "NotifyBus"}),
        {},
        "BakeFunction",
        "EnvironmentVariables.BAKERY_EVENT_BUS",
        "Ref 'NotifyBus' names no parameter",
    ),
    (
        "sub-of-nothing",
        _set("FunctionRole", ["RoleName"], {"Fn::Sub": "bakery-${Stage}"}),
        {},
        "FunctionRole",
        "RoleName",
        "Ref 'Stage' names no parameter",
    ),
    (
        "depends-on-nothing",
        lambda doc: doc["Resources"]["RepairRule"].update(DependsOn=["CheckFn"]),
        {},
        "RepairRule",
        "DependsOn",
        "names no resource 'CheckFn'",
    ),
    (
        "default-breaks-its-pattern",
        _parameter("RetentionKeep", Default="0"),
        {},
        None,
        "Parameters.RetentionKeep.Default",
        "breaks its own constraints",
    ),
    (
        "default-not-an-allowed-value",
        _parameter("RetentionAction", Default="archive"),
        {},
        None,
        "Parameters.RetentionAction.Default",
        "not one of AllowedValues",
    ),
    (
        "unknown-parameter-type",
        _parameter("MandatoryTags", Type="Map"),
        {},
        None,
        "Parameters.MandatoryTags.Type",
        "not a ROS parameter type",
    ),
    (
        "unknown-parameter-key",
        _parameter("CodePrefix", Pattern="^bakery/"),
        {},
        None,
        "Parameters.CodePrefix.Pattern",
        "unknown parameter key 'Pattern'",
    ),
    (
        "given-value-breaks-the-pattern",
        None,
        {"RetentionKeep": "three"},
        None,
        "Parameters.RetentionKeep",
        "a whole number >= 1",
    ),
    (
        "given-value-not-allowed",
        None,
        {"RetentionAction": "archive"},
        None,
        "Parameters.RetentionAction",
        "not one of AllowedValues",
    ),
    (
        "given-bus-name-invalid",
        None,
        {"NotificationBus": "bakery bus"},
        None,
        "Parameters.NotificationBus",
        "an EventBridge bus name",
    ),
    (
        "unknown-parameter-given",
        None,
        {"RetentionDays": "7"},
        None,
        "Parameters.RetentionDays",
        "declares no such parameter",
    ),
    # found by a red-team pass: ROS (or the service behind a resource) refuses these too
    (
        "circular-depends-on",
        lambda doc: doc["Resources"]["BakeFunction"].update(DependsOn=["BakeRequestedRule"]),
        {},
        "BakeFunction",
        "DependsOn",
        "circular dependency: BakeFunction -> BakeRequestedRule -> BakeFunction",
    ),
    (
        "circular-through-getatt",
        lambda doc: doc["Resources"]["FunctionRole"].update(DependsOn=["BakeFunction"]),
        {},
        "FunctionRole",
        "DependsOn",
        "circular dependency: FunctionRole -> BakeFunction -> FunctionRole",
    ),
    (
        "rule-status-not-enable-or-disable",
        _set("RepairRule", ["Status"], "ENABLED"),
        {},
        "RepairRule",
        "Status",
        "ENABLE or DISABLE",
    ),
    (
        "duplicate-trigger-name",
        lambda doc: doc["Resources"].update(SecondTagTrigger=copy.deepcopy(doc["Resources"]["BakeOnTagTrigger"])),
        {},
        "SecondTagTrigger",
        "TriggerName",
        "already has a trigger named 'on-instance-tagged'",
    ),
    (
        "pseudo-parameter-not-run-locally",
        _set("BakeFunction", ["Description"], {"Ref": "ALIYUN::NoValue"}),
        {},
        "BakeFunction",
        "Description",
        "valid ROS pseudo parameter but not run",
    ),
    (
        "output-export-not-run-locally",
        lambda doc: doc["Outputs"]["EventBusName"].update(Export={"Name": "bus"}),
        {},
        None,
        "Outputs.EventBusName.Export",
        "valid ROS but not run",
    ),
    (
        "parameter-constraint-not-a-number",
        _parameter("CodePrefix", MinLength="abc"),
        {},
        None,
        "Parameters.CodePrefix.MinLength",
        "MinLength must be a number",
    ),
]


@pytest.mark.parametrize(("mutation", "given", "resource", "prop", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_a_template_ros_would_refuse_is_refused_naming_resource_and_property(
    tmp_path: Path, mutation: Mutation | None, given: dict[str, str], resource: str | None, prop: str, words: str
) -> None:
    # Given a copy of template.yml with one defect (or a parameter value ROS would refuse)
    document = copy.deepcopy(DOCUMENT)
    if mutation is not None:
        mutation(document)
    path = tmp_path / "template.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    # When it is loaded
    with pytest.raises(TemplateError) as caught:
        load_template(path, {**PARAMETERS, **given}, region=REGION, account_id=ACCOUNT)
    # Then the refusal names the resource and the property, and says what is wrong
    error = caught.value
    assert (error.resource, error.property) == (resource, prop), str(error)
    where = f"{resource}.{prop}" if resource else prop
    assert str(error).startswith(f"template.yml: {where}: "), str(error)
    assert words in str(error), str(error)


def test_there_are_at_least_fifteen_refusal_cases_and_each_is_distinct() -> None:
    assert len(CASES) >= 15
    assert len({c[0] for c in CASES}) == len(CASES)


def test_the_real_template_has_no_problem_in_any_resource() -> None:
    # Given every resource of template.yml, resolved as ROS resolves it for a local region
    template = load_template(TEMPLATE, PARAMETERS, region=REGION, account_id=ACCOUNT)
    # Then Alibaba's definitions find nothing wrong with any of them
    for logical_id, resource in template.resources.items():
        assert check_properties(resource["Type"], resource["Properties"]) == [], logical_id


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    # Given a copy with three defects in three resources
    document = copy.deepcopy(DOCUMENT)
    for mutate in (_set("BakeFunction", ["MemorySize"], 64), _delete("CheckFunction", ["Runtime"]),
                   _set("FunctionRole", [*_STATEMENT, 0, "Resource"], "*")):  # fmt: skip
        mutate(document)
    path = tmp_path / "template.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    # When it is loaded / Then one refusal lists all three, so a person fixes them in one go
    with pytest.raises(TemplateError) as caught:
        load_template(path, PARAMETERS, region=REGION, account_id=ACCOUNT)
    assert len(caught.value.problems) == 3
    assert all(name in str(caught.value) for name in ("BakeFunction.MemorySize", "CheckFunction.Runtime",
                                                      "FunctionRole.Policies"))  # fmt: skip


def _typed_parameters(doc: dict[str, Any]) -> None:
    doc["Parameters"].update(Mem={"Type": "Number", "Default": 256}, Env={"Type": "Json", "Default": '{"A": "1"}'},
                             Net={"Type": "Boolean", "Default": "true"},
                             Layers={"Type": "CommaDelimitedList", "Default": "acs:fc:r:1:layers/a/versions/1"})  # fmt: skip
    props = doc["Resources"]["LifecycleFunction"]["Properties"]
    props.update(MemorySize={"Ref": "Mem"}, EnvironmentVariables={"Ref": "Env"}, InternetAccess={"Ref": "Net"},
                 Layers={"Ref": "Layers"})  # fmt: skip
    doc["Resources"]["LifecycleFunction"]["Description"] = "a resource-level Description is valid ROS"
    doc["Outputs"]["EventBusName"]["NoEcho"] = "false"


def test_refs_to_typed_parameters_and_other_valid_ros_are_accepted(tmp_path: Path) -> None:
    # Given a copy that feeds Number, Json, Boolean and CommaDelimitedList parameters to properties of those types,
    # and carries a resource Description and an output NoEcho (all valid ROS)
    document = copy.deepcopy(DOCUMENT)
    _typed_parameters(document)
    path = tmp_path / "template.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    (tmp_path / "functions").symlink_to(ROOT / "functions")
    # When it is loaded / Then nothing is refused, and the values arrive typed
    template = load_template(path, PARAMETERS, region=REGION, account_id=ACCOUNT)
    fn = template.function("LifecycleFunction")
    assert fn.memory_mb == 256
    assert fn.env == {"A": "1"}
    assert template.resources["LifecycleFunction"]["Properties"]["Layers"] == ["acs:fc:r:1:layers/a/versions/1"]
