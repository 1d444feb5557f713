"""Contract: localcloud/fc/ros_schema.json ↔ the ROS CDK packages pinned in pyproject.toml.

- the checked-in schema is exactly what the installed pinned packages give (else `make ros-schema`);
- the versions it records are the pins;
- the facts Bakery's template relies on hold in a fresh extraction (not in the checked-in copy);
- the extractor is strict: a statement it does not know is an error that names it, never a dropped rule.

A pinned package that is missing or at another version fails these tests with how to install it; they never skip.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from localcloud.fc import ros_schema, ros_schema_extract
from localcloud.fc.ros_schema_extract import CdkPackage, ExtractionError

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
CHECKED_IN = ROOT / "localcloud" / "fc" / "ros_schema.json"
PINNED = ("ros-cdk-core", "ros-cdk-fc3", "ros-cdk-eventbridge", "ros-cdk-ram")


@pytest.fixture(scope="module")
def fresh() -> dict[str, Any]:
    """A fresh extraction from the installed pinned packages (fails, with the install command, if they are not)."""
    try:
        return ros_schema_extract.extract(PYPROJECT)
    except ExtractionError as exc:
        pytest.fail(str(exc), pytrace=False)


def _dev_extra_pins() -> dict[str, str]:
    """pyproject.toml's dev extra, read with a TOML parser (not the extractor's own reader)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # python3.10: pip always carries a TOML reader
        from pip._vendor import tomli as tomllib
    dev = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["optional-dependencies"]["dev"]
    pins = {}
    for requirement in dev:
        match = re.fullmatch(r"(ros-cdk-[a-z0-9-]+)==(\S+)", requirement)
        if match:
            pins[match[1]] = match[2]
    return pins


def _prop(resource: dict[str, Any], *path: str) -> dict[str, Any]:
    """Walk ROS property names; "[]" steps into a list's items."""
    node: dict[str, Any] = {"type": "struct", "properties": resource["properties"]}
    for step in path:
        node = node["items"] if step == "[]" else node["properties"][step]
    return node


# -- the checked-in copy -------------------------------------------------------------------------------


def test_the_checked_in_schema_is_exactly_a_fresh_extraction(fresh: dict[str, Any]) -> None:
    # Given the installed pinned ROS CDK packages
    # When the schema is extracted from them again
    # Then the checked-in file is byte for byte what regeneration would write
    assert CHECKED_IN.read_text(encoding="utf-8") == ros_schema_extract.dumps(fresh), (
        f"{CHECKED_IN.name} is out of date: run `make ros-schema`"
    )


def test_the_recorded_versions_are_the_pins_of_the_dev_extra() -> None:
    # Given pyproject.toml's dev extra
    pins = _dev_extra_pins()
    # When the versions the checked-in schema was extracted from are read
    recorded = json.loads(CHECKED_IN.read_text(encoding="utf-8"))["packages"]
    # Then they are exactly the four pins
    assert set(pins) == set(PINNED)
    assert recorded == pins


def test_the_checked_in_schema_loads_and_covers_every_resource_type_it_lists(fresh: dict[str, Any]) -> None:
    # Given the checked-in schema, through the runtime API
    schema = ros_schema.load_schema()
    # When its resource types are listed
    # Then they are the extraction's, sorted, and every one resolves
    assert schema.resource_types == tuple(sorted(fresh["resources"]))
    assert all(schema.resource(name) is not None for name in schema.resource_types)


def test_every_resource_type_of_the_pinned_packages_is_there(fresh: dict[str, Any]) -> None:
    # Given a fresh extraction
    packages = {spec["package"] for spec in fresh["resources"].values()}
    # When the types are grouped by package
    # Then each resource package contributes, data sources included (not only what Bakery uses)
    assert packages == {"ros-cdk-fc3", "ros-cdk-eventbridge", "ros-cdk-ram"}
    assert "ALIYUN::FC3::LayerVersion" in fresh["resources"]
    assert "DATASOURCE::RAM::Role" in fresh["resources"]


# -- what ros-cdk-core publishes --------------------------------------------------------------------------


