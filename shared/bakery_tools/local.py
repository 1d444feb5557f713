"""Local runs: the local cloud + the local FC runtime from template.yml + a scenario's operator actions.

Dev tooling only (imports localcloud, which is never deployed): `bakery local run`, `bakery demo`,
`bakery invoke` and the end-to-end tests all go through `LocalRun`.

The verdict on a finished run is `LocalRun.problems()` (every problem: unfinished bakes, dead letters, a
trigger no bake answered, a run that never settled, broken promises) over `broken_promises()` (the safety
promises alone, `LocalRun.invariant_violations()`). Both read only the report, which carries the run's
baseline (what existed before) and the effective settings, so a hand-built report can be judged too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakery import state, tags
from bakery_tools.actions import OPERATOR_KEY, OperatorActions, mapping_row
from bakery_tools.verdict import PROMISES, broken_promises, find_problems

__all__ = ["PROMISES", "LocalRun", "broken_promises", "find_problems", "write_report"]

LOCAL_PARAMETERS = {
    "CodeBucket": "local-code",
    "RepairVSwitchId": "vsw-local",
    "RepairSecurityGroupId": "sg-local",
}


def default_template() -> Path:
    here = Path.cwd() / "template.yml"
    if here.exists():
        return here
    source_tree = Path(__file__).resolve().parents[2] / "template.yml"
    if source_tree.exists():
        return source_tree
    raise FileNotFoundError("no template.yml here: run from the project root or pass --template PATH")


@dataclass
class LocalRun(OperatorActions):
    """One local region with Bakery deployed into it from template.yml."""

    scenario: Any  # localcloud.Scenario
    template_path: Path = field(default_factory=default_template)
    parameters: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # extra env for every function (e.g. policies)

    def __post_init__(self) -> None:
        from alibabacloud_ecs20140526.client import Client as EcsClient

        from localcloud import LocalCloud
        from localcloud.fc.runtime import LocalRuntime
        from localcloud.fc.template import load_template
        from localcloud.testing import running, sdk_config

        self._stack = ExitStack()
        self.cloud = LocalCloud(self.scenario, record_replies=False)
        self._stack.callback(self.cloud.close)
        self.cloud_env = self._stack.enter_context(running(self.cloud, "inprocess"))
        parameters = {"RepairZoneId": f"{self.cloud.region}-h", **LOCAL_PARAMETERS, **self.parameters}
        self.template = load_template(self.template_path, parameters, region=self.cloud.region,
                                      account_id=self.cloud.account_id)  # fmt: skip
        for fn in self.template.functions.values():
            fn.env.update(self.env)
        # ROS cannot create buses: the deploy step does, and a local run creates them the same way.
        from bakery.errors import RetryableError
        from bakery_tools.deploy.buses import ensure_buses

        for attempt in range(10):  # the scenario's faults reach the deploy step too: it retries, as a person would
            try:
                ensure_buses(self.cloud_env.eventbridge, self.template.buses, description="Bakery (local run)")
                break
            except RetryableError:
                if attempt == 9:
                    raise
        self.runtime = LocalRuntime(
            self.cloud, self.template, endpoint=self.cloud_env.endpoint, seed=self.scenario.seed
        )
        self.runtime.start()
        self._stack.callback(self.runtime.stop)
        self.cloud.fc.attach(self.runtime)  # FC's InvokeFunction API reaches these functions too
        self._stack.callback(self.cloud.fc.detach, self.runtime)
        self.operator = EcsClient(sdk_config(self.cloud_env.endpoint, self.cloud.region, access_key_id=OPERATOR_KEY))
        self.initial_status = {i.instance_id: i.status for i in self.cloud.ecs.instances.values()}
        self.initial_results = {i.instance_id: (i.tags.get(tags.LAST_IMAGE), i.tags.get(tags.LAST_ERROR))
                                for i in self.cloud.ecs.instances.values()}  # fmt: skip
        self.initial_images = {i for i, img in self.cloud.ecs.images.items() if img.owner_alias == "self"}
        # The disks of the images there before the run: an adopted one's repaired image must hold them all.
        self._seen_disks = {i: [mapping_row(d) for d in img.mappings] for i, img in self.cloud.ecs.images.items()
                            if img.owner_alias == "self"}  # fmt: skip
        self.initial_snapshots = set(self.cloud.ecs.snapshots)
        # What a promoted image must still hold: each instance's disks before anything ran.
        self.initial_disks = {
            i.instance_id: [_disk_row(d) for d in self.cloud.ecs.instance_disks(i)]
            for i in self.cloud.ecs.instances.values()
        }
        self.initial_triggers = [i.instance_id for i in self.cloud.ecs.instances.values()
                                 if tags.truthy(i.tags.get(tags.TRIGGER))]  # fmt: skip
        self.outcome: str | None = None  # how run() ended: settled | stalled | time-limit
        self.created_images: dict[str, list[dict[str, Any]]] = {}  # made outside Bakery by actions: their disks
        self.created_images_as: dict[str, dict[str, str]] = {}  # ... and the name and family they were made with

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> LocalRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, on_step: Callable[[LocalRun], None] | None = None, step_seconds: float = 60.0,
            patience_seconds: float = 6 * 3600, limit_seconds: float = 7 * 86400) -> dict[str, Any]:  # fmt: skip
        """Apply the scenario's actions at their times, then run until idle with no bake in flight. It also
        stops when `patience_seconds` of simulated time pass without the bakes in flight changing (stalled),
        or after `limit_seconds` in all; `outcome` says which, and `problems()` reports either. Returns the
        report. `on_step(self)` is called after every `step_seconds` of simulated time."""
        start = self.cloud.clock.now
        for action in self._validated_actions():
            self.runtime.run_until(start + float(action.get("at", 0)))
            self.apply(action)
        deadline = self.cloud.clock.now + limit_seconds
        # Without a watcher, longer chunks (fewer wake-ups; idle is detected inside one), short enough that a
        # stall is noticed within a sixth of the patience of its start.
        chunk = step_seconds if on_step else max(step_seconds, patience_seconds / 6)
        stalled_since, last_state = self.cloud.clock.now, self._in_flight()
        while True:
            step_end = min(self.cloud.clock.now + chunk, deadline)
            result = self.runtime.run_until_idle(max_simulated_seconds=max(step_end - self.cloud.clock.now, 0.0))
            idle = result["stopped"] == "idle"
            if not idle and self.cloud.clock.now < step_end:
                # run_until_idle stops *before* a timer beyond the step without moving the clock: close the
                # step at its end, or the next one starts from the same instant and never gets anywhere.
                self.runtime.run_until(step_end)
            if on_step:
                on_step(self)
            in_flight = self._in_flight()
            if idle and not in_flight:
                self.outcome = "settled"
                break
            # The patience applies whether or not events still flow: a stuck bake under a sweep that keeps
            # writing (or an emulator timer that keeps re-arming) is never idle, and used to loop forever.
            if in_flight != last_state:
                stalled_since, last_state = self.cloud.clock.now, in_flight
            elif self.cloud.clock.now - stalled_since >= patience_seconds:
                self.outcome = "stalled"
                break
            if self.cloud.clock.now >= deadline:
                self.outcome = "time-limit"
                break
            if idle:
                # Idle by events is not done while a bake is in flight: a throttled sweep publishes nothing,
                # yet the next one finishes the bake. Keep the clock going, as FC's timer would.
                self.runtime.run_until(min(self.cloud.clock.now + step_seconds, deadline))
        return self.report()

    def _in_flight(self) -> tuple[tuple[str, str], ...]:
        """Bakes not finished yet, from the tags on the cloud's resources (events may have been lost)."""
        ecs = self.cloud.ecs
        claimed = [
            (i.instance_id, i.tags.get(tags.STATE, "")) for i in ecs.instances.values() if tags.BAKE_ID in i.tags
        ]
        waiting = [(i.instance_id, "trigger") for i in ecs.instances.values()
                   if tags.truthy(i.tags.get(tags.TRIGGER)) and tags.BAKE_ID not in i.tags]  # fmt: skip
        live = state.IN_FLIGHT_IMAGE
        images = [(i.image_id, i.tags[tags.STATE]) for i in ecs.images.values() if i.tags.get(tags.STATE) in live
                  or (i.tags.get(tags.STATE) == state.READY and i.tags.get(tags.IN_FLIGHT) == "true")]  # fmt: skip
        # Snapshots an interrupted retire left, marked for deletion: the sweep's hourly collection finishes them.
        retiring = [(s.snapshot_id, "retiring") for s in ecs.snapshots.values() if tags.RETIRING in s.tags]
        return tuple(sorted(claimed + waiting + images + retiring + self._awaiting_adoption()))

    def _awaiting_adoption(self) -> list[tuple[str, str]]:
        """Images the adoption policy takes that nobody adopted yet (their CreateImage record lost, say) and that
        can still be adopted: the sweep's look for them comes within fifteen minutes. An image Bakery reported as
        not adoptable, or one without the check, is not waiting."""
        settings = self.settings()
        policy = settings.get("BAKERY_ADOPT_IMAGES", "tag")
        if policy == "off":
            return []
        families = {f.strip() for f in settings.get("BAKERY_ADOPT_FAMILIES", "").split(",") if f.strip()}
        reported = {e["subject"] for e in self.bakery_events() if e.get("type") == "bakery:Image:NotAdopted"}
        waiting = []
        for image in self.cloud.ecs.images.values():
            if image.owner_alias != "self" or tags.BAKE_ID in image.tags or tags.ADOPTED in image.tags:
                continue
            taken = (policy == "all" or tags.truthy(image.tags.get(tags.ADOPT))
                     or (policy == "families" and image.family in families))  # fmt: skip
            if not taken or image.image_id in reported or image.image_id in self.initial_images:
                continue
            if image.status in ("Creating", "Waiting") or (image.status == "Available" and image.detection_status):
                waiting.append((image.image_id, "to adopt"))
        return waiting

    # -- what happened -----------------------------------------------------------------------------

    def bakery_events(self) -> list[dict[str, Any]]:
        return [e.event for e in self.cloud.events.read(0, "bakery")]

    def report(self) -> dict[str, Any]:
        from localcloud.services.ecs.checks import UNSUPPORTED_PLATFORMS

        ecs = self.cloud.ecs
        bakes: dict[str, dict[str, Any]] = {}
        for event in self.bakery_events():
            data = event.get("data") or {}
            # Anyone may PutEvents onto the bus: a foreign or malformed event (data not an object, no
            # imageId) is not Bakery's and used to crash the report (AttributeError / KeyError).
            if not isinstance(data, dict) or event.get("source") != "bakery":
                continue
            bake_id = data.get("bakeId")
            if not bake_id or not isinstance(bake_id, str):
                continue
            bake = bakes.setdefault(bake_id, {"bakeId": bake_id, "instanceId": data.get("instanceId"), "state": "in-flight",
                                              "imageId": None, "family": None, "attempts": 0, "reason": None})  # fmt: skip
            bake["instanceId"] = bake["instanceId"] or data.get("instanceId")
            kind = event.get("type")
            image_id = data.get("imageId") if isinstance(data.get("imageId"), str) else None
            if kind in ("bakery:Image:CreationStarted", "bakery:Image:Repaired") and image_id:
                # A repaired image put back together with its data disks is the same repair, not an attempt.
                if data.get("reassembledFrom") in bake.setdefault("_images", set()):
                    bake["_images"].discard(data["reassembledFrom"])
                bake["attempts"] = len({*bake["_images"], image_id})
                bake["_images"].add(image_id)
                bake["family"] = bake["family"] or data.get("family") or None
            elif kind == "bakery:Image:Ready" and image_id:
                bake.update(state="ready", imageId=image_id, family=data.get("family") or None, reason=None)
                # Ready carries the bake's own count (CreateImage attempts + repairs): counting only the
                # CreationStarted/Repaired events seen undercounts when one of them was lost in transit.
                counted = data.get("attempts")
                bake["attempts"] = max(bake["attempts"], counted if isinstance(counted, int) else 0)
            elif kind == "bakery:Bake:Failed":
                bake.update(state="failed", reason=data.get("reason"), message=data.get("message"))
            if data.get("adopted") and isinstance(data.get("originalImageId"), str):
                bake["originalImageId"] = data["originalImageId"]
            if kind == "bakery:Image:Adopted":
                bake["originalName"] = data.get("name") if isinstance(data.get("name"), str) else None
                bake["originalFamily"] = data.get("family") if isinstance(data.get("family"), str) else None
        # Events can be lost (that is what the sweep is for): fill in what the tags know.
        for image in self.cloud.ecs.images.values():
            bake_id = image.tags.get(tags.BAKE_ID)
            # history from before the run (an image adopted from it is followed by its bake's events)
            if not bake_id or (image.image_id in self.initial_images and bake_id not in bakes):
                continue
            bake = bakes.setdefault(bake_id, {"bakeId": bake_id, "instanceId": image.tags.get(tags.SOURCE_INSTANCE),
                                              "state": "in-flight", "imageId": None, "family": None, "attempts": 0,
                                              "reason": None})  # fmt: skip
            # A bake first seen through an event that does not name the instance (Image:Repaired) learns it here.
            bake["instanceId"] = bake["instanceId"] or image.tags.get(tags.SOURCE_INSTANCE)
            if image.tags.get(tags.ADOPTED):
                bake["originalImageId"] = image.tags[tags.ADOPTED]
            if image.tags.get(tags.STATE) == tags.READY and bake["state"] != "ready":
                bake.update(state="ready", imageId=image.image_id, family=image.family or None,
                            attempts=int(image.tags.get(tags.ATTEMPT, "1")) + int(image.tags.get(tags.REPAIRS, "0")))  # fmt: skip
        for instance in self.cloud.ecs.instances.values():
            bake_id = instance.tags.get(tags.BAKE_ID)
            if bake_id and bake_id not in bakes:
                bakes[bake_id] = {"bakeId": bake_id, "instanceId": instance.instance_id, "state": "in-flight",
                                  "imageId": None, "family": instance.tags.get(tags.FAMILY), "attempts": 0, "reason": None}  # fmt: skip
            # A bake whose every event was lost in transit still left its result on the instance (the
            # durable record): a refusal before the claim (tag-limit...) has no other trace.
            result = (instance.tags.get(tags.LAST_IMAGE), instance.tags.get(tags.LAST_ERROR))
            if bake_id or result == self.initial_results.get(instance.instance_id, (None, None)):
                continue
            image_id, error = result
            # Released (no bake-id) yet a row says in flight: its Ready/Failed event was lost; no image of it is
            # in flight either, or its bake-id would still be on the instance.
            unended = [b for b in bakes.values() if b.get("instanceId") == instance.instance_id
                       and b["state"] == "in-flight"]  # fmt: skip
            for bake in unended:
                bake.update(state="failed" if error else "ready", reason=error,
                            message="outcome read from the instance's bakery:last-* tag (its event was lost)")  # fmt: skip
                if not error and not bake["imageId"]:
                    bake["imageId"] = image_id
            if not any(b.get("instanceId") == instance.instance_id for b in bakes.values()):
                bakes[f"unannounced:{instance.instance_id}"] = {
                    "bakeId": f"unannounced:{instance.instance_id}", "instanceId": instance.instance_id,
                    "state": "failed" if error else "ready", "imageId": None if error else image_id,
                    "family": instance.tags.get(tags.FAMILY), "attempts": 0, "reason": error,
                    "message": "known from the instance's bakery:last-* tag only (its events were lost)"}  # fmt: skip
        # A snapshot bake has no instance to carry its result: while it lives, an image of it is in flight; with
        # none left (and none ready, found above) it ended failed, its Bake:Failed lost in transit.
        live_bakes = {
            i.tags.get(tags.BAKE_ID) for i in ecs.images.values() if i.tags.get(tags.STATE) in state.IN_FLIGHT_IMAGE
        }
        for bake in bakes.values():
            made_images = bake["attempts"] > 0  # else it may be a request that never reached Bakery: unfinished
            if (
                bake["state"] == "in-flight"
                and not bake.get("instanceId")
                and made_images
                and bake["bakeId"] not in live_bakes
            ):
                bake.update(state="failed", reason=bake.get("reason") or "unannounced",
                            message="no image of this snapshot bake is left and none is ready: it ended, its "
                            "Bake:Failed lost in transit")  # fmt: skip
        for bake in bakes.values():
            bake.pop("_images", None)
            bake["sourceDisks"] = self._source_disks(bake)
            made = self.created_images_as.get(bake.get("originalImageId") or "")
            if made:  # an image an action made: what it was made as (its Adopted event may have been lost)
                bake.setdefault("originalName", made["name"])
                bake.setdefault("originalFamily", made["family"])
        now = self.cloud.clock.now
        summary = self.runtime.summary()
        retention: dict[str, list[str]] = {"deleted": [], "deprecated": []}
        for event in self.bakery_events():
            data = event.get("data")
            if event.get("type") == "bakery:Family:RetentionApplied" and isinstance(data, dict):
                for key in retention:
                    retention[key] += [i for i in data.get(key) or [] if isinstance(i, str)]
        return {
            "bakes": list(bakes.values()),
            "images": [
                {
                    "imageId": i.image_id,
                    "name": i.name,
                    "status": i.status,
                    "family": i.family,
                    "tags": dict(i.tags),
                    "check": {
                        "status": i.detection_status,
                        "failing": [x["Name"] for x in i.detection_items if x.get("RiskLevel")],
                        # ECS runs no check on an encrypted image or an unsupported OS: the one case
                        # BAKERY_UNCHECKED_IMAGE_POLICY=promote may put an unchecked image in a family.
                        "supported": not i.encrypted and i.platform not in UNSUPPORTED_PLATFORMS,
                    },
                    "disks": [
                        {"device": m.device, "type": m.disk_type, "sizeGiB": m.size, "snapshotId": m.snapshot_id}
                        for m in i.mappings
                    ],
                }
                for i in ecs.images.values()
                if i.owner_alias == "self"
            ],
            "snapshots": [
                {
                    "snapshotId": s.snapshot_id,
                    "status": s.status,
                    "usage": ecs.snapshot_usage(s),
                    "sizeGiB": s.source_size,
                }
                for s in ecs.snapshots.values()
            ],
            "instances": [
                {"instanceId": i.instance_id, "status": i.status, "tags": dict(i.tags)} for i in ecs.instances.values()
            ],
            "api_calls": dict(self.cloud.calls),
            "simulated_seconds": round(now - self.cloud.clock.start, 3),
            "deliveries": {
                "count": summary["deliveries"],
                "retries": summary["retries"],
                "dead_letters": summary["dead_letters"],
                "errors": summary["errors"],
            },
            "deadLetters": [_dead_letter_row(d) for d in self.runtime.dead_letters],
            "inFlight": [list(item) for item in self._in_flight()],
            "retention": retention,
            "triggers": self._triggers(),
            "outcome": self.outcome,
            "settings": self.settings(),
            "baseline": self._baseline(),
        }

    def settings(self) -> dict[str, str]:
        """The BAKERY_* settings the deployed functions run with (template defaults, --parameter, env)."""
        merged: dict[str, str] = {}
        for fn in self.template.functions.values():
            merged.update({k: str(v) for k, v in fn.env.items() if k.startswith("BAKERY_") and k not in merged})
        return {k: merged[k] for k in sorted(merged) if k not in ("BAKERY_CLOUD_ENDPOINT", "BAKERY_MANDATORY_TAGS")}

    def _baseline(self) -> dict[str, Any]:
        return {
            "images": sorted(self.initial_images),
            "operatorImages": sorted(self.created_images),
            "snapshots": sorted(self.initial_snapshots),
            "instances": {
                k: {"status": v, "disks": self.initial_disks.get(k, [])} for k, v in self.initial_status.items()
            },
        }

    def _triggers(self) -> list[dict[str, Any]]:
        """Instances the scenario asked to bake: tagged bakery:bake=true before the run or by an action."""
        found: list[dict[str, Any]] = [{"instanceId": i, "at": None} for i in self.initial_triggers]
        for action in self.scenario.actions:
            tag = action.get("tag") if isinstance(action, dict) else None
            if (
                isinstance(tag, dict)
                and isinstance(tag.get("tags"), dict)
                and tags.truthy(str(tag["tags"].get(tags.TRIGGER, "")))
            ):
                found.append({"instanceId": tag.get("instance"), "at": action.get("at", 0)})
        return found

    def _source_disks(self, bake: dict[str, Any]) -> list[dict[str, Any]]:
        """What the bake imaged: its instance's disks at the start of the run, or its source snapshots, or (an
        adopted image) the original's disks."""
        original = bake.get("originalImageId")
        if original:
            known = self.created_images.get(original) or self._seen_disks.get(original)
            if known is None and original in self.cloud.ecs.images:
                known = [mapping_row(d) for d in self.cloud.ecs.images[original].mappings]
            return [dict(d) for d in known or []]
        snapshot_ids: list[str] = []
        for image in self.cloud.ecs.images.values():
            if image.tags.get(tags.BAKE_ID) == bake["bakeId"]:
                snapshot_ids = snapshot_ids or tags.unpack_snapshot_ids(image.tags)
        if snapshot_ids:
            rows = []
            for n, snapshot_id in enumerate(snapshot_ids):
                snapshot = self.cloud.ecs.snapshots.get(snapshot_id)
                rows.append({"snapshotId": snapshot_id, "type": "system" if n == 0 else "data",
                             "sizeGiB": snapshot.source_size if snapshot else None})  # fmt: skip
            return rows
        return [dict(d) for d in self.initial_disks.get(bake.get("instanceId") or "", [])]

    def invariant_violations(self, report: dict[str, Any] | None = None) -> list[str]:
        """The safety promises, checked against the final state: each violation is one readable line."""
        report = report or self.report()
        # The baseline as it stands now: a test may add to it (the operator's own snapshots) after deploying.
        return broken_promises({**report, "baseline": self._baseline()})

    def problems(self, report: dict[str, Any] | None = None) -> list[str]:
        """Everything wrong with a finished run, one readable line each: see `find_problems`."""
        report = report or self.report()
        return find_problems({**report, "baseline": self._baseline()})


# -- the verdict: pure functions of a report ---------------------------------------------------------------


def _disk_row(disk: Any) -> dict[str, Any]:
    return {"diskId": disk.disk_id, "device": disk.device, "type": disk.disk_type, "category": disk.category,
            "sizeGiB": disk.size}  # fmt: skip


def _dead_letter_row(letter: Any) -> dict[str, Any]:
    event = letter.event if isinstance(letter.event, dict) else {}
    return {"function": letter.function, "eventType": event.get("type", "?"), "eventId": event.get("id", "?"),
            "attempts": letter.attempts, "reason": letter.reason, "error": letter.error,
            "simulatedTime": letter.simulated_time}  # fmt: skip


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
