"""Image families over time, end to end in a local cloud: retention after a real bake (the lifecycle function,
deployed from template.yml), images kept because instances or launch templates use them, rollback and
restore, cost, and the `bakery plan|cost|rollback|restore` commands against a served local cloud.

Setup runs through the `bake` fixture (so every region is checked against the safety promises); the
lifecycle calls go through Bakery's own ECS adapter, and the results are read back through the real SDK.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as m

from bakery.adapters.ecs import Ecs
from bakery.config import Settings
from bakery.families import cost, plan, rollback
from bakery_tools.cli import main
from localcloud import LocalCloud, Scenario
from localcloud.server import LocalCloudServer
from tests.e2e.conftest import Baked, trigger

# A family's history: three checked images, 30, 20 and 10 days old, 40 / 20 / 100 GiB.
HISTORY = [
    {"id": "m-web-v1", "family": "web", "size": 40, "age_days": 30, "check_failures": [], "tags": {"bakery:bake-id": "b-1", "bakery:state": "ready"}},
    {"id": "m-web-v2", "family": "web", "size": 20, "age_days": 20, "check_failures": [], "tags": {"bakery:bake-id": "b-2", "bakery:state": "ready"}},
    {"id": "m-web-v3", "family": "web", "size": 100, "age_days": 10, "check_failures": [], "tags": {"bakery:bake-id": "b-3", "bakery:state": "ready"}},
]  # fmt: skip
BAKER = {"id": "i-web1", "disks": [{"type": "system", "size": 20}]}
APP = {"id": "i-app1", "image_id": "m-web-v2"}  # a server running an old image of the family
PINNED = {"id": "lt-web", "name": "web", "versions": [{"image_id": "m-web-v1"}]}  # a template pinning one


def operator(baked: Baked, **settings: Any) -> tuple[Ecs, Settings]:
    """Bakery's ECS adapter pointed at the run's local cloud, as an operator's CLI would be."""
    values = {"region": baked.region, "cloud_endpoint": baked.run.cloud_env.endpoint,
              "access_key_id": "LTAIoperator", "access_key_secret": "local", **settings}  # fmt: skip
    config = Settings(**values)
    return Ecs(config), config


def status_of(baked: Baked, image_id: str) -> str | None:
    image = baked.image(image_id)
    return image.status if image is not None else None


# -- retention after a real bake, through template.yml ------------------------------------------------------


def test_after_a_bake_the_lifecycle_function_deprecates_what_falls_out_of_the_newest_3(bake) -> None:
    # Given a family with three checked images and an instance tagged to bake into it (default retention:
    # keep 3, deprecate)
    scenario = {"seed": 3, "images": HISTORY, "instances": [BAKER], "actions": [trigger("i-web1", family="web")]}

    # When the bake runs to the end, through template.yml
    baked = bake(scenario)

    # Then the new image is ready and resolves the family, and the lifecycle function ran once, on the family's
    # promotion (bakery:Family:Promoted: one per family per sweep, not one per Ready)
    new_image = baked.bake_of("i-web1")["imageId"]
    assert baked.newest_in_family("web") == new_image
    (delivery,) = baked.deliveries(function="bakery-lifecycle")
    assert (delivery.event_type, delivery.outcome) == ("bakery:Family:Promoted", "ok")

    # ... the oldest image was deprecated (still there, snapshots too), the other two untouched
    assert [status_of(baked, i) for i in ("m-web-v1", "m-web-v2", "m-web-v3")] == [
        "Deprecated",
        "Available",
        "Available",
    ]
    assert "s-web-v1" in baked.snapshot_ids()

    # ... and the family's retention was announced on the bakery bus, naming what it did
    (event,) = baked.events("bakery:Family:RetentionApplied")
    assert event["subject"] == "web"
    assert event["data"]["deprecated"] == ["m-web-v1"]
    assert event["data"]["deleted"] == []
    assert event["data"]["readyImageId"] == new_image
    assert {k["imageId"]: k["reason"] for k in event["data"]["kept"]} == {
        new_image: "newest 3", "m-web-v3": "newest 3", "m-web-v2": "newest 3",
    }  # fmt: skip


