"""Emulated ECS (2014-05-26): instances, disks, images (created with the image check), snapshots, tags,
Cloud Assistant and launch templates. One mixin per resource family, moto style; state lives on EcsService."""

from __future__ import annotations

from typing import Any

from localcloud.errors import ApiError, missing_parameter
from localcloud.guest.pool import KeyedRunner
from localcloud.guest.sandbox import GuestSandbox
from localcloud.services.base import Service
from localcloud.services.ecs.assistant import AssistantMixin, Invocation
from localcloud.services.ecs.image_creation import ImageCreationMixin
from localcloud.services.ecs.images import ImagesMixin
from localcloud.services.ecs.index import ImageStore
from localcloud.services.ecs.instances import InstancesMixin
from localcloud.services.ecs.launch_templates import LaunchTemplate, LaunchTemplatesMixin
from localcloud.services.ecs.models import Disk, Instance, Snapshot
from localcloud.services.ecs.snapshots import SnapshotsMixin
from localcloud.services.ecs.tags import TagsMixin
from localcloud.wire import Params


class EcsService(
    InstancesMixin,
    ImagesMixin,
    ImageCreationMixin,
    SnapshotsMixin,
    TagsMixin,
    AssistantMixin,
    LaunchTemplatesMixin,
    Service,
):
    name = "ecs"
    product = "Ecs"
    host = "ecs.aliyuncs.com"

    def __init__(self, cloud: Any) -> None:
        super().__init__(cloud)
        self.instances: dict[str, Instance] = {}
        self.disks: dict[str, Disk] = {}
        self.images: ImageStore = ImageStore()  # indexed by family, name, owner and tag: index.py
        self.snapshots: dict[str, Snapshot] = {}
        self.invocations: dict[str, Invocation] = {}
        self.client_tokens: dict[tuple[str, str], tuple[str, str]] = {}
        self.sandboxes: dict[str, GuestSandbox] = {}
        self.script_runner: KeyedRunner | None = None  # Cloud Assistant's scripts (assistant.py)
        self.launch_templates: dict[str, LaunchTemplate] = {}
        self._load_public_images()

    def load(self, specs: Any) -> None:
        """Instances, then the scenario's launch templates (their versions name images loaded before)."""
        super().load(specs)
        self.load_launch_templates(self.cloud.scenario.launch_templates)

    def _region(self, p: Params) -> str:
        """RegionId is required by most ECS APIs; the local cloud serves exactly one region."""
        region = p.str("RegionId")
        if not region:
            raise missing_parameter("RegionId")
        if region != self.cloud.region:
            raise ApiError(
                "InvalidRegionId.NotFound",
                f"The specified RegionId {region!r} does not exist here: this local cloud serves {self.cloud.region}.",
                404,
            )
        return region

    def close(self) -> None:
        if self.script_runner is not None:  # scripts still running use their sandboxes
            self.script_runner.shutdown()
            self.script_runner = None
        for sandbox in self.sandboxes.values():
            sandbox.cleanup()
        self.sandboxes.clear()

    def state(self) -> dict[str, Any]:
        region, account, now = self.cloud.region, self.cloud.account_id, self.cloud.clock.now
        in_use = self.images_in_use()
        return {
            "instances": [i.to_api(region, self.instance_disks(i)) for i in self.instances.values()],
            "disks": [d.to_api(region) for d in self.disks.values()],
            "images": [
                i.to_api(region, account, now, self.image_usage(i, in_use))
                for i in self.images.values()
                if i.owner_alias == "self"
            ],
            "snapshots": [s.to_api(region, now, self.snapshot_usage(s)) for s in self.snapshots.values()],
            "launch_templates": [
                {**t.to_api(), "Versions": [t.version_to_api(v, True) for v in t.versions]}
                for t in self.launch_templates.values()
            ],
        }
