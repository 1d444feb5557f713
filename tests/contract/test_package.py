"""Contract: what `make package` ships is what FC runs.

- one zip per function in template.yml, named as its Code.OssObjectName says, with index.py at the root,
  the whole bakery package (preflight.sh executable) and the SDKs vendored for the runtime — the deployed
  library only: no bakery_tools (the tooling) and no localcloud (the emulator) in it;
- each handler imports FROM ITS ZIP ALONE in a clean python3.10 (`-I -S`: sys.path is the unzipped
  directory plus the standard library), without bakery_tools, localcloud, yaml, responses or croniter; the SDK clients
  it imports on its first call import too, and a foreign event is dropped, as on FC;
- the vendored SDKs are the versions the test suite runs against; the zips are byte-for-byte reproducible.

Building needs PyPI (pip vendors the SDKs): without it these tests FAIL, they do not skip.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from bakery_tools.package import Artifact, FunctionSpec, PackageError, build, project_requirements, read_functions
from bakery_tools.vendor import closure, site_finder, target_environment, vendor
from localcloud.fc.pythons import find_python

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yml"
FORBIDDEN = ("bakery_tools", "localcloud", "yaml", "responses", "croniter")
LIBRARY = ROOT / "shared" / "bakery"  # the deployed library: what a zip's bakery/ must be, module for module
SDK_CLIENTS = ("alibabacloud_ecs20140526.client", "alibabacloud_oos20190601.client",
               "alibabacloud_eventbridge20200401.client")  # fmt: skip
SPECS = read_functions(TEMPLATE)

# Runs in the artifact's interpreter: imports the handler, then what its first call imports, then calls it.
PROBE = r"""
import json, os, sys
root, forbidden, clients = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
sys.path.insert(0, root)

def loaded(names):
    return sorted({m.split(".")[0] for m in sys.modules} & set(names))

def outside():
    bad = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and not (path.startswith(root) or path.startswith(sys.base_prefix)):
            bad.append(f"{name}: {path}")
    return bad

from index import handler
report = {"callable": callable(handler), "forbidden_at_import": loaded(forbidden), "sys_path": sys.path}
for client in clients:
    __import__(client)
os.environ.update({"FC_REGION": "cn-hangzhou", "FC_ACCOUNT_ID": "1234567890123456",
                   "ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.test", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret",
                   "ALIBABA_CLOUD_SECURITY_TOKEN": "token"})
class Context:
    request_id = "contract-test"
    region = "cn-hangzhou"
    account_id = "1234567890123456"
foreign = {"id": "contract-1", "source": "acme.other", "specversion": "1.0", "type": "acme:Thing:Happened",
           "time": "2026-01-05T09:00:00Z", "data": {}}
