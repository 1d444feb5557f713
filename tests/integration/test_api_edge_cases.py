"""Edge cases an outside tester tried through the real SDKs: each answers the documented error, never a
dropped connection."""

from __future__ import annotations

import json

import pytest
import requests
from alibabacloud_ecs20140526 import models as m
from alibabacloud_eventbridge20200401 import models as eb
from alibabacloud_tea_openapi.exceptions import ClientException

SCENARIO = {"instances": [{"id": "i-1"}]}


def _error(call) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("fields", "code", "status"),
    [
        ({"ostype": "bogus"}, "InvalidOSType", 404),
        ({"architecture": "bogus"}, "InvalidArchitecture", 404),
        ({"filter": [m.DescribeImagesRequestFilter(key="Nope", value="x")]}, "InvalidFilterKey.NotFound", 404),
        ({"tag": [m.DescribeImagesRequestTag(key=f"k{n}", value="v") for n in range(21)]}, "InvalidTagCount", 400),
        ({"status": "ALL,Available"}, "InvalidParameter", 400),
    ],
)
def test_describe_images_refuses_what_the_reference_calls_errors(make_env, fields, code, status) -> None:
    env = make_env(SCENARIO)
    error = _error(lambda: env.ecs.describe_images(m.DescribeImagesRequest(region_id=env.region, **fields)))
    assert (error.code, error.status_code) == (code, status)


def test_status_all_combined_with_another_value_says_so(make_env) -> None:
    env = make_env(SCENARIO)
    error = _error(
        lambda: env.ecs.describe_images(m.DescribeImagesRequest(region_id=env.region, status="ALL,Available"))
    )
    assert "ALL cannot be combined" in error.data["Message"]


def test_untag_resources_with_all_and_tag_keys_is_refused(make_env) -> None:
    env = make_env(SCENARIO)
    request = m.UntagResourcesRequest(region_id=env.region, resource_type="instance", resource_id=["i-1"],
                                      tag_key=["a"], all=True)  # fmt: skip
    assert _error(lambda: env.ecs.untag_resources(request)).code == "InvalidParameter.All"


def test_stop_instance_with_an_unknown_stopped_mode_is_refused(make_env) -> None:
    env = make_env(SCENARIO)
    error = _error(lambda: env.ecs.stop_instance(m.StopInstanceRequest(instance_id="i-1", stopped_mode="Bogus")))
    assert error.code == "InvalidParameter.StoppedMode"


def test_run_command_accepts_content_up_to_24_kb_of_base64(make_env) -> None:
    env = make_env(SCENARIO)
    script = "#" + "x" * (17 * 1024) + "\ntrue\n"  # 17 KB plain, ~23 KB in Base64: allowed (§2.13)
    body = env.ecs.run_command(m.RunCommandRequest(region_id=env.region, type="RunShellScript", command_content=script,
                                                   instance_id=["i-1"])).body  # fmt: skip
    assert body.invoke_id


def test_put_events_with_a_non_string_source_fails_that_entry_only(make_env) -> None:
    env = make_env(SCENARIO)
    env.eventbridge.create_event_bus(eb.CreateEventBusRequest(event_bus_name="b"))
    body = env.eventbridge.put_events(eb.PutEventsRequest(event_bus_name="b", event_list=[
        eb.PutEventsRequestEventList(id="1", source=2, type="t"),
        eb.PutEventsRequestEventList(id="2", source="s", type="t")])).body  # fmt: skip
    assert body.data.failed_entry_count == 1
    assert "Source must be a string" in body.data.entry_list[0].error_message


def test_a_form_body_that_is_not_utf8_is_a_400_not_a_dropped_connection(make_env) -> None:
    env = make_env(SCENARIO)
    response = requests.post(
        f"http://{env.endpoint}/", data=b"\xff=\xfe",
        headers={"x-acs-action": "PutEvents", "x-acs-version": "2020-04-01",
                 "content-type": "application/x-www-form-urlencoded"}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 400
    assert json.loads(response.text)["Code"] == "InvalidParameter"


def test_a_tag_key_that_is_not_a_single_string_is_refused(make_env) -> None:
    env = make_env(SCENARIO)
    response = requests.post(
        f"http://{env.endpoint}/?RegionId={env.region}&Tag.1.Key.X=a",
        headers={"x-acs-action": "DescribeInstances", "x-acs-version": "2014-05-26"}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 400 and response.json()["Code"] == "InvalidParameter"
