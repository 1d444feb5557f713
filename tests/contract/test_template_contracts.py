"""Contract: template.yml ↔ the code it deploys.

- every function's Handler resolves and imports in a clean interpreter (no env needed at import time);
- each function gets exactly the env vars `bakery.config.Settings` reads from the template, and they validate;
- the FunctionRole allows exactly the actions the adapters call (plus what ACS-ECS-RepairImage needs), no `*`;
- every `bakery:*` type has a sample, and each function accepts exactly the samples routed to it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest
import yaml

from bakery import events
from bakery.adapters.oos import REPAIR_TEMPLATE_ACTIONS
from bakery.clients import reset_clients
from bakery.config import Settings
from bakery.pipeline import Pipeline
from bakery_tools.local import LOCAL_PARAMETERS
from localcloud import Scenario
from localcloud.fc import load_template
from localcloud.fc.template import FunctionDef, Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yml"
EVENTS = ROOT / "events"
BAKERY_SRC = ROOT / "shared" / "bakery"
TOOLS_SRC = ROOT / "shared" / "bakery_tools"
ADAPTERS = BAKERY_SRC / "adapters"
ROLE = "FunctionRole"
RAM_SERVICES = ("ecs", "oos", "eventbridge")


def local_template(path: Path = TEMPLATE) -> Template:
    """The template exactly as a local run (bakery_tools.local.LocalRun) loads it."""
    scenario = Scenario()
    parameters = {"RepairZoneId": f"{scenario.region}-h", **LOCAL_PARAMETERS}
    return load_template(path, parameters, region=scenario.region, account_id=scenario.account_id)


TEMPLATE_FUNCTIONS = sorted(local_template().functions)
SAMPLES = sorted(p.name for p in EVENTS.glob("*.json"))


def _sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


# -- handlers ------------------------------------------------------------------------------------------

_IMPORT_HANDLER = """
import importlib, json, sys
code_dir, module_name, attribute = sys.argv[1:4]
sys.path.insert(0, code_dir)  # what FC does: the code directory is the import root
handler = getattr(importlib.import_module(module_name), attribute)
print(json.dumps({"callable": callable(handler), "name": getattr(handler, "__name__", None)}))
"""


@pytest.fixture(scope="module")
def clean_imports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each function's Handler imported by a fresh, isolated interpreter with no FC or Bakery env vars at all."""
    cwd = tmp_path_factory.mktemp("clean-import")
    results = {}
    for fn in local_template().functions.values():
        results[fn.name] = subprocess.run(
            [sys.executable, "-I", "-c", _IMPORT_HANDLER, str(fn.code_dir), fn.module_path, fn.function_attr],
            env={"PATH": os.environ.get("PATH", "")},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    return results


def _imported(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("function", TEMPLATE_FUNCTIONS)
def test_handler_imports_in_a_clean_interpreter_and_is_callable(
    function: str, clean_imports: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    # Given a function's Handler and code directory as template.yml declares them
    # When a fresh, isolated interpreter imports it with no FC or Bakery env vars at all
    result = clean_imports[function]

    # Then it imports (nothing reads env or builds clients at import time) and the handler is callable
    assert _imported(result)["callable"] is True


@pytest.mark.parametrize("function", TEMPLATE_FUNCTIONS)
def test_handler_is_the_entry_point_named_after_its_function(
    function: str, clean_imports: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    # Given a function's Handler as template.yml declares it (bakery-check → functions/check/index.handler)
    # When it is imported in a clean interpreter
    result = clean_imports[function]

    # Then it is the bakery entry point for that function, not another function's
    assert _imported(result)["name"] == f"{function.removeprefix('bakery-')}_handler"


# -- environment ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", TEMPLATE_FUNCTIONS)
def test_function_env_vars_are_exactly_the_settings_template_variables(function: str) -> None:
    # Given a function's EnvironmentVariables in template.yml
    env = local_template().function(function).env

    # When compared with what Settings reads from the template / Then they are the same names, no more, no less
    assert set(env) == Settings.variables("template")


@pytest.mark.parametrize("function", TEMPLATE_FUNCTIONS)
def test_function_env_values_from_the_template_validate(function: str) -> None:
    # Given a function's env from template.yml (parameter defaults resolved) plus what FC adds
    env = {**local_template().function(function).env, "FC_REGION": "cn-hangzhou"}

    # When Settings reads it
    settings = Settings.from_env(env)

    # Then every value is accepted and read as the template wrote it
    assert settings.event_bus == env["BAKERY_EVENT_BUS"]
    assert settings.repair_zone_id == env["BAKERY_REPAIR_ZONE_ID"]
    assert settings.tags_required == json.loads(env["BAKERY_MANDATORY_TAGS"])


# -- RAM policy ----------------------------------------------------------------------------------------


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _adapter_calls() -> tuple[set[str], list[str]]:
    """RAM actions of every `call("svc", "Action", ...)` and `self._call("Action", ...)` in the adapters.

    A `_call` wrapper's service is the literal its own `call(...)` passes on. Returns the actions and a list of
    call sites the scan cannot read (non-literal names), so nothing hides from the policy check.
    """
    actions: set[str] = set()
    unreadable: list[str] = []
    for path in sorted(ADAPTERS.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        wrapper_service: str | None = None
        delegations: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "_call":
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "call":
                        wrapper_service = _literal(inner.args[0])
                        delegations.add(id(inner))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or id(node) in delegations:
                continue
            where = f"{path.name}:{node.lineno}"
            if isinstance(node.func, ast.Name) and node.func.id == "call":
                service, action = (_literal(a) for a in node.args[:2])
            elif (
                isinstance(node.func, ast.Attribute)
                and node.func.attr == "_call"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "self"
            ):
                service, action = wrapper_service, _literal(node.args[0])
            else:
                continue
            if service is None or action is None:
                unreadable.append(where)
            else:
                actions.add(f"{service}:{action}")
    return actions, unreadable


def test_the_adapter_scan_reads_every_call_site() -> None:
    # Given the adapter sources / When their API calls are scanned
    actions, unreadable = _adapter_calls()

    # Then every call names its service and action literally, and each RAM service is found
    assert unreadable == []
    assert {a.split(":")[0] for a in actions} == set(RAM_SERVICES)


def role_differences(template: Template) -> list[str]:
    """One line per action the FunctionRole lacks, allows without need, or writes with a wildcard."""
    called, _ = _adapter_calls()
    needed = called | set(REPAIR_TEMPLATE_ACTIONS)
    allowed = set(template.roles[ROLE].actions)
    return (
        [f"missing from {ROLE}: {a}" for a in sorted(needed - allowed)]
        + [f"allowed by {ROLE} but never called: {a}" for a in sorted(allowed - needed)]
        + [f"wildcard in {ROLE}: {a}" for a in sorted(allowed) if "*" in a]
    )


def test_function_role_allows_exactly_what_the_adapters_and_the_repair_template_call() -> None:
    # Given the actions the adapters call and those ACS-ECS-RepairImage runs with the caller's permissions
    # When they are compared with the FunctionRole policy in template.yml
    problems = role_differences(local_template())

    # Then nothing is missing, nothing is extra and no action is a wildcard
    assert problems == []


def _drop_delete_snapshot(statements: list[dict[str, Any]]) -> None:
    statements[0]["Action"].remove("ecs:DeleteSnapshot")


def _allow_ecs_wildcard(statements: list[dict[str, Any]]) -> None:
    statements[1]["Action"].append("ecs:*")


def _allow_copy_snapshot(statements: list[dict[str, Any]]) -> None:
    statements.append({"Effect": "Allow", "Action": ["ecs:CopySnapshot"], "Resource": ["*"]})


POLICY_EDITS = [
    (_drop_delete_snapshot, ["missing from FunctionRole: ecs:DeleteSnapshot"]),
    (_allow_ecs_wildcard, ["allowed by FunctionRole but never called: ecs:*", "wildcard in FunctionRole: ecs:*"]),
    (_allow_copy_snapshot, ["allowed by FunctionRole but never called: ecs:CopySnapshot"]),
]


@pytest.mark.parametrize(
    ("edit", "expected_problems"), [pytest.param(e, p, id=e.__name__.strip("_")) for e, p in POLICY_EDITS]
)
def test_a_policy_edit_is_reported(tmp_path: Path, edit: Any, expected_problems: list[str]) -> None:
    # Given a copy of template.yml whose FunctionRole policy was edited
    document = yaml.safe_load(TEMPLATE.read_text())
    edit(document["Resources"][ROLE]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"])
    (tmp_path / "functions").symlink_to(ROOT / "functions", target_is_directory=True)
    path = tmp_path / "template.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))

    # When the policy check runs on it
    problems = role_differences(local_template(path))

    # Then exactly the edit is reported
    assert problems == expected_problems


def test_repair_template_actions_are_ram_actions_of_known_services() -> None:
    # Given the actions declared for ACS-ECS-RepairImage / Then each is "<service>:<Action>" of a RAM service
    assert all(a.split(":")[0] in RAM_SERVICES and a.split(":")[1][:1].isupper() for a in REPAIR_TEMPLATE_ACTIONS)


@pytest.mark.parametrize("function", TEMPLATE_FUNCTIONS)
def test_every_function_runs_as_the_function_role(function: str) -> None:
    # Given a function / When its Role is resolved / Then it carries the FunctionRole's actions
    template = local_template()
    assert template.function(function).role_actions == template.roles[ROLE].actions


# -- bakery:* events -----------------------------------------------------------------------------------


def _published_types() -> tuple[set[str], list[str]]:
    """Types of every `BakeryEvent(<type>, ...)` constructed in shared/bakery or the tooling (`bakery bake
    --snapshots` publishes one), as events.CONST or a literal."""
    found: set[str] = set()
    unreadable: list[str] = []
    for path in sorted([*BAKERY_SRC.rglob("*.py"), *TOOLS_SRC.rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "BakeryEvent"):
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "events":
                found.add(getattr(events, first.attr))
            elif first is not None and _literal(first) is not None:
                found.add(_literal(first))
            else:
                unreadable.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found, unreadable


def test_every_published_type_is_a_declared_bakery_type() -> None:
    # Given every BakeryEvent the code constructs
    published, unreadable = _published_types()

    # Then each names its type readably, and each type is one of BAKERY_TYPES (the list samples are checked against)
    assert unreadable == []
    assert published, "the scan found no BakeryEvent at all"
    assert sorted(published - set(events.BAKERY_TYPES)) == []


@pytest.mark.parametrize("event_type", events.BAKERY_TYPES)
def test_every_bakery_type_has_a_sample_in_events(event_type: str) -> None:
    # Given a bakery:* type / When the samples are searched / Then at least one sample carries it
    types = {_sample(name).get("type") for name in SAMPLES}
    assert event_type in types


@pytest.mark.parametrize("name", [n for n in SAMPLES if _sample(n).get("source") == events.SOURCE])
def test_bakery_samples_are_on_the_bakery_bus(name: str) -> None:
    # Given a sample Bakery publishes / Then it is delivered on the bus the template publishes to
    assert _sample(name)["aliyuneventbusname"] == local_template().parameters["NotificationBus"]


# -- each function accepts exactly the samples routed to it -----------------------------------------------


def _deliveries(template: Template, event: dict[str, Any]) -> set[str]:
    if "triggerName" in event and "triggerTime" in event:
        return {t.function for t in template.timers if t.enabled and t.trigger_name == event["triggerName"]}
    return {r.function for r in template.routes if r.bus == event["aliyuneventbusname"] and r.pattern.matches(event)}


def _import_handler(fn: FunctionDef) -> Any:
    module_name = f"_contract_{fn.name.replace('-', '_')}_{fn.module_path.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, fn.handler_file)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, fn.function_attr)


@pytest.fixture
def offline_pipeline(monkeypatch: pytest.MonkeyPatch) -> MagicMock:
    """Handlers run with FC's env and a recording stand-in for the pipeline: routing decisions only, no cloud."""
    monkeypatch.setenv("FC_REGION", "cn-hangzhou")
    monkeypatch.setenv("FC_ACCOUNT_ID", "1234567890123456")  # FC sets it on every instance; the samples' account
    monkeypatch.setenv("BAKERY_LOG_LEVEL", "ERROR")
    pipeline = MagicMock(name="pipeline")
    monkeypatch.setattr(Pipeline, "from_settings", classmethod(lambda cls, settings: pipeline))
    reset_clients()
    return pipeline


@pytest.mark.parametrize("name", SAMPLES)
def test_each_function_accepts_exactly_the_samples_routed_to_it(name: str, offline_pipeline: MagicMock) -> None:
    # Given a sample and where template.yml delivers it
    template = local_template()
    delivered = _deliveries(template, _sample(name))
    payload = (EVENTS / name).read_bytes()

    # When every function's real handler is invoked with it
    accepted = set()
    for fn in template.functions.values():
        outcome = json.loads(_import_handler(fn)(payload, SimpleNamespace(request_id=f"req-{name}")))
        assert outcome["status"] in ("ok", "dropped"), outcome
        if outcome["status"] == "ok":
            accepted.add(fn.name)

    # Then the functions that act on it are exactly those it is routed to: nothing routed is dropped,
    # and nothing a function handles lacks a route
    assert accepted == delivered
