"""`python -m localcloud serve|demo` as a person runs them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_ecs20140526.client import Client as EcsClient

from localcloud.cli import main
from localcloud.testing import sdk_config

SCENARIO = Path(__file__).parents[2] / "localcloud" / "scenarios" / "demo.yml"


def test_serve_prints_its_endpoint_answers_the_sdk_and_stops_on_sigterm() -> None:
    # Given `localcloud serve` on a free port
    process = subprocess.Popen(
        [sys.executable, "-m", "localcloud", "serve", "--scenario", str(SCENARIO), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline() + process.stdout.readline()
        endpoint = re.search(r"endpoint: (127\.0\.0\.1:\d+)", banner)
        assert endpoint, banner
        # When the real SDK asks it for the scenario's instances
        ecs = EcsClient(sdk_config(endpoint.group(1), "cn-hangzhou"))
        body = ecs.describe_instances(
            ecs_models.DescribeInstancesRequest(region_id="cn-hangzhou", max_results=100)
        ).body
        # Then it answers from the scenario, and its clock stays put until told to move
        assert {i.instance_id for i in body.instances.instance} == {"i-web1", "i-db1", "i-batch1"}
        assert requests.get(f"http://{endpoint.group(1)}/_localcloud/clock", timeout=10).json()["elapsed"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_serve_with_a_broken_scenario_says_what_is_wrong(tmp_path: Path) -> None:
    # Given a scenario with a typo
    broken = tmp_path / "broken.yml"
    broken.write_text("instances:\n  - {id: i-1, typo: 1}\n")
    # When serving it
    result = subprocess.run(
        [sys.executable, "-m", "localcloud", "serve", "--scenario", str(broken), "--port", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    # Then it exits 2 naming the key, with no stack trace
    assert result.returncode == 2
    assert "typo" in result.stderr and "Traceback" not in result.stderr


def test_demo_narrates_the_image_lifecycle_end_to_end() -> None:
    # When the demo runs in-process
    result = subprocess.run(
        [sys.executable, "-m", "localcloud", "demo", "--transport", "inprocess"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then it shows the refusal, the failing check, the repair and the family, and ends cleanly
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "same image" in out
    assert "InvalidDiskCategory.CreateImage" in out
    assert "FAILED [('Nvme'" in out
    assert "check=passed" in out
    assert "(no Available image left in the family)" in out


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_serve_refuses_a_non_loopback_host_without_allow_remote(
    host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no server may start (a refusal must come before anything listens)
    import localcloud.server

    monkeypatch.setattr(localcloud.server, "LocalCloudServer", None)
    # When `serve --host <non-loopback>` runs without --allow-remote
    code = main(["serve", "--host", host, "--port", "0"])
    # Then it exits 2 explaining why (Cloud Assistant runs scripts on this host) and naming the flag
    err = capsys.readouterr().err
    assert code == 2
    assert host in err and "Cloud Assistant" in err and "--allow-remote" in err


@pytest.mark.parametrize(("host", "allow_remote"), [("0.0.0.0", True), ("127.0.0.1", False), ("localhost", False)])
def test_serve_binds_loopback_or_an_allowed_remote_host(
    host: str, allow_remote: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stand-in server that records where it would listen, and a stop that comes at once
    import localcloud.cli
    import localcloud.server

    bound: list[str] = []

    class FakeServer:
        endpoint = "127.0.0.1:1"

        def __init__(self, cloud: object, *, host: str, port: int, speed: float | None) -> None:
            bound.append(host)

        def start(self) -> FakeServer:
            return self

        def serve_until_signalled(self) -> None:  # the stop comes at once
            pass

    monkeypatch.setattr(localcloud.server, "LocalCloudServer", FakeServer)
    # When `serve` runs with that host (and --allow-remote where it is not loopback)
    code = main(["serve", "--host", host, "--port", "0"] + (["--allow-remote"] if allow_remote else []))
    # Then it serves there, warning only for the remote host
    err = capsys.readouterr().err
    assert (code, bound) == (0, [host])
    assert ("WARNING" in err) is allow_remote
