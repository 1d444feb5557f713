"""Retention decisions, pure: `bakery.model.Image` lists + usage maps in, keep / deprecate / delete out,
each with the reason a person reads in `bakery plan`."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bakery.config import Settings
from bakery.errors import ConfigError
from bakery.events import FAMILY_RETENTION_APPLIED
from bakery.families.plan import ApplyResult, retention_applied
from bakery.families.retention import DELETE, DEPRECATE, KEEP, Decision, Usage, decide, retention_for
from bakery.model import CheckItem, Image

FAILING = (CheckItem("Nvme", "Unsupported", "High", "NVMe.NotInstalled"),)
PROMOTED = object()  # the default tags: a finished Bakery promotion (bakery:bake-id, bakery:state=ready)


def image(
    image_id: str,
    day: int,
    *,
    status: str = "Available",
    checked: bool = True,
    failing: bool = False,
    tags: dict[str, str] | object = PROMOTED,
    snapshots: tuple[str, ...] | None = None,
) -> Image:
    """An image of family `web` created on day `day` of January (a larger day is newer), promoted by Bakery
    unless `tags` says otherwise (`tags={}`: an image the operator made)."""
    if tags is PROMOTED:
        tags = {"bakery:bake-id": f"b-{image_id}", "bakery:state": "ready"}
    assert isinstance(tags, dict)
    return Image(
        image_id=image_id, name=image_id, status=status, usable=status == "Available", family="web",
        description="", os_type="linux", platform="Ubuntu", architecture="x86_64", tags=dict(tags),
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


def test_deprecated_images_do_not_count_towards_the_newest_n() -> None:
    # Given the newest image deprecated by a rollback, and two older Available ones
    images = [image("m-v3", 3, status="Deprecated"), image("m-v2", 2), image("m-v1", 1)]

    # When retention keeps 2
    decisions = by_id(decide(images, keep=2))

    # Then both Available images are the newest 2 (the family keeps two images to resolve to), and the
    # rolled-back image is left Deprecated, not counted, restorable
    assert [(decisions[i].action, decisions[i].reason) for i in ("m-v2", "m-v1")] == [(KEEP, "newest 2")] * 2
    assert (decisions["m-v3"].action, decisions["m-v3"].reason.split(":")[0]) == (KEEP, "rolled back")
    assert (decisions["m-v3"].counted, decisions["m-v2"].counted) == (False, True)


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
    # Given two newest images both Deprecated (rolled back) and two older Available ones, all failing
    images = [
        image("m-v4", 4, status="Deprecated", failing=True),
        image("m-v3", 3, status="Deprecated", failing=True),
        image("m-v2", 2, failing=True),
        image("m-v1", 1, failing=True),
    ]

    # When retention keeps 1 and deletes
    decisions = by_id(decide(images, keep=1, action=DELETE))

    # Then the newest Available image is kept (Deprecated ones never take its slot); the older one goes,
    # and the rolled-back images newer than the kept one stay for a restore
    assert (decisions["m-v2"].action, decisions["m-v2"].reason) == (KEEP, "newest 1")
    assert decisions["m-v1"].action == DELETE
    assert [decisions[i].action for i in ("m-v4", "m-v3")] == [KEEP, KEEP]


def test_a_protected_image_is_never_touched() -> None:
    # Given an old image tagged bakery:protected=true
    images = history(4)
    images[0] = replace(images[0], tags={**images[0].tags, "bakery:protected": "true"})

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


# -- rollbacks: Deprecated images never take a slot (issue 10 item 7) ------------------------------------------


def test_two_rollbacks_then_a_bake_keep_the_known_good_image_available() -> None:
    # Given v1..v4, rolled back twice (v4 and v3 Deprecated: the family resolves to v2), then v5 baked
    images = [image("m-v5", 5), image("m-v4", 4, status="Deprecated"), image("m-v3", 3, status="Deprecated"),
              image("m-v2", 2), image("m-v1", 1)]  # fmt: skip

    # When retention keeps 2 after v5's Ready
    decisions = decide(images, keep=2, just_promoted="m-v5")

    # Then v5 and the known-good v2 stay Available (the newest 2 Available), the rolled-back images are left
    # Deprecated (not re-enabled, not counted), and only v1 is retired
    assert [(d.image_id, d.action, d.reason.split(":")[0]) for d in decisions] == [
        ("m-v5", KEEP, "newest 2"),
        ("m-v4", KEEP, "rolled back"),
        ("m-v3", KEEP, "rolled back"),
        ("m-v2", KEEP, "newest 2"),
        ("m-v1", DEPRECATE, "older than the newest 2"),
    ]
    assert not [d for d in decisions if d.done]


def test_with_delete_a_deprecated_image_goes_once_n_images_are_newer() -> None:
    # Given a rolled-back v4 (newer than the kept window) and a v1 Deprecated long ago (older than it)
    images = [image("m-v5", 5), image("m-v4", 4, status="Deprecated"), image("m-v3", 3), image("m-v2", 2),
              image("m-v1", 1, status="Deprecated")]  # fmt: skip

    # When retention keeps 2 with the delete action
    decisions = by_id(decide(images, keep=2, action=DELETE))

    # Then v4 stays for a restore (only v5 is newer), v1 is deleted like v2 (two kept images are newer)
    assert decisions["m-v4"].action == KEEP
    assert (decisions["m-v2"].action, decisions["m-v1"].action) == (DELETE, DELETE)
    assert decisions["m-v1"].reason == "older than the newest 2"


def test_with_deprecate_an_old_deprecated_image_is_done_and_a_rolled_back_one_kept() -> None:
    images = [image("m-v4", 4, status="Deprecated"), image("m-v3", 3), image("m-v1", 1, status="Deprecated")]
    decisions = by_id(decide(images, keep=1))
    assert (decisions["m-v1"].action, decisions["m-v1"].done) == (DEPRECATE, True)
    assert (decisions["m-v4"].action, decisions["m-v4"].done) == (KEEP, False)


def test_while_the_family_holds_fewer_than_n_available_images_nothing_is_retired() -> None:
    # Given one Available image and two Deprecated ones, one of them older (keep 2, delete)
    images = [image("m-v3", 3, status="Deprecated"), image("m-v2", 2), image("m-v1", 1, status="Deprecated")]

    # When retention decides / Then nothing goes: no image has two kept images newer than it
    assert [d.action for d in decide(images, keep=2, action=DELETE)] == [KEEP, KEEP, KEEP]


# -- promotions in flight (issue 10 item 12) ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["creating", "checking", "check-failed", "repairing"])
def test_an_image_whose_promotion_is_in_flight_is_neither_touched_nor_counted(value: str) -> None:
    # Given a family image left mid-promotion (its family set, bakery:state not ready yet), newer than v1..v3
    half = image("m-half", 9, tags={"bakery:bake-id": "b-half", "bakery:state": value})
    images = [half, *history(3)]

    # When another bake's Ready runs retention with keep 2 and delete
    decisions = by_id(decide(images, keep=2, action=DELETE, just_promoted="m-v3"))

    # Then the half-promoted image is kept, saying why, without a slot: v3 and v2 are the newest 2
    assert decisions["m-half"].action == KEEP
    assert (
        decisions["m-half"].reason == f"promotion in flight (bakery:state={value}): not counted, the sweep finishes it"
    )
    assert not decisions["m-half"].counted
    assert [decisions[i].action for i in ("m-v3", "m-v2", "m-v1")] == [KEEP, KEEP, DELETE]


def test_once_the_interrupted_promotion_completes_the_family_holds_exactly_n() -> None:
    # Given the state after another bake's retention (keep 2): v3, v2 Available, the half image now finished
    images = [image("m-half", 9), image("m-v3", 3), image("m-v2", 2), image("m-v1", 1, status="Deprecated")]

    # When its own Ready runs retention
    decisions = decide(images, keep=2, just_promoted="m-half")

    # Then exactly two Available images are kept
    kept = [d.image_id for d in decisions if d.action == KEEP and d.status == "Available"]
    assert kept == ["m-half", "m-v3"]


def test_the_image_a_ready_announced_counts_as_finished_before_its_state_is_written() -> None:
    # Given the just-promoted image still tagged checking (promotion publishes Ready, then writes ready)
    images = [image("m-v4", 4, tags={"bakery:bake-id": "b-4", "bakery:state": "checking"}), *history(3)]

    # When retention runs for its Ready / Then it takes a slot like any finished image
    decisions = by_id(decide(images, keep=2, just_promoted="m-v4"))
    assert (decisions["m-v4"].reason, decisions["m-v4"].counted) == ("newest 2", True)
    assert decisions["m-v2"].action == DEPRECATE


def test_a_retired_image_in_a_family_is_left_to_the_pipeline() -> None:
    images = [
        *history(2),
        image("m-old", 0, status="Deprecated", tags={"bakery:bake-id": "b", "bakery:state": "retired"}),
    ]
    decision = by_id(decide(images, keep=1, action=DELETE))["m-old"]
    assert (decision.action, decision.reason) == (
        KEEP,
        "bakery:state=retired: not a finished promotion, left to the pipeline",
    )


# -- images Bakery did not make, and legacy ones ------------------------------------------------------------


def test_the_operators_own_images_count_but_are_never_retired() -> None:
    # Given a family whose oldest two images the operator made (no bakery:bake-id), one Deprecated
    images = [*history(3)[1:], image("m-own", 1, tags={}), image("m-own-old", 0, status="Deprecated", tags={})]

    # When retention keeps 1 with delete
    decisions = by_id(decide(images, keep=1, action=DELETE))

    # Then Bakery's older image goes, the operator's are kept, saying so
    assert decisions["m-v2"].action == DELETE
    assert (
        decisions["m-own"].reason == "not made by Bakery (no bakery:bake-id): left to you, counted towards the newest N"
    )
    assert decisions["m-own-old"].reason == "not made by Bakery (no bakery:bake-id): left to you"


def test_an_operator_image_newest_in_the_family_takes_a_slot() -> None:
    images = [image("m-own", 9, tags={}), *history(2)]
    decisions = by_id(decide(images, keep=2))
    assert [decisions[i].action for i in ("m-own", "m-v2", "m-v1")] == [KEEP, KEEP, DEPRECATE]


def test_a_bakery_image_without_a_state_is_finished_but_never_the_last_good() -> None:
    # Given a legacy Bakery image (bake id, no bakery:state) whose check passed, and newer failing images
    legacy = image("m-legacy", 1, tags={"bakery:bake-id": "b-old"})
    images = [legacy, *[image(f"m-bad{n}", n + 1, failing=True) for n in range(1, 4)]]

    # When retention keeps 2 / Then it is counted and retired like any image: it is not fit to resolve
    # (no bakery:state=ready), so the last-good rule does not hold it
    decision = by_id(decide(images, keep=2))["m-legacy"]
    assert (decision.action, decision.counted) == (DEPRECATE, True)


# -- the invariants, over arbitrary families ----------------------------------------------------------------

STATES = [None, "ready", "checking", "creating", "retired"]


@given(
    st.lists(st.tuples(st.sampled_from(["Available", "Deprecated", "Creating", "CreateFailed"]),
                       st.sampled_from(STATES), st.booleans(), st.booleans()), max_size=8),
    st.integers(min_value=1, max_value=4),
    st.sampled_from([DEPRECATE, DELETE]),
)  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_retention_never_strands_the_family_nor_touches_what_it_must_not(
    specs: list[tuple[str, str | None, bool, bool]], keep: int, action: str
) -> None:
    images = []
    for n, (status, value, ours, failing) in enumerate(specs, start=1):
        tags = ({"bakery:bake-id": f"b-{n}"} if ours else {}) | ({"bakery:state": value} if value else {})
        images.append(image(f"m-{n}", n, status=status, failing=failing, tags=tags))
    decisions = by_id(decide(images, keep=keep, action=action))
    acted = {i for i, d in decisions.items() if d.action != KEEP and not d.done}
    available = [i for i in images if i.status == "Available"]
    if available:  # the image the family resolves to (the newest Available) is never retired
        assert max(available, key=lambda i: i.creation_time).image_id not in acted
    counted = [i for i in images if i.status == "Available" and i.tags.get("bakery:state") in (None, "ready")]
    for i in images:
        if i.image_id in acted:  # only finished Bakery images with N counted images newer are retired
            assert "bakery:bake-id" in i.tags and i.tags.get("bakery:state") in (None, "ready")
            assert sum(c.creation_time > i.creation_time for c in counted) >= keep or i.status == "CreateFailed"
    kept_available = [d for d in decisions.values() if d.counted and d.action == KEEP]
    assert len(kept_available) >= min(keep, len(counted))
