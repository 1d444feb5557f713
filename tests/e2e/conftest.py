"""End-to-end chains: a scenario region + Bakery deployed from template.yml, driven by operator tags.

`bake(scenario)` builds a `LocalRun` (local cloud + the local FC runtime reading template.yml), applies the
scenario's `actions`, runs until idle and returns a `Baked` with the report. Every run is checked against
the safety promises (`LocalRun.invariant_violations`) right after it ends and again at teardown, so no
e2e test can pass while Bakery duplicated an image, orphaned an image or snapshot, left an instance
stopped, or put an image that failed its check into a family.

The `Baked` helpers read the final state through the real SDK clients (`run.cloud_env.ecs`), the way an
operator would, rather than through the emulator's internals.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as m

from bakery import tags
from bakery_tools.local import LocalRun
from localcloud import Scenario

ALL_IMAGE_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"
# ECS/OOS actions that change something. TagResources/UntagResources are listed apart: Bakery keeps its
# state in tags, so they appear even on bakes refused before anything else is touched.
MUTATING_ACTIONS = {
    "CreateImage", "DeleteImage", "ModifyImageAttribute", "ModifyImageSharePermission", "CreateSnapshot",
    "DeleteSnapshot", "StopInstance", "StartInstance", "RunCommand", "StartExecution", "CancelExecution",
}  # fmt: skip
TAG_ACTIONS = {"TagResources", "UntagResources"}


def trigger(instance_id: str, at: float = 0, **extra: str) -> dict[str, Any]:
    """The scenario action an operator performs: tag `bakery:bake=true` (plus e.g. family="web")."""
    values = {tags.TRIGGER: "true", **{f"bakery:{k.replace('_', '-')}": v for k, v in extra.items()}}
    return {"at": at, "tag": {"instance": instance_id, "tags": values}}


@dataclass
class Baked:
    """A finished run: the report, plus what the real SDK says about the region now."""

    run: LocalRun
    report: dict[str, Any]

    # -- the report ----------------------------------------------------------------------------

    def bake_of(self, instance_id: str) -> dict[str, Any]:
        """The one bake reported for `instance_id` (fails if there are none or several)."""
        found = [b for b in self.report["bakes"] if b["instanceId"] == instance_id]
        assert len(found) == 1, f"expected one bake for {instance_id}, got {found}"
        return found[0]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """Bakery's own events of one type, as published on the custom bus."""
        return [e for e in self.run.bakery_events() if e.get("type") == event_type]

    def calls(self, action: str) -> int:
        return self.report["api_calls"].get(action, 0)

    def mutations(self) -> set[str]:
        """Which mutating ECS/OOS actions were called at all during the run."""
        return {a for a, n in self.report["api_calls"].items() if n and a in MUTATING_ACTIONS}

    def deliveries(self, *, function: str | None = None, event_type: str | None = None) -> list[Any]:
        return [
            d
            for d in self.run.runtime.deliveries
            if (function is None or d.function == function) and (event_type is None or d.event_type == event_type)
        ]

    def state_changes(self, instance_id: str) -> list[str]:
        """The instance's statuses as ECS announced them on the default bus (ecs:Instance:StateChange).

        Complete even where sampling is not: a stop that ends the bake starts the instance again in
        the same instant it reports Stopped.
        """
        return [
            e.event["data"]["state"]
            for e in self.run.cloud.events.read(0, "default")
            if e.event.get("type") == "ecs:Instance:StateChange" and e.event["data"].get("resourceId") == instance_id
        ]

    # -- through the SDK -------------------------------------------------------------------------

    @property
    def ecs(self) -> Any:
        return self.run.cloud_env.ecs

    @property
    def region(self) -> str:
        return self.run.cloud.region

    def instance(self, instance_id: str) -> Any:
        body = self.ecs.describe_instances(
            m.DescribeInstancesRequest(region_id=self.region, instance_ids=json.dumps([instance_id]))
        ).body
        (found,) = body.instances.instance
        return found

    def instance_tags(self, instance_id: str) -> dict[str, str]:
        found = self.instance(instance_id)
        return {t.tag_key: t.tag_value or "" for t in (found.tags.tag if found.tags and found.tags.tag else [])}

    def status(self, instance_id: str) -> str:
        return self.instance(instance_id).status

    def images(self, **filters: Any) -> list[Any]:
        """Own images in every status (DescribeImages defaults to Available only)."""
        result, page = [], 1
        while True:
            body = self.ecs.describe_images(
                m.DescribeImagesRequest(
                    region_id=self.region,
                    image_owner_alias="self",
                    status=ALL_IMAGE_STATUSES,
                    page_size=100,
                    page_number=page,
                    **filters,
                )
            ).body
            batch = body.images.image if body.images and body.images.image else []
            result += batch
            if not batch or page * 100 >= (body.total_count or 0):
                return result
            page += 1

    def image(self, image_id: str) -> Any | None:
        found = self.images(image_id=image_id)
        return found[0] if found else None

    @staticmethod
    def image_tags(image: Any) -> dict[str, str]:
        return {t.tag_key: t.tag_value or "" for t in (image.tags.tag if image.tags and image.tags.tag else [])}

    @staticmethod
    def failing_check_items(image: Any) -> list[str]:
        detection = image.detection_options
        items = detection.items.item if detection and detection.items and detection.items.item else []
        return [i.name for i in items if i.risk_level]

    @staticmethod
    def snapshot_ids_of(image: Any) -> set[str]:
        mappings = image.disk_device_mappings.disk_device_mapping if image.disk_device_mappings else []
        return {mp.snapshot_id for mp in mappings or [] if mp.snapshot_id}

    def snapshot_ids(self) -> set[str]:
        result: set[str] = set()
        page = 1
        while True:
            body = self.ecs.describe_snapshots(
                m.DescribeSnapshotsRequest(region_id=self.region, page_size=100, page_number=page)
            ).body
            batch = body.snapshots.snapshot if body.snapshots and body.snapshots.snapshot else []
            result |= {s.snapshot_id for s in batch}
            if not batch or page * 100 >= (body.total_count or 0):
                return result
            page += 1

    def newest_in_family(self, family: str) -> str | None:
        """What a launch template resolving `family` would boot: DescribeImageFromFamily."""
        body = self.ecs.describe_image_from_family(
            m.DescribeImageFromFamilyRequest(region_id=self.region, image_family=family)
        ).body
        return body.image.image_id if body.image and body.image.image_id else None

    def assert_released(self, instance_id: str) -> dict[str, str]:
        """Bakery's work tags are gone from the instance (trigger included); returns its remaining tags."""
        current = self.instance_tags(instance_id)
        left = sorted(set(current) & set(tags.INSTANCE_WORK_TAGS))
        assert left == [], f"{instance_id} still carries Bakery work tags {left}: {current}"
        return current