def test_the_template_vocabulary_comes_from_ros_cdk_core(fresh: dict[str, Any]) -> None:
    # Given a fresh extraction
    template = fresh["template"]
    # When its ros-cdk-core section is read
    # Then it has the pseudo parameters, parameter types and keys and intrinsics templates use
    assert {"ALIYUN::StackName", "ALIYUN::Region", "ALIYUN::TenantId", "ALIYUN::AccountId", "ALIYUN::NoValue"} <= set(
        template["pseudoParameters"]
    )
    assert {"String", "Number", "Json", "Boolean", "CommaDelimitedList"} <= set(template["parameterTypes"])
    assert {"Type", "Default", "AllowedValues", "AllowedPattern", "ConstraintDescription"} <= set(
        template["parameterKeys"]
    )
    assert {"Ref", "Fn::Sub", "Fn::GetAtt", "Fn::Join", "Fn::If", "Fn::Base64Encode"} <= set(
        template["intrinsicFunctions"]
    )
    assert template["formatVersion"] == {"key": "ROSTemplateFormatVersion", "values": ["2015-09-01"]}
    assert all(source.startswith("ros-cdk-core@1.15.0 package/lib/") for source in template["sources"].values())


# -- facts Bakery relies on ----------------------------------------------------------------------------------


def test_eventbridge_defines_no_event_bus_resource(fresh: dict[str, Any]) -> None:
    # Given a fresh extraction
    # When the EventBridge types are listed
    eventbridge = sorted(name for name in fresh["resources"] if name.startswith("ALIYUN::EventBridge::"))
    # Then there is no ALIYUN::EventBridge::EventBus (a bus cannot be created through ROS)
    assert "ALIYUN::EventBridge::EventBus" not in fresh["resources"]
    assert eventbridge == [
        "ALIYUN::EventBridge::ApiDestination",
        "ALIYUN::EventBridge::Connection",
        "ALIYUN::EventBridge::Rule",
    ]


def test_every_rule_target_param_list_entry_requires_value_form_and_resource_key(fresh: dict[str, Any]) -> None:
    # Given the Rule's Targets[].ParamList[] struct
    entry = _prop(fresh["resources"]["ALIYUN::EventBridge::Rule"], "Targets", "[]", "ParamList", "[]")
    # When its required properties are read
    required = sorted(name for name, spec in entry["properties"].items() if spec["required"])
    # Then Value is required too (even for Form ORIGINAL), and Template is the only optional one
    assert required == ["Form", "ResourceKey", "Value"]
    assert sorted(entry["properties"]) == ["Form", "ResourceKey", "Template", "Value"]


def test_a_rule_target_is_keyed_id_and_its_filter_pattern_is_a_map(fresh: dict[str, Any]) -> None:
    # Given the Rule resource
    rule = fresh["resources"]["ALIYUN::EventBridge::Rule"]
    target = _prop(rule, "Targets", "[]")
    # When FilterPattern and a target's keys are read
    # Then FilterPattern is a required map (not a JSON string), and the CDK's `identity` is ROS `Id`
    assert _prop(rule, "FilterPattern") == {"items": {"type": "any"}, "required": True, "type": "map"}
    assert {"Id", "Type", "Endpoint", "ParamList"} == {n for n, s in target["properties"].items() if s["required"]}
    assert _prop(rule, "Targets")["length"] == {"min": 1, "max": 5}


def test_a_ram_role_policy_statement_resource_is_a_list(fresh: dict[str, Any]) -> None:
    # Given the RAM Role's inline policy statements
    role = fresh["resources"]["ALIYUN::RAM::Role"]
    statement = _prop(role, "Policies", "[]", "PolicyDocument", "Statement", "[]")
    assume = _prop(role, "AssumeRolePolicyDocument", "Statement", "[]")
    # When Resource and Action are read
    # Then a policy statement's Resource and Action are lists (a bare "*" is refused), optional;
    # the assume-role statement's Action is a plain string and its Principal.Service a list
    assert statement["properties"]["Resource"] == {"items": {"type": "any"}, "required": False, "type": "list"}
    assert statement["properties"]["Action"]["type"] == "list"
    assert assume["properties"]["Action"] == {"required": False, "type": "string"}
    assert assume["properties"]["Principal"]["properties"]["Service"]["type"] == "list"
    assert role["attributes"] == ["Arn", "RoleId", "RoleName"]