def test_retention_with_delete_removes_old_images_and_their_snapshots_but_never_one_in_use(bake) -> None:
    # Given keep 1 + delete, an old image an instance runs (v2) and one a launch template pins (v1)
    scenario = {"seed": 4, "images": HISTORY, "instances": [BAKER, APP], "launch_templates": [PINNED],
                "actions": [trigger("i-web1", family="web")]}  # fmt: skip
    env = {"BAKERY_RETENTION_KEEP": "1", "BAKERY_RETENTION_ACTION": "delete"}

    # When an image is baked into the family
    baked = bake(scenario, env=env)

    # Then the unused old image is deleted, and its snapshot with it (DescribeSnapshots no longer lists it)
    assert status_of(baked, "m-web-v3") is None
    assert "s-web-v3" not in baked.snapshot_ids()
    (event,) = baked.events("bakery:Family:RetentionApplied")
    assert (event["data"]["deleted"], event["data"]["deletedSnapshots"]) == (["m-web-v3"], ["s-web-v3"])

    # ... the images in use are kept (deprecated, snapshots intact), and a plan says why
    assert [status_of(baked, i) for i in ("m-web-v2", "m-web-v1")] == ["Deprecated", "Deprecated"]
    assert {"s-web-v2", "s-web-v1"} <= baked.snapshot_ids()
    ecs, settings = operator(baked, retention_keep=1, retention_action="delete")
    why = {d.image_id: (d.action, d.reason, d.done) for d in plan.plan(ecs, settings, "web")}
    assert why["m-web-v2"] == ("deprecate", "in use by instance i-app1", True)
    assert why["m-web-v1"] == ("deprecate", "in use by launch template lt-web v1", True)


def test_applying_retention_twice_changes_nothing_the_second_time(bake) -> None:
    # Given a family of three images and retention keeping 1 with delete
    baked = bake({"images": HISTORY})
    ecs, settings = operator(baked, retention_keep=1, retention_action="delete")

    # When retention is applied twice
    first = plan.apply(ecs, settings, "web")
    second = plan.apply(ecs, settings, "web")

    # Then the first run deleted the two older images with their snapshots, the second had nothing to do
    assert (first.deleted, first.deleted_snapshots) == (["m-web-v2", "m-web-v1"], ["s-web-v2", "s-web-v1"])
    assert (second.deleted, second.deprecated, second.skipped) == ([], [], [])
    assert not {"s-web-v2", "s-web-v1"} & baked.snapshot_ids()


def test_force_deletes_an_image_an_instance_runs(bake) -> None:
    # Given an old image an instance runs
    baked = bake({"images": HISTORY, "instances": [APP]})
    ecs, settings = operator(baked, retention_keep=1, retention_action="delete")

    # When retention is applied without, then with force
    kept = plan.apply(ecs, settings, "web")
    forced = plan.apply(ecs, settings, "web", force=True)

    # Then it is only deprecated at first, and deleted (with its snapshot) when forced
    assert (kept.deprecated, kept.deleted) == (["m-web-v2"], ["m-web-v1"])
    assert forced.deleted == ["m-web-v2"]
    assert status_of(baked, "m-web-v2") is None
    assert "s-web-v2" not in baked.snapshot_ids()


def test_without_a_family_the_plan_covers_every_family_with_bakery_images(bake) -> None:
    # Given Bakery's family web and a family nobody baked (no bakery:bake-id on its images)
    legacy = {"id": "m-legacy-v1", "family": "legacy", "age_days": 90}
    baked = bake({"images": [*HISTORY, legacy]})
    ecs, settings = operator(baked)

    # When retention is planned for every family / Then only web is planned
    assert {d.family for d in plan.plan(ecs, settings)} == {"web"}


# -- rollback and restore ------------------------------------------------------------------------------


