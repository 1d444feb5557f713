"""Tags: TagResources, UntagResources, ListTagResources (instance, disk, snapshot, image)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError, missing_parameter
from localcloud.services.base import api
from localcloud.services.ecs.validation import check_tags, merge_tags
from localcloud.wire import Params

if TYPE_CHECKING:
    from localcloud.services.ecs import EcsService

_PAGE = 50


class TagsMixin:
    def _taggable(self: EcsService, resource_type: str) -> dict[str, Any]:
        stores = {"instance": self.instances, "disk": self.disks, "snapshot": self.snapshots, "image": self.images}
        if not resource_type:
            raise missing_parameter("ResourceType")
        if resource_type not in stores:
            raise ApiError(
                "InvalidResourceType.NotFound",
                f"The specified ResourceType {resource_type!r} is not supported here; use instance, disk, snapshot or image.",
                404,
            )
        return stores[resource_type]

    def _resources(self: EcsService, p: Params, resource_type: str) -> list[Any]:
        store = self._taggable(resource_type)
        ids = p.list("ResourceId")
        if not ids:
            raise missing_parameter("ResourceId")
        if len(ids) > 50:
            raise ApiError("NumberExceed.ResourceIds", "At most 50 ResourceIds may be given.")
        missing = [i for i in ids if i not in store]
        if missing:
            raise ApiError(
                "InvalidResourceId.NotFound",
                f"The specified ResourceIds are not found in our records: {', '.join(missing)}.",
                404,
            )
        resources = [store[i] for i in ids]
        if resource_type == "image" and any(r.owner_alias != "self" for r in resources):
            raise ApiError("InvalidResourceId.NotSupported", "Public images cannot be tagged.", 403)
        return resources

    @api("TagResources", write=True)
    def tag_resources(self: EcsService, p: Params) -> dict[str, Any]:
        self._region(p)
        resources = self._resources(p, p.str("ResourceType", "") or "")
        pairs = p.tags()
        if not pairs:
            raise missing_parameter("Tag")
        check_tags(pairs)
        merged = [merge_tags(r.tags, pairs) for r in resources]  # all validated before any is changed
        for resource, tags in zip(resources, merged, strict=True):
            resource.tags = tags
        return {}

    @api("UntagResources", write=True)
    def untag_resources(self: EcsService, p: Params) -> dict[str, Any]:
        self._region(p)
        resources = self._resources(p, p.str("ResourceType", "") or "")
        keys = p.list("TagKey")
        remove_all = p.bool("All")
        if not keys and not remove_all:
            raise missing_parameter("TagKey")
        if keys and remove_all:
            raise ApiError(
                "InvalidParameter.All", "All=true removes every tag and takes no TagKey.N; give one or the other."
            )
        if len(keys) > 20:
            raise ApiError("NumberExceed.Tags", "At most 20 TagKey.N may be given.")
        for resource in resources:
            if remove_all and not keys:
                resource.tags = {k: v for k, v in resource.tags.items() if k.startswith("acs:")}
            else:
                resource.tags = {k: v for k, v in resource.tags.items() if k not in keys}
        return {}

    @api("ListTagResources")
    def list_tag_resources(self: EcsService, p: Params) -> dict[str, Any]:
        self._region(p)
        resource_type = p.str("ResourceType", "") or ""
        store = self._taggable(resource_type)
        ids = p.list("ResourceId")
        wanted = p.tags()
        for key, value in wanted:
            if value and not key:
                raise ApiError("InvalidParameter.TagValue", "A Tag.N.Value needs its Tag.N.Key.")
        rows = []
        for resource_id, resource in store.items():
            if ids and resource_id not in ids:
                continue
            if wanted and not any(k in resource.tags and (not v or resource.tags[k] == v) for k, v in wanted):
                continue
            for key, value in resource.tags.items():
                rows.append(
                    {"ResourceId": resource_id, "ResourceType": resource_type, "TagKey": key, "TagValue": value}
                )
        token = p.str("NextToken")
        try:
            start = int(token) if token else 0
        except ValueError:
            raise ApiError("InvalidParameter.NextToken", "The specified NextToken is not valid.") from None
        page = rows[start : start + _PAGE]
        next_token = str(start + _PAGE) if start + _PAGE < len(rows) else ""
        return {"NextToken": next_token, "TagResources": {"TagResource": page}}
