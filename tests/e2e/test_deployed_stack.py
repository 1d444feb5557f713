"""Deploy locally the way it deploys for real, then bake through what was deployed.

A bare local region (what `bakery local serve --bare` serves) gets Bakery from `bakery deploy --endpoint`: the
buses through EventBridge, the code zips into OSS, the stack through ROS — which validates template.yml with
Alibaba's resource definitions and brings the functions up from the uploaded zips, each an isolated process
with only its artifact on sys.path. Then an operator tags an instance, and the deployed stack bakes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_ecs20140526 import models as m
from alibabacloud_ecs20140526.client import Client as EcsClient

from bakery import tags
from bakery_tools.cli import main
from bakery_tools.package import PackageError, build
from localcloud import LocalCloud, Scenario
from localcloud.fc.pythons import find_python
from localcloud.server import LocalCloudServer
from localcloud.testing import sdk_config

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "package-cache"
SPEED = 300  # simulated seconds per real second: a 12-minute bake in a few seconds
PARAMETERS = ["--parameter", "RepairZoneId=cn-hangzhou-h", "--parameter", "RepairVSwitchId=vsw-local",
              "--parameter", "RepairSecurityGroupId=sg-local"]  # fmt: skip

pytestmark = pytest.mark.http


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The four zips `make package` builds (for FC's python3.10), built once."""
    if find_python("3.10") is None:
        pytest.fail("deployed functions run under python3.10, FC's runtime: install it (the Makefile uses it too)")
    out = tmp_path_factory.mktemp("artifacts")
    try:
        build(out, template=ROOT / "template.yml", cache=CACHE, log=lambda _m: None)
    except PackageError as exc:
        pytest.fail(f"building the artifacts failed: {exc}")
    return out


@pytest.fixture
def region() -> Iterator[tuple[LocalCloud, str]]:
    scenario = Scenario.from_mapping({"seed": 8, "instances": [{"id": "i-web1"}, {"id": "i-fix", "guest": {
        "check_failures": ["Nvme"]}}]})  # fmt: skip
    cloud = LocalCloud(scenario)
    server = LocalCloudServer(cloud, speed=SPEED).start()
    try:
        yield cloud, server.endpoint
    finally:
        server.stop()
        cloud.close()


def _wait(predicate, seconds: float = 60) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_bakery_deployed_into_a_bare_region_bakes_a_tagged_instance(
    region: tuple[LocalCloud, str], artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cloud, endpoint = region
    target = ["--endpoint", endpoint, "--region", cloud.region]
    # Given a bare region: no buses, no bucket, no stack, no function
    assert set(cloud.events.buses) == {"default"} and cloud.fc.functions() == {}

    # When Bakery is deployed into it the way it is deployed to Alibaba Cloud
    code = main(["deploy", *target, "--bucket", "bakery-code", "--artifacts", str(artifacts), *PARAMETERS, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    # Then ROS brought the stack up from the uploaded zips: four functions, run as isolated processes
    assert {"bakery", "bakery-dead-letter"} <= set(cloud.events.buses)
    assert sorted(cloud.fc.stacks["bakery"].template.functions) == ["bakery-bake", "bakery-check",
                                                                    "bakery-lifecycle", "bakery-repair"]  # fmt: skip
    runtime = cloud.fc.stacks["bakery"]
    assert runtime.isolated
    for fn in runtime.template.functions.values():  # unpacked from the uploaded zip, not the source tree
        assert (fn.code_dir / "bakery" / "__init__.py").is_file() and ROOT not in fn.code_dir.parents

    # When an operator tags two instances for baking, one of whose images will fail its check
    ecs = EcsClient(sdk_config(endpoint, cloud.region, access_key_id="LTAIoperator"))
    for instance_id in ("i-web1", "i-fix"):
        ecs.tag_resources(m.TagResourcesRequest(region_id=cloud.region, resource_type="instance",
                                                resource_id=[instance_id], tag=[
            m.TagResourcesRequestTag(key=tags.TRIGGER, value="true"),
            m.TagResourcesRequestTag(key=tags.FAMILY, value="web")]))  # fmt: skip

    # Then the deployed stack bakes both: the clean one promoted, the broken one repaired and promoted
    def released() -> bool:
        with cloud.lock:
            return all(tags.LAST_IMAGE in cloud.ecs.instances[i].tags for i in ("i-web1", "i-fix"))

    assert _wait(released, 120), json.dumps([d.__dict__ for d in runtime.deliveries if d.outcome != "ok"][:5],
                                            default=str)[:3000]  # fmt: skip
    with cloud.lock:
        images = {i.image_id: i for i in cloud.ecs.images.values() if i.owner_alias == "self"}
        promoted = {iid for iid, img in images.items() if img.family == "web"}
        last = {i: cloud.ecs.instances[i].tags[tags.LAST_IMAGE] for i in ("i-web1", "i-fix")}
    assert set(last.values()) == promoted
    assert images[last["i-fix"]].tags.get(tags.REPAIRED_FROM)
    # ... every step ran in the deployed functions (the in-process runtime of a local run never started)
    functions = {d.function for d in runtime.deliveries if d.outcome == "ok"}
    assert {"bakery-bake", "bakery-check", "bakery-repair", "bakery-lifecycle"} <= functions
    assert runtime.dead_letters == []

    # When Bakery is destroyed
    assert main(["destroy", *target, "--yes"]) == 0
    capsys.readouterr()
    # Then the stack, its functions and the buses are gone, and the images it made are kept
    assert cloud.fc.stacks == {}
    assert set(cloud.events.buses) == {"default"}
    with cloud.lock:
        assert {i.image_id for i in cloud.ecs.images.values() if i.family == "web"} == promoted
