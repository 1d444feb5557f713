"""ROS (2019-09-10) through the real SDK, over both transports: validation with the FC loader, stacks that
progress resource by resource on the virtual clock, code fetched from OSS, rollback, update, delete.

The FC service is replaced by a recording fake: these tests are about what ROS does and what it asks FC
to run, not about running the functions (the FC service's own tests do that).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
from alibabacloud_eventbridge20200401 import models as eb_models
from alibabacloud_ros20190910 import models as ros_models
from alibabacloud_tea_openapi.exceptions import ClientException

from localcloud.testing import CloudEnv

BUCKET = "bakery-code"
SCENARIO: dict[str, Any] = {"seed": 11, "account_id": "1112223334445556", "region": "cn-hangzhou", "buckets": [BUCKET]}

ROLE = """
  Role:
    Type: ALIYUN::RAM::Role
    Properties:
      RoleName:
        Fn::Sub: fc-${ALIYUN::StackName}
      AssumeRolePolicyDocument:
        Version: '1'
        Statement:
          - {Action: 'sts:AssumeRole', Effect: Allow, Principal: {Service: [fc.aliyuncs.com]}}
"""
FUNCTION = """
  Fn:
    Type: ALIYUN::FC3::Function
    Properties:
      FunctionName:
        Fn::Sub: ${ALIYUN::StackName}-fn
      Runtime: python3.10
      Handler: index.handler
      Role:
        Fn::GetAtt: [Role, Arn]
      Code:
        OssBucketName:
          Ref: CodeBucket
        OssObjectName:
          Fn::Sub: ${CodePrefix}/fn.zip
"""
RULE = """
  Rule:
    Type: ALIYUN::EventBridge::Rule
    DependsOn: [Fn]
    Properties:
      EventBusName: bakery
      RuleName:
        Fn::Sub: ${ALIYUN::StackName}-rule
      FilterPattern: {source: [bakery]}
      Targets:
        - Id: fn
          Type: acs.fc.function
          Endpoint:
            Fn::Sub: acs:fc:${ALIYUN::Region}:${ALIYUN::AccountId}:functions/${ALIYUN::StackName}-fn
          ParamList:
            - {ResourceKey: functionName, Form: CONSTANT, Value: {'Fn::Sub': '${ALIYUN::StackName}-fn'}}
            - {ResourceKey: Body, Form: ORIGINAL, Value: '{}'}
"""
HEADER = """ROSTemplateFormatVersion: '2015-09-01'
Description: A role and a function whose code is in OSS.
Parameters:
  CodeBucket:
    Type: String
  CodePrefix:
    Type: String
    Default: v1
Resources:
"""
OUTPUTS = """Outputs:
  RoleArn:
    Description: What the function runs as.
    Value:
      Fn::GetAtt: [Role, Arn]
  FunctionName:
    Value:
      Ref: Fn
"""
TEMPLATE = HEADER + ROLE + FUNCTION + OUTPUTS
ROLE_ONLY = HEADER + ROLE


class RecordingFc:
    """Stands in for `cloud.services["fc"]`: records what ROS asks it to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def deploy(self, stack_name: str, template: Any) -> None:
        code = {fn.name: (fn.code_dir / "index.py").read_text() for fn in template.functions.values()}
        self.calls.append(("deploy", stack_name, code))

    def undeploy(self, stack_name: str) -> None:
        self.calls.append(("undeploy", stack_name, None))


@pytest.fixture
def env(make_env: Callable[..., CloudEnv]) -> CloudEnv:
    return make_env(SCENARIO)


@pytest.fixture
def fc(env: CloudEnv) -> RecordingFc:
    fake = RecordingFc()
    env.cloud.services["fc"] = fake
    return fake


def code_zip(version: str, extra: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", f"VERSION = {version!r}\n\ndef handler(event, context):\n    return VERSION\n")
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return buffer.getvalue()


def upload(env: CloudEnv, key: str, body: bytes) -> None:
    env.oss.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=body))


def params(model: Any, **values: str) -> list[Any]:
    return [model(parameter_key=k, parameter_value=v) for k, v in values.items()]


