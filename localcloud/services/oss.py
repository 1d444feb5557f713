"""Emulated OSS (Object Storage Service): buckets and objects in memory, over OSS's own REST protocol.

What `alibabacloud-oss-v2` (1.4) sends and checks, read from its source:
- addressing (`_client.py: _resolve_address_style, _build_url`): an IP endpoint (`http://127.0.0.1:PORT`)
  forces path style, `/bucket/key`; a host name is virtual-hosted, `bucket.host/key` (the in-process
  transport routes `bucket.cloudN.localcloud.internal` here). Both are answered.
- errors (`_client.py: _to_service_error`): an XML `<Error>` body, or for HEAD (no body) the same XML
  base64-encoded in `x-oss-err`; the `Date` header must parse, so every answer carries one.
- integrity (`serde_utils.py: add_crc_checker`, `defaults.FF_ENABLE_CRC64_CHECK_*`, on by default): the SDK
  compares `x-oss-hash-crc64ecma` with the CRC-64/ECMA-182 (XZ) of what it sent (PutObject) or read
  (get_object_to_file, downloader) and raises InconsistentError on a mismatch; it skips the check when the
  header is missing. The header is sent, computed for real, so the check runs as against OSS.
- bucket names (`validation.py: is_valid_bucket_name`) are checked by the SDK before sending; the service
  checks them again for any other client.

Error codes and statuses follow the OSS API reference (PutBucket, DeleteBucket, GetBucketInfo,
ListObjectsV2, PutObject, GetObject, HeadObject, DeleteObject, "OSS error response", "HTTP 400 status code").
Signatures are not verified; the access key id is read for the record.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from localcloud.cloud import Reply
from localcloud.errors import ApiError
from localcloud.services.base import Service
from localcloud.wire import RestRequest

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud
    from localcloud.scenario import BucketSpec

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


@dataclass(frozen=True)
class _Target:
    bucket: str | None
    key: str | None


Handler = Callable[["OssService", RestRequest, _Target], Reply]


class OssService(Service):
    """OSS for one account in one region. REST: answered by `handle_rest`, one lock-held call each."""

    name = "oss"
    product = "Oss"
    host = "oss-cn-hangzhou.aliyuncs.com"

    def __init__(self, cloud: LocalCloud) -> None:
        super().__init__(cloud)
        self.buckets: dict[str, Bucket] = {}
        self.host = f"oss-{cloud.region}.aliyuncs.com"

    def load(self, specs: list[BucketSpec]) -> None:
        for spec in specs:
            self.buckets[spec.name] = Bucket(spec.name, spec.owner or self.cloud.account_id, self.cloud.clock.now)

    def state(self) -> dict[str, Any]:
        return {
            "buckets": [
                {
                    "Name": b.name,
                    "Owner": b.owner,
                    "CreationDate": self.cloud.clock.iso(b.created),
                    "Acl": b.acl,
                    "Objects": [
                        {
                            "Key": o.key,
                            "Size": len(o.data),
                            "ETag": o.etag,
                            "LastModified": self.cloud.clock.iso(o.last_modified),
                        }
                        for o in sorted(b.objects.values(), key=lambda o: o.key)
                    ],
                }
                for b in sorted(self.buckets.values(), key=lambda b: b.name)
            ]
        }

    # -- for other local cloud code (ROS reads function code zips): no call counting, no faults --------

    def read_object(self, bucket: str, key: str) -> bytes:
        """The bytes of an object; ApiError NoSuchBucket / NoSuchKey (404) when it is not there."""
        with self.cloud.lock:
            return self._object(self._bucket(bucket), key).data

    # -- the protocol ----------------------------------------------------------------------------

    def handle_rest(self, request: RestRequest) -> Reply:
        with self.cloud.lock:
            request_id = f"{self.cloud.ids.rng.getrandbits(96):024X}"
            target = _target(request)
            action, write, handler = _resolve(request, target)
            request.action = action
            fault, latency = self.cloud.rest_call(action)
            try:
                if fault is not None:
                    raise fault
                if handler is None:
                    raise ApiError("NotImplemented", "A header you provided implies functionality that is not "
                                   f"implemented. (The local cloud does not implement OSS {action}.)", 501)  # fmt: skip
                if target.bucket is not None and bucket_name_problem(target.bucket):
                    raise ApiError("InvalidBucketName", "The specified bucket is not valid.", 400,
                                   extra={"BucketName": target.bucket})  # fmt: skip
                _check_content_md5(request)
                reply = handler(self, request, target)
            except ApiError as error:
                self.cloud.rest_error(action, error.code)
                reply = self._error_reply(request, target, error, request_id)
            else:
                if write:
                    self.cloud.write_calls += 1
            reply.headers.setdefault("x-oss-request-id", request_id)
            reply.headers.setdefault("Date", email.utils.formatdate(self.cloud.clock.now, usegmt=True))
            reply.headers.setdefault("Server", "AliyunOSS")
            reply.latency_ms = latency
            return reply

    def _error_reply(self, request: RestRequest, target: _Target, error: ApiError, request_id: str) -> Reply:
        fields: list[tuple[str, Any]] = [
            ("Code", error.code),
            ("Message", error.message),
            ("RequestId", request_id),
            ("HostId", request.host or self.host),
        ]
        fields += [(k, v) for k, v in error.extra.items()]
        headers = {}
        if error.code in _EC:
            fields.append(("EC", _EC[error.code]))
            headers["x-oss-ec"] = _EC[error.code]
        body = _xml("Error", fields)
        if request.method == "HEAD":  # no body: the SDK reads the error from x-oss-err
            headers["x-oss-err"] = base64.b64encode(body).decode()
            return Reply(error.status, headers=headers, raw=b"", content_type=XML)
        return Reply(error.status, headers=headers, raw=body, content_type=XML)

    # -- lookups ------------------------------------------------------------------------------------

    def _bucket(self, name: str) -> Bucket:
        bucket = self.buckets.get(name)
        if bucket is None:
            raise ApiError("NoSuchBucket", "The specified bucket does not exist.", 404, extra={"BucketName": name})
        if bucket.owner != self.cloud.account_id:
            raise ApiError("AccessDenied", "The bucket you access does not belong to you.", 403,
                           extra={"BucketName": name})  # fmt: skip
        return bucket

    @staticmethod
    def _object(bucket: Bucket, key: str) -> OssObject:
        obj = bucket.objects.get(key)
        if obj is None:
            raise ApiError("NoSuchKey", "The specified key does not exist.", 404, extra={"Key": key})
        return obj

    def _owner(self) -> list[tuple[str, Any]]:
        return [("ID", self.cloud.account_id), ("DisplayName", self.cloud.account_id)]

    def _endpoints(self) -> list[tuple[str, Any]]:
        region = self.cloud.region
        return [
            ("ExtranetEndpoint", f"oss-{region}.aliyuncs.com"),
            ("IntranetEndpoint", f"oss-{region}-internal.aliyuncs.com"),
            ("Location", f"oss-{region}"),
        ]

    # -- the service ------------------------------------------------------------------------------

    def list_buckets(self, request: RestRequest, target: _Target) -> Reply:
        prefix = request.query.get("prefix", "")
        marker = request.query.get("marker", "")
        max_keys = _max_keys(request.query)
        names = sorted(
            b.name for b in self.buckets.values() if b.owner == self.cloud.account_id and b.name.startswith(prefix)
        )
        names = [n for n in names if n > marker]
        page, truncated = names[:max_keys], len(names) > max_keys
        fields: list[tuple[str, Any]] = [("Prefix", prefix), ("Marker", marker), ("MaxKeys", max_keys),
                                         ("IsTruncated", truncated)]  # fmt: skip
        if truncated:
            fields.append(("NextMarker", page[-1]))
        fields.append(("Owner", self._owner()))
        buckets = []
        for name in page:
            bucket = self.buckets[name]
            buckets.append(("Bucket", [
                ("CreationDate", self.cloud.clock.iso_millis(bucket.created)),
                *self._endpoints(),
                ("Name", name),
                ("Region", self.cloud.region),
                ("StorageClass", bucket.storage_class),
            ]))  # fmt: skip
        fields.append(("Buckets", buckets))
        return _xml_reply(200, "ListAllMyBucketsResult", fields)

    # -- buckets ----------------------------------------------------------------------------------

    def put_bucket(self, request: RestRequest, target: _Target) -> Reply:
        """Create a bucket; the same account creating it again updates it (PutBucket, usage notes)."""
        name = _required(target.bucket)
        acl = request.headers.get("x-oss-acl")
        if acl is not None and acl not in _ACLS:
            raise _invalid_argument("x-oss-acl", acl, f"one of {', '.join(_ACLS)}")
        storage_class, redundancy = _bucket_configuration(request.body)
        existing = self.buckets.get(name)
        if existing is not None and existing.owner != self.cloud.account_id:
            raise ApiError("BucketAlreadyExists", "The requested bucket name is not available. The bucket namespace "
                           "is shared by all users of the system. Please select a different name and try again.", 409,
                           extra={"BucketName": name})  # fmt: skip
        if existing is None:
            owned = sum(1 for b in self.buckets.values() if b.owner == self.cloud.account_id)
            if owned >= MAX_BUCKETS:
                raise ApiError("TooManyBuckets", "You have attempted to create more buckets than allowed.", 400,
                               extra={"BucketName": name})  # fmt: skip
            existing = self.buckets[name] = Bucket(name, self.cloud.account_id, self.cloud.clock.now)
            existing.storage_class = storage_class or "Standard"
            existing.redundancy = redundancy or "LRS"
        if acl is not None:
            existing.acl = acl
        return _empty(200, {"Location": f"/{name}"})

    def delete_bucket(self, request: RestRequest, target: _Target) -> Reply:
        bucket = self._bucket(_required(target.bucket))
        if bucket.objects:
            raise ApiError("BucketNotEmpty", "The bucket you tried to delete is not empty.", 409,
                           extra={"BucketName": bucket.name})  # fmt: skip
        del self.buckets[bucket.name]
        return _empty(204)

    def get_bucket_info(self, request: RestRequest, target: _Target) -> Reply:
        bucket = self._bucket(_required(target.bucket))
        return _xml_reply(200, "BucketInfo", [("Bucket", [
            ("AccessMonitor", "Disabled"),
            ("CreationDate", self.cloud.clock.iso_millis(bucket.created)),
            *self._endpoints(),
            ("StorageClass", bucket.storage_class),
            ("TransferAcceleration", "Disabled"),
            ("CrossRegionReplication", "Disabled"),
            ("Name", bucket.name),
            ("ResourceGroupId", "rg-default-id"),
            ("Owner", self._owner()),
            ("AccessControlList", [("Grant", bucket.acl)]),
            ("DataRedundancyType", bucket.redundancy),
            ("Comment", ""),
            ("ServerSideEncryptionRule", [("SSEAlgorithm", "None")]),
            ("BucketPolicy", [("LogBucket", ""), ("LogPrefix", "")]),
        ])])  # fmt: skip

    def get_bucket_acl(self, request: RestRequest, target: _Target) -> Reply:
        """What the SDK's `is_bucket_exist` calls (a NoSuchBucket answer is False, anything else True)."""
        bucket = self._bucket(_required(target.bucket))
        return _xml_reply(200, "AccessControlPolicy", [
            ("Owner", self._owner()), ("AccessControlList", [("Grant", bucket.acl)]),
        ])  # fmt: skip

    def get_bucket_location(self, request: RestRequest, target: _Target) -> Reply:
        self._bucket(_required(target.bucket))
        return _xml_reply(200, "LocationConstraint", [], text=f"oss-{self.cloud.region}")

    def list_objects(self, request: RestRequest, target: _Target) -> Reply:
        """ListObjects (v1): marker / NextMarker."""
        bucket = self._bucket(_required(target.bucket))
        q = request.query
        prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
        max_keys = _max_keys(q)
        contents, prefixes, truncated, last = _listing(bucket, prefix, delimiter, marker, max_keys)
        enc = _encoder(q)
        fields: list[tuple[str, Any]] = [
            ("Name", bucket.name), ("Prefix", enc(prefix)), ("Marker", enc(marker)), ("MaxKeys", max_keys),
            ("Delimiter", enc(delimiter)), ("IsTruncated", truncated),
        ]  # fmt: skip
        if "encoding-type" in q:
            fields.append(("EncodingType", q["encoding-type"]))
        if truncated:
            fields.append(("NextMarker", enc(last)))
        fields += self._listed(contents, prefixes, enc, owner=True)
        return _xml_reply(200, "ListBucketResult", fields)

    def list_objects_v2(self, request: RestRequest, target: _Target) -> Reply:
        """ListObjectsV2: continuation-token (opaque) / start-after, KeyCount."""
        bucket = self._bucket(_required(target.bucket))
        q = request.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = _max_keys(q)
        token = q.get("continuation-token")
        marker = _decode_token(token) if token else q.get("start-after", "")
        contents, prefixes, truncated, last = _listing(bucket, prefix, delimiter, marker, max_keys)
        enc = _encoder(q)
        fields: list[tuple[str, Any]] = [("Name", bucket.name), ("Prefix", enc(prefix))]
        if "start-after" in q:
            fields.append(("StartAfter", enc(q["start-after"])))
        if token:
            fields.append(("ContinuationToken", token))
        fields += [("MaxKeys", max_keys), ("Delimiter", enc(delimiter))]
        if "encoding-type" in q:
            fields.append(("EncodingType", q["encoding-type"]))
        fields.append(("IsTruncated", truncated))
        if truncated:
            fields.append(("NextContinuationToken", _encode_token(last)))
        fields += self._listed(contents, prefixes, enc, owner=q.get("fetch-owner", "").lower() == "true")
        fields.append(("KeyCount", len(contents) + len(prefixes)))
        return _xml_reply(200, "ListBucketResult", fields)

    def _listed(
        self, contents: list[OssObject], prefixes: list[str], enc: Callable[[str], str], *, owner: bool
    ) -> list[tuple[str, Any]]:
        fields: list[tuple[str, Any]] = []
        for obj in contents:
            entry: list[tuple[str, Any]] = [
                ("Key", enc(obj.key)),
                ("LastModified", self.cloud.clock.iso_millis(obj.last_modified)),
                ("ETag", obj.etag),
                ("Type", "Normal"),
                ("Size", len(obj.data)),
                ("StorageClass", "Standard"),
            ]
            if owner:
                entry.append(("Owner", self._owner()))
            fields.append(("Contents", entry))
        fields += [("CommonPrefixes", [("Prefix", enc(p))]) for p in prefixes]
        return fields

    # -- objects ----------------------------------------------------------------------------------

    def put_object(self, request: RestRequest, target: _Target) -> Reply:
        bucket = self._bucket(_required(target.bucket))
        key = _required(target.key)
        if key.startswith(("/", "\\")) or len(key.encode()) > 1023:
            raise ApiError("InvalidObjectName", "The specified object is not valid.", 400, extra={"Key": key})
        if request.headers.get("x-oss-forbid-overwrite", "").lower() == "true" and key in bucket.objects:
            raise ApiError("FileAlreadyExists", "The object you specified already exists and can not be overwritten.",
                           409, extra={"Key": key})  # fmt: skip
        data = request.body
        obj = OssObject(
            key=key,
            data=data,
            content_type=request.headers.get("content-type") or "application/octet-stream",
            last_modified=self.cloud.clock.now,
            metadata={k: v for k, v in request.headers.items() if k.startswith("x-oss-meta-")},
            md5=hashlib.md5(data).digest(),
            crc=crc64(data),
        )
        bucket.objects[key] = obj
        return _empty(200, {
            "ETag": obj.etag,
            "Content-MD5": base64.b64encode(obj.md5).decode(),
            "x-oss-hash-crc64ecma": str(obj.crc),
        })  # fmt: skip

    def get_object(self, request: RestRequest, target: _Target) -> Reply:
        obj = self._object(self._bucket(_required(target.bucket)), _required(target.key))
        headers = self._object_headers(obj)
        span = _range(request.headers.get("range", ""), len(obj.data))
        if span is None:  # no Range, or one OSS ignores (it then answers the whole object, 200)
            return Reply(200, headers=headers, raw=obj.data, content_type=obj.content_type)
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(obj.data)}"
        return Reply(206, headers=headers, raw=obj.data[start : end + 1], content_type=obj.content_type)

    def head_object(self, request: RestRequest, target: _Target) -> Reply:
        obj = self._object(self._bucket(_required(target.bucket)), _required(target.key))
        headers = {**self._object_headers(obj), "Content-Length": str(len(obj.data))}
        return Reply(200, headers=headers, raw=b"", content_type=obj.content_type)

    def get_object_meta(self, request: RestRequest, target: _Target) -> Reply:
        """What the SDK's `is_object_exist` calls (HEAD ?objectMeta)."""
        obj = self._object(self._bucket(_required(target.bucket)), _required(target.key))
        headers = {
            "Content-Length": str(len(obj.data)),
            "ETag": obj.etag,
            "Last-Modified": email.utils.formatdate(obj.last_modified, usegmt=True),
            "x-oss-hash-crc64ecma": str(obj.crc),
        }
        return Reply(200, headers=headers, raw=b"", content_type=obj.content_type)

    def delete_object(self, request: RestRequest, target: _Target) -> Reply:
        """A missing key is no error: 204 all the same (DeleteObject)."""
        bucket = self._bucket(_required(target.bucket))
        bucket.objects.pop(_required(target.key), None)
        return _empty(204)

    def _object_headers(self, obj: OssObject) -> dict[str, str]:
        return {
            "ETag": obj.etag,
            "Last-Modified": email.utils.formatdate(obj.last_modified, usegmt=True),
            "Content-MD5": base64.b64encode(obj.md5).decode(),
            "x-oss-hash-crc64ecma": str(obj.crc),
            "x-oss-object-type": "Normal",
            "x-oss-storage-class": "Standard",
            "Accept-Ranges": "bytes",
            **obj.metadata,
        }


