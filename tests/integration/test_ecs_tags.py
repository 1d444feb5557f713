"""ECS tags through the real SDK: TagResources, UntagResources, ListTagResources (instance, image,
snapshot, disk), their limits and errors, and the ActionTrail event TagResources publishes."""

from __future__ import annotations

import pytest
from alibabacloud_ecs20140526 import models as ecs_models
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.integration._ecs import (
    UBUNTU,
    assert_api_error,
    create_image,
    create_snapshot,
    describe_image,
    describe_instance,
    describe_snapshot,
    events_of_type,
    system_disk_id,
    tags_of,
)

SRC = {"id": "i-src", "disks": [{"type": "system", "size": 20}]}


def _tag(env, resource_type, ids, tags):
    env.ecs.tag_resources(
        ecs_models.TagResourcesRequest(
            region_id=env.region,
            resource_type=resource_type,
            resource_id=list(ids),
            tag=[ecs_models.TagResourcesRequestTag(key=k, value=v) for k, v in tags],
        )
    )


def _untag(env, resource_type, ids, keys=None, all_tags=None):
    env.ecs.untag_resources(
        ecs_models.UntagResourcesRequest(
            region_id=env.region, resource_type=resource_type, resource_id=list(ids), tag_key=keys, all=all_tags
        )
    )


def _list(env, resource_type, ids=None, tags=None, next_token=None):
    return env.ecs.list_tag_resources(
        ecs_models.ListTagResourcesRequest(
            region_id=env.region,
            resource_type=resource_type,
            resource_id=ids,
            tag=[ecs_models.ListTagResourcesRequestTag(key=k, value=v) for k, v in tags] if tags else None,
            next_token=next_token,
        )
    ).body


def _listed(env, resource_type, resource_id) -> dict[str, str]:
    rows = _list(env, resource_type, [resource_id]).tag_resources.tag_resource
    assert {(r.resource_id, r.resource_type) for r in rows} <= {(resource_id, resource_type)}
    return {r.tag_key: r.tag_value for r in rows}


def _resource_of(env, resource_type):
    """One resource of each taggable type, made through the API where the type needs it."""
    if resource_type == "instance":
        return "i-src"
    if resource_type == "disk":
        return system_disk_id(env, "i-src")
    if resource_type == "snapshot":
        return create_snapshot(env, system_disk_id(env, "i-src"))
    image_id = create_image(env, instance_id="i-src")
    env.cloud.advance(3600)
    return image_id


def _described_tags(env, resource_type, resource_id) -> dict[str, str]:
    """Tags as the resource's own Describe* API renders them."""
    if resource_type == "instance":
        return tags_of(describe_instance(env, resource_id))
    if resource_type == "image":
        return tags_of(describe_image(env, resource_id))
    if resource_type == "snapshot":
        return tags_of(describe_snapshot(env, resource_id))
    body = env.ecs.describe_disks(ecs_models.DescribeDisksRequest(region_id=env.region, disk_ids=f'["{resource_id}"]'))
    return tags_of(body.body.disks.disk[0])


RESOURCE_TYPES = ["instance", "image", "snapshot", "disk"]


# -- TagResources / ListTagResources / UntagResources -------------------------------------------------------


@pytest.mark.parametrize("resource_type", RESOURCE_TYPES)
def test_tag_resources_tags_a_resource_of_each_type(make_env, resource_type):
    # Given a resource of the type
    env = make_env({"instances": [SRC]})
    resource_id = _resource_of(env, resource_type)

    # When tagging it
    _tag(env, resource_type, [resource_id], [("team", "bakery"), ("stage", "")])

    # Then ListTagResources and the resource's own Describe* show the tags (an empty value is kept)
    assert _listed(env, resource_type, resource_id) == {"team": "bakery", "stage": ""}
    assert _described_tags(env, resource_type, resource_id) == {"team": "bakery", "stage": ""}


@pytest.mark.parametrize("resource_type", RESOURCE_TYPES)
def test_untag_resources_removes_the_named_keys(make_env, resource_type):
    # Given a resource with two tags
    env = make_env({"instances": [SRC]})
    resource_id = _resource_of(env, resource_type)
    _tag(env, resource_type, [resource_id], [("team", "bakery"), ("stage", "dev")])

    # When untagging one key
    _untag(env, resource_type, [resource_id], keys=["stage"])

    # Then only the other tag is left
    assert _listed(env, resource_type, resource_id) == {"team": "bakery"}


