"""ECS instances and disks through the real SDK: DescribeInstances, DescribeDisks, StopInstance, StartInstance."""

from __future__ import annotations

import json

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.integration._ecs import (
    assert_api_error,
    describe_instance,
    disks_of,
    events_of_type,
    instance_status,
    tags_of,
)

WEB = {
    "id": "i-web1",
    "name": "web-1",
    "disks": [{"type": "system", "size": 40}, {"type": "data", "size": 100}],
    "tags": {"env": "prod", "team": "img"},
}


def _describe(env, **filters):
    return env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=env.region, **filters)).body


def _ids(body) -> list[str]:
    return [i.instance_id for i in body.instances.instance]


# -- DescribeInstances ------------------------------------------------------------------------------


def test_describe_instances_filters_by_instance_ids_json_array(make_env):
    # Given three instances
    env = make_env({"instances": [{"id": "i-a"}, {"id": "i-b"}, {"id": "i-c"}]})

    # When asking for two of them with the JSON-array InstanceIds param
    body = _describe(env, instance_ids=json.dumps(["i-a", "i-c"]))

    # Then exactly those two come back
    assert sorted(_ids(body)) == ["i-a", "i-c"]
    assert body.total_count == 2


def test_describe_instances_with_unknown_ids_returns_an_empty_list(make_env):
    # Given one instance
    env = make_env({"instances": [{"id": "i-a"}]})

    # When asking for an id that does not exist
    body = _describe(env, instance_ids=json.dumps(["i-doesnotexist"]))

    # Then the answer is an empty list (the container is there), not an error
    assert body.instances.instance == []
    assert body.total_count == 0


def test_describe_instances_rejects_instance_ids_that_are_not_a_json_array(make_env):
    # Given a region
    env = make_env({"instances": [{"id": "i-a"}]})

    # When InstanceIds is a bare id instead of a JSON array
    with pytest.raises(ClientException) as excinfo:
        _describe(env, instance_ids="i-a")

    # Then it is an invalid parameter naming InstanceIds
    assert_api_error(excinfo.value, "InvalidParameter", 400, "InstanceIds")


def test_describe_instances_filters_by_status(make_env):
    # Given one running and one stopped instance
    env = make_env({"instances": [{"id": "i-run"}, {"id": "i-stop", "status": "Stopped"}]})

    # When filtering on Status=Stopped
    body = _describe(env, status="Stopped")

    # Then only the stopped one comes back
    assert _ids(body) == ["i-stop"]


def test_describe_instances_rejects_an_unknown_status(make_env):
    # Given a region
    env = make_env({"instances": [{"id": "i-a"}]})

    # When filtering on a status ECS does not have
    with pytest.raises(ClientException) as excinfo:
        _describe(env, status="Sleeping")

    # Then it is InvalidStatus.NotFound
    assert_api_error(excinfo.value, "InvalidStatus.NotFound", 404, "Sleeping")


def test_describe_instances_filters_by_tag_key_and_value(make_env):
    # Given instances tagged differently
    env = make_env(
        {
            "instances": [
                {"id": "i-prod", "tags": {"env": "prod"}},
                {"id": "i-dev", "tags": {"env": "dev"}},
                {"id": "i-none"},
            ]
        }
    )

    # When filtering on Tag env=prod
    body = _describe(env, tag=[ecs_models.DescribeInstancesRequestTag(key="env", value="prod")])

    # Then only the prod instance matches
    assert _ids(body) == ["i-prod"]


def test_describe_instances_tag_filter_with_key_only_matches_any_value(make_env):
    # Given instances with and without an env tag
    env = make_env(
        {
            "instances": [
                {"id": "i-prod", "tags": {"env": "prod"}},
                {"id": "i-dev", "tags": {"env": "dev"}},
                {"id": "i-none"},
            ]
        }
    )

    # When filtering on the key alone
    body = _describe(env, tag=[ecs_models.DescribeInstancesRequestTag(key="env")])

    # Then every instance carrying the key matches
    assert sorted(_ids(body)) == ["i-dev", "i-prod"]


