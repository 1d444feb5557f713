"""Bakes that cannot succeed end in one Bake:Failed a person can act on; transient errors are retried;
events that are not Bakery's are dropped without touching anything; one bake per instance at a time."""

from __future__ import annotations

import json

import pytest
from alibabacloud_eventbridge20200401 import models as eb

from bakery import tags
from tests.e2e.conftest import trigger

ACTIONABLE_FAILURES = [
    # (scenario overrides, instance overrides, reason, words the message must contain)
    pytest.param({}, {"locks": ["security"]}, "instance-locked", ["locked for security", "unlock it"],
                 id="security-lock"),
    pytest.param({"quotas": {"images": 0}}, {}, "image-quota", ["QuotaExceed.Image", "quota"], id="image-quota"),
    pytest.param({"faults": [{"action": "CreateImage", "code": "Forbidden.RAM", "probability": 1}]}, {},
                 "missing-permission", ["ecs:CreateImage", "FunctionRole"], id="missing-permission"),
    pytest.param({}, {"create_image_failures": 5}, "create-failed", ["CreateFailed 2 time(s)"], id="create-failed"),
    # A permanent error nobody anticipated, at promotion time: the bake ends (image retired), it is not retried forever.
    pytest.param({"faults": [{"action": "ModifyImageAttribute", "code": "InvalidImageFamily.Malformed", "probability": 1}]},
                 {}, "cloud-error", ["ModifyImageAttribute", "InvalidImageFamily.Malformed"], id="permanent-cloud-error"),
]  # fmt: skip


@pytest.mark.parametrize(("scenario_extra", "instance_extra", "reason", "words"), ACTIONABLE_FAILURES)
def test_a_bake_that_cannot_succeed_fails_once_with_an_actionable_reason(
    bake, scenario_extra, instance_extra, reason, words
):
    # Given an instance and a region in which its image cannot be made
    scenario = {
        "seed": 15,
        **scenario_extra,
        "instances": [{"id": "i-app", **instance_extra}],
        # When it is tagged for baking
        "actions": [trigger("i-app", family="app")],
    }
    baked = bake(scenario)

    # Then the bake fails with the reason, and a message saying what to do
    result = baked.bake_of("i-app")
    assert result["state"] == "failed", result
    assert result["reason"] == reason
    for word in words:
        assert word in result["message"], result["message"]
    (failed,) = baked.events("bakery:Bake:Failed")
    assert failed["data"]["instanceId"] == "i-app"
    if reason == "missing-permission":
        assert failed["data"]["action"] == "ecs:CreateImage"

    # ... nothing is left half-done: no image, no snapshot of its own, the family empty, the instance
    # released with the reason and still Running
    assert baked.images() == []
    assert baked.snapshot_ids() == set()
    assert baked.newest_in_family("app") is None
    assert baked.assert_released("i-app")[tags.LAST_ERROR] == reason
    assert baked.status("i-app") == "Running"
    # ... and permanent errors are not retried
    assert baked.report["deliveries"]["retries"] == 0


def test_transient_create_image_error_is_retried_and_the_bake_succeeds(bake):
    # Given ECS answers the first CreateImage with ServiceUnavailable
    scenario = {
        "seed": 16,
        "faults": [{"action": "CreateImage", "code": "ServiceUnavailable", "nth": 1}],
        "instances": [{"id": "i-app"}],
        # When the instance is tagged for baking
        "actions": [trigger("i-app", family="app")],
    }
    baked = bake(scenario)

    # Then the call is sent again at once (CreateImage carries the bake's ClientToken: never a second image),
    # without costing an FC retry
    assert [d for d in baked.run.runtime.deliveries if d.outcome == "error"] == []
    assert baked.report["deliveries"]["retries"] == 0
    assert baked.report["deliveries"]["dead_letters"] == 0
    # ... to a ready image: two CreateImage calls, one image
    result = baked.bake_of("i-app")
    assert result["state"] == "ready", result
    assert result["attempts"] == 1
    assert baked.calls("CreateImage") == 2
    assert [i.image_id for i in baked.images()] == [result["imageId"]]
    assert baked.newest_in_family("app") == result["imageId"]