def test_tag_resources_overwrites_the_value_of_an_existing_key(make_env):
    # Given an instance tagged env=prod
    env = make_env({"instances": [{**SRC, "tags": {"env": "prod"}}]})

    # When tagging it env=dev
    _tag(env, "instance", ["i-src"], [("env", "dev")])

    # Then the value is replaced
    assert _listed(env, "instance", "i-src") == {"env": "dev"}


def test_tag_resources_tags_several_resources_at_once(make_env):
    # Given two instances
    env = make_env({"instances": [SRC, {"id": "i-b"}]})

    # When tagging both in one request
    _tag(env, "instance", ["i-src", "i-b"], [("team", "bakery")])

    # Then both carry the tag
    rows = _list(env, "instance", ["i-src", "i-b"]).tag_resources.tag_resource
    assert sorted((r.resource_id, r.tag_key, r.tag_value) for r in rows) == [
        ("i-b", "team", "bakery"),
        ("i-src", "team", "bakery"),
    ]


def test_untag_resources_all_removes_every_user_tag(make_env):
    # Given an instance with two tags
    env = make_env({"instances": [{**SRC, "tags": {"a": "1", "b": "2"}}]})

    # When untagging with All=True
    _untag(env, "instance", ["i-src"], all_tags=True)

    # Then no tag is left
    assert _listed(env, "instance", "i-src") == {}


def test_untag_resources_without_keys_or_all_is_missing_parameter(make_env):
    # Given a tagged instance
    env = make_env({"instances": [{**SRC, "tags": {"a": "1"}}]})

    # When untagging without TagKey and without All
    with pytest.raises(ClientException) as excinfo:
        _untag(env, "instance", ["i-src"])

    # Then TagKey is reported missing and the tag stays
    assert_api_error(excinfo.value, "MissingParameter", 400, "TagKey")
    assert _listed(env, "instance", "i-src") == {"a": "1"}


def test_list_tag_resources_filters_resources_by_tag(make_env):
    # Given instances tagged differently
    env = make_env({"instances": [{"id": "i-a", "tags": {"env": "prod"}}, {"id": "i-b", "tags": {"env": "dev"}}]})

    # When listing by Tag env=prod
    rows = _list(env, "instance", tags=[("env", "prod")]).tag_resources.tag_resource

    # Then only the prod instance's tags come back
    assert [(r.resource_id, r.tag_key, r.tag_value) for r in rows] == [("i-a", "env", "prod")]


def test_list_tag_resources_rejects_a_tag_value_without_a_key(make_env):
    # Given a region
    env = make_env({"instances": [SRC]})

    # When a Tag.N.Value comes without its Key
    with pytest.raises(ClientException) as excinfo:
        env.ecs.list_tag_resources(
            ecs_models.ListTagResourcesRequest(
                region_id=env.region,
                resource_type="instance",
                tag=[ecs_models.ListTagResourcesRequestTag(value="prod")],
            )
        )

    # Then InvalidParameter.TagValue
    assert_api_error(excinfo.value, "InvalidParameter.TagValue", 400, "Key")


def test_list_tag_resources_pages_with_next_token(make_env):
    # Given three instances with 20 tags each (60 rows; pages hold 50)
    tags = {f"k{n:02d}": str(n) for n in range(20)}
    env = make_env({"instances": [{"id": f"i-{n}", "tags": tags} for n in range(3)]})

    # When listing, then following NextToken
    first = _list(env, "instance")
    second = _list(env, "instance", next_token=first.next_token)

    # Then the pages hold 50 and 10 rows, all distinct, and the last has no NextToken
    assert (len(first.tag_resources.tag_resource), len(second.tag_resources.tag_resource)) == (50, 10)
    rows = {(r.resource_id, r.tag_key) for page in (first, second) for r in page.tag_resources.tag_resource}
    assert len(rows) == 60
    assert first.next_token and not second.next_token


# -- limits and errors -----------------------------------------------------------------------------------------


