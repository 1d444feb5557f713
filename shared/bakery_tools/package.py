"""`python -m bakery_tools.package --out dist/` (`make package`): one FC code zip per function in template.yml.

Each `dist/<name>.zip` (the name `Code.OssObjectName` ends with) holds, at its root:

- the function's own directory (`Metadata.LocalCodeUri`, e.g. `functions/bake/index.py`);
- the `bakery` package (`shared/bakery`, whole, with `preflight/preflight.sh`): the deployed library, and only it
  (the tooling, bakery_tools, and the emulator, localcloud, never ship);
- the runtime dependencies of pyproject.toml `[project].dependencies`, vendored for the function's `Runtime`
  (python3.10) on manylinux2014 x86_64 by bakery_tools.vendor (which says what plain pip gets wrong there).

Every cold start is a new instance unpacked from the zip: bytecode Python writes there (if it can) is gone by the
next one, so each cold start compiles every module it imports (~1.5 s for the SDKs). When an interpreter of the
runtime's version is on this machine (`--compile auto`, the default), `__pycache__/*.cpython-310.pyc` go into the
zip, `checked-hash` (deterministic, and ignored should a source file ever differ).

Zips are reproducible: entries sorted, timestamps fixed at 1980-01-01, permissions normalised (0644, or 0755 for
executables); `bin/` and `direct_url.json` are left out.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bakery_tools.vendor import PLATFORM, PackageError, Vendored, compile_bytecode, interpreter_version, vendor
from localcloud.fc.pythons import find_python

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FUNCTION = "ALIYUN::FC3::Function"
_RUNTIME = re.compile(r"^python(3\.\d+)$")
_EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str  # FunctionName
    artifact: str  # the zip's file name, from Code.OssObjectName (e.g. bake.zip)
    code_dir: Path
    handler: str
    runtime: str  # e.g. python3.10

    @property
    def python_version(self) -> str:
        match = _RUNTIME.match(self.runtime)
        if not match:
            raise PackageError(f"{self.logical_id}: Runtime {self.runtime!r} is not a python3.x runtime")
        return match.group(1)


@dataclass(frozen=True)
class Artifact:
    function: str
    path: Path
    size: int
    files: int
    unpacked: int
    sha256: str
    compiled: bool


# -- template and project ------------------------------------------------------------------------


def _functions(document: Any, name: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(logical id, resource, properties) of every ALIYUN::FC3::Function, by logical id."""
    resources = (document or {}).get("Resources") if isinstance(document, dict) else None
    found = [(str(lid), r, r.get("Properties") or {}) for lid, r in sorted((resources or {}).items())
             if isinstance(r, dict) and r.get("Type") == _FUNCTION]  # fmt: skip
    if not found:
        raise PackageError(f"{name}: no {_FUNCTION} resources")
    return found


def _artifact_name(where: str, props: dict[str, Any]) -> str:
    obj = (props.get("Code") or {}).get("OssObjectName")
    if isinstance(obj, dict) and len(obj) == 1 and "Fn::Sub" in obj:
        obj = obj["Fn::Sub"]
    if not isinstance(obj, str) or not obj.endswith(".zip"):
        raise PackageError(f"{where}: Code.OssObjectName must be a string (or Fn::Sub) ending in .zip, got {obj!r}")
    artifact = obj.rsplit("/", 1)[-1]
    if "${" in artifact:
        raise PackageError(f"{where}: the zip name in Code.OssObjectName must be literal, got {artifact!r}")
    return artifact


def _unique(names: list[str], name: str) -> list[str]:
    if len(set(names)) != len(names):
        raise PackageError(f"{name}: two functions share a zip name: {sorted(names)}")
    return names


def artifact_names(document: Any, name: str = "template.yml") -> list[str]:
    """Each function's zip name, from Code.OssObjectName (by logical id): all that deploying prebuilt zips
    (`bakery deploy --artifacts DIR`) needs of a template — not the functions' sources."""
    return _unique([_artifact_name(f"{name}: {lid}", props) for lid, _r, props in _functions(document, name)], name)


def read_functions(template: Path) -> list[FunctionSpec]:
    """Every ALIYUN::FC3::Function of the template, with where its code is and what its zip is called."""
    try:
        document = yaml.safe_load(template.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PackageError(f"cannot read {template}: {exc}") from exc
    specs = []
    for logical_id, resource, props in _functions(document, str(template)):
        where = f"{template.name}: {logical_id}"
        code_uri = (resource.get("Metadata") or {}).get("LocalCodeUri")
        if not isinstance(code_uri, str):
            raise PackageError(f"{where}: Metadata.LocalCodeUri (the function's code directory) is missing")
        code_dir = (template.parent / code_uri).resolve()
        handler = str(props.get("Handler") or "")
        module = handler.rpartition(".")[0]
        if not module or not (code_dir / (module.replace(".", "/") + ".py")).is_file():
            raise PackageError(f"{where}: Handler {handler!r} has no module file in {code_dir}")
        spec = FunctionSpec(logical_id, str(props.get("FunctionName") or logical_id), _artifact_name(where, props),
                            code_dir, handler, str(props.get("Runtime") or ""))  # fmt: skip
        spec.python_version  # noqa: B018 - validates the runtime now, naming the resource
        specs.append(spec)
    _unique([s.artifact for s in specs], str(template))
    return specs


def project_requirements(pyproject: Path) -> list[str]:
    """`[project].dependencies` of pyproject.toml: what the deployed code needs at runtime."""
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # python3.10: pip always carries a TOML reader
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ModuleNotFoundError:
            from pip._vendor import tomli as tomllib  # type: ignore[no-redef,unused-ignore]
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project") or {}
    except (OSError, ValueError) as exc:
        raise PackageError(f"cannot read {pyproject}: {exc}") from exc
    requirements = project.get("dependencies")
    if not isinstance(requirements, list) or not requirements:
        raise PackageError(f"{pyproject}: [project].dependencies is empty: nothing to vendor")
    return [str(r) for r in requirements]


# -- staging and zipping -------------------------------------------------------------------------


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=lambda _d, names: [
        n for n in names if n in _EXCLUDED_DIRS or n.endswith(_EXCLUDED_SUFFIXES)])  # fmt: skip


