"""`bakery status` and `bakery bake` as an operator runs them: `bakery_tools.cli.main([...])` against a local cloud
served over real HTTP (`LocalCloudServer`), with Bakery deployed from template.yml into the local FC runtime
so that what the commands start actually runs. Output is read as the terminal shows it (capsys)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client as EcsClient
from alibabacloud_eventbridge20200401.client import Client as EventBridgeClient

from bakery import tags
from bakery_tools.cli import main
from bakery_tools.deploy.buses import ensure_buses
from bakery_tools.local import LOCAL_PARAMETERS, default_template
from localcloud import LocalCloud, Scenario
from localcloud.fc.runtime import LocalRuntime
from localcloud.fc.template import load_template
from localcloud.server import LocalCloudServer
from localcloud.testing import sdk_config

SCENARIO = {
    "seed": 21,
    "timings": {"snapshot_seconds_per_gib": 1},
    "instances": [
        {"id": "i-web1", "disks": [{"type": "system", "size": 40}, {"type": "data", "size": 20}]},
        {"id": "i-db1", "disks": [{"type": "system", "size": 40}, {"type": "data", "size": 100}]},
        {"id": "i-local1", "type": "ecs.i3.xlarge", "disks": [{"type": "system", "size": 40}]},
    ],
}


@dataclass
class Region:
    """A local region with Bakery deployed, served on a loopback port, and the CLI pointed at it."""

    cloud: LocalCloud
    server: LocalCloudServer
    runtime: LocalRuntime
    ecs: Any
    capsys: pytest.CaptureFixture[str]

    def cli(self, *argv: str, target: bool = True) -> tuple[int, str, str]:
        """`bakery ARGV --region R --endpoint HOST:PORT`: (exit code, stdout, stderr)."""
        self.capsys.readouterr()
        flags = ["--region", self.cloud.region, "--endpoint", self.server.endpoint] if target else []
        code = main([*argv, *flags])
        out, err = self.capsys.readouterr()
        return code, out, err

    def cli_json(self, *argv: str) -> tuple[int, dict[str, Any]]:
        code, out, _ = self.cli(*argv, "--json")
        return code, json.loads(out)

    def run_until_idle(self) -> None:
        """Until the cloud is quiet and no bake is in flight: the sweep does not query every minute, so one
        quiet minute (the runtime's idle) can fall between a finished image check and the listing that sees it."""
        for _ in range(20):
            self.runtime.run_until_idle()
            ecs = self.cloud.ecs
            claimed = any(tags.BAKE_ID in i.tags for i in ecs.instances.values())
            flying = any(i.tags.get(tags.IN_FLIGHT) == "true" for i in ecs.images.values())
            if not claimed and not flying:
                return
            self.runtime.run_until(self.cloud.clock.now + 60)

    def instance_tags(self, instance_id: str) -> dict[str, str]:
        body = self.ecs.describe_instances(
            m.DescribeInstancesRequest(region_id=self.cloud.region, instance_ids=json.dumps([instance_id]))
        ).body
        (found,) = body.instances.instance
        return {t.tag_key: t.tag_value or "" for t in (found.tags.tag if found.tags and found.tags.tag else [])}

    def snapshot(self, instance_id: str, disk_type: str) -> str:
        """The operator's own CreateSnapshot of one disk (left progressing: the clock has not moved)."""
        disks = self.ecs.describe_disks(
            m.DescribeDisksRequest(region_id=self.cloud.region, instance_id=instance_id)
        ).body.disks.disk
        (disk,) = [d for d in disks if d.type == disk_type]
        return self.ecs.create_snapshot(m.CreateSnapshotRequest(disk_id=disk.disk_id)).body.snapshot_id

    def family_head(self, family: str) -> str | None:
        image = self.ecs.describe_image_from_family(
            m.DescribeImageFromFamilyRequest(region_id=self.cloud.region, image_family=family)
        ).body.image
        return image.image_id if image and image.image_id else None

    def bakery_events(self, event_type: str) -> list[dict[str, Any]]:
        return [e.event for e in self.cloud.events.read(0, "bakery") if e.event.get("type") == event_type]


@pytest.fixture
def region(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Region]:
    for var in ("ALIBABA_CLOUD_REGION_ID", "BAKERY_CLOUD_ENDPOINT", "ALIBABA_CLOUD_ACCESS_KEY_ID"):
        monkeypatch.delenv(var, raising=False)
    cloud = LocalCloud(Scenario.from_mapping(SCENARIO))
    server = LocalCloudServer(cloud).start()
    parameters = {"RepairZoneId": f"{cloud.region}-h", **LOCAL_PARAMETERS}
    template = load_template(default_template(), parameters, region=cloud.region, account_id=cloud.account_id)
    ensure_buses(EventBridgeClient(sdk_config(server.endpoint, cloud.region)), template.buses, description="test")
    runtime = LocalRuntime(cloud, template, endpoint=server.endpoint, seed=21).start()
    try:
        yield Region(cloud, server, runtime, EcsClient(sdk_config(server.endpoint, cloud.region)), capsys)
    finally:
        runtime.stop()
        server.stop()
        cloud.close()


def accomplished(region: Region, *snapshots: str) -> list[str]:
    region.runtime.run_until(region.cloud.clock.now + 200)  # 100 GiB at 1 s/GiB
    return list(snapshots)


# -- status ----------------------------------------------------------------------------------------------


def test_status_of_a_quiet_region_says_so_and_how_to_start_a_bake(region: Region) -> None:
    # Given a region where nothing was ever baked / When the operator asks for the status
    code, out, err = region.cli("status")

    # Then it exits 0, says there is nothing, and shows the command that starts a bake
    assert code == 0 and err == ""
    assert "No bakes in flight and no recent outcomes in cn-hangzhou." in out
    assert "bakery bake INSTANCE --family FAMILY --region cn-hangzhou --endpoint" in out

    # And --json says the same to a script
    code, payload = region.cli_json("status")
    assert code == 0
    assert payload == {"ok": True, "region": "cn-hangzhou", "inFlight": 0, "bakes": [], "omitted": 0}


# -- bake INSTANCE ---------------------------------------------------------------------------------------


def test_bake_tags_the_instance_as_a_person_would_and_status_follows_it_to_ready(region: Region) -> None:
    # Given an untagged instance
    # When the operator bakes it into "web"
    code, out, err = region.cli("bake", "i-web1", "--family", "web", "--name", "web")

    # Then the instance carries exactly the tags a person would set, and the output says what comes next
    assert code == 0, err
    assert region.instance_tags("i-web1") == {tags.TRIGGER: "true", tags.FAMILY: "web", tags.NAME: "web"}
    assert "Tagged i-web1 (Running): bakery:bake=true, bakery:family=web, bakery:name=web." in out
    assert "What happens next:" in out and "into family 'web'" in out
    assert f"Follow it: bakery status --region cn-hangzhou --endpoint {region.server.endpoint}" in out

    # And it went the same path as a console tag: ActionTrail's TagResources reached bakery-bake
    region.runtime.run_until(region.cloud.clock.now + 30)
    tagged = [d for d in region.runtime.deliveries if d.event_type == "ecs:ActionTrail:ApiCall"]
    assert [d.function for d in tagged][:1] == ["bakery-bake"]

    # When the bake is under way, status shows it in flight with its bake id
    code, payload = region.cli_json("status")
    assert code == 0 and payload["inFlight"] == 1
    (row,) = payload["bakes"]
    assert row["instanceId"] == "i-web1" and row["inFlight"] is True
    assert row["bakeId"] == region.instance_tags("i-web1")[tags.BAKE_ID]
    assert row["state"] in (tags.PREFLIGHT, tags.CREATING, tags.CHECKING)
    code, out, _ = region.cli("status")
    assert "1 bake in flight" in out and "i-web1" in out and row["bakeId"] in out

    # When it has run to its end
    region.run_until_idle()

    # Then status reports it ready, promoted into web, with the image the family now resolves to
    code, payload = region.cli_json("status")
    assert code == 0 and payload["inFlight"] == 0
    (row,) = payload["bakes"]
    assert row["state"] == "ready" and row["inFlight"] is False
    assert row["imageId"] == region.family_head("web") == row["lastImage"]
    assert row["bakeId"] is not None and row["family"] == "web" and row["attempts"] == 1
    assert row["lastResult"] == "promoted into web"
    code, out, _ = region.cli("status")
    assert "0 bakes in flight, 1 finished bake" in out
    assert "source  bake id" in out and "promoted into web" in out


def test_bake_of_an_unknown_instance_exits_2_and_tags_nothing(region: Region) -> None:
    # Given an instance id that does not exist in the region
    # When the operator bakes it
    code, out, err = region.cli("bake", "i-nowhere")

    # Then it is refused as bad input, naming the id and how to list instances, and nothing was written
    assert code == 2 and out == ""
    assert "No instance i-nowhere in cn-hangzhou" in err and "DescribeInstances" in err
    assert region.cloud.calls.get("TagResources", 0) == 0

    # And with --json the refusal is an object a script can read
    code, payload = region.cli_json("bake", "i-nowhere")
    assert code == 2 and payload["ok"] is False and payload["reason"] == "unknown-instance"


def test_bake_of_an_instance_already_baking_exits_1_and_leaves_the_bake_alone(region: Region) -> None:
    # Given a bake of i-web1 already claimed by Bakery
    assert region.cli("bake", "i-web1", "--family", "web")[0] == 0
    region.runtime.run_until(region.cloud.clock.now + 30)
    before = region.instance_tags("i-web1")
    assert tags.BAKE_ID in before

    # When the operator bakes it again, into another family
    code, out, err = region.cli("bake", "i-web1", "--family", "other")

    # Then it is refused (exit 1), naming the bake in flight and how to follow it; the tags are unchanged
    assert code == 1 and out == ""
    assert f"i-web1 is already being baked (bake {before[tags.BAKE_ID]}" in err and "bakery status" in err
    assert region.instance_tags("i-web1") == before


def test_bake_of_an_instance_tagged_but_not_yet_claimed_exits_1(region: Region) -> None:
    # Given i-web1 just tagged (the clock has not moved, so Bakery has not claimed it yet)
    assert region.cli("bake", "i-web1")[0] == 0

    # When the operator bakes it again
    code, payload = region.cli_json("bake", "i-web1")

    # Then it says the request is already waiting
    assert code == 1 and payload["reason"] == "already-requested"
    assert "status" in payload["message"]


def test_finished_bakes_show_in_status_newest_first_with_their_outcome(region: Region) -> None:
    # Given an i-series instance (local disks) and a plain one, both baked by the operator
    assert region.cli("bake", "i-local1", "--family", "batch")[0] == 0
    assert region.cli("bake", "i-web1", "--family", "web")[0] == 0
    # When Bakery has handled both
    region.run_until_idle()

    # Then status shows the promoted one first, then the failed one with the reason Bakery gave
    code, payload = region.cli_json("status")
    assert code == 0 and payload["inFlight"] == 0 and payload["omitted"] == 0
    ready, failed = payload["bakes"]
    assert (ready["instanceId"], ready["state"], ready["lastResult"]) == ("i-web1", "ready", "promoted into web")
    assert failed["instanceId"] == "i-local1" and failed["state"] == "failed"
    assert failed["lastError"] == "local-disks" and failed["lastResult"] == "failed: local-disks"
    code, out, _ = region.cli("status")
    assert "failed: local-disks" in out and "2 finished bakes" in out

    # And --limit bounds the finished bakes shown, saying how many were left out
    code, payload = region.cli_json("status", "--limit", "1")
    assert code == 0 and [r["instanceId"] for r in payload["bakes"]] == ["i-web1"] and payload["omitted"] == 1
    code, out, _ = region.cli("status", "--limit", "1")
    assert "(1 older not shown: --limit)" in out and "i-local1" not in out


# -- bake --snapshots -------------------------------------------------------------------------------------


def test_bake_from_snapshots_requests_the_bake_on_the_bus_and_status_shows_it_ready(region: Region) -> None:
    # Given the system disk of i-web1 and the data disk of i-db1, snapshotted and accomplished
    ids = accomplished(region, region.snapshot("i-web1", "system"), region.snapshot("i-db1", "data"))

    # When the operator bakes one image from them into "app"
    code, payload = region.cli_json("bake", "--snapshots", ",".join(ids), "--family", "app", "--name", "app")

    # Then a bakery:Bake:Requested carrying them went onto the bakery bus, and the output names the bake
    assert code == 0, payload
    bake_id = payload["bakeId"]
    assert payload["snapshotIds"] == ids and payload["family"] == "app"
    assert payload["follow"].startswith("bakery status --region cn-hangzhou --endpoint")
    (requested,) = region.bakery_events("bakery:Bake:Requested")
    assert requested["data"] == {"snapshotIds": ids, "family": "app", "name": "app", "bakeId": bake_id}

    # When Bakery has run it
    region.run_until_idle()

    # Then status shows the snapshot bake ready, promoted into app, and the snapshots are still there
    code, payload = region.cli_json("status")
    (row,) = payload["bakes"]
    assert row["bakeId"] == bake_id and row["instanceId"] is None and row["snapshotIds"] == ids
    assert row["state"] == "ready" and row["imageId"] == region.family_head("app")
    code, out, _ = region.cli("status")
    assert f"{ids[0]} +1" in out and "promoted into app" in out
    listed = region.ecs.describe_snapshots(
        m.DescribeSnapshotsRequest(region_id="cn-hangzhou", snapshot_ids=json.dumps(ids))
    ).body.snapshots.snapshot
    assert {s.snapshot_id for s in listed} == set(ids)


def test_bake_from_snapshots_prints_the_plan_for_a_person(region: Region) -> None:
    # Given two accomplished snapshots
    ids = accomplished(region, region.snapshot("i-web1", "system"), region.snapshot("i-db1", "data"))

    # When the operator bakes them without --json
    code, out, err = region.cli("bake", "--snapshots", ",".join(ids), "--family", "app")

    # Then the output names the bake, each disk's role, what happens next and how to follow it
    assert code == 0, err
    assert out.startswith("Requested bake b-")
    assert f"{ids[0]} (system disk) + {ids[1]} (data disk)" in out
    assert "Your snapshots are never deleted." in out and "Follow it: bakery status" in out


def test_bake_from_an_unknown_snapshot_exits_2_and_publishes_nothing(region: Region) -> None:
    # Given one real snapshot and one id that does not exist
    ids = accomplished(region, region.snapshot("i-web1", "system"), "s-doesnotexist")

    # When the operator bakes them
    code, out, err = region.cli("bake", "--snapshots", ",".join(ids), "--family", "app")

    # Then it is refused as bad input naming only the missing one, and no bake was requested
    assert code == 2 and out == ""
    assert "No snapshot s-doesnotexist in cn-hangzhou" in err and ids[0] not in err
    assert "DescribeSnapshots" in err
    assert region.bakery_events("bakery:Bake:Requested") == []


def test_bake_from_a_snapshot_still_progressing_exits_1(region: Region) -> None:
    # Given a snapshot just taken (still progressing)
    snapshot_id = region.snapshot("i-web1", "system")

    # When the operator bakes it
    code, payload = region.cli_json("bake", "--snapshots", snapshot_id, "--family", "app")

    # Then it is refused for now (exit 1): the message says it is progressing and to run again later
    assert code == 1 and payload["reason"] == "snapshot-not-ready"
    assert f"{snapshot_id} is progressing" in payload["message"] and "again" in payload["message"]
    assert region.bakery_events("bakery:Bake:Requested") == []


def test_bake_from_snapshots_already_being_baked_exits_1(region: Region) -> None:
    # Given a bake of two snapshots that has made its image and is being checked
    ids = accomplished(region, region.snapshot("i-web1", "system"), region.snapshot("i-db1", "data"))
    code, first = region.cli_json("bake", "--snapshots", ",".join(ids), "--family", "app")
    assert code == 0
    region.runtime.run_until(region.cloud.clock.now + 30)

    # When the operator requests the same snapshots again
    code, payload = region.cli_json("bake", "--snapshots", ",".join(ids), "--family", "app")

    # Then it is refused (exit 1), naming the bake in flight
    assert code == 1 and payload["reason"] == "already-baking"
    assert first["bakeId"] in payload["message"] and "bakery status" in payload["message"]
    assert len(region.bakery_events("bakery:Bake:Requested")) == 1


# -- bad input and an unreachable cloud ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["bake"], "Name what to bake"),
        (["bake", "web1"], "'web1' is not an instance id"),
        (["bake", "i-web1", "--snapshots", "s-1"], "not both"),
        (["bake", "--snapshots", "s-1", "--stop-first", "--family", "app"], "--stop-first applies to an instance"),
        (["bake", "--snapshots", "s-1"], "--family is required with --snapshots"),
        (["bake", "--snapshots", "s-1,vol-2", "--family", "app"], "not 'vol-2'"),
        (["bake", "--snapshots", "s-1,s-1", "--family", "app"], "distinct"),
        (["bake", "i-web1", "--family", "aliyun-web"], "--family 'aliyun-web' is not valid"),
        (["bake", "i-web1", "--name", "1web"], "--name '1web' is not valid"),
    ],
)
def test_bad_input_exits_2_saying_what_is_expected(region: Region, argv: list[str], expected: str) -> None:
    # Given a command line that cannot be right / When it runs
    code, out, err = region.cli(*argv)

    # Then it exits 2 before writing anything, saying what is expected
    assert code == 2 and out == ""
    assert expected in err
    assert region.cloud.calls.get("TagResources", 0) == 0 and region.bakery_events("bakery:Bake:Requested") == []


