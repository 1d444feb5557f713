"""Reads what preflight.sh printed (the Bakery preflight gate run through Cloud Assistant).

The script's output, one item per line::

    BAKERY-PREFLIGHT v1
    SKIP <rule>                         a rule turned off through SKIP_RULES
    FINDING <rule> <target> <detail>    something a person has to fix in <target>
    ERROR <rule> <why>                  a check that could not run
    RESULT pass|fail <number of FINDING lines>

with exit status 0 (no findings), 1 (findings) or 2 (a check could not run). Cloud Assistant
interleaves stderr and keeps only the first 24 KiB, so lines of any other shape are ignored, but
output that lacks the header or the RESULT line, miscounts its findings or disagrees with the exit
status raises ValueError: a garbled or truncated run must never read as a pass.

The script prints guest-controlled text (file names, fstab fields) as printable ASCII with other
bytes and the backslash as ``\\xHH``; the parser decodes them, so ``Finding.target`` is the real
path. Whoever renders it somewhere line-oriented has to escape it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

HEADER = "BAKERY-PREFLIGHT v1"
RULES = ("disk-space", "fstab", "system-dirs", "secrets")

_RESULT_RE = re.compile(r"RESULT (pass|fail) (\d+)")
_FINDING_RE = re.compile(r"FINDING (\S+) (\S+)(?: (.*))?")
_ERROR_RE = re.compile(r"ERROR (\S+)(?: (.*))?")
_SKIP_RE = re.compile(r"SKIP (\S+)")
_ESCAPE_RE = re.compile(rb"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class Finding:
    rule: str  # disk-space | fstab | system-dirs | secrets
    target: str  # the file or mount to act on, e.g. "/root/.ssh/id_rsa", "/mnt/olddata", "/"
    detail: str  # e.g. "private-key", "UUID=... not on any attached disk", "free=500MB required=1024MB"


@dataclass(frozen=True)
class PreflightReport:
    findings: list[Finding]
    errors: list[str]  # "<rule> <why>" for each check that could not run
    passed: bool  # True only for RESULT pass, no findings, no errors and exit status 0
    skipped: list[str] = field(default_factory=list)  # rules turned off through SKIP_RULES


def preflight_script() -> str:
    """The text of preflight.sh, to send as a RunCommand script."""
    return resources.files(__package__).joinpath("preflight.sh").read_text(encoding="utf-8")


def parse_report(output: str, exit_code: int) -> PreflightReport:
    """Parse preflight.sh's output; ValueError when it is not a complete, consistent report."""
    lines = [line.rstrip("\r") for line in output.splitlines()]
    if HEADER not in lines:
        raise ValueError(f"preflight output has no {HEADER!r} header (exit status {exit_code})")
    if lines.count(HEADER) > 1:
        raise ValueError("preflight output holds more than one report")
    findings: list[Finding] = []
    errors: list[str] = []
    skipped: list[str] = []
    result: re.Match[str] | None = None
    for line in lines[lines.index(HEADER) + 1 :]:
        if result is not None:
            if line.strip():
                raise ValueError(f"preflight output goes on after its RESULT line: {line!r}")
            continue
        keyword = line.split(" ", 1)[0]
        if keyword == "FINDING":
            match = _FINDING_RE.fullmatch(line)
            if not match:
                raise ValueError(f"malformed FINDING line: {line!r}")
            findings.append(Finding(match[1], _decode(match[2]), _decode(match[3] or "")))
        elif keyword == "ERROR":
            match = _ERROR_RE.fullmatch(line)
            if not match:
                raise ValueError(f"malformed ERROR line: {line!r}")
            errors.append(_decode(line.removeprefix("ERROR ")))
        elif keyword == "SKIP":
            match = _SKIP_RE.fullmatch(line)
            if not match:
                raise ValueError(f"malformed SKIP line: {line!r}")
            skipped.append(match[1])
        elif keyword == "RESULT":
            result = _RESULT_RE.fullmatch(line)
            if result is None:
                raise ValueError(f"malformed RESULT line: {line!r}")
        # Anything else is stray stderr that Cloud Assistant interleaved: not part of the report.
    if result is None:
        raise ValueError(f"preflight output has no RESULT line (truncated? exit status {exit_code})")
    verdict, count = result[1], int(result[2])
    if count != len(findings):
        raise ValueError(f"RESULT counts {count} findings but the output lists {len(findings)}")
    expected_exit = 2 if errors else 1 if findings else 0
    expected_verdict = "pass" if expected_exit == 0 else "fail"
    if verdict != expected_verdict or exit_code != expected_exit:
        raise ValueError(
            f"inconsistent preflight report: RESULT {verdict} with {len(findings)} findings and "
            f"{len(errors)} errors, exit status {exit_code} (expected {expected_verdict}, {expected_exit})"
        )
    return PreflightReport(findings=findings, errors=errors, passed=verdict == "pass", skipped=skipped)


def _decode(text: str) -> str:
    r"""Undo the script's \xHH escaping; bytes that are not UTF-8 become U+FFFD."""
    if "\\x" not in text:
        return text
    raw = _ESCAPE_RE.sub(lambda match: bytes([int(match[1], 16)]), text.encode("utf-8"))
    return raw.decode("utf-8", errors="replace")
