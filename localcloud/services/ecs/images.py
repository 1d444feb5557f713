"""Images: the public ones, scenario images, DescribeImages, ModifyImageAttribute, DescribeImageFromFamily,
DeleteImage, ModifyImageSharePermission, DescribeImageSharePermission (CreateImage: image_creation.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError, not_found
from localcloud.guest.spec import GuestSpec
from localcloud.services.base import api
from localcloud.services.ecs.checks import check_result_items
from localcloud.services.ecs.instances import _dry_run, _page, _tags_match
from localcloud.services.ecs.models import DiskMapping, Image, Snapshot
from localcloud.services.ecs.validation import (
    BOOT_MODES,
    check_description,
    check_family,
    check_image_name,
)
from localcloud.wire import Params

if TYPE_CHECKING:
    from localcloud.scenario import ImageSpec
    from localcloud.services.ecs import EcsService

IMAGE_STATUSES = ("Creating", "Waiting", "Available", "UnAvailable", "CreateFailed", "Deprecated")
OWNER_ALIASES = ("system", "self", "others", "marketplace")

# Public images every region has; the repair template's base images are among them.
PUBLIC_IMAGES = [
    ("aliyun_3_x64_20G_alibase_20230727.vhd", "Aliyun", "Alibaba Cloud Linux 3.2104 LTS 64 bit", "x86_64", "linux"),
    ("aliyun_3_arm64_20G_alibase_20230731.vhd", "Aliyun", "Alibaba Cloud Linux 3.2104 LTS 64 bit ARM", "arm64", "linux"),
    ("ubuntu_22_04_x64_20G_alibase_20240101.vhd", "Ubuntu", "Ubuntu 22.04 64 bit", "x86_64", "linux"),
    ("centos_7_9_x64_20G_alibase_20240101.vhd", "CentOS", "CentOS 7.9 64 bit", "x86_64", "linux"),
    ("debian_12_x64_20G_alibase_20240101.vhd", "Debian", "Debian 12 64 bit", "x86_64", "linux"),
    ("win2022_21H2_x64_dtc_en-us_40G_alibase_20240101.vhd", "Windows Server 2022", "Windows Server 2022", "x86_64", "windows"),
]  # fmt: skip

# DescribeImageFromFamily's Image, as documented (alibaba-apis.md §2.6) and modelled by the SDK.
_FAMILY_IMAGE_FIELDS = {
    "ImageId", "ImageName", "ImageFamily", "ImageVersion", "Status", "Progress", "CreationTime", "Description",
    "Architecture", "OSType", "OSName", "Platform", "Size", "Usage", "IsCopied", "IsSelfShared", "IsSubscribed",
    "IsSupportCloudinit", "IsSupportIoOptimized", "ImageOwnerAlias", "ProductCode", "DiskDeviceMappings", "Tags",
}  # fmt: skip
_FAMILY_MAPPING_FIELDS = {"Device", "Format", "ImportOSSBucket", "ImportOSSObject", "Size", "SnapshotId", "Type"}


class _Once:
    """A parameter read once for a whole DescribeImages call. An invalid value still raises where the
    per-image check used to read it, at the first image that gets that far, so the same calls fail."""

    def __init__(self, read: Callable[[str], Any], name: str) -> None:
        self.value: Any = None
        self.error: ApiError | None = None
        try:
            self.value = read(name)
        except ApiError as exc:
            self.error = exc

    def __call__(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class ImagesMixin:
    def _load_public_images(self: EcsService) -> None:
        for image_id, platform, os_name, arch, os_type in PUBLIC_IMAGES:
            self.images[image_id] = Image(
                image_id=image_id,
                name=image_id.removesuffix(".vhd"),
                owner_alias="system",
                status="Available",
                os_type=os_type,
                platform=platform,
                os_name=os_name,
                architecture=arch,
                boot_mode="BIOS" if arch == "x86_64" else "UEFI",
                size=40 if os_type == "windows" else 20,
                mappings=[],
                created_at="2024-01-01T00:00:00Z",
                created_epoch=0,
                done_epoch=0,
                usable=True,
            )

    def load_images(self: EcsService, specs: list[ImageSpec]) -> None:
        """Custom images that exist before the scenario starts, each with its accomplished snapshot."""
        clock = self.cloud.clock
        for spec in specs:
            created = clock.now - spec.age_days * 86400
            snapshot_id = f"s-{spec.id.removeprefix('m-')}"
            self.snapshots[snapshot_id] = Snapshot(
                snapshot_id=snapshot_id,
                name=f"image_{spec.id}",
                disk_id=f"d-{spec.id.removeprefix('m-')}-source",
                disk_type="system",
                source_size=spec.size,
                category="cloud_essd",
                created_at=clock.iso(created),
                created_epoch=created,
                done_epoch=created,
                instance_id=None,
                guest=GuestSpec(check_failures=list(spec.check_failures or [])),
                os_type=spec.os,
                platform=spec.platform,
                architecture=spec.architecture,
                status="accomplished",
            )
            checked = spec.check_failures is not None
            self.images[spec.id] = Image(
                image_id=spec.id,
                name=spec.name or spec.id,
                owner_alias="self",
                status=spec.status,
                os_type=spec.os,
                platform=spec.platform,
                os_name=f"{spec.platform} 64-bit",
                architecture=spec.architecture,
                boot_mode="BIOS",
                size=spec.size,
                mappings=[DiskMapping("/dev/xvda", "system", snapshot_id, spec.size)],
                created_at=clock.iso(created),
                created_epoch=created,
                done_epoch=created,
                family=spec.family,
                tags=dict(spec.tags),
                usable=spec.status != "CreateFailed",
                detection_strategy="Standard" if checked else "",
                detection_status="Finished" if checked else "",
                detection_items=check_result_items(list(spec.check_failures or [])) if checked else [],
            )

    def _image(self: EcsService, image_id: str) -> Image:
        image = self.images.get(image_id)
        if image is None:
            raise not_found("InvalidImageId.NotFound", "ImageId")
        return image

    def images_in_use(self: EcsService) -> set[str]:
        """Ids of the images some instance runs from. Computed once per call, not once per image: answering
        for each image by scanning every instance made DescribeImages images x instances."""
        return {i.image_id for i in self.instances.values() if i.image_id}

    def image_usage(self: EcsService, image: Image, in_use: set[str] | None = None) -> str:
        """`in_use`: images_in_use(), when the caller asks for many images in one call."""
        in_use = self.images_in_use() if in_use is None else in_use
        return "instance" if image.image_id in in_use else "none"

    # -- reading ---------------------------------------------------------------------------------

    @api("DescribeImages")
    def describe_images(self: EcsService, p: Params) -> dict[str, Any]:
        """Status defaults to Available (as real ECS). Filters: ImageId (comma list), ImageName (substring),
        ImageFamily, ImageOwnerAlias, Status, SnapshotId, OSType, Architecture, Usage, IsPublic, Tag.N, Usable.
        Not processed: InstanceType, ActionType, Filter.N, ShowExpired, ResourceGroupId."""
        self._region(p)
        statuses = p.comma_list("Status") or ["Available"]
        if "ALL" in statuses and len(statuses) > 1:
            raise ApiError("InvalidParameter", "Status ALL cannot be combined with other values; use ALL alone.")
        if statuses == ["ALL"]:
            statuses = list(IMAGE_STATUSES)
        for status in statuses:
            if status not in IMAGE_STATUSES:
                raise ApiError(
                    "InvalidParameter",
                    f"The specified Status {status!r} is not valid; use {', '.join(IMAGE_STATUSES)}, or ALL alone.",
                )
        owner = p.str("ImageOwnerAlias")
        if owner and owner not in OWNER_ALIASES:
            raise ApiError("InvalidImageOwnerAlias.ValueNotSupported", f"ImageOwnerAlias {owner!r} is not supported.")
        owners = {owner} if owner else {"system", "self", "others"}
        usage = p.str("Usage")
        if usage and usage not in ("instance", "none"):
            raise ApiError("InvalidUsage", f"The specified Usage {usage!r} is not valid.", 404)
        ids = p.comma_list("ImageId")
        name = (p.str("ImageName") or "").lower()
        tags = p.tag_filter()
        p.choice("OSType", ("linux", "windows"), code="InvalidOSType", status=404)
        p.choice("Architecture", ("i386", "x86_64", "arm64"), code="InvalidArchitecture", status=404)
        created_after, created_before = float("-inf"), float("inf")
        for index, entry in enumerate(p.struct_list("Filter"), start=1):
            # CreationStartTime / CreationEndTime: "resources created after / before the specified time point",
            # yyyy-MM-ddTHH:mmZ in UTC (SDK DescribeImagesRequestFilter). NetworkType is accepted, not applied
            # (every emulated image is a VPC image). An unknown key is the documented error.
            key = entry.get("Key")
            if key not in ("CreationStartTime", "CreationEndTime", "NetworkType"):
                raise ApiError("InvalidFilterKey.NotFound", f"Filter.{index}.Key {key!r} is not supported.", 404)
            if key == "CreationStartTime":
                created_after = _filter_time(entry.get("Value"), index)
            elif key == "CreationEndTime":
                created_before = _filter_time(entry.get("Value"), index)
        # Each parameter read once, not once per image; then only the images an index offers (by id,
        # family, tag or owner: index.py) go through the full filter chain, which decides as before.
        family = _Once(p.str, "ImageFamily")
        snapshot_id = _Once(p.str, "SnapshotId")
        os_type = _Once(p.str, "OSType")
        architecture = _Once(p.str, "Architecture")
        is_public = _Once(p.bool, "IsPublic") if "IsPublic" in p else None
        usable = _Once(p.bool, "Usable") if "Usable" in p else None
        # A bad value must still raise at the first image reaching its check, and the tag check comes after
        # those: so then no tag index, lest it skip that image. Owner and ids are checked before them.
        deferred = any(r is not None and r.error is not None for r in (family, snapshot_id, os_type, architecture,
                                                                        is_public, usable))  # fmt: skip
        in_use = self.images_in_use()
        selected = []
        for image in self.images.candidates(
            ids=ids or None, family=family.value, tags=None if deferred else tags, owners=owners
        ):
            if image.owner_alias not in owners or image.status not in statuses:
                continue
            if ids and image.image_id not in ids:
                continue
            if name and name not in image.name.lower():
                continue
            if family() and image.family != family():
                continue
            if snapshot_id() and not any(m.snapshot_id == snapshot_id() for m in image.mappings):
                continue
            if os_type() and image.os_type != os_type():
                continue
            if architecture() and image.architecture != architecture():
                continue
            if usage and self.image_usage(image, in_use) != usage:
                continue
            if is_public is not None and (image.owner_alias == "system") != is_public():
                continue
            if usable is not None and image.usable != usable():
                continue
            if not created_after <= image.created_epoch <= created_before:
                continue
            if not _tags_match(image.tags, tags):
                continue
            selected.append(image)
        selected.sort(key=lambda i: (i.created_epoch, i.image_id), reverse=True)  # newest first
        page, meta = _page(p, selected, default_size=10, max_size=100)
        now = self.cloud.clock.now
        region, account = self.cloud.region, self.cloud.account_id
        return {
            **meta,
            "RegionId": self.cloud.region,
            "Images": {"Image": [i.to_api(region, account, now, self.image_usage(i, in_use)) for i in page]},
        }

    @api("DescribeImageFromFamily")
    def describe_image_from_family(self: EcsService, p: Params) -> dict[str, Any]:
        """The newest Available custom image of the family. None: `"Image": {}` (the real shape is UNCONFIRMED)."""
        self._region(p)
        family = p.required("ImageFamily")
        candidates = [
            i
            for i in self.images.with_field("family", family)
            if i.family == family and i.status == "Available" and i.owner_alias == "self"
        ]
        if not candidates:
            return {"Image": {}}
        newest = max(candidates, key=lambda i: (i.created_epoch, i.image_id))
        full = newest.to_api(self.cloud.region, self.cloud.account_id, self.cloud.clock.now, self.image_usage(newest))
        # This API documents a smaller Image than DescribeImages (alibaba-apis.md §2.6; the SDK model
        # agrees): no BootMode, Features, DetectionOptions, Usable..., and leaner disk mappings.
        image = {k: v for k, v in full.items() if k in _FAMILY_IMAGE_FIELDS}
        image["DiskDeviceMappings"] = {
            "DiskDeviceMapping": [
                {k: v for k, v in m.items() if k in _FAMILY_MAPPING_FIELDS}
                for m in full["DiskDeviceMappings"]["DiskDeviceMapping"]
            ]
        }
        return {"Image": image}

    # -- changing --------------------------------------------------------------------------------

    @api("ModifyImageAttribute", write=True)
    def modify_image_attribute(self: EcsService, p: Params) -> dict[str, Any]:
        self._region(p)
        image = self._own_image(p.required("ImageId"))
        name = p.str("ImageName")
        if name is not None:
            check_image_name(name)
            if self._name_taken(name, except_id=image.image_id):
                raise ApiError("InvalidImageName.Duplicated", "The specified Image name has already bean used.")
        family = p.str("ImageFamily")
        if family is not None:
            check_family(family)
        description = p.str("Description")
        if description is not None:
            check_description(description)
        status = p.str("Status")
        if status is not None:
            if status not in ("Deprecated", "Available"):
                raise ApiError("InvalidParameter.Status", f"Status must be Deprecated or Available, got {status!r}.")
            if image.status not in ("Available", "Deprecated"):
                raise ApiError(
                    "IncorrectImageStatus",
                    f"The current status of the image ({image.status}) does not support this operation.",
                    403,
                )
            if status == "Deprecated" and image.shared_with:
                raise ApiError(
                    "ImageUseShared",
                    f"The specified image has been shared to others ({', '.join(image.shared_with)}); "
                    "unshare it (ModifyImageSharePermission RemoveAccount) before deprecating it.",
                    403,
                )
        boot_mode = p.str("BootMode")
        if boot_mode is not None and boot_mode not in BOOT_MODES:
            raise ApiError("InvalidBootMode.ValueNotSupported", f"The specified BootMode {boot_mode!r} is not valid.")
        if p.bool("DryRun"):
            raise _dry_run()
        if name is not None:
            image.name = name
        if family is not None:
            image.family = family
        if description is not None:
            image.description = description
        if status is not None:
            image.status = status
        if boot_mode is not None:
            image.boot_mode = boot_mode
        return {}

    def _own_image(self: EcsService, image_id: str) -> Image:
        image = self._image(image_id)
        if image.owner_alias != "self":
            raise ApiError(
                "OperationDenied.ImageNotOwned", f"Image {image_id} is not a custom image of this account.", 403
            )
        return image

    @api("ModifyImageSharePermission", write=True)
    def modify_image_share_permission(self: EcsService, p: Params) -> dict[str, Any]:
        self._region(p)
        image = self._own_image(p.required("ImageId"))
        for account in p.list("AddAccount"):
            if account not in image.shared_with:
                image.shared_with.append(account)
        for account in p.list("RemoveAccount"):
            if account in image.shared_with:
                image.shared_with.remove(account)
        return {}

    @api("DescribeImageSharePermission")
    def describe_image_share_permission(self: EcsService, p: Params) -> dict[str, Any]:
        self._region(p)
        image = self._own_image(p.required("ImageId"))
        return {
            "ImageId": image.image_id,
            "RegionId": self.cloud.region,
            "TotalCount": len(image.shared_with),
            "PageNumber": 1,
            "PageSize": 100,
            "Accounts": {"Account": [{"AliyunId": a, "SharedTime": ""} for a in image.shared_with]},
            "ShareGroups": {"ShareGroup": []},
        }

    @api("DeleteImage", write=True)
    def delete_image(self: EcsService, p: Params) -> dict[str, Any]:
        """A missing image is silently ignored, as documented. Deleting an image keeps its snapshots."""
        self._region(p)
        image_id = p.required("ImageId")
        image = self.images.get(image_id)
        if image is None:
            return {}
        if image.owner_alias != "self":
            raise ApiError(
                "OperationDenied.ImageNotOwned", f"Image {image_id} is not a custom image of this account.", 403
            )
        force = p.bool("Force")
        users = [i.instance_id for i in self.instances.values() if i.image_id == image_id]
        if users and not force:
            raise ApiError(
                "ImageUsingByInstance",
                f"The specified image has been used to create instances ({', '.join(users)}); pass Force=true to delete it anyway.",
                403,
            )
        # Force only overrides instances using the image; a shared image is refused regardless (ECS DeleteImage
        # error codes: 403 ImageUseShared "The specified image has been shared to others. You can use the
        # DescribeImageSharePermission API to query the users who have been shared."; the Force parameter is
        # documented as ignoring instances only; cancel sharing with ModifyImageSharePermission RemoveAccount first).
        if image.shared_with:
            raise ApiError(
                "ImageUseShared",
                "The specified image has been shared to others. You can use the DescribeImageSharePermission API "
                f"to query the users who have been shared ({', '.join(sorted(image.shared_with))}).",
                403,
            )
        if p.bool("DryRun"):
            raise _dry_run()
        del self.images[image_id]
        return {}


def _filter_time(value: Any, index: int) -> float:
    """A Filter.N.Value time (yyyy-MM-ddTHH:mmZ; seconds accepted) as epoch seconds. The error code for a
    malformed one is not published (UNCONFIRMED): InvalidParameter, 400."""
    for layout in ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(str(value), layout).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise ApiError("InvalidParameter", f"Filter.{index}.Value {value!r} is not a time like 2026-01-05T09:00Z (UTC).")
