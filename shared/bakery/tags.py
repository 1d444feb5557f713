"""The tag vocabulary (keys). A bake's state lives in tags on its image and a pointer on its instance, so the
console shows it, the functions stay stateless, and the sweep can rebuild everything from tag queries; the
values of `bakery:state` and their transitions are bakery.state."""

from __future__ import annotations

from bakery import state

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
# A standing opt-in: `bakery:Bake:Requested` events (anyone allowed to PutEvents on the bus) may bake this
# instance. Without it a request is refused: tagging needs ecs:TagResources on the instance, PutEvents does not.
ALLOW_REQUESTS = "bakery:allow-requests"

# ECS allows 20 tags per resource (TagResources: QuotaExceed.Tags; alibaba-apis.md); Bakery keeps its own within it.
MAX_TAGS_PER_RESOURCE = 20

# Written by Bakery on the instance.
BAKE_ID = "bakery:bake-id"
STATE = "bakery:state"
IMAGE = "bakery:image"
PREFLIGHT_INVOKE = "bakery:preflight-invoke"
STOPPED_BY_BAKERY = "bakery:stopped-by-bakery"
LAST_IMAGE = "bakery:last-image"
LAST_ERROR = "bakery:last-error"
ENDING = "bakery:ending"  # = the bake id while a failed bake is being wound down (survives interruptions)
INSTANCE_WORK_TAGS = [TRIGGER, BAKE_ID, STATE, IMAGE, PREFLIGHT_INVOKE, STOPPED_BY_BAKERY, ENDING]

# Written by Bakery on images (lineage).
SOURCE_INSTANCE = "bakery:source-instance"
ATTEMPT = "bakery:attempt"
REPAIRS = "bakery:repairs"
REPAIR_EXECUTION = "bakery:repair-execution"
REPAIRED_FROM = "bakery:repaired-from"
# "true" while a step still has to move the image on (its state is in state.IN_FLIGHT_IMAGE), "false" once it
# is ready, retired or superseded: the sweep's one query (DescribeImages, Tag in-flight=true) finds everything
# in flight with status, progress, usable flag and check inline. Written with every state, in the same call.
IN_FLIGHT = "bakery:in-flight"
# A bake from snapshots (no source instance): their ids without the "s-" prefix, comma-separated, in
# DiskDeviceMapping order (the first is the system disk); continued in `-2`, `-3`... when over 128 chars.
SOURCE_SNAPSHOTS = "bakery:source-snapshots"

# Images made outside Bakery (stages.adopt). Set by the operator on an image: "true" asks Bakery to follow its
# ECS check and repair it (BAKERY_ADOPT_IMAGES tag, families or all; not off).
ADOPT = "bakery:adopt"
# Written by Bakery on every image of an adopted bake: = the id of the operator's original image. Retention treats
# such images as the operator's (never retires them); adoption never takes an image carrying it twice.
ADOPTED = "bakery:adopted"
# The original's name as it was when adopted (names are unique per region: the repaired image takes it over,
# the original is renamed; a repair of a name ACS-ECS-RepairImage cannot extend renames it for the run).
ORIGINAL_NAME = "bakery:original-name"
# Bakery's own keys on images: never copied to a repaired image as the operator's, never counted as theirs.
IMAGE_WORK_TAGS = frozenset({BAKE_ID, STATE, IN_FLIGHT, SOURCE_INSTANCE, ATTEMPT, REPAIRS, REPAIR_EXECUTION,
                             REPAIRED_FROM, ADOPTED, ORIGINAL_NAME, LAST_ERROR, FAMILY})  # fmt: skip


def operator_tags(resource_tags: dict[str, str]) -> dict[str, str]:
    """The tags an operator (or the platform: acs:*) set on an image, without Bakery's own work tags."""
    return {k: v for k, v in resource_tags.items()
            if k not in IMAGE_WORK_TAGS and not k.startswith(SOURCE_SNAPSHOTS)}  # fmt: skip


# Written by Bakery on snapshots: = the bake id of an image being retired. ECS deletes an image's snapshots
# only after the image, so the snapshots carry the record of what is left to delete (write-ahead) and a
# retried or swept retire finishes it.
RETIRING = "bakery:retiring"

# The values of STATE, where each lives and how they move are bakery.state (the model of a bake's state); they
# stay readable as tags.X for the tooling. New code uses bakery.state.
PREFLIGHT, STOPPING, CREATING, CHECKING, CHECK_FAILED = (
    state.PREFLIGHT, state.STOPPING, state.CREATING, state.CHECKING, state.CHECK_FAILED)  # fmt: skip
REPAIRING, REPAIRED, READY, FAILED, RETIRED = (
    state.REPAIRING, state.REPAIRED, state.READY, state.FAILED, state.RETIRED)  # fmt: skip


def image_state(current: str | None, new: str) -> dict[str, str]:
    """The tags that move an image from `current` to state `new` (checked against state.TRANSITIONS)."""
    return {STATE: state.to(state.IMAGE, current, new), IN_FLIGHT: str(new in state.IN_FLIGHT_IMAGE).lower()}


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1", "on")


def pack_snapshot_ids(snapshot_ids: list[str]) -> dict[str, str]:
    """Snapshot ids as SOURCE_SNAPSHOTS tag(s): short form, each value within the 128-character tag limit."""
    chunks: list[str] = []
    for snapshot_id in snapshot_ids:
        short = snapshot_id.removeprefix("s-")
        if chunks and len(chunks[-1]) + 1 + len(short) <= 128:
            chunks[-1] += "," + short
        elif len(short) <= 128:
            chunks.append(short)
        else:
            raise ValueError(f"snapshot id {snapshot_id!r} is longer than a tag value may be")
    return {SOURCE_SNAPSHOTS if n == 0 else f"{SOURCE_SNAPSHOTS}-{n + 1}": c for n, c in enumerate(chunks)}


def unpack_snapshot_ids(resource_tags: dict[str, str]) -> list[str]:
    """The snapshot ids a bake's image was made from ([] for an instance bake)."""
    ids: list[str] = []
    key, n = SOURCE_SNAPSHOTS, 1
    while resource_tags.get(key):
        ids += [f"s-{short}" for short in resource_tags[key].split(",") if short]
        n += 1
        key = f"{SOURCE_SNAPSHOTS}-{n}"
    return ids
