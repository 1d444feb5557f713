"""The Alibaba Cloud RPC wire protocol, as the Tea/Darabonba SDKs speak it.

The SDK sends `POST /?<params>` with the action and version in `x-acs-action`/`x-acs-version`
headers (signature V3), or in `Action`/`Version` query params (legacy V2). EventBridge puts its
params in a form body instead of the query. Lists arrive flattened (`Tag.1.Key`, `InstanceId.2`),
booleans as `True`/`False`, and some params are JSON strings the caller encoded itself.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from localcloud.errors import ApiError, invalid_parameter, missing_parameter

# x-acs-version → the service that answers it.
SERVICE_BY_VERSION = {"2014-05-26": "ecs", "2019-06-01": "oos", "2020-04-01": "eventbridge", "2019-09-10": "ros"}

# Params of the protocol envelope, never business params.
_ENVELOPE_PARAMS = {
    "Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
    "SignatureNonce", "Timestamp", "SecurityToken", "SignatureType",
}  # fmt: skip

_FLAT_KEY = re.compile(r"^(?P<name>[A-Za-z][\w]*)\.(?P<index>\d+)(?:\.(?P<field>.+))?$")


@dataclass
class ApiRequest:
    service: str
    version: str
    action: str
    params: Params
    access_key_id: str


def parse_request(method: str, url: str, headers: Mapping[str, str], body: bytes) -> ApiRequest:
    """Turn one HTTP request into (service, action, params). Raises ApiError for unknown shapes."""
    lower_headers = {k.lower(): v for k, v in headers.items()}
    raw: dict[str, str] = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    content_type = lower_headers.get("content-type", "")
    if body and content_type.startswith("application/x-www-form-urlencoded"):
        try:
            raw.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise ApiError("InvalidParameter", "The form body is not UTF-8 encoded.", 400) from None
    action = lower_headers.get("x-acs-action") or raw.get("Action")
    version = lower_headers.get("x-acs-version") or raw.get("Version")
    if not action:
        raise missing_parameter("Action")
    if not version:
        raise missing_parameter("Version")
    service = SERVICE_BY_VERSION.get(version)
    if service is None:
        raise ApiError(
            "InvalidVersion",
            f"Specified parameter Version is not valid: {version}. "
            f"The local cloud speaks {', '.join(sorted(SERVICE_BY_VERSION))}.",
            400,
        )
    return ApiRequest(
        service=service,
        version=version,
        action=action,
        params=Params({k: v for k, v in raw.items() if k not in _ENVELOPE_PARAMS}),
        access_key_id=_access_key_id(lower_headers, raw),
    )


def _access_key_id(headers: Mapping[str, str], raw: Mapping[str, str]) -> str:
    auth = headers.get("authorization", "")
    match = re.search(r"Credential=([^,]+)", auth)
    if match:
        return match.group(1)
    return headers.get("x-acs-accesskey-id") or raw.get("AccessKeyId") or "anonymous"


def unflatten(flat: Mapping[str, str]) -> dict[str, Any]:
    """`Tag.1.Key=a&Tag.1.Value=b&InstanceId.1=i` → {"Tag": [{"Key": "a", "Value": "b"}], "InstanceId": ["i"]}.

    Keys without an index and nested fields (`Features.ImdsSupport`) become nested dicts.
    """
    result: dict[str, Any] = {}
    indexed: dict[str, dict[int, Any]] = {}
    for key, value in flat.items():
        match = _FLAT_KEY.match(key)
        if match:
            slots = indexed.setdefault(match["name"], {})
            index = int(match["index"])
            if match["field"] is None:
                slots[index] = value
            else:
                entry = slots.setdefault(index, {})
                if isinstance(entry, dict):
                    _set_path(entry, match["field"].split("."), value)
        elif "." in key:
            _set_path(result, key.split("."), value)
        else:
            result[key] = value
    for name, slots in indexed.items():
        result[name] = [slots[i] for i in sorted(slots)]
    return result


def _set_path(target: dict[str, Any], path: list[str], value: str) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


class Params:
    """Typed access to one request's params; each accessor raises the error real ECS would."""

    def __init__(self, flat: Mapping[str, str]) -> None:
        self.flat = dict(flat)
        self._nested: dict[str, Any] | None = None

    @property
    def nested(self) -> dict[str, Any]:
        if self._nested is None:
            self._nested = unflatten(self.flat)
        return self._nested

    def __contains__(self, name: str) -> bool:
        return name in self.nested and self.nested[name] not in ("", None)

    def str(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.nested.get(name)
        if value is None or value == "":
            if required:
                raise missing_parameter(name)
            return default
        if not isinstance(value, str):
            raise invalid_parameter(name, "expected a single value")
        return value

    def filter_str(self, name: str) -> Any:
        """`p.str(name)` for a filter tested in a scan over many resources, looked up once: the value, or None,
        or (a value p.str would refuse) an object that raises p.str's error when first tested for truth, so an
        `x and ...` / `not x or ...` test fails exactly where `p.str(name)` in its place would, and only then."""
        value = self.nested.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        return _Refused(name)

    def required(self, name: str) -> str:
        value = self.str(name, required=True)
        assert value is not None
        return value

    def int(
        self, name: str, default: int | None = None, *, low: int | None = None, high: int | None = None
    ) -> int | None:
        text = self.str(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise invalid_parameter(name, f"{text!r} is not an integer") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"<= {high}" if low is None else f"from {low} to {high}"
            raise invalid_parameter(name, f"{value} is not {bounds}")
        return value

    def bool(self, name: str, default: bool = False) -> bool:
        # The Python SDK sends str(bool): "True"/"False"; other SDKs send lower case.
        text = self.str(name)
        if text is None:
            return default
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise invalid_parameter(name, f"{text!r} is not a boolean")
        return lowered == "true"

    def list(self, name: str) -> list[str]:
        """`Name.N=value` params, in index order."""
        value = self.nested.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        return [v for v in value if isinstance(v, str)]

    def struct_list(self, name: str) -> list[dict[str, Any]]:
        """`Name.N.Field=value` params, as a list of dicts in index order."""
        value = self.nested.get(name)
        if not isinstance(value, list):
            return []
        return [v if isinstance(v, dict) else {} for v in value]

    def struct(self, name: str) -> dict[str, Any]:
        value = self.nested.get(name)
        return value if isinstance(value, dict) else {}

    def json(self, name: str, default: Any = None) -> Any:
        """A param the caller JSON-encoded itself (InstanceIds, SnapshotIds, OOS Parameters...)."""
        text = self.str(name)
        if text is None:
            return default
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise invalid_parameter(name, f"not valid JSON ({exc.msg})") from None

    def json_list(self, name: str) -> list[str] | None:
        value = self.json(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid_parameter(name, 'expected a JSON array of strings, e.g. ["id-1", "id-2"]')
        return value

    def comma_list(self, name: str) -> list[str]:
        text = self.str(name)
        return [part.strip() for part in text.split(",") if part.strip()] if text else []

    def tags(self, name: str = "Tag") -> list[tuple[str, str]]:
        """`Tag.N.Key` / `Tag.N.Value` pairs (value may be empty)."""
        pairs = []
        for index, entry in enumerate(self.struct_list(name), start=1):
            key, value = entry.get("Key", ""), entry.get("Value", "")
            if not isinstance(key, str) or not isinstance(value, str):
                raise invalid_parameter(f"{name}.{index}", "Key and Value must be single strings")
            pairs.append((key, value))
        return pairs

    def tag_filter(self, name: str = "Tag") -> list[tuple[str, str]]:
        """Tag.N filters of Describe* calls: N is 1..20 (more is 400 InvalidTagCount)."""
        pairs = self.tags(name)
        if len(pairs) > 20:
            raise ApiError("InvalidTagCount", "The number of tags to filter by is at most 20.", 400)
        return pairs

    def choice(
        self, name: str, allowed: tuple[str, ...], default: str | None = None, *, code: str = "", status: int = 400
    ) -> str | None:
        """A param that must be one of `allowed` (case-sensitive, as the services are)."""
        value = self.str(name, default)
        if value is not None and value not in allowed:
            raise ApiError(code or f"InvalidParameter.{name}",
                           f"The specified {name} {value!r} is not valid; use one of {', '.join(allowed)}.", status)  # fmt: skip
        return value


class _Refused:
    """What Params.filter_str returns for a value p.str would refuse (not a single string)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __bool__(self) -> bool:
        raise invalid_parameter(self.name, "expected a single value")


def decode_content(text: str, encoding: str | None) -> str:
    if (encoding or "PlainText").lower() == "base64":
        try:
            return base64.b64decode(text).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise invalid_parameter("CommandContent", "not valid Base64") from None
    return text


def paginate(items: Iterable[Any], page_number: int, page_size: int) -> list[Any]:
    items = list(items)
    start = (page_number - 1) * page_size
    return items[start : start + page_size]


# -- REST-style protocols (OSS, FC 3.0 ROA) -------------------------------------------------------

# FC 3.0's ROA API lives under its version: POST /2023-03-30/functions, GET /2023-03-30/functions/{name}...
FC_PATH_PREFIX = "/2023-03-30/"


@dataclass
class RestRequest:
    """One request of a REST-style service, its HTTP parts normalised. `action` is set by the service that
    answers it once it knows which API the request is (OSS: from method, bucket, key and sub-resource)."""

    method: str
    path: str  # as sent (percent-encoded), without the query
    query: dict[str, str]  # decoded; a bare sub-resource (`?acl`) is {"acl": ""}
    headers: dict[str, str]  # names lower-cased
    body: bytes
    host: str  # the host the client addressed, port included
    access_key_id: str
    subdomain: str = ""  # labels in front of the cloud's own host name: an OSS virtual-hosted bucket
    action: str = ""


def route(method: str, url: str, headers: Mapping[str, str], *, host: str = "", base_hosts: Iterable[str] = ()) -> str:
    """The protocol a request speaks: "oss", "fc" or "rpc" (the admin API is routed before this).

    OSS is told apart by what only OSS requests carry: a virtual-hosted bucket in the host, an OSS signature
    (`Authorization: OSS4-HMAC-SHA256 …` / `OSS ak:sig`) or `x-oss-*` headers/params. Then FC 3.0 by its path
    prefix; then RPC, whose requests all go to `/`. Any other path is an anonymous path-style OSS request.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    parts = urlsplit(url)
    if subdomain_of(host or lower.get("host", "") or parts.netloc, base_hosts):
        return "oss"
    if _speaks_oss(lower, parts.query):
        return "oss"
    path = parts.path or "/"
    if path.startswith(FC_PATH_PREFIX):
        return "fc"
    if path == "/":
        return "rpc"
    return "oss"


def rest_request(
    method: str, url: str, headers: Mapping[str, str], body: bytes, *, host: str = "", base_hosts: Iterable[str] = ()
) -> RestRequest:
    lower = {k.lower(): v for k, v in headers.items()}
    parts = urlsplit(url)
    host = host or lower.get("host", "") or parts.netloc
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return RestRequest(
        method=method.upper(),
        path=parts.path or "/",
        query=query,
        headers=lower,
        body=body,
        host=host,
        access_key_id=_rest_access_key_id(lower, query),
        subdomain=subdomain_of(host, base_hosts),
    )


def subdomain_of(host: str, base_hosts: Iterable[str]) -> str:
    """`bucket.cloud1.localcloud.internal:80` under base host `cloud1.localcloud.internal` → `bucket`."""
    name = _strip_port(host).lower()
    for base in base_hosts:
        base = _strip_port(base).lower()
        if base and name.endswith("." + base):
            return name[: -len(base) - 1]
    return ""


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _speaks_oss(headers: Mapping[str, str], query: str) -> bool:
    if headers.get("authorization", "").startswith("OSS"):
        return True
    if any(name.startswith("x-oss-") for name in headers):
        return True
    return any(key.lower().startswith("x-oss-") or key == "OSSAccessKeyId" for key in _query_keys(query))


def _query_keys(query: str) -> list[str]:
    """The keys `parse_qsl(query)` would give, without decoding the values (an RPC call's query can carry a
    whole script): the same pieces, the same pairs dropped (no `=`, or an empty value), the same decoding."""
    keys = []
    for piece in query.split("&") if query else []:
        name, equals, value = piece.partition("=")
        if equals and value:
            keys.append(unquote(name.replace("+", " ")))
    return keys


def _rest_access_key_id(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    auth = headers.get("authorization", "")
    # OSS V4 `Credential=AK/20261201/cn-hangzhou/oss/aliyun_v4_request`, ACS3 `Credential=AK,SignedHeaders=…`
    match = re.search(r"Credential=([^,/\s]+)", auth)
    if match:
        return match.group(1)
    match = re.match(r"OSS ([^:\s]+):", auth)  # OSS V1
    if match:
        return match.group(1)
    credential = query.get("x-oss-credential") or query.get("OSSAccessKeyId") or ""  # presigned URLs
    if credential:
        return credential.split("/", 1)[0]
    return headers.get("x-acs-accesskey-id") or "anonymous"