def create(env: CloudEnv, name: str = "app", template: str = TEMPLATE, **kw: Any) -> str:
    values = kw.pop("parameters", {"CodeBucket": BUCKET})
    request = ros_models.CreateStackRequest(
        region_id=env.region,
        stack_name=name,
        template_body=template,
        parameters=params(ros_models.CreateStackRequestParameters, **values),
        **kw,
    )
    return env.ros.create_stack(request).body.stack_id


def update(env: CloudEnv, stack_id: str, template: str = TEMPLATE, **kw: Any) -> Any:
    values = kw.pop("parameters", {})
    request = ros_models.UpdateStackRequest(
        region_id=env.region,
        stack_id=stack_id,
        template_body=template,
        parameters=params(ros_models.UpdateStackRequestParameters, **values),
        **kw,
    )
    return env.ros.update_stack(request).body


def stack(env: CloudEnv, stack_id: str) -> Any:
    return env.ros.get_stack(ros_models.GetStackRequest(region_id=env.region, stack_id=stack_id)).body


def events(env: CloudEnv, stack_id: str) -> list[tuple[str, str, str]]:
    """(LogicalResourceId, Status, StatusReason) of every event, oldest first."""
    found, page = [], 1
    while True:
        body = env.ros.list_stack_events(
            ros_models.ListStackEventsRequest(region_id=env.region, stack_id=stack_id, page_size=50, page_number=page)
        ).body
        found.extend(body.events)
        if page * 50 >= body.total_count:
            return [(e.logical_resource_id, e.status, e.status_reason) for e in reversed(found)]
        page += 1


def resources(env: CloudEnv, stack_id: str) -> dict[str, str]:
    body = env.ros.list_stack_resources(ros_models.ListStackResourcesRequest(region_id=env.region, stack_id=stack_id))
    return {r.logical_resource_id: r.status for r in body.body.resources}


def raised(call: Callable[[], Any]) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


# -- ValidateTemplate --------------------------------------------------------------------------------


def test_validate_template_describes_parameters_outputs_and_resources(env: CloudEnv) -> None:
    # Given a template with a required and a defaulted parameter
    # When it is validated
    body = env.ros.validate_template(
        ros_models.ValidateTemplateRequest(region_id=env.region, template_body=TEMPLATE)
    ).body
    # Then ROS describes what it declares
    assert body.description == "A role and a function whose code is in OSS."
    declared = {p["ParameterKey"]: p for p in body.parameters}
    assert declared["CodeBucket"]["Type"] == "String" and "DefaultValue" not in declared["CodeBucket"]
    assert declared["CodePrefix"]["DefaultValue"] == "v1"
    assert [(o.output_key, o.description) for o in body.outputs] == [
        ("RoleArn", "What the function runs as."),
        ("FunctionName", "No description given"),
    ]
    assert body.resource_types.resources == ["ALIYUN::FC3::Function", "ALIYUN::RAM::Role"]
    assert [(r.logical_resource_id_pattern, r.resource_type) for r in body.resources] == [
        ("Role", "ALIYUN::RAM::Role"),
        ("Fn", "ALIYUN::FC3::Function"),
    ]


@pytest.mark.parametrize(
    ("change", "code", "named"),
    [
        (("Runtime: python3.10", "Runtime: python2.7"), "StackValidationFailed", "Fn.Runtime"),
        (("Handler: index.handler", "Handler: index.handler\n      MemorySize: 1"), "StackValidationFailed", "Fn.MemorySize"),
        (("Ref: CodeBucket", "Ref: NoSuchParameter"), "InvalidTemplate", 'Resource [Fn]: The specified reference "NoSuchParameter" (in Code)'),
        (("Type: ALIYUN::FC3::Function", "Type: ALIYUN::FC3::Funktion"), "InvalidTemplate", "Fn.Type"),
    ],
)  # fmt: skip
def test_validate_template_refuses_an_invalid_template_naming_resource_and_property(
    env: CloudEnv, change: tuple[str, str], code: str, named: str
) -> None:
    # Given a template with one mistake
    broken = TEMPLATE.replace(*change)
    # When it is validated
    error = raised(
        lambda: env.ros.validate_template(
            ros_models.ValidateTemplateRequest(region_id=env.region, template_body=broken)
        )
    )
    # Then ROS refuses it with 400, the code for that kind of mistake, and the resource and property named
    assert (error.status_code, error.code) == (400, code)
    assert named in error.message


