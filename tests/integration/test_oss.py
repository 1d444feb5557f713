"""OSS through the real SDK (alibabacloud-oss-v2), over both transports: buckets, objects, listing, errors as
the SDK raises them, integrity checks (ETag, Content-MD5, CRC-64) and faults.

Over HTTP the endpoint is an IP, so the SDK addresses path-style (/bucket/key); in-process it is a host
name, so the SDK addresses virtual-hosted (bucket.cloudN.localcloud.internal): both styles run here.
"""

from __future__ import annotations

import base64
import hashlib
import random
import threading
from collections.abc import Callable
from typing import Any

import alibabacloud_oss_v2 as oss
import pytest
import requests

from localcloud.errors import ApiError
from localcloud.reply import Reply
from localcloud.testing import CloudEnv
from localcloud.wire import RestRequest

BUCKET = "bakery-code"
SCENARIO: dict[str, Any] = {"seed": 5, "account_id": "1112223334445556", "region": "cn-hangzhou"}


@pytest.fixture
def env(make_env: Callable[..., CloudEnv]) -> CloudEnv:
    return make_env(SCENARIO)


@pytest.fixture
def bucket(env: CloudEnv) -> str:
    env.oss.put_bucket(oss.PutBucketRequest(bucket=BUCKET))
    return BUCKET


def put(env: CloudEnv, key: str, body: bytes, **fields: Any) -> Any:
    return env.oss.put_object(oss.PutObjectRequest(bucket=BUCKET, key=key, body=body, **fields))


def get(env: CloudEnv, key: str, bucket: str = BUCKET) -> bytes:
    result = env.oss.get_object(oss.GetObjectRequest(bucket=bucket, key=key))
    return result.body.read()


def service_error(call: Callable[[], Any]) -> oss.exceptions.ServiceError:
    """The ServiceError the SDK raises (wrapped in its OperationError)."""
    with pytest.raises(oss.exceptions.OperationError) as caught:
        call()
    error = caught.value.unwrap()
    assert isinstance(error, oss.exceptions.ServiceError), error
    return error


def raw_url(env: CloudEnv, path: str) -> str:
    return f"http://{env.endpoint}{path}"


# -- buckets ---------------------------------------------------------------------------------------


def test_created_bucket_is_described_by_get_bucket_info(env: CloudEnv) -> None:
    # Given no bucket
    # When one is created
    result = env.oss.put_bucket(oss.PutBucketRequest(bucket=BUCKET))
    # Then it succeeds, and GetBucketInfo describes it: region, owner, ACL, creation time on the virtual clock
    assert result.status_code == 200
    info = env.oss.get_bucket_info(oss.GetBucketInfoRequest(bucket=BUCKET)).bucket_info
    assert info.name == BUCKET
    assert info.location == "oss-cn-hangzhou"
    assert info.extranet_endpoint == "oss-cn-hangzhou.aliyuncs.com"
    assert info.acl == "private"
    assert info.storage_class == "Standard"
    assert info.owner.id == "1112223334445556"
    assert info.creation_date.timestamp() == env.cloud.clock.now


def test_is_bucket_exist_tells_existing_from_missing(env: CloudEnv, bucket: str) -> None:
    # Given one bucket
    # When the SDK asks whether it and another exist
    # Then the answers differ
    assert env.oss.is_bucket_exist(bucket) is True
    assert env.oss.is_bucket_exist("no-such-bucket") is False


def test_creating_an_own_bucket_again_updates_it(env: CloudEnv, bucket: str) -> None:
    # Given a bucket of this account
    put(env, "keep.zip", b"kept")
    # When the same account creates it again with another ACL
    result = env.oss.put_bucket(oss.PutBucketRequest(bucket=bucket, acl="public-read"))
    # Then it succeeds, the ACL changes and the objects stay (PutBucket: later calls modify the bucket)
    assert result.status_code == 200
    assert env.oss.get_bucket_acl(oss.GetBucketAclRequest(bucket=bucket)).acl == "public-read"
    assert get(env, "keep.zip") == b"kept"


