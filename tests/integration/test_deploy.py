"""`bakery deploy` / `bakery destroy` as an operator runs them: `bakery_tools.cli.main([...])` against a local cloud
served over real HTTP (`LocalCloudServer`) with emulated ROS, OSS, EventBridge and FC — the real SDKs
(alibabacloud-ros20190910, alibabacloud-oss-v2, alibabacloud-eventbridge20200401) on the wire.

The function zips are built once per session (bakery_tools.package, cache build/package-cache) and deployed with
`--artifacts`; one dry run builds them through deploy itself and must find the same code prefix. The `deployed`
region tells one story, in file order: create, deploy again unchanged, edit template.yml and update, destroy.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bakery_tools.cli import main
from bakery_tools.deploy.upload import code_prefix, file_sha256
from bakery_tools.package import PackageError, build, project_requirements
from localcloud import LocalCloud, Scenario
from localcloud.fc.pythons import find_python
from localcloud.server import LocalCloudServer
from localcloud.testing import oss_client

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yml"
CACHE = ROOT / "build" / "package-cache"
BUCKET = "bakery-code"
PARAMETERS = ["--parameter", "RepairZoneId=cn-hangzhou-h", "--parameter", "RepairVSwitchId=vsw-local",
              "--parameter", "RepairSecurityGroupId=sg-local"]  # fmt: skip
WRITES = {"CreateEventBus", "DeleteEventBus", "PutBucket", "PutObject", "DeleteObject", "CreateStack", "UpdateStack",
          "DeleteStack"}  # fmt: skip
SCENARIO = {
    "seed": 5,
    "images": [{"id": "m-web-v1", "family": "web", "tags": {"bakery:bake-id": "b-old1", "bakery:state": "ready"}}],
    "instances": [{"id": "i-web1", "image_id": "m-web-v1", "tags": {"bakery:last-image": "m-web-v1"}}],
}

pytestmark = pytest.mark.http


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four zips, built once (what `make package` makes), for `--artifacts`."""
    out = tmp_path_factory.mktemp("deploy-artifacts")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    override = None if find_python("3.10") else here
    try:
        build(out, template=TEMPLATE, cache=CACHE, python_version=override, log=lambda _m: None)
    except PackageError as exc:  # e.g. PyPI unreachable on a cold cache: a failure, never a skip
        pytest.fail(f"building the artifacts failed: {exc}")
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory deploy can build from: template.yml and the code (symlinks to this tree), a pyproject
    with only [project].dependencies (the repository's own [tool.bakery.deploy], if any, does not leak in) and
    the shared package cache."""
    root = tmp_path_factory.mktemp("project")
    (root / "template.yml").write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    for name in ("functions", "shared"):
        (root / name).symlink_to(ROOT / name, target_is_directory=True)
    dependencies = json.dumps(project_requirements(ROOT / "pyproject.toml"))
    (root / "pyproject.toml").write_text(f'[project]\nname = "bakery"\ndependencies = {dependencies}\n')
    CACHE.mkdir(parents=True, exist_ok=True)
    (root / "build").mkdir()
    (root / "build" / "package-cache").symlink_to(CACHE, target_is_directory=True)
    return root


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Region:
    """A local region served over loopback HTTP, and the CLI pointed at it."""

    cloud: LocalCloud
    server: LocalCloudServer
    artifacts: Path

    def cli(self, *argv: str, target: bool = True, prebuilt: bool = True) -> Run:
        flags = ["--region", self.cloud.region, "--endpoint", self.server.endpoint] if target else []
        if prebuilt and argv[0] == "deploy":
            flags += ["--artifacts", str(self.artifacts)]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, *flags])
        return Run(code, out.getvalue(), err.getvalue())

    def deploy(self, *argv: str, **kwargs: Any) -> Run:
        return self.cli("deploy", "--template", str(TEMPLATE), "--bucket", BUCKET, *PARAMETERS, *argv, **kwargs)

    def writes(self) -> tuple[int, dict[str, int]]:
        return self.cloud.write_calls, {k: v for k, v in self.cloud.calls.items() if k in WRITES}

    def oss(self) -> Any:
        return oss_client(self.server.endpoint, self.cloud.region)

    def stack(self) -> Any:
        return next((s for s in self.cloud.ros.stacks.values() if s.name == "bakery" and not s.deleted), None)


@contextlib.contextmanager
def serving(artifacts: Path, scenario: dict[str, Any] | None = None) -> Iterator[Region]:
    cloud = LocalCloud(Scenario.from_mapping(scenario or {"seed": 3}))
    server = LocalCloudServer(cloud).start()
    try:
        yield Region(cloud, server, artifacts)
    finally:
        server.stop()
        cloud.close()


@pytest.fixture(autouse=True)
def _no_ambient_target(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ALIBABA_CLOUD_REGION_ID", "BAKERY_CLOUD_ENDPOINT", "ALIBABA_CLOUD_ACCESS_KEY_ID"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fresh(artifacts: Path) -> Iterator[Region]:
    with serving(artifacts) as region:
        yield region


@pytest.fixture(scope="module")
def deployed(artifacts: Path) -> Iterator[tuple[Region, Run]]:
    """A region with Bakery's images history, and the first deploy into it (kept for the tests to read)."""
    with pytest.MonkeyPatch.context() as patch:
        for var in ("ALIBABA_CLOUD_REGION_ID", "BAKERY_CLOUD_ENDPOINT", "ALIBABA_CLOUD_ACCESS_KEY_ID"):
            patch.delenv(var, raising=False)
        with serving(artifacts, SCENARIO) as region:
            yield region, region.deploy()


def _prefix(artifacts: Path) -> str:
    return code_prefix("bakery", {p.name: file_sha256(p) for p in sorted(artifacts.glob("*.zip"))})


def _event_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if re.match(r"^  \d\d:\d\d:\d\d  \[", line)]


