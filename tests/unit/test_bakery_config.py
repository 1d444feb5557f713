"""bakery.config.Settings: env vars as one validated model, with an actionable message for each bad value."""

from __future__ import annotations

import pytest

from bakery.config import Settings
from bakery.errors import ConfigError

REGION = {"FC_REGION": "cn-hangzhou"}


# -- defaults ------------------------------------------------------------------------------------------


def test_only_the_region_is_required_and_everything_else_has_a_default() -> None:
    # Given an environment with nothing but the region FC sets
    # When Settings are read
    settings = Settings.from_env(REGION)

    # Then every other field is its documented default
    assert settings == Settings(region="cn-hangzhou")
    assert (settings.event_bus, settings.repair_instance_type, settings.log_level) == ("bakery", "ecs.g7.large", "INFO")
    assert (settings.min_free_mb, settings.max_create_attempts, settings.max_repairs) == (1024, 2, 2)
    assert (settings.unchecked_guest_policy, settings.unchecked_image_policy, settings.retire_policy) == (
        "block",
        "fail",
        "delete",
    )
    assert settings.tags_required == {}
    assert settings.cloud_endpoint == ""


def test_empty_values_count_as_unset() -> None:
    # Given variables present but empty (what an unset template parameter yields)
    env = {**REGION, "BAKERY_EVENT_BUS": "", "BAKERY_MIN_FREE_MB": "", "BAKERY_MANDATORY_TAGS": ""}

    # When Settings are read / Then the defaults apply
    assert Settings.from_env(env) == Settings(region="cn-hangzhou")


def test_values_are_read_from_their_env_vars() -> None:
    # Given every template variable set to a non-default value
    env = {
        **REGION,
        "BAKERY_EVENT_BUS": "images",
        "BAKERY_MANDATORY_TAGS": '{"cost-center": "42"}',
        "BAKERY_REPAIR_ZONE_ID": "cn-hangzhou-h",
        "BAKERY_REPAIR_VSWITCH_ID": "vsw-1",
        "BAKERY_REPAIR_SECURITY_GROUP_ID": "sg-1",
        "BAKERY_REPAIR_INSTANCE_TYPE": "ecs.g8i.large",
        "BAKERY_LOG_LEVEL": "debug",
        "BAKERY_MIN_FREE_MB": "0",
        "BAKERY_MAX_CREATE_ATTEMPTS": "1",
        "BAKERY_MAX_REPAIRS": "0",
        "BAKERY_UNCHECKED_GUEST_POLICY": "warn",
        "BAKERY_UNCHECKED_IMAGE_POLICY": "promote",
        "BAKERY_RETIRE_POLICY": "deprecate",
        "BAKERY_CLOUD_ENDPOINT": "127.0.0.1:8080",
    }

    # When Settings are read
    settings = Settings.from_env(env)

    # Then each field holds its variable's value, numbers as ints and tags as a mapping
    assert settings == Settings(
        event_bus="images", mandatory_tags={"cost-center": "42"}, repair_zone_id="cn-hangzhou-h",
        repair_vswitch_id="vsw-1", repair_security_group_id="sg-1", repair_instance_type="ecs.g8i.large",
        log_level="debug", min_free_mb=0, max_create_attempts=1, max_repairs=0, unchecked_guest_policy="warn",
        unchecked_image_policy="promote", retire_policy="deprecate", region="cn-hangzhou",
        cloud_endpoint="127.0.0.1:8080",
    )  # fmt: skip
    assert settings.tags_required == {"cost-center": "42"}


def test_from_env_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given FC's variables in the process environment
    monkeypatch.setenv("FC_REGION", "cn-shanghai")
    monkeypatch.setenv("BAKERY_MAX_REPAIRS", "3")

    # When Settings are read without an explicit mapping / Then they come from os.environ
    settings = Settings.from_env()
    assert (settings.region, settings.max_repairs) == ("cn-shanghai", 3)


# -- validation ----------------------------------------------------------------------------------------


def test_missing_region_names_fc_region() -> None:
    # Given no FC_REGION / When Settings are read / Then the error names it and says who sets it
    with pytest.raises(ConfigError) as info:
        Settings.from_env({})
    assert str(info.value) == (
        "FC_REGION is not set: Bakery needs the region it runs in (FC sets it on every instance)."
    )


def test_mandatory_tags_that_are_not_json_show_an_example_and_the_parse_error() -> None:
    # Given BAKERY_MANDATORY_TAGS that is not JSON
    env = {**REGION, "BAKERY_MANDATORY_TAGS": "cost-center=42"}

    # When Settings are read / Then the error shows the expected shape and what the parser said
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value) == 'BAKERY_MANDATORY_TAGS must be a JSON object like {"cost-center": "42"}: Expecting value'