def test_describe_instances_pages_with_next_token_and_max_results(make_env):
    # Given five instances
    env = make_env({"instances": [{"id": f"i-{n}"} for n in range(5)]})

    # When reading them two at a time with NextToken
    seen, token, pages = [], None, 0
    while True:
        body = _describe(env, max_results=2, next_token=token)
        pages += 1
        seen += _ids(body)
        assert len(body.instances.instance) <= 2
        token = body.next_token
        if not token:
            break

    # Then three pages hold every instance exactly once
    assert pages == 3
    assert sorted(seen) == [f"i-{n}" for n in range(5)]
    assert body.total_count == 5


def test_describe_instances_pages_with_page_number_and_page_size(make_env):
    # Given five instances
    env = make_env({"instances": [{"id": f"i-{n}"} for n in range(5)]})

    # When reading page 3 of size 2
    body = _describe(env, page_number=3, page_size=2)

    # Then it holds the last instance and reports the paging it used
    assert len(body.instances.instance) == 1
    assert (body.page_number, body.page_size, body.total_count) == (3, 2, 5)


def test_describe_instances_rejects_max_results_above_100(make_env):
    # Given a region
    env = make_env({"instances": [{"id": "i-a"}]})

    # When asking for more than 100 per page
    with pytest.raises(ClientException) as excinfo:
        _describe(env, max_results=101)

    # Then MaxResults is refused
    assert_api_error(excinfo.value, "InvalidParameter", 400, "MaxResults")


def test_describe_instances_renders_the_full_container_nesting(make_env):
    # Given a tagged instance with a data disk
    env = make_env({"instances": [WEB]})

    # When describing it
    instance = describe_instance(env, "i-web1")

    # Then every list sits in its XML-style double container
    assert tags_of(instance) == {"env": "prod", "team": "img"}
    assert instance.tags.tag[0].tag_key == "env"
    assert instance.operation_locks.lock_reason == []
    assert instance.security_group_ids.security_group_id == ["sg-local"]
    assert instance.vpc_attributes.private_ip_address.ip_address == ["172.16.0.10"]
    assert (instance.instance_name, instance.region_id, instance.ostype) == ("web-1", env.region, "linux")
    assert instance.instance_type_family == "ecs.g7"


def test_describe_instances_reports_a_security_lock_in_operation_locks(make_env):
    # Given an instance locked for security
    env = make_env({"instances": [{"id": "i-locked", "locks": ["security"]}]})

    # When describing it
    instance = describe_instance(env, "i-locked")

    # Then OperationLocks.LockReason[] names the lock
    assert [lock.lock_reason for lock in instance.operation_locks.lock_reason] == ["security"]


def test_describe_instances_reports_local_storage_of_an_i_series_instance(make_env):
    # Given an i3 instance (local NVMe SSD)
    env = make_env({"instances": [{"id": "i-i3", "type": "ecs.i3.xlarge"}]})

    # When describing it
    instance = describe_instance(env, "i-i3")

    # Then it reports one local disk
    assert instance.local_storage_amount == 1
    assert instance.local_storage_capacity > 0


def test_describe_instances_without_region_id_is_missing_parameter(make_env):
    # Given a region
    env = make_env({"instances": [{"id": "i-a"}]})

    # When the request carries no RegionId
    with pytest.raises(ClientException) as excinfo:
        env.ecs.describe_instances(ecs_models.DescribeInstancesRequest())

    # Then RegionId is reported missing
    assert_api_error(excinfo.value, "MissingParameter", 400, "RegionId")


# -- the instance state machine -----------------------------------------------------------------------


