"""The happy path: tag an instance, get a checked image promoted into its family."""

from __future__ import annotations

from bakery import tags
from tests.e2e.conftest import trigger
from tests.e2e.test_snapshot_bake import request_bake

FAMILY_HISTORY = [{"id": "m-web-v0", "family": "web", "check_failures": []}]


def test_clean_bake_is_promoted_into_its_family(bake):
    # Given a healthy Linux instance and a family "web" that already holds an older checked image
    scenario = {
        "seed": 1,
        "images": FAMILY_HISTORY,
        "instances": [{"id": "i-web1", "tags": {"env": "prod"}}],
        # When the operator tags it for baking into "web"
        "actions": [trigger("i-web1", family="web")],
    }
    baked = bake(scenario)

    # Then the bake is ready after exactly one CreateImage, and it is the family's newest image
    result = baked.bake_of("i-web1")
    assert result["state"] == "ready", result
    assert result["family"] == "web"
    assert result["attempts"] == 1
    assert baked.calls("CreateImage") == 1
    image_id = result["imageId"]
    assert baked.newest_in_family("web") == image_id

    # ... the image is Available, checked clean, and carries its lineage
    new_images = [i for i in baked.images() if i.image_id != "m-web-v0"]
    assert [i.image_id for i in new_images] == [image_id]
    image = new_images[0]
    assert image.status == "Available"
    assert image.image_family == "web"
    assert image.detection_options.status == "Finished"
    assert baked.failing_check_items(image) == []
    lineage = baked.image_tags(image)
    assert lineage[tags.BAKE_ID] == result["bakeId"]
    assert lineage[tags.SOURCE_INSTANCE] == "i-web1"
    assert lineage[tags.STATE] == tags.READY
    assert lineage[tags.ATTEMPT] == "1"

    # ... the instance points at the image, lost its trigger tag, kept the operator's own tags, and runs
    remaining = baked.assert_released("i-web1")
    assert remaining[tags.LAST_IMAGE] == image_id
    assert tags.TRIGGER not in remaining
    assert tags.LAST_ERROR not in remaining
    assert remaining["env"] == "prod"
    assert baked.status("i-web1") == "Running"

    # ... nothing was stopped, repaired or deleted along the way, and every delivery succeeded first time
    assert baked.mutations() == {"RunCommand", "CreateImage", "ModifyImageAttribute"}
    assert baked.report["deliveries"]["errors"] == 0
    assert baked.report["deliveries"]["retries"] == 0
    assert baked.report["deliveries"]["dead_letters"] == 0
    assert [e["subject"] for e in baked.events("bakery:Image:Ready")] == [image_id]
    assert baked.events("bakery:Bake:Failed") == []


def test_the_old_family_image_stays_available_and_the_name_prefix_is_used(bake):
    # Given the same family history, and an operator who names the images
    scenario = {
        "seed": 2,
        "images": FAMILY_HISTORY,
        "instances": [{"id": "i-web1"}],
        # When they tag the instance with a family and a name prefix
        "actions": [trigger("i-web1", family="web", name="web-golden")],
    }
    baked = bake(scenario)

    # Then the new image is named after the prefix and the previous one is untouched (rollback stays possible)
    image = baked.image(baked.bake_of("i-web1")["imageId"])
    assert image.image_name.startswith("web-golden-")
    old = baked.image("m-web-v0")
    assert old.status == "Available"
    assert old.image_family == "web"
    assert "DeleteImage" not in baked.mutations()


def test_a_bake_requested_event_bakes_an_untagged_instance_with_its_option_tags(bake):
    # Given an instance that accepts requests (bakery:allow-requests=true) with a family tag but no trigger
    # tag, and a tool that publishes bakery:Bake:Requested
    def request(run):
        request_bake(run, {"instanceId": "i-web1"}, event_id="req-1")

    opted_in = {"bakery:family": "web", tags.ALLOW_REQUESTS: "true"}
    scenario = {"seed": 31, "instances": [{"id": "i-web1", "tags": opted_in}]}
    # When the event reaches the bake function
    baked = bake(scenario, before_run=request)

    # Then the instance is baked and promoted into its family, exactly as a tag would have done it
    result = baked.bake_of("i-web1")
    assert result["state"] == "ready", result
    assert baked.newest_in_family("web") == result["imageId"]
    assert baked.calls("CreateImage") == 1
    # And a request never stops an instance that did not ask for it (no bakery:stop-first on it)
    assert baked.calls("StopInstance") == 0


