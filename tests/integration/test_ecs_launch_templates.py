"""ECS launch templates through the real SDK, over both transports: CreateLaunchTemplate,
CreateLaunchTemplateVersion, DescribeLaunchTemplates, DescribeLaunchTemplateVersions, the scenario's
`launch_templates:` key, and the trap they set for cleanup tools (a pinned image can still be deleted)."""

from __future__ import annotations

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ClientException

from localcloud import Scenario
from localcloud.scenario import ScenarioError
from tests.integration._ecs import UBUNTU, assert_api_error, events_of_type, image_exists

HISTORY = [
    {"id": "m-web-v1", "family": "web", "age_days": 20},
    {"id": "m-web-v2", "family": "web", "age_days": 10},
]
TEMPLATES = [
    {"id": "lt-web", "name": "web", "versions": [{"image_id": "m-web-v1"}, {"image_id": "m-web-v2"}]},
    {"id": "lt-api", "name": "api", "default_version": 1, "tags": {"team": "api"},
     "versions": [{"image_id": UBUNTU, "instance_type": "ecs.c7.large", "description": "first"}]},
]  # fmt: skip


def _env(make_env, **extra):
    return make_env({"images": HISTORY, "launch_templates": TEMPLATES, **extra})


def _templates(env, **filters):
    body = env.ecs.describe_launch_templates(
        ecs_models.DescribeLaunchTemplatesRequest(region_id=env.region, **filters)
    ).body
    return body.launch_template_sets.launch_template_set


def _versions(env, **filters):
    body = env.ecs.describe_launch_template_versions(
        ecs_models.DescribeLaunchTemplateVersionsRequest(region_id=env.region, **filters)
    ).body
    return body.launch_template_version_sets.launch_template_version_set


def _create(env, name="batch", **fields):
    return env.ecs.create_launch_template(
        ecs_models.CreateLaunchTemplateRequest(region_id=env.region, launch_template_name=name, **fields)
    ).body


def _new_version(env, **fields):
    return env.ecs.create_launch_template_version(
        ecs_models.CreateLaunchTemplateVersionRequest(region_id=env.region, **fields)
    ).body


# -- the scenario's templates ----------------------------------------------------------------------


def test_scenario_templates_are_described_with_their_latest_and_default_versions(make_env) -> None:
    # Given a region whose scenario declares two launch templates
    env = _env(make_env)

    # When the templates are described
    found = {t.launch_template_id: t for t in _templates(env)}

    # Then both are there, with version numbers counted from the scenario's versions
    assert set(found) == {"lt-web", "lt-api"}
    assert (found["lt-web"].launch_template_name, found["lt-web"].latest_version_number) == ("web", 2)
    assert found["lt-web"].default_version_number == 1
    assert {t.tag_key: t.tag_value for t in found["lt-api"].tags.tag} == {"team": "api"}


def test_scenario_versions_carry_the_image_each_one_pins(make_env) -> None:
    # Given the scenario's web template with two versions
    env = _env(make_env)

    # When its versions are described
    versions = _versions(env, launch_template_id="lt-web")

    # Then each version names its image, newest version first, and only version 1 is the default
    assert [(v.version_number, v.launch_template_data.image_id, v.default_version) for v in versions] == [
        (2, "m-web-v2", False),
        (1, "m-web-v1", True),
    ]


def test_a_scenario_template_naming_an_unknown_image_is_refused(make_env) -> None:
    # Given a scenario whose template pins an image that is neither public nor one of its images
    scenario = {"launch_templates": [{"id": "lt-x", "name": "x", "versions": [{"image_id": "m-typo"}]}]}

    # When the region is built / Then the error names the template, the version and the image
    with pytest.raises(ScenarioError, match=r"lt-x: versions\[0\]\.image_id 'm-typo'"):
        make_env(scenario)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"id": "web", "name": "web", "versions": [{}]}, r"an 'id' like lt-web"),
        ({"id": "lt-web", "name": "web", "versions": []}, r"versions needs at least one version"),
        ({"id": "lt-web", "name": "web", "versions": [{}], "default_version": 2}, r"default_version .* 1\.\.1"),
        ({"id": "lt-web", "name": "web", "versions": [{"image": "m-1"}]}, r"unknown key\(s\) \['image'\]"),
        ({"id": "lt-web", "versions": [{}]}, r"name is required"),
    ],
)
def test_malformed_scenario_templates_name_the_problem(template: dict, message: str) -> None:
    # Given a scenario with a malformed launch template / When it loads / Then the message says what is wrong
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_mapping({"launch_templates": [template]})