def test_a_bucket_name_another_account_holds_is_bucket_already_exists(make_env: Callable[..., CloudEnv]) -> None:
    # Given a bucket name held by another account (names are global)
    env = make_env({**SCENARIO, "buckets": [{"name": "taken-name", "owner": "999"}]})
    # When this account tries to create it
    error = service_error(lambda: env.oss.put_bucket(oss.PutBucketRequest(bucket="taken-name")))
    # Then it is 409 BucketAlreadyExists
    assert (error.status_code, error.code) == (409, "BucketAlreadyExists")
    assert error.error_fileds["BucketName"] == "taken-name"


def test_scenario_buckets_are_there_from_the_start(make_env: Callable[..., CloudEnv]) -> None:
    # Given a scenario that pre-creates a bucket
    env = make_env({**SCENARIO, "buckets": [BUCKET]})
    # When objects are put in it straight away
    put(env, "fn.zip", b"zip")
    # Then it works and the bucket is listed
    names = [b.name for b in env.oss.list_buckets(oss.ListBucketsRequest()).buckets]
    assert names == [BUCKET]


@pytest.mark.parametrize("name", ["ab", "Upper-case", "under_score", "-leading", "trailing-", "a" * 64])
def test_invalid_bucket_names_are_refused_by_the_sdk_and_the_service(env: CloudEnv, name: str) -> None:
    # Given a name against the OSS naming rules
    # When the SDK is asked to create it
    with pytest.raises(oss.exceptions.OperationError) as caught:
        env.oss.put_bucket(oss.PutBucketRequest(bucket=name))
    # Then the SDK refuses before sending anything
    assert isinstance(caught.value.unwrap(), oss.exceptions.BucketNameInvalidError)
    # And a client that sends it anyway (path-style, unsigned) gets 400 InvalidBucketName
    answer = requests.put(raw_url(env, f"/{name}/"), timeout=10)
    assert answer.status_code == 400
    assert "<Code>InvalidBucketName</Code>" in answer.text
    assert answer.headers["Content-Type"] == "application/xml"
    assert answer.headers["x-oss-request-id"]


@pytest.mark.parametrize("name", ["abc", "a" * 63, "0-9"])
def test_bucket_names_at_the_limits_are_accepted(env: CloudEnv, name: str) -> None:
    assert env.oss.put_bucket(oss.PutBucketRequest(bucket=name)).status_code == 200


def test_a_bucket_with_objects_cannot_be_deleted(env: CloudEnv, bucket: str) -> None:
    # Given a bucket with one object
    put(env, "fn.zip", b"zip")
    # When it is deleted
    error = service_error(lambda: env.oss.delete_bucket(oss.DeleteBucketRequest(bucket=bucket)))
    # Then it is 409 BucketNotEmpty, and it is still there
    assert (error.status_code, error.code) == (409, "BucketNotEmpty")
    assert env.oss.is_bucket_exist(bucket) is True


def test_an_emptied_bucket_is_deleted(env: CloudEnv, bucket: str) -> None:
    # Given a bucket whose only object was deleted
    put(env, "fn.zip", b"zip")
    env.oss.delete_object(oss.DeleteObjectRequest(bucket=bucket, key="fn.zip"))
    # When the bucket is deleted
    result = env.oss.delete_bucket(oss.DeleteBucketRequest(bucket=bucket))
    # Then it answers 204 and the bucket is gone
    assert result.status_code == 204
    error = service_error(lambda: env.oss.get_bucket_info(oss.GetBucketInfoRequest(bucket=bucket)))
    assert (error.status_code, error.code) == (404, "NoSuchBucket")


# -- objects ---------------------------------------------------------------------------------------