def test_validate_template_needs_a_template_and_parses_it(env: CloudEnv) -> None:
    # Given no template, and then text that is not a template
    # When they are validated
    missing = raised(lambda: env.ros.validate_template(ros_models.ValidateTemplateRequest(region_id=env.region)))
    garbage = raised(
        lambda: env.ros.validate_template(ros_models.ValidateTemplateRequest(template_body="Resources: [unclosed"))
    )
    # Then the first is a MissingParameter naming the choices, the second an InvalidTemplate
    assert missing.code == "MissingParameter" and "TemplateBody, TemplateURL" in missing.message
    assert garbage.code == "InvalidTemplate"


# -- CreateStack -------------------------------------------------------------------------------------


def test_create_stack_progresses_on_the_clock_to_create_complete_with_outputs(env: CloudEnv, fc: RecordingFc) -> None:
    # Given the function's code in OSS
    upload(env, "v1/fn.zip", code_zip("v1"))
    # When the stack is created
    stack_id = create(env)
    # Then it answers at once, in progress, with every resource waiting
    assert stack(env, stack_id).status == "CREATE_IN_PROGRESS"
    assert resources(env, stack_id) == {"Role": "INIT_COMPLETE", "Fn": "INIT_COMPLETE"}
    # And after a few simulated seconds the role exists while the function is being created
    env.cloud.advance(5)
    assert resources(env, stack_id) == {"Role": "CREATE_COMPLETE", "Fn": "CREATE_IN_PROGRESS"}
    # And once the clock has run out the stack is complete, resources created in dependency order
    env.cloud.run_until_idle()
    body = stack(env, stack_id)
    assert (body.status, body.status_reason) == ("CREATE_COMPLETE", "Stack CREATE completed successfully")
    assert events(env, stack_id) == [
        ("app", "CREATE_IN_PROGRESS", "Stack CREATE started"),
        ("Role", "CREATE_IN_PROGRESS", "state changed"),
        ("Role", "CREATE_COMPLETE", "state changed"),
        ("Fn", "CREATE_IN_PROGRESS", "state changed"),
        ("Fn", "CREATE_COMPLETE", "state changed"),
        ("app", "CREATE_COMPLETE", "Stack CREATE completed successfully"),
    ]
    # And the outputs are resolved, the parameters listed with ROS's pseudo parameters
    assert body.outputs == [
        {"OutputKey": "RoleArn", "OutputValue": "acs:ram::1112223334445556:role/fc-app",
         "Description": "What the function runs as."},
        {"OutputKey": "FunctionName", "OutputValue": "app-fn", "Description": "No description given"},
    ]  # fmt: skip
    values = {p.parameter_key: p.parameter_value for p in body.parameters}
    assert values == {
        "CodeBucket": BUCKET,
        "CodePrefix": "v1",
        "ALIYUN::StackName": "app",
        "ALIYUN::StackId": stack_id,
        "ALIYUN::Region": "cn-hangzhou",
        "ALIYUN::AccountId": "1112223334445556",
        "ALIYUN::TenantId": "1112223334445556",
    }
    assert (body.disable_rollback, body.timeout_in_minutes, body.create_time) == (False, 60, "2026-01-05T09:00:00")
    # And the FC service was asked to run the function with the code unpacked from OSS
    assert fc.calls == [("deploy", "app", {"app-fn": code_zip_source("v1")})]
    physical = env.ros.list_stack_resources(
        ros_models.ListStackResourcesRequest(region_id=env.region, stack_id=stack_id)
    )
    assert {r.logical_resource_id: r.physical_resource_id for r in physical.body.resources} == {"Role": "fc-app",
                                                                                                 "Fn": "app-fn"}  # fmt: skip


def code_zip_source(version: str) -> str:
    return f"VERSION = {version!r}\n\ndef handler(event, context):\n    return VERSION\n"


def test_create_stack_is_an_actiontrail_write_call(env: CloudEnv, fc: RecordingFc) -> None:
    # Given a stack with only a role
    # When it is created
    stack_id = create(env, template=ROLE_ONLY)
    # Then ActionTrail publishes the call on the default bus
    calls = [e.event for e in env.cloud.events.read() if e.event["type"] == "ros:ActionTrail:ApiCall"]
    assert [c["data"]["eventName"] for c in calls] == ["CreateStack"]
    assert calls[0]["data"]["requestParameters"]["StackName"] == "app"
    assert stack_id


