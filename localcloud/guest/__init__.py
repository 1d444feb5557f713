"""Emulated guest operating systems for localcloud's ECS instances (Cloud Assistant targets)."""

from __future__ import annotations

from localcloud.guest.sandbox import (
    OUTPUT_LIMIT_BYTES,
    TIMEOUT_EXIT_CODE,
    GuestDisk,
    GuestSandbox,
    GuestSpec,
    ScriptResult,
    disk_serial,
    filesystem_uuid,
)

__all__ = [
    "OUTPUT_LIMIT_BYTES",
    "TIMEOUT_EXIT_CODE",
    "GuestDisk",
    "GuestSandbox",
    "GuestSpec",
    "ScriptResult",
    "disk_serial",
    "filesystem_uuid",
]
