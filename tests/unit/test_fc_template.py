"""template.yml → the local FC runtime's wiring: what loads, what it yields, and what is refused at load time."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcloud.fc import TemplateError, load_template, parse_schedule
from localcloud.fc.schedule import ScheduleError

ROOT = Path(__file__).resolve().parents[2]
REAL_TEMPLATE = ROOT / "template.yml"
TEMPLATES = ROOT / "tests" / "fixtures" / "templates"
REGION = "cn-hangzhou"
ACCOUNT = "1112223334445556"


def _raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _required_parameters(path: Path) -> dict[str, str]:
    """A value for every parameter without a Default, so the test follows the template as it grows."""
    return {name: f"given-{name}" for name, spec in _raw(path)["Parameters"].items() if "Default" not in spec}


def _resources(path: Path, kind: str) -> dict[str, dict[str, Any]]:
    return {lid: res for lid, res in _raw(path)["Resources"].items() if res["Type"] == kind}


def _load_real() -> Any:
    return load_template(REAL_TEMPLATE, _required_parameters(REAL_TEMPLATE), region=REGION, account_id=ACCOUNT)


def _tag_event(resource_type: str) -> dict[str, Any]:
    return {
        "source": "acs.ecs",
        "type": "ecs:ActionTrail:ApiCall",
        "aliyuneventbusname": "default",
        "data": {"eventName": "TagResources", "requestParameters": {"ResourceType": resource_type}},
    }


# -- the real template -----------------------------------------------------------------------------


def test_the_real_template_yields_every_function_it_declares() -> None:
    # Given template.yml and a value for each required parameter
    # When it is loaded
    template = _load_real()

    # Then every FC3 function is there, by name, with code the runtime can import
    declared = {
        res["Properties"]["FunctionName"] for res in _resources(REAL_TEMPLATE, "ALIYUN::FC3::Function").values()
    }
    assert set(template.functions) == declared
    assert {"bakery-bake", "bakery-check", "bakery-repair"} <= declared
    for fn in template.functions.values():
        assert fn.runtime == "python3.10"
        assert fn.handler_file.is_file()
        assert fn.code_dir.parent == ROOT / "functions"
        assert fn.env["BAKERY_EVENT_BUS"] == "bakery"  # NotificationBus's Default, through Ref


def test_the_real_template_yields_a_route_per_trigger_and_rule_target() -> None:
    # Given template.yml
    # When it is loaded
    template = _load_real()

    # Then each eventbridge trigger routes the default bus, and each rule target routes the rule's bus
    triggers = {
        lid
        for lid, res in _resources(REAL_TEMPLATE, "ALIYUN::FC3::Trigger").items()
        if res["Properties"]["TriggerType"] == "eventbridge"
    }
    rules = _resources(REAL_TEMPLATE, "ALIYUN::EventBridge::Rule")
    assert {r.logical_id for r in template.routes if r.kind == "trigger"} == triggers
    assert {r.logical_id for r in template.routes if r.kind == "rule"} == set(rules)
    assert all(r.bus == "default" for r in template.routes if r.kind == "trigger")
    assert all(r.bus == "bakery" for r in template.routes if r.kind == "rule")
    assert len([r for r in template.routes if r.kind == "rule"]) == sum(
        len(res["Properties"]["Targets"]) for res in rules.values()
    )


def test_the_real_template_routes_every_tagging_record_to_bake_whatever_its_shape() -> None:
    # Given the loaded template, and TagResources records in each shape Alibaba might deliver (README: wiring):
    # flat requestParameters, requestParameterJson, or none at all (EventBridge's own ActionTrail sample)
    template = _load_real()
    flat = _tag_event("instance")
    nested = {**flat, "data": {"eventName": "TagResources", "requestParameterJson": '{"ResourceType": "instance"}'}}
    bare = {**flat, "data": {"eventName": "TagResources", "referencedResources": {"ACS::ECS::Instance": ["i-1"]}}}

    def functions_for(event: dict[str, Any]) -> set[str]:
        return {r.function for r in template.routes if r.bus == "default" and r.pattern.matches(event)}

    # Then each reaches bakery-bake (which reads the resource type from whatever arrived), and only it
    for event in (flat, nested, bare, _tag_event("image")):
        assert functions_for(event) == {"bakery-bake"}
    # And other API calls reach nothing
    assert functions_for({**flat, "data": {"eventName": "UntagResources"}}) == set()


def test_the_real_template_yields_its_timers_buses_async_configs_and_role() -> None:
    # Given the loaded template
    template = _load_real()

    # Then the sweep timer runs bakery-check every minute with its payload
    sweep = next(t for t in template.timers if t.logical_id == "CheckSweepTimer")
    assert (sweep.function, sweep.expression, sweep.trigger_name, sweep.enabled) == (
        "bakery-check",
        "@every 1m",
        "sweep",
        True,
    )
    assert sweep.payload == '{"sweep": true}'
    # And both custom buses exist
    assert set(template.buses) == {"bakery", "bakery-dead-letter"}
    # And each async config bounds its function's retries and sends failures to the dead-letter bus
    configs = _resources(REAL_TEMPLATE, "ALIYUN::FC3::AsyncInvokeConfig").values()
    assert len(configs) == len(template.functions)
    for config in configs:
        (logical_id, _) = config["Properties"]["FunctionName"]["Fn::GetAtt"]
        fn = template.function(logical_id)
        assert fn.max_retries == config["Properties"]["MaxAsyncRetryAttempts"]
        assert fn.max_event_age_s == config["Properties"]["MaxAsyncEventAgeInSeconds"]
        assert fn.on_failure == f"acs:eventbridge:{REGION}:{ACCOUNT}:eventbus/bakery-dead-letter"
    # And the role (its name through Fn::Sub of the stack name) grants the flattened, sorted actions
    role = template.roles["FunctionRole"]
    assert role.name == "bakery-fc-bakery"
    assert role.actions == sorted(set(role.actions))
    assert {"ecs:CreateImage", "ecs:TagResources", "eventbridge:PutEvents", "oos:StartExecution"} <= set(role.actions)
    assert all(fn.role_actions == role.actions for fn in template.functions.values())


# -- parameters and intrinsics ---------------------------------------------------------------------


def test_a_missing_required_parameter_is_named() -> None:
    # Given template.yml without CodeBucket
    params = _required_parameters(REAL_TEMPLATE)
    del params["CodeBucket"]
    # When it is loaded
    # Then the error names the parameter
    with pytest.raises(TemplateError, match=r"Parameters\.CodeBucket: .*required"):
        load_template(REAL_TEMPLATE, params, region=REGION, account_id=ACCOUNT)


def test_an_undeclared_parameter_is_rejected() -> None:
    # Given a parameter the template does not declare (a typo)
    params = {**_required_parameters(REAL_TEMPLATE), "NotificatoinBus": "x"}
    # When loaded
    # Then the typo is named
    with pytest.raises(TemplateError, match="NotificatoinBus"):
        load_template(REAL_TEMPLATE, params, region=REGION, account_id=ACCOUNT)


def test_given_parameters_override_defaults() -> None:
    # Given NotificationBus set to another bus
    params = {**_required_parameters(REAL_TEMPLATE), "NotificationBus": "bakery-dev"}
    # When loaded
    template = load_template(REAL_TEMPLATE, params, region=REGION, account_id=ACCOUNT)
    # Then the bus, the rules and the environment follow it
    assert "bakery-dev" in template.buses
    assert all(r.bus == "bakery-dev" for r in template.routes if r.kind == "rule")
    assert template.functions["bakery-bake"].env["BAKERY_EVENT_BUS"] == "bakery-dev"


def test_sub_and_getatt_resolve_pseudo_parameters_and_attributes() -> None:
    # Given a fixture template using ${ALIYUN::StackName}, ${ALIYUN::Region}, ${ALIYUN::TenantId}, GetAtt
    # When loaded with a stack name
    template = load_template(
        TEMPLATES / "runtime_routes.yml", {"RecordFile": "/tmp/r"}, region=REGION, account_id=ACCOUNT, stack_name="st"
    )
    # Then the values are substituted
    recorder = template.functions["fx-recorder"]
    assert recorder.env == {"RECORD_FILE": "/tmp/r", "RECORDER_LABEL": f"st-{REGION}-{ACCOUNT}"}
    assert (recorder.memory_mb, recorder.timeout_s, recorder.max_retries, recorder.on_failure) == (256, 30, 3, None)
    assert {(r.logical_id, r.bus, r.function) for r in template.routes} == {
        ("OnTagTrigger", "default", "fx-recorder"),
        ("OnThingRule", "fx-bus", "fx-recorder"),
    }


def test_a_disabled_timer_is_kept_but_marked_disabled() -> None:
    # Given a template with a disabled timer trigger
    template = load_template(TEMPLATES / "runtime_timers.yml", {"RecordFile": "/tmp/r"}, region=REGION,
                             account_id=ACCOUNT)  # fmt: skip
    # Then it is listed, disabled, and the others are enabled
    assert {(t.trigger_name, t.enabled) for t in template.timers} == {
        ("sweep", True),
        ("hourly", True),
        ("disabled", False),
    }


# -- rejections: each names the resource and the property ----------------------------------------

REJECTIONS = [
    # (fixture, resource, property, words the message must contain)
    ("bad_unknown_resource_type", "WebServer", "Type", "ALIYUN::ECS::Instance"),
    ("bad_unknown_top_level_key", None, "Resource", "unknown top-level key"),
    ("bad_ros_only_section", None, "Conditions", "valid ROS but not run by the local runtime"),
    ("bad_function_missing_handler", "RecorderFunction", "Handler", "required"),
    ("bad_function_missing_runtime", "RecorderFunction", "Runtime", "required"),
    ("bad_function_missing_name", "RecorderFunction", "FunctionName", "required"),
    ("bad_function_runtime", "RecorderFunction", "Runtime", "'python3' is not supported"),
    ("bad_function_no_local_code_uri", "RecorderFunction", "Metadata.LocalCodeUri", "required"),
    ("bad_function_code_dir", "RecorderFunction", "Metadata.LocalCodeUri", "does not exist"),
    ("bad_function_handler_file", "RecorderFunction", "Metadata.LocalCodeUri", "main.py"),
    ("bad_trigger_unknown_function", "OnTagTrigger", "FunctionName", "'fx-missing' is not a function"),
    ("bad_trigger_invalid_pattern", "OnTagTrigger", "TriggerConfig.eventRuleFilterPattern", "wildcard"),
    ("bad_timer_cron", "Sweep", "TriggerConfig.cronExpression", "6 fields"),
    ("bad_async_unknown_function", "MissingAsync", "FunctionName", "'fx-missing' is not a function"),
    ("bad_async_retries", "RecorderAsync", "MaxAsyncRetryAttempts", "between 0 and 8"),
    ("bad_rule_unknown_function", "ThingRule", "Targets[0].ParamList.functionName", "'fx-missing' is not a function"),
    ("bad_rule_endpoint_unknown_function", "ThingRule", "Targets[0].Endpoint", "'fx-missing' is not a function"),
    ("bad_rule_invalid_pattern", "ThingRule", "FilterPattern", "bare string"),
    ("bad_unsupported_intrinsic", "RecorderFunction", "FunctionName", "Fn::Join"),
]


@pytest.mark.parametrize(("fixture", "resource", "prop", "words"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_a_template_that_cannot_run_is_rejected_naming_resource_and_property(
    fixture: str, resource: str | None, prop: str, words: str
) -> None:
    # Given a fixture template with one defect
    path = TEMPLATES / f"{fixture}.yml"
    # When it is loaded
    with pytest.raises(TemplateError) as caught:
        load_template(path, region=REGION, account_id=ACCOUNT)
    # Then the error is a ValueError naming the file, the resource, the property and the problem
    error = caught.value
    message = str(error)
    assert isinstance(error, ValueError)
    assert message.startswith(f"{path.name}: ")
    assert (error.resource, error.property) == (resource, prop)
    where = f"{resource}.{prop}" if resource else prop
    assert f": {where}: " in message, message
    assert words in message, message


def test_every_rejection_fixture_is_exercised() -> None:
    # Given the fixture directory
    # Then each bad_*.yml has a case above (a new fixture without a test would prove nothing)
    assert {p.stem for p in TEMPLATES.glob("bad_*.yml")} == {r[0] for r in REJECTIONS}


def test_an_unreadable_template_is_a_template_error(tmp_path: Path) -> None:
    # Given a file that is not YAML, and one that does not exist
    broken = tmp_path / "broken.yml"
    broken.write_text("Resources: [unclosed\n")
    # Then both fail as TemplateError, naming the file
    with pytest.raises(TemplateError, match=r"broken\.yml"):
        load_template(broken, region=REGION, account_id=ACCOUNT)
    with pytest.raises(TemplateError, match=r"missing\.yml"):
        load_template(tmp_path / "missing.yml", region=REGION, account_id=ACCOUNT)


# -- schedules -------------------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("expression", "seconds"), [("@every 30s", 30), ("@every 5m", 300), ("@every 1h", 3600), ("@every 1h30m", 5400)]
)
def test_every_intervals_parse_to_seconds(expression: str, seconds: int) -> None:
    # Given an @every expression
    schedule = parse_schedule(expression)
    # Then the next fire is one interval later
    assert schedule.interval_s == seconds
    assert schedule.next_after(T0) == T0 + seconds


def test_six_field_cron_has_seconds_first_and_runs_in_utc() -> None:
    # Given "at second 30 of minute 0 of 02:00, every day"
    schedule = parse_schedule("30 0 2 * * *")
    # Then from 09:00 the next fire is tomorrow 02:00:30 UTC
    expected = datetime(2026, 1, 6, 2, 0, 30, tzinfo=timezone.utc).timestamp()
    assert schedule.next_after(T0) == expected
    # And a fire time itself is not fired again
    assert schedule.next_after(expected) == expected + 86400


@pytest.mark.parametrize("expression", ["@every", "@every 0s", "@every 5x", "*/5 * * * *", "0 0 25 * * *", "", "soon"])
def test_unreadable_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(expression)
