"""Scenario files: what loads, and what is refused with a message naming the key (localcloud/scenario.py)."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import localcloud.scenario as scenario_module
from localcloud import LocalCloud
from localcloud.faults import FaultSpecError
from localcloud.scenario import Scenario, ScenarioError


def docstring_example() -> str:
    """The YAML example of the module docstring: its indented block."""
    lines = (scenario_module.__doc__ or "").splitlines()
    block = [line for line in lines if line.startswith("    ") or not line.strip()]
    return textwrap.dedent("\n".join(block)).strip()


# Every key a scenario can have, at every level (the full schema).
FULL_SCENARIO = """
region: cn-shanghai
account_id: "9999888877776666"
seed: 123
start_time: 2026-02-01T10:30:00Z
oos_events: all
timings:
  image_seconds_per_gib: 5
  snapshot_seconds_per_gib: 3
  usable_seconds: 20
  check_seconds: 200
  repair_seconds: 900
  stop_seconds: 8
  start_seconds: 12
  pending_seconds: 25
  command_seconds: 1
  client_timeout_seconds: 30
quotas: {images: 10, snapshots: 50}
rate_limits: {DescribeImages: 10, CreateImage: 0.5}
instances:
  - id: i-web1
    type: ecs.g7.large
    status: Stopped
    name: web-1
    os: linux
    platform: CentOS
    os_name: CentOS 7.9 64 bit
    architecture: arm64
    zone: cn-shanghai-b
    image_id: centos_7_9_x64_20G_alibase_20240101.vhd
    disks:
      - {type: system, category: cloud_essd, size: 40, id: d-websys}
      - {type: data, category: cloud_efficiency, size: 100, encrypted: true}
    tags: {env: prod, empty: }
    locks: [financial]
    create_image_failures: 1
    guest:
      check_failures: [Nvme, Grub]
      secrets: [/root/.ssh/id_rsa]
      system_disk_free_mb: 500
      fstab_mismatch: true
      missing_dirs: [/lib]
      cloud_assistant: false
      os: centos
  - id: i-win1
    os: windows
    platform: Windows Server 2022
faults:
  - {action: CreateImage, code: ServiceUnavailable, nth: 2}
  - {action: DescribeImages, latency_ms: 50}
  - {events: duplicate, probability: 0.5, type: "ecs:Instance:StateChange"}
actions:
  - {tag: i-web1, key: "bakery:bake", value: "true"}