def test_missing_code_object_fails_the_function_and_rolls_back(env: CloudEnv, fc: RecordingFc) -> None:
    # Given no code uploaded under the prefix
    # When the stack is created and the clock runs
    stack_id = create(env)
    env.cloud.run_until_idle()
    # Then the function failed quoting OSS's error, the role was deleted again, nothing was deployed
    body = stack(env, stack_id)
    assert body.status == "CREATE_ROLLBACK_COMPLETE"
    assert body.status_reason.startswith("Resource CREATE failed: ClientException: resources.Fn: code: 404, NoSuchKey:")
    assert f"bucket: {BUCKET}, object: v1/fn.zip" in body.status_reason
    history = [(lid, status) for lid, status, _ in events(env, stack_id)]
    assert history == [
        ("app", "CREATE_IN_PROGRESS"),
        ("Role", "CREATE_IN_PROGRESS"),
        ("Role", "CREATE_COMPLETE"),
        ("Fn", "CREATE_IN_PROGRESS"),
        ("Fn", "CREATE_FAILED"),
        ("app", "CREATE_FAILED"),
        ("app", "CREATE_ROLLBACK_IN_PROGRESS"),
        ("Fn", "DELETE_IN_PROGRESS"),
        ("Fn", "DELETE_COMPLETE"),
        ("Role", "DELETE_IN_PROGRESS"),
        ("Role", "DELETE_COMPLETE"),
        ("app", "CREATE_ROLLBACK_COMPLETE"),
    ]
    assert resources(env, stack_id) == {}
    assert fc.calls == []
    # And the role name is free again: the same stack name can be created once deleted
    env.ros.delete_stack(ros_models.DeleteStackRequest(region_id=env.region, stack_id=stack_id))
    env.cloud.run_until_idle()
    upload(env, "v1/fn.zip", code_zip("v1"))
    again = create(env)
    env.cloud.run_until_idle()
    assert stack(env, again).status == "CREATE_COMPLETE"


def test_disable_rollback_keeps_what_was_created(env: CloudEnv, fc: RecordingFc) -> None:
    # Given no code in OSS
    # When the stack is created with rollback disabled
    stack_id = create(env, disable_rollback=True)
    env.cloud.run_until_idle()
    # Then the stack stays CREATE_FAILED with the role still there
    body = stack(env, stack_id)
    assert (body.status, body.disable_rollback) == ("CREATE_FAILED", True)
    assert "resources.Fn" in body.status_reason
    assert resources(env, stack_id) == {"Role": "CREATE_COMPLETE", "Fn": "CREATE_FAILED"}


def test_a_code_package_that_is_not_a_zip_or_escapes_its_directory_fails(env: CloudEnv, fc: RecordingFc) -> None:
    # Given a text file and a zip with a `..` entry where the code should be
    upload(env, "v1/fn.zip", b"not a zip")
    upload(env, "slip/fn.zip", code_zip("v1", {"../../escaped.py": "boom"}))
    # When a stack is created from each
    plain = create(env, "plain", disable_rollback=True)
    slip = create(env, "slip", parameters={"CodeBucket": BUCKET, "CodePrefix": "slip"}, disable_rollback=True)
    env.cloud.run_until_idle()
    # Then both functions fail, and nothing was written outside the service's work directory
    assert "the object is not a zip file" in stack(env, plain).status_reason
    assert "would be written outside the code directory" in stack(env, slip).status_reason
    work = env.cloud.ros._work
    assert work is not None and not (work.parent / "escaped.py").exists()
    assert not list(work.rglob("escaped.py"))