report["result"] = json.loads(handler(json.dumps(foreign).encode(), Context()))
report["forbidden_after_call"] = loaded(forbidden)
report["outside"] = outside()
report["python"] = list(sys.version_info[:2])
print(json.dumps(report))
"""


def _runtime() -> SimpleNamespace:
    """python3.10 (the template's runtime) when this machine has it; else this interpreter, and the
    artifacts are built for its version so their compiled wheels load."""
    version = SPECS[0].python_version
    python = find_python(version)
    if python:
        return SimpleNamespace(python=python, version=version, override=None)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return SimpleNamespace(python=sys.executable, version=here, override=here)


@pytest.fixture(scope="module")
def runtime() -> SimpleNamespace:
    return _runtime()


@pytest.fixture(scope="module")
def package_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("package-cache")


@pytest.fixture(scope="module")
def artifacts(
    tmp_path_factory: pytest.TempPathFactory, package_cache: Path, runtime: SimpleNamespace
) -> dict[str, Artifact]:
    out = tmp_path_factory.mktemp("dist")
    try:
        built = build(out, template=TEMPLATE, cache=package_cache, python_version=runtime.override, log=lambda _m: None)
    except PackageError as exc:  # e.g. PyPI unreachable: a failure, never a skip
        pytest.fail(f"make package failed: {exc}")
    return {a.path.name: a for a in built}


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Artifact]) -> dict[str, Path]:
    dirs = {}
    for name, artifact in artifacts.items():
        target = tmp_path_factory.mktemp(name.removesuffix(".zip"))
        with zipfile.ZipFile(artifact.path) as archive:
            archive.extractall(target)
        dirs[name] = target
    return dirs


def test_one_zip_per_function_named_as_the_template_says(artifacts: dict[str, Artifact]) -> None:
    assert sorted(artifacts) == sorted(spec.artifact for spec in SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_zip_layout(spec: FunctionSpec, artifacts: dict[str, Artifact]) -> None:
    with zipfile.ZipFile(artifacts[spec.artifact].path) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names), "entries are not sorted"
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    module = spec.handler.rpartition(".")[0].replace(".", "/") + ".py"
    for required in (module, "bakery/__init__.py", "bakery/entrypoints.py", "bakery/preflight/preflight.sh",
                     "alibabacloud_ecs20140526/client.py", "alibabacloud_oos20190601/client.py",
                     "alibabacloud_eventbridge20200401/client.py", "alibabacloud_tea_openapi/__init__.py"):  # fmt: skip
        assert required in names, f"{spec.artifact} lacks {required}"
    preflight = next(i for i in infos if i.filename == "bakery/preflight/preflight.sh")
    assert (preflight.external_attr >> 16) & 0o111, "preflight.sh lost its executable bit"
    tops = {n.split("/", 1)[0] for n in names}
    assert not tops & {*FORBIDDEN, "tests", "functions", "shared", "bin"}, sorted(tops & {*FORBIDDEN, "tests", "bin"})
    assert not [n for n in names if n.endswith(".pyc") and ".cpython-" not in n]
    assert not [n for n in names if n.endswith("direct_url.json")]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_zip_ships_the_library_and_no_tooling(spec: FunctionSpec, artifacts: dict[str, Artifact]) -> None:
    with zipfile.ZipFile(artifacts[spec.artifact].path) as archive:
        names = archive.namelist()
    assert [n for n in names if n.startswith(("bakery_tools/", "localcloud/"))] == []
    shipped = {n for n in names if n.startswith("bakery/") and n.endswith(".py")}
    library = {
        f"bakery/{p.relative_to(LIBRARY).as_posix()}" for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts
    }
    assert sorted(shipped - library) == [], "modules in the zip that are not the library's"
    assert sorted(library - shipped) == [], "library modules missing from the zip"
    for former_tooling in ("cli", "cli_ops", "cli_lifecycle", "cli_deploy", "deploy", "local", "target", "terminal"):
        assert f"bakery/{former_tooling}.py" not in shipped


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_handler_imports_from_the_artifact_alone(
    spec: FunctionSpec, unpacked: dict[str, Path], runtime: SimpleNamespace
) -> None:
    root = unpacked[spec.artifact]
    result = subprocess.run(
        [runtime.python, "-I", "-S", "-B", "-c", PROBE, str(root), ",".join(FORBIDDEN), ",".join(SDK_CLIENTS)],
        capture_output=True, text=True, timeout=180, cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, f"{spec.artifact} in python{runtime.version}:\n{result.stderr[-4000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["python"] == [int(p) for p in runtime.version.split(".")]
    assert report["sys_path"][0] == str(root)
    assert report["callable"] is True
    assert report["forbidden_at_import"] == [], f"importing the handler imported {report['forbidden_at_import']}"
    assert report["forbidden_after_call"] == []
    assert report["outside"] == [], "modules loaded from outside the artifact and the stdlib"
    assert report["result"]["status"] == "dropped", report["result"]


def test_vendored_sdks_are_the_tested_versions(artifacts: dict[str, Artifact]) -> None:
    artifact = next(iter(artifacts.values()))
    with zipfile.ZipFile(artifact.path) as archive:
        dist_infos = {n.split("/", 1)[0] for n in archive.namelist() if ".dist-info/" in n}
    vendored = dict(d.removesuffix(".dist-info").rsplit("-", 1) for d in dist_infos)
    for name in ("alibabacloud_ecs20140526", "alibabacloud_oos20190601", "alibabacloud_eventbridge20200401",
                 "alibabacloud_tea_openapi", "alibabacloud_tea", "darabonba_core"):  # fmt: skip
        assert vendored.get(name) == metadata.version(name), f"{name}: vendored {vendored.get(name)}"


@pytest.mark.parametrize("spec", SPECS[:1], ids=lambda s: s.name)
def test_vendored_dependencies_are_complete_for_the_runtime(
    spec: FunctionSpec, unpacked: dict[str, Path], runtime: SimpleNamespace
) -> None:
    """pip under another Python drops what the runtime's markers need (aiohttp: async-timeout < 3.11)."""
    walk = closure(project_requirements(ROOT / "pyproject.toml"), site_finder(unpacked[spec.artifact]),
                   target_environment(runtime.version))  # fmt: skip
    assert [str(r) for r in walk.missing] == []
    assert walk.conflicts == []


def test_build_is_reproducible(
    tmp_path: Path, package_cache: Path, artifacts: dict[str, Artifact], runtime: SimpleNamespace
) -> None:
    spec = SPECS[0]
    again = build(tmp_path, template=TEMPLATE, cache=package_cache, only=[spec.name],
                  python_version=runtime.override, log=lambda _m: None)  # fmt: skip
    assert [a.sha256 for a in again] == [artifacts[spec.artifact].sha256]


def test_a_pip_failure_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"pip failed while vendoring alibabacloud-ecs20140526==0\.0\.1") as caught:
        vendor(["alibabacloud-ecs20140526==0.0.1"], python_version="3.10", cache=tmp_path, compile_with=None, pins={})
    assert "No matching distribution" in str(caught.value)
    assert "pin another release" in str(caught.value)


def test_marker_gated_requirements_follow_the_runtime_not_the_builder() -> None:
    """What pip misses when it runs under 3.11 for a 3.10 target: the closure walk finds it."""
    dists = {
        "aiohttp": SimpleNamespace(
            version="3.14.5",
            requires=['async-timeout<6,>=4; python_version < "3.11"', 'aiodns>=3; extra == "speedups"'],
        ),
    }
    for version, missing in (("3.10", ["async-timeout"]), ("3.11", [])):
        walk = closure(["aiohttp"], dists.get, target_environment(version))
        assert [r.name for r in walk.missing] == missing, version
        assert list(walk.found) == ["aiohttp"]
