"""The tag vocabulary. A bake's state lives in tags on its image and a pointer on its instance, so the
console shows it, the functions stay stateless, and the sweep can rebuild everything from tag queries."""

from __future__ import annotations

# Set by the operator on the instance.
TRIGGER = "bakery:bake"  # "true" starts a bake
FAMILY = "bakery:family"  # image family to promote into
STOP_FIRST = "bakery:stop-first"  # "true": stop before imaging, start again afterwards
NAME = "bakery:name"  # image name prefix
# Overrides, one per blocking preflight rule (value "true").
ALLOW = {
    "disk-space": "bakery:allow-low-disk",
    "fstab": "bakery:allow-fstab-mismatch",
    "system-dirs": "bakery:allow-missing-dirs",
    "secrets": "bakery:allow-secrets",
}
SKIP_GUEST_CHECKS = "bakery:skip-guest-checks"

# Written by Bakery on the instance.
BAKE_ID = "bakery:bake-id"
STATE = "bakery:state"
IMAGE = "bakery:image"
PREFLIGHT_INVOKE = "bakery:preflight-invoke"
STOPPED_BY_BAKERY = "bakery:stopped-by-bakery"
LAST_IMAGE = "bakery:last-image"
LAST_ERROR = "bakery:last-error"
INSTANCE_WORK_TAGS = [TRIGGER, BAKE_ID, STATE, IMAGE, PREFLIGHT_INVOKE, STOPPED_BY_BAKERY]

# Written by Bakery on images (lineage).
SOURCE_INSTANCE = "bakery:source-instance"
ATTEMPT = "bakery:attempt"
REPAIRS = "bakery:repairs"
REPAIR_EXECUTION = "bakery:repair-execution"
REPAIRED_FROM = "bakery:repaired-from"

# Values of STATE.
PREFLIGHT, STOPPING, CREATING, CHECKING, CHECK_FAILED, REPAIRING, REPAIRED, READY, FAILED, RETIRED = (
    "preflight", "stopping", "creating", "checking", "check-failed", "repairing", "repaired", "ready", "failed", "retired",
)  # fmt: skip


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1", "on")
