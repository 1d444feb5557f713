"""Vendoring the runtime dependencies for FC (python3.10, manylinux2014 x86_64): what `make package` puts next to
the bakery package in every zip. `pip install --target --platform manylinux2014_x86_64 --python-version 3.10
--implementation cp --only-binary=:all:` does most of it; what the plain pip command gets wrong, and what this
module does about it:

- pip evaluates environment markers against the interpreter it runs under, not `--python-version`:
  under 3.11 it leaves out `async-timeout; python_version < "3.11"` (aiohttp), and the SDK clients
  then fail to import on python3.10. After each install the vendored tree is checked against the
  target's markers (python 3.10, linux, x86_64); missing requirements are added and it installs again.
- `--only-binary=:all:` silently picks an older release when the tested one is published as an sdist
  only (alibabacloud-tea 0.4.1+). The versions installed in the running environment (what the tests
  ran against) are used as constraints — all of them when it runs the runtime's Python version, else
  the pure-Python ones (a compiled release built for 3.11 may have no cp310 wheel) — and sdist-only
  ones are built into a local wheelhouse first. A pure-Python one yields a py3-none-any wheel; a
  compiled one matches no manylinux tag, and pip's error names it.
- Every cold start is a new instance unpacked from the zip: bytecode Python writes there (if it can)
  is gone by the next one, so each cold start compiles every module it imports (~1.5 s for the SDKs).
  When an interpreter of the runtime's version is on this machine (`--compile auto`, the default),
  `__pycache__/*.cpython-310.pyc` go into the zip, `checked-hash` (deterministic, and ignored should a
  source file ever differ).

The vendored tree is cached under `build/package-cache/deps-<key>/` (key: requirements, pins, target, compile) and
shared by every function. Needs pip and `packaging` (both in the dev env).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

PLATFORM = "manylinux2014_x86_64"
IMPLEMENTATION = "cp"
CODE_DIR = "/code"  # where FC unpacks the code: the path compiled into tracebacks
PACKAGER_REVISION = 1  # bump when the vendored tree's layout changes, to invalidate caches
_NETWORK_HINTS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeout",
    "ReadTimeout",
    "SSLError",
)


class PackageError(Exception):
    """A build that cannot produce correct artifacts; the message says what to do."""


@dataclass(frozen=True)
class Vendored:
    site: Path
    python_version: str
    distributions: dict[str, str]  # canonical name -> version
    compiled: bool
    added_for_markers: list[str]  # requirements pip skipped because of the host's markers
    cached: bool


def interpreter_version(python: str | None, version: str) -> str:
    if python:
        result = subprocess.run([python, "-I", "-S", "-c", "import platform; print(platform.python_version())"],
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return f"{version}.0"


def target_environment(version: str, full_version: str | None = None) -> dict[str, str]:
    """PEP 508 marker values of the FC runtime: CPython `version` on Linux x86_64."""
    full = full_version or f"{version}.0"
    return {
        "python_version": version,
        "python_full_version": full,
        "implementation_name": "cpython",
        "implementation_version": full,
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "platform_release": "",
        "platform_version": "",
    }


def _requirement(text: str) -> Any:
    try:
        from packaging.requirements import Requirement
    except ModuleNotFoundError:  # pip always carries it
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    return Requirement(text)


def _specifier(text: str) -> Any:
    try:
        from packaging.specifiers import SpecifierSet
    except ModuleNotFoundError:
        from pip._vendor.packaging.specifiers import SpecifierSet  # type: ignore[no-redef]
    return SpecifierSet(text)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Closure:
    found: dict[str, Any]  # canonical name -> importlib.metadata.Distribution
    missing: list[Any]  # packaging Requirements with no distribution
    conflicts: list[str]  # "name version does not satisfy requirement (from parent)"


def closure(requirements: Iterable[str], find: Callable[[str], Any], env: dict[str, str]) -> Closure:
    """Walk the requirements' dependency graph as `env`'s interpreter would see it."""
    result = Closure({}, [], [])
    seen: set[tuple[str, frozenset[str]]] = set()
    queue: list[tuple[Any, str]] = [(_requirement(r), "the project") for r in requirements]
    missing: set[str] = set()
    while queue:
        req, parent = queue.pop(0)
        name = _canonical(req.name)
        dist = find(name)
        if dist is None:
            if name not in missing:
                missing.add(name)
                result.missing.append(req)
            continue
        if not req.specifier.contains(dist.version, prereleases=True):
            result.conflicts.append(f"{name} {dist.version} does not satisfy {req} (required by {parent})")
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        result.found[name] = dist
        for text in dist.requires or []:
            child = _requirement(text)
            extras = ["", *sorted(req.extras)]
            if child.marker is None or any(child.marker.evaluate({**env, "extra": e}) for e in extras):
                child.marker = None
                queue.append((child, f"{name} {dist.version}"))
    return result


def _installed(name: str) -> Any:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _pure(dist: Any) -> bool:
    """A wheel whose every tag is `*-none-any` runs on any CPython its Requires-Python allows."""
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]  # fmt: skip
    return bool(tags) and all(tag.endswith("-none-any") for tag in tags)


def tested_pins(requirements: list[str], env: dict[str, str]) -> dict[str, str]:
    """Versions installed here for the runtime closure: what the test suite ran the code against.

    Pinned: every distribution when this interpreter is the runtime's version; otherwise only the
    pure-Python ones whose Requires-Python admits the runtime (a compiled release installed for
    another Python may have no wheel for the runtime's, e.g. multidict 7.2 has none for cp310).
    """
    same_python = f"{sys.version_info.major}.{sys.version_info.minor}" == env["python_version"]
    pins = {}
    for name, dist in closure(requirements, _installed, env).found.items():
        requires_python = dist.metadata.get("Requires-Python")
        if requires_python and not _specifier(requires_python).contains(env["python_full_version"], prereleases=True):
            continue
        if same_python or _pure(dist):
            pins[name] = dist.version
    return pins


# -- vendoring -----------------------------------------------------------------------------------


def _pip(args: list[str], what: str, timeout: float = 900) -> None:
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "PIP_NO_INPUT": "1", "PIP_YES": "1"})  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise PackageError(
            f"pip timed out after {timeout:.0f} s while {what} (is the package registry reachable?)"
        ) from exc
    except OSError as exc:
        raise PackageError(f"cannot run pip ({command[0]} -m pip) while {what}: {exc}") from exc
    if result.returncode != 0:
        output = result.stdout + result.stderr
        lines = [line for line in output.splitlines()
                 if line.strip() and "is ignored: it is neither a file nor a directory" not in line]  # fmt: skip
        tail = "\n".join("    " + line for line in lines[-25:])
        hint = ""
        if any(h in output for h in _NETWORK_HINTS):
            hint = "\n  The package registry looks unreachable: vendoring needs PyPI (or a pip index configured here)."
        elif "No matching distribution" in output or "Could not find a version" in output:
            hint = (f"\n  A dependency has no wheel for CPython on {PLATFORM} at the required version (no binary "
                    "wheel, and not a pure-Python sdist that could be built here): pin another release of it.")  # fmt: skip
        raise PackageError(f"pip failed while {what} (exit {result.returncode}):\n{tail}{hint}")


def site_finder(site: Path) -> Callable[[str], Any]:
    dists = {_canonical(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])}
    return dists.get


def vendor(
    requirements: list[str],
    *,
    python_version: str,
    cache: Path,
    compile_with: str | None,
    pins: dict[str, str] | None = None,
    full_version: str | None = None,
    log: Callable[[str], None] = print,
) -> Vendored:
    """Install `requirements` for CPython `python_version` on manylinux2014 x86_64 into a cached directory."""
    env = target_environment(python_version, full_version)
    pins = dict(sorted((pins if pins is not None else tested_pins(requirements, env)).items()))
    compile_version = interpreter_version(compile_with, python_version) if compile_with else None
    key_data = {"requirements": requirements, "pins": pins, "python": python_version, "platform": PLATFORM,
                "env": env, "compile": compile_version, "revision": PACKAGER_REVISION}  # fmt: skip
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:16]
    cache.mkdir(parents=True, exist_ok=True)
    site = cache / f"deps-py{python_version}-{key}"
    manifest = cache / f"deps-py{python_version}-{key}.json"
    if site.is_dir() and manifest.is_file():
        saved = json.loads(manifest.read_text(encoding="utf-8"))
        return Vendored(site, python_version, saved["distributions"], saved["compiled"], saved["added_for_markers"],
                        cached=True)  # fmt: skip

    work = Path(tempfile.mkdtemp(prefix="vendor-", dir=cache))
    try:
        wheelhouse = work / "wheelhouse"
        constraints = work / "constraints.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()), encoding="utf-8")
        if pins:
            # Tested versions published only as sdists (alibabacloud-tea 0.4.1+) become wheels here; pure
            # Python ones come out py3-none-any and serve any target, compiled ones match no target tag.
            _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheelhouse), *(f"{n}=={v}" for n, v in pins.items())],
                 "preparing wheels of the tested versions")  # fmt: skip
        added: list[str] = []
        for _ in range(5):
            target = work / "site"
            shutil.rmtree(target, ignore_errors=True)
            _pip(["install", "--quiet", "--target", str(target), "--platform", PLATFORM, "--python-version", python_version,
                  "--implementation", IMPLEMENTATION, "--only-binary=:all:", "--no-compile", "--no-warn-script-location",
                  *(["--find-links", str(wheelhouse)] if wheelhouse.is_dir() else []), "--constraint", str(constraints),
                  *requirements, *added],
                 f"vendoring {' '.join(requirements)} for python{python_version} {PLATFORM}")  # fmt: skip
            walk = closure(requirements, site_finder(target), env)
            if walk.conflicts:
                raise PackageError("the vendored dependencies are inconsistent for python"
                                   f"{python_version}:\n  " + "\n  ".join(walk.conflicts))  # fmt: skip
            if not walk.missing:
                break
            more = [str(r) for r in walk.missing]
            log(f"pip ran under python{sys.version_info.major}.{sys.version_info.minor} and skipped requirements "
                f"python{python_version} needs: adding {', '.join(more)}")  # fmt: skip
            added += more
        else:
            raise PackageError(f"could not complete the dependency set for python{python_version}: still missing "
                               + ", ".join(str(r) for r in walk.missing))  # fmt: skip
        shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts with this host's shebang
        for direct_url in target.glob("*.dist-info/direct_url.json"):
            direct_url.unlink()  # a local wheelhouse path: not reproducible, and meaningless on FC
        if compile_with:
            compile_bytecode(compile_with, target)
        distributions = {name: dist.version for name, dist in sorted(walk.found.items())}
        shutil.rmtree(site, ignore_errors=True)
        target.rename(site)
        manifest.write_text(json.dumps({**key_data, "distributions": distributions, "compiled": bool(compile_with),
                                        "added_for_markers": added}, indent=2) + "\n", encoding="utf-8")  # fmt: skip
        return Vendored(site, python_version, distributions, bool(compile_with), added, cached=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compile_bytecode(python: str, root: Path) -> None:
    """Bytecode for the runtime's interpreter, reproducible: hash-based, one source path (/code), and
    PYTHONHASHSEED=0 (set and frozenset constants are marshalled in hash order). Not `-I`, which would
    ignore PYTHONHASHSEED: the other PYTHON* variables are dropped and it runs in an empty directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    with tempfile.TemporaryDirectory(prefix="compile-") as empty:
        result = subprocess.run(
            [python, "-s", "-m", "compileall", "-q", "-j", "0", "-d", CODE_DIR, "--invalidation-mode", "checked-hash",
             str(root)],
            capture_output=True, text=True, timeout=900, cwd=empty, env={**env, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
    if result.returncode != 0:
        # A module that does not compile would fail to import anyway (unless nothing imports it): say so, go on.
        detail = (result.stdout + result.stderr).strip().splitlines()
        print(f"warning: some files did not compile with {python}:\n  " + "\n  ".join(detail[-10:]), file=sys.stderr)