def test_a_bake_requested_event_for_an_instance_without_the_opt_in_is_refused_and_changes_nothing(bake):
    # Given an instance with Bakery option tags (even stop-first) but without bakery:allow-requests
    def request(run):
        request_bake(run, {"instanceId": "i-web1", "bakeId": "b-request00000001"}, event_id="req-1")

    scenario = {"seed": 32, "instances": [{"id": "i-web1", "tags": {"bakery:family": "web", tags.STOP_FIRST: "true"}}]}
    # When someone who may only PutEvents on the bakery bus requests a bake of it
    baked = bake(scenario, before_run=request)

    # Then the bake ends with one Bake:Failed request-not-allowed naming the tag (and the permission) to set
    (failed,) = baked.events("bakery:Bake:Failed")
    assert (failed["data"]["reason"], failed["data"]["instanceId"]) == ("request-not-allowed", "i-web1")
    assert f"{tags.ALLOW_REQUESTS}=true" in failed["data"]["message"]
    assert "ecs:TagResources" in failed["data"]["message"]
    # And nothing was changed: no claim, no stop, no image, no tag, and the instance is still running
    assert baked.mutations() == set()
    assert baked.calls("TagResources") == baked.calls("UntagResources") == 0
    assert baked.instance_tags("i-web1") == {"bakery:family": "web", tags.STOP_FIRST: "true"}
    assert baked.status("i-web1") == "Running"


# Where Alibaba publishes no sample of an event (README: wiring), Bakery must bake under every plausible shape.
EVENT_SHAPES = [
    {"actiontrail_parameters": "flat", "assistant_invoke_id": True},  # ActionTrail's own samples: flat RPC keys
    {"actiontrail_parameters": "json", "assistant_invoke_id": True},  # only requestParameterJson
    {"actiontrail_parameters": "absent", "assistant_invoke_id": True},  # EventBridge's sample: no parameters at all
    {"actiontrail_parameters": "flat", "assistant_invoke_id": False},  # TaskCompleted without invokeId
    {"actiontrail_parameters": "absent", "assistant_invoke_id": False},
]


def test_a_bake_succeeds_whatever_shape_the_undocumented_events_take(bake):
    for shapes in EVENT_SHAPES:
        # Given a region whose ActionTrail and Cloud Assistant events take one of the plausible shapes
        scenario = {
            "seed": 4,
            "event_shapes": shapes,
            "instances": [{"id": "i-web1"}, {"id": "i-busy"}],
            # When one instance is tagged for baking (and the other only gets an unrelated tag)
            "actions": [
                trigger("i-web1", family="web"),
                {"at": 0, "tag": {"instance": "i-busy", "tags": {"env": "x"}}},
            ],
        }
        baked = bake(scenario)
        # Then exactly one bake happens, it is promoted, and nothing else is refused or started
        result = baked.bake_of("i-web1")
        assert result["state"] == "ready", (shapes, result)
        assert baked.calls("CreateImage") == 1, shapes
        assert baked.newest_in_family("web") == result["imageId"], shapes
        assert baked.events("bakery:Bake:Failed") == [], shapes
        assert tags.BAKE_ID not in baked.instance_tags("i-busy"), shapes
        # ... and the events themselves drove it: CreateImage started before the first sweep (t+60 s) could have
        (started,) = baked.events("bakery:Image:CreationStarted")
        assert started["time"] < "2026-01-05T09:01:00Z", (shapes, started["time"])


def test_a_family_and_name_in_chinese_are_baked_and_promoted(bake):
    # Given an instance tagged with a family and a name prefix in Chinese, which ECS accepts ("English or Chinese
    # characters": aliyun/oos-templates ACS-ECS-CreateImage.json, imageName)
    scenario = {
        "seed": 3,
        "instances": [{"id": "i-web1"}],
        "actions": [trigger("i-web1", family="生产-web", name="网站-黄金")],
    }
    baked = bake(scenario)

    # Then it is baked like any other: named after the prefix, promoted into that family, the instance released
    result = baked.bake_of("i-web1")
    assert (result["state"], result["family"]) == ("ready", "生产-web"), result
    image = baked.image(result["imageId"])
    assert image.image_name.startswith("网站-黄金-") and image.image_family == "生产-web"
    assert baked.newest_in_family("生产-web") == image.image_id
    assert baked.assert_released("i-web1")[tags.LAST_IMAGE] == image.image_id