# -- dry run -----------------------------------------------------------------------------------------


def test_dry_run_on_a_fresh_region_plans_everything_and_changes_nothing(
    fresh: Region, project: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings from the project's [tool.bakery.deploy]; the artifacts built by deploy itself (same prefix)."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + f'\n[tool.bakery.deploy]\nbucket = "{BUCKET}"\n'
                         '[tool.bakery.deploy.parameters]\nRepairZoneId = "cn-hangzhou-h"\n'
                         'RepairVSwitchId = "vsw-local"\nRepairSecurityGroupId = "sg-local"\n')  # fmt: skip
    monkeypatch.chdir(project)
    state, writes = fresh.cloud.state(), fresh.writes()

    run = fresh.cli("deploy", "--dry-run", prebuilt=False)

    assert run.code == 0, run.err
    prefix = _prefix(artifacts)
    assert "  buses     create bakery, bakery-dead-letter" in run.out
    assert f"  bucket    create {BUCKET} in cn-hangzhou" in run.out
    assert f"  code      oss://{BUCKET}/{prefix}/" in run.out  # the build is reproducible: same hash
    assert len(re.findall(r"^ +new +\w+\.zip", run.out, re.M)) == 4
    assert "  stack     create bakery: 3 ALIYUN::EventBridge::Rule" in run.out
    assert "Dry run: nothing was changed in the cloud" in run.out
    assert (project / "build" / "deploy" / "bakery" / "bake.zip").is_file()
    assert fresh.cloud.state() == state and fresh.writes() == writes == (0, {})

    as_json = fresh.cli("deploy", "--dry-run", "--json", "--artifacts", str(artifacts), prebuilt=False).json()
    assert as_json["ok"] is True and as_json["dryRun"] is True and as_json["action"] == "create"
    assert as_json["buses"]["toCreate"] == ["bakery", "bakery-dead-letter"]
    assert as_json["codePrefix"] == prefix and {a["state"] for a in as_json["artifacts"]} == {"new"}
    assert as_json["parameters"]["CodePrefix"] == prefix and as_json["parameters"]["CodeBucket"] == BUCKET
    assert fresh.writes() == (0, {})


