"""`bakery demo` — the README's main command — tells the story it promises, and exits 0."""

from __future__ import annotations

import pytest

from bakery_tools.cli import main


def test_the_demo_bakes_repairs_refuses_and_keeps_every_promise(capsys: pytest.CaptureFixture[str]) -> None:
    # When the bundled demo runs
    code = main(["demo"])
    out = capsys.readouterr().out

    # Then the clean instance and the repaired one are promoted, the others refused with reasons
    assert code == 0, out
    assert "READY" in out and "promoted into family web" in out and "promoted into family api" in out
    assert "image check FAILED" in out and "ACS-ECS-RepairImage exec-" in out
    assert "FAILED (local-disks)" in out
    assert "FAILED (preflight)" in out and "/root/.ssh/id_rsa" in out
    # ... and the image made outside Bakery is adopted, repaired and given its identity back
    assert "ADOPTED m-" in out and "promoted into family shop, with the identity of m-" in out
    # ... and the run kept the safety promises
    assert "safety promises kept" in out and "PROMISE BROKEN" not in out
    assert "DescribeImageFromFamily web -> m-" in out


def test_local_run_with_a_broken_scenario_exits_2_naming_the_key(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a scenario with a typo
    broken = tmp_path / "broken.yml"
    broken.write_text("instances:\n  - {id: i-1, tpye: ecs.g7.large}\n")
    # When it is run
    code = main(["local", "run", str(broken), "--report", str(tmp_path / "r.json")])
    # Then exit 2, naming the key, without a stack trace
    err = capsys.readouterr().err
    assert code == 2 and "tpye" in err and "Traceback" not in err


def test_local_serve_lets_the_operator_commands_bake_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import re
    import signal
    import subprocess
    import sys
    import time

    # Given `bakery local serve` (the demo region, untagged) with its clock at 1200x
    server = subprocess.Popen(
        [sys.executable, "-m", "bakery_tools.cli", "local", "serve", "--port", "0", "--speed", "1200"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = "".join(server.stdout.readline() for _ in range(2))
        endpoint = re.search(r"served at (127\.0\.0\.1:\d+)", banner)
        assert endpoint, banner
        target = ["--endpoint", endpoint.group(1), "--region", "cn-hangzhou"]
        # When the operator bakes an instance with the CLI, as the README says
        assert main(["bake", "i-web1", "--family", "web", *target]) == 0
        # Then `bakery status --json` shows it ready within a bounded (real) wait
        deadline, state = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            capsys.readouterr()
            assert main(["status", "--json", *target]) == 0
            rows = json.loads(capsys.readouterr().out)
            state = next((r for r in rows["bakes"] if r.get("instanceId") == "i-web1"), None)
            if state and state.get("state") == "ready":
                break
            time.sleep(0.5)
        assert state and state["state"] == "ready", state
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