def _files(root: Path) -> Iterator[tuple[str, Path]]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path.relative_to(root).as_posix(), path


def write_zip(path: Path, roots: list[Path], function: str, compiled: bool) -> Artifact:
    """A reproducible zip of the union of `roots` (a name in two roots is an error)."""
    entries: dict[str, Path] = {}
    for root in roots:
        for name, file in _files(root):
            if name in entries:
                raise PackageError(f"{function}: {name} is both in {entries[name]} and in {file}")
            entries[name] = file
    tmp = path.with_name(path.name + ".tmp")
    unpacked = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name in sorted(entries):
            file = entries[name]
            mode = 0o755 if file.stat().st_mode & stat.S_IXUSR else 0o644
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = file.read_bytes()
            unpacked += len(data)
            archive.writestr(info, data, compresslevel=6)
    tmp.replace(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Artifact(function, path, path.stat().st_size, len(entries), unpacked, digest, compiled)


def build(
    out: Path,
    *,
    template: Path = Path("template.yml"),
    library: Path | None = None,
    pyproject: Path | None = None,
    cache: Path | None = None,
    only: Iterable[str] = (),
    compile: str = "auto",  # auto | yes | no
    python_version: str | None = None,  # override the template's runtime (tests on a host without it)
    log: Callable[[str], None] = print,
) -> list[Artifact]:
    """Build every function's zip into `out`; returns the artifacts in template order."""
    template = template.resolve()
    root = template.parent
    library = (library or root / "shared" / "bakery").resolve()
    if not (library / "__init__.py").is_file():
        raise PackageError(f"{library} is not the bakery package (no __init__.py)")
    specs = read_functions(template)
    wanted = set(only)
    if wanted:
        unknown = wanted - {s.name for s in specs} - {s.artifact.removesuffix(".zip") for s in specs}
        if unknown:
            raise PackageError(f"no such function in {template.name}: {sorted(unknown)}")
        specs = [s for s in specs if s.name in wanted or s.artifact.removesuffix(".zip") in wanted]
    requirements = project_requirements(pyproject or root / "pyproject.toml")
    cache = (cache or root / "build" / "package-cache").resolve()
    out.mkdir(parents=True, exist_ok=True)

    vendored: dict[str, Vendored] = {}
    interpreters: dict[str, str | None] = {}
    for version in sorted({python_version or s.python_version for s in specs}):
        python = find_python(version) if compile != "no" else None
        if compile == "yes" and python is None:
            raise PackageError(f"--compile yes: no python{version} interpreter on this machine to compile bytecode")
        if compile == "auto" and python is None:
            log(f"note: no python{version} here: artifacts ship without bytecode (slower cold starts)")
        interpreters[version] = python
        full = interpreter_version(python, version) if python else None
        deps = vendor(requirements, python_version=version, cache=cache, compile_with=python, full_version=full,
                      log=log)  # fmt: skip
        vendored[version] = deps
        state = "cached" if deps.cached else "installed"
        log(f"python{version} {PLATFORM}: {len(deps.distributions)} distributions {state} in "
            f"{_shown(deps.site)}{' (with bytecode)' if deps.compiled else ''}")  # fmt: skip

    artifacts = []
    for spec in specs:
        version = python_version or spec.python_version
        deps = vendored[version]
        with tempfile.TemporaryDirectory(prefix=f"stage-{spec.name}-") as tmp:
            stage = Path(tmp)
            for item in sorted(spec.code_dir.iterdir()):
                if item.name in _EXCLUDED_DIRS or item.name.endswith(_EXCLUDED_SUFFIXES):
                    continue
                if item.is_dir():
                    _copy_tree(item, stage / item.name)
                else:
                    shutil.copy2(item, stage / item.name)
            if (stage / library.name).exists():
                raise PackageError(f"{spec.code_dir} has its own {library.name}/: it would shadow {library}")
            _copy_tree(library, stage / library.name)
            python = interpreters[version]
            if python and deps.compiled:
                compile_bytecode(python, stage)
            artifacts.append(write_zip(out / spec.artifact, [deps.site, stage], spec.name, deps.compiled))
    for artifact in artifacts:
        log(f"{_shown(artifact.path):<24} {artifact.size / 1e6:6.1f} MB  ({artifact.files} files, "
            f"{artifact.unpacked / 1e6:.1f} MB unpacked)  sha256 {artifact.sha256[:16]}")  # fmt: skip
    return artifacts


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bakery_tools.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("dist"), help="where the zips go (default: dist/)")
    parser.add_argument("--template", type=Path, default=Path("template.yml"))
    parser.add_argument("--library", type=Path, help="the bakery package (default: shared/bakery next to the template)")
    parser.add_argument("--cache", type=Path, help="vendored dependencies cache (default: build/package-cache)")
    parser.add_argument("--function", action="append", default=[], help="only this function (repeatable)")
    parser.add_argument("--compile", choices=("auto", "yes", "no"), default="auto",
                        help="ship bytecode compiled by an interpreter of the runtime's version (auto: if one is here)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        build(args.out, template=args.template, library=args.library, cache=args.cache, only=args.function,
              compile=args.compile)  # fmt: skip
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
