"""The verdict on a finished local run, from its report alone (so a hand-built report can be judged too):
`find_problems` (every problem: unfinished bakes, dead letters, a trigger no bake answered, a run that never
settled, broken promises) over `broken_promises` (the safety promises, PROMISES). `LocalRun.problems()` and
`LocalRun.invariant_violations()` call these with the run's baseline and effective settings."""

from __future__ import annotations

from typing import Any

from bakery import tags

PROMISES = (
    "one ready image per bake",
    "a ready bake keeps only its promoted image (retire policy and retention aside)",
    "a failed bake leaves no image",
    "no orphaned image or snapshot",
    "no instance left stopped (or started when it was Stopped) or holding Bakery's work tags",
    "no image in a family without a passed check (BAKERY_UNCHECKED_IMAGE_POLICY=promote: unless ECS cannot check it)",
    "every promoted image has all its source's disks (count, types, order, sizes)",
    "an adopted image is given back as it was when its bake fails, or settled by BAKERY_ADOPTED_ORIGINAL once its "
    "repaired image (with its name) is promoted",
)
# Tags that mean "a bake holds this instance": none may stay once no bake of it is in flight.
_HELD_TAGS = (tags.BAKE_ID, tags.STATE, tags.IMAGE, tags.PREFLIGHT_INVOKE, tags.ENDING)


def find_problems(report: dict[str, Any]) -> list[str]:
    """Every problem of a finished run, one readable line each, prefixed by its kind: UNFINISHED (a bake, or
    a trigger nobody claimed), NO BAKE (an instance the scenario tagged that no bake answered), DEAD LETTER,
    UNSETTLED (the run stopped while still moving), PROMISE BROKEN. Empty: the run is clean."""
    problems: list[str] = []
    bakes = report.get("bakes", [])
    for bake in bakes:
        if bake["state"] not in ("ready", "failed"):
            problems.append(f"UNFINISHED: bake {bake['bakeId']} on {bake.get('instanceId') or 'snapshots'} "
                            f"(state {bake['state']})")  # fmt: skip
    claimed = {b.get("instanceId") for b in bakes}
    for item in report.get("inFlight", []):
        if item[1] == "trigger" and item[0] not in claimed:
            problems.append(f"UNFINISHED: instance {item[0]} still carries {tags.TRIGGER}=true; no bake claimed it")
    for trigger in report.get("triggers", []):
        if trigger["instanceId"] not in claimed:
            when = "before the run" if trigger.get("at") is None else f"at t+{trigger['at']}s"
            problems.append(f"NO BAKE: {trigger['instanceId']} was tagged {tags.TRIGGER}=true {when} "
                            "but no bake of it was recorded")  # fmt: skip
    letters = report.get("deadLetters")
    if letters is None:  # a report from before deadLetters existed: the count is all there is
        letters = [{}] * int(report.get("deliveries", {}).get("dead_letters", 0))
    for letter in letters:
        problems.append("DEAD LETTER: " + (
            f"{letter.get('function')} gave up on {letter.get('eventType')} {letter.get('eventId')} after "
            f"{letter.get('attempts')} attempt(s) ({letter.get('reason')}): {letter.get('error')}" if letter
            else "an event was given up on"))  # fmt: skip
    if report.get("outcome") in ("stalled", "time-limit"):
        what = "nothing in flight changed for too long" if report["outcome"] == "stalled" else "its time limit"
        problems.append(f"UNSETTLED: the run stopped after {report.get('simulated_seconds', 0) / 60:.0f} simulated "
                        f"minutes ({what}) with {len(report.get('inFlight', []))} thing(s) in flight")  # fmt: skip
    problems += [f"PROMISE BROKEN: {line}" for line in broken_promises(report)]
    return problems