def test_missing_parameter_is_refused_before_anything_is_made(fresh: Region) -> None:
    run = fresh.cli("deploy", "--template", str(TEMPLATE), "--bucket", BUCKET, "--parameter", "RepairZoneId=z")
    assert run.code == 2
    assert "RepairVSwitchId, RepairSecurityGroupId" in run.err and "--parameter RepairVSwitchId=VALUE" in run.err
    assert fresh.writes() == (0, {}) and sum(fresh.cloud.calls.values()) == 0


def test_a_template_ros_refuses_is_refused_locally(fresh: Region, tmp_path: Path) -> None:
    broken = tmp_path / "template.yml"
    broken.write_text(TEMPLATE.read_text().replace("MemorySize: 128", "MemorySize: 12", 1))
    run = fresh.cli("deploy", "--template", str(broken), "--bucket", BUCKET, *PARAMETERS)
    assert run.code == 2
    assert "BakeFunction" in run.err and "MemorySize" in run.err
    assert sum(fresh.cloud.calls.values()) == 0


def test_a_template_outside_the_repository_deploys_from_prebuilt_zips(
    fresh: Region, artifacts: Path, tmp_path: Path
) -> None:
    """--artifacts: the zips Code.OssObjectName names are all deploy needs, not the functions' sources; the
    template goes to ROS as JSON, its YAML anchors and aliases resolved by our parser."""
    elsewhere = tmp_path / "ops" / "bakery.yml"
    elsewhere.parent.mkdir()
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "&function-environment" in text  # an anchor the other functions alias
    elsewhere.write_text(text, encoding="utf-8")
    empty = tmp_path / "no-zips"
    empty.mkdir()

    missing = fresh.cli("deploy", "--template", str(elsewhere), "--bucket", BUCKET, *PARAMETERS, "--artifacts",
                        str(empty), prebuilt=False)  # fmt: skip
    assert missing.code == 2 and f"{empty} has no bake.zip" in missing.err and "make package" in missing.err

    run = fresh.cli("deploy", "--template", str(elsewhere), "--bucket", BUCKET, *PARAMETERS)
    assert run.code == 0, run.out + run.err
    assert "Stack bakery: CREATE_COMPLETE in" in run.out
    body = fresh.stack().spec.body
    assert json.loads(body) == json.loads(json.dumps(yaml.safe_load(text))) and "&function-environment" not in body

    again = fresh.cli("deploy", "--template", str(elsewhere), "--bucket", BUCKET, *PARAMETERS, "--dry-run", "--json")
    assert again.json()["action"] == "none", again.out  # the deployed JSON and the YAML parse the same


def test_destroy_without_yes_refuses_when_it_cannot_ask(fresh: Region) -> None:
    run = fresh.cli("destroy")  # pytest's stdin is not a terminal
    assert run.code == 2 and "--yes" in run.err
    assert sum(fresh.cloud.calls.values()) == 0


# -- the story: create, unchanged, edit + update, destroy ---------------------------------------------


def test_deploy_creates_buses_bucket_objects_and_the_stack(deployed: tuple[Region, Run], artifacts: Path) -> None:
    region, run = deployed
    assert run.code == 0, run.out + run.err
    prefix = _prefix(artifacts)
    for line in ("Created bus bakery.", "Created bus bakery-dead-letter.", f"Created bucket {BUCKET} in cn-hangzhou.",
                 "Uploaded bake.zip", "Creating stack bakery (18 resources); ROS events:",
                 "Stack bakery: CREATE_COMPLETE in", "Outputs:", "Next:"):  # fmt: skip
        assert line in run.out, line
    events = _event_lines(run.out)
    assert "CREATE_IN_PROGRESS" in events[0] and "ALIYUN::ROS::Stack" in events[0]
    assert "[18/18]  CREATE_COMPLETE" in events[-1] and "ALIYUN::ROS::Stack" in events[-1]
    assert any("CREATE_COMPLETE" in e and "BakeFunction" in e for e in events)
    assert re.search(r"EventBusName +bakery ", run.out)
    flags = f"--region {region.cloud.region} --endpoint {region.server.endpoint}"
    assert f"bakery bake INSTANCE --family FAMILY {flags}" in run.out and f"bakery status {flags}" in run.out

    buses = {b["EventBusName"] for b in region.cloud.state()["event_buses"]}
    assert {"bakery", "bakery-dead-letter"} <= buses
    import alibabacloud_oss_v2 as oss

    for zip_path in sorted(artifacts.glob("*.zip")):
        head = region.oss().head_object(oss.models.HeadObjectRequest(bucket=BUCKET, key=f"{prefix}/{zip_path.name}"))
        assert {k.lower(): v for k, v in head.metadata.items()}["sha256"] == file_sha256(zip_path)
    stack = region.stack()
    assert stack.status == "CREATE_COMPLETE"
    assert stack.spec.values["CodePrefix"] == prefix and stack.spec.values["CodeBucket"] == BUCKET
    assert "bakery" in region.cloud.fc.stacks  # the local FC service runs the deployed functions
    # Waiting was done on the virtual clock: over a minute simulated, in far less wall time.
    assert region.cloud.clock.elapsed >= 60


