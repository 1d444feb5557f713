"""The image check ("check after creation", CreateImage DetectionStrategy=Standard) through the real SDK."""

from __future__ import annotations

from tests.integration._ecs import create_image, create_snapshot, describe_image, system_disk_id, tags_of

# 20 GiB at 10 s/GiB → Available at 200 s; the check then takes 300 s.
TIMINGS = {"image_seconds_per_gib": 10, "check_seconds": 300}
CREATED = 200


def _env(make_env, **instance):
    spec = {"id": "i-src", "disks": [{"type": "system", "size": 20}], **instance}
    return make_env({"timings": TIMINGS, "instances": [spec]})


def _checked_image(env, **fields):
    """Create an image with the Standard check and run the clock past creation and check."""
    image_id = create_image(env, instance_id="i-src", detection_strategy="Standard", **fields)
    env.cloud.advance(CREATED + TIMINGS["check_seconds"])
    return image_id


def _items(image) -> dict[str, object]:
    return {item.name: item for item in image.detection_options.items.item}


def _failing(image) -> dict[str, tuple[str, str]]:
    return {i.name: (i.risk_level, i.risk_code) for i in image.detection_options.items.item if i.risk_level}


def test_standard_check_is_processing_once_the_image_is_available(make_env):
    # Given an image created with DetectionStrategy=Standard
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src", detection_strategy="Standard")

    # When the image becomes Available
    env.cloud.advance(CREATED)

    # Then its check is Processing
    image = describe_image(env, image_id)
    assert image.status == "Available"
    assert image.detection_options.status == "Processing"


def test_standard_check_finishes_after_check_seconds(make_env):
    # Given an Available image whose check is Processing
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src", detection_strategy="Standard")
    env.cloud.advance(CREATED)

    # When check_seconds minus one pass, then one more
    env.cloud.advance(TIMINGS["check_seconds"] - 1)
    before = describe_image(env, image_id).detection_options.status
    env.cloud.advance(1)

    # Then it was still Processing and is now Finished
    assert before == "Processing"
    assert describe_image(env, image_id).detection_options.status == "Finished"


def test_passing_check_lists_every_item_without_risk(make_env):
    # Given a healthy guest
    env = _env(make_env)

    # When its image is checked
    image = describe_image(env, _checked_image(env))

    # Then every item is listed, none carries RiskLevel or RiskCode
    items = _items(image)
    assert {"Virtio", "Nvme", "Fstab", "Grub", "Dhcp"} <= set(items)
    assert _failing(image) == {}
    assert all(i.risk_code is None and i.value for i in items.values())


def test_passing_image_gets_the_os_version_tag(make_env):
    # Given a healthy Ubuntu guest
    env = _env(make_env, platform="Ubuntu")

    # When its image passes the check
    image = describe_image(env, _checked_image(env))

    # Then the service tags it with acs:ecs:image:osVersion
    assert tags_of(image)["acs:ecs:image:osVersion"] == image.osname


def test_image_is_not_tagged_before_its_check_finishes(make_env):
    # Given an image whose check is still Processing
    env = _env(make_env)
    image_id = create_image(env, instance_id="i-src", detection_strategy="Standard")
    env.cloud.advance(CREATED)

    # When describing it
    image = describe_image(env, image_id)

    # Then it carries no check tag yet
    assert "acs:ecs:image:osVersion" not in tags_of(image)


def test_check_failures_of_the_guest_are_reported_as_risky_items(make_env):
    # Given a guest missing the NVMe driver and the Cloud Assistant client
    env = _env(make_env, guest={"check_failures": ["Nvme", "CloudAssistant"]})

    # When its image is checked
    image = describe_image(env, _checked_image(env))

    # Then exactly those items carry RiskLevel and RiskCode; the others carry neither
    assert image.detection_options.status == "Finished"
    assert _failing(image) == {
        "Nvme": ("High", "NVMe.NotInstalled"),
        "CloudAssistant": ("Medium", "CloudAssistant.NotInstalled"),
    }
    assert _items(image)["Virtio"].risk_level is None


def test_failing_check_does_not_fail_the_image_nor_tag_it(make_env):
    # Given a guest that fails a check item
    env = _env(make_env, guest={"check_failures": ["Virtio"]})

    # When its image is checked
    image = describe_image(env, _checked_image(env))

    # Then the image stays Available but gets no osVersion tag
    assert image.status == "Available"
    assert "acs:ecs:image:osVersion" not in tags_of(image)


def test_fstab_mismatch_fails_the_fstab_item(make_env):
    # Given a guest whose fstab mounts a disk that is no longer attached
    env = _env(make_env, guest={"fstab_mismatch": True})

    # When its image is checked
    image = describe_image(env, _checked_image(env))

    # Then the Fstab item is at High risk
    assert _failing(image) == {"Fstab": ("High", "Fstab.Invalid")}


def test_no_detection_strategy_means_no_detection_options(make_env):
    # Given an image created without DetectionStrategy
    env = _env(make_env, guest={"check_failures": ["Nvme"]})
    image_id = create_image(env, instance_id="i-src")

    # When creation and any check time have passed
    env.cloud.advance(CREATED + TIMINGS["check_seconds"])

    # Then no check ran: no DetectionOptions and no check tag
    image = describe_image(env, image_id)
    assert image.status == "Available"
    assert image.detection_options is None
    assert "acs:ecs:image:osVersion" not in tags_of(image)


def test_encrypted_system_disk_image_gets_no_check(make_env):
    # Given an instance whose system disk is encrypted
    env = _env(make_env, disks=[{"type": "system", "size": 20, "encrypted": True}])

    # When its image is created with DetectionStrategy=Standard
    image = describe_image(env, _checked_image(env))

    # Then the check is unsupported: no DetectionOptions
    assert image.status == "Available"
    assert image.detection_options is None
    assert image.disk_device_mappings.disk_device_mapping[0].encrypted is True


def test_freebsd_image_gets_no_check(make_env):
    # Given a FreeBSD instance
    env = _env(make_env, platform="FreeBSD")

    # When its image is created with DetectionStrategy=Standard
    image = describe_image(env, _checked_image(env))

    # Then the check is unsupported: no DetectionOptions
    assert image.platform == "FreeBSD"
    assert image.detection_options is None


def test_platform_param_freebsd_also_skips_the_check(make_env):
    # Given a Linux instance imaged with Platform=FreeBSD
    env = _env(make_env)

    # When the image is created with DetectionStrategy=Standard
    image = describe_image(env, _checked_image(env, platform="FreeBSD"))

    # Then the declared platform decides: no DetectionOptions
    assert image.detection_options is None


def test_image_from_a_snapshot_is_checked_against_the_snapshotted_guest(make_env):
    # Given an accomplished snapshot of a guest that lacks Virtio drivers
    env = _env(make_env, guest={"check_failures": ["Virtio"]})
    snapshot_id = create_snapshot(env, system_disk_id(env, "i-src"))
    env.cloud.advance(3600)

    # When an image made from that snapshot is checked
    image_id = create_image(env, snapshot_id=snapshot_id, detection_strategy="Standard")
    env.cloud.advance(CREATED + TIMINGS["check_seconds"])

    # Then the snapshot's guest problems are found
    assert set(_failing(describe_image(env, image_id))) == {"Virtio"}


def test_create_failed_image_gets_no_check(make_env):
    # Given an instance whose first image fails
    env = _env(make_env, create_image_failures=1)

    # When that image is created with DetectionStrategy=Standard
    image = describe_image(env, _checked_image(env))

    # Then it ends CreateFailed without DetectionOptions
    assert image.status == "CreateFailed"
    assert image.detection_options is None