def test_rollback_moves_the_family_to_the_previous_image_and_refuses_the_last_one(bake) -> None:
    # Given a family of two images whose newest is shared with another account
    baked = bake({"images": HISTORY[1:]})
    baked.ecs.modify_image_share_permission(m.ModifyImageSharePermissionRequest(
        region_id=baked.region, image_id="m-web-v3", add_account=["1111222233334444"]))  # fmt: skip
    ecs, _ = operator(baked)
    assert baked.newest_in_family("web") == "m-web-v3"

    # When the family is rolled back
    result = rollback.rollback(ecs, "web")

    # Then the newest image was unshared, then deprecated, and the family resolves to the previous one
    assert (result.deprecated, result.unshared, result.resolves_to) == ("m-web-v3", ("1111222233334444",), "m-web-v2")
    assert baked.newest_in_family("web") == "m-web-v2"
    assert status_of(baked, "m-web-v3") == "Deprecated"

    # When it is rolled back again / Then it is refused, naming the last Available image, which stays Available
    with pytest.raises(rollback.Refused, match=r"m-web-v2 is its only Available image"):
        rollback.rollback(ecs, "web")
    assert baked.newest_in_family("web") == "m-web-v2"


def test_restore_makes_a_rolled_back_image_available_again(bake) -> None:
    # Given a family rolled back from v3 to v2
    baked = bake({"images": HISTORY})
    ecs, _ = operator(baked)
    rollback.rollback(ecs, "web")

    # When v3 is restored (twice: the second is a no-op)
    result = rollback.restore(ecs, "m-web-v3")
    again = rollback.restore(ecs, "m-web-v3")

    # Then it is Available and resolves the family again
    assert (result.previous_status, result.resolves_to) == ("Deprecated", "m-web-v3")
    assert again.previous_status == "Available"
    assert baked.newest_in_family("web") == "m-web-v3"


def test_rollback_and_restore_name_what_does_not_exist(bake) -> None:
    baked = bake({"images": HISTORY})
    ecs, _ = operator(baked)
    with pytest.raises(rollback.NotFound, match=r"no image in family 'nope'"):
        rollback.rollback(ecs, "nope")
    with pytest.raises(rollback.NotFound, match=r"no image 'm-missing'"):
        rollback.restore(ecs, "m-missing")


# -- cost ------------------------------------------------------------------------------------------------


def test_cost_matches_the_snapshot_sizes_and_what_the_plan_frees(bake) -> None:
    # Given the family's three images of 40, 20 and 100 GiB, and retention keeping 1 with delete
    baked = bake({"images": HISTORY})
    ecs, settings = operator(baked, retention_keep=1, retention_action="delete")

    # When the cost is computed at 0.10 per GiB-month
    report = cost.cost(ecs, settings, "web", price_per_gib_month=0.10, currency="EUR")

    # Then each image costs its snapshots' size, the family the sum, and the plan frees the two older ones
    (family,) = report.families
    assert {i.image_id: (i.size_gib, round(i.monthly, 2)) for i in family.images} == {
        "m-web-v3": (100, 10.0), "m-web-v2": (20, 2.0), "m-web-v1": (40, 4.0),
    }  # fmt: skip
    assert (family.size_gib, round(family.monthly, 2)) == (160, 16.0)
    assert (family.freed_gib, round(family.freed_monthly, 2)) == (60, 6.0)
    assert report.currency == "EUR"


def test_with_deprecate_the_cost_shows_that_deprecated_images_still_bill(bake) -> None:
    baked = bake({"images": HISTORY})
    ecs, settings = operator(baked, retention_keep=1)
    (family,) = cost.cost(ecs, settings, "web").families
    assert (family.freed_gib, family.deprecated_gib, round(family.deprecated_monthly, 2)) == (0, 60, 7.2)


