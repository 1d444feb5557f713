"""OSS's REST protocol pieces: addressing (bucket and key from the host or the path), request checks (Content-MD5,
max-keys, bucket configuration XML), listing pages and continuation tokens, Range, and XML replies."""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from localcloud.errors import ApiError
from localcloud.reply import Reply
from localcloud.services.oss.model import (
    _REDUNDANCY,
    _STORAGE_CLASSES,
    DEFAULT_MAX_KEYS,
    MAX_KEYS,
    XML,
    Bucket,
    OssObject,
)
from localcloud.wire import RestRequest


@dataclass(frozen=True)
class _Target:
    bucket: str | None
    key: str | None


def _target(request: RestRequest) -> _Target:
    """Bucket and key, from a virtual-hosted host (`bucket.host/key`) or a path-style path (`/bucket/key`)."""
    path = request.path[1:] if request.path.startswith("/") else request.path
    if request.subdomain:
        bucket, rest = request.subdomain, path
    elif not path:
        return _Target(None, None)
    else:
        bucket, _, rest = path.partition("/")
        bucket = unquote(bucket)
    return _Target(bucket, unquote(rest) if rest else None)


def _required(value: str | None) -> str:
    assert value is not None  # the route table only sends requests of the right level
    return value


def _check_content_md5(request: RestRequest) -> None:
    """Content-MD5, when given, must be the Base64 of the body's MD5 (InvalidDigest otherwise)."""
    given = request.headers.get("content-md5")
    if given is None:
        return
    try:
        digest = base64.b64decode(given, validate=True)
    except ValueError:
        digest = b""
    if len(digest) != 16 or digest != hashlib.md5(request.body).digest():
        raise ApiError("InvalidDigest", "The Content-MD5 you specified was invalid.", 400,
                       extra={"Content-MD5": given})  # fmt: skip


def _invalid_argument(name: str, value: str, wanted: str) -> ApiError:
    return ApiError("InvalidArgument", f"{name} {value!r} is not valid: expected {wanted}.", 400,
                    extra={"ArgumentName": name, "ArgumentValue": value})  # fmt: skip


def _bucket_configuration(body: bytes) -> tuple[str | None, str | None]:
    if not body.strip():
        return None, None
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise ApiError("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                       "published schema.", 400) from None  # fmt: skip
    storage_class = root.findtext("StorageClass")
    redundancy = root.findtext("DataRedundancyType")
    if storage_class is not None and storage_class not in _STORAGE_CLASSES:
        raise _invalid_argument("StorageClass", storage_class, f"one of {', '.join(_STORAGE_CLASSES)}")
    if redundancy is not None and redundancy not in _REDUNDANCY:
        raise _invalid_argument("DataRedundancyType", redundancy, f"one of {', '.join(_REDUNDANCY)}")
    return storage_class, redundancy


def _max_keys(query: dict[str, str]) -> int:
    text = query.get("max-keys")
    if text is None or text == "":
        return DEFAULT_MAX_KEYS
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= MAX_KEYS:
        raise _invalid_argument("max-keys", text, f"a whole number from 1 to {MAX_KEYS}")
    return value


def _listing(
    bucket: Bucket, prefix: str, delimiter: str, marker: str, max_keys: int
) -> tuple[list[OssObject], list[str], bool, str]:
    """One page: objects and common prefixes after `marker` (exclusive), in key order.

    A common prefix counts as one entry; it sorts where its first key would, and a marker equal to it
    skips every key under it (so the next page goes on after the whole "directory").
    """
    contents: list[OssObject] = []
    prefixes: list[str] = []
    truncated, last = False, ""
    for key in sorted(k for k in bucket.objects if k.startswith(prefix)):
        value, rolled = key, False
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                value, rolled = key[: cut + len(delimiter)], True
        if value <= marker or (rolled and prefixes and prefixes[-1] == value):
            continue
        if len(contents) + len(prefixes) == max_keys:
            truncated = True
            break
        if rolled:
            prefixes.append(value)
        else:
            contents.append(bucket.objects[key])
        last = value
    return contents, prefixes, truncated, last


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError:
        raise _invalid_argument("continuation-token", token, "a NextContinuationToken from a previous page") from None


def _encoder(query: dict[str, str]) -> Callable[[str], str]:
    """encoding-type=url (which the SDK always asks for): names in the listing are URL-encoded."""
    if query.get("encoding-type") == "url":
        return lambda text: quote(text, safe="/")
    return lambda text: text


def _range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range within the object, else None (whole object)."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or (not match[1] and not match[2]) or size == 0:
        return None
    if not match[1]:
        start, end = max(0, size - int(match[2])), size - 1
    else:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or start > end:
        return None
    return start, end


def _xml(root: str, fields: list[tuple[str, Any]], text: str | None = None) -> bytes:
    element = ET.Element(root)
    if text is not None:
        element.text = text
    _fill(element, fields)
    return ET.tostring(element, encoding="UTF-8", xml_declaration=True)


def _fill(parent: ET.Element, fields: list[tuple[str, Any]]) -> None:
    for tag, value in fields:
        child = ET.SubElement(parent, tag)
        if isinstance(value, list):
            _fill(child, value)
        elif isinstance(value, bool):
            child.text = "true" if value else "false"
        elif value is not None:
            child.text = str(value)


def _xml_reply(status: int, root: str, fields: list[tuple[str, Any]], text: str | None = None) -> Reply:
    return Reply(status, raw=_xml(root, fields, text), content_type=XML)


def _empty(status: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, headers=dict(headers or {}), raw=b"", content_type=XML)
