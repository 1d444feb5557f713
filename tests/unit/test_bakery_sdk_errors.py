"""bakery.adapters.sdk.call: every SDK failure becomes one of Bakery's errors, so the handler's policy applies.

The errors are real: a real SDK client talks to an in-process local cloud (no sockets: the `responses`
transport) whose fault plan makes the chosen action fail with the chosen code, so the SDK raises exactly
the exception it raises against Alibaba Cloud. What the local cloud cannot send (AccessDeniedDetail, a
throttle without a retry hint) is built from the SDK's own exception classes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_eventbridge20200401 import models as eb_models
from alibabacloud_oos20190601 import models as oos_models
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from darabonba.exceptions import UnretryableException

from bakery.adapters.sdk import call
from bakery.errors import BakeFailure, CloudError, RetryableError
from localcloud import LocalCloud, Scenario
from localcloud.testing import CloudEnv, running, sdk_config

REGION = "cn-hangzhou"

# How to call each action used below through `call`: (RAM service, client method, request).
ACTIONS: dict[str, tuple[str, Callable[[CloudEnv], Any], Callable[[CloudEnv], Any]]] = {
    "DescribeInstances": (
        "ecs",
        lambda env: env.ecs.describe_instances,
        lambda env: ecs_models.DescribeInstancesRequest(region_id=env.region),
    ),
    "StopInstance": (
        "ecs",
        lambda env: env.ecs.stop_instance,
        lambda env: ecs_models.StopInstanceRequest(instance_id="i-missing"),
    ),
    "CreateImage": (
        "ecs",
        lambda env: env.ecs.create_image,
        lambda env: ecs_models.CreateImageRequest(region_id=env.region, instance_id="i-any"),
    ),
    "PutEvents": (
        "eventbridge",
        lambda env: env.eventbridge.put_events,
        lambda env: eb_models.PutEventsRequest(event_bus_name="bakery", event_list=[]),
    ),
    "StartExecution": (
        "oos",
        lambda env: env.oos.start_execution,
        lambda env: oos_models.StartExecutionRequest(region_id=env.region, template_name="ACS-ECS-RepairImage"),
    ),
}


@contextmanager
def local_cloud(faults: list[dict[str, Any]] | None = None) -> Iterator[CloudEnv]:
    """A fresh in-process local cloud with `faults` installed, and real SDK clients pointed at it."""
    cloud = LocalCloud(Scenario.from_mapping({"faults": faults or []}))
    try:
        with running(cloud, "inprocess") as env:
            yield env
    finally:
        cloud.close()


def error_of(fn: Callable[[], Any]) -> Exception:
    """What `fn()` raises; the test fails if it returns."""
    try:
        fn()
    except Exception as exc:
        return exc
    pytest.fail("the call succeeded; an error was expected")


def call_failing(action: str, code: str, status: int | None = None) -> Exception:
    """Call `action` through `call` against a local cloud where it always fails with `code`; what was raised."""
    fault: dict[str, Any] = {"action": action, "code": code, "probability": 1}
    if status is not None:
        fault["status"] = status
    service, method, request = ACTIONS[action]
    with local_cloud([fault]) as env:
        return error_of(lambda: call(service, action, method(env), request(env)))


def sdk_exception(exc: Exception) -> Callable[[], None]:
    """A stand-in SDK method that raises a given SDK exception."""

    def method() -> None:
        raise exc

    return method


def closed_port() -> int:
    """A loopback port nothing listens on: bound (so it was free), then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- success ----------------------------------------------------------------------------------------------


def test_a_successful_call_returns_the_sdk_response_unchanged() -> None:
    # Given a local cloud with no faults
    with local_cloud() as env:
        request = ecs_models.DescribeInstancesRequest(region_id=env.region)

        # When an action is called through `call`
        response = call("ecs", "DescribeInstances", env.ecs.describe_instances, request)

    # Then the SDK's response model comes back as the SDK returned it
    assert isinstance(response, ecs_models.DescribeInstancesResponse)
    assert response.status_code == 200


# -- retryable --------------------------------------------------------------------------------------------


