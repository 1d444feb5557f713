"""The RPC wire protocol as the real ECS SDK speaks it: signature modes, booleans, RegionId handling,
unknown actions and versions, and the shape of every error the SDK surfaces."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from darabonba.runtime import RuntimeOptions

from localcloud.testing import sdk_config
from tests.integration._ecs import assert_api_error, create_image, describe_image, instance_status

SRC = {"id": "i-src", "disks": [{"type": "system", "size": 20}]}


def _call(env, action, query, version="2014-05-26"):
    """A raw RPC call through the SDK's generic call_api (still signed and sent by the SDK)."""
    params = open_api_models.Params(
        action=action,
        version=version,
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    request = open_api_models.OpenApiRequest(query=query)
    return env.ecs.call_api(params, request, RuntimeOptions())


# -- signing modes ---------------------------------------------------------------------------------------


def test_signature_v2_mode_works(make_env):
    # Given an SDK client configured for the legacy V2 signature (Action etc. in the query)
    env = make_env({"instances": [SRC]})
    config = sdk_config(env.endpoint, env.region)
    config.signature_algorithm = "v2"
    client = EcsClient(config)

    # When calling DescribeInstances and StopInstance with it
    body = client.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region)).body
    client.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-src"))

    # Then both calls work like with the default V3 signature
    assert [i.instance_id for i in body.instances.instance] == ["i-src"]
    assert instance_status(env, "i-src") == "Stopping"


def test_signature_v2_mode_errors_have_the_same_shape(make_env):
    # Given a V2-signing client
    env = make_env({"instances": [SRC]})
    config = sdk_config(env.endpoint, env.region)
    config.signature_algorithm = "v2"
    client = EcsClient(config)

    # When it acts on an unknown instance
    with pytest.raises(ClientException) as excinfo:
        client.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-nope"))

    # Then the error is the same 404
    assert_api_error(excinfo.value, "InvalidInstanceId.NotFound", 404)


def test_success_responses_carry_a_request_id(make_env):
    # Given a region
    env = make_env({"instances": [SRC]})

    # When making two calls
    first = env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region))
    second = env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region))

    # Then each answer has its own RequestId and status 200
    assert first.status_code == 200
    assert first.body.request_id and second.body.request_id
    assert first.body.request_id != second.body.request_id


# -- booleans ------------------------------------------------------------------------------------------------


def test_python_booleans_arrive_as_true_and_false(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When the SDK sends DryRun=False (it writes str(bool): "False") with CreateImage
    image_id = create_image(env, instance_id="i-src", dry_run=False)

    # Then False is understood as false: the image is really created
    assert describe_image(env, image_id).status == "Creating"


def test_lower_case_booleans_are_understood_too(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When a raw call sends DryRun=true in lower case
    with pytest.raises(ClientException) as excinfo:
        _call(env, "StopInstance", {"InstanceId": "i-src", "DryRun": "true"})

    # Then it is a dry run
    assert_api_error(excinfo.value, "DryRunOperation", 400)
    assert instance_status(env, "i-src") == "Running"


def test_a_boolean_param_with_another_value_is_invalid(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When DryRun is neither true nor false
    with pytest.raises(ClientException) as excinfo:
        _call(env, "StopInstance", {"InstanceId": "i-src", "DryRun": "yes"})

    # Then InvalidParameter names the param
    assert_api_error(excinfo.value, "InvalidParameter", 400, "DryRun", "yes")


# -- RegionId ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "request_model"),
    [
        ("describe_instances", ecs_models.DescribeInstancesRequest),
        ("describe_images", ecs_models.DescribeImagesRequest),
        ("describe_snapshots", ecs_models.DescribeSnapshotsRequest),
        ("describe_disks", ecs_models.DescribeDisksRequest),
    ],
)
def test_missing_region_id_is_missing_parameter(make_env, method, request_model):
    # Given a region (Config.region_id only picks the endpoint; it is not sent)
    env = make_env({"instances": [SRC]})

    # When a request leaves RegionId out
    with pytest.raises(ClientException) as excinfo:
        getattr(env.ecs, method)(request_model())

    # Then MissingParameter names RegionId
    assert_api_error(excinfo.value, "MissingParameter", 400, "RegionId")


def test_wrong_region_is_invalid_region_id_not_found(make_env):
    # Given a cn-hangzhou local cloud
    env = make_env({"instances": [SRC]})

    # When asking for another region
    with pytest.raises(ClientException) as excinfo:
        env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id="eu-central-1"))

    # Then 404 InvalidRegionId.NotFound names it
    assert_api_error(excinfo.value, "InvalidRegionId.NotFound", 404, "eu-central-1")


def test_apis_without_region_id_take_the_region_from_the_endpoint(make_env):
    # Given an instance (StopInstance has no RegionId param at all)
    env = make_env({"instances": [SRC]})

    # When stopping it
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-src"))

    # Then it works
    assert instance_status(env, "i-src") == "Stopping"


def test_region_is_configurable_by_scenario(make_env):
    # Given a local cloud serving eu-central-1
    env = make_env({"region": "eu-central-1", "instances": [SRC]})

    # When the SDK asks that region
    body = env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id="eu-central-1")).body

    # Then the instance is there and reports the region
    assert [(i.instance_id, i.region_id) for i in body.instances.instance] == [("i-src", "eu-central-1")]


