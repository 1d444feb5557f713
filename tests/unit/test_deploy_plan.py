"""`bakery deploy`'s pure parts: settings precedence, the code prefix, parameters, and the plan's diff lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from bakery_tools.deploy.errors import DeployError
from bakery_tools.deploy.plan import Change, diff_parameters, diff_templates
from bakery_tools.deploy.settings import (
    Layer,
    config_layer,
    flag_layer,
    parse_parameter_flags,
    pyproject_layer,
    resolve_settings,
)
from bakery_tools.deploy.stack import client_token
from bakery_tools.deploy.template import resolve_document, resolved_parameters, stack_parameters, template_body
from bakery_tools.deploy.upload import code_prefix

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = yaml.safe_load((ROOT / "template.yml").read_text(encoding="utf-8"))
GIVEN = {"RepairZoneId": "cn-hangzhou-h", "RepairVSwitchId": "vsw-1", "RepairSecurityGroupId": "sg-1"}


# -- settings precedence ---------------------------------------------------------------------------


def test_defaults_then_environment() -> None:
    s = resolve_settings([], env={})
    assert (s.stack, s.prefix, s.timeout, s.region, s.endpoint, s.bucket) == ("bakery", "bakery", 30, "", "", "")
    assert s.template == Path("template.yml") and s.artifacts is None and s.parameters == {}
    s = resolve_settings([], env={"ALIBABA_CLOUD_REGION_ID": "cn-beijing", "BAKERY_CLOUD_ENDPOINT": "127.0.0.1:9"})
    assert (s.region, s.endpoint) == ("cn-beijing", "127.0.0.1:9")
    assert s.origins["region"] == "$ALIBABA_CLOUD_REGION_ID"


def test_pyproject_then_config_then_flags(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.bakery.deploy]\nregion = "cn-hangzhou"\nbucket = "team-bucket"\n'
        'stack = "team"\ntimeout = 20\n[tool.bakery.deploy.parameters]\nRepairZoneId = "cn-hangzhou-h"\n'
        'RetentionKeep = 3\nMandatoryTags = { cost-center = "ops" }\n'
    )
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "prod.toml").write_text(
        'bucket = "prod-bucket"\ntemplate = "../template.yml"\n[parameters]\nRetentionKeep = "5"\n'
    )
    layers = [pyproject_layer(tmp_path / "pyproject.toml"), config_layer(tmp_path / "ci" / "prod.toml"),
              flag_layer({"stack": "mine", "region": None, "parameters": {"RepairVSwitchId": "vsw-9"}})]  # fmt: skip
    s = resolve_settings([layer for layer in layers if layer], env={"ALIBABA_CLOUD_REGION_ID": "cn-shanghai"})
    assert s.region == "cn-hangzhou"  # pyproject beats the environment
    assert s.bucket == "prod-bucket"  # --config beats pyproject
    assert s.stack == "mine"  # a flag beats both
    assert s.timeout == 20
    assert s.template == tmp_path / "ci" / ".." / "template.yml"  # relative to the file that says it
    assert s.parameters == {"RepairZoneId": "cn-hangzhou-h", "RetentionKeep": "5", "RepairVSwitchId": "vsw-9",
                            "MandatoryTags": '{"cost-center":"ops"}'}  # fmt: skip
    assert s.origins["bucket"].endswith("prod.toml") and s.origins["stack"] == "the command line"
    assert s.origins["parameters.RetentionKeep"].endswith("prod.toml")


def test_a_config_file_may_carry_its_own_tool_table(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[tool.bakery.deploy]\nprefix = "/teams/img/"\n')
    assert resolve_settings([config_layer(path)], env={}).prefix == "teams/img"


def test_no_table_in_pyproject_means_no_layer(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert pyproject_layer(tmp_path / "pyproject.toml") is None
    assert pyproject_layer(tmp_path / "missing.toml") is None
    assert pyproject_layer(ROOT / "pyproject.toml") is None  # the example there is commented out


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"regoin": "cn-hangzhou"}, "unknown setting 'regoin'"),
        ({"timeout": "soon"}, "whole number of minutes"),
        ({"timeout": 5}, "10 to 1440 minutes"),
        ({"bucket": "Bad_Bucket"}, "not an OSS bucket name"),
        ({"stack": "-x"}, "not a stack name"),
        ({"parameters": "RepairZoneId=x"}, "parameters must be a table"),
    ],
)
def test_bad_settings_name_their_source(values: dict[str, object], says: str) -> None:
    with pytest.raises(DeployError) as raised:
        resolve_settings([Layer("deploy.toml", values)], env={})
    assert raised.value.exit_code == 2
    assert says in raised.value.message and raised.value.message.startswith("deploy.toml")


def test_bad_toml_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("region = \n")
    with pytest.raises(DeployError, match="not valid TOML") as raised:
        config_layer(path)
    assert raised.value.exit_code == 2


def test_parameter_flags() -> None:
    assert parse_parameter_flags(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(DeployError, match="KEY=VALUE"):
        parse_parameter_flags(["novalue"])


def test_endpoint_scheme_is_dropped() -> None:
    assert resolve_settings([flag_layer({"endpoint": "http://127.0.0.1:8080/"})], env={}).endpoint == "127.0.0.1:8080"


# -- code prefix and tokens ------------------------------------------------------------------------


def test_code_prefix_follows_the_artifacts_only() -> None:
    shas = {"bake.zip": "a" * 64, "check.zip": "b" * 64}
    prefix = code_prefix("bakery", shas)
    assert re.fullmatch(r"bakery/[0-9a-f]{12}", prefix)
    assert code_prefix("bakery/", dict(reversed(list(shas.items())))) == prefix  # order and slashes do not matter
    assert code_prefix("bakery", {**shas, "check.zip": "c" * 64}) != prefix  # any change moves every function
    assert code_prefix("other", shas).split("/")[1] == prefix.split("/")[1]


def test_client_token_is_stable_and_valid() -> None:
    token = client_token("bakery", "bakery/abc", "f00d")
    assert token == client_token("bakery", "bakery/abc", "f00d")
    assert token != client_token("bakery", "bakery/abd", "f00d")
    assert re.fullmatch(r"[A-Za-z0-9-]{1,64}", token)


# -- parameters ------------------------------------------------------------------------------------


def test_stack_parameters_add_code_and_buses() -> None:
    values = stack_parameters(TEMPLATE, GIVEN, bucket="code", code_prefix="bakery/0123456789ab")
    assert values["CodeBucket"] == "code" and values["CodePrefix"] == "bakery/0123456789ab"
    assert values["NotificationBus"] == "bakery"  # the bus parameters are passed, so the stack records them
    assert {k: values[k] for k in GIVEN} == GIVEN


def test_a_missing_parameter_is_named_with_its_flag() -> None:
    with pytest.raises(DeployError) as raised:
        stack_parameters(TEMPLATE, {"RepairZoneId": "z"}, bucket="code", code_prefix="p/0")
    message = raised.value.message
    assert raised.value.exit_code == 2 and raised.value.reason == "missing-parameter"
    assert "RepairVSwitchId, RepairSecurityGroupId" in message
    assert "--parameter RepairVSwitchId=VALUE" in message and "--parameter RepairSecurityGroupId=VALUE" in message


@pytest.mark.parametrize(
    ("given", "reason"),
    [({"Nope": "1"}, "unknown-parameter"), ({"CodePrefix": "x"}, "code-prefix-given"),
     ({"CodeBucket": "other"}, "two-buckets")],
)  # fmt: skip
def test_parameters_deploy_refuses(given: dict[str, str], reason: str) -> None:
    with pytest.raises(DeployError) as raised:
        stack_parameters(TEMPLATE, {**GIVEN, **given}, bucket="code", code_prefix="p/0")
    assert raised.value.reason == reason and raised.value.exit_code == 2


def test_resolved_parameters_fill_defaults() -> None:
    values = resolved_parameters(TEMPLATE, {**GIVEN, "ALIYUN::StackId": "x"})
    assert values["RetentionKeep"] == "3" and values["RepairInstanceType"] == "ecs.g7.large"
    assert "ALIYUN::StackId" not in values


def test_parameter_diff_lines() -> None:
    lines = [c.line() for c in diff_parameters({"A": "1", "B": "x", "ALIYUN::Region": "r"}, {"A": "2", "C": "y"})]
    assert lines == ["~ Parameter A: 1 -> 2", "- Parameter B (x)", "+ Parameter C (y)"]


# -- the template diff -----------------------------------------------------------------------------


def _resolved(document: dict, **parameters: str) -> dict:
    given = {**GIVEN, "CodeBucket": "code", "CodePrefix": "bakery/aaaaaaaaaaaa", **parameters}
    return resolve_document(document, given, region="cn-hangzhou", stack="bakery")


def _edited(**changes: object) -> dict:
    # as deploy sends it (JSON): an alias of the shared environment becomes each function's own copy
    document = json.loads(json.dumps(yaml.safe_load((ROOT / "template.yml").read_text(encoding="utf-8"))))
    for path, value in changes.items():
        node = document["Resources"]
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return document


def test_the_template_body_is_json_with_anchors_and_aliases_resolved() -> None:
    document = yaml.safe_load(
        "Resources:\n  A: {Type: X, Properties: &shared {K: v}}\n  B: {Type: X, Properties: *shared}\n"
    )
    sent = json.loads(template_body(document))
    assert sent == {
        "Resources": {"A": {"Type": "X", "Properties": {"K": "v"}}, "B": {"Type": "X", "Properties": {"K": "v"}}}
    }
    with pytest.raises(DeployError, match=r"template.yml: cannot be sent to ROS as JSON .*quote the value"):
        template_body(yaml.safe_load("Resources: {}\nWhen: 2015-09-01\n"))  # a YAML date


def test_same_template_same_parameters_no_lines() -> None:
    assert diff_templates(_resolved(TEMPLATE), _resolved(TEMPLATE)) == []


def test_memory_size_change_is_exactly_one_line() -> None:
    changes = diff_templates(_resolved(TEMPLATE), _resolved(_edited(BakeFunction__Properties__MemorySize=256)))
    assert [c.line() for c in changes] == ["~ BakeFunction.Properties.MemorySize: 128 -> 256"]


def test_nested_environment_change_names_the_variable() -> None:
    edited = _edited(CheckFunction__Properties__EnvironmentVariables__BAKERY_LOG_LEVEL="DEBUG")
    assert [c.line() for c in diff_templates(_resolved(TEMPLATE), _resolved(edited))] == [
        "~ CheckFunction.Properties.EnvironmentVariables.BAKERY_LOG_LEVEL: INFO -> DEBUG"
    ]


def test_a_parameter_change_shows_where_it_lands() -> None:
    """Resolved properties: a new CodePrefix moves every function's OssObjectName."""
    changes = diff_templates(_resolved(TEMPLATE), _resolved(TEMPLATE, CodePrefix="bakery/bbbbbbbbbbbb"))
    functions = sorted(lid for lid, r in TEMPLATE["Resources"].items() if r["Type"] == "ALIYUN::FC3::Function")
    assert [c.path for c in changes] == [f"{lid}.Properties.Code.OssObjectName" for lid in functions]
    bake = next(c for c in changes if c.path.startswith("BakeFunction"))
    assert bake.line() == "~ BakeFunction.Properties.Code.OssObjectName: bakery/aaaaaaaaaaaa/bake.zip -> " \
                          "bakery/bbbbbbbbbbbb/bake.zip"  # fmt: skip


