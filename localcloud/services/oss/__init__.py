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

The service and its route table live here; the data (buckets, objects, CRC-64, bucket names) in `model.py`,
the protocol's pieces (addressing, request checks, listings, XML replies) in `protocol.py`.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from localcloud.errors import ApiError
from localcloud.reply import Reply
from localcloud.services.base import Service, register_actions
from localcloud.services.oss.model import (
    _ACLS,
    _EC,
    _PARAMS,
    MAX_BUCKETS,
    XML,
    Bucket,
    OssObject,
    bucket_name_problem,
    crc64,
)
from localcloud.services.oss.protocol import (
    _bucket_configuration,
    _check_content_md5,
    _decode_token,
    _empty,
    _encode_token,
    _encoder,
    _invalid_argument,
    _listing,
    _max_keys,
    _range,
    _required,
    _Target,
    _target,
    _xml,
    _xml_reply,
)
from localcloud.wire import RestRequest

if TYPE_CHECKING:
    from localcloud.cloud import LocalCloud
    from localcloud.scenario import BucketSpec


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
register_actions("oss", [route[0] for route in _ROUTES.values()] + ["ListObjectsV2", "CopyObject"])
_VERBS = {"GET": "Get", "PUT": "Put", "POST": "Post", "DELETE": "Delete", "HEAD": "Head"}


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
