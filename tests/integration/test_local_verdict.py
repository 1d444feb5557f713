"""The verdict of a local run (`LocalRun.problems`, `bakery local run`): no false alarm on any documented
setting, and every promise still caught when the final state is corrupted after a correct run.

Runs go through template.yml into a local cloud, as `bakery local run` does; corruptions are made directly
in the emulator (`run.cloud.ecs`) or through the real SDK, after the run, and the report is taken again.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as m

from bakery import tags
from bakery_tools.cli import _narrator, main
from bakery_tools.exits import EXIT_OK, EXIT_PROBLEM
from bakery_tools.local import PROMISES, LocalRun, broken_promises, find_problems
from localcloud import Scenario

DATA_DISKS = [{"type": "system", "size": 40}, {"type": "data", "size": 20}, {"type": "data", "size": 100}]


def trigger(instance_id: str, at: float = 0, **extra: str) -> dict[str, Any]:
    values = {tags.TRIGGER: "true", **{f"bakery:{k.replace('_', '-')}": v for k, v in extra.items()}}
    return {"at": at, "tag": {"instance": instance_id, "tags": values}}


@pytest.fixture
def local_run() -> Iterator[Callable[..., tuple[LocalRun, dict[str, Any]]]]:
    """local_run(scenario, env=, parameters=, **run_kwargs) → (run, report); every run is closed afterwards."""
    runs: list[LocalRun] = []

    def make(scenario: dict[str, Any], *, env: dict[str, str] | None = None,
             parameters: dict[str, str] | None = None, **kwargs: Any) -> tuple[LocalRun, dict[str, Any]]:  # fmt: skip
        run = LocalRun(Scenario.from_mapping(scenario), env=env or {}, parameters=parameters or {})
        runs.append(run)
        return run, run.run(**kwargs)

    yield make
    for run in runs:
        run.close()


def outcome(report: dict[str, Any]) -> list[tuple[str | None, str, str | None]]:
    return sorted((b["instanceId"], b["state"], b["reason"]) for b in report["bakes"])


# -- no false positives: a correct run under each documented setting is judged clean --------------------------

ONE = {"seed": 21, "instances": [{"id": "i-a"}], "actions": [trigger("i-a", family="web")]}
TWO_IN_A_FAMILY = {"seed": 22, "instances": [{"id": "i-a"}, {"id": "i-b"}],
                   "actions": [trigger("i-a", family="web"), trigger("i-b", at=3000, family="web")]}  # fmt: skip
NEEDS_REPAIR = {"seed": 23, "instances": [{"id": "i-a", "guest": {"check_failures": ["Nvme"]}}],
                "actions": [trigger("i-a", family="web")]}  # fmt: skip
ENCRYPTED = {"seed": 24, "instances": [{"id": "i-a", "disks": [{"type": "system", "size": 20, "encrypted": True}]}],
             "actions": [trigger("i-a", family="web")]}  # fmt: skip
READY, READY_B = ("i-a", "ready", None), ("i-b", "ready", None)

SETTINGS = [
    pytest.param(ONE, {}, {}, [READY], id="defaults"),
    pytest.param(NEEDS_REPAIR, {"BAKERY_RETIRE_POLICY": "deprecate"}, {}, [READY], id="retire-deprecate"),
    pytest.param(NEEDS_REPAIR, {"BAKERY_RETIRE_POLICY": "delete"}, {}, [READY], id="retire-delete"),
    pytest.param(
        NEEDS_REPAIR, {"BAKERY_MAX_REPAIRS": "0"}, {}, [("i-a", "failed", "check-failed")], id="max-repairs-0"
    ),
    pytest.param(
        TWO_IN_A_FAMILY,
        {},
        {"RetentionAction": "delete", "RetentionKeep": "1"},
        [READY, READY_B],
        id="retention-delete-keep-1",
    ),
    pytest.param(
        TWO_IN_A_FAMILY,
        {},
        {"RetentionAction": "deprecate", "RetentionKeep": "1"},
        [READY, READY_B],
        id="retention-deprecate-keep-1",
    ),
    pytest.param(
        TWO_IN_A_FAMILY,
        {"BAKERY_RETENTION_ACTION": "delete", "BAKERY_RETENTION_KEEP": "1"},
        {},
        [READY, READY_B],
        id="retention-delete-keep-1-by-env",
    ),
    pytest.param(ENCRYPTED, {"BAKERY_UNCHECKED_IMAGE_POLICY": "promote"}, {}, [READY], id="unchecked-image-promote"),
    pytest.param(
        ENCRYPTED,
        {"BAKERY_UNCHECKED_IMAGE_POLICY": "fail"},
        {},
        [("i-a", "failed", "check-unsupported")],
        id="unchecked-image-fail",
    ),
    pytest.param(
        {**ONE, "instances": [{"id": "i-a", "create_image_failures": 1}]},
        {"BAKERY_MAX_CREATE_ATTEMPTS": "2"},
        {},
        [READY],
        id="create-attempts-2",
    ),
    pytest.param(
        {**ONE, "instances": [{"id": "i-a", "create_image_failures": 1}]},
        {"BAKERY_MAX_CREATE_ATTEMPTS": "1"},
        {},
        [("i-a", "failed", "create-failed")],
        id="create-attempts-1",
    ),
    pytest.param(
        {**ONE, "instances": [{"id": "i-a", "guest": {"cloud_assistant": False}}]},
        {"BAKERY_UNCHECKED_GUEST_POLICY": "warn"},
        {},
        [READY],
        id="unchecked-guest-warn",
    ),
    pytest.param(
        {**ONE, "instances": [{"id": "i-a", "guest": {"cloud_assistant": False}}]},
        {"BAKERY_UNCHECKED_GUEST_POLICY": "block"},
        {},
        [("i-a", "failed", "guest-unchecked")],
        id="unchecked-guest-block",
    ),
    pytest.param(ONE, {"BAKERY_MIN_FREE_MB": "999999"}, {}, [("i-a", "failed", "preflight")], id="min-free-mb"),
    pytest.param(ONE, {}, {"MandatoryTags": '{"cost-center": "42"}'}, [READY], id="mandatory-tags"),
    pytest.param(
        {**ONE, "actions": [trigger("i-a", family="web", stop_first="true")]}, {}, {}, [READY], id="stop-first"
    ),
    pytest.param({**ONE, "instances": [{"id": "i-a", "disks": DATA_DISKS}]}, {}, {}, [READY], id="data-disks"),
    # The repair rebuilds the image: it must keep the data disks too (the disk promise caught it dropping them).
    pytest.param(
        {**NEEDS_REPAIR, "instances": [{"id": "i-a", "disks": DATA_DISKS, "guest": {"check_failures": ["Nvme"]}}]},
        {},
        {},
        [READY],
        id="repair-with-data-disks",
    ),
]


@pytest.mark.parametrize(("scenario", "env", "parameters", "expected"), SETTINGS)
def test_a_correct_run_under_each_documented_setting_is_judged_clean(local_run, scenario, env, parameters, expected):
    # Given a small scenario run under one setting (as a function env var or a template parameter)
    run, report = local_run(scenario, env=env, parameters=parameters)
    # Then the bakes ended as that setting says they should (so the run exercised it) ...
    assert outcome(report) == expected, report["bakes"]
    for key, value in env.items():
        assert report["settings"][key] == value
    # ... and the verdict finds nothing wrong: no broken promise, nothing unfinished, no dead letter
    assert run.problems(report) == []
    assert run.invariant_violations(report) == []


def test_retention_delete_really_deleted_the_first_bake_s_image(local_run):
    # Given two bakes into one family that keeps one image, deleting older ones
    run, report = local_run(TWO_IN_A_FAMILY, parameters={"RetentionAction": "delete", "RetentionKeep": "1"})
    first = next(b for b in report["bakes"] if b["instanceId"] == "i-a")
    # Then the first bake's promoted image is gone, retention says it deleted it, and that is not a violation
    assert first["imageId"] not in {i["imageId"] for i in report["images"]}
    assert first["imageId"] in report["retention"]["deleted"]
    assert run.problems(report) == []


def test_unchecked_promote_really_put_an_unchecked_image_in_the_family(local_run):
    run, report = local_run(ENCRYPTED, env={"BAKERY_UNCHECKED_IMAGE_POLICY": "promote"})
    (image,) = [i for i in report["images"] if i["family"] == "web"]
    assert image["check"] == {"status": "", "failing": [], "supported": False}
    assert run.problems(report) == []


def test_a_snapshot_bake_with_a_data_disk_keeps_both_disks_and_is_judged_clean(local_run):
    from tests.e2e.test_snapshot_bake import APP, FAST_SNAPSHOTS, request_bake, snapshot_disk

    run = LocalRun(Scenario.from_mapping({"seed": 25, "timings": FAST_SNAPSHOTS, "instances": [APP]}))
    try:
        ids = [snapshot_disk(run, "i-app1", "system"), snapshot_disk(run, "i-app1", "data")]
        run.runtime.run_until(run.cloud.clock.now + 200)
        run.initial_snapshots |= set(ids)  # the operator's own
        request_bake(run, {"snapshotIds": ids, "family": "app"})
        report = run.run()
        (bake,) = report["bakes"]
        assert bake["state"] == "ready", bake
        assert [(d["snapshotId"], d["type"], d["sizeGiB"]) for d in bake["sourceDisks"]] == [
            (ids[0], "system", 40), (ids[1], "data", 20)]  # fmt: skip
        assert run.problems(report) == []
    finally:
        run.close()


# -- the disks of a promoted image -----------------------------------------------------------------------------


def test_a_data_disk_instance_baked_without_a_repair_keeps_every_disk(local_run):
    # Given an instance with a system disk and two data disks, baked cleanly (no repair)
    run, report = local_run({"seed": 26, "instances": [{"id": "i-a", "disks": DATA_DISKS}],
                             "actions": [trigger("i-a", family="web")]})  # fmt: skip
    (bake,) = report["bakes"]
    (image,) = [i for i in report["images"] if i["imageId"] == bake["imageId"]]
    # Then the report lists the source's disks and the image's, and they match: the check passes
    assert [(d["type"], d["sizeGiB"]) for d in bake["sourceDisks"]] == [("system", 40), ("data", 20), ("data", 100)]
    assert [(d["type"], d["sizeGiB"]) for d in image["disks"]] == [("system", 40), ("data", 20), ("data", 100)]
    assert all(d["device"].startswith("/dev/") and d["snapshotId"].startswith("s-") for d in image["disks"])
    assert run.problems(report) == []


def _hand_built(image_disks: list[dict[str, Any]]) -> dict[str, Any]:
    """A minimal report: one ready bake of i-a (system 40 + data 20), its promoted image with `image_disks`."""
    source = [{"device": "/dev/xvda", "type": "system", "sizeGiB": 40, "diskId": "d-1"},
              {"device": "/dev/xvdb", "type": "data", "sizeGiB": 20, "diskId": "d-2"}]  # fmt: skip
    image = {"imageId": "m-new", "name": "x", "status": "Available", "family": "web",
             "tags": {tags.BAKE_ID: "b-1", tags.STATE: tags.READY},
             "check": {"status": "Finished", "failing": [], "supported": True}, "disks": image_disks}  # fmt: skip
    return {
        "bakes": [
            {
                "bakeId": "b-1",
                "instanceId": "i-a",
                "state": "ready",
                "imageId": "m-new",
                "family": "web",
                "attempts": 1,
                "reason": None,
                "sourceDisks": source,
            }
        ],
        "images": [image],
        "snapshots": [{"snapshotId": d["snapshotId"], "status": "accomplished"} for d in image_disks],
        "instances": [{"instanceId": "i-a", "status": "Running", "tags": {tags.LAST_IMAGE: "m-new"}}],
        "deliveries": {"count": 1, "retries": 0, "dead_letters": 0, "errors": 0},
        "deadLetters": [],
        "inFlight": [],
        "retention": {"deleted": [], "deprecated": []},
        "triggers": [{"instanceId": "i-a", "at": 0}],
        "outcome": "settled",
        "settings": {},
        "baseline": {"images": [], "snapshots": [], "instances": {"i-a": {"status": "Running"}}},
    }


SYSTEM = {"device": "/dev/xvda", "type": "system", "sizeGiB": 40, "snapshotId": "s-1"}
DATA = {"device": "/dev/xvdb", "type": "data", "sizeGiB": 20, "snapshotId": "s-2"}


def test_a_hand_built_report_with_all_disks_is_clean():
    assert find_problems(_hand_built([SYSTEM, DATA])) == []


@pytest.mark.parametrize(
    ("disks", "words"),
    [
        pytest.param([SYSTEM], "has disks [system 40 GiB] but i-a had [system 40 GiB, data 20 GiB]", id="missing"),
        pytest.param([SYSTEM, {**DATA, "type": "system"}], "but i-a had", id="wrong-type"),
        pytest.param([SYSTEM, {**DATA, "sizeGiB": 10}], "smaller than i-a's: /dev/xvdb: 10 < 20 GiB", id="smaller"),
        pytest.param([SYSTEM, DATA, {**DATA, "device": "/dev/xvdc", "snapshotId": "s-3"}], "but i-a had", id="extra"),
    ],
)
def test_a_promoted_image_without_every_disk_of_its_source_is_flagged(disks, words):
    (problem,) = find_problems(_hand_built(disks))
    assert problem.startswith("PROMISE BROKEN: image m-new ") and words in problem, problem


def test_a_repaired_image_in_a_family_is_held_to_the_same_disks():
    # The repair path makes a new image: it is judged like any promoted one (by its bake's source disks)
    report = _hand_built([SYSTEM])
    report["images"][0]["tags"][tags.REPAIRED_FROM] = "m-broken"
    assert any("has disks [system 40 GiB]" in p for p in find_problems(report))


# -- every promise still catches a real violation --------------------------------------------------------------


@pytest.fixture
def clean(local_run) -> tuple[LocalRun, dict[str, Any]]:
    """A correct, finished run: i-a (system + two data disks) baked into family web, judged clean."""
    run, report = local_run({"seed": 27, "instances": [{"id": "i-a", "disks": DATA_DISKS}, {"id": "i-idle"}],
                             "actions": [trigger("i-a", family="web")]})  # fmt: skip
    assert run.problems(report) == []
    return run, report


def _promoted(run: LocalRun, report: dict[str, Any]) -> Any:
    (bake,) = report["bakes"]
    return run.cloud.ecs.images[bake["imageId"]]


def _copy_image(run: LocalRun, image: Any, **changes: Any) -> Any:
    twin = copy.deepcopy(image)
    twin.image_id = run.cloud.ids.resource("m")
    for key, value in changes.items():
        setattr(twin, key, value)
    run.cloud.ecs.images[twin.image_id] = twin
    return twin


def _corrupt_duplicate(run, report):
    image = _promoted(run, report)
    _copy_image(run, image, family="", mappings=[])
    return "ready images (duplicate)"


def _corrupt_leftover(run, report):
    image = _promoted(run, report)
    twin = _copy_image(run, image, family="", mappings=[])
    twin.tags[tags.STATE] = tags.REPAIRED
    return "images left besides the promoted one"


def _corrupt_gone(run, report):
    image = _promoted(run, report)
    run.cloud_env.ecs.delete_image(m.DeleteImageRequest(region_id=run.cloud.region, image_id=image.image_id))
    return "is gone (and no retention run deleted it)"


def _corrupt_orphan_image(run, report):
    image = _promoted(run, report)
    twin = _copy_image(run, image, family="", mappings=[])
    twin.tags = {tags.BAKE_ID: "b-nobody"}
    return f"orphaned image {twin.image_id}"


def _corrupt_orphan_snapshot(run, report):
    disk = run.cloud.ecs.instance_disks(run.cloud.ecs.instances["i-idle"])[0]
    snapshot_id = run.cloud_env.ecs.create_snapshot(m.CreateSnapshotRequest(disk_id=disk.disk_id)).body.snapshot_id
    return f"orphaned snapshot {snapshot_id}"


def _corrupt_stopped(run, report):
    run.cloud_env.ecs.stop_instance(m.StopInstanceRequest(instance_id="i-a"))
    run.runtime.run_until(run.cloud.clock.now + 120)
    return "instance i-a was Running and is now Stopped"


def _corrupt_work_tag(run, report):
    # (a stale bake id alone reads as a bake in flight, reported UNFINISHED; the image pointer is Bakery's too)
    run.cloud.ecs.instances["i-idle"].tags[tags.IMAGE] = "m-stale"
    return f"instance i-idle still carries {tags.IMAGE} with no bake in flight"


def _corrupt_stopped_tag(run, report):
    run.cloud.ecs.instances["i-a"].tags[tags.STOPPED_BY_BAKERY] = "true"
    return f"still carries {tags.STOPPED_BY_BAKERY}"


def _corrupt_unchecked(run, report):
    _promoted(run, report).detection_status = "Processing"
    return "is in family web without a passed check"


def _corrupt_failing_check(run, report):
    _promoted(run, report).detection_items = [{"Name": "Nvme", "RiskLevel": "High"}]
    return "is in family web without a passed check"


def _corrupt_missing_disk(run, report):
    image = _promoted(run, report)
    image.mappings = image.mappings[:2]
    return "has disks [system 40 GiB, data 20 GiB] but i-a had [system 40 GiB, data 20 GiB, data 100 GiB]"


def _corrupt_small_disk(run, report):
    _promoted(run, report).mappings[2].size = 50
    return "smaller than i-a's"


@pytest.mark.parametrize(
    "corrupt",
    [_corrupt_duplicate, _corrupt_leftover, _corrupt_gone, _corrupt_orphan_image, _corrupt_orphan_snapshot,
     _corrupt_stopped, _corrupt_work_tag, _corrupt_stopped_tag, _corrupt_unchecked, _corrupt_failing_check,
     _corrupt_missing_disk, _corrupt_small_disk],
    ids=lambda f: f.__name__.removeprefix("_corrupt_"),
)  # fmt: skip
def test_each_promise_catches_a_corrupted_final_state(clean, corrupt):
    run, report = clean
    # When the final state is corrupted after a correct run
    expected = corrupt(run, report)
    # Then the verdict names it as a broken promise
    problems = run.problems(run.report())
    assert any(p.startswith("PROMISE BROKEN: ") and expected in p for p in problems), problems


def test_a_failed_bake_that_left_an_image_is_caught(local_run):
    run, report = local_run({"seed": 28, "instances": [{"id": "i-a"}],
                             "actions": [trigger("i-a", family="web")]}, env={"BAKERY_MIN_FREE_MB": "999999"})  # fmt: skip
    (bake,) = report["bakes"]
    assert bake["state"] == "failed" and run.problems(report) == []
    public = next(i for i in run.cloud.ecs.images.values() if i.owner_alias == "system")
    _copy_image(run, public, owner_alias="self", mappings=[], tags={tags.BAKE_ID: bake["bakeId"]})
    assert any(f"bake {bake['bakeId']} failed but left images" in p for p in run.problems(run.report()))


def test_the_policies_excuse_only_what_they_allow(local_run):
    # Under BAKERY_UNCHECKED_IMAGE_POLICY=promote an image ECS *can* check still needs a passed check
    run, report = local_run(ONE, env={"BAKERY_UNCHECKED_IMAGE_POLICY": "promote"})
    assert run.problems(report) == []
    image = _promoted(run, report)
    image.detection_status = ""
    assert any("without a passed check" in p for p in run.problems(run.report()))
    # ... and a retired, Deprecated image is the deprecate retire policy's, not the default delete policy's
    image.detection_status = "Finished"
    twin = _copy_image(run, image, family="", mappings=[], status="Deprecated")
    twin.tags[tags.STATE] = tags.RETIRED
    assert any(f"orphaned image {twin.image_id} (state retired)" in p for p in run.problems(run.report()))
    assert not any(twin.image_id in p for p in broken_promises({**run.report(), "settings": {
        "BAKERY_RETIRE_POLICY": "deprecate"}, "baseline": run.report()["baseline"]}))  # fmt: skip


# -- unfinished bakes, dead letters, no bake, a run that does not settle ---------------------------------------

STUCK = {"seed": 29, "instances": [{"id": "i-a"}], "actions": [trigger("i-a", family="web")],
         "faults": [{"action": "DescribeImages", "code": "Throttling", "probability": 1.0}]}  # fmt: skip
DEAD = {"seed": 30, "instances": [{"id": "i-a"}], "actions": [trigger("i-a", family="web")],
        "faults": [{"action": "CreateImage", "code": "ServiceUnavailable", "probability": 1.0}]}  # fmt: skip


def test_an_unfinished_bake_is_a_problem_even_with_every_promise_kept(local_run):
    run, report = local_run(DEAD, patience_seconds=3600)
    problems = run.problems(report)
    assert report["outcome"] == "stalled"
    assert any(p.startswith("UNFINISHED: bake ") and "on i-a (state in-flight)" in p for p in problems), problems
    assert any(p.startswith("DEAD LETTER: bakery-bake gave up on ") for p in problems), problems
    assert any(p.startswith("UNSETTLED: ") for p in problems), problems
    assert report["deadLetters"][0]["function"] == "bakery-bake"


def test_a_tagged_instance_without_any_bake_is_a_problem():
    report = _hand_built([SYSTEM, DATA])
    report["bakes"] = []
    report["images"], report["snapshots"] = [], []
    report["instances"][0]["tags"] = {}
    assert find_problems(report) == ["NO BAKE: i-a was tagged bakery:bake=true at t+0s but no bake of it was recorded"]


def test_a_trigger_nobody_claimed_and_an_old_report_s_dead_letter_count_are_problems():
    report = _hand_built([SYSTEM, DATA])
    report["inFlight"] = [["i-b", "trigger"]]
    del report["deadLetters"]
    report["deliveries"]["dead_letters"] = 2
    problems = find_problems(report)
    assert "UNFINISHED: instance i-b still carries bakery:bake=true; no bake claimed it" in problems
    assert problems.count("DEAD LETTER: an event was given up on") == 2


def _ticker(run: LocalRun, fires: list[int], limit: int = 200_000) -> None:
    """An emulator timer that re-arms itself every 30 s: the run is never idle (as under a sweep that keeps
    writing). It refuses to go on forever, so a run loop that never ends fails here instead of hanging."""

    def fire() -> None:
        fires[0] += 1
        if fires[0] > limit:
            raise AssertionError("the run loop never ended")
        run.cloud.clock.call_later(30, fire, "test ticker")

    run.cloud.clock.call_later(30, fire, "test ticker")


@pytest.mark.parametrize("watched", [True, False], ids=["on-step", "no-watcher"])
def test_a_stuck_run_that_is_never_idle_ends_after_the_patience(watched):
    run = LocalRun(Scenario.from_mapping(STUCK))
    try:
        fires, steps = [0], []
        _ticker(run, fires)
        report = run.run(on_step=steps.append if watched else None, patience_seconds=3600)
        # Then the run ends, stalled, within the patience (plus one step or chunk) of the last change, with the
        # bake reported unfinished
        assert report["outcome"] == "stalled"
        assert report["simulated_seconds"] <= 2 * 3600
        assert len(steps) <= (2 * 60 if watched else 0)
        assert any(p.startswith("UNFINISHED: bake ") for p in run.problems(report))
    finally:
        run.close()


# -- the command: exit codes in every output mode, bounded progress -------------------------------------------


def _scenario_file(tmp_path: Path, scenario: dict[str, Any]) -> Path:
    path = tmp_path / "scenario.json"  # YAML is a superset of JSON
    path.write_text(json.dumps(scenario))
    return path


@pytest.mark.parametrize("mode", [[], ["--json"], ["--progress"], ["--progress", "--json"]])
def test_local_run_exits_1_on_an_unfinished_bake_in_every_mode(tmp_path, capsys, mode):
    report_path = tmp_path / "r.json"
    code = main(["local", "run", str(_scenario_file(tmp_path, STUCK)), "--report", str(report_path), *mode])
    out = capsys.readouterr().out
    assert code == EXIT_PROBLEM, out
    assert "safety promises kept" not in out
    written = json.loads(report_path.read_text())
    assert written["verdict"]["ok"] is False and any(p.startswith("UNFINISHED") for p in written["verdict"]["problems"])
    if "--json" in mode:
        printed = json.loads(out)
        assert printed["verdict"] == written["verdict"] and "invariantViolations" in printed
    else:
        assert "UNFINISHED: bake " in out and "verdict: NOT CLEAN" in out


def test_local_run_exits_1_on_a_dead_letter_and_says_so(tmp_path, capsys):
    code = main(["local", "run", str(_scenario_file(tmp_path, DEAD)), "--report", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code == EXIT_PROBLEM
    assert "DEAD LETTER: bakery-bake gave up on" in out and "safety promises kept" not in out


def test_a_clean_run_says_what_it_checked_and_exits_0(tmp_path, capsys):
    path = _scenario_file(tmp_path, ONE)
    assert main(["local", "run", str(path), "--report", str(tmp_path / "r.json")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "verdict: every bake finished (1 ready), no dead letters; safety promises kept" in out
    assert all(promise in out for promise in PROMISES)
    assert main(["local", "run", str(path), "--report", str(tmp_path / "r.json"), "--json"]) == EXIT_OK
    verdict = json.loads(capsys.readouterr().out)["verdict"]
    assert verdict == {"ok": True, "bakes": {"ready": 1}, "noBakeHappened": False, "checked": list(PROMISES),
                       "problems": []}  # fmt: skip


def test_no_bake_happened_is_said_explicitly(tmp_path, capsys):
    path = _scenario_file(tmp_path, {"seed": 31, "instances": [{"id": "i-a"}]})
    assert main(["local", "run", str(path), "--report", str(tmp_path / "r.json")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "verdict: no bake happened (the scenario tagged no instance for baking)" in out
    assert "safety promises kept" not in out


def test_progress_on_a_never_idle_stuck_run_ends_with_bounded_output(tmp_path, capsys, monkeypatch):
    # Given a stuck bake in a region that is never idle (as under a sweep that keeps writing)
    fires = [0]
    original = LocalRun.__post_init__

    def with_ticker(self: LocalRun) -> None:
        original(self)
        _ticker(self, fires)

    monkeypatch.setattr(LocalRun, "__post_init__", with_ticker)
    # When it runs with --progress
    code = main(["local", "run", str(_scenario_file(tmp_path, STUCK)), "--report", str(tmp_path / "r.json"),
                 "--progress"])  # fmt: skip
    # Then it ends, exits 1, and printed a bounded number of lines
    out = capsys.readouterr().out
    assert code == EXIT_PROBLEM
    assert "UNSETTLED: the run stopped" in out and "UNFINISHED: bake " in out
    assert len(out.splitlines()) < 40, out


class _Events:
    def __init__(self, published: list[Any]) -> None:
        self.published = published

    def read(self, since: int, bus: str | None) -> list[Any]:
        return self.published[since:]

    @property
    def cursor(self) -> int:
        return len(self.published)


def test_the_narrator_collapses_repeats_and_stops_at_its_cap(capsys):
    from types import SimpleNamespace

    def event(n: int, image: str) -> Any:
        data = {"imageId": image, "attempt": n, "instanceId": "i-a"}
        return SimpleNamespace(bus="bakery", event={"type": "bakery:Image:CreationStarted", "data": data})

    repeated = [event(1, "m-same")] * 50
    many = [event(1, f"m-{n}") for n in range(5000)]
    run = SimpleNamespace(cloud=SimpleNamespace(events=_Events(repeated + many), clock=SimpleNamespace(now=0.0)))
    narrate = _narrator(0.0, max_lines=20)
    narrate(run)
    narrate(run)  # nothing new: nothing printed
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 21, lines
    assert "(the line above, 49 more time(s))" in lines[1]
    assert "progress stops here (20 lines)" in lines[-1]


def test_a_bake_whose_outcome_event_was_lost_is_judged_by_the_instances_result_tag() -> None:
    from bakery_tools.local import LocalRun
    from localcloud import Scenario

    # Given every Bake:Failed lost in transit: one bake refused before its claim, one failing after it
    scenario = Scenario.from_mapping({
        "seed": 3,
        "faults": [{"events": "drop", "probability": 1, "type": "bakery:Bake:Failed"}],
        "instances": [{"id": "i-full", "tags": {f"k{n}": "v" for n in range(18)}},
                      {"id": "i-bad", "create_image_failures": 5}],
        "actions": [{"at": 0, "tag": {"instance": i, "tags": {"bakery:bake": "true"}}} for i in ("i-full", "i-bad")],
    })  # fmt: skip
    with LocalRun(scenario) as run:
        report = run.run()
        # Then both are failed with the reason the instance carries — not UNFINISHED, not NO BAKE
        outcomes = {b["instanceId"]: (b["state"], b["reason"]) for b in report["bakes"]}
        assert outcomes == {"i-full": ("failed", "tag-limit"), "i-bad": ("failed", "create-failed")}, report["bakes"]
        assert run.problems(report) == []


def test_an_instance_started_that_was_stopped_is_caught(local_run):
    # Given a clean run with a Stopped bystander
    run, report = local_run({"seed": 32, "instances": [{"id": "i-a"}, {"id": "i-cold", "status": "Stopped"}],
                             "actions": [trigger("i-a", family="web")]})  # fmt: skip
    assert run.problems(report) == []
    # When something starts it (Bakery starts only what it stopped)
    run.cloud_env.ecs.start_instance(m.StartInstanceRequest(instance_id="i-cold"))
    run.runtime.run_until(run.cloud.clock.now + 120)
    # Then the verdict says so
    assert any("instance i-cold was Stopped and is now Running" in p for p in run.problems(run.report()))