def test_added_and_removed_resources() -> None:
    edited = _edited()
    edited["Resources"]["ExtraRule"] = dict(edited["Resources"]["RepairRule"])
    del edited["Resources"]["LifecycleRule"]
    lines = [c.line() for c in diff_templates(_resolved(TEMPLATE), _resolved(edited))]
    assert lines == ["+ ExtraRule (ALIYUN::EventBridge::Rule)", "- LifecycleRule (ALIYUN::EventBridge::Rule)"]


def test_getatt_stays_symbolic_and_sub_resolves() -> None:
    resolved = _resolved(TEMPLATE)["Resources"]["BakeFunction"]["Properties"]
    assert resolved["Role"] == "${FunctionRole.Arn}"
    assert resolved["Code"] == {"OssBucketName": "code", "OssObjectName": "bakery/aaaaaaaaaaaa/bake.zip"}
    role = _resolved(TEMPLATE)["Resources"]["FunctionRole"]["Properties"]
    assert role["RoleName"] == "bakery-fc-bakery"


def test_lists_diff_per_index_and_outputs() -> None:
    old = {"Resources": {"R": {"Type": "T", "Properties": {"L": [1, 2, 3], "M": [1]}}}, "Outputs": {"A": {"Value": 1}}}
    new = {
        "Resources": {"R": {"Type": "T", "Properties": {"L": [1, 5, 3], "M": [1, 2]}}},
        "Outputs": {"B": {"Value": 2}},
    }
    lines = [c.line() for c in diff_templates(old, new)]
    assert lines == ["~ R.Properties.L[1]: 2 -> 5", "~ R.Properties.M: [1] -> [1,2]", '- Outputs.A ({"Value":1})',
                     '+ Outputs.B ({"Value":2})']  # fmt: skip


