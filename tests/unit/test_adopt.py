"""Adoption's decisions, one at a time (stages.adopt, events.ImageCall): what a CreateImage record says, which
images the policy takes, which cannot be adopted, and what is dropped before any call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

from bakery import entrypoints, events, state, tags
from bakery.config import Settings
from bakery.errors import ConfigError, InvalidEvent, NotATrigger
from bakery.events import CloudEvent, ImageCall
from bakery.model import CheckItem, Image
from bakery.pipeline import Pipeline
from bakery.stages import adopt, sweep
from bakery.stages.context import Context

EVENTS = Path(__file__).resolve().parents[2] / "events"
REGION = {"FC_REGION": "cn-hangzhou"}


def sample(name: str = "ecs-actiontrail-createimage.json") -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def call_of(body: dict[str, Any]) -> ImageCall:
    return ImageCall.parse(CloudEvent.parse(body), tags.BAKE_ID)


def image(status: str = "Available", detection: str = "Processing", family: str = "web", **image_tags: str) -> Image:
    return Image("m-1", "web-1", status, True, family, "", "linux", "Ubuntu", "x86_64", dict(image_tags), ("s-1",),
                 detection)  # fmt: skip


def context(ecs: MagicMock | None = None, **env: str) -> Pipeline:
    settings = Settings.from_env({**REGION, **env})
    return Pipeline(settings, ecs or MagicMock(name="ecs"), MagicMock(name="oos"), MagicMock(name="bus"))


# -- the record --------------------------------------------------------------------------------------------------


def test_the_new_image_is_read_from_response_elements() -> None:
    call = call_of(sample())
    assert call == ImageCall("m-bp1packer0000000001", failed=False, check_requested=True, bakery_tagged=False)


def test_without_response_elements_the_one_referenced_image_that_is_no_input_is_the_new_one() -> None:
    body = sample()
    del body["data"]["responseElements"]
    assert call_of(body).image_id == "m-bp1packer0000000001"
    # a CopyImage-like record listing its source image too: the request's own image id is an input
    body["data"]["requestParameters"]["ImageId"] = "m-source"
    body["data"]["referencedResources"]["ACS::ECS::Image"] = ["m-source", "m-bp1packer0000000001"]
    assert call_of(body).image_id == "m-bp1packer0000000001"
    # two candidates: not guessed (the sweep finds it)
    body["data"]["referencedResources"]["ACS::ECS::Image"] = ["m-a", "m-b"]
    assert call_of(body).image_id is None


def test_an_api_call_without_detection_strategy_did_not_ask_for_the_check() -> None:
    body = sample()
    del body["data"]["requestParameters"]["DetectionStrategy"]
    assert call_of(body).check_requested is False


def test_a_console_record_without_the_request_does_not_say_whether_the_check_is_on() -> None:
    assert call_of(sample("ecs-actiontrail-createimage.console.json")).check_requested is None
    body = sample()
    body["type"] = events.ACTIONTRAIL_CONSOLE_OPERATION  # console names may differ: absence is no answer
    del body["data"]["requestParameters"]["DetectionStrategy"]
    assert call_of(body).check_requested is None


def test_a_failed_call_and_bakerys_own_create_image_are_recognised() -> None:
    body = sample()
    body["data"]["errorCode"] = "QuotaExceed.Image"
    assert call_of(body).failed
    body = sample()
    body["data"]["requestParameters"]["Tag.3.Key"] = tags.BAKE_ID
    assert call_of(body).bakery_tagged
    body = sample()
    del body["data"]["requestParameters"]
    body["data"]["requestParameterJson"] = json.dumps({"InstanceId": "i-1", "Tag": [{"Key": tags.BAKE_ID}]})
    assert call_of(body).bakery_tagged


@pytest.mark.parametrize("bad", [{"responseElements": "m-1"}, {"responseElements": {"ImageId": "i-not-an-image"}},
                                 {"requestParameters": {"InstanceId": 5}}])  # fmt: skip
def test_a_malformed_record_is_refused_at_the_edge(bad: dict[str, Any]) -> None:
    body = sample()
    body["data"].update(bad)
    with pytest.raises(InvalidEvent):
        call_of(body)


# -- dropped before any call -----------------------------------------------------------------------------------


@pytest.mark.parametrize("change, env", [
    ({}, {"BAKERY_ADOPT_IMAGES": "off"}),
    ({"errorCode": "Throttling"}, {}),
    ({"requestParameters": {**sample()["data"]["requestParameters"], "Tag.9.Key": tags.BAKE_ID}}, {}),
])  # fmt: skip
def test_nothing_to_adopt_is_dropped_before_any_call(change: dict[str, Any], env: dict[str, str]) -> None:
    body = sample()
    body["data"].update(change)
    pipeline = context(**env)
    with pytest.raises(NotATrigger):
        entrypoints.route_bake(pipeline, CloudEvent.parse(body))
    assert pipeline.ecs.method_calls == [] and pipeline.bus.method_calls == []


def test_an_image_tag_write_without_the_opt_in_is_dropped_before_any_call() -> None:
    body = sample("ecs-actiontrail-tagresources.json")
    params = body["data"]["requestParameters"]
    params.update({"ResourceType": "image", "ResourceId.1": "m-1", "Tag.1.Key": "team", "Tag.1.Value": "web"})
    pipeline = context()
    with pytest.raises(NotATrigger):
        entrypoints.route_bake(pipeline, CloudEvent.parse(body))
    assert pipeline.ecs.method_calls == []


# -- the policy and what cannot be adopted ---------------------------------------------------------------------


@pytest.mark.parametrize("env, img, taken", [
    ({"BAKERY_ADOPT_IMAGES": "off"}, image(**{tags.ADOPT: "true"}), False),
    ({}, image(), False),  # tag (the default): not opted in
    ({}, image(**{tags.ADOPT: "true"}), True),
    ({"BAKERY_ADOPT_IMAGES": "families", "BAKERY_ADOPT_FAMILIES": "db, web"}, image(), True),
    ({"BAKERY_ADOPT_IMAGES": "families", "BAKERY_ADOPT_FAMILIES": "db"}, image(), False),
    ({"BAKERY_ADOPT_IMAGES": "families", "BAKERY_ADOPT_FAMILIES": "db"}, image(family=""), False),
    ({"BAKERY_ADOPT_IMAGES": "all"}, image(family=""), True),
])  # fmt: skip
def test_the_policy_takes_what_it_says(env: dict[str, str], img: Image, taken: bool) -> None:
    assert adopt.eligible(context(**env), img) is taken


def test_families_without_families_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="BAKERY_ADOPT_FAMILIES"):
        Settings.from_env({**REGION, "BAKERY_ADOPT_IMAGES": "families"})


@pytest.mark.parametrize("img, check_requested, reason", [
    (image(detection=""), None, "check-not-enabled"),
    (image("Creating", detection=""), False, "check-not-enabled"),
    (image("Creating", detection=""), None, None),  # whether it is checked shows once Available
    (image("Deprecated"), None, "deprecated"),
    (image("CreateFailed"), None, "creation-failed"),
    (image(**{f"k{n}": "v" for n in range(14)}), None, "no-tag-room"),
    (image(**{f"k{n}": "v" for n in range(13)}), None, None),
])  # fmt: skip
def test_what_cannot_be_adopted_says_why(img: Image, check_requested: bool | None, reason: str | None) -> None:
    problem = adopt.not_adoptable(context(), img, check_requested)
    assert (problem[0] if problem else None) == reason


def test_adoption_writes_its_tags_in_one_call_and_is_idempotent() -> None:
    ecs = MagicMock(name="ecs")
    ecs.image.return_value = image("Creating", detection="", **{tags.ADOPT: "true"})
    pipeline = context(ecs)
    adopted = pipeline.adopt("m-1")
    assert adopted is not None
    (written,) = ecs.tag.call_args_list
    assert written.args[:2] == ("image", "m-1")
    assert written.args[2][tags.ADOPTED] == "m-1" and written.args[2][tags.STATE] == state.CREATING
    assert written.args[2][tags.ORIGINAL_NAME] == "web-1"
    # Adopted again (a duplicated event): the image now carries the mark, nothing is written
    ecs.image.return_value = adopted
    ecs.tag.reset_mock()
    assert pipeline.adopt("m-1") is None
    ecs.tag.assert_not_called()
    # The same image always gets the same bake id (event, sweep and CLI converge)
    assert adopt.adopt(context(MagicMock(image=MagicMock(return_value=image(**{tags.ADOPT: "true"})))),
                       "m-1").tags[tags.BAKE_ID] == adopted.tags[tags.BAKE_ID]  # fmt: skip


def test_a_repair_output_of_bakerys_is_never_adopted() -> None:
    ecs = MagicMock(name="ecs")
    ecs.image.return_value = replace_name(image(), "repaired_web-1_20260105090000")
    ecs.images_named.return_value = [image(**{tags.BAKE_ID: "b-1"})]
    assert context(ecs, BAKERY_ADOPT_IMAGES="all").adopt("m-1") is None
    ecs.images_named.assert_called_once_with("web-1")
    ecs.tag.assert_not_called()


def replace_name(img: Image, name: str) -> Image:
    from dataclasses import replace

    return replace(img, name=name)


def test_the_names_bakery_gives_fit_ecs_limits() -> None:
    long = "w" * 128
    assert len(adopt._broken_name(long, "m-bp1abcdefghijklmnopq")) == 128
    assert adopt._broken_name(long, "m-x").endswith("-broken-m-x")
    assert adopt._closest_name("web", "-repaired") == "web-repaired"


def test_adoption_adds_one_query_an_hour() -> None:
    day = [sweep.schedule(m, adopting=True) for m in range(24 * 60)]
    assert sum(len(q) for q in day) == 696 + 24
    assert max(len(q) for q in day) == 2


def test_a_failed_check_of_an_adopted_image_says_so_in_its_event() -> None:
    failing = Image("m-1", "web-1", "Available", True, "web", "", "linux", "Ubuntu", "x86_64",
                    {tags.BAKE_ID: "b-1", tags.ADOPTED: "m-1", tags.STATE: state.CREATING}, ("s-1",), "Finished",
                    (CheckItem("Nvme", "Unsupported", "High", "NVMe.NotInstalled"),))  # fmt: skip
    ctx = Context(Settings(region="cn-hangzhou"), MagicMock(), MagicMock(), MagicMock())
    from bakery.stages import check

    check.follow_image(ctx, failing)
    (published,) = ctx.bus.publish.call_args_list
    event = published.args[0]
    assert event.type == events.IMAGE_CHECK_FAILED and event.data["adopted"] is True
    assert event.data["originalImageId"] == "m-1"


def test_a_promoted_adopted_image_waiting_for_retention_is_sent_again_by_the_sweep() -> None:
    # Given an adopted repaired image promoted into its family (the family is the image's own attribute: it
    # carries no bakery:family tag), whose Family:Promoted was lost (still marked in flight)
    ready = Image("m-2", "web-1", "Available", True, "web", "", "linux", "Ubuntu", "x86_64",
                  {tags.BAKE_ID: "b-1", tags.ADOPTED: "m-1", tags.STATE: state.READY, tags.IN_FLIGHT: "true"},
                  ("s-2",), "Finished")  # fmt: skip
    ctx = context()
    # When the sweep's fifteen-minute look at promotions waiting for retention runs
    sweep._retention_pending(ctx, [ready], "2026-01-05T09:15:00Z")
    # Then the family's Family:Promoted is published again (chaos found it never was: retention never ran)
    (published,) = ctx.bus.publish.call_args_list
    (event,) = published.args
    assert event.type == events.FAMILY_PROMOTED and event.data["family"] == "web" and event.data["imageIds"] == ["m-2"]


def test_retention_counts_adopted_images_and_never_retires_them() -> None:
    from bakery.families.retention import KEEP, decide

    def member(image_id: str, age: int, **image_tags: str) -> Image:
        return Image(image_id, image_id, "Available", True, "web", "", "linux", "Ubuntu", "x86_64",
                     {tags.STATE: state.READY, **image_tags}, (f"s-{image_id}",), "Finished",
                     creation_time=f"2026-01-0{age}T00:00:00Z")  # fmt: skip

    family = [member("m-new", 5, **{tags.BAKE_ID: "b-3"}),
              member("m-adopted", 4, **{tags.BAKE_ID: "b-2", tags.ADOPTED: "m-adopted"}),
              member("m-old-adopted", 2, **{tags.BAKE_ID: "b-1", tags.ADOPTED: "m-x"}),
              member("m-old", 1, **{tags.BAKE_ID: "b-0"})]  # fmt: skip
    decisions = {d.image_id: d for d in decide(family, keep=1, action="delete", family="web")}
    assert decisions["m-old"].action != KEEP  # Bakery's own, older than the newest 1: retired
    for adopted in ("m-adopted", "m-old-adopted"):  # the operator's: kept, and says why
        assert decisions[adopted].action == KEEP and "adopted" in decisions[adopted].reason