def broken_promises(report: dict[str, Any]) -> list[str]:
    """The safety promises (PROMISES) against a report's final state, judged with its settings."""
    settings = report.get("settings") or {}
    baseline = report.get("baseline") or {}
    initial_images = set(baseline.get("images", []))
    retire_deprecates = settings.get("BAKERY_RETIRE_POLICY", "delete") == "deprecate"
    promote_unchecked = settings.get("BAKERY_UNCHECKED_IMAGE_POLICY", "fail") == "promote"
    retention_deleted = set((report.get("retention") or {}).get("deleted", []))
    problems: list[str] = []
    images = {i["imageId"]: i for i in report["images"]}
    # The operator's images (made outside Bakery during the run, adopted or not) and adopted originals are the
    # operator's: never orphans, never Bakery's doing in a family; an original is judged by its own promise.
    operator_images = set(baseline.get("operatorImages", []))
    originals = {k for k, v in images.items() if v["tags"].get(tags.ADOPTED) == k}
    new_images = {k: v for k, v in images.items() if k not in initial_images | operator_images | originals}
    bakes = {b["bakeId"]: b for b in report["bakes"]}
    problems += _adopted_originals(report, images, settings)

    def retired(image: dict[str, Any]) -> bool:  # BAKERY_RETIRE_POLICY=deprecate keeps them, Deprecated
        return retire_deprecates and _retired_by_policy(image)

    for bake in report["bakes"]:
        mine = [i for i in new_images.values() if i["tags"].get(tags.BAKE_ID) == bake["bakeId"]]
        ready = [i for i in mine if i["tags"].get(tags.STATE) == tags.READY]
        if len(ready) > 1:
            problems.append(f"bake {bake['bakeId']}: {len(ready)} ready images (duplicate)")
        kept = [i["imageId"] for i in mine if not retired(i)]
        if bake["state"] == "ready":
            # Retention (RetentionAction=delete) may delete a promoted image once newer ones replace it.
            expected = (
                []
                if (bake["imageId"] in retention_deleted and bake["imageId"] not in images)
                or bake["imageId"] in originals
                else [bake["imageId"]]  # an original promoted itself: its promise
            )
            if expected and bake["imageId"] not in images:
                problems.append(f"bake {bake['bakeId']}: its promoted image {bake['imageId']} is gone "
                                "(and no retention run deleted it)")  # fmt: skip
            elif kept != expected:
                problems.append(f"bake {bake['bakeId']}: images left besides the promoted one: "
                                f"{[i['imageId'] for i in mine]} (promoted {bake['imageId']})")  # fmt: skip
        if bake["state"] == "failed" and mine:
            problems.append(f"bake {bake['bakeId']} failed but left images {[i['imageId'] for i in mine]}")
    for image in new_images.values():
        if image["tags"].get(tags.STATE) != tags.READY and not retired(image):
            problems.append(f"orphaned image {image['imageId']} (state {image['tags'].get(tags.STATE)})")
        check = image["check"]
        unchecked_ok = promote_unchecked and check["status"] == "" and check.get("supported") is False
        if image["family"] and (check["status"] != "Finished" or check["failing"]) and not unchecked_ok:
            problems.append(f"image {image['imageId']} is in family {image['family']} without a passed check")
        bake = bakes.get(image["tags"].get(tags.BAKE_ID, ""))
        if bake and (image["tags"].get(tags.STATE) == tags.READY or image["family"]):
            problems += _missing_disks(image, bake)
    used = {d["snapshotId"] for i in report["images"] for d in i.get("disks", []) if d.get("snapshotId")}
    for snapshot in report["snapshots"]:
        if snapshot["snapshotId"] not in used and snapshot["snapshotId"] not in set(baseline.get("snapshots", [])):
            problems.append(f"orphaned snapshot {snapshot['snapshotId']} ({snapshot['status']})")
    in_flight = {b.get("instanceId") for b in report["bakes"] if b["state"] not in ("ready", "failed")}
    initial = baseline.get("instances", {})
    for instance in report["instances"]:
        if (initial.get(instance["instanceId"]) or {}).get("status") == "Running" and instance["status"] != "Running":
            problems.append(f"instance {instance['instanceId']} was Running and is now {instance['status']}")
        if (initial.get(instance["instanceId"]) or {}).get("status") == "Stopped" and instance["status"] != "Stopped":
            # Bakery starts only what it stopped; scenarios start no instance themselves.
            problems.append(f"instance {instance['instanceId']} was Stopped and is now {instance['status']}")
        if tags.STOPPED_BY_BAKERY in instance["tags"]:
            problems.append(f"instance {instance['instanceId']} still carries {tags.STOPPED_BY_BAKERY}")
        held = [t for t in _HELD_TAGS if t in instance["tags"]]
        if held and instance["instanceId"] not in in_flight:
            problems.append(f"instance {instance['instanceId']} still carries {', '.join(held)} with no bake in flight")
    return problems


