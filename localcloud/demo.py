"""A narrated tour of the local cloud: the real SDKs drive a scenario through the image lifecycle.

It picks its actors from the scenario: the first Linux instance without local disks is imaged,
checked and repaired; an instance with local disks shows the refusal. Every step is a real SDK call.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from localcloud.cloud import LocalCloud
from localcloud.scenario import Scenario
from localcloud.services.ecs.checks import CHECK_ITEMS
from localcloud.testing import CloudEnv, running


def _say(text: str = "") -> None:
    print(text, flush=True)


def _step(title: str) -> None:
    _say(f"\n== {title}")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        _say("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


def run_demo(scenario: Scenario, transport: str = "http") -> int:
    from alibabacloud_ecs20140526 import models as ecs_models
    from alibabacloud_oos20190601 import models as oos_models
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    cloud = LocalCloud(scenario)
    with running(cloud, transport) as env:
        region = env.region
        _say(f"localcloud demo: {scenario.source}, region {region}, transport {transport} ({env.endpoint})")

        _step("DescribeInstances")
        body = env.ecs.describe_instances(ecs_models.DescribeInstancesRequest(region_id=region, max_results=100)).body
        _table(
            [
                [i.instance_id, i.instance_type, i.status, i.osname, str(i.local_storage_amount)]
                for i in body.instances.instance
            ],
            ["instance", "type", "status", "os", "local disks"],
        )
        candidates = [i for i in body.instances.instance if not i.local_storage_amount and i.ostype == "linux"]
        refused = [i for i in body.instances.instance if i.local_storage_amount]
        if not candidates:
            _say("no Linux instance without local disks in this scenario: nothing to image")
            return 1
        target = candidates[0].instance_id

        _step(f"TagResources {target} bakery:bake=true  (ActionTrail publishes the call to the default bus)")
        cursor = cloud.events.cursor
        env.ecs.tag_resources(
            ecs_models.TagResourcesRequest(
                region_id=region, resource_type="instance", resource_id=[target],
                tag=[ecs_models.TagResourcesRequestTag(key="bakery:bake", value="true")],
            )
        )  # fmt: skip
        for published in cloud.events.read(cursor):
            data = published.event["data"]
            _say(
                f"  event {published.event['type']}  eventName={data['eventName']}  params={data['requestParameters']}"
            )

        _step(f"RunCommand on {target}: a real bash script against the guest sandbox")
        script = 'df -Pm / | tail -1; for f in $(find "${GUEST_ROOT}/root" -name "id_*" ! -name "*.pub"); do echo "secret: ${f#"$GUEST_ROOT"}"; done'
        invoke = env.ecs.run_command(
            ecs_models.RunCommandRequest(
                region_id=region, type="RunShellScript", command_content=script, instance_id=[target]
            )
        ).body.invoke_id
        cloud.advance(cloud.timings.command_seconds)
        result = env.ecs.describe_invocation_results(
            ecs_models.DescribeInvocationResultsRequest(
                region_id=region, invoke_id=invoke, content_encoding="PlainText"
            )
        ).body.invocation.invocation_results.invocation_result[0]
        _say(f"  {result.invocation_status} exit={result.exit_code}")
        for line in result.output.strip().splitlines():
            _say(f"  | {line}")

        _step("CreateImage with DetectionStrategy=Standard and a ClientToken, sent twice")
        request = ecs_models.CreateImageRequest(
            region_id=region, instance_id=target, image_name=f"demo-{target}", detection_strategy="Standard",
            client_token=f"demo-{target}-1", tag=[ecs_models.CreateImageRequestTag(key="bakery:bake-id", value="demo")],
        )  # fmt: skip
        image_id = env.ecs.create_image(request).body.image_id
        again = env.ecs.create_image(request).body.image_id
        _say(
            f"  {image_id} (retry with the same token -> {again}: {'same image' if again == image_id else 'DUPLICATE'})"
        )
        for instance in refused[:1]:
            try:
                env.ecs.create_image(ecs_models.CreateImageRequest(region_id=region, instance_id=instance.instance_id))
            except AlibabaCloudException as error:
                _say(f"  {instance.instance_id} refused: {error.code}: {error.data.get('Message')}")

        _step("Following the image on the virtual clock (DescribeImages Status=ALL)")
        image = _follow(
            env,
            image_id,
            until=lambda im: im.detection_options is not None and im.detection_options.status == "Finished",
        )
        failing = [(i.name, i.risk_level, i.risk_code) for i in image.detection_options.items.item if i.risk_level]
        _say(f"  image check finished: {'passed' if not failing else 'FAILED ' + str(failing)}")

        if failing:
            _step("OOS StartExecution ACS-ECS-RepairImage for the failing items")
            repair_items = sorted({_REPAIR.get(name, "all") for name, _, _ in failing})
            params = {"zoneId": f"{region}-h", "repairImageId": image_id, "baseImageId": "aliyun_3_x64_20G_alibase_20230727.vhd",
                      "instanceType": "ecs.g7.large", "securityGroupId": "sg-local", "vSwitchId": "vsw-local",
                      "repairItems": repair_items}  # fmt: skip
            execution = env.oos.start_execution(
                oos_models.StartExecutionRequest(
                    region_id=region, template_name="ACS-ECS-RepairImage", parameters=json.dumps(params)
                )
            ).body.execution
            _say(f"  {execution.execution_id} {execution.status} repairItems={repair_items}")
            cloud.advance(cloud.timings.repair_seconds)
            done = env.oos.list_executions(
                oos_models.ListExecutionsRequest(region_id=region, execution_id=execution.execution_id)
            ).body.executions[0]
            _say(f"  {done.status}: Outputs={done.outputs}")
            image_id = json.loads(done.outputs)["imageId"]
            image = _follow(
                env,
                image_id,
                until=lambda im: im.detection_options is not None and im.detection_options.status == "Finished",
            )
            still = [i.name for i in image.detection_options.items.item if i.risk_level]
            _say(
                f"  {image.image_name}: family={image.image_family!r} tags={[t.tag_key for t in image.tags.tag]} check={still or 'passed'}"
            )

        _step("Image family: promote, resolve, roll back")
        env.ecs.modify_image_attribute(
            ecs_models.ModifyImageAttributeRequest(region_id=region, image_id=image_id, image_family="demo-web")
        )
        newest = env.ecs.describe_image_from_family(
            ecs_models.DescribeImageFromFamilyRequest(region_id=region, image_family="demo-web")
        ).body.image
        _say(f"  DescribeImageFromFamily demo-web -> {newest.image_id}")
        env.ecs.modify_image_attribute(
            ecs_models.ModifyImageAttributeRequest(region_id=region, image_id=image_id, status="Deprecated")
        )
        empty = env.ecs.describe_image_from_family(
            ecs_models.DescribeImageFromFamilyRequest(region_id=region, image_family="demo-web")
        ).body.image
        _say(f"  after deprecating it -> {empty.image_id or '(no Available image left in the family)'}")

        _summary(cloud)
    cloud.close()
    return 0


# Check item → the repairItems value that fixes it, as the emulated template knows it.
_REPAIR = {name: repair_item for name, (_code, _level, repair_item) in CHECK_ITEMS.items()}


def _follow(env: CloudEnv, image_id: str, until: Any) -> Any:
    """Poll DescribeImages every 60 simulated seconds, printing each change, until `until(image)`."""
    from alibabacloud_ecs20140526 import models as ecs_models

    last = None
    for _ in range(10_000):
        image = env.ecs.describe_images(
            ecs_models.DescribeImagesRequest(region_id=env.region, image_id=image_id, status="ALL")
        ).body.images.image[0]
        detection = image.detection_options.status if image.detection_options else "-"
        quarter = int(image.progress.rstrip("%") or 0) // 25  # print progress in quarters, not every poll
        seen = (image.status, quarter, image.usable, detection)
        if seen != last:
            _say(
                f"  t+{int(env.cloud.clock.elapsed):>5}s  {image_id}  {image.status:<10} {image.progress:>4}  usable={image.usable!s:<5}  check={detection}"
            )
            last = seen
        if until(image) or image.status == "CreateFailed":
            return image
        env.cloud.advance(60)
    raise RuntimeError(f"{image_id} never settled")


def _summary(cloud: LocalCloud) -> None:
    _step("Summary")
    counts = cloud.call_counts()
    _say(f"  simulated time: {int(cloud.clock.elapsed)} s   API calls: {counts['total']}   errors: {counts['errors']}")
    _table([[a, str(n)] for a, n in sorted(counts["calls"].items())], ["action", "calls"])
    types = Counter(e.event["type"] for e in cloud.events.read())
    _say("")
    _table([[t, str(n)] for t, n in sorted(types.items())], ["event published", "count"])
