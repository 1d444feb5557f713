"""The promises every chaos run is held to, each broken one a readable line.

`pipeline_violations` is the one place the pipeline's own checker is called; the chaos suite's own checks
follow it. They overlap on purpose where the pipeline's checker is being extended (unfinished bakes, dead
letters, the disk rule): `violations` drops exact repeats, and `signature` groups lines that differ only
in resource ids, so one bug is one distinct violation however many runs hit it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bakery import tags

if TYPE_CHECKING:
    from bakery_tools.local import LocalRun
    from tests.chaos.harness import Observed

TERMINAL = ("ready", "failed")
DEFAULT_RETENTION_KEEP = 3  # BAKERY_RETENTION_KEEP's default (bakery.config.Settings)


def pipeline_violations(run: LocalRun, report: dict[str, Any]) -> list[str]:
    """The pipeline's own checker of a finished run (`LocalRun.problems`: unfinished bakes, bakes that never
    happened, dead letters, duplicates, orphans, instances left stopped, lost disks...)."""
    return run.problems(report)


def violations(run: LocalRun, report: dict[str, Any], observed: Observed) -> list[str]:
    """Every broken promise of a finished run, the pipeline's checker's first, without exact repeats."""
    found = pipeline_violations(run, report) + chaos_violations(run, report, observed)
    return list(dict.fromkeys(found))


def chaos_violations(run: LocalRun, report: dict[str, Any], observed: Observed) -> list[str]:
    return [
        *_bakes_terminal(run, report, observed),
        *_no_dead_letters(run),
        *_instances_released(run, report),
        *_no_disk_lost(run, report),
        *_retention_kept(run, report),
    ]


_IDS = re.compile(r"\b(?:i|m|s|b|d|exec|t)-[0-9a-zA-Z-]+\b")
_FAMILIES = re.compile(r"\bfamily [\w.-]+")
_NUMBERS = re.compile(r"\b\d+\b")


def signature(violation: str) -> str:
    """A violation with its resource ids and counts blanked: what makes two violations the same bug."""
    return _NUMBERS.sub("N", _FAMILIES.sub("family <f>", _IDS.sub("<id>", violation)))


# -- the checks -----------------------------------------------------------------------------------------


def _bakes_terminal(run: LocalRun, report: dict[str, Any], observed: Observed) -> list[str]:
    """Every bake ends ready, or failed with a reason, and says so: a Ready or Failed event was published
    (counted even when a delivery fault lost it afterwards: the notification left Bakery)."""
    problems = []
    images = run.cloud.ecs.images
    ready_by_tags = {i.tags.get(tags.BAKE_ID) for i in images.values() if i.tags.get(tags.STATE) == tags.READY}
    reported = {b["bakeId"]: b for b in report["bakes"]}
    for bake_id in sorted(set(reported) | set(observed.claimed)):
        bake = reported.get(bake_id, {})
        instance_id = bake.get("instanceId") or observed.claimed.get(bake_id)
        outcomes = observed.outcomes.get(bake_id, [])
        if bake_id.startswith("unannounced:"):  # the report knows it from the instance's tags only
            outcomes = [o for found in observed.outcomes.values() for o in found if o.get("instanceId") == instance_id]
        kinds = {o["type"] for o in outcomes}
        if not kinds and bake_id not in ready_by_tags:
            where = bake.get("state", "not reported")
            problems.append(f"bake {bake_id} (instance {instance_id}) never ended: no bakery:Image:Ready or "
                            f"bakery:Bake:Failed was published (report: {where})")  # fmt: skip
            continue
        if kinds == {"bakery:Image:Ready", "bakery:Bake:Failed"}:
            problems.append(f"bake {bake_id} (instance {instance_id}) published both Image:Ready and Bake:Failed")
        for outcome in outcomes:
            if outcome["type"] == "bakery:Bake:Failed" and not outcome.get("reason"):
                problems.append(f"bake {bake_id} (instance {instance_id}) failed without a reason: {outcome}")
        if bake and bake["state"] not in TERMINAL and not kinds:
            problems.append(f"bake {bake_id} (instance {instance_id}) is {bake['state']} at the end of the run")
    return problems


def _no_dead_letters(run: LocalRun) -> list[str]:
    problems = []
    for letter in run.runtime.dead_letters:  # each one is an event a function never handled
        kind = letter.event.get("type", "timer") if isinstance(letter.event, dict) else "?"
        error = (letter.error or "").splitlines()[0][:160] if letter.error else ""
        problems.append(f"dead letter: {letter.function} gave up on {kind} ({letter.reason}): {error}")
    return problems


def _instances_released(run: LocalRun, report: dict[str, Any]) -> list[str]:
    problems = []
    for instance in report["instances"]:
        instance_id = instance["instanceId"]
        left = sorted(set(instance["tags"]) & set(tags.INSTANCE_WORK_TAGS))
        if left:
            problems.append(f"instance {instance_id} still carries Bakery work tags {left}")
        # README: the instance is started again "if Bakery stopped it" -- never one that was already Stopped.
        if run.initial_status.get(instance_id) == "Stopped" and instance["status"] != "Stopped":
            problems.append(f"instance {instance_id} was Stopped and is now {instance['status']}")
    return problems


def _no_disk_lost(run: LocalRun, report: dict[str, Any]) -> list[str]:
    """A promoted image holds every disk of its source: the instance's system + data disks, or every snapshot
    the request named."""
    problems = []
    ecs = run.cloud.ecs
    disks_of = {spec.id: len(spec.disks) for spec in run.scenario.instances}
    for bake in report["bakes"]:
        image = ecs.images.get(bake.get("imageId") or "")
        if bake["state"] != "ready" or image is None:
            continue
        snapshots = tags.unpack_snapshot_ids(image.tags)
        expected = len(snapshots) if snapshots else disks_of.get(image.tags.get(tags.SOURCE_INSTANCE, ""))
        if expected is not None and len(image.mappings) != expected:
            kinds = [mp.disk_type for mp in image.mappings]
            problems.append(f"image {image.image_id} of bake {bake['bakeId']} has {len(image.mappings)} disk(s) "
                            f"{kinds}, its source has {expected}")  # fmt: skip
    return problems


def _retention_kept(run: LocalRun, report: dict[str, Any]) -> list[str]:
    """In every family a bake promoted into (bakery.families.retention): the family still resolves to an
    Available image, the newest image a bake promoted is Available, and Bakery's own finished images older than
    the newest N counted (Available, finished) ones were retired -- unless protected, in use or shared."""
    problems = []
    ecs = run.cloud.ecs
    keep = int((run.env or {}).get("BAKERY_RETENTION_KEEP") or DEFAULT_RETENTION_KEEP)
    in_use = {i.image_id for i in ecs.instances.values() if getattr(i, "image_id", None)}
    ready = [b for b in report["bakes"] if b["state"] == "ready" and b.get("family") and b.get("imageId") in ecs.images]
    # Retention runs when bakery-lifecycle gets a family's Family:Promoted; a lost one is sent again by the sweep
    # (the promoted images stay in flight until it ran), so every family a settled run promoted into is checked.
    for family in sorted({b["family"] for b in ready}):
        members = sorted((i for i in ecs.images.values() if i.family == family and i.owner_alias == "self"),
                         key=lambda i: (i.created_epoch, i.image_id), reverse=True)  # fmt: skip
        counted = [i for i in members if i.status == "Available" and i.tags.get(tags.STATE, tags.READY) == tags.READY]
        if not counted:
            problems.append(f"family {family} has no Available image left")
        newest = max((ecs.images[b["imageId"]] for b in ready if b["family"] == family),
                     key=lambda i: (i.created_epoch, i.image_id))  # fmt: skip
        if newest.status != "Available" or newest.family != family:
            problems.append(f"image {newest.image_id}, the newest a bake promoted into family {family}, is "
                            f"{newest.status} (family {newest.family or 'none'})")  # fmt: skip
        for image in counted[keep:]:
            exempt = (
                tags.BAKE_ID not in image.tags  # the operator's own image: counted, never retired
                or tags.ADOPTED in image.tags  # an adopted image (repaired or not) is the operator's too
                or image.image_id in in_use
                or image.shared_with
                or tags.truthy(image.tags.get("bakery:protected"))
            )
            if not exempt:
                problems.append(f"image {image.image_id} of family {family} is older than the newest {keep} and "
                                "still Available (retention did not apply)")  # fmt: skip
    return problems
