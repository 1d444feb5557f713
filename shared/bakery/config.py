"""Configuration: environment variables as one validated model, read once per invocation.

Each variable's *source* says who sets it: `template` (template.yml EnvironmentVariables — a contract
test keeps the two identical), `platform` (FC itself), or `local` (only the local runtime, to point the
SDKs at the local cloud).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from bakery.errors import ConfigError

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _var(name: str, source: str, default: Any = None) -> Any:
    return field(default=default, metadata={"env": name, "source": source})


@dataclass(frozen=True)
class Settings:
    # -- template.yml EnvironmentVariables ---------------------------------------------------------
    event_bus: str = _var("BAKERY_EVENT_BUS", "template", "bakery")
    mandatory_tags: Mapping[str, str] = _var("BAKERY_MANDATORY_TAGS", "template", None)
    repair_zone_id: str = _var("BAKERY_REPAIR_ZONE_ID", "template", "")
    repair_vswitch_id: str = _var("BAKERY_REPAIR_VSWITCH_ID", "template", "")
    repair_security_group_id: str = _var("BAKERY_REPAIR_SECURITY_GROUP_ID", "template", "")
    repair_instance_type: str = _var("BAKERY_REPAIR_INSTANCE_TYPE", "template", "ecs.g7.large")
    log_level: str = _var("BAKERY_LOG_LEVEL", "template", "INFO")
    min_free_mb: int = _var("BAKERY_MIN_FREE_MB", "template", 1024)
    max_create_attempts: int = _var("BAKERY_MAX_CREATE_ATTEMPTS", "template", 2)
    max_repairs: int = _var("BAKERY_MAX_REPAIRS", "template", 2)
    unchecked_guest_policy: str = _var("BAKERY_UNCHECKED_GUEST_POLICY", "template", "block")  # block | warn
    unchecked_image_policy: str = _var("BAKERY_UNCHECKED_IMAGE_POLICY", "template", "fail")  # fail | promote
    retire_policy: str = _var("BAKERY_RETIRE_POLICY", "template", "delete")  # delete | deprecate
    # Retention (bakery.families.retention): images kept per family (tag `bakery:retention-keep` overrides it per
    # family) and what happens to older ones.
    retention_keep: int = _var("BAKERY_RETENTION_KEEP", "template", 3)
    retention_action: str = _var("BAKERY_RETENTION_ACTION", "template", "deprecate")  # deprecate | delete
    # Images made outside Bakery (stages.adopt): which ones Bakery follows and repairs — off | tag (images tagged
    # bakery:adopt=true) | families (those, and images of BAKERY_ADOPT_FAMILIES) | all — and what becomes of a
    # broken original once its repaired image is promoted: deprecate | delete (never one in use) | leave.
    adopt_images: str = _var("BAKERY_ADOPT_IMAGES", "template", "tag")
    adopt_families: tuple[str, ...] = _var("BAKERY_ADOPT_FAMILIES", "template", ())
    adopted_original: str = _var("BAKERY_ADOPTED_ORIGINAL", "template", "deprecate")
    # -- set by Function Compute ------------------------------------------------------------------
    region: str = _var("FC_REGION", "platform", "")
    account_id: str = _var("FC_ACCOUNT_ID", "platform", "")
    access_key_id: str = _var("ALIBABA_CLOUD_ACCESS_KEY_ID", "platform", "")
    access_key_secret: str = _var("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "platform", "")
    security_token: str = _var("ALIBABA_CLOUD_SECURITY_TOKEN", "platform", "")
    # -- set only by the local runtime --------------------------------------------------------------
    cloud_endpoint: str = _var("BAKERY_CLOUD_ENDPOINT", "local", "")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = raw
        if "mandatory_tags" in values:
            values["mandatory_tags"] = _tag_mapping(values["mandatory_tags"])
        for name, low in (("min_free_mb", 0), ("max_create_attempts", 1), ("max_repairs", 0), ("retention_keep", 1)):
            if name in values:
                values[name] = _whole_number(cls, name, values[name], low)
        if "adopt_families" in values:
            values["adopt_families"] = tuple(f.strip() for f in values["adopt_families"].split(",") if f.strip())
        settings = cls(**values)
        if not settings.region:
            raise ConfigError(
                "FC_REGION is not set: Bakery needs the region it runs in (FC sets it on every instance)."
            )
        if settings.log_level.upper() not in _LOG_LEVELS:
            raise ConfigError(f"BAKERY_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {settings.log_level!r}.")
        for name, allowed in (("unchecked_guest_policy", ("block", "warn")), ("unchecked_image_policy", ("fail", "promote")),
                              ("retire_policy", ("delete", "deprecate")),
                              ("retention_action", ("deprecate", "delete")),
                              ("adopt_images", ("off", "tag", "families", "all")),
                              ("adopted_original", ("deprecate", "delete", "leave"))):  # fmt: skip
            if getattr(settings, name) not in allowed:
                env_name = next(f.metadata["env"] for f in fields(cls) if f.name == name)
                raise ConfigError(f"{env_name} must be one of {', '.join(allowed)}, got {getattr(settings, name)!r}.")
        if settings.adopt_images == "families" and not settings.adopt_families:
            raise ConfigError(
                "BAKERY_ADOPT_IMAGES=families needs BAKERY_ADOPT_FAMILIES: the image families whose new "
                "images Bakery follows, comma-separated (or use tag: images tagged bakery:adopt=true)."
            )
        return settings

    @property
    def tags_required(self) -> dict[str, str]:
        return dict(self.mandatory_tags or {})

    @classmethod
    def variables(cls, source: str | None = None) -> set[str]:
        """The env var names this model reads (optionally only those of one source)."""
        return {f.metadata["env"] for f in fields(cls) if source is None or f.metadata["source"] == source}


def _whole_number(cls: type, name: str, raw: str, low: int) -> int:
    env_name = next(f.metadata["env"] for f in fields(cls) if f.name == name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{env_name} must be a whole number, got {raw!r}.") from None
    if value < low:
        raise ConfigError(f"{env_name} must be >= {low}, got {value}.")
    return value


def _tag_mapping(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f'BAKERY_MANDATORY_TAGS must be a JSON object like {{"cost-center": "42"}}: {exc.msg}'
        ) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError('BAKERY_MANDATORY_TAGS must be a JSON object of strings, like {"cost-center": "42"}.')
    return value