def assert_invariants(run: LocalRun, report: dict[str, Any] | None = None) -> None:
    violations = run.invariant_violations(report)
    assert violations == [], "safety promises broken:\n" + "\n".join(violations) + "\n\n" + run.runtime.trace()


@pytest.fixture
def bake() -> Iterator[Callable[..., Baked]]:
    """bake(scenario_mapping, *, env=, parameters=, before_run=, on_step=, step_seconds=, settle_seconds=) → Baked.

    - env / parameters: extra function env vars / template parameters (e.g. BAKERY_MAX_REPAIRS, MandatoryTags);
    - before_run(run): called after deployment, before the scenario's actions (inject events, patch faults);
    - on_step(run) / step_seconds: observe the region every `step_seconds` of simulated time while it runs;
    - settle_seconds: keep the virtual clock (timers, sweep) running this long after the run went idle.
    The safety invariants are asserted on every run, whatever the test asserts besides.
    """
    runs: list[LocalRun] = []
    with ExitStack() as stack:

        def make(
            scenario: dict[str, Any],
            *,
            env: dict[str, str] | None = None,
            parameters: dict[str, str] | None = None,
            before_run: Callable[[LocalRun], None] | None = None,
            on_step: Callable[[LocalRun], None] | None = None,
            step_seconds: float = 60.0,
            settle_seconds: float = 0.0,
        ) -> Baked:
            run = LocalRun(Scenario.from_mapping(scenario), parameters=parameters or {}, env=env or {})
            stack.callback(run.close)
            runs.append(run)
            if before_run is not None:
                before_run(run)
            report = run.run(on_step=on_step, step_seconds=step_seconds)
            if settle_seconds:
                run.runtime.run_until(run.cloud.clock.now + settle_seconds)
                report = run.report()
            assert_invariants(run, report)
            return Baked(run, report)

        yield make
        for run in runs:  # a test that drove a run further must not have broken a promise either
            assert_invariants(run)


def states(report: dict[str, Any]) -> Counter[str]:
    return Counter(b["state"] for b in report["bakes"])