def test_put_object_answers_the_md5_etag_and_crc64(env: CloudEnv, bucket: str) -> None:
    # Given a bucket
    body = b"def handler(event, context):\n    return 'ok'\n"
    # When an object is put
    result = put(env, "fn/index.py", body)
    # Then the ETag is the quoted upper-case MD5, Content-MD5 its Base64, the CRC-64 the SDK checked is there
    md5 = hashlib.md5(body)
    assert result.status_code == 200
    assert result.etag == f'"{md5.hexdigest().upper()}"'
    assert result.content_md5 == base64.b64encode(md5.digest()).decode()
    assert result.hash_crc64 is not None
    assert result.request_id


def test_get_and_head_object_describe_what_was_put(env: CloudEnv, bucket: str) -> None:
    # Given an object with a content type and user metadata, put one simulated minute in
    env.cloud.advance(60)
    body = b"PK\x03\x04zip"
    put(env, "fn/code.zip", body, content_type="application/zip", metadata={"commit": "abc123"})
    # When it is read and its headers are asked for
    got = env.oss.get_object(oss.GetObjectRequest(bucket=bucket, key="fn/code.zip"))
    head = env.oss.head_object(oss.HeadObjectRequest(bucket=bucket, key="fn/code.zip"))
    # Then both give the same size, type, ETag, metadata and the virtual time it was written
    assert got.body.read() == body
    for result in (got, head):
        assert result.content_length == 7
        assert result.content_type == "application/zip"
        assert result.etag == f'"{hashlib.md5(body).hexdigest().upper()}"'
        assert result.metadata == {"commit": "abc123"}
        assert result.object_type == "Normal"
        assert result.last_modified.timestamp() == env.cloud.clock.now


def test_put_object_replaces_the_object(env: CloudEnv, bucket: str) -> None:
    # Given an object
    put(env, "fn.zip", b"v1")
    # When the same key is put again
    put(env, "fn.zip", b"version 2")
    # Then the new bytes are read
    assert get(env, "fn.zip") == b"version 2"


def test_a_binary_object_over_a_megabyte_round_trips_byte_for_byte(env: CloudEnv, bucket: str, tmp_path) -> None:
    # Given 1.5 MB of every byte value, in seeded random order
    body = random.Random(7).randbytes(1_500_000)
    # When it is put, read back, and downloaded to a file (the SDK checks the CRC-64 on upload and download)
    put(env, "big.zip", body)
    target = tmp_path / "big.zip"
    env.oss.get_object_to_file(oss.GetObjectRequest(bucket=bucket, key="big.zip"), str(target))
    # Then every byte is the same, and the local cloud hands the same bytes to its own code
    assert get(env, "big.zip") == body
    assert target.read_bytes() == body
    assert env.cloud.oss.read_object(bucket, "big.zip") == body


def test_a_streamed_upload_of_unknown_length_is_stored_whole(env: CloudEnv, bucket: str) -> None:
    # Given a body the SDK cannot size (a generator: chunked transfer encoding over HTTP)
    chunks = [bytes([n]) * 10_000 for n in range(50)]
    # When it is put
    result = put(env, "stream.bin", iter(chunks))
    # Then every chunk arrived, in order, and the CRC-64 the SDK computed while sending matched
    assert result.status_code == 200
    assert env.cloud.oss.read_object(bucket, "stream.bin") == b"".join(chunks)