def test_no_region_exits_2_saying_how_to_set_it(region: Region) -> None:
    # Given no --region and no ALIBABA_CLOUD_REGION_ID / When status runs
    code, out, err = region.cli("status", "--endpoint", region.server.endpoint, target=False)

    # Then it says how to set the region
    assert code == 2 and out == ""
    assert "pass --region (e.g. cn-hangzhou) or set ALIBABA_CLOUD_REGION_ID" in err


def test_an_unknown_region_exits_2_naming_it(region: Region) -> None:
    # Given a region the cloud does not serve / When status runs there
    code, _, err = region.cli("status", "--region", "cn-nowhere", "--endpoint", region.server.endpoint, target=False)

    # Then it is bad input, naming the region and the option
    assert code == 2 and "Region 'cn-nowhere' is not known" in err and "--region" in err


def test_an_endpoint_nobody_serves_exits_1_saying_to_start_the_local_cloud(region: Region) -> None:
    # Given an endpoint where no local cloud runs (the port of a server that was stopped)
    stopped = LocalCloudServer(region.cloud).start()
    endpoint = stopped.endpoint
    stopped.stop()

    # When status and bake run against it
    for argv in (["status"], ["bake", "i-web1"]):
        code, out, err = region.cli(*argv, "--region", "cn-hangzhou", "--endpoint", endpoint, target=False)

        # Then each exits 1 and says to start `python -m localcloud serve`
        assert code == 1 and out == ""
        assert f"Cannot reach the local cloud at {endpoint}" in err
        assert "python -m localcloud serve" in err

    # And --json carries the same advice
    code, out, _ = region.cli("status", "--json", "--region", "cn-hangzhou", "--endpoint", endpoint, target=False)
    assert code == 1 and json.loads(out)["reason"] == "unreachable"
