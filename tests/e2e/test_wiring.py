"""The wiring is template.yml's: a real tag reaches bakery-bake through the default-bus trigger the
template declares, with an FC context and the environment the template sets — no routing in test code."""

from __future__ import annotations

import json

from tests.e2e.conftest import trigger


def test_a_tag_reaches_bakery_bake_through_the_template_trigger_with_context_and_env(bake):
    # Given Bakery deployed from template.yml into a local region with one instance
    scenario = {"seed": 41, "instances": [{"id": "i-web1"}], "actions": [trigger("i-web1", family="web")]}
    # When the operator tags it (a real TagResources through the SDK)
    baked = bake(scenario)

    # Then the ActionTrail event of that call was delivered to bakery-bake by the template's trigger
    operator_tag = next(
        e for e in baked.run.cloud.events.read(0, "default")
        if e.event["data"].get("eventName") == "TagResources"
        and e.event["data"]["userIdentity"]["accessKeyId"] == "LTAIoperator"
    )  # fmt: skip
    (delivery,) = [d for d in baked.deliveries(function="bakery-bake") if d.event_id == operator_tag.event["id"]]
    assert delivery.outcome == "ok" and delivery.attempt == 1
    route = next(
        r for r in baked.run.template.routes if r.function == "bakery-bake" and r.pattern.matches(operator_tag.event)
    )
    assert (route.logical_id, route.bus) == ("BakeOnTagTrigger", "default")

    # ... the handler saw the FC context: its request id is on the JSON log lines it wrote
    logged = [json.loads(line[line.index("{") :]) for line in delivery.logs if "{" in line]
    assert logged and all(entry["request_id"] == delivery.request_id for entry in logged)
    assert {entry["function"] for entry in logged} == {"bake"}

    # ... and the environment: its SDK calls were signed with the function role's credentials
    # (ALIBABA_CLOUD_ACCESS_KEY_ID), and it published on the bus named by BAKERY_EVENT_BUS
    function_writes = {
        e.event["data"]["userIdentity"]["accessKeyId"]
        for e in baked.run.cloud.events.read(0, "default")
        if e.event["type"] == "ecs:ActionTrail:ApiCall"
        and e.event["data"]["userIdentity"]["accessKeyId"] != "LTAIoperator"
    }
    assert function_writes == {baked.run.runtime.credentials.access_key_id}
    bus = baked.run.template.function("bakery-bake").env["BAKERY_EVENT_BUS"]
    assert [e.bus for e in baked.run.cloud.events.read(0, bus)] and bus == "bakery"
    assert baked.bake_of("i-web1")["state"] == "ready"