def test_a_5xx_on_stop_instance_is_sent_again_and_the_bake_goes_on(bake):
    # Given ECS answers the first StopInstance with ServiceUnavailable
    scenario = {
        "seed": 17,
        "faults": [{"action": "StopInstance", "code": "ServiceUnavailable", "nth": 1}],
        "instances": [{"id": "i-app"}],
        "actions": [trigger("i-app", stop_first="true")],
    }
    baked = bake(scenario)

    # Then it is sent again (a repeat that meets a Stopping instance is retried once it settles), no dead letter
    assert baked.calls("StopInstance") >= 2
    assert baked.report["deliveries"]["dead_letters"] == 0
    assert baked.bake_of("i-app")["state"] == "ready"
    assert baked.status("i-app") == "Running"


def put(run, event_id: str, event_type: str, data: str, subject: str = "") -> None:
    """Anyone allowed to PutEvents on the bus can do this: here, through the real EventBridge SDK."""
    entry = eb.PutEventsRequestEventList(
        id=event_id, source="bakery", type=event_type, subject=subject, spec_version="1.0",
        data_content_type="application/json", data=data,
    )  # fmt: skip
    body = run.cloud_env.eventbridge.put_events(eb.PutEventsRequest(event_bus_name="bakery", event_list=[entry])).body
    assert body.data.failed_entry_count == 0


# (event id, type, data): each matches a rule on the bakery bus, none is a bake Bakery started.
FOREIGN_EVENTS = [
    ("x-traversal", "bakery:Family:Promoted", json.dumps({"family": "web", "imageIds": ["../../etc/passwd"]})),
    ("x-no-instance", "bakery:Bake:Requested", json.dumps({"note": "no instanceId"})),
    ("x-not-json", "bakery:Image:CheckFailed", "{not json"),
    ("x-array", "bakery:Family:Promoted", json.dumps(["m-web-v0"])),
    ("x-bad-instance", "bakery:Bake:Requested", json.dumps({"instanceId": "i-app; rm -rf /"})),
    # Well-formed, naming real resources that are not in a bake: handled, and nothing happens.
    ("x-not-ours", "bakery:Family:Promoted", json.dumps({"family": "web", "imageIds": ["m-web-v0"]})),
    # (A Bake:Requested for an existing instance is a real request — it bakes if the instance opted in with
    # bakery:allow-requests=true; one for a gone instance does nothing.)
    ("x-gone", "bakery:Bake:Requested", json.dumps({"instanceId": "i-gone", "bakeId": "b-1111111111111111"})),
    ("x-check-failed", "bakery:Image:CheckFailed", json.dumps({"imageId": "m-web-v0"})),
]
MALFORMED = {"x-traversal", "x-no-instance", "x-not-json", "x-array", "x-bad-instance"}


def test_malformed_or_foreign_events_on_the_bus_are_dropped_without_mutation_or_retry(bake):
    # Given a region with an instance that is not being baked and an image already in a family
    scenario = {
        "seed": 17,
        "images": [{"id": "m-web-v0", "family": "web", "check_failures": []}],
        "instances": [{"id": "i-app"}],
    }

    # When someone puts malformed and foreign events on the bakery bus
    def inject(run):
        for event_id, event_type, data in FOREIGN_EVENTS:
            put(run, event_id, event_type, data)

    baked = bake(scenario, before_run=inject)

    # Then each was delivered exactly once (no retry storm) and ended well: malformed ones dropped
    by_id = {d.event_id: d for d in baked.run.runtime.deliveries if d.event_id.startswith("x-")}
    assert set(by_id) == {event_id for event_id, _, _ in FOREIGN_EVENTS}
    for event_id, delivery in by_id.items():
        assert (delivery.attempt, delivery.outcome) == (1, "ok"), delivery
        status = json.loads(delivery.result)["status"]
        assert status == ("dropped" if event_id in MALFORMED else "ok"), (event_id, delivery.result)
    assert baked.report["deliveries"]["retries"] == 0
    assert baked.report["deliveries"]["dead_letters"] == 0

    # ... and nothing in ECS or OOS changed: no write, not even a tag
    assert baked.mutations() == set()
    assert baked.calls("TagResources") == baked.calls("UntagResources") == 0
    # ... and Bakery said nothing back: the bus holds only what was put on it
    assert sorted(e["id"] for e in baked.run.bakery_events()) == sorted(e for e, _, _ in FOREIGN_EVENTS)
    # (the report lists the forged bake ids it read off the bus; none is credited with an image — one naming an
    # image that no longer exists reads as ended, the way a snapshot bake whose Bake:Failed was lost does)
    assert all(b["state"] in ("in-flight", "failed") and b["imageId"] is None for b in baked.report["bakes"])
    assert baked.instance_tags("i-app") == {}
    assert baked.newest_in_family("web") == "m-web-v0"
    assert baked.image_tags(baked.image("m-web-v0")) == {}


