"""The bake state machine: preflight → (stop) → CreateImage → check → (repair → check)* → promote.

Every step is safe to run twice and concurrently with the sweep: it re-reads the resources, acts only
when their tags say the bake is in the state the step expects, and uses ClientTokens derived from the
bake id so a retried call never makes a second image or execution.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from bakery import events, tags
from bakery.adapters.ecs import Ecs
from bakery.adapters.eventbridge import EventBus
from bakery.adapters.oos import Oos
from bakery.config import Settings
from bakery.errors import BakeFailure, CloudError, RetryableError
from bakery.events import BakeryEvent
from bakery.log import bound, get_logger
from bakery.model import Image, Instance
from bakery.preflight.report import parse_report, preflight_script

log = get_logger(__name__)

TRANSITIONAL = ("Pending", "Starting", "Stopping")
LOCAL_DISK_TYPE = re.compile(r"^ecs\.[id]\d")  # i/d-series: local SSD/HDD, never imaged
# Check item → ACS-ECS-RepairImage repairItems value (alibaba-apis.md §3.4).
REPAIR_ITEM_FOR_CHECK = {
    "Virtio": "virtio", "Nvme": "nvme", "Fstab": "fstab", "Grub": "grub", "Dhcp": "dhcp", "Selinux": "selinux",
    "CloudAssistant": "assist", "SecurityCenterAgent": "aegis", "CloudInit": "cloudinit", "OnlineResizeFS": "growpart",
}  # fmt: skip
BASE_IMAGE_FOR_ARCH = {
    "x86_64": "aliyun_3_x64_20G_alibase_20230727.vhd",
    "arm64": "aliyun_3_arm64_20G_alibase_20230731.vhd",
}
PREFLIGHT_COMMAND = "bakery-preflight"
LIVE_IMAGE_STATES = (tags.CREATING, tags.CHECKING, tags.CHECK_FAILED, tags.REPAIRING)
_INSTANCE_ID = re.compile(r"^i-[\w-]+$")
_IMAGE_NAME = re.compile(r"^[A-Za-z\u4e00-\u9fa5][A-Za-z0-9\u4e00-\u9fa5:_.\-]{1,127}$")
_RESERVED_NAME_PREFIXES = ("aliyun", "acs:", "http://", "https://")


def bake_id_for(trigger: str, instance_id: str) -> str:
    """A bake id derived from what triggered it: the same event delivered twice is the same bake."""
    return "b-" + hashlib.sha256(f"{trigger}:{instance_id}".encode()).hexdigest()[:16]


def name_problem(kind: str, value: str, max_length: int = 128) -> str | None:
    """Why `value` cannot be an image family / image name (prefix), or None (alibaba-apis.md §2.2)."""
    if not _IMAGE_NAME.match(value) or len(value) > max_length or value.lower().startswith(_RESERVED_NAME_PREFIXES):
        return (f"{kind} {value!r} is not valid: 2-{max_length} characters, starting with a letter, then letters, "
                "digits, ':', '_', '-' or '.', and not starting with aliyun, acs:, http:// or https://")  # fmt: skip
    return None


def preflight_script_for(settings: Settings, skip_rules: list[str]) -> str:
    """The shipped preflight script, with its parameters set as the environment it reads."""
    prelude = f"export MIN_FREE_MB={settings.min_free_mb}\nexport SKIP_RULES='{' '.join(sorted(skip_rules))}'\n"
    return prelude + preflight_script()


@dataclass
class Pipeline:
    settings: Settings
    ecs: Ecs
    oos: Oos
    bus: EventBus

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        return cls(settings, Ecs(settings), Oos(settings), EventBus(settings))

    # == bake: from the trigger tag to CreateImage =================================================

    def on_tagged(self, event: events.CloudEvent) -> None:
        """ActionTrail TagResources: start a bake for each instance that got `bakery:bake=true`."""
        call = events.TagCall.parse(event.data, tags.TRIGGER, tags.truthy)
        if call.resource_type not in (None, "instance") or call.trigger is False:
            log.debug("not a bake trigger (Bakery's own tag writes land here too)", event_id=event.id)
            return
        trigger_id = str(event.data.get("eventId") or event.id)
        for instance_id in call.resource_ids:
            if _INSTANCE_ID.match(instance_id):
                # A record that does not carry the tags (trigger None) cannot tell a second trigger from
                # any other tag write: it may start a bake the instance's tags ask for, never refuse one.
                self.begin(instance_id, bake_id_for(trigger_id, instance_id), certain=call.trigger is True)

    def begin(self, instance_id: str, bake_id: str, *, requested: bool = False, certain: bool = True) -> None:
        """Start (or resume) a bake. `requested`: asked for by a `bakery:Bake:Requested` event, so the
        trigger tag is not needed; the instance's other bakery:* tags (family, stop-first...) still apply.
        `certain`: the event itself says the trigger was set (else a bake in flight is left alone quietly)."""
        with bound(bake_id=bake_id, instance_id=instance_id):
            instance = self.ecs.instance(instance_id)
            if instance is None:
                log.warning("instance no longer exists; nothing to bake")
                return
            if not requested and not tags.truthy(instance.tags.get(tags.TRIGGER)):
                log.info("trigger tag is gone; not baking")
                return
            current = instance.tags.get(tags.BAKE_ID)
            if current and current != bake_id:
                log.info("a bake is already in flight for this instance; ignoring the second", in_flight=current)
                if not certain:
                    return
                # Tell the operator, without touching the instance or the bake in flight.
                self.bus.publish(BakeryEvent(events.BAKE_FAILED, instance_id, {
                    "bakeId": bake_id, "instanceId": instance_id, "reason": "already-baking",
                    "message": f"Instance {instance_id} is already being baked (bake {current}); this trigger was "
                               "ignored. Tag it again after that bake ends.", "inFlight": current}))  # fmt: skip
                return

            def start() -> None:
                if current is None:
                    self._static_gate(instance)
                    self.ecs.tag("instance", instance_id, {tags.BAKE_ID: bake_id, tags.STATE: tags.PREFLIGHT})
                    log.info("bake started")
                self.advance_instance(self.ecs.instance(instance_id) or instance)

            self._guarded(instance_id, bake_id, start)

    def _static_gate(self, instance: Instance) -> None:
        """What can be judged from the API alone, before anything is changed."""
        if instance.status in TRANSITIONAL:
            raise RetryableError(f"instance is {instance.status}; Bakery never acts on a transitional state")
        if instance.status not in ("Running", "Stopped"):
            raise BakeFailure("instance-status", f"Instance {instance.instance_id} is {instance.status}: only Running "
                              "or Stopped instances can be imaged.")  # fmt: skip
        for kind, tag in (("family", tags.FAMILY), ("name prefix", tags.NAME)):
            problem = name_problem(kind, instance.tags[tag]) if instance.tags.get(tag) else None
            if problem:  # caught before any image exists: an invalid family would strand a checked image
                raise BakeFailure("invalid-request", f"Tag {tag} on {instance.instance_id}: {problem}")
        if "security" in instance.lock_reasons:
            raise BakeFailure("instance-locked", f"Instance {instance.instance_id} is locked for security reasons "
                              "(OperationLocks: security); unlock it in the console before baking.")  # fmt: skip
        local = [d for d in self.ecs.disks(instance.instance_id) if d.is_local]
        if LOCAL_DISK_TYPE.match(instance.instance_type) or local or instance.local_disk_count:
            names = ", ".join(f"{d.disk_id} ({d.category})" for d in local) or "local disks"
            raise BakeFailure("local-disks", f"Instance {instance.instance_id} ({instance.instance_type}) has {names}: "
                              "local disks cannot be snapshotted, so the instance cannot be imaged. Bake an instance "
                              "with cloud disks instead.")  # fmt: skip

    def advance_instance(self, instance: Instance) -> None:
        """Move a claimed bake one step further from whatever state its instance tags record."""
        state = instance.tags.get(tags.STATE)
        if state == tags.PREFLIGHT:
            if tags.PREFLIGHT_INVOKE in instance.tags:
                self._finish_preflight(instance)
            else:
                self._start_preflight(instance)
        elif state == tags.STOPPING and instance.status == "Stopped":
            self._create(instance, attempt=1)
        # creating and later: the image carries the state; the check function follows it

    def _start_preflight(self, instance: Instance) -> None:
        bake_id = instance.tags[tags.BAKE_ID]
        if tags.truthy(instance.tags.get(tags.SKIP_GUEST_CHECKS)):
            log.warning("guest checks skipped by tag", tag=tags.SKIP_GUEST_CHECKS)
            return self._after_preflight(instance)
        if instance.status != "Running":
            return self._unchecked_guest(instance, f"the instance is {instance.status}, so Cloud Assistant cannot "
                                         "inspect its disk")  # fmt: skip
        if instance.os_type != "linux":
            # The preflight is a RunShellScript: on Windows Cloud Assistant refuses it (status Invalid) and the
            # bake used to end "preflight-error: output could not be read", which tells nobody what to do.
            return self._unchecked_guest(instance, f"the preflight is a Linux shell script and the instance runs "
                                         f"{instance.os_type}")  # fmt: skip
        skip = [rule for rule, tag in tags.ALLOW.items() if tags.truthy(instance.tags.get(tag))]
        invoke_id = self.ecs.run_script(instance.instance_id, preflight_script_for(self.settings, skip),
                                        name=f"{PREFLIGHT_COMMAND}-{bake_id}")  # fmt: skip
        self.ecs.tag("instance", instance.instance_id, {tags.PREFLIGHT_INVOKE: invoke_id})
        log.info("guest preflight started", invoke_id=invoke_id)

    def on_preflight_done(self, event: events.CloudEvent) -> None:
        instance_id = str(event.data.get("instanceId", ""))
        instance = self.ecs.instance(instance_id) if instance_id else None
        if instance is None or tags.PREFLIGHT_INVOKE not in instance.tags:
            return
        # Alibaba's TaskCompleted sample shows commandName but may not carry invokeId (README: wiring): without
        # it, the command named after this bake is ours; with it, it must be the invocation the bake recorded.
        if "invokeId" in event.data:
            ours = event.data["invokeId"] == instance.tags[tags.PREFLIGHT_INVOKE]
        else:
            ours = event.data.get("commandName") == f"{PREFLIGHT_COMMAND}-{instance.tags.get(tags.BAKE_ID)}"
        if not ours:
            return  # someone else's command, or a bake that already moved on
        if instance.tags.get(tags.STATE) != tags.PREFLIGHT:
            # A duplicated TaskCompleted after the first copy moved the bake on (stopping/creating): the
            # invoke tag is still there, so without this guard the copy re-ran _after_preflight and called
            # CreateImage on a Stopping instance (IncorrectInstanceStatus, retried into the dead letter).
            return
        with bound(bake_id=instance.tags.get(tags.BAKE_ID), instance_id=instance_id):
            self._guarded(instance_id, instance.tags[tags.BAKE_ID], lambda: self._finish_preflight(instance))

    def _finish_preflight(self, instance: Instance) -> None:
        result = self.ecs.command_result(instance.tags[tags.PREFLIGHT_INVOKE], instance.instance_id)
        if result is None or not result.finished:
            return  # TaskCompleted (or the sweep) brings us back
        if result.error_code in ("ClientNotRunning", "ClientNotResponse", "ClientNeedUpgrade", "InstanceNotRunning",
                                 "DeliveryTimeout"):  # fmt: skip
            return self._unchecked_guest(instance, f"Cloud Assistant could not run the preflight ({result.error_code})")
        try:
            report = parse_report(result.output, result.exit_code if result.exit_code is not None else -1)
        except ValueError as exc:
            raise BakeFailure("preflight-error", f"The preflight script's output could not be read ({exc}); "
                              f"status {result.invocation_status}, exit code {result.exit_code}.") from None  # fmt: skip
        if report.errors:
            raise BakeFailure("preflight-error", "The preflight could not check: " + "; ".join(report.errors))
        if not report.passed:
            lines = [f"{f.rule}: {f.target} {f.detail}".strip() for f in report.findings]
            overrides = sorted({tags.ALLOW[f.rule] for f in report.findings if f.rule in tags.ALLOW})
            raise BakeFailure("preflight", "Preflight found: " + "; ".join(lines) + ". Fix them on the instance, or "
                              f"override with the tag(s) {', '.join(f'{o}=true' for o in overrides)}.",
                              findings=lines)  # fmt: skip
        log.info("guest preflight passed")
        self._after_preflight(instance)

    def _unchecked_guest(self, instance: Instance, why: str) -> None:
        if self.settings.unchecked_guest_policy == "warn":
            log.warning("guest checks could not run; continuing (BAKERY_UNCHECKED_GUEST_POLICY=warn)", why=why)
            return self._after_preflight(instance)
        raise BakeFailure("guest-unchecked", f"Guest checks could not run: {why}. Start the instance / install Cloud "
                          f"Assistant, or tag {tags.SKIP_GUEST_CHECKS}=true to bake without them.")  # fmt: skip

    def _after_preflight(self, instance: Instance) -> None:
        if tags.truthy(instance.tags.get(tags.STOP_FIRST)) and instance.status == "Running":
            self.ecs.tag("instance", instance.instance_id, {tags.STATE: tags.STOPPING, tags.STOPPED_BY_BAKERY: "true"})
            self.ecs.stop(instance.instance_id)
            log.info("stopping the instance before imaging (bakery:stop-first)")
            return
        self._create(instance, attempt=1)

    def on_instance_state(self, event: events.CloudEvent) -> None:
        if event.data.get("state") != "Stopped":
            return
        instance = self.ecs.instance(str(event.data.get("resourceId", "")))
        if instance is not None and instance.tags.get(tags.STATE) == tags.STOPPING:
            with bound(bake_id=instance.tags.get(tags.BAKE_ID), instance_id=instance.instance_id):
                self._guarded(
                    instance.instance_id, instance.tags[tags.BAKE_ID], lambda: self.advance_instance(instance)
                )

    def _create(self, instance: Instance, attempt: int) -> str:
        bake_id = instance.tags[tags.BAKE_ID]
        family = instance.tags.get(tags.FAMILY, "")
        prefix = instance.tags.get(tags.NAME) or f"bakery-{instance.instance_id}"
        lineage = {
            tags.BAKE_ID: bake_id,
            tags.STATE: tags.CREATING,
            tags.SOURCE_INSTANCE: instance.instance_id,
            tags.ATTEMPT: str(attempt),
            tags.REPAIRS: "0",
        }
        if family:
            lineage[tags.FAMILY] = family  # the family to promote into, once the check passes
        try:
            image_id = self.ecs.create_image(
                instance.instance_id,
                name=f"{prefix}-{bake_id}-{attempt}",
                description=f"Baked by Bakery from {instance.instance_id} (bake {bake_id})",
                tags={**self.settings.tags_required, **lineage},
                client_token=f"{bake_id}-{attempt}",
            )
        except CloudError as exc:
            raise _create_image_failure(instance.instance_id, exc) from exc
        self.ecs.tag("instance", instance.instance_id, {tags.STATE: tags.CREATING, tags.IMAGE: image_id})
        self.bus.publish(BakeryEvent(events.IMAGE_CREATION_STARTED, image_id, {
            "bakeId": bake_id, "imageId": image_id, "instanceId": instance.instance_id, "attempt": attempt,
            "family": family}))  # fmt: skip
        log.info("image creation started", image_id=image_id, attempt=attempt)
        return image_id

    # == bake from snapshots: one image from disks of different instances ==========================

    def begin_from_snapshots(self, snapshot_ids: list[str], bake_id: str, *, family: str = "", name: str = "") -> None:
        """`bakery:Bake:Requested` with snapshotIds: CreateImage from them (DiskDeviceMapping, the first is the
        system disk), then the same check → repair → promote path as an instance bake, with no instance to
        claim or release. The lineage tag SOURCE_SNAPSHOTS replaces SOURCE_INSTANCE."""
        with bound(bake_id=bake_id, snapshot_ids=",".join(snapshot_ids)):
            mine = self.ecs.images_tagged(tags.BAKE_ID, bake_id)
            if mine:
                log.info("this bake already made its image; a duplicate request", image_id=mine[0].image_id)
                return
            first = tags.pack_snapshot_ids(snapshot_ids)[tags.SOURCE_SNAPSHOTS]
            busy = [
                i for i in self.ecs.images_tagged(tags.SOURCE_SNAPSHOTS, first)
                if tags.unpack_snapshot_ids(i.tags) == snapshot_ids and i.tags.get(tags.STATE) not in (tags.READY, tags.RETIRED)
            ]  # fmt: skip
            if busy:
                current = busy[0].tags.get(tags.BAKE_ID, "")
                log.info("a bake of these snapshots is already in flight; ignoring the second", in_flight=current)
                self.bus.publish(BakeryEvent(events.BAKE_FAILED, bake_id, {
                    "bakeId": bake_id, "instanceId": "", "snapshotIds": snapshot_ids, "reason": "already-baking",
                    "message": f"Snapshots {', '.join(snapshot_ids)} are already being baked (bake {current}); this "
                               "request was ignored. Request it again after that bake ends.", "inFlight": current}))  # fmt: skip
                return
            try:
                for kind, value in (("family", family), ("name prefix", name)):
                    problem = name_problem(kind, value) if value else None
                    if problem:
                        raise BakeFailure("invalid-request", problem)
                self._create_from_snapshots(snapshot_ids, bake_id, family=family, name=name, attempt=1)
            except BakeFailure as failure:
                failure.details.setdefault("snapshotIds", list(snapshot_ids))
                self.fail("", bake_id, failure)

    def _create_from_snapshots(self, snapshot_ids: list[str], bake_id: str, *, family: str, name: str,
                               attempt: int) -> str:  # fmt: skip
        prefix = name or f"bakery-{snapshot_ids[0]}"
        lineage = {tags.BAKE_ID: bake_id, tags.STATE: tags.CREATING, **tags.pack_snapshot_ids(snapshot_ids),
                   tags.ATTEMPT: str(attempt), tags.REPAIRS: "0"}  # fmt: skip
        if family:
            lineage[tags.FAMILY] = family  # the family to promote into, once the check passes
        if name:
            lineage[tags.NAME] = name  # a retry names its image the same way
        try:
            image_id = self.ecs.create_image_from_snapshots(
                snapshot_ids,
                name=f"{prefix}-{bake_id}-{attempt}",
                description=f"Baked by Bakery from snapshots {', '.join(snapshot_ids)} (bake {bake_id})"[:256],
                tags={**self.settings.tags_required, **lineage},
                client_token=f"{bake_id}-{attempt}",
            )
        except CloudError as exc:
            raise _snapshot_image_failure(snapshot_ids, self.ecs.region, exc) from exc
        self.bus.publish(BakeryEvent(events.IMAGE_CREATION_STARTED, image_id, {
            "bakeId": bake_id, "imageId": image_id, "instanceId": "", "snapshotIds": snapshot_ids,
            "attempt": attempt, "family": family}))  # fmt: skip
        log.info("image creation from snapshots started", image_id=image_id, attempt=attempt)
        return image_id

    # == check: follow an image to Available + checked =============================================

    def follow(self, image_id: str) -> None:
        image = self.ecs.image(image_id)
        if image is None or image.tags.get(tags.STATE) not in (tags.CREATING, tags.CHECKING):
            return  # gone, not ours, or already decided: a duplicate delivery
        bake_id = image.tags.get(tags.BAKE_ID, "")
        with bound(bake_id=bake_id, image_id=image_id):
            self._guarded(image.tags.get(tags.SOURCE_INSTANCE, ""), bake_id, lambda: self._follow(image))

    def _follow(self, image: Image) -> None:
        if image.status in ("Creating", "Waiting"):
            return
        if image.status in ("CreateFailed", "UnAvailable"):
            return self._creation_failed(image)
        if image.status != "Available" or not image.usable:
            return
        if not image.detection_status:
            return self._unchecked_image(image)
        if image.detection_status != "Finished":
            if image.tags.get(tags.STATE) != tags.CHECKING:
                self.ecs.tag("image", image.image_id, {tags.STATE: tags.CHECKING})
            return
        failing = image.failing_items
        if not failing:
            return self._promote(image)
        self.ecs.tag("image", image.image_id, {tags.STATE: tags.CHECK_FAILED})
        log.warning("image check failed", items=[i.name for i in failing])
        self.bus.publish(BakeryEvent(events.IMAGE_CHECK_FAILED, image.image_id, {
            "bakeId": image.tags.get(tags.BAKE_ID), "imageId": image.image_id,
            "instanceId": image.tags.get(tags.SOURCE_INSTANCE), "repairs": int(image.tags.get(tags.REPAIRS, "0")),
            "items": [{"name": i.name, "riskLevel": i.risk_level, "riskCode": i.risk_code} for i in failing]}))  # fmt: skip

    def _creation_failed(self, image: Image) -> None:
        attempt = int(image.tags.get(tags.ATTEMPT, "1"))
        self._retire(image, force_delete=True)
        if tags.SOURCE_SNAPSHOTS in image.tags:
            return self._snapshot_creation_failed(image, attempt)
        instance = self.ecs.instance(image.tags.get(tags.SOURCE_INSTANCE, ""))
        if (
            attempt < self.settings.max_create_attempts
            and instance is not None
            and image.tags.get(tags.REPAIRS, "0") == "0"
        ):
            log.warning("image creation failed; trying again", attempt=attempt)
            self._create(instance, attempt + 1)
            return
        raise BakeFailure("create-failed", f"CreateImage ended CreateFailed {attempt} time(s) for "
                          f"{image.tags.get(tags.SOURCE_INSTANCE)} (last image {image.image_id}); see the ECS console "
                          "for the instance's disks, then tag it again.")  # fmt: skip

    def _snapshot_creation_failed(self, image: Image, attempt: int) -> None:
        snapshot_ids = tags.unpack_snapshot_ids(image.tags)
        if attempt < self.settings.max_create_attempts and image.tags.get(tags.REPAIRS, "0") == "0":
            log.warning("image creation from snapshots failed; trying again", attempt=attempt)
            self._create_from_snapshots(snapshot_ids, image.tags.get(tags.BAKE_ID, ""), attempt=attempt + 1,
                                        family=image.tags.get(tags.FAMILY, ""), name=image.tags.get(tags.NAME, ""))  # fmt: skip
            return
        raise BakeFailure("create-failed", f"CreateImage ended CreateFailed {attempt} time(s) for snapshots "
                          f"{', '.join(snapshot_ids)} (last image {image.image_id}); check the snapshots in the ECS "
                          "console, then request the bake again.", snapshotIds=snapshot_ids)  # fmt: skip

    def _unchecked_image(self, image: Image) -> None:
        if self.settings.unchecked_image_policy == "promote":
            log.warning("image check not supported for this image; promoting unchecked (BAKERY_UNCHECKED_IMAGE_POLICY)")
            return self._promote(image, checked=False)
        raise BakeFailure("check-unsupported", f"Image {image.image_id} ({image.platform}) cannot be checked by ECS "
                          "(encrypted disks or an unsupported OS), so Bakery will not promote it. Set "
                          "BAKERY_UNCHECKED_IMAGE_POLICY=promote to accept unchecked images.")  # fmt: skip

    def _promote(self, image: Image, checked: bool = True) -> None:
        """Every step is idempotent and `bakery:state=ready` is written LAST: if any step is interrupted
        (throttling...), the image is still `checking` and the sweep runs the whole promotion again."""
        bake_id = image.tags.get(tags.BAKE_ID, "")
        family = image.tags.get(tags.FAMILY, "")
        if family and image.family != family:
            self.ecs.set_image_attributes(image.image_id, family=family)
        for earlier in self.ecs.images_tagged(tags.BAKE_ID, bake_id):
            if earlier.image_id != image.image_id and earlier.tags.get(tags.STATE) in (
                tags.REPAIRED,
                tags.CHECK_FAILED,
            ):
                self._retire(earlier)
        instance_id = image.tags.get(tags.SOURCE_INSTANCE, "")
        # Images this bake created: one per CreateImage attempt plus one per repair.
        attempts = int(image.tags.get(tags.ATTEMPT, "1")) + int(image.tags.get(tags.REPAIRS, "0"))
        self._release_instance(instance_id, bake_id, {tags.LAST_IMAGE: image.image_id})
        self.bus.publish(BakeryEvent(events.IMAGE_READY, image.image_id, {
            "bakeId": bake_id, "imageId": image.image_id, "instanceId": instance_id, "family": family,
            "checked": checked, "repairs": int(image.tags.get(tags.REPAIRS, "0")), "attempts": attempts}))  # fmt: skip
        self.ecs.tag("image", image.image_id, {tags.STATE: tags.READY})
        log.info("image promoted", family=family or None)

    # == repair: ACS-ECS-RepairImage for a failed check ============================================

    def on_check_failed(self, image_id: str) -> None:
        image = self.ecs.image(image_id)
        if image is None or image.tags.get(tags.STATE) != tags.CHECK_FAILED:
            return
        bake_id = image.tags.get(tags.BAKE_ID, "")
        with bound(bake_id=bake_id, image_id=image_id):
            self._guarded(image.tags.get(tags.SOURCE_INSTANCE, ""), bake_id, lambda: self._start_repair(image))

    def _start_repair(self, image: Image) -> None:
        names = [i.name for i in image.failing_items]
        repairs = int(image.tags.get(tags.REPAIRS, "0"))
        if repairs >= self.settings.max_repairs:
            raise BakeFailure("check-failed", f"Image {image.image_id} still fails its check after {repairs} repair(s): "
                              f"{', '.join(names)}. Fix these on the instance and tag it again.", items=names)  # fmt: skip
        if image.os_type != "linux":
            raise BakeFailure("unrepairable", f"Image {image.image_id} failed its check ({', '.join(names)}) and is "
                              f"{image.os_type}: ACS-ECS-RepairImage repairs Linux images only.", items=names)  # fmt: skip
        unknown = [n for n in names if n not in REPAIR_ITEM_FOR_CHECK]
        if unknown:
            raise BakeFailure("unrepairable", f"Image {image.image_id} failed check items no repair covers: "
                              f"{', '.join(unknown)}. Fix them on the instance and tag it again.", items=names)  # fmt: skip
        base_image = BASE_IMAGE_FOR_ARCH.get(image.architecture)
        if base_image is None:
            raise BakeFailure("unrepairable", f"Image {image.image_id} is {image.architecture}; ACS-ECS-RepairImage "
                              "repairs x86_64 and arm64 images only.")  # fmt: skip
        s = self.settings
        if not (s.repair_zone_id and s.repair_vswitch_id and s.repair_security_group_id):
            raise BakeFailure("repair-not-configured", "The repair network is not configured: set the template "
                              "parameters RepairZoneId, RepairVSwitchId and RepairSecurityGroupId.")  # fmt: skip
        repair_items = sorted({REPAIR_ITEM_FOR_CHECK[n] for n in names})
        bake_id = image.tags.get(tags.BAKE_ID, "")
        execution = self.oos.start_repair(
            {"zoneId": s.repair_zone_id, "repairImageId": image.image_id, "baseImageId": base_image,
             "instanceType": s.repair_instance_type, "securityGroupId": s.repair_security_group_id,
             "vSwitchId": s.repair_vswitch_id, "repairItems": repair_items},
            client_token=f"{bake_id}-r{repairs + 1}", tags={tags.BAKE_ID: bake_id},
        )  # fmt: skip
        self.ecs.tag(
            "image", image.image_id, {tags.STATE: tags.REPAIRING, tags.REPAIR_EXECUTION: execution.execution_id}
        )
        self.bus.publish(BakeryEvent(events.IMAGE_REPAIR_STARTED, image.image_id, {
            "bakeId": bake_id, "imageId": image.image_id, "executionId": execution.execution_id,
            "repairItems": repair_items, "repair": repairs + 1}))  # fmt: skip
        log.info("repair started", execution_id=execution.execution_id, repair_items=repair_items)

    def on_execution_changed(self, execution_id: str) -> None:
        for image in self.ecs.images_tagged(tags.REPAIR_EXECUTION, execution_id):
            self.follow_repair(image)

    def follow_repair(self, image: Image) -> None:
        if image.tags.get(tags.STATE) != tags.REPAIRING:
            return
        bake_id = image.tags.get(tags.BAKE_ID, "")
        with bound(bake_id=bake_id, image_id=image.image_id):
            self._guarded(image.tags.get(tags.SOURCE_INSTANCE, ""), bake_id, lambda: self._follow_repair(image))

    def _follow_repair(self, image: Image) -> None:
        execution_id = image.tags[tags.REPAIR_EXECUTION]
        execution = self.oos.execution(execution_id)
        if execution is None or not execution.finished:
            return
        new_id = execution.outputs.get("imageId", "")
        if execution.status != "Success" or not new_id:
            raise BakeFailure("repair-failed", f"ACS-ECS-RepairImage execution {execution_id} ended {execution.status}: "
                              f"{execution.message or 'no message'}. The image {image.image_id} stays out of its family.")  # fmt: skip
        repaired = self.ecs.image(new_id)
        if repaired is None:
            raise RetryableError(f"repaired image {new_id} is not visible yet")
        if repaired.tags.get(tags.BAKE_ID) != image.tags.get(tags.BAKE_ID):
            # The repair template makes a new image without family, tags or description: re-apply the lineage.
            lineage = {k: v for k, v in image.tags.items() if k.startswith("bakery:")}
            lineage.update({tags.STATE: tags.CREATING, tags.REPAIRED_FROM: image.image_id,
                            tags.REPAIRS: str(int(image.tags.get(tags.REPAIRS, "0")) + 1)})  # fmt: skip
            lineage.pop(tags.REPAIR_EXECUTION, None)
            self.ecs.tag("image", new_id, {**self.settings.tags_required, **lineage})
            self.ecs.set_image_attributes(
                new_id, description=f"{image.description} (repaired from {image.image_id})"[:256]
            )
        self.ecs.tag("image", image.image_id, {tags.STATE: tags.REPAIRED})
        self.bus.publish(BakeryEvent(events.IMAGE_REPAIRED, new_id, {
            "bakeId": image.tags.get(tags.BAKE_ID), "imageId": new_id, "repairedFrom": image.image_id,
            "executionId": execution_id}))  # fmt: skip
        log.info("repair finished; checking the repaired image", repaired_image_id=new_id)

    # == the sweep: lost events, stuck bakes =======================================================

    def sweep(self, trigger_time: str) -> dict[str, int]:
        """Finish whatever an event should have moved on. Costs O(pages) of tag queries, not O(images)."""
        counts = {"images": 0, "repairs": 0, "instances": 0, "started": 0, "deferred": 0}

        def attempt(kind: str, step: Callable[[], None]) -> None:
            # One stuck bake must not hold up the others: a retryable error defers it to the next sweep.
            counts[kind] += 1
            try:
                step()
            except RetryableError as exc:
                counts["deferred"] += 1
                log.warning("sweep deferred a bake to the next sweep", reason=str(exc), code=exc.code)

        # One tag query per in-flight state: finished images (ready, retired...) are never read, so the
        # cost follows the bakes in flight, not the history of images.
        live: list[Image] = []
        for state in LIVE_IMAGE_STATES:
            live += self.ecs.images_tagged(tags.STATE, state)
        for image in live:
            state = image.tags.get(tags.STATE)
            if state in (tags.CREATING, tags.CHECKING):
                attempt("images", lambda i=image: self.follow(i.image_id))
            elif state == tags.CHECK_FAILED:
                attempt("repairs", lambda i=image: self.on_check_failed(i.image_id))
            elif state == tags.REPAIRING:
                attempt("repairs", lambda i=image: self.follow_repair(i))
        by_bake: dict[str, list[Image]] = {}
        for image in live:
            by_bake.setdefault(image.tags.get(tags.BAKE_ID, ""), []).append(image)
        for instance in self.ecs.instances_tagged(tags.BAKE_ID):
            self._reconcile_claimed(instance, by_bake, attempt)
        for instance in self.ecs.instances_tagged(tags.TRIGGER):
            if not tags.truthy(instance.tags.get(tags.TRIGGER)):
                continue
            if tags.BAKE_ID not in instance.tags:
                bake_id = bake_id_for(f"sweep:{trigger_time}", instance.instance_id)
                attempt("started", lambda i=instance, b=bake_id: self.begin(i.instance_id, b))
            elif instance.tags.get(tags.STATE) in (tags.PREFLIGHT, tags.STOPPING):
                attempt("instances", lambda i=instance: self._guarded(
                    i.instance_id, i.tags[tags.BAKE_ID], lambda: self.advance_instance(i)))  # fmt: skip
        return counts

    def _reconcile_claimed(
        self, instance: Instance, by_bake: dict[str, list[Image]], attempt: Callable[..., None]
    ) -> None:
        """A claimed instance whose bake ended (or lost its image) but was interrupted while winding down."""
        bake_id = instance.tags[tags.BAKE_ID]
        if instance.tags.get(tags.ENDING) == bake_id:
            reason = instance.tags.get(tags.LAST_ERROR, "interrupted")
            attempt("instances", lambda: self._wind_down(instance.instance_id, bake_id, reason))
            return
        if instance.tags.get(tags.STATE) != tags.CREATING:
            return  # preflight and stopping are resumed below; later states live on the image
        if by_bake.get(bake_id):
            return  # its image is in flight: followed above
        # Rare: a claimed instance whose bake has no image in flight. One lookup for this bake alone.
        ready = [i for i in self.ecs.images_tagged(tags.BAKE_ID, bake_id) if i.tags.get(tags.STATE) == tags.READY]
        if ready:
            attempt("instances", lambda: self._release_instance(instance.instance_id, bake_id,
                                                                {tags.LAST_IMAGE: ready[0].image_id}))  # fmt: skip
        else:
            failure = BakeFailure("interrupted", f"Bake {bake_id} lost its image (deleted outside Bakery, or an "
                                  "interrupted retry); tag the instance again to bake it.")  # fmt: skip
            attempt("instances", lambda: self.fail(instance.instance_id, bake_id, failure))

    # == endings ===================================================================================

    def _guarded(self, instance_id: str, bake_id: str, step: object) -> None:
        """Run a step; a BakeFailure — or a permanent cloud error nobody handled — ends the bake (once).
        Retryable errors propagate to the retry policy (FC's async retries, then the sweep)."""
        try:
            step()  # type: ignore[operator]
        except CloudError as exc:  # permanent: retrying the same call cannot help, so say what broke
            self.fail(instance_id, bake_id, BakeFailure("cloud-error", f"{exc.action} was refused: {exc.code}: "
                                                        f"{exc.message}", action=exc.action, code=exc.code))  # fmt: skip
        except BakeFailure as failure:
            self.fail(instance_id, bake_id, failure)

    def fail(self, instance_id: str, bake_id: str, failure: BakeFailure) -> None:
        """End a bake: say why (once), retire its images, release its instance (restarting it if Bakery
        stopped it). The reason is written on the instance first, so an interrupted wind-down is finished
        by the sweep without a second Bake:Failed."""
        log.error("bake failed", reason=failure.reason, detail=failure.message)
        instance = self._owned_instance(instance_id, bake_id)
        if instance is not None:
            self.ecs.tag("instance", instance_id, {tags.LAST_ERROR: failure.reason, tags.ENDING: bake_id or "-"})
        self.bus.publish(BakeryEvent(events.BAKE_FAILED, instance_id or bake_id, {
            "bakeId": bake_id, "instanceId": instance_id, "reason": failure.reason, "message": failure.message,
            **{k: v for k, v in failure.details.items() if isinstance(v, (str, int, list))}}))  # fmt: skip
        self._wind_down(instance_id, bake_id, failure.reason)

    def _wind_down(self, instance_id: str, bake_id: str, reason: str) -> None:
        for image in self.ecs.images_tagged(tags.BAKE_ID, bake_id) if bake_id else []:
            if image.tags.get(tags.STATE) not in (tags.READY, tags.RETIRED):
                self._retire(image, force_delete=True)
        self._release_instance(instance_id, bake_id, {tags.LAST_ERROR: reason})

    def _owned_instance(self, instance_id: str, bake_id: str) -> Instance | None:
        """The instance, unless it is gone or belongs to another bake by now."""
        instance = self.ecs.instance(instance_id) if instance_id else None
        if instance is None or instance.tags.get(tags.BAKE_ID) not in (bake_id, None):
            return None
        return instance

    def _release_instance(self, instance_id: str, bake_id: str, result_tags: dict[str, str]) -> None:
        """Start the instance again if Bakery stopped it, then drop the bake's tags (the restart comes first:
        once `bakery:stopped-by-bakery` is gone, nothing would remember to start it)."""
        instance = self._owned_instance(instance_id, bake_id)
        if instance is None:
            return  # gone, another bake's, or a bake from snapshots (no instance)
        if tags.truthy(instance.tags.get(tags.STOPPED_BY_BAKERY)):
            if instance.status == "Stopping":  # it will settle; the sweep comes back to start it
                raise RetryableError("instance is still Stopping; it will be started once Stopped")
            if instance.status == "Stopped":
                self.ecs.start(instance_id)
                log.info("instance started again (Bakery had stopped it)")
        self.ecs.tag("instance", instance_id, result_tags)
        stale = tags.LAST_ERROR if tags.LAST_IMAGE in result_tags else tags.LAST_IMAGE
        self.ecs.untag("instance", instance_id, [t for t in [*tags.INSTANCE_WORK_TAGS, stale] if t in instance.tags])

    def _retire(self, image: Image, force_delete: bool = False) -> None:
        """Broken images leave the account (with their snapshots), or are deprecated, per BAKERY_RETIRE_POLICY."""
        if self.settings.retire_policy == "deprecate" and not force_delete and image.status == "Available":
            self.ecs.set_image_attributes(image.image_id, status="Deprecated")
            self.ecs.tag("image", image.image_id, {tags.STATE: tags.RETIRED})
            return
        sources = set(tags.unpack_snapshot_ids(image.tags))  # the operator's snapshots (a snapshot bake): kept
        self.ecs.delete_image_and_snapshots(replace(image, snapshot_ids=tuple(s for s in image.snapshot_ids
                                                                              if s not in sources)))  # fmt: skip
        log.info("image retired", retired_image_id=image.image_id)


def _create_image_failure(instance_id: str, exc: CloudError) -> BakeFailure | RetryableError:
    code = exc.code
    if code == "QuotaExceed.Image":
        return BakeFailure("image-quota", "The account's custom image quota is used up (QuotaExceed.Image): delete "
                           "old images (`bakery plan`) or raise the quota in Quota Center, then tag the instance again.")  # fmt: skip
    if code == "InstanceLockedForSecurity":
        return BakeFailure("instance-locked", f"Instance {instance_id} is locked for security reasons.")
    if code in ("IncorrectInstanceStatus", "IncorrectDiskStatus.CreatingSnapshot"):
        return RetryableError(f"CreateImage: {code}: {exc.message}", code=code)
    if code in ("InvalidDiskCategory.CreateImage", "InvalidInstanceId.ValueNotSupported"):
        return BakeFailure("local-disks", f"Instance {instance_id} cannot be imaged: {exc.message}")
    if "Tag" in code or "tag" in exc.message.lower():
        return BakeFailure("mandatory-tag", f"CreateImage refused the image's tags ({code}: {exc.message}). Set the "
                           "tags your tag policy requires in the MandatoryTags template parameter.")  # fmt: skip
    return BakeFailure("create-image", f"CreateImage failed for {instance_id}: {code}: {exc.message}")


def _snapshot_image_failure(snapshot_ids: list[str], region: str, exc: CloudError) -> BakeFailure | RetryableError:
    listing = f"aliyun ecs DescribeSnapshots --RegionId {region} --SnapshotIds '{json.dumps(snapshot_ids)}'"
    if exc.code == "InvalidSnapshotId.NotFound":
        return BakeFailure("snapshot-not-found", f"Snapshot(s) not found: {exc.message}. Check the ids ({listing}) "
                           "and request the bake again with existing snapshots.", snapshotIds=snapshot_ids)  # fmt: skip
    if exc.code == "InvalidSnapshotId.NotReady":
        return BakeFailure("snapshot-not-ready", f"Snapshots must be accomplished before baking: {exc.message}. "
                           "Request the bake again once they are (a failed snapshot must be taken again).",
                           snapshotIds=snapshot_ids)  # fmt: skip
    if exc.code == "OperationDenied" or exc.code.startswith(("InvalidSize", "InvalidSystemSnapshot", "InvalidDevice")):
        return BakeFailure("snapshot-refused", f"CreateImage refused these snapshots ({exc.code}: {exc.message}). "
                           "The first snapshot becomes the system disk: give a system disk's snapshot first.",
                           snapshotIds=snapshot_ids)  # fmt: skip
    return _create_image_failure(f"snapshots {', '.join(snapshot_ids)}", exc)