def test_a_rule_on_a_bus_that_does_not_exist_fails_quoting_eventbridge(env: CloudEnv, fc: RecordingFc) -> None:
    # Given the code in OSS but no `bakery` bus (ROS creates no buses: the deploy step does)
    upload(env, "v1/fn.zip", code_zip("v1"))
    template = TEMPLATE.replace("Outputs:", RULE.lstrip("\n") + "Outputs:")
    # When the stack is created
    stack_id = create(env, template=template)
    env.cloud.run_until_idle()
    # Then the rule fails with EventBridge's error and the stack rolls back
    body = stack(env, stack_id)
    assert body.status == "CREATE_ROLLBACK_COMPLETE"
    assert "resources.Rule: code: 404, EventBusNotExist: The event bus 'bakery' does not exist." in body.status_reason
    # And once the bus exists, the same template creates
    env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name="bakery"))
    second = create(env, "app2", template=template)
    env.cloud.run_until_idle()
    assert stack(env, second).status == "CREATE_COMPLETE"
    assert resources(env, second) == {"Role": "CREATE_COMPLETE", "Fn": "CREATE_COMPLETE", "Rule": "CREATE_COMPLETE"}


def test_create_refuses_a_duplicate_name_and_honours_the_client_token(env: CloudEnv, fc: RecordingFc) -> None:
    # Given a stack created with a ClientToken
    first = create(env, template=ROLE_ONLY, client_token="deploy-1")
    # When the same request is sent again, then another stack with the same name, then the token with other params
    repeat = create(env, template=ROLE_ONLY, client_token="deploy-1")
    duplicate = raised(lambda: create(env, template=ROLE_ONLY))
    changed = raised(lambda: create(env, "other", template=ROLE_ONLY, client_token="deploy-1"))
    # Then the repeat is the same stack, the duplicate a 409 StackExists, the changed token refused
    assert repeat == first
    assert (duplicate.status_code, duplicate.code, duplicate.message.split(". request")[0]) == (
        409, "StackExists", "code: 409, The Stack (app) already exists"
    )  # fmt: skip
    assert changed.code == "InvalidIdempotenceParameter"


def test_create_refuses_bad_names_and_parameters(env: CloudEnv, fc: RecordingFc) -> None:
    # Given a valid template
    # When the name is invalid, a parameter unknown, a required one missing
    bad_name = raised(lambda: create(env, "9lives", template=ROLE_ONLY))
    unknown = raised(lambda: create(env, template=ROLE_ONLY, parameters={"CodeBucket": BUCKET, "Colour": "blue"}))
    missing = raised(lambda: create(env, template=ROLE_ONLY, parameters={}))
    # Then each is refused the way ROS refuses it, and no stack exists
    assert (bad_name.code, "StackName" in bad_name.message) == ("InvalidParameter", True)
    assert (unknown.code, "The Parameter (Colour) was not defined in template" in unknown.message) == (
        "UnknownUserParameter", True
    )  # fmt: skip
    assert (missing.code, "The Parameter (CodeBucket) was not provided" in missing.message) == (
        "UserParameterMissing", True
    )  # fmt: skip
    assert env.cloud.ros.stacks == {}


def test_create_reads_the_template_from_an_oss_url(env: CloudEnv, fc: RecordingFc) -> None:
    # Given the template itself in OSS
    upload(env, "templates/role.yml", ROLE_ONLY.encode())
    # When a stack is created from its oss:// URL, and another from a key that is not there
    request = ros_models.CreateStackRequest(
        region_id=env.region, stack_name="from-url", template_url=f"oss://{BUCKET}/templates/role.yml",
        parameters=params(ros_models.CreateStackRequestParameters, CodeBucket=BUCKET),
    )  # fmt: skip
    stack_id = env.ros.create_stack(request).body.stack_id
    request.template_url, request.stack_name = f"oss://{BUCKET}/templates/none.yml", "nope"
    error = raised(lambda: env.ros.create_stack(request))
    env.cloud.run_until_idle()
    # Then the first stack is created from it, and the second is refused naming OSS's error
    assert stack(env, stack_id).status == "CREATE_COMPLETE"
    assert stack(env, stack_id).template_url == f"oss://{BUCKET}/templates/role.yml"
    assert (error.code, "NoSuchKey" in error.message) == ("InvalidParameter", True)


# -- UpdateStack -------------------------------------------------------------------------------------


@pytest.fixture
def created(env: CloudEnv, fc: RecordingFc) -> str:
    upload(env, "v1/fn.zip", code_zip("v1"))
    stack_id = create(env)
    env.cloud.run_until_idle()
    assert stack(env, stack_id).status == "CREATE_COMPLETE"
    return stack_id