# (method, level, sub-resource) → (action, write, handler). level: service | bucket | object.
_ROUTES: dict[tuple[str, str, str], tuple[str, bool, Handler]] = {
    ("GET", "service", ""): ("ListBuckets", False, OssService.list_buckets),
    ("PUT", "bucket", ""): ("PutBucket", True, OssService.put_bucket),
    ("DELETE", "bucket", ""): ("DeleteBucket", True, OssService.delete_bucket),
    ("GET", "bucket", ""): ("ListObjects", False, OssService.list_objects),
    ("GET", "bucket", "bucketInfo"): ("GetBucketInfo", False, OssService.get_bucket_info),
    ("GET", "bucket", "acl"): ("GetBucketAcl", False, OssService.get_bucket_acl),
    ("GET", "bucket", "location"): ("GetBucketLocation", False, OssService.get_bucket_location),
    ("PUT", "object", ""): ("PutObject", True, OssService.put_object),
    ("GET", "object", ""): ("GetObject", False, OssService.get_object),
    ("HEAD", "object", ""): ("HeadObject", False, OssService.head_object),
    ("HEAD", "object", "objectMeta"): ("GetObjectMeta", False, OssService.get_object_meta),
    ("DELETE", "object", ""): ("DeleteObject", True, OssService.delete_object),
}
_VERBS = {"GET": "Get", "PUT": "Put", "POST": "Post", "DELETE": "Delete", "HEAD": "Head"}


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


def _resolve(request: RestRequest, target: _Target) -> tuple[str, bool, Handler | None]:
    level = "service" if target.bucket is None else "bucket" if target.key is None else "object"
    subs = sorted(k for k in request.query if k not in _PARAMS and not k.lower().startswith("x-oss-"))
    sub = subs[0] if len(subs) == 1 else ",".join(subs)
    if request.method == "PUT" and level == "object" and not sub and "x-oss-copy-source" in request.headers:
        return "CopyObject", True, None
    route = _ROUTES.get((request.method, level, sub))
    if route is None:
        suffix = "".join(s[:1].upper() + s[1:] for s in subs)
        return f"{_VERBS.get(request.method, request.method.title())}{level.title()}{suffix}", False, None
    action, write, handler = route
    if action == "ListObjects" and request.query.get("list-type") == "2":
        return "ListObjectsV2", False, OssService.list_objects_v2
    return action, write, handler


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