def test_tag_resources_beyond_20_tags_on_a_resource_is_quota_exceed(make_env):
    # Given an instance with 19 tags
    env = make_env({"instances": [{**SRC, "tags": {f"k{n}": "v" for n in range(19)}}]})

    # When adding two more
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", ["i-src"], [("extra1", "v"), ("extra2", "v")])

    # Then 403 QuotaExceed.Tags, and the instance still has its 19 tags
    assert_api_error(excinfo.value, "QuotaExceed.Tags", 403, "20")
    assert len(_listed(env, "instance", "i-src")) == 19


def test_tag_resources_up_to_exactly_20_tags_is_allowed(make_env):
    # Given an instance with 19 tags
    env = make_env({"instances": [{**SRC, "tags": {f"k{n}": "v" for n in range(19)}}]})

    # When adding the 20th and re-setting an existing one
    _tag(env, "instance", ["i-src"], [("k20", "v"), ("k0", "new")])

    # Then it has 20 tags
    tags = _listed(env, "instance", "i-src")
    assert (len(tags), tags["k0"]) == (20, "new")


def test_tag_resources_with_more_than_20_tags_in_one_request_is_number_exceed(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When one request carries 21 tags
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", ["i-src"], [(f"k{n}", "v") for n in range(21)])

    # Then 400 NumberExceed.Tags, and nothing was tagged
    assert_api_error(excinfo.value, "NumberExceed.Tags", 400, "20")
    assert _listed(env, "instance", "i-src") == {}


@pytest.mark.parametrize("key", ["aliyun", "aliyunOwner", "acs:owner", "ACS:owner", "http://owner", "https://owner"])
def test_tag_resources_with_a_reserved_key_prefix_is_malformed(make_env, key):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When the tag key starts with a reserved prefix
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", ["i-src"], [(key, "v")])

    # Then InvalidTagKey.Malformed names the key
    assert_api_error(excinfo.value, "InvalidTagKey.Malformed", 400, key)


def test_tag_resources_with_a_key_over_128_characters_is_malformed(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When the key has 129 characters
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", ["i-src"], [("k" * 129, "v")])

    # Then InvalidTagKey.Malformed
    assert_api_error(excinfo.value, "InvalidTagKey.Malformed", 400, "1-128")


def test_tag_resources_with_a_value_over_128_characters_is_malformed(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When the value has 129 characters
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", ["i-src"], [("k", "v" * 129)])

    # Then InvalidTagValue.Malformed
    assert_api_error(excinfo.value, "InvalidTagValue.Malformed", 400, "128")


def test_tag_resources_with_a_duplicate_key_is_refused(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When one request names the same key twice
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", ["i-src"], [("team", "a"), ("team", "b")])

    # Then Duplicate.TagKey, and nothing was tagged
    assert_api_error(excinfo.value, "Duplicate.TagKey", 400, "team")
    assert _listed(env, "instance", "i-src") == {}


def test_tag_resources_with_an_unknown_resource_changes_nothing(make_env):
    # Given a real instance
    env = make_env({"instances": [SRC]})

    # When one request tags it and an unknown instance
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", ["i-src", "i-ghost"], [("team", "bakery")])

    # Then 404 InvalidResourceId.NotFound names the unknown id, and the real instance was not tagged
    assert_api_error(excinfo.value, "InvalidResourceId.NotFound", 404, "i-ghost")
    assert "i-src" not in excinfo.value.data["Message"]
    assert _listed(env, "instance", "i-src") == {}


def test_untag_resources_with_an_unknown_resource_changes_nothing(make_env):
    # Given a tagged instance
    env = make_env({"instances": [{**SRC, "tags": {"team": "bakery"}}]})

    # When one request untags it and an unknown instance
    with pytest.raises(ClientException) as excinfo:
        _untag(env, "instance", ["i-src", "i-ghost"], keys=["team"])

    # Then 404, and the real instance keeps its tag
    assert_api_error(excinfo.value, "InvalidResourceId.NotFound", 404, "i-ghost")
    assert _listed(env, "instance", "i-src") == {"team": "bakery"}


def test_tag_resources_over_quota_on_one_resource_changes_no_other_resource(make_env):
    # Given one instance at 20 tags and one without tags
    env = make_env({"instances": [{**SRC, "tags": {f"k{n}": "v" for n in range(20)}}, {"id": "i-b"}]})

    # When one request tags both with a new key
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", ["i-b", "i-src"], [("new", "v")])

    # Then QuotaExceed.Tags, and the other instance was not tagged either
    assert_api_error(excinfo.value, "QuotaExceed.Tags", 403)
    assert _listed(env, "instance", "i-b") == {}


def test_tag_resources_with_an_unknown_resource_type_is_not_found(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When the ResourceType is not one ECS knows here
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "toaster", ["i-src"], [("team", "bakery")])

    # Then InvalidResourceType.NotFound
    assert_api_error(excinfo.value, "InvalidResourceType.NotFound", 404, "toaster")


def test_tag_resources_of_a_type_that_does_not_hold_the_id_is_not_found(make_env):
    # Given an instance id
    env = make_env({"instances": [SRC]})

    # When tagging it as an image
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "image", ["i-src"], [("team", "bakery")])

    # Then it is not found among images
    assert_api_error(excinfo.value, "InvalidResourceId.NotFound", 404, "i-src")


def test_tag_resources_on_a_public_image_is_refused(make_env):
    # Given a public image
    env = make_env({"instances": [SRC]})

    # When tagging it
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "image", [UBUNTU], [("team", "bakery")])

    # Then 403 InvalidResourceId.NotSupported
    assert_api_error(excinfo.value, "InvalidResourceId.NotSupported", 403, "Public images")


@pytest.mark.parametrize(
    ("field", "missing"),
    [("resource_type", "ResourceType"), ("resource_id", "ResourceId"), ("tag", "Tag")],
)
def test_tag_resources_without_a_required_param_is_missing_parameter(make_env, field, missing):
    # Given an instance
    env = make_env({"instances": [SRC]})
    request = {
        "region_id": env.region,
        "resource_type": "instance",
        "resource_id": ["i-src"],
        "tag": [ecs_models.TagResourcesRequestTag(key="team", value="bakery")],
        field: None,
    }

    # When one required param is left out
    with pytest.raises(ClientException) as excinfo:
        env.ecs.tag_resources(ecs_models.TagResourcesRequest(**request))

    # Then MissingParameter names it
    assert_api_error(excinfo.value, "MissingParameter", 400, f'"{missing}"')


def test_tag_resources_with_more_than_50_resources_is_number_exceed(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When one request names 51 resources
    with pytest.raises(ClientException) as excinfo:
        _tag(env, "instance", [f"i-{n}" for n in range(51)], [("team", "bakery")])

    # Then NumberExceed.ResourceIds
    assert_api_error(excinfo.value, "NumberExceed.ResourceIds", 400, "50")


# -- ActionTrail -----------------------------------------------------------------------------------------------


def test_tag_resources_publishes_an_action_trail_api_call_event(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When tagging it
    _tag(env, "instance", ["i-src"], [("team", "bakery")])

    # Then an ecs:ActionTrail:ApiCall event records the call with its flattened params and caller
    (event,) = events_of_type(env, "ecs:ActionTrail:ApiCall")
    data = event["data"]
    assert event["source"] == "acs.ecs"
    assert data["eventName"] == "TagResources"
    assert data["eventType"] == "ApiCall"
    assert data["eventRW"] == "Write"
    assert data["eventId"]
    assert data["requestParameters"]["Tag.1.Key"] == "team"
    assert data["requestParameters"]["Tag.1.Value"] == "bakery"
    assert data["requestParameters"]["ResourceId.1"] == "i-src"
    assert data["requestParameters"]["ResourceType"] == "instance"
    assert data["userIdentity"]["accessKeyId"] == "LTAIlocalcloud"
    assert data["userIdentity"]["accountId"] == env.cloud.account_id
    assert data["referencedResources"] == {"ACS::ECS::Instance": ["i-src"]}


def test_failed_tag_resources_publishes_no_api_call_event(make_env):
    # Given an instance
    env = make_env({"instances": [SRC]})

    # When a TagResources call fails
    with pytest.raises(ClientException):
        _tag(env, "instance", ["i-src"], [("acs:team", "bakery")])

    # Then no ApiCall event was published for it
    assert events_of_type(env, "ecs:ActionTrail:ApiCall") == []


def test_read_only_list_tag_resources_publishes_no_api_call_event(make_env):
    # Given a tagged instance
    env = make_env({"instances": [{**SRC, "tags": {"team": "bakery"}}]})

    # When listing its tags
    _list(env, "instance", ["i-src"])

    # Then no ApiCall event is published (only writes reach EventBridge)
    assert events_of_type(env, "ecs:ActionTrail:ApiCall") == []