def test_update_with_a_new_code_prefix_updates_the_function_and_redeploys(
    env: CloudEnv, fc: RecordingFc, created: str
) -> None:
    # Given a complete stack and new code under a new prefix
    upload(env, "v2/fn.zip", code_zip("v2"))
    first_code = env.cloud.ros.stacks[created].code_dirs["Fn"]
    # When the stack is updated with only the new prefix (the bucket carried over)
    body = update(env, created, parameters={"CodePrefix": "v2"}, use_previous_parameters=True)
    # Then it answers at once, and the update runs on the clock
    assert body.stack_id == created
    assert stack(env, created).status == "UPDATE_IN_PROGRESS"
    env.cloud.run_until_idle()
    result = stack(env, created)
    assert (result.status, result.status_reason) == ("UPDATE_COMPLETE", "Stack UPDATE completed successfully")
    assert result.update_time is not None
    # And only the function changed: it alone has update events
    history = events(env, created)
    updates = history[history.index(("app", "UPDATE_IN_PROGRESS", "Stack UPDATE started")) :]
    assert updates == [
        ("app", "UPDATE_IN_PROGRESS", "Stack UPDATE started"),
        ("Fn", "UPDATE_IN_PROGRESS", "state changed"),
        ("Fn", "UPDATE_COMPLETE", "state changed"),
        ("app", "UPDATE_COMPLETE", "Stack UPDATE completed successfully"),
    ]
    # And the FC service was given the new template with the new code; the old code is gone
    assert fc.calls[-1] == ("deploy", "app", {"app-fn": code_zip_source("v2")})
    assert not first_code.exists()
    values = {p.parameter_key: p.parameter_value for p in result.parameters}
    assert (values["CodeBucket"], values["CodePrefix"]) == (BUCKET, "v2")


def test_update_that_changes_nothing_is_not_supported(env: CloudEnv, fc: RecordingFc, created: str) -> None:
    # Given a complete stack
    # When it is updated with the same template and parameters
    error = raised(lambda: update(env, created, use_previous_parameters=True))
    # Then ROS says so with NotSupported, and nothing runs
    assert (error.status_code, error.code) == (400, "NotSupported")
    assert "Update the completely same stack" in error.message
    assert stack(env, created).status == "CREATE_COMPLETE"
    assert [c[0] for c in fc.calls] == ["deploy"]


def test_update_that_adds_and_removes_resources(env: CloudEnv, fc: RecordingFc, created: str) -> None:
    # Given a complete stack and a bus for a rule
    env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name="bakery"))
    with_rule = TEMPLATE.replace("Outputs:", RULE.lstrip("\n") + "Outputs:")
    # When a rule is added, then removed again
    update(env, created, template=with_rule, use_previous_parameters=True)
    env.cloud.run_until_idle()
    added = resources(env, created)
    update(env, created, template=TEMPLATE, use_previous_parameters=True)
    env.cloud.run_until_idle()
    # Then the rule was created by the first update and deleted by the second
    assert added == {"Role": "CREATE_COMPLETE", "Fn": "CREATE_COMPLETE", "Rule": "CREATE_COMPLETE"}
    assert resources(env, created) == {"Role": "CREATE_COMPLETE", "Fn": "CREATE_COMPLETE"}
    rule_events = [(s, r) for lid, s, r in events(env, created) if lid == "Rule"]
    assert [s for s, _ in rule_events] == ["CREATE_IN_PROGRESS", "CREATE_COMPLETE", "DELETE_IN_PROGRESS",
                                          "DELETE_COMPLETE"]  # fmt: skip
    assert stack(env, created).status == "UPDATE_COMPLETE"


def test_update_that_adds_a_function_creates_it(env: CloudEnv, fc: RecordingFc, created: str) -> None:
    # Given a complete stack with one function (a red-team pass found the update crashed the clock: KeyError)
    upload(env, "v1/fn2.zip", code_zip("2"))
    second = FUNCTION.replace("\n  Fn:\n", "\n  Fn2:\n").replace("-fn\n", "-fn2\n").replace("fn.zip", "fn2.zip")
    # When a second function is added by an update
    update(env, created, template=TEMPLATE.replace("Outputs:", second.lstrip("\n") + "Outputs:"),
           use_previous_parameters=True)  # fmt: skip
    env.cloud.run_until_idle()
    # Then it is created and the stack completes, running both functions
    assert resources(env, created) == {"Role": "CREATE_COMPLETE", "Fn": "CREATE_COMPLETE", "Fn2": "CREATE_COMPLETE"}
    assert stack(env, created).status == "UPDATE_COMPLETE"
    (kind, name, code) = fc.calls[-1]
    assert (kind, name, sorted(code)) == ("deploy", "app", ["app-fn", "app-fn2"])