# -- the CLI against a served local cloud ---------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch):
    """A local cloud with the family, an instance on v2 and a template pinning v1, served over HTTP."""
    for var in ("ALIBABA_CLOUD_REGION_ID", "BAKERY_CLOUD_ENDPOINT", "BAKERY_RETENTION_KEEP", "BAKERY_RETENTION_ACTION",
                "BAKERY_SNAPSHOT_PRICE_PER_GIB_MONTH", "BAKERY_CURRENCY"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    cloud = LocalCloud(Scenario.from_mapping({"images": HISTORY, "instances": [APP], "launch_templates": [PINNED]}))
    with LocalCloudServer(cloud) as server:
        yield cloud, ["--endpoint", server.endpoint, "--region", cloud.region]
    cloud.close()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_plan_prints_a_table_saying_why(served, capsys) -> None:
    # Given the served region / When `bakery plan web --keep 1 --action delete` runs
    cloud, target = served
    code, out, _ = run_cli(capsys, "plan", "web", "--keep", "1", "--action", "delete", *target)

    # Then it exits 0 with one row per image and the reason for each, and changes nothing
    assert code == 0
    assert "Family web: keep the newest 1 (BAKERY_RETENTION_KEEP); older images: delete" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("m-web-")}
    assert "keep" in rows["m-web-v3"] and "newest 1" in rows["m-web-v3"]
    assert "deprecate" in rows["m-web-v2"] and "in use by instance i-app1" in rows["m-web-v2"]
    assert "in use by launch template lt-web v1" in rows["m-web-v1"]
    assert "Run again with --apply" in out
    assert cloud.ecs.images["m-web-v1"].status == "Available"


def test_cli_plan_apply_json_reports_what_it_did(served, capsys) -> None:
    # Given the served region, where v2 and v1 are in use / When retention is applied with keep 1, delete
    cloud, target = served
    code, out, _ = run_cli(capsys, "plan", "web", "--keep", "1", "--action", "delete", "--apply", "--json", *target)

    # Then the JSON lists the plan and what was applied: nothing deleted (both in use), both deprecated
    assert code == 0
    body = json.loads(out)
    (family,) = body["families"]
    assert [(d["imageId"], d["action"]) for d in family["decisions"]] == [
        ("m-web-v3", "keep"), ("m-web-v2", "deprecate"), ("m-web-v1", "deprecate"),
    ]  # fmt: skip
    assert (body["applied"]["deprecated"], body["applied"]["deleted"]) == (["m-web-v2", "m-web-v1"], [])
    assert cloud.ecs.images["m-web-v1"].status == "Deprecated"


def test_cli_cost_json_uses_the_price_and_currency_given(served, capsys) -> None:
    _, target = served
    code, out, _ = run_cli(
        capsys, "cost", "web", "--price-per-gib-month", "0.5", "--currency", "EUR", "--json", *target
    )
    assert code == 0
    body = json.loads(out)
    assert (body["currency"], body["pricePerGiBMonth"], body["sizeGiB"], body["monthly"]) == ("EUR", 0.5, 160, 80.0)
    assert {i["imageId"]: i["sizeGiB"] for i in body["families"][0]["images"]} == {
        "m-web-v3": 100, "m-web-v2": 20, "m-web-v1": 40,
    }  # fmt: skip


def test_cli_cost_prints_the_per_family_summary(served, capsys) -> None:
    _, target = served
    code, out, _ = run_cli(capsys, "cost", *target)
    assert code == 0
    assert "web: 160 GiB, 19.20 USD/month" in out


def test_cli_rollback_then_refusal_then_restore(served, capsys) -> None:
    # Given the served family (v3 newest) with v2 and v1 deprecated first, so v3 and nothing else is Available
    cloud, target = served
    for image_id in ("m-web-v2", "m-web-v1"):
        cloud.ecs.images[image_id].status = "Deprecated"

    # When it is rolled back / Then it is refused with exit 1, naming the image, and nothing changes
    code, out, err = run_cli(capsys, "rollback", "web", *target)
    assert code == 1
    assert "m-web-v3 is its only Available image" in err
    assert cloud.ecs.images["m-web-v3"].status == "Available"

    # When v2 is restored and the family rolled back / Then both succeed and the family resolves to v2
    assert run_cli(capsys, "restore", "m-web-v2", *target)[0] == 0
    code, out, _ = run_cli(capsys, "rollback", "web", "--json", *target)
    assert code == 0
    assert json.loads(out) == {"region": cloud.region, "family": "web", "deprecated": "m-web-v3", "alsoDeprecated": [],
                               "unshared": [], "resolvesTo": "m-web-v2", "forced": []}  # fmt: skip

    # ... and the human restore output says what the family resolves to
    code, out, _ = run_cli(capsys, "restore", "m-web-v3", *target)
    assert code == 0
    assert "DescribeImageFromFamily web -> m-web-v3" in out


