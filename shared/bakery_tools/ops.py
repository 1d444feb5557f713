"""Operator commands: status, bake, repair.

    bakery status [--json] [--limit N]                     bakes in flight and recent outcomes, from tags
    bakery bake INSTANCE [--family F] [--stop-first] [--name PREFIX]
    bakery bake --snapshots s-1,s-2 --family F [--name PREFIX]
    bakery repair IMAGE                                    follow and repair an image made outside Bakery

Both talk to the cloud named by the target options (`--region`, `--endpoint` of a local cloud, `--bus`;
see bakery_tools.target) and print JSON with `--json`. Exit codes: 0 done, 1 refused or a problem (a bake already
in flight, a snapshot not ready, the cloud unreachable), 2 bad input (unknown instance or snapshot, no region).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bakery import events, state, tags
from bakery.config import Settings
from bakery.errors import BakeFailure, CloudError, ConfigError, RetryableError
from bakery.model import Image, Instance
from bakery_tools.exits import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, Refused
from bakery_tools.target import add_target_arguments, settings_for
from bakery_tools.terminal import table_lines

_INSTANCE_ID = re.compile(r"^i-[\w-]+$")
_SNAPSHOT_ID = re.compile(r"^s-[\w-]{1,62}$")
MAX_SNAPSHOTS = 17  # one system disk + up to 16 data disks (DiskDeviceMapping)
MAX_NAME_PREFIX = 100  # the image is named PREFIX-<bake id>-<attempt>: 128 characters at most
IN_FLIGHT_IMAGE_STATES = state.IN_FLIGHT_IMAGE  # the state model's: what the sweep follows is what status shows
ROW_KEYS = ("instanceId", "snapshotIds", "originalImageId", "bakeId", "state", "inFlight", "imageId", "family",
            "attempts", "lastResult", "lastImage", "lastError")  # fmt: skip


@dataclass
class Outcome:
    """What a command did: `payload` for --json, `lines` for a person."""

    payload: dict[str, Any]
    lines: list[str] = field(default_factory=list)


def register(commands: Any) -> None:
    """Add this module's subcommands to the `bakery` parser."""
    status = commands.add_parser(
        "status",
        help="bakes in flight and recent outcomes (read from tags)",
        description="Bakes in flight and recent outcomes, read from the tags Bakery keeps on instances and images "
        "(O(pages) of tag queries). States: requested, preflight, stopping, creating, checking, check-failed, "
        "repairing, then ready or failed.",
    )
    add_target_arguments(status)
    status.add_argument("--limit", type=_positive, default=20, help="finished bakes to show, newest first (20)")
    status.set_defaults(run=cmd_status)

    bake_parser = commands.add_parser(
        "bake",
        help="bake an instance (tags it bakery:bake=true), or one image from snapshots",
        description="Bake INSTANCE: tag it bakery:bake=true (plus the options) exactly as a person would in the "
        "console. Or bake --snapshots: one image from snapshots of disks on different instances, the system "
        "disk's first, through the same check, repair and promote path.",
        epilog="examples:\n  bakery bake i-web1 --family web --stop-first\n"
        "  bakery bake --snapshots s-sys1,s-data2 --family app --name app-merged\n  bakery status",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(bake_parser)
    bake_parser.add_argument("instance", nargs="?", help="instance id (i-...)")
    bake_parser.add_argument(
        "--snapshots", help="comma-separated snapshot ids, the system disk's first (instead of INSTANCE)"
    )
    bake_parser.add_argument("--family", help="image family to promote into once the check passes")
    bake_parser.add_argument(
        "--stop-first", action="store_true", help="stop the instance before imaging, start it after"
    )
    bake_parser.add_argument("--name", help="image name prefix")
    bake_parser.set_defaults(run=cmd_bake)

    repair_parser = commands.add_parser(
        "repair",
        help="follow an image made outside Bakery through its check, and repair it if it fails",
        description="Adopt IMAGE (made by the console, Packer, Terraform..., before Bakery was deployed or outside "
        "its BAKERY_ADOPT_IMAGES policy): Bakery follows its ECS image check and, if it failed, repairs it with "
        "ACS-ECS-RepairImage; the repaired image takes over its name, description, family, tags and shares, and "
        "the original is deprecated, deleted or left (the AdoptedOriginalPolicy parameter). Also starts again an "
        "adopted image whose repair failed, once you fixed what it said.",
        epilog="example:\n  bakery repair m-bp1abc123 && bakery status",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(repair_parser)
    repair_parser.add_argument("image", help="image id (m-...)")
    repair_parser.set_defaults(run=cmd_repair)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


# == status ========================================================================================


def cmd_status(args: argparse.Namespace) -> int:
    return _operate(args, lambda settings: status(settings, args))


def status(settings: Settings, args: argparse.Namespace) -> Outcome:
    from bakery.adapters.ecs import Ecs

    rows = collect_bakes(Ecs(settings))
    in_flight = [r for r in rows if r["inFlight"]]
    finished = [r for r in rows if not r["inFlight"]]
    shown = finished[: args.limit]
    omitted = len(finished) - len(shown)
    payload = {"ok": True, "region": settings.region, "inFlight": len(in_flight), "bakes": in_flight + shown,
               "omitted": omitted}  # fmt: skip
    if not rows:
        return Outcome(payload, [f"No bakes in flight and no recent outcomes in {settings.region}.",
                                 f"Start one: bakery bake INSTANCE --family FAMILY{_target_flags(args)}"])  # fmt: skip
    lines = [f"Bakery in {settings.region}: {_count(len(in_flight), 'bake')} in flight, "
             f"{_count(len(finished), 'finished bake')}" + (f" ({omitted} older not shown: --limit)" if omitted else ""),
             ""]  # fmt: skip
    header = ["source", "bake id", "state", "image", "family", "attempts", "last result"]
    table = [[_source(r), r["bakeId"] or "-", r["state"], r["imageId"] or "-", r["family"] or "-",
              "-" if r["attempts"] is None else str(r["attempts"]), _clip(r["lastResult"], 60)]
             for r in payload["bakes"]]  # fmt: skip
    lines += table_lines(table, header)
    if in_flight:
        lines += ["", f"Run `bakery status{_target_flags(args)}` again to follow them.",
                  f"Each ends with bakery:Image:Ready or bakery:Bake:Failed on bus '{settings.event_bus}'."]  # fmt: skip
    return Outcome(payload, lines)


def collect_bakes(ecs: Any) -> list[dict[str, Any]]:
    """Every bake the tags know about: in flight first, then finished ones newest first.

    Six paged tag queries whatever the fleet size: images with `bakery:state` or `bakery:adopted` (an adopted
    image given back after its bake failed carries no state), and instances with `bakery:bake-id`, `bakery:bake`,
    `bakery:last-image` or `bakery:last-error`.
    """
    images = ecs.images_tagged(tags.STATE)
    by_bake: dict[str, list[Image]] = {}
    for image in images:
        by_bake.setdefault(image.tags.get(tags.BAKE_ID, ""), []).append(image)
    by_id = {i.image_id: i for i in images}
    instances: dict[str, Instance] = {}
    for key in (tags.BAKE_ID, tags.TRIGGER, tags.LAST_IMAGE, tags.LAST_ERROR):
        for instance in ecs.instances_tagged(key):
            instances[instance.instance_id] = instance
    rows: list[dict[str, Any]] = []
    shown_bakes: set[str] = set()
    for instance in sorted(instances.values(), key=lambda i: i.instance_id):
        row = _instance_row(instance, by_bake, by_id)
        if row is not None:
            rows.append(row)
            shown_bakes.add(row["bakeId"] or "")
    listed = set(instances)
    for bake_id, bake_images in sorted(by_bake.items()):
        if not bake_id or bake_id in shown_bakes:
            continue
        current = _current_image(bake_images)
        if current is None:
            continue
        source = current.tags.get(tags.SOURCE_INSTANCE, "")
        if source in listed and current.tags.get(tags.STATE) == tags.READY:
            continue  # an earlier bake of a listed instance: its row shows the latest outcome
        rows.append(_image_row(current, source))
    for image in ecs.images_tagged(tags.ADOPTED):  # adopted images whose bake failed: given back, unstated
        if (
            tags.STATE not in image.tags
            and image.tags.get(tags.LAST_ERROR)
            and image.tags[tags.ADOPTED] == image.image_id
        ):
            rows.append({**_image_row(image, ""), "state": "failed", "inFlight": False, "imageId": None,
                         "lastResult": f"failed: {image.tags[tags.LAST_ERROR]} (the image is as it was)",
                         "lastError": image.tags[tags.LAST_ERROR]})  # fmt: skip
    in_flight = sorted((r for r in rows if r["inFlight"]), key=lambda r: (_source(r), r["bakeId"] or ""))
    finished = sorted((r for r in rows if not r["inFlight"]), key=lambda r: r["_created"], reverse=True)
    # finished: newest first, unknown times (failed bakes) last; one key order for every row
    return [{k: row[k] for k in ROW_KEYS} for row in in_flight + finished]


def _instance_row(
    instance: Instance, by_bake: dict[str, list[Image]], by_id: dict[str, Image]
) -> dict[str, Any] | None:
    t = instance.tags
    previous = (
        f"previous: ready {t[tags.LAST_IMAGE]}" if t.get(tags.LAST_IMAGE)
        else f"previous: failed ({t[tags.LAST_ERROR]})" if t.get(tags.LAST_ERROR) else "-"
    )  # fmt: skip
    base = {"instanceId": instance.instance_id, "snapshotIds": [], "originalImageId": None,
            "lastImage": t.get(tags.LAST_IMAGE) or None,
            "lastError": t.get(tags.LAST_ERROR) or None}  # fmt: skip
    if t.get(tags.BAKE_ID):
        bake_id = t[tags.BAKE_ID]
        current = _current_image(by_bake.get(bake_id, []))
        state = t.get(tags.STATE) or "claimed"
        if current is not None and state == tags.CREATING:
            state = current.tags.get(tags.STATE, state)  # from CreateImage on, the image carries the state
        return {**base, "bakeId": bake_id, "state": state, "inFlight": True,
                "imageId": current.image_id if current else t.get(tags.IMAGE) or None,
                "family": t.get(tags.FAMILY) or (current.tags.get(tags.FAMILY) if current else None) or None,
                "attempts": _attempts(current), "lastResult": previous, "_created": ""}  # fmt: skip
    if tags.truthy(t.get(tags.TRIGGER)):
        return {**base, "bakeId": None, "state": "requested", "inFlight": True, "imageId": None,
                "family": t.get(tags.FAMILY) or None, "attempts": None, "lastResult": previous, "_created": ""}  # fmt: skip
    if t.get(tags.LAST_IMAGE):
        image = by_id.get(t[tags.LAST_IMAGE])
        return {**base, "bakeId": image.tags.get(tags.BAKE_ID) if image else None, "state": "ready", "inFlight": False,
                "imageId": t[tags.LAST_IMAGE], "family": (image.family or image.tags.get(tags.FAMILY)) if image else None,
                "attempts": _attempts(image), "lastResult": _ready_result(image),
                "_created": image.creation_time if image else ""}  # fmt: skip
    if t.get(tags.LAST_ERROR):
        return {**base, "bakeId": None, "state": "failed", "inFlight": False, "imageId": None,
                "family": t.get(tags.FAMILY) or None, "attempts": None,
                "lastResult": f"failed: {t[tags.LAST_ERROR]}", "_created": ""}  # fmt: skip
    return None


def _image_row(image: Image, source_instance: str) -> dict[str, Any]:
    state = image.tags.get(tags.STATE, "")
    ready = state == tags.READY
    return {"instanceId": source_instance or None, "snapshotIds": tags.unpack_snapshot_ids(image.tags),
            "originalImageId": image.tags.get(tags.ADOPTED) or None, "bakeId": image.tags.get(tags.BAKE_ID), "state": state, "inFlight": not ready, "imageId": image.image_id,
            "family": image.family or image.tags.get(tags.FAMILY) or None, "attempts": _attempts(image),
            "lastResult": _ready_result(image) if ready else "-", "lastImage": None, "lastError": None,
            "_created": image.creation_time}  # fmt: skip


def _current_image(images: list[Image]) -> Image | None:
    """The image that speaks for a bake: its ready one, else the newest in flight (most repairs)."""
    ready = [i for i in images if i.tags.get(tags.STATE) == tags.READY]
    if ready:
        return ready[0]
    live = [i for i in images if i.tags.get(tags.STATE) in IN_FLIGHT_IMAGE_STATES]
    return max(live, key=lambda i: (int(i.tags.get(tags.REPAIRS, "0") or 0), i.creation_time), default=None)


def _attempts(image: Image | None) -> int | None:
    """Images the bake made so far: CreateImage attempts plus repairs (what bakery:Image:Ready reports)."""
    if image is None:
        return None
    try:
        return int(image.tags.get(tags.ATTEMPT, "1")) + int(image.tags.get(tags.REPAIRS, "0"))
    except ValueError:
        return None


def _ready_result(image: Image | None) -> str:
    if image is None:
        return "ready (image no longer tagged)"
    repairs = image.tags.get(tags.REPAIRS, "0")
    where = f"promoted into {image.family}" if image.family else "ready (no family)"
    return where + (f" after {repairs} repair(s)" if repairs not in ("", "0") else "")


def _source(row: dict[str, Any]) -> str:
    if row["instanceId"]:
        return row["instanceId"]
    if row.get("originalImageId"):
        return f"adopted {row['originalImageId']}"
    snapshots = row["snapshotIds"]
    if not snapshots:
        return "-"
    return snapshots[0] + (f" +{len(snapshots) - 1}" if len(snapshots) > 1 else "")  # --json lists them all


# == bake ==========================================================================================


def cmd_bake(args: argparse.Namespace) -> int:
    return _operate(args, lambda settings: bake(settings, args))


def bake(settings: Settings, args: argparse.Namespace) -> Outcome:
    if args.snapshots is not None:
        return bake_snapshots(settings, args)
    if not args.instance:
        raise Refused(EXIT_USAGE, "no-source", "Name what to bake: an INSTANCE (bakery bake i-... --family F), "
                      "or --snapshots s-1,s-2 --family F.")  # fmt: skip
    instance_id = args.instance
    if not _INSTANCE_ID.match(instance_id):
        raise Refused(EXIT_USAGE, "bad-instance-id", f"{instance_id!r} is not an instance id (i-...).")
    _check_names(args)
    from bakery.adapters.ecs import Ecs

    ecs = Ecs(settings)
    instance = ecs.instance(instance_id)
    if instance is None:
        raise Refused(EXIT_USAGE, "unknown-instance", f"No instance {instance_id} in {settings.region}. Check the id "
                      f"and the region (aliyun ecs DescribeInstances --RegionId {settings.region}).")  # fmt: skip
    current = instance.tags
    follow = f"bakery status{_target_flags(args)}"
    if current.get(tags.BAKE_ID):
        raise Refused(EXIT_PROBLEM, "already-baking", f"{instance_id} is already being baked (bake "
                      f"{current[tags.BAKE_ID]}, state {current.get(tags.STATE, '?')}). Follow it: {follow}")  # fmt: skip
    if tags.truthy(current.get(tags.TRIGGER)):
        raise Refused(EXIT_PROBLEM, "already-requested", f"{instance_id} is already tagged {tags.TRIGGER}=true and "
                      "waits for Bakery to claim it (within a minute: the sweep picks up missed triggers). "
                      f"Follow it: {follow}")  # fmt: skip
    wanted = {tags.TRIGGER: "true"}
    if args.family:
        wanted[tags.FAMILY] = args.family
    if args.stop_first:
        wanted[tags.STOP_FIRST] = "true"
    if args.name:
        wanted[tags.NAME] = args.name
    # The same single TagResources call a person makes: ActionTrail tells bakery-bake, as for a console tag.
    ecs.tag("instance", instance_id, wanted)
    family = args.family or current.get(tags.FAMILY, "")
    stop_first = args.stop_first or tags.truthy(current.get(tags.STOP_FIRST))
    skip_guest = tags.truthy(current.get(tags.SKIP_GUEST_CHECKS))
    steps = [
        "bakery-bake claims the bake and " + ("skips the guest checks (bakery:skip-guest-checks)" if skip_guest
                                               else "runs the preflight on the instance (Cloud Assistant)"),
        *(["stops the instance (started again when the bake ends)"] if stop_first else []),
        "CreateImage, with ECS's image check",
        f"bakery-check promotes the image into family {family!r} once its check passes (repairing it first if "
        "the check fails)" if family else "bakery-check keeps the checked image out of any family (no --family)",
    ]  # fmt: skip
    tagged = ", ".join(f"{k}={v}" for k, v in wanted.items())
    lines = [f"Tagged {instance_id} ({instance.status}): {tagged}."]
    if family and not args.family:
        lines.append(f"Family {family!r} comes from the instance's existing {tags.FAMILY} tag.")
    if stop_first and not args.stop_first:
        lines.append(f"The instance's existing {tags.STOP_FIRST}=true tag makes Bakery stop it first.")
    lines += ["What happens next:", *_numbered(steps),
              "A bake that cannot succeed ends with bakery:last-error on the instance and a bakery:Bake:Failed event.",
              f"Follow it: {follow}"]  # fmt: skip
    payload = {"ok": True, "instanceId": instance_id, "tagged": wanted, "family": family or None,
               "stopFirst": stop_first, "next": steps, "follow": follow}  # fmt: skip
    return Outcome(payload, lines)


def cmd_repair(args: argparse.Namespace) -> int:
    return _operate(args, lambda settings: repair(settings, args))


def repair(settings: Settings, args: argparse.Namespace) -> Outcome:
    """Adopt one image now (any policy): the same flow an adopted image's CreateImage event starts."""
    from bakery.pipeline import Pipeline
    from bakery.stages import adopt

    image_id = args.image
    if not events.IMAGE_ID.fullmatch(image_id or ""):
        raise Refused(EXIT_USAGE, "bad-image-id", f"{image_id!r} is not an image id (m-...).")
    pipeline = Pipeline.from_settings(settings)
    image = pipeline.ecs.image(image_id)
    follow = f"bakery status{_target_flags(args)}"
    if image is None:
        raise Refused(EXIT_USAGE, "unknown-image", f"No custom image {image_id} of this account in {settings.region}. "
                      "Check the id and the region (only your own images can be repaired).")  # fmt: skip
    if tags.BAKE_ID in image.tags and tags.ADOPTED not in image.tags:
        raise Refused(EXIT_PROBLEM, "bakery-image", f"{image_id} is an image of Bakery's bake "
                      f"{image.tags[tags.BAKE_ID]}: that bake checks and repairs it. Follow it: {follow}")  # fmt: skip
    if tags.ADOPTED in image.tags and image.tags.get(tags.STATE) is not None:
        raise Refused(EXIT_PROBLEM, "already-followed", f"{image_id} is already followed (bake "
                      f"{image.tags.get(tags.BAKE_ID)}, state {image.tags[tags.STATE]}). Follow it: {follow}")  # fmt: skip
    problem = adopt.not_adoptable(pipeline, image)
    if problem is not None:
        raise Refused(EXIT_PROBLEM, problem[0], problem[1])
    adopted = pipeline.adopt(image_id, requested=True, image=image)  # as just read: no second DescribeImages
    if adopted is None:  # someone else took it in between, or it is a repair's output
        raise Refused(EXIT_PROBLEM, "not-adopted", f"{image_id} was not adopted (it is followed already, or is "
                      f"the output of a repair Bakery runs). Look: {follow}")  # fmt: skip
    now = pipeline.ecs.image(image_id)
    current = (now.tags.get(tags.STATE) if now else None) or "?"
    bake_id = adopted.tags[tags.BAKE_ID]
    steps = ["bakery-check follows its ECS image check (the sweep, every few minutes)",
             "a failed check: bakery-repair runs ACS-ECS-RepairImage on the failing items",
             "the repaired image, once its own check passes, takes over the name, description, family "
             f"{image.family or '(none)'!r}, tags and shares; the original is then deprecated, deleted or left, as "
             "the stack's AdoptedOriginalPolicy says"]  # fmt: skip
    lines = [f"Adopted {image_id} ({image.name}, {image.status}) as bake {bake_id}: state {current}.",
             "What happens next:", *_numbered(steps),
             "An image that cannot be repaired ends with a bakery:Bake:Failed event and the original as it was.",
             f"Follow it: {follow}"]  # fmt: skip
    payload = {"ok": True, "imageId": image_id, "bakeId": bake_id, "state": current, "family": image.family or None,
               "next": steps, "follow": follow}  # fmt: skip
    return Outcome(payload, lines)


def bake_snapshots(settings: Settings, args: argparse.Namespace) -> Outcome:
    if args.instance:
        raise Refused(EXIT_USAGE, "two-sources", "Give INSTANCE or --snapshots, not both.")
    if args.stop_first:
        raise Refused(EXIT_USAGE, "stop-first-with-snapshots", "--stop-first applies to an instance; snapshots are "
                      "already taken. Stop the instances before snapshotting them if they need it.")  # fmt: skip
    snapshot_ids = [s.strip() for s in args.snapshots.split(",") if s.strip()]
    bad = [s for s in snapshot_ids if not _SNAPSHOT_ID.match(s)]
    if not snapshot_ids or bad:
        raise Refused(EXIT_USAGE, "bad-snapshot-id", f"--snapshots takes snapshot ids (s-...) separated by commas, "
                      f"the system disk's first{': not ' + ', '.join(map(repr, bad)) if bad else ''}.")  # fmt: skip
    if len(set(snapshot_ids)) != len(snapshot_ids) or len(snapshot_ids) > MAX_SNAPSHOTS:
        raise Refused(EXIT_USAGE, "bad-snapshot-list", f"--snapshots takes 1 to {MAX_SNAPSHOTS} distinct ids "
                      "(one system disk and up to 16 data disks).")  # fmt: skip
    if not args.family:
        raise Refused(EXIT_USAGE, "no-family", "--family is required with --snapshots: there is no instance to carry "
                      "a bakery:family tag, and an image from snapshots is baked to go into a family.")  # fmt: skip
    _check_names(args)
    from bakery.adapters.ecs import Ecs
    from bakery.adapters.eventbridge import EventBus
    from bakery.events import BakeryEvent
    from bakery.stages.claim import bake_id_for

    ecs = Ecs(settings)
    found = {s.snapshot_id: s for s in ecs.snapshots(snapshot_ids)}
    missing = [s for s in snapshot_ids if s not in found]
    if missing:
        raise Refused(EXIT_USAGE, "unknown-snapshot", f"No snapshot {', '.join(missing)} in {settings.region}. List "
                      f"them: aliyun ecs DescribeSnapshots --RegionId {settings.region}")  # fmt: skip
    unready = [found[s] for s in snapshot_ids if found[s].status != "accomplished"]
    if unready:
        states = ", ".join(f"{s.snapshot_id} is {s.status} ({s.progress or '?'})" for s in unready)
        raise Refused(EXIT_PROBLEM, "snapshot-not-ready", f"Snapshots must be accomplished first: {states}. Run this "
                      "again once they are (a failed snapshot must be taken again).")  # fmt: skip
    # The opt-in the bake function checks: tagging needs ecs:TagResources on the snapshots (your credentials),
    # so a bus event alone never bakes someone else's snapshots (README: trust boundary).
    ecs.tag("snapshot", [s for s in snapshot_ids if not tags.truthy(found[s].tags.get(tags.ALLOW_REQUESTS))],
            {tags.ALLOW_REQUESTS: "true"})  # fmt: skip
    follow = f"bakery status{_target_flags(args)}"
    first = tags.pack_snapshot_ids(snapshot_ids)[tags.SOURCE_SNAPSHOTS]
    for image in ecs.images_tagged(tags.SOURCE_SNAPSHOTS, first):
        if (
            tags.unpack_snapshot_ids(image.tags) == snapshot_ids
            and image.tags.get(tags.STATE) in IN_FLIGHT_IMAGE_STATES
        ):
            raise Refused(EXIT_PROBLEM, "already-baking", f"These snapshots are already being baked (bake "
                          f"{image.tags.get(tags.BAKE_ID)}, image {image.image_id}, state "
                          f"{image.tags.get(tags.STATE)}). Follow it: {follow}")  # fmt: skip
    bake_id = bake_id_for(f"cli:{time.time_ns()}", ",".join(snapshot_ids))
    data = {"snapshotIds": snapshot_ids, "family": args.family, "name": args.name or "", "bakeId": bake_id}
    EventBus(settings).publish(BakeryEvent(events.BAKE_REQUESTED, bake_id, data))
    disks = " + ".join(f"{s} ({'system' if n == 0 else 'data'} disk)" for n, s in enumerate(snapshot_ids))
    steps = [
        "bakery-bake makes the image from the snapshots (CreateImage with DiskDeviceMapping and the image check)",
        f"bakery-check promotes it into family {args.family!r} once its check passes (repairing it first if "
        "the check fails)",
    ]
    lines = [f"Requested bake {bake_id} on bus '{settings.event_bus}': one image from {disks}.",
             "What happens next:", *_numbered(steps),
             "Your snapshots are never deleted. A bake that cannot succeed ends with a bakery:Bake:Failed event.",
             f"Follow it: {follow}"]  # fmt: skip
    payload = {"ok": True, "bakeId": bake_id, "snapshotIds": snapshot_ids, "family": args.family,
               "name": args.name or None, "bus": settings.event_bus, "next": steps, "follow": follow}  # fmt: skip
    return Outcome(payload, lines)


def _check_names(args: argparse.Namespace) -> None:
    from bakery.stages.create import name_problem

    problems = [p for p in (name_problem("--family", args.family) if args.family else None,
                            name_problem("--name", args.name, MAX_NAME_PREFIX) if args.name else None) if p]  # fmt: skip
    if problems:
        raise Refused(EXIT_USAGE, "bad-name", "; ".join(problems) + ".")


# == shared: the error policy and output ===========================================================


def _operate(args: argparse.Namespace, action: Callable[[Settings], Outcome]) -> int:
    """Run `action` against the target cloud; every failure becomes an exit code and a message that says
    what to do next (as JSON on stdout with --json, else on stderr)."""
    try:
        settings = settings_for(args)
        outcome = action(settings)
    except ConfigError as exc:
        return _refuse(args, Refused(EXIT_USAGE, "no-region", str(exc)))
    except Refused as refused:
        return _refuse(args, refused)
    except RetryableError as exc:
        if exc.code == "Unreachable":
            where = (
                f"the local cloud at {args.endpoint}: is it running? Start one with `python -m localcloud serve "
                "--scenario FILE --port 8080` and pass the endpoint it prints (--endpoint 127.0.0.1:8080)"
                if args.endpoint
                else f"Alibaba Cloud in {args.region}: check the network and the region id"
            )  # fmt: skip
            return _refuse(args, Refused(EXIT_PROBLEM, "unreachable", f"Cannot reach {where}."))
        return _refuse(args, Refused(EXIT_PROBLEM, "try-again", f"{exc}. Try again in a moment."))
    except BakeFailure as exc:  # missing-permission, from the SDK layer
        action_name = exc.details.get("action", "")
        message = (f"Your credentials may not call {action_name} ({exc.details.get('code', '')}): ask for it to be "
                   "allowed, or use credentials that have it." if action_name else exc.message)  # fmt: skip
        return _refuse(args, Refused(EXIT_PROBLEM, exc.reason, message))
    except CloudError as exc:
        return _refuse(args, _cloud_refusal(args, exc))
    if args.json:
        print(json.dumps(outcome.payload, indent=2))
    else:
        print("\n".join(outcome.lines))
    return EXIT_OK


def _cloud_refusal(args: argparse.Namespace, exc: CloudError) -> Refused:
    if exc.code == "InvalidRegionId.NotFound":
        return Refused(EXIT_USAGE, "unknown-region", f"Region {args.region!r} is not known here ({exc.message.rstrip('.')}). "
                       "Pass the region the instances are in: --region (or ALIBABA_CLOUD_REGION_ID).")  # fmt: skip
    if exc.code in ("InvalidCredentials", "InvalidAccessKeyId.NotFound", "SignatureDoesNotMatch"):
        return Refused(EXIT_USAGE, "credentials", f"No usable Alibaba Cloud credentials ({exc.code}): set "
                       "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET (or a profile with "
                       "`aliyun configure`); for a local cloud, pass --endpoint.")  # fmt: skip
    if exc.code == "EventBusNotExist":
        return Refused(EXIT_PROBLEM, "no-bus", f"There is no event bus {args.bus!r} in {args.region}: is Bakery "
                       "deployed there? Name its bus with --bus (the template's NotificationBus).")  # fmt: skip
    return Refused(EXIT_PROBLEM, "cloud-error", f"{exc}")


def _refuse(args: argparse.Namespace, refused: Refused) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "reason": refused.reason, "message": refused.message}, indent=2))
    else:
        print(f"bakery {args.command}: {refused.message}", file=sys.stderr)
    return refused.exit_code


def _target_flags(args: argparse.Namespace) -> str:
    """The target options to repeat in a suggested command (those not taken from the environment)."""
    import os

    flags = ""
    if args.region and args.region != os.environ.get("ALIBABA_CLOUD_REGION_ID"):
        flags += f" --region {args.region}"
    if args.endpoint and args.endpoint != os.environ.get("BAKERY_CLOUD_ENDPOINT"):
        flags += f" --endpoint {args.endpoint}"
    return flags


def _numbered(steps: list[str]) -> list[str]:
    return [f"  {n}. {step}" for n, step in enumerate(steps, start=1)]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
