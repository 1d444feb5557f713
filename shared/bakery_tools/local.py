"""Local runs: the local cloud + the local FC runtime from template.yml + a scenario's operator actions.

Dev tooling only (imports localcloud, which is never deployed): `bakery local run`, `bakery demo`,
`bakery invoke` and the end-to-end tests all go through `LocalRun`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakery import state, tags
from bakery.errors import is_throttling

LOCAL_PARAMETERS = {
    "CodeBucket": "local-code",
    "RepairVSwitchId": "vsw-local",
    "RepairSecurityGroupId": "sg-local",
}
OPERATOR_KEY = "LTAIoperator"  # the operator's own access key: ActionTrail shows who tagged


def default_template() -> Path:
    here = Path.cwd() / "template.yml"
    if here.exists():
        return here
    source_tree = Path(__file__).resolve().parents[2] / "template.yml"
    if source_tree.exists():
        return source_tree
    raise FileNotFoundError("no template.yml here: run from the project root or pass --template PATH")


@dataclass
class LocalRun:
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
        from bakery_tools.deploy.buses import ensure_buses

        ensure_buses(self.cloud_env.eventbridge, self.template.buses, description="Bakery (local run)")
        self.runtime = LocalRuntime(
            self.cloud, self.template, endpoint=self.cloud_env.endpoint, seed=self.scenario.seed
        )
        self.runtime.start()
        self._stack.callback(self.runtime.stop)
        self.cloud.fc.attach(self.runtime)  # FC's InvokeFunction API reaches these functions too
        self._stack.callback(self.cloud.fc.detach, self.runtime)
        self.operator = EcsClient(sdk_config(self.cloud_env.endpoint, self.cloud.region, access_key_id=OPERATOR_KEY))
        self.initial_status = {i.instance_id: i.status for i in self.cloud.ecs.instances.values()}
        self.initial_images = {i for i, img in self.cloud.ecs.images.items() if img.owner_alias == "self"}
        self.initial_snapshots = set(self.cloud.ecs.snapshots)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> LocalRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operator actions --------------------------------------------------------------------------

    def tag(self, instance_id: str, tag_values: dict[str, str]) -> None:
        """What a person does in the console or CLI: TagResources on the instance."""
        from alibabacloud_ecs20140526 import models as m
        from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

        request = m.TagResourcesRequest(
            region_id=self.cloud.region, resource_type="instance", resource_id=[instance_id],
            tag=[m.TagResourcesRequestTag(key=k, value=str(v)) for k, v in tag_values.items()])  # fmt: skip
        for attempt in range(10):  # a person retries a throttled or failed console call a few seconds later
            try:
                self.operator.tag_resources(request)
                return
            except AlibabaCloudException as exc:
                transient = is_throttling(exc.code or "") or (getattr(exc, "status_code", 0) or 0) >= 500
                if not transient or attempt == 9:
                    message = (exc.data or {}).get("Message", str(exc)) if isinstance(exc.data, dict) else str(exc)
                    raise ValueError(f"scenario action: tagging {instance_id} failed: {exc.code}: {message}") from None
                self.runtime.run_until(self.cloud.clock.now + 1)

    def apply(self, action: dict[str, Any]) -> None:
        if "tag" in action:
            spec = action["tag"]
            self.tag(spec["instance"], spec["tags"])
        else:
            raise ValueError(f"unknown scenario action {action!r}: supported: {{at: SECONDS, tag: {{instance, tags}}}}")

    def run(self, on_step: Callable[[LocalRun], None] | None = None, step_seconds: float = 60.0,
            patience_seconds: float = 6 * 3600) -> dict[str, Any]:  # fmt: skip
        """Apply the scenario's actions at their times, then run until idle and no bake is in flight
        (or `patience_seconds` of simulated time pass without progress). Returns the report."""
        start = self.cloud.clock.now
        for action in self._validated_actions():
            self.runtime.run_until(start + float(action.get("at", 0)))
            self.apply(action)
        stalled_since, last_state = self.cloud.clock.now, self._in_flight()
        while True:
            step_end = self.cloud.clock.now + step_seconds
            result = self.runtime.run_until_idle(max_simulated_seconds=step_seconds if on_step else 30 * 86400)
            if on_step and result["stopped"] == "time-limit":
                # run_until_idle stops *before* a timer beyond the step without moving the clock, so the
                # next step started from the same instant and, whenever the next timer (e.g. the 5-minute
                # sweep) was further away than step_seconds, looped forever. Close the step at its end.
                self.runtime.run_until(step_end)
            if on_step:
                on_step(self)
            if result["stopped"] == "time-limit" and on_step:
                continue
            # Idle by events is not done while a bake is in flight: a throttled sweep publishes nothing,
            # yet the next one finishes the bake. Keep the clock going, as FC's timer would.
            in_flight = self._in_flight()
            if not in_flight:
                break
            if in_flight != last_state:
                stalled_since, last_state = self.cloud.clock.now, in_flight
            elif self.cloud.clock.now - stalled_since >= patience_seconds:
                break  # reported as UNFINISHED
            self.runtime.run_until(self.cloud.clock.now + step_seconds)
            if on_step:
                on_step(self)
        return self.report()

    def _validated_actions(self) -> list[dict[str, Any]]:
        actions = []
        for index, action in enumerate(self.scenario.actions):
            where = f"actions[{index}]"
            tag = action.get("tag") if isinstance(action, dict) else None
            if not isinstance(tag, dict) or set(action) - {"at", "tag"}:
                raise ValueError(
                    f"{where}: an action is {{at: SECONDS, tag: {{instance: i-..., tags: {{...}}}}}}, got {action!r}"
                )
            at = action.get("at", 0)
            if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
                raise ValueError(f"{where}.at must be a number of seconds >= 0, got {at!r}")
            if not isinstance(tag.get("instance"), str) or not isinstance(tag.get("tags"), dict) or not tag["tags"]:
                raise ValueError(
                    f"{where}.tag needs instance: ONE instance id (a string) and tags: a non-empty mapping"
                )
            actions.append(action)
        return sorted(actions, key=lambda a: float(a.get("at", 0)))

    def _in_flight(self) -> tuple[tuple[str, str], ...]:
        """Bakes not finished yet, from the tags on the cloud's resources (events may have been lost)."""
        ecs = self.cloud.ecs
        claimed = [
            (i.instance_id, i.tags.get(tags.STATE, "")) for i in ecs.instances.values() if tags.BAKE_ID in i.tags
        ]
        waiting = [(i.instance_id, "trigger") for i in ecs.instances.values()
                   if tags.truthy(i.tags.get(tags.TRIGGER)) and tags.BAKE_ID not in i.tags]  # fmt: skip
        live = state.IN_FLIGHT_IMAGE
        images = [(i.image_id, i.tags[tags.STATE]) for i in ecs.images.values() if i.tags.get(tags.STATE) in live]
        return tuple(sorted(claimed + waiting + images))

    # -- what happened -----------------------------------------------------------------------------

    def bakery_events(self) -> list[dict[str, Any]]:
        return [e.event for e in self.cloud.events.read(0, "bakery")]

    def report(self) -> dict[str, Any]:
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
                bake["attempts"] = len({*bake.setdefault("_images", set()), image_id})
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
        # Events can be lost (that is what the sweep is for): fill in what the tags know.
        for image in self.cloud.ecs.images.values():
            bake_id = image.tags.get(tags.BAKE_ID)
            if not bake_id or image.image_id in self.initial_images:  # history from before the run
                continue
            bake = bakes.setdefault(bake_id, {"bakeId": bake_id, "instanceId": image.tags.get(tags.SOURCE_INSTANCE),
                                              "state": "in-flight", "imageId": None, "family": None, "attempts": 0,
                                              "reason": None})  # fmt: skip
            if image.tags.get(tags.STATE) == tags.READY and bake["state"] != "ready":
                bake.update(state="ready", imageId=image.image_id, family=image.family or None,
                            attempts=int(image.tags.get(tags.ATTEMPT, "1")) + int(image.tags.get(tags.REPAIRS, "0")))  # fmt: skip
        for instance in self.cloud.ecs.instances.values():
            bake_id = instance.tags.get(tags.BAKE_ID)
            if bake_id and bake_id not in bakes:
                bakes[bake_id] = {"bakeId": bake_id, "instanceId": instance.instance_id, "state": "in-flight",
                                  "imageId": None, "family": instance.tags.get(tags.FAMILY), "attempts": 0, "reason": None}  # fmt: skip
        for bake in bakes.values():
            bake.pop("_images", None)
        now = self.cloud.clock.now
        summary = self.runtime.summary()
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
                    },
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
        }

    def invariant_violations(self, report: dict[str, Any] | None = None) -> list[str]:
        """The safety promises, checked against the final state: each violation is one readable line."""
        report = report or self.report()
        problems: list[str] = []
        images = {i["imageId"]: i for i in report["images"]}
        new_images = {k: v for k, v in images.items() if k not in self.initial_images}
        for bake in report["bakes"]:
            mine = [i for i in new_images.values() if i["tags"].get(tags.BAKE_ID) == bake["bakeId"]]
            ready = [i for i in mine if i["tags"].get(tags.STATE) == tags.READY]
            if len(ready) > 1:
                problems.append(f"bake {bake['bakeId']}: {len(ready)} ready images (duplicate)")
            kept = [
                i for i in mine if not _retired_by_policy(i)
            ]  # BAKERY_RETIRE_POLICY=deprecate keeps them, Deprecated
            if bake["state"] == "ready" and [i["imageId"] for i in kept] != [bake["imageId"]]:
                problems.append(
                    f"bake {bake['bakeId']}: images left besides the promoted one: {[i['imageId'] for i in mine]}"
                )
            if bake["state"] == "failed" and mine:
                problems.append(f"bake {bake['bakeId']} failed but left images {[i['imageId'] for i in mine]}")
        for image in new_images.values():
            if image["tags"].get(tags.STATE) != tags.READY and not _retired_by_policy(image):
                problems.append(f"orphaned image {image['imageId']} (state {image['tags'].get(tags.STATE)})")
            if image["family"] and (image["check"]["status"] != "Finished" or image["check"]["failing"]):
                problems.append(f"image {image['imageId']} is in family {image['family']} without a passed check")
        used = {s for i in self.cloud.ecs.images.values() for s in (m.snapshot_id for m in i.mappings)}
        for snapshot in report["snapshots"]:
            if snapshot["snapshotId"] not in used and snapshot["snapshotId"] not in self.initial_snapshots:
                problems.append(f"orphaned snapshot {snapshot['snapshotId']} ({snapshot['status']})")
        for instance in report["instances"]:
            if self.initial_status.get(instance["instanceId"]) == "Running" and instance["status"] != "Running":
                problems.append(f"instance {instance['instanceId']} was Running and is now {instance['status']}")
            if tags.STOPPED_BY_BAKERY in instance["tags"]:
                problems.append(f"instance {instance['instanceId']} still carries {tags.STOPPED_BY_BAKERY}")
        return problems


def _retired_by_policy(image: dict[str, Any]) -> bool:
    return image["tags"].get(tags.STATE) == tags.RETIRED and image["status"] == "Deprecated" and not image["family"]


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