def test_cli_refusal_in_json_is_machine_readable(served, capsys) -> None:
    cloud, target = served
    for image_id in ("m-web-v2", "m-web-v1"):
        cloud.ecs.images[image_id].status = "Deprecated"
    code, out, _ = run_cli(capsys, "rollback", "web", "--json", *target)
    assert code == 1
    assert json.loads(out)["error"] == "refused"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["restore", "web-v1"], "IMAGE must be an image id like m-bp1"),
        (["restore", "m-missing"], "no image 'm-missing'"),
        (["rollback", "nope"], "no image in family 'nope'"),
        (["plan", "nope"], "no image in family 'nope'"),
    ],
)
def test_cli_bad_input_exits_2_and_says_what_to_do(served, capsys, argv: list[str], message: str) -> None:
    _, target = served
    code, _, err = run_cli(capsys, *argv, *target)
    assert code == 2
    assert message in err


def test_cli_without_a_region_exits_2_naming_the_option(served, capsys) -> None:
    code, _, err = run_cli(capsys, "plan", "--endpoint", "127.0.0.1:1")
    assert code == 2
    assert "--region" in err


def test_cli_against_an_unreachable_endpoint_says_how_to_start_one(served, capsys) -> None:
    code, _, err = run_cli(capsys, "plan", "web", "--endpoint", "127.0.0.1:1", "--region", "cn-hangzhou")
    assert code == 1
    assert "python -m localcloud serve" in err


# -- issue 10 items 7 and 12: rollbacks, unfit images, promotions in flight -------------------------------------

READY_TAGS = {"bakery:state": "ready"}
FOUR = [  # v1..v4, 40 / 30 / 20 / 10 days old, all promoted by Bakery and checked
    {"id": f"m-web-v{n}", "family": "web", "size": 20, "age_days": 50 - 10 * n, "check_failures": [],
     "tags": {"bakery:bake-id": f"b-{n}", **READY_TAGS}}
    for n in range(1, 5)
]  # fmt: skip


def operator_of(run: Any) -> Ecs:
    """Bakery's ECS adapter on a LocalRun before its Baked exists (before_run / on_step)."""
    return Ecs(Settings(region=run.cloud.region, cloud_endpoint=run.cloud_env.endpoint, access_key_id="LTAIoperator",
                        access_key_secret="local"))  # fmt: skip


def test_two_rollbacks_then_a_bake_keep_the_known_good_image_available(bake, capsys, monkeypatch) -> None:
    # Given v1..v4 rolled back twice before anything else happens (v4, v3 Deprecated: the family resolves to
    # the known-good v2), then an instance baked into the family, with retention keeping 2
    def roll_back_twice(run: Any) -> None:
        ecs = operator_of(run)
        assert [rollback.rollback(ecs, "web").resolves_to for _ in range(2)] == ["m-web-v3", "m-web-v2"]

    scenario = {"seed": 7, "images": FOUR, "instances": [BAKER], "actions": [trigger("i-web1", family="web")]}
    baked = bake(scenario, env={"BAKERY_RETENTION_KEEP": "2"}, before_run=roll_back_twice)

    # Then the family resolves to the new image, and the known-good v2 is still Available
    new_image = baked.bake_of("i-web1")["imageId"]
    assert baked.newest_in_family("web") == new_image
    assert [status_of(baked, f"m-web-v{n}") for n in (4, 3, 2, 1)] == ["Deprecated", "Deprecated", "Available",
                                                                       "Deprecated"]  # fmt: skip

    # ... the lifecycle's retention deprecated v1 alone, and said why it kept the others
    (event,) = baked.events("bakery:Family:RetentionApplied")
    assert event["data"]["deprecated"] == ["m-web-v1"]
    kept = {k["imageId"]: k["reason"].split(":")[0] for k in event["data"]["kept"]}
    assert kept == {new_image: "newest 2", "m-web-v4": "rolled back", "m-web-v3": "rolled back", "m-web-v2": "newest 2"}

    # ... and `bakery plan` shows the same decisions as a dry run, with nothing left to do
    monkeypatch.delenv("BAKERY_RETENTION_ACTION", raising=False)
    capsys.readouterr()  # the functions' log lines so far
    target = ["--endpoint", baked.run.cloud_env.endpoint, "--region", baked.region]
    code, out, _ = run_cli(capsys, "plan", "web", "--keep", "2", "--json", *target)
    assert code == 0
    (family,) = json.loads(out)["families"]
    planned = {d["imageId"]: (d["action"], d["reason"].split(":")[0], d["done"]) for d in family["decisions"]}
    assert planned == {new_image: ("keep", "newest 2", False), "m-web-v4": ("keep", "rolled back", False),
                       "m-web-v3": ("keep", "rolled back", False), "m-web-v2": ("keep", "newest 2", False),
                       "m-web-v1": ("deprecate", "older than the newest 2", True)}  # fmt: skip