# -- unknown actions and versions ----------------------------------------------------------------------------


def test_an_sdk_api_the_emulator_does_not_implement_is_invalid_action_not_found(make_env):
    # Given a region
    env = make_env({"instances": [SRC]})

    # When calling a real ECS API the local cloud does not implement
    with pytest.raises(ClientException) as excinfo:
        env.ecs.describe_regions(ecs_models.DescribeRegionsRequest())

    # Then 404 InvalidAction.NotFound names it; never a 500
    assert_api_error(excinfo.value, "InvalidAction.NotFound", 404, "DescribeRegions")
    assert not isinstance(excinfo.value, ServerException)


def test_an_unknown_action_via_call_api_is_invalid_action_not_found(make_env):
    # Given a region
    env = make_env({"instances": [SRC]})

    # When sending an action no ECS has
    with pytest.raises(ClientException) as excinfo:
        _call(env, "BakeCookies", {"RegionId": env.region})

    # Then 404 InvalidAction.NotFound
    assert_api_error(excinfo.value, "InvalidAction.NotFound", 404, "BakeCookies")


def test_call_api_reaches_implemented_actions(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When calling DescribeInstances through call_api with the JSON-array param
    reply = _call(env, "DescribeInstances", {"RegionId": env.region, "InstanceIds": json.dumps(["i-src"])})

    # Then the raw body has the documented nesting
    assert reply["statusCode"] == 200
    assert [i["InstanceId"] for i in reply["body"]["Instances"]["Instance"]] == ["i-src"]


def test_an_unknown_api_version_is_invalid_version(make_env):
    # Given a region
    env = make_env({"instances": [SRC]})

    # When the x-acs-version is not one the local cloud speaks
    with pytest.raises(ClientException) as excinfo:
        _call(env, "DescribeInstances", {"RegionId": env.region}, version="2099-01-01")

    # Then 400 InvalidVersion names the version
    assert_api_error(excinfo.value, "InvalidVersion", 400, "2099-01-01")


# -- error shape ---------------------------------------------------------------------------------------------


ERROR_CALLS = {
    "unknown action": lambda env: env.ecs.describe_regions(ecs_models.DescribeRegionsRequest()),
    "missing region": lambda env: env.ecs.describe_instances(ecs_models.DescribeInstancesRequest()),
    "wrong region": lambda env: env.ecs.describe_images(ecs_models.DescribeImagesRequest(region_id="mars-1")),
    "not found": lambda env: env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-nope")),
    "bad param": lambda env: env.ecs.describe_instances(
        ecs_models.DescribeInstancesRequest(region_id=env.region, instance_ids="not json")
    ),
    "bad version": lambda env: _call(env, "DescribeInstances", {"RegionId": env.region}, version="1999-01-01"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CALLS))
def test_every_error_body_has_request_id_code_and_message(make_env, case):
    # Given a region
    env = make_env({"instances": [SRC]})

    # When a call fails
    with pytest.raises(ClientException) as excinfo:
        ERROR_CALLS[case](env)

    # Then the body has RequestId, Code and Message, and the SDK decorates its message with them
    error = excinfo.value
    assert {"RequestId", "Code", "Message"} <= set(error.data)
    assert error.data["RequestId"] and error.data["Code"] and error.data["Message"]
    assert error.request_id == error.data["RequestId"]
    assert error.data["statusCode"] == error.status_code
    assert error.message == f"code: {error.status_code}, {error.data['Message']} request id: {error.request_id}"


def test_api_errors_name_the_ecs_host(make_env):
    # Given a region
    env = make_env({"instances": [SRC]})

    # When an ECS API call fails
    with pytest.raises(ClientException) as excinfo:
        env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-nope"))

    # Then HostId is the ECS host and Recommend points at the troubleshooter
    assert excinfo.value.data["HostId"] == "ecs.aliyuncs.com"
    assert "InvalidInstanceId.NotFound" in excinfo.value.data["Recommend"]


def test_a_5xx_error_is_a_server_exception(make_env):
    # Given a fault: the first DescribeInstances fails with InternalError
    env = make_env({"instances": [SRC], "faults": [{"action": "DescribeInstances", "code": "InternalError", "nth": 1}]})

    # When calling it twice
    with pytest.raises(ServerException) as excinfo:
        env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region))
    retry = env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region))

    # Then the first is a 500 ServerException and the second succeeds
    assert (excinfo.value.code, excinfo.value.status_code) == ("InternalError", 500)
    assert retry.status_code == 200


def test_throttling_is_a_throttling_exception_with_retry_after(make_env):
    # Given a rate limit of one CreateImage per (virtual) second
    env = make_env({"instances": [SRC, {"id": "i-b"}], "rate_limits": {"CreateImage": 1}})
    create_image(env, instance_id="i-src")

    # When a second CreateImage comes in the same second
    with pytest.raises(ThrottlingException) as excinfo:
        create_image(env, instance_id="i-b")

    # Then it is throttled with a retry hint, and allowed once the clock moves on
    assert excinfo.value.code.startswith("Throttling")
    assert excinfo.value.retry_after > 0
    env.cloud.advance(1)
    assert create_image(env, instance_id="i-b")
