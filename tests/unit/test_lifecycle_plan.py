"""Retention decisions, pure: `bakery.model.Image` lists + usage maps in, keep / deprecate / delete out,
each with the reason a person reads in `bakery plan`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bakery.config import Settings
from bakery.errors import ConfigError
from bakery.events import FAMILY_RETENTION_APPLIED
from bakery.families.plan import ApplyResult, retention_applied
from bakery.families.retention import DELETE, DEPRECATE, KEEP, Decision, Usage, decide, retention_for
from bakery.model import CheckItem, Image

FAILING = (CheckItem("Nvme", "Unsupported", "High", "NVMe.NotInstalled"),)


def image(
    image_id: str,
    day: int,
    *,
    status: str = "Available",
    checked: bool = True,
    failing: bool = False,
    tags: dict[str, str] | None = None,
    snapshots: tuple[str, ...] | None = None,
) -> Image:
    """An image of family `web` created on day `day` of January (a larger day is newer)."""
    return Image(
        image_id=image_id, name=image_id, status=status, usable=status == "Available", family="web",
        description="", os_type="linux", platform="Ubuntu", architecture="x86_64", tags=dict(tags or {}),
        snapshot_ids=snapshots if snapshots is not None else (f"s-{image_id}",),
        detection_status="Finished" if checked else "", check_items=FAILING if failing else (),
        creation_time=f"2026-01-{day:02d}T09:00:00Z",
    )  # fmt: skip


def by_id(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.image_id: d for d in decisions}


def history(count: int, **fields) -> list[Image]:
    """m-v1 (oldest) .. m-v<count> (newest)."""
    return [image(f"m-v{n}", n, **fields) for n in range(1, count + 1)]


# -- newest N ------------------------------------------------------------------------------------------


def test_the_newest_n_are_kept_and_older_images_are_deprecated_by_default() -> None:
    # Given five checked images in a family, and retention keeping 3
    images = history(5)

    # When retention decides
    decisions = decide(images, keep=3)

    # Then the newest three are kept, the two older ones deprecated, newest first, each with its reason
    assert [(d.image_id, d.action, d.reason) for d in decisions] == [
        ("m-v5", KEEP, "newest 3"),
        ("m-v4", KEEP, "newest 3"),
        ("m-v3", KEEP, "newest 3"),
        ("m-v2", DEPRECATE, "older than the newest 3"),
        ("m-v1", DEPRECATE, "older than the newest 3"),
    ]


def test_with_the_delete_action_older_images_are_deleted_with_their_snapshots() -> None:
    # Given four images, retention keeping 2 and the delete action
    decisions = by_id(decide(history(4), keep=2, action=DELETE))

    # Then the two older ones are deleted, and each decision names the snapshots to delete after the image
    assert (decisions["m-v2"].action, decisions["m-v1"].action) == (DELETE, DELETE)
    assert decisions["m-v1"].snapshot_ids == ("s-m-v1",)
    assert decisions["m-v1"].reason == "older than the newest 2"


def test_an_already_deprecated_old_image_is_marked_done() -> None:
    # Given an old image that is already Deprecated
    images = [*history(3)[1:], image("m-v1", 1, status="Deprecated")]

    # When retention (keep 2, deprecate) decides
    decision = by_id(decide(images, keep=2))["m-v1"]

    # Then the decision is deprecate, with nothing left to call
    assert (decision.action, decision.done) == (DEPRECATE, True)


def test_deprecated_images_count_towards_the_newest_n() -> None:
    # Given the newest image deprecated by a rollback, and two older Available ones
    images = [image("m-v3", 3, status="Deprecated"), image("m-v2", 2), image("m-v1", 1)]

    # When retention keeps 2 / Then the rolled-back image keeps its slot (it stays Deprecated, untouched)
    decisions = by_id(decide(images, keep=2))
    assert (decisions["m-v3"].action, decisions["m-v3"].reason) == (KEEP, "newest 2")
    assert decisions["m-v1"].action == DEPRECATE


def test_images_still_being_created_are_left_alone_and_do_not_take_a_slot() -> None:
    # Given a Creating image newer than three Available ones
    images = [image("m-new", 9, status="Creating", checked=False), *history(3)]

    # When retention keeps 2
    decisions = by_id(decide(images, keep=2))

    # Then the Creating image is kept as such, and the newest 2 are counted among usable images only
    assert (decisions["m-new"].action, decisions["m-new"].reason) == (KEEP, "still being created")
    assert [decisions[i].action for i in ("m-v3", "m-v2", "m-v1")] == [KEEP, KEEP, DEPRECATE]


@pytest.mark.parametrize(("action", "expected"), [(DEPRECATE, KEEP), (DELETE, DELETE)])
def test_create_failed_images_are_deleted_or_left_never_deprecated(action: str, expected: str) -> None:
    # Given a CreateFailed image in the family (it can never be deprecated: ECS refuses the status change)
    images = [*history(2), image("m-broken", 5, status="CreateFailed", checked=False)]

    # When retention decides / Then delete removes it and deprecate leaves it, saying why
    decision = by_id(decide(images, keep=2, action=action))["m-broken"]
    assert decision.action == expected
    assert decision.reason.startswith("CreateFailed:")


# -- the retention-keep tag ------------------------------------------------------------------------------


def test_the_newest_image_carrying_the_retention_tag_wins() -> None:
    # Given an old image tagged keep=5 and a newer one tagged keep=2
    images = history(4)
    images[0] = replace(images[0], tags={"bakery:retention-keep": "5"})
    images[2] = replace(images[2], tags={"bakery:retention-keep": "2"})

    # When the family's retention is read / Then the newer tag wins, and it says where N came from
    retention = retention_for(images, default=3)
    assert retention.keep == 2
    assert retention.source == "tag bakery:retention-keep=2 on m-v3"


def test_an_invalid_retention_tag_is_ignored_and_reported() -> None:
    # Given the newest image tagged with a non-number, an older one with a valid value
    images = history(3)
    images[2] = replace(images[2], tags={"bakery:retention-keep": "lots"})
    images[0] = replace(images[0], tags={"bakery:retention-keep": "1"})

    # When retention is read / Then the valid older tag applies and the bad one is named
    retention = retention_for(images, default=3)
    assert retention.keep == 1
    assert retention.ignored == ("m-v3: bakery:retention-keep='lots' is not a whole number >= 1 (ignored)",)


def test_without_a_tag_the_setting_applies() -> None:
    retention = retention_for(history(2), default=4)
    assert (retention.keep, retention.source) == (4, "BAKERY_RETENTION_KEEP")


# -- last good / last Available / protected / shared ---------------------------------------------------


def test_the_last_good_image_is_kept_while_newer_images_fail_their_check() -> None:
    # Given a passing image followed by three newer images whose check failed (e.g. promoted by hand)
    images = [image("m-good", 1), *[image(f"m-bad{n}", n + 1, failing=True) for n in range(1, 4)]]

    # When retention keeps 2 and deletes older images
    decisions = by_id(decide(images, keep=2, action=DELETE))

    # Then the passing image is never touched, while the oldest failing one goes
    assert (decisions["m-good"].action, decisions["m-good"].reason) == (KEEP, "last good")
    assert decisions["m-bad1"].action == DELETE


def test_unchecked_newer_images_do_not_replace_the_last_good_one() -> None:
    # Given an old checked image and three newer unchecked ones (BAKERY_UNCHECKED_IMAGE_POLICY=promote)
    images = [image("m-good", 1), *[image(f"m-u{n}", n + 1, checked=False) for n in range(1, 4)]]

    # When retention keeps 2 / Then the checked image is kept as the last good
    assert by_id(decide(images, keep=2))["m-good"].reason == "last good"


def test_a_family_is_never_left_without_an_available_image() -> None:
    # Given two newest images both Deprecated (rolled back) and two older Available ones
    images = [
        image("m-v4", 4, status="Deprecated", failing=True),
        image("m-v3", 3, status="Deprecated", failing=True),
        image("m-v2", 2, failing=True),
        image("m-v1", 1, failing=True),
    ]

    # When retention keeps 2 and would retire everything older
    decisions = by_id(decide(images, keep=2, action=DELETE))

    # Then the newest Available image is kept as the last Available one; the older one goes
    assert (decisions["m-v2"].action, decisions["m-v2"].reason) == (KEEP, "last Available")
    assert decisions["m-v1"].action == DELETE


def test_a_protected_image_is_never_touched() -> None:
    # Given an old image tagged bakery:protected=true
    images = history(4)
    images[0] = replace(images[0], tags={"bakery:protected": "true"})

    # When retention keeps 1 and deletes / Then the protected image is kept, saying so
    decision = by_id(decide(images, keep=1, action=DELETE))["m-v1"]
    assert (decision.action, decision.reason) == (KEEP, "protected tag")


def test_a_shared_image_is_left_to_the_operator() -> None:
    # Given an old image shared with another account
    usage = {"m-v1": Usage(shared_with=("1111222233334444",))}

    # When retention decides / Then it is kept (deprecating it would cut the account off), naming the account
    decision = by_id(decide(history(3), keep=1, usage=usage))["m-v1"]
    assert decision.action == KEEP
    assert decision.reason.startswith("shared with account(s) 1111222233334444")


# -- in use ------------------------------------------------------------------------------------------------


def test_an_image_used_by_an_instance_is_not_deleted_but_deprecated_and_says_why() -> None:
    # Given an old image an instance runs, and the delete action
    usage = {"m-v1": Usage(instances=("i-app1",), instance_count=1)}

    # When retention decides
    decision = by_id(decide(history(3), keep=1, action=DELETE, usage=usage))["m-v1"]

    # Then it is deprecated instead of deleted, and the first reason names the instance
    assert decision.action == DEPRECATE
    assert decision.reason == "in use by instance i-app1"
    assert "older than the newest 1" in decision.reasons


def test_an_image_a_launch_template_pins_is_not_deleted() -> None:
    # Given an old image that version 2 of launch template lt-web names
    usage = {"m-v1": Usage(launch_templates=(("lt-web", 2),))}

    # When retention decides with the delete action / Then it is kept out of deletion, naming the version
    decision = by_id(decide(history(3), keep=1, action=DELETE, usage=usage))["m-v1"]
    assert (decision.action, decision.reason) == (DEPRECATE, "in use by launch template lt-web v2")


def test_force_deletes_an_image_in_use() -> None:
    # Given an old image an instance runs / When retention decides with force
    usage = {"m-v1": Usage(instances=("i-app1",), instance_count=1)}
    decision = by_id(decide(history(3), keep=1, action=DELETE, usage=usage, force=True))["m-v1"]

    # Then it is deleted, and the reasons record the use and the force
    assert decision.action == DELETE
    assert decision.reasons == ("older than the newest 1", "in use by instance i-app1", "forced")


def test_with_the_deprecate_action_usage_is_reported_but_does_not_block() -> None:
    # Given an old image in use, and the (default) deprecate action: a Deprecated image still launches
    usage = {"m-v1": Usage(instances=("i-a", "i-b", "i-c"), instance_count=7)}

    # When retention decides / Then it is deprecated, and the instances are listed (the first three)
    decision = by_id(decide(history(2), keep=1, usage=usage))["m-v1"]
    assert decision.action == DEPRECATE
    assert decision.reasons[1] == "in use by instances i-a, i-b, i-c (+4 more)"


# -- idempotence, bad input, settings, the event ------------------------------------------------------------


def test_deciding_again_after_applying_changes_nothing() -> None:
    # Given a family and what retention decided for it (keep 2, delete)
    images = [*history(5), image("m-v0", 0, status="Deprecated")]
    first = decide(images, keep=2, action=DELETE)

    # When the decisions are applied (deleted images vanish) and retention decides again
    after = [i for i in images if by_id(first)[i.image_id].action != DELETE]
    second = decide(after, keep=2, action=DELETE)

    # Then there is nothing left to do
    assert [d.action for d in second] == [KEEP, KEEP]


@pytest.mark.parametrize(("keep", "action"), [(0, DEPRECATE), (3, "archive")])
def test_decide_refuses_a_meaningless_policy(keep: int, action: str) -> None:
    with pytest.raises(ValueError, match="retention"):
        decide(history(2), keep=keep, action=action)


def test_retention_settings_are_read_and_validated() -> None:
    # Given FC's environment with retention set / Then it is read; defaults are 3 and deprecate
    env = {"FC_REGION": "cn-hangzhou"}
    assert (Settings.from_env(env).retention_keep, Settings.from_env(env).retention_action) == (3, DEPRECATE)
    settings = Settings.from_env({**env, "BAKERY_RETENTION_KEEP": "5", "BAKERY_RETENTION_ACTION": "delete"})
    assert (settings.retention_keep, settings.retention_action) == (5, DELETE)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BAKERY_RETENTION_KEEP", "0", "BAKERY_RETENTION_KEEP must be >= 1, got 0."),
        ("BAKERY_RETENTION_KEEP", "three", "BAKERY_RETENTION_KEEP must be a whole number, got 'three'."),
        ("BAKERY_RETENTION_ACTION", "archive", "BAKERY_RETENTION_ACTION must be one of deprecate, delete, got 'archive'."),
    ],
)  # fmt: skip
def test_bad_retention_settings_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"FC_REGION": "cn-hangzhou", name: value})
    assert str(error.value) == message


def test_the_retention_event_says_what_was_done_to_the_family() -> None:
    # Given what apply did to family web after m-v3 was promoted
    decisions = decide(history(3), keep=1, action=DELETE)
    result = ApplyResult("web", DELETE, decisions, deleted=["m-v2", "m-v1"], deleted_snapshots=["s-m-v2", "s-m-v1"])

    # When the event is built
    event = retention_applied(result, "m-v3")

    # Then it is bakery:Family:RetentionApplied about the family, listing deletions and what was kept
    assert (event.type, event.subject) == (FAMILY_RETENTION_APPLIED, "web")
    assert event.data["deleted"] == ["m-v2", "m-v1"]
    assert event.data["deletedSnapshots"] == ["s-m-v2", "s-m-v1"]
    assert event.data["kept"] == [{"imageId": "m-v3", "reason": "newest 1"}]
    assert event.data["readyImageId"] == "m-v3"
    assert "decisions" not in event.data


def test_the_image_just_promoted_is_kept_even_when_older_images_were_promoted_first() -> None:
    # Given five checked images, the oldest of which was promoted last (promotions land out of creation order)
    images = history(5)

    # When retention runs for that promotion
    decisions = by_id(decide(images, keep=3, just_promoted="m-v1"))

    # Then the promoted image stays, saying why, and the rule still applies to the others
    assert (decisions["m-v1"].action, decisions["m-v1"].reason) == (KEEP, "just promoted")
    assert decisions["m-v2"].action == DEPRECATE