def _adopted_originals(report: dict[str, Any], images: dict[str, Any], settings: dict[str, str]) -> list[str]:
    """An adopted bake's original: as it was (failed), itself promoted, or settled by the policy (repaired)."""
    policy = settings.get("BAKERY_ADOPTED_ORIGINAL", "deprecate")
    problems = []
    for bake in report["bakes"]:
        original_id = bake.get("originalImageId")
        if not original_id or bake["state"] not in ("ready", "failed"):
            continue
        original, name, family = images.get(original_id), bake.get("originalName"), bake.get("originalFamily")
        work = [t for t in (tags.STATE, tags.IN_FLIGHT, tags.ORIGINAL_NAME) if original and t in original["tags"]]
        if bake["state"] == "failed":
            if original is None:
                problems.append(
                    f"adopted image {original_id} is gone after its bake failed (it must be left as it was)"
                )
            # Its name as the operator left it: never one Bakery gives (for the repair run, or out of the repaired
            # image's way) — the operator may rename it meanwhile; Bakery never changes its family.
            elif (work or original["status"] != "Available" or _bakerys_name(original)
                  or (family is not None and original["family"] != family)):  # fmt: skip
                problems.append(f"adopted image {original_id} was not given back as it was: status {original['status']}, "
                                f"name {original['name']!r} (was {name!r}), family {original['family']!r} (was "
                                f"{family!r}), work tags {work}")  # fmt: skip
            continue
        if bake["imageId"] == original_id:
            continue  # it passed its check: promoted itself
        promoted = images.get(bake["imageId"] or "")
        want = name if policy != "leave" else (name or "")[: 128 - len("-repaired")] + "-repaired"
        if promoted is not None and name and promoted["name"] != want:
            problems.append(f"repaired image {promoted['imageId']} is named {promoted['name']!r}, not {want!r} "
                            f"(the name of {original_id})")  # fmt: skip
        if promoted is not None and family is not None and promoted["family"] != family:
            problems.append(f"repaired image {promoted['imageId']} is in family {promoted['family']!r}, not "
                            f"{family!r} (the family of {original_id})")  # fmt: skip
        if policy == "leave" and original is not None and _bakerys_name(original):
            problems.append(f"adopted image {original_id} was to be left as it was, but is named "
                            f"{original['name']!r}, not {name!r}")  # fmt: skip
        expected = {"leave": ("Available",), "deprecate": ("Deprecated",), "delete": (None, "Deprecated")}[policy]
        status = original["status"] if original else None
        if status not in expected or (original and original["tags"].get(tags.STATE) != tags.RETIRED):
            problems.append(f"adopted image {original_id} is {status or 'gone'} (state "
                            f"{original and original['tags'].get(tags.STATE)}) after its repaired image was promoted; "
                            f"BAKERY_ADOPTED_ORIGINAL={policy} means {' or '.join(str(e) for e in expected)}")  # fmt: skip
    return problems


def _bakerys_name(image: dict[str, Any]) -> bool:
    """Does the image carry a name Bakery gives an original (`bakery-<id>` for a repair run, `<name>-broken-<id>`)?"""
    return image["name"] == f"bakery-{image['imageId']}" or image["name"].endswith(f"-broken-{image['imageId']}")


def _missing_disks(image: dict[str, Any], bake: dict[str, Any]) -> list[str]:
    """A promoted image must hold every disk of its source: same count, same types in order, sizes >=."""
    source = bake.get("sourceDisks") or []
    if not source:
        return []
    has_devices = all(d.get("device") for d in source)
    key = (
        (lambda d: (d["type"] != "system", d.get("device") or "")) if has_devices else (lambda d: d["type"] != "system")
    )
    want, got = sorted(source, key=key), sorted(image.get("disks", []), key=key)
    of = bake.get("instanceId") or "its source snapshots"
    if [d["type"] for d in got] != [d["type"] for d in want]:
        return [f"image {image['imageId']} has disks [{_disks_text(got)}] but {of} had [{_disks_text(want)}]"]
    pairs = enumerate(zip(got, want, strict=True))  # same length: the types matched
    small = [f"{g.get('device') or n}: {g['sizeGiB']} < {w['sizeGiB']} GiB" for n, (g, w) in pairs
             if w.get("sizeGiB") is not None and g["sizeGiB"] < w["sizeGiB"]]  # fmt: skip
    return [f"image {image['imageId']} has disks smaller than {of}'s: {'; '.join(small)}"] if small else []


def _disks_text(disks: list[dict[str, Any]]) -> str:
    return ", ".join(f"{d['type']} {d.get('sizeGiB')} GiB" for d in disks)


def _retired_by_policy(image: dict[str, Any]) -> bool:
    return image["tags"].get(tags.STATE) == tags.RETIRED and image["status"] == "Deprecated" and not image["family"]
