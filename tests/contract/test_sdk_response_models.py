"""Contract: every response of every implemented action deserialises into the SDK's response model
with no missing container, and the emulator sends no field the SDK model does not know.

A *container* is an SDK model whose only field is a list (`Images` → `Image[]`): when the server
omits it the SDK yields None instead of an empty list, and callers crash (alibaba-apis.md §1.5).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_eventbridge20200401 import models as eb_models
from alibabacloud_oos20190601 import models as oos_models
from alibabacloud_ros20190910 import models as ros_models
from darabonba.model import DaraModel

from localcloud import LocalCloud, Scenario
from localcloud.testing import CloudEnv, running

SCENARIO = {
    "timings": {"image_seconds_per_gib": 1, "check_seconds": 10, "repair_seconds": 60},
    "instances": [
        {
            "id": "i-contract",
            "disks": [{"type": "system", "size": 20}, {"type": "data", "size": 10}],
            "tags": {"team": "bakery"},
            "guest": {"check_failures": ["Nvme"]},
        }
    ],
}


def _prepared(env: CloudEnv) -> dict[str, str]:
    """A region with a checked image, a snapshot, an invocation, an execution and a custom bus."""
    region = env.region
    image_id = env.ecs.create_image(
        ecs_models.CreateImageRequest(
            region_id=region, instance_id="i-contract", image_name="contract", detection_strategy="Standard",
            image_family="contract", tag=[ecs_models.CreateImageRequestTag(key="k", value="v")],
        )
    ).body.image_id  # fmt: skip
    env.cloud.advance(200)
    snapshot_id = env.ecs.create_snapshot(ecs_models.CreateSnapshotRequest(disk_id="d-contract-1")).body.snapshot_id
    invoke_id = env.ecs.run_command(
        ecs_models.RunCommandRequest(
            region_id=region, type="RunShellScript", command_content="echo hi", instance_id=["i-contract"]
        )
    ).body.invoke_id
    execution_id = env.oos.start_execution(
        oos_models.StartExecutionRequest(
            region_id=region, template_name="ACS-ECS-RepairImage",
            parameters=json.dumps({"zoneId": "z", "repairImageId": image_id, "baseImageId": "aliyun_3_x64_20G_alibase_20230727.vhd",
                                   "instanceType": "ecs.g7.large", "securityGroupId": "sg", "vSwitchId": "vsw"}),
        )
    ).body.execution.execution_id  # fmt: skip
    env.cloud.advance(200)
    env.eventbridge.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name="bakery"))
    launch_template_id = env.ecs.create_launch_template(_launch_template_request(region, image_id, "contract-lt"))
    return {"image": image_id, "snapshot": snapshot_id, "invoke": invoke_id, "execution": execution_id,
            "launch_template": launch_template_id.body.launch_template_id}  # fmt: skip


def _launch_template_request(region: str, image_id: str, name: str) -> Any:
    """A launch template with every container its versions render filled (disks, groups, tags)."""
    return ecs_models.CreateLaunchTemplateRequest(
        region_id=region, launch_template_name=name, image_id=image_id, instance_type="ecs.g7.large",
        version_description="v1", security_group_ids=["sg-1"],
        system_disk=ecs_models.CreateLaunchTemplateRequestSystemDisk(category="cloud_essd", size=40),
        data_disk=[ecs_models.CreateLaunchTemplateRequestDataDisk(category="cloud_essd", size=100)],
        tag=[ecs_models.CreateLaunchTemplateRequestTag(key="team", value="bakery")],
        template_tag=[ecs_models.CreateLaunchTemplateRequestTemplateTag(key="owner", value="contract")],
    )  # fmt: skip


_ROS_TEMPLATE = """ROSTemplateFormatVersion: '2015-09-01'
Description: contract
Parameters:
  Suffix: {Type: String, Default: a}
Resources:
  Role:
    Type: ALIYUN::RAM::Role
    Properties:
      RoleName: {'Fn::Sub': 'contract-${ALIYUN::StackName}-${Suffix}'}
      AssumeRolePolicyDocument:
        Version: '1'
        Statement: [{Action: 'sts:AssumeRole', Effect: Allow, Principal: {Service: [fc.aliyuncs.com]}}]