@pytest.mark.parametrize("raw", ['["cost-center", "42"]', '{"cost-center": 42}', '"cost-center"'])
def test_mandatory_tags_that_are_not_an_object_of_strings_are_refused(raw: str) -> None:
    # Given BAKERY_MANDATORY_TAGS that is JSON but not an object of string values
    env = {**REGION, "BAKERY_MANDATORY_TAGS": raw}

    # When Settings are read / Then the error says what is expected
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value) == 'BAKERY_MANDATORY_TAGS must be a JSON object of strings, like {"cost-center": "42"}.'


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "BAKERY_UNCHECKED_GUEST_POLICY",
            "allow",
            "BAKERY_UNCHECKED_GUEST_POLICY must be one of block, warn, got 'allow'.",
        ),
        (
            "BAKERY_UNCHECKED_IMAGE_POLICY",
            "pass",
            "BAKERY_UNCHECKED_IMAGE_POLICY must be one of fail, promote, got 'pass'.",
        ),
        ("BAKERY_RETIRE_POLICY", "keep", "BAKERY_RETIRE_POLICY must be one of delete, deprecate, got 'keep'."),
        ("BAKERY_RETIRE_POLICY", "Delete", "BAKERY_RETIRE_POLICY must be one of delete, deprecate, got 'Delete'."),
        ("BAKERY_LOG_LEVEL", "verbose", "BAKERY_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got 'verbose'."),
    ],
)
def test_a_value_outside_its_choices_names_the_variable_and_the_choices(name: str, value: str, message: str) -> None:
    # Given a policy (or log level) variable set to something it does not allow
    env = {**REGION, name: value}

    # When Settings are read / Then the error names the variable, the allowed values and what it got
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BAKERY_MIN_FREE_MB", "1G", "BAKERY_MIN_FREE_MB must be a whole number, got '1G'."),
        ("BAKERY_MAX_REPAIRS", "1.5", "BAKERY_MAX_REPAIRS must be a whole number, got '1.5'."),
        ("BAKERY_MAX_CREATE_ATTEMPTS", "two", "BAKERY_MAX_CREATE_ATTEMPTS must be a whole number, got 'two'."),
        ("BAKERY_MIN_FREE_MB", "-1", "BAKERY_MIN_FREE_MB must be >= 0, got -1."),
        ("BAKERY_MAX_REPAIRS", "-2", "BAKERY_MAX_REPAIRS must be >= 0, got -2."),
        ("BAKERY_MAX_CREATE_ATTEMPTS", "0", "BAKERY_MAX_CREATE_ATTEMPTS must be >= 1, got 0."),
    ],
)
def test_a_bad_number_names_the_variable_and_the_bound(name: str, value: str, message: str) -> None:
    # Given a numeric variable that is not a whole number, or below its lower bound
    env = {**REGION, name: value}

    # When Settings are read / Then the error names the variable and what is wrong
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert str(info.value) == message


def test_numbers_at_their_lower_bound_are_accepted() -> None:
    # Given each number at its lowest allowed value
    env = {**REGION, "BAKERY_MIN_FREE_MB": "0", "BAKERY_MAX_CREATE_ATTEMPTS": "1", "BAKERY_MAX_REPAIRS": "0"}

    # When Settings are read / Then they are accepted as ints
    settings = Settings.from_env(env)
    assert (settings.min_free_mb, settings.max_create_attempts, settings.max_repairs) == (0, 1, 0)


def test_a_lower_case_log_level_is_accepted() -> None:
    # Given BAKERY_LOG_LEVEL in lower case / When Settings are read / Then it is accepted as given
    assert Settings.from_env({**REGION, "BAKERY_LOG_LEVEL": "warning"}).log_level == "warning"


# -- variables() ---------------------------------------------------------------------------------------


def test_template_variables_are_the_ones_template_yml_sets() -> None:
    # When the template-sourced variable names are asked for / Then they are the BAKERY_* knobs, and only those
    assert Settings.variables("template") == {
        "BAKERY_EVENT_BUS", "BAKERY_MANDATORY_TAGS", "BAKERY_REPAIR_ZONE_ID", "BAKERY_REPAIR_VSWITCH_ID",
        "BAKERY_REPAIR_SECURITY_GROUP_ID", "BAKERY_REPAIR_INSTANCE_TYPE", "BAKERY_LOG_LEVEL", "BAKERY_MIN_FREE_MB",
        "BAKERY_MAX_CREATE_ATTEMPTS", "BAKERY_MAX_REPAIRS", "BAKERY_UNCHECKED_GUEST_POLICY",
        "BAKERY_UNCHECKED_IMAGE_POLICY", "BAKERY_RETIRE_POLICY", "BAKERY_RETENTION_KEEP", "BAKERY_RETENTION_ACTION",
        "BAKERY_ADOPT_IMAGES", "BAKERY_ADOPT_FAMILIES", "BAKERY_ADOPTED_ORIGINAL",
    }  # fmt: skip


def test_platform_variables_are_the_ones_fc_sets() -> None:
    # When the platform-sourced names are asked for / Then they are FC's region, account and STS credentials
    assert Settings.variables("platform") == {
        "FC_REGION", "FC_ACCOUNT_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
    }  # fmt: skip


def test_local_variables_are_only_the_cloud_endpoint() -> None:
    # When the local-only names are asked for / Then only the local cloud endpoint is there
    assert Settings.variables("local") == {"BAKERY_CLOUD_ENDPOINT"}


def test_all_variables_are_the_union_of_every_source() -> None:
    # When no source is given / Then every variable of every source is returned
    assert Settings.variables() == (
        Settings.variables("template") | Settings.variables("platform") | Settings.variables("local")
    )


def test_an_unknown_source_has_no_variables() -> None:
    # When a source nobody uses is asked for / Then the answer is empty
    assert Settings.variables("nobody") == set()