def test_an_fc3_function_exposes_arn_and_function_name(fresh: dict[str, Any]) -> None:
    # Given the FC3 Function resource
    function = fresh["resources"]["ALIYUN::FC3::Function"]
    # When its attributes are read
    # Then Fn::GetAtt may read ARN (upper case, unlike RAM's Arn) and FunctionName
    assert {"ARN", "FunctionName"} <= set(function["attributes"])
    assert function["docUrl"] == "https://www.alibabacloud.com/help/ros/developer-reference/aliyun-fc3-function"


def test_an_async_invoke_config_failure_destination_is_destination_config_on_failure_destination(
    fresh: dict[str, Any],
) -> None:
    # Given the FC3 AsyncInvokeConfig resource
    config = fresh["resources"]["ALIYUN::FC3::AsyncInvokeConfig"]
    # When DestinationConfig is walked with exactly that casing
    destination = _prop(config, "DestinationConfig", "OnFailure", "Destination")
    # Then the failure destination is a required string of at most 512 characters, and retries are 0..8
    assert destination == {"length": {"max": 512}, "required": True, "type": "string"}
    assert _prop(config, "MaxAsyncRetryAttempts")["range"] == {"min": 0, "max": 8}


def test_an_fc3_trigger_config_is_an_opaque_required_map(fresh: dict[str, Any]) -> None:
    # Given the FC3 Trigger resource
    trigger = fresh["resources"]["ALIYUN::FC3::Trigger"]
    # When TriggerConfig is read
    # Then ROS checks nothing inside it: it is a required map of anything
    assert _prop(trigger, "TriggerConfig") == {"items": {"type": "any"}, "required": True, "type": "map"}


# -- strictness ---------------------------------------------------------------------------------------------

_TOY_JS = """\
"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.RosThing = void 0;
const ros = require("@alicloud/ros-cdk-core");
function RosThingPropsValidator(properties) {
    if (!ros.canInspect(properties)) {
        return ros.VALIDATION_SUCCESS;
    }
    const errors = new ros.ValidationResults();
    errors.collect(ros.propertyValidator('thingName', ros.requiredValidator)(properties.thingName));
    STATEMENT
    errors.collect(ros.propertyValidator('thingName', ros.validateString)(properties.thingName));
    return errors.wrap('supplied properties not correct for "RosThingProps"');
}
// @ts-ignore TS6133
function rosThingPropsToRosTemplate(properties, enableResourcePropertyConstraint) {
    if (!ros.canInspect(properties)) {
        return properties;
    }
    if (enableResourcePropertyConstraint) {
        RosThingPropsValidator(properties).assertSuccess();
    }
    return {
        'ThingName': ros.stringToRosTemplate(properties.thingName),
    };
}
class RosThing extends ros.RosResource {
    constructor(scope, id, props, enableResourcePropertyConstraint) {
        super(scope, id, { type: RosThing.ROS_RESOURCE_TYPE_NAME, properties: props });
        this.attrThingId = this.getAtt('ThingId');
        this.enableResourcePropertyConstraint = enableResourcePropertyConstraint;
        this.thingName = props.thingName;
    }
    get rosProperties() {
        return {
            thingName: this.thingName,
        };
    }
    renderProperties(props) {
        return rosThingPropsToRosTemplate(props, this.enableResourcePropertyConstraint);
    }
}
exports.RosThing = RosThing;
RosThing.ROS_RESOURCE_TYPE_NAME = "ALIYUN::TOY::Thing";
"""
_STRING = {"union": {"types": [{"primitive": "string"}, {"fqn": "@alicloud/ros-cdk-core.IResolvable"}]}}
_WHERE = {"filename": "lib/toy.generated.ts", "line": 1}
_TOY_JSII = {
    "version": "1.0.0",
    "types": {
        "@alicloud/ros-cdk-toy.RosThing": {
            "kind": "class",
            "name": "RosThing",
            "locationInModule": _WHERE,
            "docs": {"summary": "Thing. See https://example.invalid/aliyun-toy-thing"},
            "properties": [{"name": "attrThingId", "docs": {"custom": {"Attribute": "ThingId: the id"}}}],
        },
        "@alicloud/ros-cdk-toy.RosThingProps": {
            "kind": "interface",
            "datatype": True,
            "name": "RosThingProps",
            "locationInModule": _WHERE,
            "properties": [{"name": "thingName", "type": _STRING}],
        },
    },
}


def _toy(statement: str = "") -> CdkPackage:
    source = _TOY_JS.replace("    STATEMENT\n", f"    {statement}\n" if statement else "")
    return CdkPackage("ros-cdk-toy", "1.0.0", "toy.jsii.tgz", _TOY_JSII, {"lib/toy.generated.js": source})