def test_second_deploy_with_nothing_changed_makes_no_write(deployed: tuple[Region, Run]) -> None:
    region, _ = deployed
    before = region.writes()
    run = region.deploy()
    assert run.code == 0, run.err
    assert "  stack     no changes (bakery is CREATE_COMPLETE with this template and parameters)" in run.out
    assert "No changes: stack bakery already runs this template with these parameters." in run.out
    assert len(re.findall(r"already in oss://", run.out)) == 4
    assert region.writes() == before


def test_an_edited_template_is_planned_exactly_then_updated(deployed: tuple[Region, Run], tmp_path: Path) -> None:
    region, _ = deployed
    edited = tmp_path / "template.yml"
    edited.write_text(TEMPLATE.read_text().replace("MemorySize: 128", "MemorySize: 256", 1))  # BakeFunction's
    (tmp_path / "functions").symlink_to(ROOT / "functions", target_is_directory=True)
    before = region.writes()

    plan = region.cli("deploy", "--template", str(edited), "--bucket", BUCKET, *PARAMETERS, "--dry-run")
    assert plan.code == 0, plan.err
    assert "  stack     update bakery (CREATE_COMPLETE): 1 change" in plan.out
    changes = [line.strip() for line in plan.out.splitlines() if re.match(r"^ +[~+-] ", line)]
    assert changes == ["~ BakeFunction.Properties.MemorySize: 128 -> 256"]
    assert region.writes() == before

    run = region.cli("deploy", "--template", str(edited), "--bucket", BUCKET, *PARAMETERS)
    assert run.code == 0, run.out + run.err
    assert "Updating stack bakery; ROS events:" in run.out and "Stack bakery: UPDATE_COMPLETE in" in run.out
    events = _event_lines(run.out)
    assert any("UPDATE_COMPLETE" in e and "BakeFunction" in e for e in events)
    assert not any("CREATE_" in e for e in events)  # only this operation's events are shown
    assert region.writes()[1].get("UpdateStack", 0) == before[1].get("UpdateStack", 0) + 1
    assert region.stack().status == "UPDATE_COMPLETE"
    assert region.cloud.fc.stacks["bakery"].template.function("BakeFunction").memory_mb == 256

    again = region.cli("deploy", "--template", str(edited), "--bucket", BUCKET, *PARAMETERS, "--dry-run", "--json")
    assert again.json()["action"] == "none" and again.json()["changes"] == []


def test_destroy_removes_stack_and_buses_and_says_what_it_left(deployed: tuple[Region, Run], artifacts: Path) -> None:
    region, _ = deployed
    run = region.cli("destroy", "--yes")
    assert run.code == 0, run.out + run.err
    assert "Deleting stack bakery; ROS events:" in run.out and "Stack bakery: DELETE_COMPLETE in" in run.out
    assert "Bus bakery: deleted." in run.out and "Bus bakery-dead-letter: deleted." in run.out
    assert "1 image(s) Bakery made (tag bakery:bake-id) and their 1 snapshot(s):" in run.out
    assert "m-web-v1" in run.out and "i-web1 (bakery:last-image)" in run.out
    assert "4 code object(s)" in run.out and f"ossutil rm oss://{BUCKET}/bakery/ -r -f" in run.out

    assert region.stack() is None and "bakery" not in region.cloud.fc.stacks
    assert not {"bakery", "bakery-dead-letter"} & {b["EventBusName"] for b in region.cloud.state()["event_buses"]}
    assert "m-web-v1" in region.cloud.ecs.images  # never deleted
    prefix = _prefix(artifacts)
    assert region.oss().is_object_exist(BUCKET, f"{prefix}/bake.zip")

    again = region.cli("destroy", "--yes", "--json")
    assert again.code == 0 and again.json()["stack"] is None
    assert "No stack bakery" not in again.out  # --json: one document