def test_the_sdk_rejects_a_wrong_crc64(env: CloudEnv, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a service that reports a wrong CRC-64 (the check must not pass vacuously)
    monkeypatch.setattr("localcloud.services.oss.crc64", lambda data: 12345)
    # When an object is put (no retries: the SDK retries an inconsistent upload)
    with pytest.raises(oss.exceptions.OperationError) as caught:
        env.oss.put_object(oss.PutObjectRequest(bucket=bucket, key="fn.zip", body=b"zip"), retry_max_attempts=1)
    # Then the SDK's upload check fails
    assert isinstance(caught.value.unwrap(), oss.exceptions.InconsistentError)


def test_a_range_get_answers_the_part(env: CloudEnv, bucket: str) -> None:
    # Given an object
    put(env, "digits", b"0123456789")
    # When a range is asked for
    result = env.oss.get_object(oss.GetObjectRequest(bucket=bucket, key="digits", range_header="bytes=2-5"))
    # Then 206 with those bytes and where they sit
    assert result.status_code == 206
    assert result.body.read() == b"2345"
    assert result.content_range == "bytes 2-5/10"


def test_a_content_md5_that_does_not_match_is_invalid_digest(env: CloudEnv, bucket: str) -> None:
    # Given the MD5 of other content
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    # When an object is put with it
    error = service_error(lambda: put(env, "fn.zip", b"zip", content_md5=wrong))
    # Then it is 400 InvalidDigest and nothing was stored; the right MD5 is accepted
    assert (error.status_code, error.code) == (400, "InvalidDigest")
    assert env.oss.is_object_exist(bucket, "fn.zip") is False
    right = base64.b64encode(hashlib.md5(b"zip").digest()).decode()
    assert put(env, "fn.zip", b"zip", content_md5=right).status_code == 200


def test_deleted_object_is_gone_and_deleting_a_missing_key_succeeds(env: CloudEnv, bucket: str) -> None:
    # Given an object
    put(env, "fn.zip", b"zip")
    # When it is deleted, and then deleted again
    first = env.oss.delete_object(oss.DeleteObjectRequest(bucket=bucket, key="fn.zip"))
    again = env.oss.delete_object(oss.DeleteObjectRequest(bucket=bucket, key="fn.zip"))
    # Then both answer 204 (a missing key is no error) and reading it is NoSuchKey
    assert (first.status_code, again.status_code) == (204, 204)
    assert env.oss.is_object_exist(bucket, "fn.zip") is False


def test_a_missing_key_is_no_such_key(env: CloudEnv, bucket: str) -> None:
    # Given a bucket without the key
    # When it is read, and its headers asked for (HEAD: the error travels in x-oss-err)
    got = service_error(lambda: get(env, "missing.zip"))
    head = service_error(lambda: env.oss.head_object(oss.HeadObjectRequest(bucket=bucket, key="missing.zip")))
    # Then both are 404 NoSuchKey naming the key, with a request id
    for error in (got, head):
        assert (error.status_code, error.code) == (404, "NoSuchKey")
        assert error.error_fileds["Key"] == "missing.zip"
        assert error.request_id


def test_a_missing_bucket_is_no_such_bucket(env: CloudEnv) -> None:
    # Given no bucket at all
    # When an object is read from one and put in one
    got = service_error(lambda: get(env, "fn.zip", bucket="no-such-bucket"))
    put_error = service_error(
        lambda: env.oss.put_object(oss.PutObjectRequest(bucket="no-such-bucket", key="fn.zip", body=b"x"))
    )
    # Then both are 404 NoSuchBucket naming the bucket, as the XML error body says
    for error in (got, put_error):
        assert (error.status_code, error.code) == (404, "NoSuchBucket")
        assert error.error_fileds["BucketName"] == "no-such-bucket"
        assert error.message == "The specified bucket does not exist."


# -- listing ---------------------------------------------------------------------------------------


def test_list_objects_v2_filters_by_prefix(env: CloudEnv, bucket: str) -> None:
    # Given objects under two prefixes, one with a space in its name
    for key in ("fn/a.zip", "fn/b c.zip", "layers/x.zip"):
        put(env, key, key.encode())
    # When objects under one prefix are listed
    result = env.oss.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, prefix="fn/"))
    # Then only those come back, in key order, with sizes and ETags
    assert [o.key for o in result.contents] == ["fn/a.zip", "fn/b c.zip"]
    assert [o.size for o in result.contents] == [8, 10]
    assert result.contents[0].etag == f'"{hashlib.md5(b"fn/a.zip").hexdigest().upper()}"'
    assert result.key_count == 2
    assert result.is_truncated is False