def test_the_extractor_reads_a_well_formed_generated_file() -> None:
    # Given a tiny generated file in the CDK's shape, with a length rule
    package = _toy(
        "if (properties.thingName && (Array.isArray(properties.thingName) || (typeof properties.thingName) === 'string')) {"
        " errors.collect(ros.propertyValidator('thingName', ros.validateLength)({ data: properties.thingName.length,"
        " min: 1, max: 64, })); }"
    )
    # When it is extracted
    extracted = ros_schema_extract.extract_generated(package, "lib/toy.generated.js")
    # Then the resource, its ROS-named property with the rule, and its attribute come out
    assert extracted == {
        "ALIYUN::TOY::Thing": {
            "attributes": ["ThingId"],
            "docUrl": "https://example.invalid/aliyun-toy-thing",
            "package": "ros-cdk-toy",
            "properties": {"ThingName": {"length": {"max": 64, "min": 1}, "required": True, "type": "string"}},
        }
    }


def test_the_extractor_refuses_a_validator_statement_it_does_not_know() -> None:
    # Given a generated validator with a statement the extractor has never seen
    statement = "errors.collect(ros.propertyValidator('thingName', ros.validateUpperCase)(properties.thingName));"
    # When it is extracted
    # Then it fails, naming the function and the statement, instead of dropping the rule
    with pytest.raises(ExtractionError, match=r"RosThingPropsValidator.*ros\.validateUpperCase"):
        ros_schema_extract.extract_generated(_toy(statement), "lib/toy.generated.js")


def test_the_extractor_refuses_an_unknown_guarded_rule() -> None:
    # Given a guarded rule of a kind the extractor does not read
    statement = (
        "if (properties.thingName && (typeof properties.thingName) !== 'object') {"
        " errors.collect(ros.propertyValidator('thingName', ros.validateDate)({ data: properties.thingName, })); }"
    )
    # When it is extracted
    # Then the error names the validator
    with pytest.raises(ExtractionError, match=r"ros\.validateDate"):
        ros_schema_extract.extract_generated(_toy(statement), "lib/toy.generated.js")


def test_the_extractor_refuses_an_unknown_top_level_statement() -> None:
    # Given a generated file with a top-level statement of a new shape
    package = _toy()
    source = package.sources["lib/toy.generated.js"] + "ros.registerSomething(RosThing);\n"
    # When it is extracted
    # Then the error names the line
    with pytest.raises(ExtractionError, match=r"toy\.generated\.js:\d+.*registerSomething"):
        ros_schema_extract.extract_generated(
            CdkPackage(
                package.name, package.version, package.tarball, package.assembly, {"lib/toy.generated.js": source}
            ),
            "lib/toy.generated.js",
        )


def test_the_extractor_refuses_a_validator_that_disagrees_with_the_jsii_types() -> None:
    # Given a validator that checks a number where jsii declares a string
    source = _TOY_JS.replace("    STATEMENT\n", "").replace("ros.validateString)", "ros.validateNumber)")
    package = CdkPackage("ros-cdk-toy", "1.0.0", "toy.jsii.tgz", _TOY_JSII, {"lib/toy.generated.js": source})
    # When it is extracted
    # Then the disagreement is an error, not a guess
    with pytest.raises(ExtractionError, match=r"types differ"):
        ros_schema_extract.extract_generated(package, "lib/toy.generated.js")


def test_a_pinned_package_that_is_not_installed_fails_with_how_to_install_it() -> None:
    # Given a pin nobody installed
    # When its package is loaded
    # Then the error says which pin and how to install it
    with pytest.raises(ExtractionError, match=r"ros-cdk-not-a-package==1\.0\.0 .*not installed.*pip install -e"):
        ros_schema_extract.load_package("ros-cdk-not-a-package", "1.0.0")


def test_a_pinned_package_at_another_version_fails_with_how_to_install_it() -> None:
    # Given a pin that differs from the installed ros-cdk-core
    # When its package is loaded
    # Then the error names both versions and the install command
    with pytest.raises(ExtractionError, match=r"ros-cdk-core==0\.0\.1 .*1\.15\.0 is installed.*pip install -e"):
        ros_schema_extract.load_package("ros-cdk-core", "0.0.1")