# -- failure ---------------------------------------------------------------------------------------------


def test_a_failed_create_reports_ros_reason_then_a_fixed_deploy_recovers(
    fresh: Region, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code object vanishes between upload and CreateStack: ROS's reason is quoted, exit 1. Deploying
    again uploads it again and updates the rolled-back stack to CREATE's goal."""
    import alibabacloud_oss_v2 as oss

    from bakery_tools.deploy.deployer import Deployer
    from bakery_tools.deploy.plan import Plan

    original = Deployer._create_stack
    key = f"{_prefix(artifacts)}/bake.zip"

    def create_after_deleting(self: Deployer, plan: Plan, token: str) -> str:
        fresh.oss().delete_object(oss.models.DeleteObjectRequest(bucket=BUCKET, key=key))
        return original(self, plan, token)

    monkeypatch.setattr(Deployer, "_create_stack", create_after_deleting)
    run = fresh.deploy()
    assert run.code == 1, run.out + run.err
    assert re.search(r"Stack bakery: CREATE_(FAILED|ROLLBACK_COMPLETE) after", run.out)
    assert "Failed resources:" in run.out
    assert "BakeFunction (ALIYUN::FC3::Function) CREATE_FAILED:" in run.out and "NoSuchKey" in run.out
    assert f"Failed to get code from OSS (bucket: {BUCKET}, object: {key})" in run.out
    assert "bakery destroy --stack bakery --yes" in run.out
    failed = fresh.deploy("--json", "--dry-run").json()
    assert failed["stackStatus"] == "CREATE_ROLLBACK_COMPLETE" and failed["action"] == "update"

    monkeypatch.setattr(Deployer, "_create_stack", original)
    recovered = fresh.deploy()
    assert recovered.code == 0, recovered.out + recovered.err
    assert "Uploaded bake.zip" in recovered.out and "Stack bakery: UPDATE_COMPLETE in" in recovered.out
    assert fresh.stack().status == "UPDATE_COMPLETE" and "bakery" in fresh.cloud.fc.stacks


def test_destroy_without_a_stack_still_cleans_the_buses(fresh: Region) -> None:
    from alibabacloud_eventbridge20200401.client import Client

    from bakery_tools.deploy.buses import ensure_buses
    from localcloud.testing import sdk_config

    eventbridge = Client(sdk_config(fresh.server.endpoint, fresh.cloud.region))
    assert ensure_buses(eventbridge, ["bakery", "bakery-dead-letter"], description="left over") == [
        "bakery", "bakery-dead-letter"]  # fmt: skip
    assert ensure_buses(eventbridge, ["bakery"], description="again") == []  # idempotent

    kept = fresh.cli("destroy", "--yes", "--keep-buses", "--template", str(TEMPLATE))
    assert kept.code == 0 and "No stack bakery in cn-hangzhou" in kept.out and "Nothing to delete." in kept.out

    run = fresh.cli("destroy", "--yes", "--template", str(TEMPLATE), "--json")
    assert run.code == 0, run.out + run.err
    payload = run.json()
    assert payload["stack"] == "bakery" and payload["stackId"] is None
    assert payload["buses"] == {"bakery": "deleted", "bakery-dead-letter": "deleted"}
    assert not fresh.cloud.state()["event_buses"] or all(
        b["EventBusName"] not in ("bakery", "bakery-dead-letter") for b in fresh.cloud.state()["event_buses"])  # fmt: skip