def test_throttling_becomes_retryable_with_the_servers_retry_after() -> None:
    # Given ECS throttling DescribeInstances (the SDK raises ThrottlingException from x-acs-retry-after)
    # When the action is called
    error = call_failing("DescribeInstances", "Throttling")

    # Then it is retryable, carries the code and the server's retry hint, and chains the SDK exception
    assert isinstance(error, RetryableError)
    assert (error.code, error.retry_after_ms) == ("Throttling", 1000)
    assert str(error) == "DescribeInstances was throttled"
    assert isinstance(error.__cause__, ThrottlingException)


def test_eventbridge_429_too_many_requests_is_throttling() -> None:
    # Given EventBridge throttling PutEvents: HTTP 429 TooManyRequests, as its error-codes doc spells it
    # When the action is called
    error = call_failing("PutEvents", "Throttling")

    # Then it is retryable and classified as throttling (so `call` retries it quickly), with the retry hint
    assert isinstance(error, RetryableError)
    assert (error.code, error.retry_after_ms, error.throttled) == ("TooManyRequests", 1000, True)
    assert isinstance(error.__cause__, ThrottlingException)


@pytest.mark.parametrize("code", ["ServiceUnavailable", "InternalError"])
def test_server_errors_become_retryable_with_their_code(code: str) -> None:
    # Given ECS answering DescribeInstances with a 5xx error (the SDK raises ServerException)
    # When the action is called
    error = call_failing("DescribeInstances", code)

    # Then it is retryable with the code, no retry hint, and a message naming the action and code
    assert isinstance(error, RetryableError)
    assert (error.code, error.retry_after_ms) == (code, None)
    assert str(error).startswith(f"DescribeInstances: {code}: ")
    assert isinstance(error.__cause__, ServerException)


def test_any_5xx_is_retryable_whatever_its_code() -> None:
    # Given ECS answering with a code nobody listed, but a 502 status
    # When the action is called
    error = call_failing("DescribeInstances", "BadGateway", status=502)

    # Then it is retryable with that code
    assert isinstance(error, RetryableError)
    assert error.code == "BadGateway"


@pytest.mark.parametrize("code", ["OperationConflict", "IncorrectDiskStatus.CreatingSnapshot", "Throttling.User"])
def test_client_errors_that_mean_try_later_become_retryable(code: str) -> None:
    # Given ECS answering with a 4xx code that means "try again later"
    # When the action is called
    error = call_failing("DescribeInstances", code)

    # Then it is retryable with that code
    assert isinstance(error, RetryableError)
    assert error.code == code


def test_throttling_without_a_retry_hint_is_still_retryable() -> None:
    # Given a throttling answer without x-acs-retry-after, which the SDK raises as a plain ClientException
    throttled = ClientException(
        status_code=400,
        code="Throttling.User",
        message="code: 400, Request was denied due to user flow control.",
        data={"Code": "Throttling.User", "Message": "Request was denied due to user flow control."},
    )

    # When the action is called
    error = error_of(lambda: call("ecs", "DescribeImages", sdk_exception(throttled)))

    # Then it is retryable with its code, no retry hint, and the server's message
    assert isinstance(error, RetryableError)
    assert (error.code, error.retry_after_ms) == ("Throttling.User", None)
    assert str(error) == "DescribeImages: Throttling.User: Request was denied due to user flow control."


def test_an_unreachable_endpoint_becomes_retryable_unreachable() -> None:
    # Given a real SDK client pointed at a loopback port nothing listens on
    client = EcsClient(sdk_config(f"127.0.0.1:{closed_port()}", REGION))
    request = ecs_models.DescribeInstancesRequest(region_id=REGION)

    # When the action is called
    error = error_of(lambda: call("ecs", "DescribeInstances", client.describe_instances, request))

    # Then it is retryable with code Unreachable, names the action, and chains the SDK's connection error
    assert isinstance(error, RetryableError)
    assert error.code == "Unreachable"
    assert str(error).startswith("DescribeInstances: cannot reach the API: ")
    assert isinstance(error.__cause__, UnretryableException)


# -- missing permission: a bake failure a person can fix ----------------------------------------------------


def test_forbidden_ram_becomes_a_missing_permission_failure() -> None:
    # Given the function's role lacking ecs:DescribeInstances (ECS answers Forbidden.RAM)
    # When the action is called
    error = call_failing("DescribeInstances", "Forbidden.RAM")

    # Then the bake fails with reason missing-permission, naming the RAM action and the code
    assert isinstance(error, BakeFailure)
    assert error.reason == "missing-permission"
    assert error.details == {"action": "ecs:DescribeInstances", "code": "Forbidden.RAM"}
    assert isinstance(error.__cause__, ClientException)