def test_list_objects_v2_pages_with_max_keys_and_continuation(env: CloudEnv, bucket: str) -> None:
    # Given seven objects
    keys = [f"fn/{n:02d}.zip" for n in range(7)]
    for key in keys:
        put(env, key, b"x")
    # When they are listed three at a time, by hand and with the SDK's paginator
    first = env.oss.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, max_keys=3))
    second = env.oss.list_objects_v2(
        oss.ListObjectsV2Request(bucket=bucket, max_keys=3, continuation_token=first.next_continuation_token)
    )
    pages = list(env.oss.list_objects_v2_paginator().iter_page(oss.ListObjectsV2Request(bucket=bucket, max_keys=3)))
    # Then pages follow each other without gaps or repeats, the last one not truncated
    assert [o.key for o in first.contents] == keys[:3]
    assert first.is_truncated is True
    assert [o.key for o in second.contents] == keys[3:6]
    assert [[o.key for o in p.contents] for p in pages] == [keys[:3], keys[3:6], keys[6:]]
    assert pages[-1].is_truncated is False


def test_list_objects_v2_rolls_keys_up_into_common_prefixes(env: CloudEnv, bucket: str) -> None:
    # Given objects at the top and under two "directories"
    for key in ("readme.txt", "fn/a.zip", "fn/b.zip", "layers/x.zip"):
        put(env, key, b"x")
    # When they are listed with a delimiter, one entry a page
    pages = list(
        env.oss.list_objects_v2_paginator().iter_page(
            oss.ListObjectsV2Request(bucket=bucket, delimiter="/", max_keys=1)
        )
    )
    # Then each directory is one common prefix, listed once
    listed = [[o.key for o in p.contents or []] + [c.prefix for c in p.common_prefixes or []] for p in pages]
    assert listed == [["fn/"], ["layers/"], ["readme.txt"]]


def test_list_objects_v2_refuses_max_keys_over_1000(env: CloudEnv, bucket: str) -> None:
    error = service_error(lambda: env.oss.list_objects_v2(oss.ListObjectsV2Request(bucket=bucket, max_keys=1001)))
    assert (error.status_code, error.code) == (400, "InvalidArgument")


# -- faults, counting, state -----------------------------------------------------------------------


def test_a_put_object_fault_surfaces_as_a_503_and_the_next_call_works(env: CloudEnv, bucket: str) -> None:
    # Given the next PutObject fails with ServiceUnavailable
    env.cloud.install_faults([{"action": "PutObject", "code": "ServiceUnavailable", "nth": 1}])
    # When an object is put without SDK retries, then again
    error = service_error(
        lambda: env.oss.put_object(oss.PutObjectRequest(bucket=bucket, key="fn.zip", body=b"zip"), retry_max_attempts=1)
    )
    result = put(env, "fn.zip", b"zip")
    # Then the first is a 503 in OSS's XML shape, the second succeeds; both calls and the error are counted
    assert (error.status_code, error.code) == (503, "ServiceUnavailable")
    assert result.status_code == 200
    assert env.cloud.calls["PutObject"] == 2
    assert env.cloud.errors["PutObject:ServiceUnavailable"] == 1


def test_the_sdk_retries_a_503_by_itself(env: CloudEnv, bucket: str) -> None:
    # Given the next PutObject fails with ServiceUnavailable
    env.cloud.install_faults([{"action": "PutObject", "code": "ServiceUnavailable", "nth": 1}])
    # When an object is put with the SDK's default retryer
    result = put(env, "fn.zip", b"zip")
    # Then it succeeds on the second attempt
    assert result.status_code == 200
    assert env.cloud.calls["PutObject"] == 2


def test_put_object_is_throttled_by_a_rate_limit(make_env: Callable[..., CloudEnv]) -> None:
    # Given one PutObject a simulated second
    env = make_env({**SCENARIO, "buckets": [BUCKET], "rate_limits": {"PutObject": 1}})
    put(env, "a.zip", b"a")
    # When a second one comes in the same instant, and another a second later
    error = service_error(lambda: put(env, "b.zip", b"b"))
    env.cloud.advance(1)
    # Then the second is throttled and the third goes through
    assert error.code == "Throttling"
    assert put(env, "c.zip", b"c").status_code == 200