def test_pending_instance_becomes_running_after_pending_seconds(make_env):
    # Given a pending instance and a 30 s boot
    env = make_env({"timings": {"pending_seconds": 30}, "instances": [{"id": "i-new", "status": "Pending"}]})

    # When 29 s pass, then one more
    env.cloud.advance(29)
    before = instance_status(env, "i-new")
    env.cloud.advance(1)

    # Then it was still Pending and is now Running
    assert before == "Pending"
    assert instance_status(env, "i-new") == "Running"


def test_stop_instance_goes_stopping_then_stopped_on_the_clock(make_env):
    # Given a running instance and a 10 s stop
    env = make_env({"timings": {"stop_seconds": 10}, "instances": [{"id": "i-a"}]})

    # When stopping it
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-a"))

    # Then it is Stopping at once, still Stopping after 9 s and Stopped after 10 s
    assert instance_status(env, "i-a") == "Stopping"
    env.cloud.advance(9)
    assert instance_status(env, "i-a") == "Stopping"
    env.cloud.advance(1)
    assert instance_status(env, "i-a") == "Stopped"


def test_stop_instance_emits_state_change_events(make_env):
    # Given a running instance
    env = make_env({"instances": [{"id": "i-a"}]})

    # When it stops
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-a"))
    env.cloud.advance(60)

    # Then ecs:Instance:StateChange events report Stopping then Stopped for it
    events = events_of_type(env, "ecs:Instance:StateChange")
    assert [e["data"]["state"] for e in events] == ["Stopping", "Stopped"]
    assert {e["data"]["resourceId"] for e in events} == {"i-a"}
    assert all(e["source"] == "acs.ecs" for e in events)
    assert events[0]["subject"] == "acs.ecs:cn-hangzhou:1234567890123456:i-a"  # Alibaba's service-event subject form


def test_force_stop_stops_sooner_than_a_normal_stop(make_env):
    # Given a running instance whose normal stop takes 10 s
    env = make_env({"timings": {"stop_seconds": 10}, "instances": [{"id": "i-a"}]})

    # When force-stopping it
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-a", force_stop=True))
    env.cloud.advance(1)

    # Then it is already Stopped
    assert instance_status(env, "i-a") == "Stopped"


def test_start_instance_goes_starting_then_running(make_env):
    # Given a stopped instance and a 15 s start
    env = make_env({"timings": {"start_seconds": 15}, "instances": [{"id": "i-a", "status": "Stopped"}]})

    # When starting it
    env.ecs.start_instance(ecs_models.StartInstanceRequest(instance_id="i-a"))

    # Then it is Starting, and Running once 15 s have passed
    assert instance_status(env, "i-a") == "Starting"
    env.cloud.advance(15)
    assert instance_status(env, "i-a") == "Running"


def test_stop_instance_on_a_stopped_instance_is_incorrect_instance_status(make_env):
    # Given a stopped instance
    env = make_env({"instances": [{"id": "i-a", "status": "Stopped"}]})

    # When stopping it again
    with pytest.raises(ClientException) as excinfo:
        env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-a"))

    # Then IncorrectInstanceStatus (403 for StopInstance) names the status
    assert_api_error(excinfo.value, "IncorrectInstanceStatus", 403, "Stopped")


def test_stop_instance_while_stopping_is_incorrect_instance_status(make_env):
    # Given an instance that is already stopping
    env = make_env({"instances": [{"id": "i-a"}]})
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-a"))

    # When stopping it a second time
    with pytest.raises(ClientException) as excinfo:
        env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-a"))

    # Then the second stop is refused
    assert_api_error(excinfo.value, "IncorrectInstanceStatus", 403, "Stopping")


def test_start_instance_on_a_running_instance_is_incorrect_instance_status(make_env):
    # Given a running instance
    env = make_env({"instances": [{"id": "i-a"}]})

    # When starting it
    with pytest.raises(ClientException) as excinfo:
        env.ecs.start_instance(ecs_models.StartInstanceRequest(instance_id="i-a"))

    # Then IncorrectInstanceStatus names the current status
    assert_api_error(excinfo.value, "IncorrectInstanceStatus", 403, "Running")