def test_duplicate_scenario_template_names_are_refused() -> None:
    # Given two templates with the same name / When the scenario loads / Then the duplicate is named
    twice = [{"id": "lt-a", "name": "web", "versions": [{}]}, {"id": "lt-b", "name": "web", "versions": [{}]}]
    with pytest.raises(ScenarioError, match=r"duplicate 'name web'"):
        Scenario.from_mapping({"launch_templates": twice})


# -- CreateLaunchTemplate / CreateLaunchTemplateVersion --------------------------------------------


def test_create_launch_template_stores_version_1_as_default_with_its_data(make_env) -> None:
    # Given a region
    env = _env(make_env)

    # When a template is created with an image, disks, security groups and instance tags
    created = _create(
        env, image_id="m-web-v2", instance_type="ecs.g7.large", version_description="first cut",
        security_group_ids=["sg-1", "sg-2"],
        system_disk=ecs_models.CreateLaunchTemplateRequestSystemDisk(category="cloud_essd", size=40),
        data_disk=[ecs_models.CreateLaunchTemplateRequestDataDisk(category="cloud_auto", size=100, device="/dev/xvdb")],
        tag=[ecs_models.CreateLaunchTemplateRequestTag(key="env", value="prod")],
        template_tag=[ecs_models.CreateLaunchTemplateRequestTemplateTag(key="owner", value="ops")],
    )  # fmt: skip

    # Then it answers the new id and version 1, which is the default and carries everything given
    assert created.launch_template_id.startswith("lt-")
    assert created.launch_template_version_number == 1
    (version,) = _versions(env, launch_template_id=created.launch_template_id)
    data = version.launch_template_data
    assert (version.default_version, version.version_description) == (True, "first cut")
    assert (data.image_id, data.instance_type) == ("m-web-v2", "ecs.g7.large")
    assert (data.system_disk.category, data.system_disk.size) == ("cloud_essd", 40)
    assert [(d.category, d.size, d.device) for d in data.data_disks.data_disk] == [("cloud_auto", 100, "/dev/xvdb")]
    assert data.security_group_ids.security_group_id == ["sg-1", "sg-2"]
    assert [(t.key, t.value) for t in data.tags.instance_tag] == [("env", "prod")]
    (template,) = _templates(env, launch_template_id=[created.launch_template_id])
    assert {t.tag_key: t.tag_value for t in template.tags.tag} == {"owner": "ops"}


def test_a_new_version_becomes_latest_but_not_default(make_env) -> None:
    # Given the scenario's api template (one version, the default)
    env = _env(make_env)

    # When a version is added by template name
    created = _new_version(env, launch_template_name="api", image_id="m-web-v2")

    # Then it is version 2, the latest; version 1 stays the default
    assert (created.launch_template_id, created.launch_template_version_number) == ("lt-api", 2)
    (template,) = _templates(env, launch_template_name=["api"])
    assert (template.latest_version_number, template.default_version_number) == (2, 1)
    (default,) = _versions(env, launch_template_id="lt-api", default_version=True)
    assert (default.version_number, default.launch_template_data.image_id) == (1, UBUNTU)


def test_versions_filter_by_number_and_leave_data_out_without_detail(make_env) -> None:
    # Given the web template with versions 1 and 2
    env = _env(make_env)

    # When version 2 is asked for by number, then every version without detail
    (second,) = _versions(env, launch_template_id="lt-web", launch_template_version=[2])
    bare = _versions(env, launch_template_id="lt-web", detail_flag=False)

    # Then the filter selects it, and DetailFlag=false answers no LaunchTemplateData
    assert second.launch_template_data.image_id == "m-web-v2"
    assert [v.version_number for v in bare] == [2, 1]
    assert all(v.launch_template_data is None for v in bare)