@pytest.mark.parametrize(
    "retag_at",
    [pytest.param(1, id="during-preflight"), pytest.param(120, id="while-creating"),
     pytest.param(1200, id="while-repairing")],
)  # fmt: skip
def test_a_second_bake_while_one_is_in_flight_is_refused(bake, retag_at):
    # Given a bake in flight (its image will need a repair, so it lasts about an hour)
    scenario = {
        "seed": 18,
        "instances": [{"id": "i-app", "guest": {"check_failures": ["Nvme"]}}],
        "actions": [
            trigger("i-app", family="app"),
            # When the operator tags the instance again mid-bake (a new TagResources: a new bake id)
            trigger("i-app", at=retag_at),
        ],
    }
    baked = bake(scenario)

    # Then both tag events reached the bake function, and the second was refused while the first went on
    tag_events = {
        d.event_id
        for d in baked.deliveries(function="bakery-bake", event_type="ecs:ActionTrail:ApiCall")
        if any("a bake is already in flight" in line for line in d.logs)
    }
    assert len(tag_events) == 1
    # ... the operator hears about the refused trigger, naming the bake in flight
    (refused,) = [b for b in baked.report["bakes"] if b["state"] == "failed"]
    assert refused["reason"] == "already-baking" and refused["instanceId"] == "i-app"
    # ... one bake ready, one CreateImage, one promoted image
    (result,) = [b for b in baked.report["bakes"] if b["state"] != "failed"]
    assert result["state"] == "ready", result
    assert refused["message"].count(result["bakeId"]) == 1
    assert baked.calls("CreateImage") == 1
    assert [i.image_id for i in baked.images()] == [result["imageId"]]
    # ... and the instance is released afterwards (the second trigger does not linger to start a bake later)
    assert baked.assert_released("i-app")[tags.LAST_IMAGE] == result["imageId"]


@pytest.mark.parametrize(
    ("tag", "value"),
    # é: CreateImage's names are "English or Chinese characters" (aliyun/oos-templates ACS-ECS-CreateImage.json,
    # imageName), so a Latin letter with an accent is refused as a digit first would be.
    [(tags.FAMILY, "a"), (tags.FAMILY, "aliyun-web"), (tags.NAME, "9lives"), (tags.FAMILY, "café-web")],
)
def test_an_invalid_family_or_name_tag_is_refused_before_any_image_exists(bake, tag, value):
    # Given an instance tagged for baking with a family or name ECS would refuse
    scenario = {"seed": 43, "instances": [{"id": "i-app"}],
                "actions": [{"at": 0, "tag": {"instance": "i-app", "tags": {tags.TRIGGER: "true", tag: value}}}]}  # fmt: skip
    baked = bake(scenario)

    # Then the bake fails at once naming the tag, before preflight or CreateImage
    result = baked.bake_of("i-app")
    assert (result["state"], result["reason"]) == ("failed", "invalid-request"), result
    assert tag in result["message"]
    assert baked.calls("CreateImage") == 0 and baked.calls("RunCommand") == 0


def test_a_request_naming_another_bakes_id_is_dropped_and_that_bake_is_untouched(bake):
    # Given i-b being baked (tagged), and i-a opted in to requests
    scenario = {
        "seed": 31,
        "instances": [{"id": "i-a", "tags": {tags.ALLOW_REQUESTS: "true"}}, {"id": "i-b"}],
        "actions": [trigger("i-b", family="web")],
    }
    sent: list[str] = []

    def hijack(run) -> None:  # anyone with PutEvents: a request for i-a carrying i-b's bake id
        victim = run.cloud.ecs.instances["i-b"].tags.get(tags.BAKE_ID)
        if victim and not sent:
            sent.append(victim)
            put(run, "x-hijack", "bakery:Bake:Requested", json.dumps({"instanceId": "i-a", "bakeId": victim}))

    baked = bake(scenario, on_step=hijack, step_seconds=30)

    # Then the request is dropped before anything is touched, and i-b's bake is promoted as if nothing happened
    assert sent, "i-b was never claimed"
    assert baked.bake_of("i-b")["state"] == "ready"
    assert tags.BAKE_ID not in baked.instance_tags("i-a")
    assert [d for d in baked.deliveries(event_type="bakery:Bake:Requested") if d.outcome == "error"] == []