Outputs:
  RoleArn:
    Value: {'Fn::GetAtt': [Role, Arn]}
"""


def _ros_cases(env: CloudEnv) -> dict[str, Callable[[], Any]]:
    """ROS: a complete stack to read and update, another to delete."""
    r, ros = env.region, env.ros
    stack_ids = {
        name: ros.create_stack(
            ros_models.CreateStackRequest(region_id=r, stack_name=name, template_body=_ROS_TEMPLATE)
        ).body.stack_id
        for name in ("contract", "contract-del")
    }
    env.cloud.run_until_idle()
    update = [ros_models.UpdateStackRequestParameters(parameter_key="Suffix", parameter_value="b")]
    return {
        "ValidateTemplate": lambda: ros.validate_template(
            ros_models.ValidateTemplateRequest(template_body=_ROS_TEMPLATE)
        ),
        "CreateStack": lambda: ros.create_stack(
            ros_models.CreateStackRequest(region_id=r, stack_name="contract-new", template_body=_ROS_TEMPLATE)
        ),
        "GetStack": lambda: ros.get_stack(ros_models.GetStackRequest(region_id=r, stack_id=stack_ids["contract"])),
        "ListStacks": lambda: ros.list_stacks(ros_models.ListStacksRequest(region_id=r)),
        "ListStackEvents": lambda: ros.list_stack_events(
            ros_models.ListStackEventsRequest(region_id=r, stack_id=stack_ids["contract"])
        ),
        "ListStackResources": lambda: ros.list_stack_resources(
            ros_models.ListStackResourcesRequest(region_id=r, stack_id=stack_ids["contract"])
        ),
        "GetTemplate": lambda: ros.get_template(
            ros_models.GetTemplateRequest(region_id=r, stack_id=stack_ids["contract"])
        ),
        "PreviewStack": lambda: ros.preview_stack(
            ros_models.PreviewStackRequest(region_id=r, stack_id=stack_ids["contract"], template_body=_ROS_TEMPLATE)
        ),
        "UpdateStack": lambda: ros.update_stack(
            ros_models.UpdateStackRequest(
                region_id=r, stack_id=stack_ids["contract"], template_body=_ROS_TEMPLATE, parameters=update
            )
        ),
        "DeleteStack": lambda: ros.delete_stack(
            ros_models.DeleteStackRequest(region_id=r, stack_id=stack_ids["contract-del"])
        ),
    }


def _cases(env: CloudEnv, ids: dict[str, str]) -> dict[str, Callable[[], Any]]:
    r = env.region
    ecs, oos, eb = env.ecs, env.oos, env.eventbridge
    return {
        **_ros_cases(env),
        "DescribeInstances": lambda: ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=r)),
        "DescribeDisks": lambda: ecs.describe_disks(ecs_models.DescribeDisksRequest(region_id=r)),
        "StopInstance": lambda: ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-contract")),
        "StartInstance": lambda: (
            env.cloud.advance(60),
            ecs.start_instance(ecs_models.StartInstanceRequest(instance_id="i-contract")),
        )[1],
        "CreateImage": lambda: ecs.create_image(
            ecs_models.CreateImageRequest(region_id=r, snapshot_id=ids["snapshot"])
        ),
        "DescribeImages": lambda: ecs.describe_images(ecs_models.DescribeImagesRequest(region_id=r, status="ALL")),
        "DescribeImageFromFamily": lambda: ecs.describe_image_from_family(
            ecs_models.DescribeImageFromFamilyRequest(region_id=r, image_family="contract")
        ),
        "ModifyImageAttribute": lambda: ecs.modify_image_attribute(
            ecs_models.ModifyImageAttributeRequest(region_id=r, image_id=ids["image"], description="contract image")
        ),
        "ModifyImageSharePermission": lambda: ecs.modify_image_share_permission(
            ecs_models.ModifyImageSharePermissionRequest(region_id=r, image_id=ids["image"], add_account=["1111"])
        ),
        "DescribeImageSharePermission": lambda: ecs.describe_image_share_permission(
            ecs_models.DescribeImageSharePermissionRequest(region_id=r, image_id=ids["image"])
        ),
        "DeleteImage": lambda: ecs.delete_image(ecs_models.DeleteImageRequest(region_id=r, image_id="m-missing")),
        "CreateSnapshot": lambda: ecs.create_snapshot(ecs_models.CreateSnapshotRequest(disk_id="d-contract-0")),
        "DescribeSnapshots": lambda: ecs.describe_snapshots(ecs_models.DescribeSnapshotsRequest(region_id=r)),
        "DeleteSnapshot": lambda: ecs.delete_snapshot(ecs_models.DeleteSnapshotRequest(snapshot_id="s-missing")),
        "TagResources": lambda: ecs.tag_resources(
            ecs_models.TagResourcesRequest(
                region_id=r,
                resource_type="instance",
                resource_id=["i-contract"],
                tag=[ecs_models.TagResourcesRequestTag(key="a", value="b")],
            )
        ),
        "UntagResources": lambda: ecs.untag_resources(
            ecs_models.UntagResourcesRequest(
                region_id=r, resource_type="instance", resource_id=["i-contract"], tag_key=["a"]
            )
        ),
        "ListTagResources": lambda: ecs.list_tag_resources(
            ecs_models.ListTagResourcesRequest(region_id=r, resource_type="instance", resource_id=["i-contract"])
        ),
        "RunCommand": lambda: ecs.run_command(
            ecs_models.RunCommandRequest(
                region_id=r, type="RunShellScript", command_content="true", instance_id=["i-contract"]
            )
        ),
        "DescribeInvocations": lambda: ecs.describe_invocations(
            ecs_models.DescribeInvocationsRequest(region_id=r, invoke_id=ids["invoke"], include_output=True)
        ),
        "DescribeInvocationResults": lambda: ecs.describe_invocation_results(
            ecs_models.DescribeInvocationResultsRequest(region_id=r, invoke_id=ids["invoke"])
        ),
        "CreateLaunchTemplate": lambda: ecs.create_launch_template(
            _launch_template_request(r, ids["image"], "contract-lt-2")
        ),
        "CreateLaunchTemplateVersion": lambda: ecs.create_launch_template_version(
            ecs_models.CreateLaunchTemplateVersionRequest(
                region_id=r, launch_template_id=ids["launch_template"], image_id=ids["image"]
            )
        ),
        "DescribeLaunchTemplates": lambda: ecs.describe_launch_templates(
            ecs_models.DescribeLaunchTemplatesRequest(region_id=r)
        ),
        "DescribeLaunchTemplateVersions": lambda: ecs.describe_launch_template_versions(
            ecs_models.DescribeLaunchTemplateVersionsRequest(region_id=r, launch_template_id=ids["launch_template"])
        ),
        "StartExecution": lambda: oos.start_execution(
            oos_models.StartExecutionRequest(
                region_id=r,
                template_name="ACS-ECS-RepairImage",
                parameters=json.dumps(
                    {
                        "zoneId": "z",
                        "repairImageId": ids["image"],
                        "instanceType": "t",
                        "securityGroupId": "sg",
                        "vSwitchId": "v",
                        "baseImageId": "aliyun_3_x64_20G_alibase_20230727.vhd",
                    }
                ),
            )
        ),
        "ListExecutions": lambda: oos.list_executions(oos_models.ListExecutionsRequest(region_id=r)),
        "CancelExecution": lambda: oos.cancel_execution(
            oos_models.CancelExecutionRequest(region_id=r, execution_id=ids["execution"])
        ),
        "CreateEventBus": lambda: eb.create_event_bus(eb_models.CreateEventBusRequest(event_bus_name="other")),
        "GetEventBus": lambda: eb.get_event_bus(eb_models.GetEventBusRequest(event_bus_name="bakery")),
        "ListEventBuses": lambda: eb.list_event_buses(eb_models.ListEventBusesRequest()),
        "DeleteEventBus": lambda: eb.delete_event_bus(eb_models.DeleteEventBusRequest(event_bus_name="other")),
        "PutEvents": lambda: eb.put_events(
            eb_models.PutEventsRequest(
                event_bus_name="bakery",
                event_list=[
                    eb_models.PutEventsRequestEventList(
                        id="e1", source="bakery", type="bakery:Bake:Requested", data='{"a": 1}'
                    )
                ],
            )
        ),
    }


# -- walking SDK models -----------------------------------------------------------------------------


def _fields(model: DaraModel) -> list[tuple[str, str, str]]:
    """(attribute, wire key, annotation) of an SDK model, read from its generated code."""
    keys = re.findall(r"m\.get\('([^']+)'\) is not None", inspect.getsource(type(model).from_map))
    params = [p for p in inspect.signature(type(model).__init__).parameters.values() if p.name != "self"]
    return [(p.name, key, str(p.annotation)) for p, key in zip(params, keys, strict=True)]


def _is_container(model_class: type) -> bool:
    params = [p for p in inspect.signature(model_class.__init__).parameters.values() if p.name != "self"]
    return len(params) == 1 and str(params[0].annotation).startswith("List[")


def _problems(model: Any, raw: Any, path: str) -> list[str]:
    """Missing containers and fields the emulator sent that the model does not know."""
    problems: list[str] = []
    if isinstance(model, list):
        for index, (item, raw_item) in enumerate(zip(model, raw or [], strict=False)):
            problems += _problems(item, raw_item, f"{path}[{index}]")
        return problems
    if not isinstance(model, DaraModel):
        return problems
    fields = _fields(model)
    known = {key for _, key, _ in fields}
    if isinstance(raw, dict):
        problems += [f"{path}.{key}: not in the SDK model" for key in raw if key not in known]
    for attribute, key, annotation in fields:
        value = getattr(model, attribute)
        nested = re.search(r"main_models\.(\w+)", annotation)
        if value is None and nested and not annotation.startswith("List["):
            module = inspect.getmodule(type(model))
            nested_class = getattr(module.main_models if hasattr(module, "main_models") else module, nested.group(1))
            if _is_container(nested_class):
                problems.append(f"{path}.{key}: missing container")
        if value is not None:
            problems += _problems(value, (raw or {}).get(key) if isinstance(raw, dict) else None, f"{path}.{key}")
    return problems


@pytest.mark.parametrize("transport", ["inprocess"])
def test_every_action_response_fits_its_sdk_model(transport: str) -> None:
    # Given a region with one of every resource, and a cloud that records what it answers
    cloud = LocalCloud(Scenario.from_mapping(SCENARIO), record_replies=True)
    with running(cloud, transport) as env:
        ids = _prepared(env)
        cases = _cases(env, ids)
        implemented = {name for service in cloud.services.values() for name in service.actions}
        assert set(cases) == implemented, "every implemented action needs a contract case (and only those)"

        failures: dict[str, list[str]] = {}
        for action, call in cases.items():
            # When the action is called through the real SDK
            assert cloud.replies is not None
            cloud.replies.clear()
            response = call()
            reply = next(r for _, a, r in cloud.replies if a == action)
            # Then it succeeded and its body maps onto the SDK model with nothing missing or unknown
            assert reply.status == 200, f"{action}: {reply.body}"
            problems = _problems(response.body, reply.body, action)
            if problems:
                failures[action] = problems
        assert not failures, json.dumps(failures, indent=2)
    cloud.close()


def test_container_detection_finds_a_missing_container() -> None:
    # Given a DescribeImages body without its Images container
    body = ecs_models.DescribeImagesResponseBody().from_map({"RequestId": "r", "TotalCount": 0})
    # Then the walker reports it (so the contract test above can fail)
    assert _problems(body, {"RequestId": "r", "TotalCount": 0}, "DescribeImages") == [
        "DescribeImages.Images: missing container"
    ]


def test_unknown_field_detection_finds_a_typo() -> None:
    raw = {"RequestId": "r", "ImageIdd": "m-1"}
    body = ecs_models.CreateImageResponseBody().from_map(raw)
    assert _problems(body, raw, "CreateImage") == ["CreateImage.ImageIdd: not in the SDK model"]
