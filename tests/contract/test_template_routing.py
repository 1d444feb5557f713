"""Contract: every sample in events/ reaches exactly the function(s) meant for it through template.yml.

The expectation table below is the one place that says where each sample goes. A new sample without an
expectation fails, and so does any template edit that changes where a sample is delivered: the last tests
load mutated copies of template.yml to prove the check notices.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bakery_tools.local import LOCAL_PARAMETERS
from localcloud import Scenario
from localcloud.fc import TemplateError, load_template
from localcloud.fc.template import Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yml"
EVENTS = ROOT / "events"

BAKE, CHECK, REPAIR, LIFECYCLE = "bakery-bake", "bakery-check", "bakery-repair", "bakery-lifecycle"

# Where each sample must be delivered (function names, one entry per delivery). An empty list means the event
# is terminal / meant for users' own subscriptions and no Bakery function may receive it.
EXPECTED_DELIVERIES: dict[str, list[str]] = {
    "bakery-bake-failed.json": [],  # terminal: for users
    "bakery-bake-requested.json": [BAKE],
    "bakery-bake-requested.snapshots.json": [BAKE],  # one image from snapshots of several instances' disks
    "bakery-image-checkfailed.json": [REPAIR],
    "bakery-image-adopted.json": [],  # for users: the sweep follows the adopted image
    "bakery-image-notadopted.json": [],  # terminal: for users
    # An image made outside Bakery (Packer's API call, the console's operation): bake adopts it (stages.adopt).
    "ecs-actiontrail-createimage.json": [BAKE],
    "ecs-actiontrail-createimage.console.json": [BAKE],
    # For users: a new image cannot have finished its check, so the sweep decides it (no function woken).
    "bakery-image-creationstarted.json": [],
    "bakery-family-promoted.json": [LIFECYCLE],  # retention, once per family per sweep
    "bakery-family-retentionapplied.json": [],  # terminal: for users
    "bakery-image-ready.json": [],  # for users' notifications (retention runs on Family:Promoted)
    "bakery-image-repaired.json": [],  # for users: the sweep follows the repaired image
    "bakery-image-repairstarted.json": [],  # for users: repair follows its execution itself
    # Bakery's own tag writes (its role's session, as ActionTrail names it) wake nothing.
    "ecs-actiontrail-tagresources.bakery-own-write.json": [],
    "ecs-actiontrail-tagresources.json": [BAKE],
    # A caller recorded without userName (a root account): the second trigger, so the filter never loses it.
    "ecs-actiontrail-tagresources.root-account.json": [BAKE],
    "ecs-cloudassistant-taskcompleted.json": [BAKE],
    "ecs-instance-statechange.stopped.json": [BAKE],
    "ecs-snapshot-createsnapshotcompleted.json": [],  # the image's check runs after this: the sweep decides
    "oos-execution-statuschange.failed.json": [REPAIR],
    "timer-sweep.json": [CHECK],
}


def local_template(path: Path = TEMPLATE) -> Template:
    """The template exactly as a local run (bakery_tools.local.LocalRun) loads it."""
    scenario = Scenario()
    parameters = {"RepairZoneId": f"{scenario.region}-h", **LOCAL_PARAMETERS}
    return load_template(path, parameters, region=scenario.region, account_id=scenario.account_id)


def load_sample(name: str, events_dir: Path = EVENTS) -> dict[str, Any]:
    return json.loads((events_dir / name).read_text())


def deliveries(template: Template, event: dict[str, Any]) -> list[str]:
    """The functions `event` is delivered to, one entry per delivery (a double route shows twice)."""
    if "triggerName" in event and "triggerTime" in event:  # an FC timer invocation, not a bus event
        return sorted(
            t.function
            for t in template.timers
            if t.enabled and t.trigger_name == event["triggerName"] and t.payload == event.get("payload", "")
        )
    bus = event["aliyuneventbusname"]
    return sorted(r.function for r in template.routes if r.bus == bus and r.pattern.matches(event))


def routing_differences(template: Template, events_dir: Path = EVENTS) -> list[str]:
    """One readable line per sample whose deliveries differ from EXPECTED_DELIVERIES (or that has none)."""
    problems = []
    samples = sorted(p.name for p in events_dir.glob("*.json"))
    for name in samples:
        if name not in EXPECTED_DELIVERIES:
            problems.append(f"{name}: no expectation in EXPECTED_DELIVERIES; say where it must be delivered")
            continue
        got = deliveries(template, load_sample(name, events_dir))
        if got != sorted(EXPECTED_DELIVERIES[name]):
            problems.append(f"{name}: delivered to {got}, expected {sorted(EXPECTED_DELIVERIES[name])}")
    for name in sorted(set(EXPECTED_DELIVERIES) - set(samples)):
        problems.append(f"{name}: expected in events/ but there is no such sample")
    return problems


def _mutated_template(tmp_path: Path, mutate: Any) -> Path:
    """A copy of template.yml in tmp_path after `mutate(document)`; functions/ is linked so code is found."""
    document = yaml.safe_load(TEMPLATE.read_text())
    mutate(document["Resources"])
    (tmp_path / "functions").symlink_to(ROOT / "functions", target_is_directory=True)
    path = tmp_path / "template.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# -- the real template ---------------------------------------------------------------------------------


def test_every_sample_in_events_has_a_routing_expectation() -> None:
    # Given the samples in events/ and the expectation table
    samples = {p.name for p in EVENTS.glob("*.json")}

    # When they are compared / Then they name the same files: a new sample must say where it goes
    assert samples == set(EXPECTED_DELIVERIES)


@pytest.mark.parametrize("name", sorted(EXPECTED_DELIVERIES))
def test_sample_is_delivered_to_exactly_its_intended_functions(name: str) -> None:
    # Given template.yml loaded as a local run loads it, and a sample exactly as FC receives it
    template = local_template()
    event = load_sample(name)

    # When it is published on its bus (or fired by its timer)
    got = deliveries(template, event)

    # Then it reaches exactly the expected functions, each once
    assert got == sorted(EXPECTED_DELIVERIES[name])


@pytest.mark.parametrize(
    "name", ["bakery-family-retentionapplied.json", "bakery-bake-failed.json", "bakery-image-repairstarted.json"]
)
def test_events_for_users_reach_no_bakery_function(name: str) -> None:
    # Given an event Bakery publishes for its users' notifications
    event = load_sample(name)

    # When it is routed through the template
    got = deliveries(local_template(), event)

    # Then no Bakery function receives it (it would only be dropped, after an invocation and a log line)
    assert got == []


def test_the_routing_check_reports_nothing_for_the_real_template() -> None:
    # Given the real template and samples / When the whole table is checked
    problems = routing_differences(local_template())

    # Then there is no difference
    assert problems == []


def test_a_sample_on_another_bus_is_not_delivered_by_rules_of_the_bakery_bus() -> None:
    # Given a Bakery event that routes to lifecycle on the bakery bus, published on the default bus instead
    event = {**load_sample("bakery-family-promoted.json"), "aliyuneventbusname": "default"}

    # When it is routed / Then nothing receives it: rules belong to one bus
    assert deliveries(local_template(), event) == []


# -- the check notices template edits that break routing -----------------------------------------------


def test_a_new_sample_without_an_expectation_is_reported(tmp_path: Path) -> None:
    # Given events/ plus one new sample nobody wrote an expectation for
    events_dir = tmp_path / "events"
    shutil.copytree(EVENTS, events_dir)
    new = {**load_sample("ecs-instance-statechange.stopped.json"), "data": {"state": "Running"}}
    (events_dir / "ecs-instance-statechange.running.json").write_text(json.dumps(new))

    # When the routing is checked
    problems = routing_differences(local_template(), events_dir)

    # Then the new sample is named
    assert problems == [
        "ecs-instance-statechange.running.json: no expectation in EXPECTED_DELIVERIES; say where it must be delivered"
    ]


def _rename_check_failed(resources: dict[str, Any]) -> None:
    resources["RepairRule"]["Properties"]["FilterPattern"]["type"] = ["bakery:Image:CheckFail"]


def _tag_trigger_on_untag(resources: dict[str, Any]) -> None:
    props = resources["BakeOnTagTrigger"]["Properties"]["TriggerConfig"]["eventRuleFilterPattern"]
    props["Fn::Sub"] = props["Fn::Sub"].replace("TagResources", "UntagResources")


def _requested_rule_on_default_bus(resources: dict[str, Any]) -> None:
    resources["BakeRequestedRule"]["Properties"]["EventBusName"] = "default"


def _lifecycle_rule_also_to_repair(resources: dict[str, Any]) -> None:
    target = json.loads(json.dumps(resources["RepairRule"]["Properties"]["Targets"][0]))
    resources["LifecycleRule"]["Properties"]["Targets"].append(target)


def _ready_routed_to_lifecycle(resources: dict[str, Any]) -> None:
    resources["LifecycleRule"]["Properties"]["FilterPattern"]["type"].append("bakery:Image:Ready")


def _retention_on_repaired_instead_of_promoted(resources: dict[str, Any]) -> None:
    resources["LifecycleRule"]["Properties"]["FilterPattern"]["type"] = ["bakery:Image:Repaired"]


def _own_writes_filter_dropped(resources: dict[str, Any]) -> None:
    config = resources["BakeOnTagTrigger"]["Properties"]["TriggerConfig"]
    config["eventRuleFilterPattern"] = (
        '{"source":["acs.ecs"],"type":["ecs:ActionTrail:ApiCall","ecs:ActionTrail:ConsoleOperation"],'
        '"data":{"eventName":["TagResources","CreateImage"]}}'
    )


def _unnamed_trigger_disabled(resources: dict[str, Any]) -> None:
    resources["BakeOnTaggedUnnamedTrigger"]["Properties"]["TriggerConfig"]["triggerEnable"] = False


def _sweep_timer_renamed(resources: dict[str, Any]) -> None:
    resources["CheckSweepTimer"]["Properties"]["TriggerName"] = "sweeper"


# Each edit still loads, and the routing check names exactly the samples whose delivery it changes.
ROUTING_EDITS = [
    (_rename_check_failed, ["bakery-image-checkfailed.json: delivered to [], expected ['bakery-repair']"]),
    (
        _tag_trigger_on_untag,
        ["ecs-actiontrail-tagresources.json: delivered to [], expected ['bakery-bake']"],
    ),
    (
        _requested_rule_on_default_bus,
        [
            "bakery-bake-requested.json: delivered to [], expected ['bakery-bake']",
            "bakery-bake-requested.snapshots.json: delivered to [], expected ['bakery-bake']",
        ],
    ),
    (
        _lifecycle_rule_also_to_repair,
        [
            "bakery-family-promoted.json: delivered to ['bakery-lifecycle', 'bakery-repair'], expected ['bakery-lifecycle']"
        ],
    ),
    (_ready_routed_to_lifecycle, ["bakery-image-ready.json: delivered to ['bakery-lifecycle'], expected []"]),
    (
        _retention_on_repaired_instead_of_promoted,
        [
            "bakery-family-promoted.json: delivered to [], expected ['bakery-lifecycle']",
            "bakery-image-repaired.json: delivered to ['bakery-lifecycle'], expected []",
        ],
    ),
    (_sweep_timer_renamed, ["timer-sweep.json: delivered to [], expected ['bakery-check']"]),
    (
        _own_writes_filter_dropped,
        [
            "ecs-actiontrail-tagresources.bakery-own-write.json: delivered to ['bakery-bake'], expected []",
            "ecs-actiontrail-tagresources.root-account.json: delivered to ['bakery-bake', 'bakery-bake'], "
            "expected ['bakery-bake']",
        ],
    ),
    (
        _unnamed_trigger_disabled,
        ["ecs-actiontrail-tagresources.root-account.json: delivered to [], expected ['bakery-bake']"],
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected_problems"),
    [pytest.param(m, p, id=m.__name__.strip("_")) for m, p in ROUTING_EDITS],
)
def test_a_template_edit_that_changes_routing_is_reported(
    tmp_path: Path, mutate: Any, expected_problems: list[str]
) -> None:
    # Given a copy of template.yml with one routing edit
    path = _mutated_template(tmp_path, mutate)

    # When the copy still loads and the routing table is checked against it
    problems = routing_differences(local_template(path))

    # Then exactly the samples whose delivery changed are reported
    assert problems == expected_problems


def test_a_handler_path_that_does_not_exist_fails_to_load(tmp_path: Path) -> None:
    # Given a copy of template.yml whose check function names a handler module that is not there
    def mutate(resources: dict[str, Any]) -> None:
        resources["CheckFunction"]["Properties"]["Handler"] = "main.handler"

    path = _mutated_template(tmp_path, mutate)

    # When it is loaded / Then loading fails, naming the function and the missing file
    with pytest.raises(TemplateError, match=r"CheckFunction\.Metadata\.LocalCodeUri: handler file .*main\.py"):
        local_template(path)


def test_a_rule_targeting_an_undeclared_function_fails_to_load(tmp_path: Path) -> None:
    # Given a copy of template.yml whose repair rule targets a function name nobody declares
    def mutate(resources: dict[str, Any]) -> None:
        target = resources["RepairRule"]["Properties"]["Targets"][0]
        target["Endpoint"]["Fn::Sub"] = target["Endpoint"]["Fn::Sub"].replace("bakery-repair", "bakery-fix")
        target["ParamList"][0]["Value"] = "bakery-fix"

    path = _mutated_template(tmp_path, mutate)

    # When it is loaded / Then loading fails naming the rule's target
    with pytest.raises(
        TemplateError, match=r"RepairRule\.Targets\[0\]\.ParamList\.functionName: 'bakery-fix' is not a function"
    ):
        local_template(path)


def test_a_rule_whose_endpoint_and_function_param_disagree_fails_to_load(tmp_path: Path) -> None:
    # Given a copy of template.yml whose check rule's Endpoint says repair but its functionName param says check
    def mutate(resources: dict[str, Any]) -> None:
        target = resources["LifecycleRule"]["Properties"]["Targets"][0]
        target["Endpoint"]["Fn::Sub"] = target["Endpoint"]["Fn::Sub"].replace("bakery-lifecycle", "bakery-repair")

    path = _mutated_template(tmp_path, mutate)

    # When it is loaded / Then loading fails naming both names
    with pytest.raises(
        TemplateError, match=r"Endpoint names 'bakery-repair' but the functionName param names 'bakery-lifecycle'"
    ):
        local_template(path)