def test_failed_update_rolls_back_to_the_previous_template(env: CloudEnv, fc: RecordingFc, created: str) -> None:
    # Given a complete stack, and an update to a prefix nobody uploaded
    # When the update runs
    update(env, created, parameters={"CodePrefix": "v3"}, use_previous_parameters=True)
    env.cloud.run_until_idle()
    # Then the function update failed, the stack rolled back to the previous parameters and stays deployed as it was
    body = stack(env, created)
    assert body.status == "ROLLBACK_COMPLETE"
    assert body.status_reason.startswith("Resource UPDATE failed: ClientException: resources.Fn: code: 404, NoSuchKey")
    statuses = [s for lid, s, _ in events(env, created) if lid == "app"]
    assert statuses[-4:] == ["UPDATE_IN_PROGRESS", "UPDATE_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"]
    assert {p.parameter_key: p.parameter_value for p in body.parameters}["CodePrefix"] == "v1"
    assert [c[0] for c in fc.calls] == ["deploy"]
    assert env.cloud.ros.stacks[created].code_dirs["Fn"].exists()


def test_update_or_delete_while_an_action_is_in_progress_is_refused(env: CloudEnv, fc: RecordingFc) -> None:
    # Given a stack still being created
    upload(env, "v1/fn.zip", code_zip("v1"))
    stack_id = create(env)
    # When it is updated and deleted meanwhile
    updating = raised(lambda: update(env, stack_id, parameters={"CodePrefix": "v2"}, use_previous_parameters=True))
    deleting = raised(
        lambda: env.ros.delete_stack(ros_models.DeleteStackRequest(region_id=env.region, stack_id=stack_id))
    )
    # Then both are 409 ActionInProgress, and the creation goes on
    assert (updating.status_code, updating.code) == (409, "ActionInProgress")
    assert (deleting.status_code, deleting.code) == (409, "ActionInProgress")
    env.cloud.run_until_idle()
    assert stack(env, stack_id).status == "CREATE_COMPLETE"


# -- DeleteStack, reads ------------------------------------------------------------------------------


def test_delete_stack_deletes_in_reverse_order_and_undeploys(env: CloudEnv, fc: RecordingFc, created: str) -> None:
    # Given a complete, deployed stack
    work = env.cloud.ros._work
    assert work is not None and (work / created).exists()
    # When it is deleted
    env.ros.delete_stack(ros_models.DeleteStackRequest(region_id=env.region, stack_id=created))
    assert stack(env, created).status == "DELETE_IN_PROGRESS"
    env.cloud.run_until_idle()
    # Then the function went before the role, FC stopped running it, and its code is gone
    deletes = [(lid, s) for lid, s, _ in events(env, created) if s.startswith("DELETE")]
    assert deletes == [
        ("app", "DELETE_IN_PROGRESS"),
        ("Fn", "DELETE_IN_PROGRESS"),
        ("Fn", "DELETE_COMPLETE"),
        ("Role", "DELETE_IN_PROGRESS"),
        ("Role", "DELETE_COMPLETE"),
        ("app", "DELETE_COMPLETE"),
    ]
    assert fc.calls[-1] == ("undeploy", "app", None)
    assert not (work / created).exists()
    # And ROS still answers for the deleted id, but not for changes to it, and no longer lists it
    assert stack(env, created).status == "DELETE_COMPLETE"
    gone = raised(lambda: update(env, created, parameters={"CodePrefix": "v2"}))
    assert (gone.status_code, gone.code) == (404, "StackNotFound")
    listed = env.ros.list_stacks(ros_models.ListStacksRequest(region_id=env.region)).body
    assert listed.total_count == 0