def test_type_change_and_long_values_are_clipped() -> None:
    change = Change("~", "X.Properties.P", "a" * 300, "b")
    assert len(change.line()) < 130 and change.line().endswith("-> b")
    old = {"Resources": {"R": {"Type": "A"}}}
    assert [c.line() for c in diff_templates(old, {"Resources": {"R": {"Type": "B"}}})] == ["~ R.Type: A -> B"]


# -- following a stack (a fake ROS: no network) ----------------------------------------------------


class _FakeClients:
    """What Deployer needs of CloudClients: `ros`, `call`, `wait`, `elapsed` — a stack that never finishes."""

    local = True

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.elapsed = 0.0
        self.events: list[dict[str, str]] = []
        ns = SimpleNamespace
        self.ros = ns(
            get_stack=lambda r: ns(body=ns(stack_id="st-1", stack_name="bakery", status="CREATE_IN_PROGRESS",
                                           status_reason="", parameters=[], outputs=[], update_time=None,
                                           create_time="2026-01-01T00:00:00")),
            list_stack_events=lambda r: ns(body=ns(events=[ns(**e) for e in reversed(self.events)],
                                                   total_count=len(self.events))),
        )  # fmt: skip

    def call(self, service: str, action: str, method: object, request: object) -> object:
        return method(request).body  # type: ignore[operator]

    def wait(self, seconds: float) -> None:
        self.elapsed += seconds
        n = len(self.events)
        self.events.append({"event_id": f"e{n}", "create_time": f"2026-01-01T00:{n // 60:02d}:{n % 60:02d}",
                            "status": "CREATE_IN_PROGRESS", "resource_type": "ALIYUN::FC3::Function",
                            "logical_resource_id": f"F{n}", "physical_resource_id": "", "status_reason": ""})  # fmt: skip


def test_follow_gives_up_at_the_timeout_and_shows_events_in_order() -> None:
    from bakery_tools.deploy.deployer import Deployer
    from bakery_tools.deploy.settings import DeploySettings

    clients = _FakeClients()
    seen: list[str] = []
    deployer = Deployer(DeploySettings(region="cn-hangzhou", timeout=10), clients=clients, poll_seconds=30)  # type: ignore[arg-type]
    result = deployer.follow("st-1", "create", set(), lambda e, done, total: seen.append(e.logical_id), total=3)
    assert result.timed_out and not result.ok and result.status == "CREATE_IN_PROGRESS"
    assert result.elapsed >= 10 * 60  # simulated: the fake clock only moves when waited on
    assert seen == [f"F{n}" for n in range(len(seen))] and len(seen) > 10  # oldest first, each once