def test_stop_instance_on_a_security_locked_instance_is_refused(make_env):
    # Given an instance locked for security
    env = make_env({"instances": [{"id": "i-locked", "locks": ["security"]}]})

    # When stopping it
    with pytest.raises(ClientException) as excinfo:
        env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-locked"))

    # Then InstanceLockedForSecurity, and it keeps running
    assert_api_error(excinfo.value, "InstanceLockedForSecurity", 403, "locked for security")
    assert instance_status(env, "i-locked") == "Running"


@pytest.mark.parametrize("instance_type", ["ecs.i3.xlarge", "ecs.d1ne.2xlarge"])
def test_stop_instance_with_local_disks_needs_confirm_stop(make_env, instance_type):
    # Given an instance with local disks (i-series SSD, d-series HDD)
    env = make_env({"instances": [{"id": "i-local", "type": instance_type}]})

    # When stopping it without ConfirmStop
    with pytest.raises(ClientException) as excinfo:
        env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-local"))

    # Then the stop is refused and the instance keeps running
    assert_api_error(excinfo.value, "InstanceType.ParameterMismatch", 403, "ConfirmStop")
    assert instance_status(env, "i-local") == "Running"


def test_stop_instance_with_local_disks_and_confirm_stop_stops(make_env):
    # Given an i3 instance
    env = make_env({"instances": [{"id": "i-local", "type": "ecs.i3.xlarge"}]})

    # When stopping it with ConfirmStop=True
    env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-local", confirm_stop=True))
    env.cloud.advance(60)

    # Then it stops
    assert instance_status(env, "i-local") == "Stopped"


def test_stop_instance_dry_run_validates_without_stopping(make_env):
    # Given a running instance
    env = make_env({"instances": [{"id": "i-a"}]})

    # When stopping it with DryRun=True
    with pytest.raises(ClientException) as excinfo:
        env.ecs.stop_instance(ecs_models.StopInstanceRequest(instance_id="i-a", dry_run=True))

    # Then DryRunOperation, and nothing happened
    assert_api_error(excinfo.value, "DryRunOperation", 400, "DryRun")
    assert instance_status(env, "i-a") == "Running"


@pytest.mark.parametrize("action", ["stop_instance", "start_instance"])
def test_unknown_instance_is_not_found(make_env, action):
    # Given a region without that instance
    env = make_env({"instances": [{"id": "i-a"}]})
    request = getattr(ecs_models, "StopInstanceRequest" if action == "stop_instance" else "StartInstanceRequest")

    # When acting on an unknown instance id
    with pytest.raises(ClientException) as excinfo:
        getattr(env.ecs, action)(request(instance_id="i-nope"))

    # Then 404 InvalidInstanceId.NotFound
    assert_api_error(excinfo.value, "InvalidInstanceId.NotFound", 404, "InstanceId")


def test_stop_instance_without_instance_id_is_missing_parameter(make_env):
    # Given a region
    env = make_env({"instances": [{"id": "i-a"}]})

    # When StopInstance carries no InstanceId
    with pytest.raises(ClientException) as excinfo:
        env.ecs.stop_instance(ecs_models.StopInstanceRequest())

    # Then InstanceId is reported missing
    assert_api_error(excinfo.value, "MissingParameter", 400, "InstanceId")


# -- DescribeDisks ---------------------------------------------------------------------------------


def test_describe_disks_lists_the_system_and_data_disks_of_an_instance(make_env):
    # Given an instance with a 40 GiB system disk and a 100 GiB data disk
    env = make_env({"instances": [WEB]})

    # When describing its disks
    disks = disks_of(env, "i-web1")

    # Then both are attached, in use, with their device, size and a serial number
    by_type = {d.type: d for d in disks}
    assert set(by_type) == {"system", "data"}
    assert (by_type["system"].device, by_type["system"].size) == ("/dev/xvda", 40)
    assert (by_type["data"].device, by_type["data"].size) == ("/dev/xvdb", 100)
    for disk in disks:
        assert disk.instance_id == "i-web1"
        assert disk.status == "In_use"
        assert disk.category == "cloud_essd"
        assert disk.serial_number
    assert by_type["system"].serial_number != by_type["data"].serial_number