"""


def load(text: str) -> Scenario:
    return Scenario.from_mapping(yaml.safe_load(text))


def error_of(data: Any) -> str:
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_mapping(data)
    return str(caught.value)


# -- what loads ------------------------------------------------------------------------------------


def test_the_docstring_example_loads() -> None:
    # Given the example in the module docstring
    text = docstring_example()
    # When it is loaded
    scenario = load(text)
    # Then every value in it arrives
    assert scenario.region == "cn-hangzhou"
    assert scenario.account_id == "1234567890123456"
    assert scenario.seed == 7
    assert (scenario.timings.image_seconds_per_gib, scenario.timings.check_seconds) == (10, 300)
    assert scenario.timings.repair_seconds == 1200
    assert scenario.quotas.images == 100
    assert scenario.rate_limits == {"CreateImage": 5}
    [instance] = scenario.instances
    assert (instance.id, instance.type, instance.status, instance.os, instance.platform) == (
        "i-web1",
        "ecs.g7.large",
        "Running",
        "linux",
        "Ubuntu",
    )
    assert [(d.type, d.size) for d in instance.disks] == [("system", 40), ("data", 100)]
    assert instance.tags == {"env": "prod"}
    assert instance.guest.check_failures == ["Nvme"]
    assert instance.guest.secrets == ["/root/.ssh/id_rsa"]
    assert instance.guest.system_disk_free_mb == 5000
    assert scenario.faults == [{"action": "CreateImage", "code": "ServiceUnavailable", "nth": 2}]


def test_the_docstring_example_boots_a_cloud() -> None:
    # Given the docstring example
    scenario = load(docstring_example())
    # When a cloud is built from it
    cloud = LocalCloud(scenario)
    # Then its instance, rate limit and fault are in place
    assert list(cloud.ecs.instances) == ["i-web1"]
    assert cloud.faults.describe()["rate_limits"] == {"CreateImage": 5.0}
    assert cloud.faults.describe()["faults"] == [{"action": "CreateImage", "code": "ServiceUnavailable", "nth": 2}]


def test_the_full_schema_loads() -> None:
    # Given a scenario that uses every key at every level
    # When it is loaded
    scenario = load(FULL_SCENARIO)
    # Then every value arrives, typed
    assert (scenario.region, scenario.account_id, scenario.seed, scenario.oos_events) == (
        "cn-shanghai",
        "9999888877776666",
        123,
        "all",
    )
    assert scenario.start_time == datetime(2026, 2, 1, 10, 30, tzinfo=timezone.utc)
    assert scenario.timings.snapshot_per_gib == 3
    assert scenario.timings.client_timeout_seconds == 30
    assert (scenario.quotas.images, scenario.quotas.snapshots) == (10, 50)
    web, win = scenario.instances
    assert (web.status, web.architecture, web.zone, web.create_image_failures) == (
        "Stopped",
        "arm64",
        "cn-shanghai-b",
        1,
    )
    assert web.disks[0].id == "d-websys"
    assert web.disks[1].encrypted is True
    assert web.tags == {"env": "prod", "empty": ""}
    assert web.locks == ["financial"]
    assert web.guest.fstab_mismatch is True
    assert web.guest.cloud_assistant is False
    assert web.guest.missing_dirs == ["/lib"]
    assert (win.os, win.platform, [d.type for d in win.disks]) == ("windows", "Windows Server 2022", ["system"])
    assert len(scenario.faults) == 3
    assert scenario.actions == [{"tag": "i-web1", "key": "bakery:bake", "value": "true"}]


def test_the_full_schema_boots_a_cloud() -> None:
    # Given the full-schema scenario
    # When a cloud is built from it
    cloud = LocalCloud(load(FULL_SCENARIO))
    # Then region, account, clock, instances and faults are as described
    assert (cloud.region, cloud.account_id) == ("cn-shanghai", "9999888877776666")
    assert cloud.clock.iso() == "2026-02-01T10:30:00Z"
    assert sorted(cloud.ecs.instances) == ["i-web1", "i-win1"]
    assert len(cloud.faults.describe()["faults"]) == 3
    cloud.close()


def test_an_empty_scenario_gives_the_defaults() -> None:
    # Given an empty mapping
    # When it is loaded
    scenario = Scenario.from_mapping({})
    # Then the defaults apply
    assert scenario == Scenario()
    # The default was "failed" until issue 10: the current OOS system-events doc lists Started, Success and
    # Failed (the 2023 edition said Failed only), so the default follows the source that changed.
    assert scenario.oos_events == "documented"
    assert scenario.instances == []


@pytest.mark.parametrize("mode", ["documented", "failed", "all"])
def test_every_oos_events_mode_loads(mode: str) -> None:
    # Given a scenario naming an oos_events mode
    # When it is loaded
    scenario = Scenario.from_mapping({"oos_events": mode})
    # Then the mode is kept
    assert scenario.oos_events == mode


def test_an_instance_without_disks_gets_one_system_disk() -> None:
    # Given an instance with only an id
    # When it is loaded
    [instance] = Scenario.from_mapping({"instances": [{"id": "i-1"}]}).instances
    # Then it has the default system disk
    assert [(d.type, d.category, d.size) for d in instance.disks] == [("system", "cloud_essd", 40)]


def test_load_reads_a_yaml_file(tmp_path: Path) -> None:
    # Given the full scenario in a file
    path = tmp_path / "region.yml"
    path.write_text(FULL_SCENARIO)
    # When it is loaded from the file
    scenario = Scenario.load(path)
    # Then it is the same scenario, and knows where it came from
    assert scenario.seed == 123
    assert scenario.source == str(path)


def test_load_of_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    # Given an empty file
    path = tmp_path / "empty.yml"
    path.write_text("")
    # When it is loaded
    # Then the defaults apply
    assert Scenario.load(path).instances == []


# -- unknown keys, at every level -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "allowed"),
    [
        ({"regoin": "cn-hangzhou"}, "regoin", "region"),
        ({"timings": {"repair_secs": 1}}, "repair_secs", "repair_seconds"),
        ({"quotas": {"image": 1}}, "image", "images"),
        ({"instances": [{"id": "i-1", "typ": "ecs.g7.large"}]}, "typ", "type"),
        ({"instances": [{"id": "i-1", "disks": [{"type": "system", "sise": 40}]}]}, "sise", "size"),
        ({"instances": [{"id": "i-1", "guest": {"check_failure": ["Nvme"]}}]}, "check_failure", "check_failures"),
    ],
    ids=["top", "timings", "quotas", "instance", "disk", "guest"],
)
def test_an_unknown_key_names_the_key_and_the_allowed_ones(data: dict[str, Any], key: str, allowed: str) -> None:
    # Given a scenario with a typo at some level
    # When it is loaded
    message = error_of(data)
    # Then ScenarioError names the bad key and lists the allowed ones
    assert key in message
    assert "allowed" in message
    assert allowed in message


def test_the_source_key_is_not_accepted_from_the_file() -> None:
    # Given a scenario that tries to set its own source
    # When it is loaded
    # Then `source` is refused like any unknown key
    assert "source" in error_of({"source": "elsewhere"})


def test_errors_name_the_file(tmp_path: Path) -> None:
    # Given a scenario file with a typo in an instance
    path = tmp_path / "typo.yml"
    path.write_text("instances:\n  - {id: i-1, stauts: Running}\n")
    # When it is loaded
    with pytest.raises(ScenarioError) as caught:
        Scenario.load(path)
    # Then the message names the file, the instance and the key
    assert str(path) in str(caught.value)
    assert "instances[0]" in str(caught.value)
    assert "stauts" in str(caught.value)


# -- invalid values --------------------------------------------------------------------------------


def test_duplicate_instance_ids_are_refused() -> None:
    # Given two instances with the same id
    # When the scenario is loaded
    message = error_of({"instances": [{"id": "i-1"}, {"id": "i-1"}]})
    # Then the second one is named as the duplicate
    assert "instances[1]" in message
    assert "duplicate" in message
    assert "i-1" in message


@pytest.mark.parametrize(
    "disks",
    [[{"type": "data", "size": 100}], [{"type": "system"}, {"type": "system"}], []],
    ids=["no-system-disk", "two-system-disks", "no-disks"],
)
def test_an_instance_needs_exactly_one_system_disk(disks: list[dict[str, Any]]) -> None:
    # Given an instance without exactly one system disk
    # When the scenario is loaded
    message = error_of({"instances": [{"id": "i-1", "disks": disks}]})
    # Then the error says so for that instance
    assert "instances[0]" in message
    assert "system" in message


def test_a_disk_of_an_unknown_type_is_refused() -> None:
    # Given a disk whose type is neither system nor data
    # When the scenario is loaded
    message = error_of({"instances": [{"id": "i-1", "disks": [{"type": "system"}, {"type": "swap"}]}]})
    # Then the disk and the value are named
    assert "disks[1]" in message
    assert "swap" in message


def test_an_unknown_instance_status_is_refused() -> None:
    # Given an instance in a status instances cannot start in
    # When the scenario is loaded
    message = error_of({"instances": [{"id": "i-1", "status": "Deleted"}]})
    # Then the status key is named with the allowed values
    assert "instances[0].status" in message
    assert "Running" in message


def test_an_unknown_os_is_refused() -> None:
    # Given an instance with an OS other than linux or windows
    # When the scenario is loaded
    message = error_of({"instances": [{"id": "i-1", "os": "freebsd"}]})
    # Then the os key and the value are named
    assert "instances[0].os" in message
    assert "freebsd" in message


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"seed": "seven"}, "seed"),
        ({"seed": True}, "seed"),
        ({"start_time": "next tuesday"}, "start_time"),
        ({"oos_events": "some"}, "oos_events"),
        ({"timings": [1, 2]}, "timings"),
        ({"instances": [{"type": "ecs.g7.large"}]}, "id"),
        ({"instances": [{"id": "i-1", "guest": {"system_disk_free_mb": -1}}]}, "system_disk_free_mb"),
        ({"instances": [{"id": "i-1", "guest": {"secrets": ["relative/path"]}}]}, "secrets"),
        ({"instances": [{"id": "i-1", "disks": ["system"]}]}, "disks[0]"),
    ],
)
def test_a_value_of_the_wrong_shape_is_refused_naming_the_key(data: dict[str, Any], named: str) -> None:
    # Given a scenario with a value of the wrong shape
    # When it is loaded
    # Then ScenarioError names the key
    assert named in error_of(data)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"timings": {"repair_seconds": "fast"}}, "repair_seconds"),
        ({"instances": [{"id": "i-1", "locks": "security"}]}, "locks"),
        ({"instances": [{"id": "i-1", "tags": ["env"]}]}, "tags"),
        ({"instances": [{"id": "i-1", "disks": [{"type": "system", "size": "big"}]}]}, "size"),
        ({"instances": [{"id": 5}]}, "id"),
        ({"rate_limits": [1, 2]}, "rate_limits"),
        ({"faults": {"action": "CreateImage", "code": "X", "nth": 1}}, "faults"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(data: dict[str, Any], named: str) -> None:
    # Given a scenario with a value of the wrong type
    # When it is loaded
    # Then ScenarioError names the key
    assert named in error_of(data)


def test_malformed_faults_fail_when_the_cloud_boots() -> None:
    # Given a scenario built in code (bypassing the loader) whose fault has an unknown key
    scenario = Scenario(faults=[{"action": "CreateImage", "code": "X", "nth": 1, "every": 2}])
    # When a cloud is built from it
    # Then FaultSpecError names the key and the allowed ones
    with pytest.raises(FaultSpecError, match=r"every.*allowed"):
        LocalCloud(scenario)


def test_malformed_faults_fail_when_the_scenario_is_loaded() -> None:
    # Given a scenario whose fault has an unknown key
    data = {"faults": [{"action": "CreateImage", "code": "X", "nth": 1, "every": 2}]}
    # When it is loaded
    # Then the loader already refuses it, before any cloud is built, naming the key
    with pytest.raises(ScenarioError, match="every"):
        Scenario.from_mapping(data)


# -- Scenario.load on bad files --------------------------------------------------------------------


def test_load_of_a_missing_file_names_it(tmp_path: Path) -> None:
    # Given a path where no file is
    path = tmp_path / "nope.yml"
    # When it is loaded
    with pytest.raises(ScenarioError) as caught:
        Scenario.load(path)
    # Then the error names the file and says it is missing
    assert str(path) in str(caught.value)
    assert "no such scenario file" in str(caught.value)


def test_load_of_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    # Given a file that is not valid YAML
    path = tmp_path / "broken.yml"
    path.write_text("instances: [\n  {id: i-1\n")
    # When it is loaded
    with pytest.raises(ScenarioError) as caught:
        Scenario.load(path)
    # Then the error names the file and says the YAML is invalid
    assert str(path) in str(caught.value)
    assert "not valid YAML" in str(caught.value)


def test_load_of_a_yaml_list_is_refused(tmp_path: Path) -> None:
    # Given a YAML file whose top level is a list
    path = tmp_path / "list.yml"
    path.write_text("- id: i-1\n")
    # When it is loaded
    with pytest.raises(ScenarioError) as caught:
        Scenario.load(path)
    # Then the error says a scenario is a mapping
    assert "mapping" in str(caught.value)


# -- pre-existing images ---------------------------------------------------------------------------


def test_scenario_images_load_with_their_defaults() -> None:
    # Given a scenario with an image family's history
    scenario = Scenario.from_mapping({"images": [{"id": "m-web-v1", "family": "web", "check_failures": []}]})
    # Then the image spec keeps what was given and defaults the rest
    (image,) = scenario.images
    assert (image.id, image.family, image.status, image.size, image.check_failures) == (
        "m-web-v1",
        "web",
        "Available",
        40,
        [],
    )


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"images": [{"id": "web-v1"}]}, "m-web-v1"),
        ({"images": [{"id": "m-1", "status": "Creating"}]}, "status"),
        ({"images": [{"id": "m-1", "size": "big"}]}, "size"),
        ({"images": [{"id": "m-1", "colour": "red"}]}, "colour"),
        ({"images": [{"id": "m-1"}, {"id": "m-1"}]}, "duplicate"),
    ],
)
def test_a_malformed_image_is_refused_naming_the_key(data: dict[str, Any], named: str) -> None:
    assert named in error_of(data)


def test_an_instance_of_an_unknown_image_is_refused_when_the_cloud_boots() -> None:
    # Given an instance whose image_id is neither public nor in the scenario
    scenario = Scenario.from_mapping({"instances": [{"id": "i-1", "image_id": "m-nowhere"}]})
    # When a cloud is built from it
    # Then the error names the image
    with pytest.raises(ScenarioError, match="m-nowhere"):
        LocalCloud(scenario)