def test_a_half_promoted_image_is_not_touched_by_another_bakes_retention(bake) -> None:
    # Given v1..v3 and m-web-half, a newer image left mid-promotion: its family set, bakery:state still
    # checking (as when a 5xx interrupts promote between ModifyImageAttribute and the ready tag). Its check is
    # held at Processing so the sweep cannot finish the promotion before the other bake's retention has run.
    half = {"id": "m-web-half", "family": "web", "size": 20, "age_days": 5, "check_failures": [],
            "tags": {"bakery:bake-id": "b-half", "bakery:family": "web", "bakery:state": "checking"}}  # fmt: skip

    def hold(run: Any) -> None:
        run.cloud.ecs.images["m-web-half"].detection_status = "Processing"

    def finish_after_the_other_retention(run: Any) -> None:
        # Once the other bake's retention ran, the promotion completes (its last step writes ready).
        if any(e.get("type") == "bakery:Family:RetentionApplied" for e in run.bakery_events()):
            run.cloud.ecs.images["m-web-half"].detection_status = "Finished"
            operator_of(run).tag("image", "m-web-half", {"bakery:state": "ready"})

    scenario = {
        "seed": 8,
        "images": [*FOUR[:3], half],
        "instances": [BAKER],
        "actions": [trigger("i-web1", family="web")],
    }
    baked = bake(scenario, env={"BAKERY_RETENTION_KEEP": "2", "BAKERY_RETENTION_ACTION": "delete"}, before_run=hold,
                 on_step=finish_after_the_other_retention, step_seconds=30)  # fmt: skip

    # Then the other bake's retention left the half-promoted image alone, without counting it: it kept the new
    # image and v3, and deleted v2 and v1
    new_image = baked.bake_of("i-web1")["imageId"]
    (event,) = baked.events("bakery:Family:RetentionApplied")
    assert event["data"]["readyImageId"] == new_image
    assert event["data"]["deleted"] == ["m-web-v2", "m-web-v1"]
    kept = {k["imageId"]: k["reason"] for k in event["data"]["kept"]}
    assert kept["m-web-half"] == "promotion in flight (bakery:state=checking): not counted, the sweep finishes it"
    assert kept["m-web-v3"] == "newest 2"
    assert status_of(baked, "m-web-half") == "Available"

    # When the completed promotion's own Ready runs retention (as bakery-lifecycle does)
    ecs, settings = operator(baked, retention_keep=2, retention_action="delete")
    after = plan.apply(ecs, settings, "web", just_promoted="m-web-half")

    # Then the family holds exactly 2 Available images: the new one and the finished half-promoted one
    assert after.deleted == ["m-web-v3"]
    available = sorted(i.image_id for i in baked.images(image_family="web") if i.status == "Available")
    assert available == sorted([new_image, "m-web-half"])


def test_retention_costs_one_describe_images_when_there_is_nothing_to_do(bake) -> None:
    # Given a family of three images and retention keeping 3 (nothing to retire)
    baked = bake({"images": HISTORY})
    ecs, settings = operator(baked)

    # When retention is applied, then applied keeping 2 (one image to deprecate)
    def calls_of(step: Any) -> dict[str, int]:
        before = dict(baked.run.cloud.call_counts()["calls"])
        step()
        after = baked.run.cloud.call_counts()["calls"]
        return {a: n - before.get(a, 0) for a, n in after.items() if n - before.get(a, 0)}

    nothing = calls_of(lambda: plan.apply(ecs, settings, "web"))
    one = calls_of(lambda: plan.apply(ecs, replace(settings, retention_keep=2), "web"))

    # Then the first costs one DescribeImages; the second adds the sharing lookup and the deprecation only
    assert nothing == {"DescribeImages": 1}
    assert one == {"DescribeImages": 1, "DescribeImageSharePermission": 1, "ModifyImageAttribute": 1}


