"""Which Python interpreters this machine really has: the local FC runtime runs deployed code with one of the
function's Runtime version (python3.10), and packaging compiles bytecode with it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def find_python(version: str) -> str | None:
    """An interpreter of `version` (e.g. "3.10") that really runs — a pyenv shim may exist yet refuse."""
    candidates = [sys.executable, shutil.which(f"python{version}")]
    candidates += sorted((str(p) for p in Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}")),
                         reverse=True)  # fmt: skip
    want = tuple(int(part) for part in version.split("."))
    for candidate in candidates:
        if not candidate:
            continue
        try:
            ok = subprocess.run(
                [candidate, "-I", "-S", "-c", f"import sys; sys.exit(sys.version_info[:2] != {want!r})"],
                capture_output=True, timeout=30,
            ).returncode == 0  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return candidate
    return None
