"""Protocol routing, pure: which request goes to OSS, FC 3.0 (ROA) or RPC, and how a REST request is read
(wire.route / wire.rest_request). Header shapes are what the SDKs send (alibabacloud-oss-v2 1.4, Tea)."""

from __future__ import annotations

import pytest

from localcloud.wire import rest_request, route, subdomain_of

OSS_V4 = {
    "x-oss-date": "20260105T090000Z",
    "x-oss-content-sha256": "UNSIGNED-PAYLOAD",
    "Authorization": "OSS4-HMAC-SHA256 Credential=LTAIoss/20260105/cn-hangzhou/oss/aliyun_v4_request,Signature=abc",
}
RPC_V3 = {
    "x-acs-action": "DescribeImages",
    "x-acs-version": "2014-05-26",
    "Authorization": "ACS3-HMAC-SHA256 Credential=LTAIrpc,SignedHeaders=host,Signature=abc",
}
MOCK_HOST = "cloud1.localcloud.internal"


def test_rpc_requests_to_the_root_path_go_to_rpc() -> None:
    # Given RPC calls as Tea sends them (V3 headers; legacy V2 query)
    # When they are routed
    # Then both are RPC
    assert route("POST", "/?RegionId=cn-hangzhou", RPC_V3) == "rpc"
    assert route("GET", "/?Action=DescribeImages&Version=2014-05-26", {}) == "rpc"


def test_a_request_without_any_marker_to_the_root_stays_rpc() -> None:
    # Given a bare POST / (no action): the RPC path answers it with MissingParameter, as before
    # When it is routed
    # Then it is RPC
    assert route("POST", "/", {}) == "rpc"


def test_an_oss_signed_request_goes_to_oss_even_on_the_root_path() -> None:
    # Given OSS ListBuckets, GET / signed with V4, and the same with a V1 signature
    v1 = {"Authorization": "OSS LTAIv1:c2lnbmF0dXJl", "Date": "Mon, 05 Jan 2026 09:00:00 GMT"}
    # When they are routed
    # Then they go to OSS
    assert route("GET", "/", OSS_V4) == "oss"
    assert route("GET", "/", v1) == "oss"


def test_a_virtual_hosted_bucket_goes_to_oss_even_unsigned() -> None:
    # Given an anonymous GET of an object on a virtual-hosted bucket of the in-process cloud
    # When it is routed with the cloud's host as base
    # Then it is OSS
    assert route("GET", "/", {}, host=f"code.{MOCK_HOST}", base_hosts=(MOCK_HOST,)) == "oss"


def test_fc_paths_go_to_fc() -> None:
    # Given an FC 3.0 ROA call (Tea sends x-acs-action and version headers too)
    headers = {"x-acs-action": "ListFunctions", "x-acs-version": "2023-03-30"}
    # When it is routed
    # Then it is FC, not RPC
    assert route("GET", "/2023-03-30/functions?limit=10", headers) == "fc"


def test_an_oss_signed_path_style_request_under_the_fc_prefix_is_oss() -> None:
    # Given a path-style OSS request to a bucket named like FC's version (a valid bucket name)
    # When it is routed
    # Then the OSS signature wins
    assert route("PUT", "/2023-03-30/key.zip", OSS_V4) == "oss"


def test_an_unsigned_path_style_request_to_a_bucket_goes_to_oss() -> None:
    # Given an anonymous path-style GET /bucket/key (curl, a presigned-less browser)
    # When it is routed
    # Then it is OSS
    assert route("GET", "/code/fn.zip", {}) == "oss"


def test_a_presigned_url_goes_to_oss() -> None:
    # Given a V4 presigned GET on the root path
    url = "/?x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=LTAIpre%2F20260105%2Fcn-hangzhou%2Foss"
    # When it is routed and read
    # Then it is OSS and the access key id comes from the credential
    assert route("GET", url, {}) == "oss"
    assert rest_request("GET", url, {}, b"").access_key_id == "LTAIpre"


@pytest.mark.parametrize(
    ("host", "base", "expected"),
    [
        (f"code.{MOCK_HOST}", MOCK_HOST, "code"),
        (f"code.{MOCK_HOST}:80", MOCK_HOST, "code"),
        (MOCK_HOST, MOCK_HOST, ""),
        ("code.localhost:8080", "localhost", "code"),
        ("127.0.0.1:8080", "127.0.0.1", ""),
        ("elsewhere.example.com", MOCK_HOST, ""),
    ],
)
def test_subdomain_of_takes_the_labels_in_front_of_the_base_host(host: str, base: str, expected: str) -> None:
    # Given a Host header and the host the cloud is served at
    # When the subdomain is taken
    # Then it is the labels in front (the port is ignored), or nothing
    assert subdomain_of(host, (base,)) == expected


def test_rest_request_normalises_the_http_parts() -> None:
    # Given a V4-signed path-style GET with a sub-resource and a parameter
    headers = {**OSS_V4, "Host": "127.0.0.1:9000", "Content-Type": "application/xml"}
    # When it is read
    request = rest_request("get", "/code/?acl&max-keys=10", headers, b"body", base_hosts=("127.0.0.1",))
    # Then method, path, query (a bare sub-resource is ""), lower-cased headers, host and access key are there
    assert request.method == "GET"
    assert request.path == "/code/"
    assert request.query == {"acl": "", "max-keys": "10"}
    assert request.headers["content-type"] == "application/xml"
    assert request.host == "127.0.0.1:9000"
    assert request.access_key_id == "LTAIoss"
    assert request.subdomain == ""
    assert request.body == b"body"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Authorization": "OSS LTAIv1:c2ln"}, "LTAIv1"),
        ({"Authorization": "ACS3-HMAC-SHA256 Credential=LTAIfc,SignedHeaders=host,Signature=x"}, "LTAIfc"),
        ({}, "anonymous"),
    ],
)
def test_rest_request_reads_the_access_key_id_of_every_signature(headers: dict[str, str], expected: str) -> None:
    # Given OSS V1, ACS3 (FC ROA) and unsigned requests
    # When they are read
    # Then the access key id is the signer's, or anonymous
    assert rest_request("GET", "/b/k", headers, b"").access_key_id == expected
