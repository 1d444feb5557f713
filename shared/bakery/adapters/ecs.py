"""ECS (2014-05-26) through the real SDK."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from alibabacloud_ecs20140526 import models as m

from bakery.adapters.sdk import call
from bakery.clients import client, pacer, waiter
from bakery.config import Settings
from bakery.errors import CloudError, RetryableError
from bakery.model import CheckItem, CommandResult, Disk, Image, ImageDisk, Instance, Snapshot

ALL_IMAGE_STATUSES = "Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated"


# Actions whose account-wide rate limit a fleet meets at once (every bake's CreateImage within seconds): paced.
PACED = frozenset({"CreateImage"})


class Ecs:
    def __init__(self, settings: Settings) -> None:
        self.region = settings.region
        self._settings = settings
        self._client = client("ecs", settings)
        self._wait = waiter(settings)

    def _call(self, action: str, method: Any, request: Any) -> Any:
        pace = pacer(action, self._settings) if action in PACED else None
        return call("ecs", action, method, request, wait=self._wait, pacer=pace).body

    # -- instances ---------------------------------------------------------------------------------

    def instance(self, instance_id: str) -> Instance | None:
        body = self._call("DescribeInstances", self._client.describe_instances,
                          m.DescribeInstancesRequest(region_id=self.region, instance_ids=json.dumps([instance_id])))  # fmt: skip
        found = body.instances.instance if body.instances else []
        return _instance(found[0]) if found else None

    def instances(self, instance_ids: Sequence[str]) -> list[Instance]:
        """The instances of `instance_ids` that exist: DescribeInstances takes up to 100 ids (a JSON array)."""
        ids, result = list(dict.fromkeys(instance_ids)), []
        for start in range(0, len(ids), 100):
            token = None
            while True:
                body = self._call("DescribeInstances", self._client.describe_instances, m.DescribeInstancesRequest(
                    region_id=self.region, instance_ids=json.dumps(ids[start : start + 100]), max_results=100,
                    next_token=token))  # fmt: skip
                result += [_instance(i) for i in (body.instances.instance if body.instances else [])]
                token = body.next_token
                if not token:
                    break
        return result

    def instances_tagged(self, key: str, value: str | None = None) -> list[Instance]:
        """Every instance carrying tag `key` (= `value`), over all pages: O(pages), not O(instances)."""
        tag = [m.DescribeInstancesRequestTag(key=key, value=value)]
        result, token = [], None
        while True:
            body = self._call("DescribeInstances", self._client.describe_instances,
                              m.DescribeInstancesRequest(region_id=self.region, tag=tag, max_results=100, next_token=token))  # fmt: skip
            result += [_instance(i) for i in (body.instances.instance if body.instances else [])]
            token = body.next_token
            if not token:
                return result

    def disks(self, instance_id: str) -> list[Disk]:
        body = self._call("DescribeDisks", self._client.describe_disks,
                          m.DescribeDisksRequest(region_id=self.region, instance_id=instance_id, max_results=100))  # fmt: skip
        return [Disk(d.disk_id, d.type, d.category, d.size, bool(d.encrypted)) for d in body.disks.disk]

    def stop(self, instance_id: str) -> None:
        try:
            self._call("StopInstance", self._client.stop_instance, m.StopInstanceRequest(instance_id=instance_id))
        except CloudError as exc:
            _raise_if_settling(exc)
            raise

    def start(self, instance_id: str) -> None:
        try:
            self._call("StartInstance", self._client.start_instance, m.StartInstanceRequest(instance_id=instance_id))
        except CloudError as exc:
            _raise_if_settling(exc)
            raise

    # -- tags --------------------------------------------------------------------------------------

    def tag(self, resource_type: str, resource_id: str | Sequence[str], tags: dict[str, str]) -> None:
        """TagResources on one resource, or on up to 50 of one type in one call (ECS' ResourceId.N limit)."""
        ids = [resource_id] if isinstance(resource_id, str) else list(resource_id)
        if not tags or not ids:
            return
        for start in range(0, len(ids), 50):
            self._call("TagResources", self._client.tag_resources, m.TagResourcesRequest(
                region_id=self.region, resource_type=resource_type, resource_id=ids[start : start + 50],
                tag=[m.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()]))  # fmt: skip

    def tag_existing(self, resource_type: str, resource_ids: Sequence[str], tags: dict[str, str]) -> None:
        """`tag`, on those of `resource_ids` that still exist: if a batch names one that is gone (deleted since),
        each is tagged on its own and the gone ones skipped."""
        try:
            self.tag(resource_type, resource_ids, tags)
        except CloudError as exc:
            if "NotFound" not in exc.code:
                raise
            if len(resource_ids) > 1:
                for resource_id in resource_ids:
                    self.tag_existing(resource_type, [resource_id], tags)

    def untag(self, resource_type: str, resource_id: str, keys: list[str]) -> None:
        if not keys:
            return
        self._call("UntagResources", self._client.untag_resources, m.UntagResourcesRequest(
            region_id=self.region, resource_type=resource_type, resource_id=[resource_id], tag_key=keys))  # fmt: skip

    # -- Cloud Assistant -----------------------------------------------------------------------------

    def run_script(self, instance_id: str, script: str, *, name: str, timeout_s: int = 120) -> str:
        body = self._call("RunCommand", self._client.run_command, m.RunCommandRequest(
            region_id=self.region, type="RunShellScript", instance_id=[instance_id], name=name, timeout=timeout_s,
            content_encoding="Base64", command_content=base64.b64encode(script.encode()).decode()))  # fmt: skip
        return body.invoke_id

    def command_result(self, invoke_id: str, instance_id: str) -> CommandResult | None:
        body = self._call("DescribeInvocationResults", self._client.describe_invocation_results,
                          m.DescribeInvocationResultsRequest(region_id=self.region, invoke_id=invoke_id,
                                                             instance_id=instance_id, content_encoding="PlainText"))  # fmt: skip
        results = body.invocation.invocation_results.invocation_result if body.invocation else []
        if not results:
            return None
        r = results[0]
        return CommandResult(r.invoke_id, r.instance_id, r.invoke_record_status, r.invocation_status, r.exit_code,
                             r.output or "", r.error_code or "", r.error_info or "")  # fmt: skip

    # -- images --------------------------------------------------------------------------------------

    def create_image(
        self, instance_id: str, *, name: str, description: str, tags: dict[str, str], client_token: str
    ) -> str:
        body = self._call("CreateImage", self._client.create_image, m.CreateImageRequest(
            region_id=self.region, instance_id=instance_id, image_name=name, description=description,
            detection_strategy="Standard", client_token=client_token,
            tag=[m.CreateImageRequestTag(key=k, value=v) for k, v in tags.items()]))  # fmt: skip
        return body.image_id

    def snapshots(self, snapshot_ids: Sequence[str]) -> list[Snapshot]:
        """The snapshots of `snapshot_ids` that exist (one DescribeSnapshots per 100 ids), with their tags."""
        found: list[Snapshot] = []
        unique = list(dict.fromkeys(snapshot_ids))
        for start in range(0, len(unique), 100):
            body = self._call("DescribeSnapshots", self._client.describe_snapshots, m.DescribeSnapshotsRequest(
                region_id=self.region, snapshot_ids=json.dumps(unique[start : start + 100]), max_results=100))  # fmt: skip
            found += [Snapshot(s.snapshot_id, s.status or "", s.progress or "", _int(s.source_disk_size), _tags(s.tags),
                               s.creation_time or "")
                      for s in (body.snapshots.snapshot if body.snapshots else None) or []]  # fmt: skip
        return found

    def create_image_from_disks(self, disks: Sequence[ImageDisk], *, name: str, description: str,
                                tags: dict[str, str], client_token: str, like: Image | None = None) -> str:  # fmt: skip
        """One image from existing snapshots, disk for disk (DiskDeviceMapping: device, type, size as given; the
        system disk first), with `like`'s platform, architecture and boot mode when given (a repaired system
        disk put back together with its data disks), else what ECS reads from the system disk's snapshot."""
        mappings = [m.CreateImageRequestDiskDeviceMapping(device=d.device or None, disk_type=d.disk_type,
                                                          snapshot_id=d.snapshot_id, size=d.size_gib or None)
                    for d in disks]  # fmt: skip
        body = self._call("CreateImage", self._client.create_image, m.CreateImageRequest(
            region_id=self.region, disk_device_mapping=mappings, image_name=name, description=description,
            platform=(like.platform or None) if like else None, architecture=(like.architecture or None) if like else None,
            boot_mode=(like.boot_mode or None) if like else None,
            detection_strategy="Standard", client_token=client_token,
            tag=[m.CreateImageRequestTag(key=k, value=v) for k, v in tags.items()]))  # fmt: skip
        return body.image_id

    def snapshots_tagged(self, key: str, value: str | None = None) -> list[str]:
        """Ids of the snapshots carrying tag `key` (= `value`), over all pages."""
        tag = [m.DescribeSnapshotsRequestTag(key=key, value=value)]
        result, token = [], None
        while True:
            body = self._call("DescribeSnapshots", self._client.describe_snapshots, m.DescribeSnapshotsRequest(
                region_id=self.region, tag=tag, max_results=100, next_token=token))  # fmt: skip
            result += [s.snapshot_id for s in (body.snapshots.snapshot if body.snapshots else None) or []]
            token = body.next_token
            if not token:
                return result

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """DeleteSnapshot; False when another image still uses it (SnapshotCreatedImage: it is kept)."""
        try:
            self._call("DeleteSnapshot", self._client.delete_snapshot, m.DeleteSnapshotRequest(snapshot_id=snapshot_id))
        except CloudError as exc:
            if exc.code in ("SnapshotCreatedImage",):
                return False
            if exc.code.startswith("InvalidSnapshotId.NotFound"):  # already gone: a retried delete
                return True
            raise
        return True

    def image(self, image_id: str) -> Image | None:
        body = self._call("DescribeImages", self._client.describe_images, m.DescribeImagesRequest(
            region_id=self.region, image_id=image_id, status=ALL_IMAGE_STATUSES, image_owner_alias="self"))  # fmt: skip
        found = body.images.image if body.images else []
        return _image(found[0]) if found else None

    def images_named(self, name: str) -> list[Image]:
        """Own images (any status) named exactly `name`: ImageName is a fuzzy match, so compared here (one call:
        names are unique per region, so at most one matches)."""
        body = self._call("DescribeImages", self._client.describe_images, m.DescribeImagesRequest(
            region_id=self.region, image_name=name, status=ALL_IMAGE_STATUSES, image_owner_alias="self",
            page_size=100))  # fmt: skip
        return [_image(i) for i in (body.images.image if body.images else []) if i.image_name == name]

    def images_of_snapshot(self, snapshot_id: str) -> list[Image]:
        """Own images (any status) built on `snapshot_id`: one call, for the snapshot-completed fast path."""
        body = self._call("DescribeImages", self._client.describe_images, m.DescribeImagesRequest(
            region_id=self.region, snapshot_id=snapshot_id, status=ALL_IMAGE_STATUSES, image_owner_alias="self"))  # fmt: skip
        return [_image(i) for i in (body.images.image if body.images else [])]

    def images_tagged(self, key: str, value: str | None = None) -> list[Image]:
        """Every own image carrying tag `key` (= `value`), in any status, over all pages."""
        return self._images(tag=[m.DescribeImagesRequestTag(key=key, value=value)])

    def _images(self, status: str = ALL_IMAGE_STATUSES, **filters: Any) -> list[Image]:
        """Own images matching DescribeImages `filters`, over all pages of 100."""
        result, page = [], 1
        while True:
            body = self._call("DescribeImages", self._client.describe_images, m.DescribeImagesRequest(
                region_id=self.region, status=status, image_owner_alias="self", page_size=100, page_number=page,
                **filters))  # fmt: skip
            batch = body.images.image if body.images else []
            result += [_image(i) for i in batch or []]
            if page * 100 >= (body.total_count or 0) or not batch:
                return result
            page += 1

    def set_image_attributes(self, image_id: str, *, family: str | None = None, status: str | None = None,
                             description: str | None = None, name: str | None = None) -> None:  # fmt: skip
        self._call("ModifyImageAttribute", self._client.modify_image_attribute, m.ModifyImageAttributeRequest(
            region_id=self.region, image_id=image_id, image_family=family, status=status, description=description,
            image_name=name))  # fmt: skip

    def images_created_since(self, since: str) -> list[Image]:
        """Own images Creating, Waiting or Available created at or after `since` (yyyy-MM-ddTHH:mmZ, UTC:
        DescribeImages Filter CreationStartTime), over all pages."""
        return self._images("Creating,Waiting,Available",
                            filter=[m.DescribeImagesRequestFilter(key="CreationStartTime", value=since)])  # fmt: skip

    # -- lifecycle: families, usage, sharing, snapshot sizes (bakery.families) -----------------------

    def images_in_family(self, family: str) -> list[Image]:
        """Every own image of `family`, in any status (Deprecated ones too), over all pages."""
        return self._images(image_family=family)

    def image_from_family(self, family: str) -> str | None:
        """What a launch resolving `family` boots now: its newest Available image (None when it has none)."""
        body = self._call("DescribeImageFromFamily", self._client.describe_image_from_family,
                          m.DescribeImageFromFamilyRequest(region_id=self.region, image_family=family))  # fmt: skip
        return body.image.image_id if body.image and body.image.image_id else None

    def instances_using_image(self, image_id: str) -> tuple[list[str], int]:
        """Instances running `image_id`: the first 100 ids and how many there are (one call)."""
        body = self._call("DescribeInstances", self._client.describe_instances,
                          m.DescribeInstancesRequest(region_id=self.region, image_id=image_id, max_results=100))  # fmt: skip
        found = body.instances.instance if body.instances else []
        ids = [i.instance_id for i in found or []]
        return ids, max(body.total_count or 0, len(ids))

    def launch_template_images(self) -> dict[str, list[tuple[str, int]]]:
        """ImageId → [(template id, version)] over every template's latest and default versions.

        Older versions are ignored: launches use the default version unless told otherwise, and the latest
        is what an operator just wrote. Costs one call per page of templates plus one per template."""
        templates, page = [], 1
        while True:
            body = self._call("DescribeLaunchTemplates", self._client.describe_launch_templates,
                              m.DescribeLaunchTemplatesRequest(region_id=self.region, page_size=50, page_number=page))  # fmt: skip
            sets = body.launch_template_sets
            batch = (sets.launch_template_set if sets else None) or []
            templates += batch
            if page * 50 >= (body.total_count or 0) or not batch:
                break
            page += 1
        usage: dict[str, list[tuple[str, int]]] = {}
        for template in templates:
            numbers = sorted({n for n in (template.latest_version_number, template.default_version_number) if n})
            body = self._call("DescribeLaunchTemplateVersions", self._client.describe_launch_template_versions,
                              m.DescribeLaunchTemplateVersionsRequest(
                                  region_id=self.region, launch_template_id=template.launch_template_id,
                                  launch_template_version=numbers, page_size=50))  # fmt: skip
            sets = body.launch_template_version_sets
            for version in (sets.launch_template_version_set if sets else None) or []:
                data = version.launch_template_data
                if data is not None and data.image_id:
                    usage.setdefault(data.image_id, []).append((template.launch_template_id, version.version_number))
        return usage

    def shared_accounts(self, image_id: str) -> list[str]:
        """Accounts `image_id` is shared with (DescribeImageSharePermission, all pages)."""
        accounts, page = [], 1
        while True:
            body = self._call("DescribeImageSharePermission", self._client.describe_image_share_permission,
                              m.DescribeImageSharePermissionRequest(region_id=self.region, image_id=image_id,
                                                                    page_size=100, page_number=page))  # fmt: skip
            batch = (body.accounts.account if body.accounts else None) or []
            accounts += [a.aliyun_id for a in batch if a.aliyun_id]
            if page * 100 >= (body.total_count or 0) or not batch:
                return accounts
            page += 1

    def share(self, image_id: str, accounts: list[str]) -> None:
        """Share `image_id` with `accounts` (AddAccount takes at most 10 per call)."""
        for start in range(0, len(accounts), 10):
            self._call("ModifyImageSharePermission", self._client.modify_image_share_permission,
                       m.ModifyImageSharePermissionRequest(region_id=self.region, image_id=image_id,
                                                           add_account=accounts[start : start + 10]))  # fmt: skip

    def unshare(self, image_id: str, accounts: list[str]) -> None:
        """Stop sharing `image_id` with `accounts` (RemoveAccount takes at most 10 per call)."""
        for start in range(0, len(accounts), 10):
            self._call("ModifyImageSharePermission", self._client.modify_image_share_permission,
                       m.ModifyImageSharePermissionRequest(region_id=self.region, image_id=image_id,
                                                           remove_account=accounts[start : start + 10]))  # fmt: skip

    def snapshot_sizes(self, snapshot_ids: list[str]) -> dict[str, int]:
        """SourceDiskSize (GiB) of each snapshot that exists, 100 ids per DescribeSnapshots call."""
        return {s.snapshot_id: s.size_gib for s in self.snapshots(snapshot_ids)}

    def delete_image_with_snapshots(self, image_id: str, snapshot_ids: Sequence[str], *, mark: dict[str, str],
                                    force: bool = False) -> list[str]:  # fmt: skip
        """DeleteImage (Force ignores instances using it), then its snapshots; returns the snapshots deleted.

        Write-ahead: the snapshots are tagged `mark` first (ECS deletes snapshots only after their image, and a
        deleted image no longer names them), so a delete interrupted after the image went is finished by
        `release_snapshot` over the snapshots still marked. A missing image or snapshot is ignored by ECS, so
        a retry is safe; a snapshot another image still uses (SnapshotCreatedImage) is kept, unmarked."""
        self.tag("snapshot", list(snapshot_ids), mark)
        self._call("DeleteImage", self._client.delete_image,
                   m.DeleteImageRequest(region_id=self.region, image_id=image_id, force=force))  # fmt: skip
        return [s for s in snapshot_ids if self.release_snapshot(s, unmark=list(mark))]

    def release_snapshot(self, snapshot_id: str, *, unmark: list[str]) -> bool:
        """Delete a snapshot marked for deletion; if another image still uses it, it is not garbage: the marks
        `unmark` come off instead. True when it is gone."""
        if self.delete_snapshot(snapshot_id):
            return True
        self.untag("snapshot", snapshot_id, unmark)
        return False


def _raise_if_settling(exc: CloudError) -> None:
    """Stop/Start: IncorrectInstanceStatus means the instance is between states — often because an earlier call
    that answered 5xx did take effect — so the step is tried again once it settles."""
    if exc.code == "IncorrectInstanceStatus":
        raise RetryableError(f"{exc.action}: {exc.code}: {exc.message}", code=exc.code) from exc


def _tags(container: Any) -> dict[str, str]:
    return {t.tag_key: t.tag_value or "" for t in (container.tag if container and container.tag else [])}


def _instance(i: Any) -> Instance:
    locks = tuple(lock.lock_reason for lock in (i.operation_locks.lock_reason if i.operation_locks else []) or [])
    return Instance(
        instance_id=i.instance_id, status=i.status, instance_type=i.instance_type, os_type=(i.ostype or "linux").lower(),
        platform=i.osname or "", architecture="x86_64", tags=_tags(i.tags), lock_reasons=locks,
        local_disk_count=i.local_storage_amount or 0, name=i.instance_name or "",
    )  # fmt: skip


def _image(i: Any) -> Image:
    detection = i.detection_options
    items = tuple(
        CheckItem(it.name, it.value or "", it.risk_level or "", it.risk_code or "")
        for it in (detection.items.item if detection and detection.items and detection.items.item else [])
    )
    mappings = i.disk_device_mappings.disk_device_mapping if i.disk_device_mappings else []
    return Image(
        image_id=i.image_id, name=i.image_name or "", status=i.status, usable=bool(i.usable), family=i.image_family or "",
        description=i.description or "", os_type=(i.ostype or "linux").lower(), platform=i.platform or "",
        architecture=i.architecture or "x86_64", tags=_tags(i.tags),
        snapshot_ids=tuple(mp.snapshot_id for mp in mappings or [] if mp.snapshot_id),
        detection_status=(detection.status or "") if detection else "", check_items=items,
        creation_time=i.creation_time or "", boot_mode=i.boot_mode or "",
        disks=tuple(ImageDisk(mp.device or "", mp.type or "", mp.snapshot_id or "", _int(mp.size))
                    for mp in mappings or []),
    )  # fmt: skip


def _int(value: Any) -> int:
    return int(value) if str(value or "").isdigit() else 0