def test_describe_launch_templates_filters_by_name_and_template_tag(make_env) -> None:
    # Given the scenario's two templates (only api carries team=api)
    env = _env(make_env)

    # When filtered by name, and by template tag
    by_name = _templates(env, launch_template_name=["web"])
    by_tag = _templates(
        env, template_tag=[ecs_models.DescribeLaunchTemplatesRequestTemplateTag(key="team", value="api")]
    )

    # Then each filter selects exactly its template
    assert [t.launch_template_id for t in by_name] == ["lt-web"]
    assert [t.launch_template_id for t in by_tag] == ["lt-api"]


def test_create_launch_template_publishes_its_actiontrail_event(make_env) -> None:
    # Given a region / When a template is created
    env = _env(make_env)
    _create(env, image_id=UBUNTU)

    # Then ActionTrail reports the write call on the default bus, as for every ECS write
    names = [e["data"]["eventName"] for e in events_of_type(env, "ecs:ActionTrail:ApiCall")]
    assert "CreateLaunchTemplate" in names


# -- refusals --------------------------------------------------------------------------------------


def test_a_duplicate_template_name_is_refused(make_env) -> None:
    # Given the scenario's web template / When another template is created with the same name
    env = _env(make_env)
    with pytest.raises(ClientException) as error:
        _create(env, name="web", image_id=UBUNTU)

    # Then ECS refuses with 403 LaunchTemplateName.Duplicated
    assert_api_error(error.value, "LaunchTemplateName.Duplicated", 403, "web")


def test_a_malformed_template_name_is_refused(make_env) -> None:
    env = _env(make_env)
    with pytest.raises(ClientException) as error:
        _create(env, name="9-starts-with-a-digit", image_id=UBUNTU)
    assert_api_error(error.value, "InvalidLaunchTemplateName.Malformed", 400, "starting with a letter")


def test_versions_of_an_unknown_template_are_not_found(make_env) -> None:
    # Given a region / When versions of a template that does not exist are asked for
    env = _env(make_env)
    with pytest.raises(ClientException) as error:
        _versions(env, launch_template_id="lt-missing")

    # Then ECS answers 404 InvalidLaunchTemplate.NotFound naming it
    assert_api_error(error.value, "InvalidLaunchTemplate.NotFound", 404, "lt-missing")


def test_a_version_without_template_id_or_name_is_a_missing_parameter(make_env) -> None:
    env = _env(make_env)
    with pytest.raises(ClientException) as error:
        _new_version(env, image_id=UBUNTU)
    assert_api_error(error.value, "MissingParameter", 400, "LaunchTemplateId")


def test_a_template_holds_at_most_30_versions(make_env) -> None:
    # Given a template with 30 versions
    env = _env(make_env)
    for _ in range(29):
        _new_version(env, launch_template_id="lt-api", image_id=UBUNTU)

    # When a 31st is added / Then ECS refuses with 403 LaunchTemplateVersionLimitExceed
    with pytest.raises(ClientException) as error:
        _new_version(env, launch_template_id="lt-api", image_id=UBUNTU)
    assert_api_error(error.value, "LaunchTemplateVersionLimitExceed", 403, "30 versions")


# -- the trap: templates do not protect their images -------------------------------------------------


def test_deleting_an_image_a_template_pins_succeeds_and_leaves_the_template_dangling(make_env) -> None:
    # Given the web template whose version 1 pins m-web-v1 (no instance uses it)
    env = _env(make_env)

    # When the image is deleted
    env.ecs.delete_image(ecs_models.DeleteImageRequest(region_id=env.region, image_id="m-web-v1"))

    # Then ECS does not refuse (ImageUsingByInstance counts instances only): the image is gone and
    # version 1 still names it — why Bakery's retention reads launch templates before deleting anything
    assert not image_exists(env, "m-web-v1")
    (version,) = _versions(env, launch_template_id="lt-web", launch_template_version=[1])
    assert version.launch_template_data.image_id == "m-web-v1"
