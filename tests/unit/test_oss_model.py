"""OSS pieces that need no transport: the CRC-64 OSS reports, bucket name rules, the `buckets` scenario key."""

from __future__ import annotations

import pytest

from localcloud import LocalCloud, Scenario
from localcloud.errors import ApiError
from localcloud.scenario import ScenarioError
from localcloud.services.oss.model import bucket_name_problem, crc64


def test_crc64_is_crc64_ecma182_as_oss_reports_it() -> None:
    # Given the standard check input of CRC-64/XZ (ECMA-182 polynomial, reflected, all-ones init and xorout)
    # When its CRC is computed
    # Then it is the catalogued check value, and the empty input is 0
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA
    assert crc64(b"") == 0


@pytest.mark.parametrize("name", ["abc", "a" * 63, "bakery-code-1", "0start", "end9"])
def test_valid_bucket_names(name: str) -> None:
    assert bucket_name_problem(name) == ""


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Upper", "under_score", "-dash", "dash-", "dot.ted", ""])
def test_invalid_bucket_names_say_why(name: str) -> None:
    assert bucket_name_problem(name) != ""


def test_scenario_buckets_exist_when_the_cloud_starts() -> None:
    # Given a scenario with a bucket of its own account and one another account holds
    scenario = Scenario.from_mapping({"buckets": ["bakery-code", {"name": "taken-name", "owner": "999"}]})
    # When the cloud boots
    cloud = LocalCloud(scenario)
    # Then the own bucket is empty and readable, the other's is refused, both in the state
    with pytest.raises(ApiError) as caught:
        cloud.oss.read_object("bakery-code", "missing.zip")
    assert (caught.value.code, caught.value.status) == ("NoSuchKey", 404)
    with pytest.raises(ApiError) as caught:
        cloud.oss.read_object("taken-name", "x")
    assert (caught.value.code, caught.value.status) == ("AccessDenied", 403)
    assert [b["Name"] for b in cloud.state()["buckets"]] == ["bakery-code", "taken-name"]
    cloud.close()


@pytest.mark.parametrize(
    ("buckets", "needle"),
    [
        (["Bad_Name"], "not valid"),
        (["same", "same"], "duplicate"),
        ([{"name": "ok-name", "colour": "red"}], "unknown key"),
        ("bakery-code", "must be a list"),
        ([42], "a bucket is a name"),
    ],
)
def test_scenario_buckets_are_validated(buckets: object, needle: str) -> None:
    # Given a `buckets` value that is wrong
    # When the scenario loads
    # Then it is refused, saying what is wrong
    with pytest.raises(ScenarioError, match=needle):
        Scenario.from_mapping({"buckets": buckets})
