"""The operator's actions in a local run (a scenario's `actions`): what a person does in the console or with a
tool — tag an instance, make an image outside Bakery — through the real SDK with the operator's own key, retried
as a person would retry a failed console call. `LocalRun` takes these on (`OperatorActions`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bakery.errors import is_throttling

OPERATOR_KEY = "LTAIoperator"  # the operator's own access key: ActionTrail shows who tagged


class OperatorActions:
    """The scenario actions of a `LocalRun` (which provides cloud, cloud_env, runtime, operator, scenario)."""

    cloud: Any
    cloud_env: Any
    runtime: Any
    operator: Any
    scenario: Any
    created_images: dict[str, list[dict[str, Any]]]
    created_images_as: dict[str, dict[str, str]]

    def tag(self, instance_id: str, tag_values: dict[str, str]) -> None:
        """What a person does in the console or CLI: TagResources on the instance."""
        from alibabacloud_ecs20140526 import models as m

        request = m.TagResourcesRequest(
            region_id=self.cloud.region, resource_type="instance", resource_id=[instance_id],
            tag=[m.TagResourcesRequestTag(key=k, value=str(v)) for k, v in tag_values.items()])  # fmt: skip
        self._as_operator(f"tagging {instance_id}", lambda: self.operator.tag_resources(request))

    def _as_operator(self, what: str, call: Callable[[], Any]) -> Any:
        """An operator's call: a person retries a throttled or failed console call a few seconds later."""
        from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

        for attempt in range(10):
            try:
                return call()
            except AlibabaCloudException as exc:
                transient = is_throttling(exc.code or "") or (getattr(exc, "status_code", 0) or 0) >= 500
                if not transient or attempt == 9:
                    message = (exc.data or {}).get("Message", str(exc)) if isinstance(exc.data, dict) else str(exc)
                    raise ValueError(f"scenario action: {what} failed: {exc.code}: {message}") from None
                self.runtime.run_until(self.cloud.clock.now + 1)
        return None

    def create_image(self, spec: dict[str, Any]) -> str:
        """An image made outside Bakery (Packer, Terraform, a person): CreateImage from an instance (or the
        snapshot `snapshot`) with the operator's key — through the console's user agent when `via: console`, so
        ActionTrail records a ConsoleOperation — then shared with `share` accounts. Returns the image id."""
        from alibabacloud_ecs20140526 import models as m
        from alibabacloud_ecs20140526.client import Client as EcsClient

        from localcloud.cloud import CONSOLE_USER_AGENT
        from localcloud.testing import sdk_config

        client = self.operator
        if spec.get("via", "api") == "console":
            config = sdk_config(self.cloud_env.endpoint, self.cloud.region, access_key_id=OPERATOR_KEY)
            config.user_agent = CONSOLE_USER_AGENT
            client = EcsClient(config)
        request = m.CreateImageRequest(
            region_id=self.cloud.region, instance_id=spec.get("instance"), snapshot_id=spec.get("snapshot"),
            image_name=spec.get("name"), image_family=spec.get("family") or None,
            description=spec.get("description") or None,
            detection_strategy="Standard" if spec.get("check", True) else None,
            tag=[m.CreateImageRequestTag(key=k, value=str(v)) for k, v in (spec.get("tags") or {}).items()] or None,
            client_token=f"operator-{spec['name']}"[:64])  # fmt: skip
        image_id = self._as_operator(f"CreateImage {spec['name']}", lambda: client.create_image(request)).body.image_id
        self.created_images[image_id] = [mapping_row(d) for d in self.cloud.ecs.images[image_id].mappings]
        self.created_images_as[image_id] = {"name": spec["name"], "family": spec.get("family") or ""}
        if spec.get("share"):
            share = m.ModifyImageSharePermissionRequest(region_id=self.cloud.region, image_id=image_id,
                                                        add_account=[str(a) for a in spec["share"]])  # fmt: skip
            self._as_operator(f"sharing {image_id}", lambda: self.operator.modify_image_share_permission(share))
        return image_id

    def apply(self, action: dict[str, Any]) -> None:
        if "tag" in action:
            spec = action["tag"]
            self.tag(spec["instance"], spec["tags"])
        elif "create_image" in action:
            self.create_image(action["create_image"])
        else:
            raise ValueError(f"unknown scenario action {action!r}: supported: {ACTIONS}")

    def _validated_actions(self) -> list[dict[str, Any]]:
        actions = []
        for index, action in enumerate(self.scenario.actions):
            where = f"actions[{index}]"
            kinds = [k for k in ("tag", "create_image") if isinstance(action, dict) and k in action]
            if len(kinds) != 1 or set(action) - {"at", kinds[0]} or not isinstance(action[kinds[0]], dict):
                raise ValueError(f"{where}: an action is one of {ACTIONS}, got {action!r}")
            at = action.get("at", 0)
            if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
                raise ValueError(f"{where}.at must be a number of seconds >= 0, got {at!r}")
            if kinds == ["tag"]:
                tag = action["tag"]
                if not isinstance(tag.get("instance"), str) or not isinstance(tag.get("tags"), dict) or not tag["tags"]:
                    raise ValueError(
                        f"{where}.tag needs instance: ONE instance id (a string) and tags: a non-empty mapping"
                    )
            else:
                _check_create_image(action["create_image"], f"{where}.create_image")
            actions.append(action)
        return sorted(actions, key=lambda a: float(a.get("at", 0)))


ACTIONS = (
    "{at: SECONDS, tag: {instance, tags}}",
    "{at: SECONDS, create_image: {instance | snapshot, name, family, "
    "description, tags, check: true|false, via: api|console, share: [accounts]}}",
)
_CREATE_IMAGE_KEYS = {"instance", "snapshot", "name", "family", "description", "tags", "check", "via", "share"}


def _check_create_image(spec: dict[str, Any], where: str) -> None:
    unknown = set(spec) - _CREATE_IMAGE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_CREATE_IMAGE_KEYS)}")
    if (spec.get("instance") is None) == (spec.get("snapshot") is None):
        raise ValueError(f"{where} needs instance: i-... or snapshot: s-... (one of them)")
    if not isinstance(spec.get("name"), str) or not spec["name"]:
        raise ValueError(f"{where}.name must be the image's name (a string)")
    if spec.get("via", "api") not in ("api", "console"):
        raise ValueError(f"{where}.via must be api or console, got {spec.get('via')!r}")
    if not isinstance(spec.get("tags", {}), dict) or not isinstance(spec.get("share", []), list):
        raise ValueError(f"{where}: tags is a mapping, share a list of account ids")
    if not isinstance(spec.get("check", True), bool):
        raise ValueError(f"{where}.check must be true or false")


def mapping_row(mapping: Any) -> dict[str, Any]:
    return {"device": mapping.device, "type": mapping.disk_type, "sizeGiB": mapping.size}
