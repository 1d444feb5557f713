"""OSS's data: buckets and objects in memory, bucket naming, the CRC-64 OSS reports, and the protocol's limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

XML = "application/xml"
MAX_BUCKETS = 100  # per account and region (PutBucket: TooManyBuckets)
MAX_KEYS = 1000  # ListObjects(V2) / ListBuckets max-keys
DEFAULT_MAX_KEYS = 100
_ACLS = ("private", "public-read", "public-read-write")
_STORAGE_CLASSES = ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")
_REDUNDANCY = ("LRS", "ZRS")
# Fine-grained error codes, only where the reference shows them (DeleteBucket's sample).
_EC = {"NoSuchBucket": "0015-00000101"}
# Query keys that are parameters; any other key is a sub-resource (`?acl`, `?bucketInfo`...).
_PARAMS = {
    "prefix", "delimiter", "marker", "max-keys", "encoding-type", "list-type", "continuation-token",
    "start-after", "fetch-owner", "versionId", "tag-key", "tag-value", "response-content-type",
    "response-content-language", "response-expires", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "OSSAccessKeyId", "Expires", "Signature", "security-token",
}  # fmt: skip
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def bucket_name_problem(name: str) -> str:
    """What is wrong with a bucket name ("" when nothing): 3-63 of lowercase letters, digits and hyphens,
    starting and ending with a letter or digit (OSS bucket naming conventions)."""
    if not 3 <= len(name) <= 63:
        return "it must be 3 to 63 characters long"
    if not _BUCKET_NAME.match(name):
        return "only lowercase letters, digits and hyphens (-), starting and ending with a letter or digit"
    return ""


def _crc64_table() -> list[int]:
    poly = 0xC96C5795D7870F42  # ECMA-182, reflected
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


def _make_crc64() -> Callable[[bytes], int]:
    try:
        import crcmod  # C-accelerated; installed with alibabacloud-oss-v2 (crcmod-plus)

        return crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)
    except ImportError:  # pragma: no cover - the pure-Python fallback, slow on big objects
        table = _crc64_table()

        def crc64_py(data: bytes) -> int:
            crc = 0xFFFFFFFFFFFFFFFF
            for byte in data:
                crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
            return crc ^ 0xFFFFFFFFFFFFFFFF

        return crc64_py


crc64 = _make_crc64()  # CRC-64/XZ: what OSS sends in x-oss-hash-crc64ecma (as a decimal string)


@dataclass
class OssObject:
    key: str
    data: bytes
    content_type: str
    last_modified: float
    metadata: dict[str, str] = field(default_factory=dict)  # x-oss-meta-* headers, names lower-cased
    md5: bytes = b""
    crc: int = 0

    @property
    def etag(self) -> str:
        """A simple upload's ETag: the MD5, upper-case hex, in quotes."""
        return f'"{self.md5.hex().upper()}"'


@dataclass
class Bucket:
    name: str
    owner: str  # account id
    created: float
    acl: str = "private"
    storage_class: str = "Standard"
    redundancy: str = "LRS"
    objects: dict[str, OssObject] = field(default_factory=dict)