@pytest.mark.parametrize("disk_type", ["system", "data"])
def test_describe_disks_filters_by_disk_type(make_env, disk_type):
    # Given an instance with a system and a data disk
    env = make_env({"instances": [WEB]})

    # When filtering on DiskType
    disks = disks_of(env, "i-web1", disk_type=disk_type)

    # Then only that type comes back
    assert [d.type for d in disks] == [disk_type]


def test_describe_disks_filters_by_disk_ids_json_array(make_env):
    # Given two instances
    env = make_env({"instances": [WEB, {"id": "i-b"}]})
    wanted = disks_of(env, "i-b")[0].disk_id

    # When asking for one disk id as a JSON array
    body = env.ecs.describe_disks(
        ecs_models.DescribeDisksRequest(region_id=env.region, disk_ids=json.dumps([wanted]))
    ).body

    # Then exactly that disk comes back
    assert [d.disk_id for d in body.disks.disk] == [wanted]


def test_describe_disks_rejects_an_unknown_disk_type(make_env):
    # Given a region
    env = make_env({"instances": [WEB]})

    # When filtering on an unknown DiskType
    with pytest.raises(ClientException) as excinfo:
        disks_of(env, "i-web1", disk_type="swap")

    # Then the value is refused
    assert_api_error(excinfo.value, "InvalidDiskType.ValueNotSupported", 400, "swap")


def test_describe_disks_shows_the_local_ssd_of_an_i3_instance(make_env):
    # Given an ecs.i3.xlarge instance (local NVMe SSD)
    env = make_env({"instances": [{"id": "i-i3", "type": "ecs.i3.xlarge"}]})

    # When describing its disks
    disks = disks_of(env, "i-i3")

    # Then besides the cloud system disk there is a non-portable local SSD data disk
    local = [d for d in disks if d.category.startswith("local_")]
    assert [(d.type, d.category, d.portable) for d in local] == [("data", "local_ssd_pro", False)]
    assert [d.category for d in disks if d.type == "system"] == ["cloud_essd"]


def test_describe_disks_shows_the_local_hdd_of_a_d1ne_instance(make_env):
    # Given an ecs.d1ne.2xlarge instance (local HDDs)
    env = make_env({"instances": [{"id": "i-d1", "type": "ecs.d1ne.2xlarge"}]})

    # When describing its data disks
    disks = disks_of(env, "i-d1", disk_type="data")

    # Then they are local HDDs
    assert [d.category for d in disks] == ["local_hdd_pro"]


def test_the_adapter_reads_up_to_100_instances_a_call_by_id_over_the_wire() -> None:
    # Given 130 instances (DescribeInstances takes at most 100 ids, and pages 10 at a time by default)
    from bakery.adapters.ecs import Ecs
    from bakery.clients import reset_clients
    from bakery.config import Settings
    from localcloud import LocalCloud, Scenario
    from localcloud.testing import running

    cloud = LocalCloud(Scenario.from_mapping({"instances": [{"id": f"i-{n:03d}"} for n in range(130)]}))
    with running(cloud, "inprocess") as env:
        reset_clients()
        ecs = Ecs(Settings(region=env.region, cloud_endpoint=env.endpoint, access_key_id="ak", access_key_secret="sk"))
        wanted = [f"i-{n:03d}" for n in range(130)] + ["i-gone"]
        # When they are read by id (one that does not exist among them)
        found = ecs.instances(wanted)
        # Then every existing one comes back, in two calls (100 + 31 ids)
        assert sorted(i.instance_id for i in found) == wanted[:130]
        assert cloud.calls["DescribeInstances"] == 2
    cloud.close()