def test_get_stack_of_an_unknown_id_is_stack_not_found(env: CloudEnv) -> None:
    # Given no stack
    # When an id is read
    error = raised(lambda: stack(env, "4a6c9851-3b0f-4f5f-b4ca-a14bf6910000"))
    # Then ROS answers 404 StackNotFound naming it
    assert (error.status_code, error.code) == (404, "StackNotFound")
    assert "The Stack (4a6c9851-3b0f-4f5f-b4ca-a14bf6910000) could not be found." in error.message


def test_get_template_returns_the_current_body(env: CloudEnv, fc: RecordingFc, created: str) -> None:
    # Given a complete stack
    # When its template is read
    body = env.ros.get_template(ros_models.GetTemplateRequest(region_id=env.region, stack_id=created)).body
    # Then it is the body the stack was created with
    assert (body.template_body, body.stack_id, body.region_id) == (TEMPLATE, created, "cn-hangzhou")


def test_list_stacks_filters_and_paginates(env: CloudEnv, fc: RecordingFc) -> None:
    # Given three stacks, one of which is complete
    ids = [create(env, name, template=ROLE_ONLY) for name in ("one", "two", "three")]
    env.cloud.advance(10)
    four = create(env, "four", template=ROLE_ONLY)

    def listed(**kw: Any) -> Any:
        return env.ros.list_stacks(ros_models.ListStacksRequest(region_id=env.region, **kw)).body

    # When they are listed by name, by status and page by page
    by_name = listed(stack_name=["one", "three"])
    in_progress = listed(status=["CREATE_IN_PROGRESS"])
    page = listed(page_size=3, page_number=2)
    # Then each filter applies, newest first, with the total of what matched
    assert sorted(s.stack_name for s in by_name.stacks) == ["one", "three"]
    assert [s.stack_id for s in in_progress.stacks] == [four]
    assert (page.total_count, page.page_number, page.page_size) == (4, 2, 3)
    assert [s.stack_id for s in page.stacks] == [ids[0]]
    assert listed().stacks[0].stack_name == "four"


def test_preview_stack_shows_what_an_update_would_do(env: CloudEnv, fc: RecordingFc, created: str) -> None:
    # Given a complete stack
    # When an update to a new prefix is previewed
    request = ros_models.PreviewStackRequest(
        region_id=env.region, stack_id=created, template_body=TEMPLATE, use_previous_parameters=True,
        parameters=params(ros_models.PreviewStackRequestParameters, CodePrefix="v2"),
    )  # fmt: skip
    preview = env.ros.preview_stack(request).body.stack
    # Then the function would be modified and the role left alone, and nothing changed yet
    assert {r.logical_resource_id: r.action for r in preview.resources} == {"Role": "None", "Fn": "Modify"}
    fn = next(r for r in preview.resources if r.logical_resource_id == "Fn")
    assert fn.properties["Code"] == {"OssBucketName": BUCKET, "OssObjectName": "v2/fn.zip"}
    assert stack(env, created).status == "CREATE_COMPLETE"


def test_closing_the_cloud_removes_the_unpacked_code(env: CloudEnv, fc: RecordingFc, created: str) -> None:
    # Given a complete stack whose code is unpacked
    work = env.cloud.ros._work
    assert isinstance(work, Path) and any(work.rglob("index.py"))
    # When the cloud is reset
    env.cloud.reset()
    # Then the work directory is gone and no stack is left
    assert not work.exists()
    assert env.cloud.ros.stacks == {}


@pytest.mark.parametrize("transport", ["inprocess"])
@pytest.mark.parametrize(
    ("entry", "refused"),
    [("/etc/evil.py", "outside the code directory"), ("C:/evil.py", "outside the code directory"),
     ("link.py", "symbolic link")],
)  # fmt: skip
def test_unpacking_refuses_absolute_paths_and_links(tmp_path: Path, transport: str, entry: str, refused: str) -> None:
    from localcloud.services.ros.code import _unzip

    # Given a zip with an absolute entry, a drive-letter entry, or a symbolic link
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(entry)
        if refused == "symbolic link":
            info.external_attr = (0o120777 << 16) | 0x20
        archive.writestr(info, "/etc/passwd")
    # When it is unpacked
    with pytest.raises(ValueError) as error:
        _unzip(buffer.getvalue(), tmp_path / "code")
    # Then it is refused before anything is written
    assert refused in str(error.value)
    assert not list(tmp_path.rglob("*.py"))
