"""`bakery deploy`'s settings: defaults < the environment < [tool.bakery.deploy] in pyproject.toml < --config FILE
< the flags (later wins; `parameters` merge key by key). Unknown keys and malformed values name their source."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakery.errors import ConfigError
from bakery_tools.deploy.errors import DeployError
from bakery_tools.exits import EXIT_USAGE

DEFAULT_STACK = "bakery"
DEFAULT_PREFIX = "bakery"
DEFAULT_TIMEOUT_MINUTES = 30
MIN_TIMEOUT, MAX_TIMEOUT = 10, 1440  # CreateStack/UpdateStack TimeoutInMinutes
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")
# Settings a [tool.bakery.deploy] table, a --config file and the flags may set.
SETTING_KEYS = ("stack", "region", "endpoint", "bucket", "prefix", "template", "timeout", "parameters", "artifacts")


@dataclass(frozen=True)
class DeploySettings:
    stack: str = DEFAULT_STACK
    region: str = ""
    endpoint: str = ""  # a local cloud's host:port; "" = Alibaba Cloud
    bucket: str = ""
    prefix: str = DEFAULT_PREFIX
    template: Path = Path("template.yml")
    timeout: int = DEFAULT_TIMEOUT_MINUTES  # minutes: ROS's TimeoutInMinutes, and how long deploy follows
    parameters: dict[str, str] = field(default_factory=dict)
    artifacts: Path | None = None  # zips already built (make package): deploy them instead of building
    origins: dict[str, str] = field(default_factory=dict)  # setting -> where its value came from


@dataclass(frozen=True)
class Layer:
    """One source of settings: `values` as read (TOML table or flags), paths relative to `base`."""

    origin: str
    values: Mapping[str, Any]
    base: Path | None = None


def _toml() -> Any:
    try:
        import tomllib  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError:  # python3.10: the `local` extra installs tomli
        import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
    return tomllib


def read_toml(path: Path) -> dict[str, Any]:
    tomllib = _toml()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployError(EXIT_USAGE, "bad-config", f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeployError(EXIT_USAGE, "bad-config", f"{path}: not valid TOML ({exc})") from None


def _deploy_table(document: Mapping[str, Any]) -> Any:
    return ((document.get("tool") or {}).get("bakery") or {}).get("deploy")


def pyproject_layer(path: Path) -> Layer | None:
    """The `[tool.bakery.deploy]` table of pyproject.toml (the settings a team commits); None without one."""
    if not path.is_file():
        return None
    table = _deploy_table(read_toml(path))
    if table is None:
        return None
    if not isinstance(table, dict):
        raise DeployError(EXIT_USAGE, "bad-config", f"{path}: [tool.bakery.deploy] must be a table")
    return Layer(f"{path.name} [tool.bakery.deploy]", table, path.resolve().parent)


def config_layer(path: Path) -> Layer:
    """A `--config FILE`: the same keys at its top level (or in its own [tool.bakery.deploy] table)."""
    document = read_toml(path)
    table = _deploy_table(document)
    return Layer(str(path), table if isinstance(table, dict) else document, path.resolve().parent)


def flag_layer(values: Mapping[str, Any]) -> Layer:
    """The command line: None means the flag was not given."""
    return Layer("the command line", {k: v for k, v in values.items() if v is not None and v != {}}, None)


def parse_parameter_flags(items: Iterable[str]) -> dict[str, str]:
    """`--parameter KEY=VALUE` (repeatable) as a dict; a malformed item is bad input."""
    parameters: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DeployError(EXIT_USAGE, "bad-parameter", f"--parameter takes KEY=VALUE (a template parameter, e.g. "
                              f"RepairZoneId=cn-hangzhou-h), got {item!r}")  # fmt: skip
        parameters[key.strip()] = value
    return parameters


def resolve_settings(layers: Sequence[Layer], env: Mapping[str, str] | None = None) -> DeploySettings:
    """Defaults, then the environment (ALIBABA_CLOUD_REGION_ID, BAKERY_CLOUD_ENDPOINT), then each layer in
    order — later wins; `parameters` merge key by key. Unknown keys and malformed values name their source."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {"stack": DEFAULT_STACK, "prefix": DEFAULT_PREFIX, "template": Path("template.yml"),
                              "timeout": DEFAULT_TIMEOUT_MINUTES, "region": "", "endpoint": "", "bucket": "",
                              "artifacts": None}  # fmt: skip
    origins = dict.fromkeys(values, "default")
    for key, variable in (("region", "ALIBABA_CLOUD_REGION_ID"), ("endpoint", "BAKERY_CLOUD_ENDPOINT")):
        if env.get(variable):
            values[key], origins[key] = env[variable], f"${variable}"
    parameters: dict[str, str] = {}
    for layer in layers:
        for key, raw in layer.values.items():
            if key not in SETTING_KEYS:
                raise DeployError(EXIT_USAGE, "bad-config", f"{layer.origin}: unknown setting {key!r} "
                                  f"(allowed: {', '.join(SETTING_KEYS)})")  # fmt: skip
            if key == "parameters":
                if not isinstance(raw, Mapping):
                    raise DeployError(EXIT_USAGE, "bad-config", f"{layer.origin}: parameters must be a table of "
                                      "template parameters (KEY = VALUE)")  # fmt: skip
                for name, value in raw.items():
                    parameters[str(name)] = _parameter_text(layer, str(name), value)
                    origins[f"parameters.{name}"] = layer.origin
                continue
            values[key] = _setting(layer, key, raw)
            origins[key] = layer.origin
    values["endpoint"] = _endpoint(values["endpoint"])
    return DeploySettings(**values, parameters=parameters, origins=origins)


