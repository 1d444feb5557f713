"""OOS through the real SDK: StartExecution / ListExecutions / CancelExecution and the simulation of
the public template ACS-ECS-RepairImage (alibaba-apis.md §3.1-3.4; events: fc-eventbridge.md §2.5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_oos20190601 import models as oos_models
from alibabacloud_tea_openapi.exceptions import ClientException

from localcloud.testing import CloudEnv

TEMPLATE = "ACS-ECS-RepairImage"
BASE_X64 = "aliyun_3_x64_20G_alibase_20230727.vhd"
ALL_IMAGE_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
REPAIR_SECONDS = 600
EXECUTION_STATUS_CHANGE = "oos:CloudMonitor:Execution[StatusChange]"

SCENARIO: dict[str, Any] = {
    "seed": 11,
    "start_time": "2026-01-05T09:00:00Z",
    "timings": {"repair_seconds": REPAIR_SECONDS},
    "instances": [
        {
            "id": "i-web1",
            "platform": "Ubuntu",
            "disks": [{"type": "system", "size": 20}],
            "guest": {"check_failures": ["Nvme", "Fstab"]},
        },
        {"id": "i-win1", "os": "windows", "platform": "Windows Server 2022", "disks": [{"type": "system", "size": 40}]},
        {"id": "i-arm1", "architecture": "arm64", "platform": "Aliyun", "disks": [{"type": "system", "size": 20}]},
    ],
}


# -- helpers ---------------------------------------------------------------------------------------


def advance_until(env: CloudEnv, done: Callable[[], bool], *, step: float = 30, limit: float = 4 * 3600) -> None:
    """Move the virtual clock in steps until `done()` (bounded, so a broken state machine fails fast)."""
    waited = 0.0
    while not done():
        assert waited < limit, f"not done after {limit} simulated seconds"
        env.cloud.advance(step)
        waited += step


def describe_image(env: CloudEnv, image_id: str) -> Any:
    body = env.ecs.describe_images(
        ecs_models.DescribeImagesRequest(region_id=env.region, image_id=image_id, status=ALL_IMAGE_STATUSES)
    ).body
    assert body.total_count == 1, f"{image_id} not found"
    return body.images.image[0]


def own_image_ids(env: CloudEnv) -> set[str]:
    body = env.ecs.describe_images(
        ecs_models.DescribeImagesRequest(
            region_id=env.region, image_owner_alias="self", status=ALL_IMAGE_STATUSES, page_size=100
        )
    ).body
    return {image.image_id for image in body.images.image}


def check_finished(env: CloudEnv, image_id: str) -> bool:
    options = describe_image(env, image_id).detection_options
    return options is not None and options.status == "Finished"


def failing_check_items(env: CloudEnv, image_id: str) -> list[str]:
    image = describe_image(env, image_id)
    return sorted(item.name for item in image.detection_options.items.item if item.risk_level)


def bake_image(env: CloudEnv, instance_id: str, name: str, *, detection: bool = True, **extra: Any) -> str:
    """CreateImage from an instance and advance until it is Available (and checked, with detection)."""
    image_id = env.ecs.create_image(
        ecs_models.CreateImageRequest(
            region_id=env.region,
            instance_id=instance_id,
            image_name=name,
            detection_strategy="Standard" if detection else None,
            **extra,
        )
    ).body.image_id
    if detection:
        advance_until(env, lambda: check_finished(env, image_id))
    else:
        advance_until(env, lambda: describe_image(env, image_id).status == "Available")
    return image_id


def repair_parameters(image_id: str, **overrides: Any) -> dict[str, Any]:
    parameters = {
        "regionId": "cn-hangzhou",
        "zoneId": "cn-hangzhou-h",
        "repairImageId": image_id,
        "baseImageId": BASE_X64,
        "instanceType": "ecs.g7.large",
        "securityGroupId": "sg-bp1repair",
        "vSwitchId": "vsw-bp1repair",
        "repairItems": ["nvme", "fstab"],
    }
    parameters.update(overrides)
    return {k: v for k, v in parameters.items() if v is not None}


def start_repair(env: CloudEnv, parameters: dict[str, Any], **request: Any) -> Any:
    return env.oos.start_execution(
        oos_models.StartExecutionRequest(
            region_id=env.region, template_name=TEMPLATE, parameters=json.dumps(parameters), **request
        )
    ).body.execution


def get_execution(env: CloudEnv, execution_id: str) -> Any:
    body = env.oos.list_executions(
        oos_models.ListExecutionsRequest(region_id=env.region, execution_id=execution_id)
    ).body
    assert len(body.executions) == 1
    return body.executions[0]


def run_to_end(env: CloudEnv, execution_id: str) -> Any:
    advance_until(env, lambda: get_execution(env, execution_id).status in ("Success", "Failed", "Cancelled"))
    return get_execution(env, execution_id)


def status_change_events(env: CloudEnv, execution_id: str) -> list[dict[str, Any]]:
    return [
        e.event
        for e in env.cloud.events.read()
        if e.event["type"] == EXECUTION_STATUS_CHANGE and e.event["data"]["executionId"] == execution_id
    ]


@pytest.fixture
def env(make_env: Callable[..., CloudEnv]) -> CloudEnv:
    return make_env(SCENARIO)


@pytest.fixture
def failing_image(env: CloudEnv) -> str:
    """An Available custom image whose check finished with Nvme and Fstab at risk."""
    image_id = bake_image(
        env,
        "i-web1",
        "web",
        image_family="web-family",
        description="web server image",
        tag=[ecs_models.CreateImageRequestTag(key="owner", value="bakery")],
    )
    assert failing_check_items(env, image_id) == ["Fstab", "Nvme"]
    return image_id


# -- StartExecution and the execution's lifecycle ---------------------------------------------------


def test_start_execution_returns_a_running_execution_with_parameters_as_a_json_string(
    env: CloudEnv, failing_image: str
) -> None:
    # Given an image whose check failed
    # When the repair template is started
    execution = start_repair(env, repair_parameters(failing_image))
    # Then the execution has started, and StartExecution echoes Parameters as a JSON string
    assert execution.execution_id.startswith("exec-")
    assert execution.template_name == TEMPLATE
    assert execution.status in ("Started", "Running")
    assert isinstance(execution.parameters, str)
    assert json.loads(execution.parameters)["repairImageId"] == failing_image


def test_list_executions_returns_parameters_as_a_dict(env: CloudEnv, failing_image: str) -> None:
    # Given a started repair
    execution_id = start_repair(env, repair_parameters(failing_image)).execution_id
    # When it is read back with ListExecutions
    listed = get_execution(env, execution_id)
    # Then Parameters is an object there, with the given values
    assert isinstance(listed.parameters, dict)
    assert listed.parameters["repairImageId"] == failing_image
    assert listed.parameters["repairItems"] == ["nvme", "fstab"]
    assert listed.status == "Running"


def test_execution_succeeds_after_repair_seconds_with_the_new_image_id_as_json_outputs(
    env: CloudEnv, failing_image: str
) -> None:
    # Given a started repair
    execution_id = start_repair(env, repair_parameters(failing_image)).execution_id
    # When just under timings.repair_seconds pass, then the rest
    env.cloud.advance(REPAIR_SECONDS - 1)
    before = get_execution(env, execution_id)
    env.cloud.advance(1)
    after = get_execution(env, execution_id)
    # Then it is still Running first, and Success after, with Outputs a JSON string {"imageId": ...}
    assert before.status == "Running"
    assert after.status == "Success"
    assert isinstance(after.outputs, str)
    outputs = json.loads(after.outputs)
    assert set(outputs) == {"imageId"}
    assert outputs["imageId"].startswith("m-")
    assert outputs["imageId"] != failing_image


def test_repaired_image_is_named_after_the_source_with_the_utc_time(env: CloudEnv, failing_image: str) -> None:
    # Given a repair that has succeeded
    execution = run_to_end(env, start_repair(env, repair_parameters(failing_image)).execution_id)
    # When the new image is described
    image = describe_image(env, json.loads(execution.outputs)["imageId"])
    # Then it is named repaired_<name>_<UTC %Y%m%d%H%M%S of the createImage task>
    stamp = datetime.strptime(execution.end_date, "%Y-%m-%dT%H:%M:%SZ").strftime("%Y%m%d%H%M%S")
    assert image.image_name == f"repaired_web_{stamp}"


def test_repaired_image_has_no_family_tags_or_description(env: CloudEnv, failing_image: str) -> None:
    # Given a source image with a family, a tag and a description, repaired successfully
    execution = run_to_end(env, start_repair(env, repair_parameters(failing_image)).execution_id)
    # When the new image is described
    image = describe_image(env, json.loads(execution.outputs)["imageId"])
    # Then none of them was carried over (the template images a repaired data disk)
    assert image.image_family == ""
    assert image.description == ""
    assert image.tags.tag == []


def test_repaired_image_is_creating_then_available(env: CloudEnv, failing_image: str) -> None:
    # Given a repair that has just succeeded
    execution = run_to_end(env, start_repair(env, repair_parameters(failing_image)).execution_id)
    new_image = json.loads(execution.outputs)["imageId"]
    # When the new image is described right away, then after the clock moves on
    first = describe_image(env, new_image).status
    advance_until(env, lambda: describe_image(env, new_image).status != "Creating")
    # Then it was Creating (the template does not wait for it) and becomes Available
    assert first == "Creating"
    assert describe_image(env, new_image).status == "Available"


def test_repair_of_nvme_only_leaves_fstab_failing(env: CloudEnv, failing_image: str) -> None:
    # Given an image failing Nvme and Fstab, repaired with repairItems [nvme]
    parameters = repair_parameters(failing_image, repairItems=["nvme"])
    execution = run_to_end(env, start_repair(env, parameters).execution_id)
    new_image = json.loads(execution.outputs)["imageId"]
    # When the repaired image's own check finishes
    advance_until(env, lambda: check_finished(env, new_image))
    # Then only Nvme was fixed
    assert failing_check_items(env, new_image) == ["Fstab"]


def test_repair_of_all_makes_the_check_pass(env: CloudEnv, failing_image: str) -> None:
    # Given an image failing Nvme and Fstab, repaired with repairItems [all]
    parameters = repair_parameters(failing_image, repairItems=["all"])
    execution = run_to_end(env, start_repair(env, parameters).execution_id)
    new_image = json.loads(execution.outputs)["imageId"]
    # When the repaired image's own check finishes
    advance_until(env, lambda: check_finished(env, new_image))
    # Then no item is at risk any more
    assert failing_check_items(env, new_image) == []


def test_repair_of_a_windows_image_fails_naming_linux(env: CloudEnv) -> None:
    # Given an Available Windows custom image
    image_id = bake_image(env, "i-win1", "win", detection=False)
    # When the repair template runs on it
    execution = run_to_end(env, start_repair(env, repair_parameters(image_id)).execution_id)
    # Then the execution fails at checkImage, and says the template repairs Linux images only
    assert execution.status == "Failed"
    assert "Linux" in execution.status_message
    assert json.loads(execution.outputs) == {}


def test_repair_of_an_arm64_image_with_an_x64_base_image_fails(env: CloudEnv) -> None:
    # Given an Available arm64 custom image
    image_id = bake_image(env, "i-arm1", "arm", detection=False)
    images_before = own_image_ids(env)
    # When the repair runs with the x86_64 base image
    execution = run_to_end(env, start_repair(env, repair_parameters(image_id, baseImageId=BASE_X64)).execution_id)
    # Then the execution fails, names the architecture mismatch, and makes no image
    assert execution.status == "Failed"
    assert "baseImageId" in execution.status_message
    assert "arm64" in execution.status_message
    assert own_image_ids(env) == images_before


# -- StartExecution: bad requests ------------------------------------------------------------------


@pytest.mark.parametrize(
    "parameter", ["zoneId", "repairImageId", "baseImageId", "instanceType", "securityGroupId", "vSwitchId"]
)
def test_start_execution_without_a_required_parameter_is_refused(env: CloudEnv, parameter: str) -> None:
    # Given repair parameters lacking one required parameter
    parameters = repair_parameters("m-bp1whatever", **{parameter: None})
    # When the repair is started
    with pytest.raises(ClientException) as caught:
        start_repair(env, parameters)
    # Then it is refused as InvalidParameter naming the parameter, and no execution exists
    assert caught.value.code == "InvalidParameter"
    assert caught.value.status_code == 400
    assert parameter in caught.value.data["Message"]
    assert env.oos.list_executions(oos_models.ListExecutionsRequest(region_id=env.region)).body.total_count == 0


def test_start_execution_with_an_unknown_parameter_is_refused(env: CloudEnv) -> None:
    # Given repair parameters with a parameter the template does not define
    parameters = repair_parameters("m-bp1whatever", imageName="typo")
    # When the repair is started
    with pytest.raises(ClientException) as caught:
        start_repair(env, parameters)
    # Then it is refused naming that parameter
    assert caught.value.code == "InvalidParameter"
    assert caught.value.status_code == 400
    assert "imageName" in caught.value.data["Message"]


def test_start_execution_with_a_base_image_outside_the_allowed_values_is_refused(env: CloudEnv) -> None:
    # Given a baseImageId that is not one of the template's AllowedValues
    parameters = repair_parameters("m-bp1whatever", baseImageId="ubuntu_22_04_x64_20G_alibase_20240101.vhd")
    # When the repair is started
    with pytest.raises(ClientException) as caught:
        start_repair(env, parameters)
    # Then it is refused naming baseImageId
    assert caught.value.code == "InvalidParameter"
    assert caught.value.status_code == 400
    assert "baseImageId" in caught.value.data["Message"]


def test_start_execution_with_an_unknown_repair_item_is_refused(env: CloudEnv) -> None:
    # Given repairItems with a value outside the template's allowed list
    parameters = repair_parameters("m-bp1whatever", repairItems=["nvme", "kernel"])
    # When the repair is started
    with pytest.raises(ClientException) as caught:
        start_repair(env, parameters)
    # Then it is refused naming repairItems
    assert caught.value.code == "InvalidParameter"
    assert caught.value.status_code == 400
    assert "repairItems" in caught.value.data["Message"]


def test_start_execution_of_an_unknown_template_is_not_found(env: CloudEnv) -> None:
    # Given a template name that does not exist
    request = oos_models.StartExecutionRequest(region_id=env.region, template_name="ACS-ECS-NoSuchTemplate")
    # When it is started
    with pytest.raises(ClientException) as caught:
        env.oos.start_execution(request)
    # Then the answer is 404 EntityNotExists.Template
    assert caught.value.code == "EntityNotExists.Template"
    assert caught.value.status_code == 404
    assert "ACS-ECS-NoSuchTemplate" in caught.value.data["Message"]


# -- ListExecutions --------------------------------------------------------------------------------


def test_list_executions_filters_by_execution_id(env: CloudEnv) -> None:
    # Given two executions
    first = start_repair(env, repair_parameters("m-bp1first")).execution_id
    start_repair(env, repair_parameters("m-bp1second"))
    # When executions are listed by the first one's id
    body = env.oos.list_executions(oos_models.ListExecutionsRequest(region_id=env.region, execution_id=first)).body
    # Then only that one comes back
    assert [e.execution_id for e in body.executions] == [first]
    assert body.total_count == 1


def test_list_executions_filters_by_status(env: CloudEnv, failing_image: str) -> None:
    # Given one execution that fails (unknown image) and one still running
    failed = start_repair(env, repair_parameters("m-bp1doesnotexist")).execution_id
    env.cloud.advance(60)
    running = start_repair(env, repair_parameters(failing_image)).execution_id
    # When executions are listed by status
    by_status = {
        status: [
            e.execution_id
            for e in env.oos.list_executions(
                oos_models.ListExecutionsRequest(region_id=env.region, status=status)
            ).body.executions
        ]
        for status in ("Failed", "Running", "Success")
    }
    # Then each status lists its own execution only
    assert by_status == {"Failed": [failed], "Running": [running], "Success": []}


def test_list_executions_filters_by_template_name_substring(env: CloudEnv) -> None:
    # Given one execution of the repair template
    execution_id = start_repair(env, repair_parameters("m-bp1any")).execution_id

    def listed(name: str) -> list[str]:
        request = oos_models.ListExecutionsRequest(region_id=env.region, template_name=name)
        return [e.execution_id for e in env.oos.list_executions(request).body.executions]

    # When executions are listed by part of the template name, and by another name
    # Then the substring matches and the other name does not
    assert listed("RepairImage") == [execution_id]
    assert listed("ACS-ECS-CreateImage") == []


def test_list_executions_filters_by_tags(env: CloudEnv) -> None:
    # Given two executions with different tags
    tagged = start_repair(env, repair_parameters("m-bp1a"), tags={"team": "img", "bake": "b1"}).execution_id
    start_repair(env, repair_parameters("m-bp1b"), tags={"team": "other"})
    # When executions are listed by one tag
    request = oos_models.ListExecutionsRequest(region_id=env.region, tags={"team": "img"})
    executions = env.oos.list_executions(request).body.executions
    # Then only the execution carrying it comes back, with all its tags
    assert [e.execution_id for e in executions] == [tagged]
    assert executions[0].tags == {"team": "img", "bake": "b1"}


def test_list_executions_pages_with_next_token(env: CloudEnv) -> None:
    # Given twelve executions
    started = {start_repair(env, repair_parameters(f"m-bp1page{n}")).execution_id for n in range(12)}

    # When they are listed ten at a time
    def page(token: str | None) -> Any:
        request = oos_models.ListExecutionsRequest(region_id=env.region, max_results=10, next_token=token)
        return env.oos.list_executions(request).body

    first = page(None)
    second = page(first.next_token)
    # Then the pages hold 10 and 2 executions, none twice, all of them together, and the last has no token
    first_ids = [e.execution_id for e in first.executions]
    second_ids = [e.execution_id for e in second.executions]
    assert (len(first_ids), len(second_ids)) == (10, 2)
    assert set(first_ids) | set(second_ids) == started
    assert not set(first_ids) & set(second_ids)
    assert first.total_count == 12
    assert first.next_token
    assert not second.next_token


# -- CancelExecution, ClientToken ------------------------------------------------------------------


def test_cancelled_execution_creates_no_image(env: CloudEnv, failing_image: str) -> None:
    # Given a running repair
    execution_id = start_repair(env, repair_parameters(failing_image)).execution_id
    images_before = own_image_ids(env)
    env.cloud.advance(60)
    # When it is cancelled and the clock goes well past the repair time
    env.oos.cancel_execution(oos_models.CancelExecutionRequest(region_id=env.region, execution_id=execution_id))
    env.cloud.advance(REPAIR_SECONDS * 2)
    # Then it is Cancelled, and no image was made
    execution = get_execution(env, execution_id)
    assert execution.status == "Cancelled"
    assert json.loads(execution.outputs) == {}
    assert own_image_ids(env) == images_before


def test_cancel_of_an_unknown_execution_is_not_found(env: CloudEnv) -> None:
    # Given no execution at all
    request = oos_models.CancelExecutionRequest(region_id=env.region, execution_id="exec-bp1doesnotexist")
    # When an unknown execution is cancelled
    with pytest.raises(ClientException) as caught:
        env.oos.cancel_execution(request)
    # Then the answer is 404 naming the execution
    assert caught.value.status_code == 404
    assert caught.value.code == "EntityNotExists.Execution"
    assert "exec-bp1doesnotexist" in caught.value.data["Message"]


def test_start_execution_with_the_same_client_token_returns_the_same_execution(
    env: CloudEnv, failing_image: str
) -> None:
    # Given a repair started with a ClientToken
    parameters = repair_parameters(failing_image)
    first = start_repair(env, parameters, client_token="bake-1-attempt-1")
    # When the same request is sent again (a retried delivery)
    second = start_repair(env, parameters, client_token="bake-1-attempt-1")
    # Then the same execution comes back and only one exists
    assert second.execution_id == first.execution_id
    listed = env.oos.list_executions(oos_models.ListExecutionsRequest(region_id=env.region)).body
    assert [e.execution_id for e in listed.executions] == [first.execution_id]


@pytest.mark.parametrize(
    ("quotas", "task", "code"),
    [({"images": 1}, "createImage", "QuotaExceed.Image"), ({"snapshots": 1}, "createSnapshot", "QuotaExceed.Snapshot")],
)
def test_repair_beyond_the_quotas_fails_with_the_quota_error(
    make_env: Callable[..., CloudEnv], quotas: dict[str, int], task: str, code: str
) -> None:
    # Given a quota of one custom image (or one snapshot), used by the image to repair
    env = make_env({**SCENARIO, "quotas": quotas})
    image_id = bake_image(env, "i-web1", "web")
    # When a repair runs (its createSnapshot and createImage tasks need one more of each)
    execution = run_to_end(env, start_repair(env, repair_parameters(image_id)).execution_id)
    # Then it fails naming the task and the quota error, and made no image
    assert execution.status == "Failed"
    assert execution.status_message.startswith(f"{task}: {code}")
    assert own_image_ids(env) == {image_id}


# -- events ----------------------------------------------------------------------------------------


def test_failed_execution_publishes_started_and_failed_events(env: CloudEnv) -> None:
    # Given the default scenario (oos_events: documented -- until issue 10 the default was "failed", after the
    # 2023 OOS doc; the current doc says events fire on Started, Success and Failed, so the expectation changed)
    # When a repair of an image that does not exist runs to its end
    execution = run_to_end(env, start_repair(env, repair_parameters("m-bp1doesnotexist")).execution_id)
    # Then a StatusChange event was published for Started and for Failed, on the default bus
    assert execution.status == "Failed"
    events = status_change_events(env, execution.execution_id)
    assert [e["data"]["status"] for e in events] == ["Started", "Failed"]
    assert {e["source"] for e in events} == {"acs.oos"}
    assert {e["aliyuneventbusname"] for e in events} == {"default"}
    assert {e["data"]["templateName"] for e in events} == {TEMPLATE}


def test_successful_execution_publishes_started_and_success_by_default(env: CloudEnv, failing_image: str) -> None:
    # Given the default scenario (oos_events: documented; it was "failed" before the OOS doc changed)
    # When a repair runs to Success
    execution = run_to_end(env, start_repair(env, repair_parameters(failing_image)).execution_id)
    # Then Started and Success were published, and not the undocumented Running
    assert execution.status == "Success"
    assert [e["data"]["status"] for e in status_change_events(env, execution.execution_id)] == ["Started", "Success"]


def test_only_failures_are_published_with_oos_events_failed(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario with oos_events: failed (the 2023 edition of the OOS doc)
    env = make_env({**SCENARIO, "oos_events": "failed"})
    image_id = bake_image(env, "i-web1", "web")
    # When one repair runs to Success and one of a missing image runs to Failed
    success = run_to_end(env, start_repair(env, repair_parameters(image_id)).execution_id)
    failed = run_to_end(env, start_repair(env, repair_parameters("m-bp1doesnotexist")).execution_id)
    # Then only the failure was published
    assert status_change_events(env, success.execution_id) == []
    assert [e["data"]["status"] for e in status_change_events(env, failed.execution_id)] == ["Failed"]


def test_every_status_change_is_published_with_oos_events_all(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario with oos_events: all
    env = make_env({**SCENARIO, "oos_events": "all"})
    image_id = bake_image(env, "i-web1", "web")
    # When a repair runs to Success
    execution = run_to_end(env, start_repair(env, repair_parameters(image_id)).execution_id)
    # Then every status change was published, in order
    statuses = [e["data"]["status"] for e in status_change_events(env, execution.execution_id)]
    assert statuses == ["Started", "Running", "Success"]


def test_start_execution_publishes_an_actiontrail_api_call(env: CloudEnv) -> None:
    # Given a cursor on the event log
    cursor = env.cloud.events.cursor
    # When a repair is started
    start_repair(env, repair_parameters("m-bp1any"))
    # Then an oos:ActionTrail:ApiCall event for StartExecution was published
    calls = [e.event for e in env.cloud.events.read(cursor) if e.event["type"] == "oos:ActionTrail:ApiCall"]
    assert [e["data"]["eventName"] for e in calls] == ["StartExecution"]
    assert calls[0]["source"] == "acs.oos"
    assert calls[0]["data"]["requestParameters"]["TemplateName"] == TEMPLATE
