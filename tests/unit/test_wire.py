"""The RPC wire protocol, pure: un-flattening, typed param access, and request parsing for the shapes
the SDKs send (V3 headers, legacy V2 query, EventBridge's form body). alibaba-apis.md §1.2-1.3."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.errors import ApiError
from localcloud.wire import Params, parse_request, unflatten

V3_HEADERS = {
    "accept": "application/json",
    "x-acs-action": "DescribeImages",
    "x-acs-version": "2014-05-26",
    "x-acs-signature-nonce": "9b7e3df38640fe31898260e70a88978c",
    "Authorization": "ACS3-HMAC-SHA256 Credential=AKIDDUMMY,SignedHeaders=accept;host,Signature=abc",
}


# -- unflatten -------------------------------------------------------------------------------------


def test_unflatten_groups_indexed_struct_fields_into_a_list_of_dicts() -> None:
    # Given RepeatList params as the SDK flattens them
    flat = {"Tag.1.Key": "owner", "Tag.1.Value": "me", "Tag.2.Key": "env", "Tag.2.Value": ""}
    # When they are unflattened
    # Then each index becomes one dict, in index order
    assert unflatten(flat) == {"Tag": [{"Key": "owner", "Value": "me"}, {"Key": "env", "Value": ""}]}


def test_unflatten_orders_indexed_scalars_numerically() -> None:
    # Given a list of strings sent out of order, with a two-digit index
    flat = {"InstanceId.10": "i-10", "InstanceId.2": "i-2", "InstanceId.1": "i-1"}
    # When they are unflattened
    # Then they are ordered by index as numbers, not as text
    assert unflatten(flat) == {"InstanceId": ["i-1", "i-2", "i-10"]}


def test_unflatten_nests_dotted_keys_without_an_index() -> None:
    # Given a nested model param and a plain one
    flat = {"Features.ImdsSupport": "v2", "SecureBootOptions.SecureBootSupport": "supported", "ImageName": "web"}
    # When they are unflattened
    # Then the dotted ones become nested dicts and the plain one stays
    assert unflatten(flat) == {
        "Features": {"ImdsSupport": "v2"},
        "SecureBootOptions": {"SecureBootSupport": "supported"},
        "ImageName": "web",
    }


def test_unflatten_keeps_several_struct_fields_of_one_entry_together() -> None:
    # Given a full DiskDeviceMapping as CreateImage sends it
    flat = {
        "DiskDeviceMapping.1.SnapshotId": "s-1",
        "DiskDeviceMapping.1.Size": "40",
        "DiskDeviceMapping.1.Device": "/dev/xvda",
        "DiskDeviceMapping.1.DiskType": "system",
        "DiskDeviceMapping.2.SnapshotId": "s-2",
    }
    # When it is unflattened
    # Then each mapping keeps all its fields
    assert unflatten(flat)["DiskDeviceMapping"] == [
        {"SnapshotId": "s-1", "Size": "40", "Device": "/dev/xvda", "DiskType": "system"},
        {"SnapshotId": "s-2"},
    ]


def test_unflatten_of_nothing_is_empty() -> None:
    # Given an empty query
    # When it is unflattened
    # Then nothing comes out
    assert unflatten({}) == {}


# -- Params ----------------------------------------------------------------------------------------


def _error(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_str_returns_the_value_or_the_default_for_missing_and_empty() -> None:
    # Given params with a value and an empty one
    p = Params({"ImageName": "web", "Description": ""})
    # When they are read as strings
    # Then the value comes back, and missing or empty give the default
    assert p.str("ImageName") == "web"
    assert p.str("Description", "none") == "none"
    assert p.str("ImageFamily") is None
    assert p.str("ImageFamily", "fam") == "fam"


def test_required_param_missing_is_missing_parameter_naming_it() -> None:
    # Given params without ImageId
    p = Params({"RegionId": "cn-hangzhou"})
    # When ImageId is required
    error = _error(lambda: p.required("ImageId"))
    # Then the error is MissingParameter (400) naming it
    assert (error.code, error.status) == ("MissingParameter", 400)
    assert '"ImageId"' in error.message


def test_str_of_a_list_param_is_invalid_parameter() -> None:
    # Given a param that arrived as a list
    p = Params({"InstanceId.1": "i-1"})
    # When it is read as a single string
    error = _error(lambda: p.str("InstanceId"))
    # Then the error says a single value was expected
    assert error.code == "InvalidParameter"
    assert "InstanceId" in error.message


def test_int_parses_and_checks_bounds() -> None:
    # Given numeric params
    p = Params({"PageSize": "50", "PageNumber": "x", "MaxResults": "500"})
    # When they are read as integers
    # Then a number parses, a non-number and an out-of-range value are InvalidParameter naming the param
    assert p.int("PageSize") == 50
    assert p.int("Missing", 10) == 10
    assert "PageNumber" in _error(lambda: p.int("PageNumber")).message
    out_of_range = _error(lambda: p.int("MaxResults", low=10, high=100))
    assert out_of_range.code == "InvalidParameter"
    assert "500 is not from 10 to 100" in out_of_range.message
    assert "0 is not >= 1" in _error(lambda: Params({"PageNumber": "0"}).int("PageNumber", low=1)).message


@pytest.mark.parametrize(("text", "expected"), [("True", True), ("False", False), ("true", True), ("FALSE", False)])
def test_bool_is_case_insensitive(text: str, expected: bool) -> None:
    # Given a boolean as the Python SDK (str(bool)) or another SDK (lower case) sends it
    p = Params({"DryRun": text})
    # When it is read as a boolean
    # Then the case does not matter
    assert p.bool("DryRun") is expected


def test_bool_default_and_invalid_value() -> None:
    # Given a param that is not a boolean
    p = Params({"Force": "yes"})
    # When booleans are read
    # Then a missing one gives the default, and the bad one is InvalidParameter naming it
    assert p.bool("DryRun") is False
    assert p.bool("DryRun", True) is True
    assert "Force" in _error(lambda: p.bool("Force")).message


def test_list_reads_indexed_and_single_values() -> None:
    # Given an indexed list and a single value
    p = Params({"InstanceId.1": "i-1", "InstanceId.2": "i-2", "TagKey": "k"})
    # When they are read as lists
    # Then both come back as lists, and a missing one as empty
    assert p.list("InstanceId") == ["i-1", "i-2"]
    assert p.list("TagKey") == ["k"]
    assert p.list("ResourceId") == []


def test_struct_list_and_struct() -> None:
    # Given RepeatList and nested-model params
    p = Params({"Tag.1.Key": "a", "Tag.1.Value": "b", "Features.ImdsSupport": "v2"})
    # When they are read as structures
    # Then they come back as a list of dicts and a dict; missing ones are empty
    assert p.struct_list("Tag") == [{"Key": "a", "Value": "b"}]
    assert p.struct("Features") == {"ImdsSupport": "v2"}
    assert p.struct_list("DiskDeviceMapping") == []
    assert p.struct("SecureBootOptions") == {}


def test_json_decodes_caller_encoded_params() -> None:
    # Given params the caller JSON-encoded itself (OOS Parameters, Tags)
    p = Params({"Parameters": '{"repairItems": ["nvme"]}', "Tags": '{"team":"img"}'})
    # When they are read as JSON
    # Then they are decoded, and a missing one gives the default
    assert p.json("Parameters") == {"repairItems": ["nvme"]}
    assert p.json("Tags") == {"team": "img"}
    assert p.json("Missing", {}) == {}


def test_json_that_is_not_valid_is_invalid_parameter_naming_it() -> None:
    # Given a param that is not valid JSON
    p = Params({"Parameters": "{repairItems: nvme}"})
    # When it is read as JSON
    error = _error(lambda: p.json("Parameters"))
    # Then the error is InvalidParameter naming it
    assert error.code == "InvalidParameter"
    assert '"Parameters"' in error.message


def test_json_list_wants_an_array_of_strings() -> None:
    # Given a JSON array of ids and a JSON string that is not an array
    p = Params({"InstanceIds": '["i-1", "i-2"]', "SnapshotIds": '"s-1"'})
    # When they are read as JSON lists
    # Then the array comes back, the other is InvalidParameter with an example, and missing is None
    assert p.json_list("InstanceIds") == ["i-1", "i-2"]
    assert '["id-1", "id-2"]' in _error(lambda: p.json_list("SnapshotIds")).message
    assert p.json_list("DiskIds") is None


def test_comma_list_splits_and_drops_blanks() -> None:
    # Given a comma list with spaces and an empty item
    p = Params({"Status": "Available, Creating,,Deprecated"})
    # When it is read as a comma list
    # Then the items are trimmed and blanks dropped
    assert p.comma_list("Status") == ["Available", "Creating", "Deprecated"]
    assert p.comma_list("ImageId") == []


def test_tags_pairs_keys_with_values_even_empty_ones() -> None:
    # Given tags, one without a value
    p = Params({"Tag.1.Key": "owner", "Tag.1.Value": "me", "Tag.2.Key": "flag"})
    # When they are read as tags
    # Then each key comes with its value ("" when absent)
    assert p.tags() == [("owner", "me"), ("flag", "")]


def test_contains_ignores_empty_values() -> None:
    # Given a param with a value and one that is empty
    p = Params({"IsPublic": "False", "Usable": ""})
    # When membership is tested
    # Then only the one with a value counts
    assert "IsPublic" in p
    assert "Usable" not in p
    assert "Missing" not in p


# -- parse_request ---------------------------------------------------------------------------------


def test_v3_request_is_routed_on_the_x_acs_headers() -> None:
    # Given a V3 request: action and version in headers, business params in the query
    url = "/?ImageId=m-1%2Cm-2&RegionId=cn-hangzhou&Tag.1.Key=k1&Tag.1.Value=v1&IsSupportCloudinit=True"
    # When it is parsed
    request = parse_request("POST", url, V3_HEADERS, b"")
    # Then service, action, params and the caller's AccessKey id come out
    assert (request.service, request.version, request.action) == ("ecs", "2014-05-26", "DescribeImages")
    assert request.params.comma_list("ImageId") == ["m-1", "m-2"]
    assert request.params.tags() == [("k1", "v1")]
    assert request.params.bool("IsSupportCloudinit") is True
    assert request.access_key_id == "AKIDDUMMY"


def test_header_names_are_case_insensitive() -> None:
    # Given the same headers with other capitalisation
    headers = {"X-Acs-Action": "ListExecutions", "X-ACS-VERSION": "2019-06-01"}
    # When the request is parsed
    request = parse_request("POST", "/?RegionId=cn-hangzhou", headers, b"")
    # Then it is routed all the same
    assert (request.service, request.action) == ("oos", "ListExecutions")


def test_query_decodes_plus_as_a_space() -> None:
    # Given a query built with urlencode (spaces as +)
    url = "/?Description=my+image+%2B+more&RegionId=cn-hangzhou"
    # When it is parsed
    request = parse_request("POST", url, V3_HEADERS, b"")
    # Then + is a space and %2B a plus
    assert request.params.str("Description") == "my image + more"


def test_v2_request_is_routed_on_query_params_and_drops_the_envelope() -> None:
    # Given a legacy V2 request: Action, Version and the signature envelope in the query
    url = (
        "/?AccessKeyId=AKIDV2&Action=DescribeInstances&Format=json&RegionId=cn-hangzhou&Signature=abc%3D"
        "&SignatureMethod=HMAC-SHA1&SignatureNonce=n1&SignatureVersion=1.0&Timestamp=2026-11-27T15%3A42%3A02Z"
        "&Version=2014-05-26&PageSize=10"
    )
    # When it is parsed
    request = parse_request("POST", url, {}, b"")
    # Then it is routed from the query, only business params remain, and the AccessKeyId is known
    assert (request.service, request.action) == ("ecs", "DescribeInstances")
    assert request.params.flat == {"RegionId": "cn-hangzhou", "PageSize": "10"}
    assert request.access_key_id == "AKIDV2"


def test_form_body_params_are_merged_with_the_query() -> None:
    # Given EventBridge's PutEvents: empty query, params in a form body
    headers = {
        "x-acs-action": "PutEvents",
        "x-acs-version": "2020-04-01",
        "content-type": "application/x-www-form-urlencoded",
    }
    body = b"EventBusName=bakery&EventList=%5B%7B%22Id%22%3A%221%22%2C%22Source%22%3A%22acs.custom%22%7D%5D"
    # When it is parsed
    request = parse_request("POST", "/?Extra=q", headers, body)
    # Then the body's params are there, next to the query's
    assert request.service == "eventbridge"
    assert request.params.str("EventBusName") == "bakery"
    assert request.params.json("EventList") == [{"Id": "1", "Source": "acs.custom"}]
    assert request.params.str("Extra") == "q"


def test_a_body_that_is_not_a_form_is_ignored() -> None:
    # Given a JSON body (not form-encoded)
    headers = {**V3_HEADERS, "content-type": "application/json"}
    # When the request is parsed
    request = parse_request("POST", "/?RegionId=cn-hangzhou", headers, b'{"ImageId": "m-1"}')
    # Then only the query's params are seen
    assert request.params.flat == {"RegionId": "cn-hangzhou"}


@pytest.mark.parametrize(
    ("headers", "missing"),
    [({"x-acs-version": "2014-05-26"}, "Action"), ({"x-acs-action": "DescribeImages"}, "Version")],
)
def test_request_without_action_or_version_is_missing_parameter(headers: dict[str, str], missing: str) -> None:
    # Given a request without an action or a version
    # When it is parsed
    error = _error(lambda: parse_request("POST", "/", headers, b""))
    # Then it is MissingParameter naming what is missing
    assert error.code == "MissingParameter"
    assert f'"{missing}"' in error.message


def test_request_for_an_unknown_version_is_invalid_version() -> None:
    # Given a request for an API version the local cloud does not speak
    headers = {"x-acs-action": "DescribeImages", "x-acs-version": "2016-01-01"}
    # When it is parsed
    error = _error(lambda: parse_request("POST", "/", headers, b""))
    # Then it is InvalidVersion naming the version and the supported ones
    assert (error.code, error.status) == ("InvalidVersion", 400)
    assert "2016-01-01" in error.message
    assert "2014-05-26" in error.message


def test_access_key_id_from_the_sts_header_and_default() -> None:
    # Given a request with only the x-acs-accesskey-id header, and one with no credentials at all
    with_header = {"x-acs-action": "DescribeImages", "x-acs-version": "2014-05-26", "x-acs-accesskey-id": "STS.A"}
    anonymous = {"x-acs-action": "DescribeImages", "x-acs-version": "2014-05-26"}
    # When they are parsed
    # Then the id comes from the header, or is "anonymous"
    assert parse_request("POST", "/", with_header, b"").access_key_id == "STS.A"
    assert parse_request("POST", "/", anonymous, b"").access_key_id == "anonymous"


def test_blank_query_values_are_kept() -> None:
    # Given a param sent with an empty value
    # When the request is parsed
    request = parse_request("POST", "/?Tag.1.Key=k&Tag.1.Value=", V3_HEADERS, b"")
    # Then the empty value is kept (an empty tag value is legal)
    assert request.params.flat == {"Tag.1.Key": "k", "Tag.1.Value": ""}