def _setting(layer: Layer, key: str, raw: Any) -> Any:
    where = f"{layer.origin}: {key}"
    if key == "timeout":
        if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).strip().isdigit():
            raise DeployError(EXIT_USAGE, "bad-config", f"{where} is a whole number of minutes, got {raw!r}")
        minutes = int(str(raw).strip())
        if not MIN_TIMEOUT <= minutes <= MAX_TIMEOUT:
            raise DeployError(EXIT_USAGE, "bad-config", f"{where} must be {MIN_TIMEOUT} to {MAX_TIMEOUT} minutes (ROS's "
                              f"TimeoutInMinutes), got {minutes}")  # fmt: skip
        return minutes
    if not isinstance(raw, (str, os.PathLike)):
        raise DeployError(EXIT_USAGE, "bad-config", f"{where} must be a string, got {raw!r}")
    text = str(raw).strip()
    if key in ("template", "artifacts"):
        path = Path(text).expanduser()
        return path if path.is_absolute() or layer.base is None else layer.base / path
    if key == "stack" and not _STACK_NAME.match(text):
        raise DeployError(EXIT_USAGE, "bad-config", f"{where}: {text!r} is not a stack name (letters, digits, - and "
                          "_, starting with a letter or digit, up to 255)")  # fmt: skip
    if key == "bucket" and not _BUCKET.match(text):
        raise DeployError(EXIT_USAGE, "bad-config", f"{where}: {text!r} is not an OSS bucket name (3-63 of a-z, 0-9 "
                          "and -, starting and ending with a letter or digit)")  # fmt: skip
    if key == "prefix":
        text = text.strip("/")
        if not _PREFIX.match(text):
            raise DeployError(EXIT_USAGE, "bad-config", f"{where}: {raw!r} is not an object prefix (letters, digits, "
                              "., _, - and /)")  # fmt: skip
    return text


def _parameter_text(layer: Layer, name: str, value: Any) -> str:
    """A parameter value as ROS takes it: text; TOML tables and arrays become JSON (MandatoryTags = {a = "b"})."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, (str, int, float)):
        return str(value)
    raise DeployError(EXIT_USAGE, "bad-config", f"{layer.origin}: parameters.{name} has an unsupported value {value!r}")


def _endpoint(value: str) -> str:
    text = (value or "").strip()
    for scheme in ("http://", "https://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    return text.rstrip("/")


def target_settings(settings: DeploySettings) -> Any:
    """The bakery.config.Settings the operator commands use (bakery_tools.target): region, endpoint, credentials."""
    from bakery_tools.target import settings_for

    try:
        return settings_for(argparse.Namespace(region=settings.region, endpoint=settings.endpoint, bus=DEFAULT_STACK))
    except ConfigError as exc:
        raise DeployError(EXIT_USAGE, "no-region", f'{exc} (or region = "..." in [tool.bakery.deploy]).') from None
