"""check_properties against the checked-in ROS schema: each kind of problem, with its path and an actionable
message; valid input passes; unresolved intrinsics are left alone. Semantics: ros-cdk-core lib/runtime.js."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from localcloud.fc.ros_schema import Problem, check_properties, is_intrinsic, load_schema

FUNCTION = "ALIYUN::FC3::Function"
RULE = "ALIYUN::EventBridge::Rule"
ROLE = "ALIYUN::RAM::Role"
ASYNC = "ALIYUN::FC3::AsyncInvokeConfig"


def _function(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "FunctionName": "bakery-bake",
        "Runtime": "python3.10",
        "Handler": "index.handler",
        "Code": {"OssBucketName": "bucket", "OssObjectName": "bake.zip"},
        "MemorySize": 128,
        "Timeout": 120,
        "EnvironmentVariables": {"BAKERY_LOG_LEVEL": "INFO"},
    }
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not ...}


def _rule(param_list: list[Any] | None = None, **overrides: Any) -> dict[str, Any]:
    target = {
        "Id": "bake",
        "Type": "acs.fc.function",
        "Endpoint": "acs:fc:cn-hangzhou:123:functions/bakery-bake",
        "ParamList": param_list
        if param_list is not None
        else [
            {"ResourceKey": "functionName", "Form": "CONSTANT", "Value": "bakery-bake"},
            {"ResourceKey": "Body", "Form": "ORIGINAL", "Value": ""},
        ],
    }
    props: dict[str, Any] = {
        "EventBusName": "bakery",
        "RuleName": "bakery-bake-requested",
        "FilterPattern": {"source": ["bakery"]},
        "Targets": [target],
    }
    props.update(overrides)
    return props


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# -- valid input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "props"),
    [
        (FUNCTION, _function()),
        (RULE, _rule()),
        (
            ASYNC,
            {
                "FunctionName": "f",
                "MaxAsyncRetryAttempts": 0,
                "DestinationConfig": {"OnFailure": {"Destination": "acs:x"}},
            },
        ),
    ],
)
def test_valid_properties_have_no_problems(kind: str, props: dict[str, Any]) -> None:
    # Given properties that follow the ROS definition
    # When they are checked
    # Then there is nothing to report
    assert check_properties(kind, props) == []


# -- unknown properties --------------------------------------------------------------------------------------


def test_an_unknown_top_level_property_suggests_the_closest_name() -> None:
    # Given a misspelt property
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(MemorySzie=256)))
    # Then its path names it and the message suggests the real name
    assert problem.path == "Properties.MemorySzie"
    assert "unknown property 'MemorySzie' of ALIYUN::FC3::Function" in problem.message
    assert "did you mean 'MemorySize'?" in problem.message


def test_an_unknown_nested_property_suggests_and_lists_the_valid_ones() -> None:
    # Given a misspelt key deep in a rule target's ParamList
    params = [{"ResourceKey": "Body", "Form": "ORIGINAL", "Value": "", "Vaule": "x"}]
    # When it is checked
    problem = _only(check_properties(RULE, _rule(params)))
    # Then the path goes through the list indices and the short list of valid keys is given
    assert problem.path == "Properties.Targets[0].ParamList[0].Vaule"
    assert "did you mean 'Value'?" in problem.message
    assert "Valid: Form, ResourceKey, Template, Value." in problem.message


def test_an_unknown_property_in_a_struct_is_found_at_every_level() -> None:
    # Given a wrong casing inside AsyncInvokeConfig's DestinationConfig
    props = {"FunctionName": "f", "DestinationConfig": {"onFailure": {"Destination": "acs:x"}}}
    # When it is checked
    problem = _only(check_properties(ASYNC, props))
    # Then the case-insensitive match is suggested
    assert problem.path == "Properties.DestinationConfig.onFailure"
    assert "did you mean 'OnFailure'?" in problem.message


# -- missing required properties -------------------------------------------------------------------------------


def test_a_missing_top_level_required_property_is_named() -> None:
    # Given a function without a Handler
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(Handler=...)))
    # Then the missing property is the path
    assert problem == Problem(
        "Properties.Handler",
        "required property 'Handler' is missing from ALIYUN::FC3::Function "
        "(required here: FunctionName, Handler, Runtime)",
    )


def test_a_missing_nested_required_property_is_named_with_its_siblings() -> None:
    # Given a ParamList entry without Value (Form ORIGINAL still needs one)
    params = [
        {"ResourceKey": "functionName", "Form": "CONSTANT", "Value": "bakery-bake"},
        {"ResourceKey": "Qualifier", "Form": "CONSTANT", "Value": "LATEST"},
        {"ResourceKey": "Body", "Form": "ORIGINAL"},
    ]
    # When it is checked
    problem = _only(check_properties(RULE, _rule(params)))
    # Then the path is the entry's missing key and the message lists what each entry needs
    assert problem.path == "Properties.Targets[0].ParamList[2].Value"
    assert problem.message == "required property 'Value' is missing (required here: Form, ResourceKey, Value)"


def test_a_null_required_property_counts_as_missing() -> None:
    # Given a required property set to null (requiredValidator: x == null)
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(Runtime=None)))
    # Then it is reported as missing
    assert problem.path == "Properties.Runtime"
    assert "is missing" in problem.message


def test_absent_properties_report_every_required_one() -> None:
    # Given a resource with no Properties at all
    # When it is checked
    problems = check_properties(RULE, None)  # type: ignore[arg-type]
    # Then each required property is missing
    assert [p.path for p in problems] == [
        "Properties.EventBusName",
        "Properties.FilterPattern",
        "Properties.RuleName",
        "Properties.Targets",
    ]


# -- type mismatches ---------------------------------------------------------------------------------------------


def test_a_scalar_where_a_list_is_required_suggests_a_one_item_list() -> None:
    # Given a RAM policy statement whose Resource is a bare string
    statement = {"Effect": "Allow", "Action": ["ecs:DescribeImages"], "Resource": "*"}
    props = {
        "RoleName": "r",
        "AssumeRolePolicyDocument": {"Version": "1", "Statement": [{"Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Version": "1", "Statement": [statement]}}],
    }
    # When it is checked
    problem = _only(check_properties(ROLE, props))
    # Then the path reaches the statement and the message says how to write it
    assert problem == Problem(
        "Properties.Policies[0].PolicyDocument.Statement[0].Resource",
        'expected a list, got a string "*"; write it as a one-item list: ["*"]',
    )


def test_a_list_where_a_string_is_required_is_reported() -> None:
    # Given a FunctionName given as a list
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(FunctionName=["bakery-bake"])))
    # Then the expected type is named
    assert problem == Problem("Properties.FunctionName", 'expected a string, got a list ["bakery-bake"]')


def test_a_scalar_where_a_map_is_required_is_reported() -> None:
    # Given EnvironmentVariables as a string, and a FilterPattern as a JSON string
    # When they are checked
    env = _only(check_properties(FUNCTION, _function(EnvironmentVariables="A=1")))
    pattern = _only(check_properties(RULE, _rule(FilterPattern='{"source": ["bakery"]}')))
    # Then both are "expected a map", the JSON string with a hint
    assert env.path == "Properties.EnvironmentVariables"
    assert env.message == 'expected a map, got a string "A=1"'
    assert pattern.message.endswith("; write the object itself, not a JSON string")


def test_a_map_where_a_struct_list_is_required_is_reported() -> None:
    # Given Targets as one target object rather than a list of them
    props = _rule()
    props["Targets"] = props["Targets"][0]
    # When it is checked
    problem = _only(check_properties(RULE, props))
    # Then it is a list that was expected (no one-item hint for a map)
    assert problem.path == "Properties.Targets"
    assert problem.message.startswith("expected a list, got a map {")


def test_a_numeric_string_is_not_a_number() -> None:
    # Given MemorySize quoted (validateNumber: typeof x === "number")
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(MemorySize="512")))
    # Then it is refused with how to write it
    assert problem == Problem("Properties.MemorySize", 'expected a number, got a string "512"; write it unquoted: 512')


def test_a_boolean_is_not_a_number() -> None:
    # Given a boolean where a number is declared
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(Timeout=True)))
    # Then it is a boolean, not a number
    assert problem == Problem("Properties.Timeout", "expected a number, got a boolean true")


def test_a_boolean_string_is_not_a_boolean() -> None:
    # Given InternetAccess as the string "true" (validateBoolean: typeof x === "boolean")
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(InternetAccess="true")))
    # Then it is refused with how to write it
    assert problem.path == "Properties.InternetAccess"
    assert problem.message == 'expected a boolean (true or false), got a string "true"; write it unquoted: true'


def test_a_number_where_a_string_is_required_says_to_quote_it() -> None:
    # Given a ParamList Value written as a number
    params = [{"ResourceKey": "Qualifier", "Form": "CONSTANT", "Value": 5}]
    # When it is checked
    problem = _only(check_properties(RULE, _rule(params)))
    # Then the message says to quote it
    assert problem == Problem(
        "Properties.Targets[0].ParamList[0].Value", "expected a string, got a number 5; quote it: '5'"
    )


# -- allowed values, ranges, lengths, patterns ----------------------------------------------------------------------


def test_a_value_outside_the_allowed_values_lists_them() -> None:
    # Given an isolation mode the CDK does not allow
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(InstanceIsolationMode="SHARED")))
    # Then the allowed values are named
    assert problem == Problem(
        "Properties.InstanceIsolationMode",
        '"SHARED" is not an allowed value; allowed: "SHARE", "SESSION_EXCLUSIVE", "REQUEST_EXCLUSIVE"',
    )


def test_a_number_out_of_range_names_the_range() -> None:
    # Given a MemorySize below FC3's minimum
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(MemorySize=64)))
    # Then the range is named
    assert problem == Problem("Properties.MemorySize", "64 is out of range: must be between 128 and 65536")


def test_a_negative_value_below_a_zero_minimum_is_out_of_range() -> None:
    # Given -1 retries (the CDK's `if (prop.min && ...)` would let it through; the declared range is 0..8)
    props = {"FunctionName": "f", "MaxAsyncRetryAttempts": -1}
    # When it is checked
    problem = _only(check_properties(ASYNC, props))
    # Then the declared bound is enforced
    assert problem == Problem("Properties.MaxAsyncRetryAttempts", "-1 is out of range: must be between 0 and 8")


def test_a_list_too_short_names_the_length() -> None:
    # Given a rule with no targets
    # When it is checked
    problem = _only(check_properties(RULE, _rule(Targets=[])))
    # Then the allowed number of items is named
    assert problem == Problem("Properties.Targets", "has 0 items, must have between 1 and 5 items")


def test_a_string_too_long_names_the_length() -> None:
    # Given a description longer than 256 characters
    # When it is checked
    problem = _only(check_properties(FUNCTION, _function(Description="x" * 257)))
    # Then the maximum is named
    assert problem == Problem("Properties.Description", "has 257 characters, must have at most 256 characters")


def test_a_string_that_does_not_match_the_pattern_names_it() -> None:
    # Given a RAM application name with characters its pattern refuses
    props = {"AppName": "bad name!", "DisplayName": "d", "AppType": "WebApp"}
    # When it is checked
    problem = _only(check_properties("ALIYUN::RAM::Application", props))
    # Then the pattern is named
    assert problem == Problem("Properties.AppName", '"bad name!" does not match the pattern ^[-_.a-zA-Z0-9]{1,64}$')


# -- intrinsics --------------------------------------------------------------------------------------------------------


def test_unresolved_intrinsics_are_not_checked_at_any_level() -> None:
    # Given intrinsics where a number, a list, a string and a whole struct are declared
    params = [{"ResourceKey": "functionName", "Form": "CONSTANT", "Value": {"Fn::Sub": "${Name}"}}]
    rule = _rule(params, EventBusName={"Ref": "NotificationBus"})
    function = _function(
        MemorySize={"Ref": "Memory"}, Layers={"Fn::Split": [",", "a,b"]}, Code={"Fn::If": ["c", {}, {}]}
    )
    # When they are checked
    # Then nothing is reported
    assert check_properties(RULE, rule) == []
    assert check_properties(FUNCTION, function) == []
    assert check_properties(FUNCTION, {"Fn::If": ["c", {}, {}]}) == []  # the whole Properties map


def test_a_dict_with_ref_and_another_key_is_not_an_intrinsic() -> None:
    # Given a two-key dict that happens to contain Ref (isRosIntrinsic needs exactly one key)
    value = {"Ref": "Memory", "Other": 1}
    # When it is classified and checked
    problem = _only(check_properties(FUNCTION, _function(MemorySize=value)))
    # Then it is not an intrinsic, and it is not a number
    assert not is_intrinsic(value)
    assert is_intrinsic({"Fn::GetAtt": ["A", "B"]}) and is_intrinsic({"Ref": "X"})
    assert problem.path == "Properties.MemorySize"
    assert problem.message.startswith("expected a number, got a map")


# -- resource types and the API --------------------------------------------------------------------------------------------


def test_an_unknown_resource_type_names_what_its_namespace_defines() -> None:
    # Given a resource type no pinned package defines
    # When its properties are checked
    problem = _only(check_properties("ALIYUN::EventBridge::EventBus", {"EventBusName": "bakery"}))
    # Then the problem is the Type, listing the types EventBridge does define
    assert problem.path == "Type"
    assert "unknown resource type 'ALIYUN::EventBridge::EventBus'" in problem.message
    assert problem.message.endswith("ALIYUN::EventBridge defines only: ApiDestination, Connection, Rule")


def test_the_schema_api_exposes_types_attributes_and_template_vocabulary() -> None:
    # Given the loaded schema
    schema = load_schema()
    # When it is queried
    function = schema.resource(FUNCTION)
    # Then types are sorted, unknown ones are None, attributes are a frozenset, and the vocabulary is there
    assert function is not None and schema.resource("ALIYUN::Nope::Nothing") is None
    assert list(schema.resource_types) == sorted(schema.resource_types)
    assert isinstance(function.attributes, frozenset) and {"ARN", "FunctionName"} <= function.attributes
    assert function.required_properties == ("FunctionName", "Handler", "Runtime")
    assert function.properties["Code"].properties["OssBucketName"].type == "string"
    assert "ALIYUN::StackName" in schema.pseudo_parameters and "ALIYUN::NoValue" in schema.pseudo_parameters
    assert "Fn::Sub" in schema.intrinsic_functions and "String" in schema.parameter_types
    assert "AllowedPattern" in schema.parameter_keys
    assert load_schema() is schema


def test_a_problem_is_an_immutable_value() -> None:
    # Given a problem
    problem = Problem("Properties.X", "m")
    # When it is changed
    # Then that is refused, and equal problems compare equal
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.path = "Y"  # type: ignore[misc]
    assert problem == Problem("Properties.X", "m")