def test_the_missing_permission_message_names_the_action_and_the_policy_line_to_add() -> None:
    # Given the function's role lacking ecs:DescribeInstances
    # When the action is called
    error = call_failing("DescribeInstances", "Forbidden.RAM")

    # Then the message says which action is refused, and the exact statement to add, and where
    assert isinstance(error, BakeFailure)
    assert "may not call ecs:DescribeInstances (Forbidden.RAM)" in error.message
    assert '{"Effect": "Allow", "Action": ["ecs:DescribeInstances"], "Resource": "*"}' in error.message
    assert "template.yml FunctionRole" in error.message


def test_the_missing_permission_names_the_service_the_call_was_made_for() -> None:
    # Given the role lacking oos:StartExecution
    # When the OOS action is called
    error = call_failing("StartExecution", "Forbidden.RAM")

    # Then the RAM action is the OOS one
    assert isinstance(error, BakeFailure)
    assert error.details["action"] == "oos:StartExecution"
    assert '"Action": ["oos:StartExecution"]' in error.message


@pytest.mark.parametrize("code", ["Forbidden", "Forbidden.SubUser", "NoPermission.Tag"])
def test_other_permission_codes_are_missing_permission_too(code: str) -> None:
    # Given ECS refusing the call with another permission code
    # When the action is called
    error = call_failing("DescribeInstances", code)

    # Then the bake fails with reason missing-permission and that code
    assert isinstance(error, BakeFailure)
    assert (error.reason, error.details["code"]) == ("missing-permission", code)


def test_access_denied_detail_names_the_action_ram_actually_checked() -> None:
    # Given a Forbidden.RAM whose AccessDeniedDetail says RAM checked another action than the API called
    denied = ClientException(
        status_code=403,
        code="Forbidden.RAM",
        message="User not authorized to operate on the specified resource.",
        data={"Code": "Forbidden.RAM", "Message": "User not authorized to operate on the specified resource."},
        access_denied_detail={"AuthAction": "ecs:CreateSnapshot", "NoPermissionType": "ImplicitDeny"},
    )

    # When CreateImage is called and refused
    error = error_of(lambda: call("ecs", "CreateImage", sdk_exception(denied)))

    # Then the failure names the action RAM refused, not the API called
    assert isinstance(error, BakeFailure)
    assert error.details["action"] == "ecs:CreateSnapshot"
    assert '"Action": ["ecs:CreateSnapshot"]' in error.message


# -- other errors: the caller decides -------------------------------------------------------------------


def test_not_found_becomes_a_cloud_error_with_code_status_action_and_message() -> None:
    # Given an instance that does not exist (no fault: the local cloud answers as ECS does)
    with local_cloud() as env:
        service, method, request = ACTIONS["StopInstance"]

        # When StopInstance is called for it
        error = error_of(lambda: call(service, "StopInstance", method(env), request(env)))

    # Then it is a CloudError the caller can branch on: code, HTTP status, action and the server's message
    assert isinstance(error, CloudError)
    assert (error.code, error.status, error.action) == ("InvalidInstanceId.NotFound", 404, "StopInstance")
    assert error.message == "The specified InstanceId does not exist."
    assert str(error) == "StopInstance: InvalidInstanceId.NotFound: The specified InstanceId does not exist."
    assert isinstance(error.__cause__, ClientException)


def test_an_injected_not_found_is_a_cloud_error_not_a_retry() -> None:
    # Given ECS answering DescribeInstances with InvalidInstanceId.NotFound
    # When the action is called
    error = call_failing("DescribeInstances", "InvalidInstanceId.NotFound")

    # Then it is a CloudError with that code and 404
    assert isinstance(error, CloudError)
    assert (error.code, error.status) == ("InvalidInstanceId.NotFound", 404)


def test_a_quota_error_is_a_cloud_error_not_a_permission_failure() -> None:
    # Given ECS refusing CreateImage for quota (a 403, but not a permission problem)
    # When CreateImage is called
    error = call_failing("CreateImage", "QuotaExceed.Image")

    # Then it is a CloudError carrying the quota code and the server's message
    assert isinstance(error, CloudError)
    assert (error.code, error.status, error.message) == ("QuotaExceed.Image", 403, "The Image Quota exceeds.")
