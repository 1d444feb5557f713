"""Red team (issue 12): a CreateImage ActionTrail record whose request arrived as requestParameterJson (nested
JSON) and whose response does not name the image. `events.ImageCall.parse` collects the request's `*ImageId`
values into a set, so a nested value (a list or an object) raises TypeError in the bake handler instead of the
clean InvalidEvent every other malformed field gets — FC retries it and dead-letters it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

from bakery import entrypoints
from bakery.config import Settings
from bakery.errors import InvalidEvent
from bakery.events import CloudEvent
from bakery.pipeline import Pipeline

SAMPLE = Path(__file__).resolve().parents[2] / "events" / "ecs-actiontrail-createimage.json"


@pytest.mark.parametrize("request_json", [
    {"InstanceId": "i-web7", "SourceImageId": ["m-bp1source000000001"]},
    {"InstanceId": "i-web7", "ImageId": {"Id": "m-bp1source000000001"}},
])  # fmt: skip
def test_a_nested_image_id_in_the_request_is_a_clean_invalid_event(request_json: dict[str, Any]) -> None:
    body = json.loads(SAMPLE.read_text())
    del body["data"]["responseElements"], body["data"]["requestParameters"]
    body["data"]["requestParameterJson"] = json.dumps(request_json)
    pipeline = Pipeline(Settings.from_env({"FC_REGION": "cn-hangzhou"}), MagicMock(name="ecs"), MagicMock(name="oos"),
                        MagicMock(name="bus"))  # fmt: skip
    with pytest.raises(InvalidEvent):  # refused at the edge: what a malformed record must get
        entrypoints.route_bake(pipeline, CloudEvent.parse(body))
    assert pipeline.bus.method_calls == [] and pipeline.ecs.method_calls == []