def test_state_summarises_buckets_and_objects_without_their_bytes(env: CloudEnv, bucket: str) -> None:
    # Given a bucket with one object
    put(env, "fn.zip", b"zip bytes")
    # When the admin API's state is read over the transport
    state = requests.get(raw_url(env, "/_localcloud/state"), timeout=10).json()
    # Then the bucket lists the object's key, size and ETag, and no content
    [summary] = state["buckets"]
    assert summary["Name"] == bucket
    assert summary["Objects"] == [
        {
            "Key": "fn.zip",
            "Size": 9,
            "ETag": f'"{hashlib.md5(b"zip bytes").hexdigest().upper()}"',
            "LastModified": env.cloud.clock.iso(),
        }
    ]


def test_read_object_gives_local_cloud_code_the_bytes_without_counting_a_call(env: CloudEnv, bucket: str) -> None:
    # Given an object
    put(env, "fn.zip", b"zip")
    calls = sum(env.cloud.calls.values())
    # When other local cloud code reads it, and a missing key and bucket
    data = env.cloud.oss.read_object(bucket, "fn.zip")
    with pytest.raises(ApiError) as no_key:
        env.cloud.oss.read_object(bucket, "missing.zip")
    with pytest.raises(ApiError) as no_bucket:
        env.cloud.oss.read_object("no-such-bucket", "fn.zip")
    # Then it gets the bytes or the OSS error, and no API call is counted
    assert data == b"zip"
    assert (no_key.value.code, no_bucket.value.code) == ("NoSuchKey", "NoSuchBucket")
    assert sum(env.cloud.calls.values()) == calls


def test_oss_and_rpc_share_one_endpoint(env: CloudEnv, bucket: str) -> None:
    # Given an OSS bucket on the same endpoint as ECS
    from alibabacloud_ecs20140526 import models as ecs_models

    put(env, "fn.zip", b"zip")
    # When ECS is called there too
    images = env.ecs.describe_images(ecs_models.DescribeImagesRequest(region_id=env.region)).body
    # Then both answer
    assert images.request_id
    assert get(env, "fn.zip") == b"zip"


def test_fc_rest_paths_go_to_the_fc_service_without_the_cloud_lock(
    env: CloudEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an FC service that records what reaches it and whether another thread can take the cloud's lock
    seen: list[tuple[RestRequest, bool]] = []

    class RecordingFc:
        def handle_rest(self, request: RestRequest) -> Reply:
            free: list[bool] = []
            probe = threading.Thread(target=lambda: free.append(_try_lock(env.cloud.lock)))
            probe.start()
            probe.join()
            seen.append((request, free[0]))
            return Reply(200, {"Functions": []})

    monkeypatch.setitem(env.cloud.services, "fc", RecordingFc())
    # When an FC 3.0 ROA path is called
    answer = requests.get(raw_url(env, "/2023-03-30/functions?limit=10"), timeout=10)
    # Then the FC service answers it, called with the lock free, and got the parsed request
    assert answer.json() == {"Functions": []}
    [(request, lock_was_free)] = seen
    assert lock_was_free
    assert (request.method, request.path, request.query) == ("GET", "/2023-03-30/functions", {"limit": "10"})


def _try_lock(lock: Any) -> bool:
    if lock.acquire(timeout=2):
        lock.release()
        return True
    return False


def test_fc_rest_paths_answer_path_not_supported_in_fcs_shape_when_no_fc_service_is_registered(
    env: CloudEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a local cloud without an FC 3.0 service
    monkeypatch.delitem(env.cloud.services, "fc", raising=False)
    # When an FC ROA path is called
    answer = requests.get(raw_url(env, "/2023-03-30/functions"), timeout=10)
    # Then it is FC's 400 PathNotSupported (FC error codes doc), as JSON with Code, Message and RequestId
    assert answer.status_code == 400
    body = answer.json()
    assert body["Code"] == "PathNotSupported"
    assert body["RequestId"]
    assert "/2023-03-30/functions" in body["Message"]