# -- rollback and restore onto images unfit to resolve -------------------------------------------------------


@pytest.fixture
def unfit_family(monkeypatch: pytest.MonkeyPatch):
    """web: v1 good, v2 whose check failed (put into the family by hand), v3 newest good; served over HTTP."""
    for var in ("ALIBABA_CLOUD_REGION_ID", "BAKERY_CLOUD_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    broken = {"id": "m-web-v2", "family": "web", "size": 20, "age_days": 20, "check_failures": ["Nvme"], "tags": {}}
    images = [HISTORY[0], broken, HISTORY[2]]
    cloud = LocalCloud(Scenario.from_mapping({"images": images}))
    with LocalCloudServer(cloud) as server:
        yield cloud, ["--endpoint", server.endpoint, "--region", cloud.region]
    cloud.close()


def test_cli_rollback_onto_a_check_failed_image_is_refused_naming_the_way_out(unfit_family, capsys) -> None:
    cloud, target = unfit_family

    # When the family is rolled back (v3 -> v2, whose check failed)
    code, _, err = run_cli(capsys, "rollback", "web", *target)

    # Then it is refused with exit 1, saying why and what to run instead, and nothing changed
    assert code == 1
    assert "refusing to roll back family 'web' onto m-web-v2: its image check failed: Nvme" in err
    assert "`bakery rollback web --to m-web-v1` deprecates m-web-v3, m-web-v2" in err
    assert "`--force` rolls back onto m-web-v2 anyway" in err
    assert [cloud.ecs.images[i].status for i in ("m-web-v3", "m-web-v2")] == ["Available", "Available"]

    # When the suggested command runs / Then the family resolves to the good v1, both newer ones Deprecated
    code, out, _ = run_cli(capsys, "rollback", "web", "--to", "m-web-v1", "--json", *target)
    assert code == 0
    body = json.loads(out)
    assert (body["deprecated"], body["alsoDeprecated"], body["resolvesTo"]) == ("m-web-v3", ["m-web-v2"], "m-web-v1")

    # When the check-failed v2 is restored (the family would resolve to it again) / Then refused, unless forced
    code, _, err = run_cli(capsys, "restore", "m-web-v3", *target)
    assert code == 0  # v3 is fit: restoring it is fine
    assert run_cli(capsys, "rollback", "web", "--to", "m-web-v1", *target)[0] == 0
    code, _, err = run_cli(capsys, "restore", "m-web-v2", *target)
    assert code == 1
    assert "family 'web' would resolve to it" in err and "its image check failed" in err
    assert run_cli(capsys, "restore", "m-web-v2", "--force", *target)[0] == 0
    assert cloud.ecs.images["m-web-v2"].status == "Available"


def test_cli_rollback_force_goes_onto_an_unfit_image_and_says_so(unfit_family, capsys) -> None:
    cloud, target = unfit_family
    code, out, _ = run_cli(capsys, "rollback", "web", "--force", *target)
    assert code == 0
    assert "Forced (--force) although its image check failed: Nvme" in out
    assert "DescribeImageFromFamily web -> m-web-v2" in out
    assert cloud.ecs.images["m-web-v3"].status == "Deprecated"


def test_rollback_refuses_a_target_outside_the_family_or_not_available(bake) -> None:
    baked = bake({"images": HISTORY})
    ecs, _ = operator(baked)
    with pytest.raises(rollback.NotFound, match=r"m-nope is not an image of family 'web'"):
        rollback.rollback(ecs, "web", to="m-nope")
    with pytest.raises(rollback.Refused, match=r"already resolves to m-web-v3"):
        rollback.rollback(ecs, "web", to="m-web-v3")
    rollback.rollback(ecs, "web")
    with pytest.raises(rollback.Refused, match=r"m-web-v3 is Deprecated: .* `bakery restore m-web-v3` first"):
        rollback.rollback(ecs, "web", to="m-web-v3")
