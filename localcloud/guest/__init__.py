"""Emulated guest operating systems for localcloud's ECS instances (Cloud Assistant targets)."""

from __future__ import annotations

from localcloud.guest.confine import ConfinementError
from localcloud.guest.runner import OUTPUT_LIMIT_BYTES, TIMEOUT_EXIT_CODE, ScriptResult
from localcloud.guest.sandbox import GuestSandbox
from localcloud.guest.spec import GuestDisk, GuestSpec, disk_serial, filesystem_uuid

__all__ = [
    "OUTPUT_LIMIT_BYTES",
    "TIMEOUT_EXIT_CODE",
    "ConfinementError",
    "GuestDisk",
    "GuestSandbox",
    "GuestSpec",
    "ScriptResult",
    "disk_serial",
    "filesystem_uuid",
]
