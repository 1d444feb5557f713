"""The image store's indexes (localcloud/services/ecs/index.py) stay consistent through every way an image
changes, and answer exactly as a full scan does; plus the other scale measures of the local cloud: the
in-process transport keeps only recent calls, the run's GC tuning is undone, discarded sandboxes go."""

from __future__ import annotations

import copy
import gc
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as m

from localcloud import LocalCloud, Scenario, mock
from localcloud.gctune import tuned_gc
from localcloud.guest.sandbox import GuestSandbox, _reaper
from localcloud.guest.spec import GuestDisk, GuestSpec
from localcloud.services.ecs.index import ImageStore
from localcloud.testing import CloudEnv, running
from tests.integration._ecs import ALL_IMAGE_STATUSES, create_image, find_images

INSTANCES = [{"id": f"i-{n}", "disks": [{"type": "system", "size": 20}]} for n in range(3)]


@pytest.fixture
def env() -> Iterator[CloudEnv]:
    cloud = LocalCloud(Scenario.from_mapping({"timings": {"image_seconds_per_gib": 1}, "instances": INSTANCES}))
    with running(cloud, "inprocess") as env:
        yield env
    cloud.close()


def _consistent(env: CloudEnv) -> None:
    assert env.cloud.ecs.images.check() == []


def _tag(env: CloudEnv, image_id: str, **tags: str) -> None:
    env.ecs.tag_resources(m.TagResourcesRequest(region_id=env.region, resource_type="image", resource_id=[image_id],
                                                tag=[m.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()]))  # fmt: skip


def _untag(env: CloudEnv, image_id: str, *keys: str, all_tags: bool = False) -> None:
    env.ecs.untag_resources(m.UntagResourcesRequest(region_id=env.region, resource_type="image",
                                                    resource_id=[image_id], tag_key=list(keys) or None,
                                                    all=all_tags or None))  # fmt: skip


def _images(env: CloudEnv, **filters: Any) -> list[str]:
    return [i.image_id for i in find_images(env, status=ALL_IMAGE_STATUSES, **filters)]


def test_the_indexes_follow_tag_untag_rename_refamily_and_delete(env: CloudEnv) -> None:
    # Given three images, two in family web
    a = create_image(env, instance_id="i-0", image_family="web", image_name="img-a")
    b = create_image(env, instance_id="i-1", image_family="web", image_name="img-b")
    c = create_image(env, instance_id="i-2", image_name="img-c")
    _consistent(env)
    assert set(_images(env, image_family="web")) == {a, b}
    # When they are tagged, untagged, moved between families, renamed and deleted
    _tag(env, a, stage="canary", team="x")
    _tag(env, c, stage="canary")
    _consistent(env)
    assert set(_images(env, tag=[m.DescribeImagesRequestTag(key="stage", value="canary")])) == {a, c}
    assert set(_images(env, tag=[m.DescribeImagesRequestTag(key="stage")])) == {a, c}
    _tag(env, a, stage="prod")  # same key, new value
    _consistent(env)
    assert _images(env, tag=[m.DescribeImagesRequestTag(key="stage", value="canary")]) == [c]
    assert _images(env, tag=[m.DescribeImagesRequestTag(key="stage", value="prod")]) == [a]
    _untag(env, a, "stage")
    _untag(env, c, all_tags=True)
    _consistent(env)
    assert _images(env, tag=[m.DescribeImagesRequestTag(key="stage")]) == []
    assert _images(env, tag=[m.DescribeImagesRequestTag(key="team", value="x")]) == [a]
    env.cloud.advance(600)  # Available: the check adds its acs: system tags in place
    _consistent(env)
    env.ecs.modify_image_attribute(m.ModifyImageAttributeRequest(region_id=env.region, image_id=b, image_family="api",
                                                                 image_name="img-b2"))  # fmt: skip
    _consistent(env)
    assert _images(env, image_family="web") == [a] and _images(env, image_family="api") == [b]
    assert find_images(env, image_name="img-b2")[0].image_id == b
    env.ecs.delete_image(m.DeleteImageRequest(region_id=env.region, image_id=a))
    _consistent(env)
    # Then every index answers for what is left, and nothing of a deleted image remains
    assert _images(env, image_family="web") == [] and _images(env, tag=[m.DescribeImagesRequestTag(key="team")]) == []
    assert env.ecs.describe_image_from_family(m.DescribeImageFromFamilyRequest(region_id=env.region,
                                                                               image_family="api")).body.image.image_id == b  # fmt: skip
    assert a not in env.cloud.ecs.images._positions


def test_in_place_changes_copies_and_every_dict_operation_keep_the_store_consistent(env: CloudEnv) -> None:
    store = env.cloud.ecs.images
    image_id = create_image(env, instance_id="i-0", image_family="web")
    image = store[image_id]
    image.tags["k"] = "v"  # what the image check and the tests' corruptions do
    image.tags.setdefault("k2", "v2")
    image.tags.update(k3="v3")
    del image.tags["k3"]
    image.tags.pop("k2")
    assert store.check() == []
    assert [i.image_id for i in store.candidates(tags=[("k", "v")])] == [image_id]
    # A deep copy belongs to no store until stored, and then is indexed like a new image
    twin = copy.deepcopy(image)
    assert twin._store is None and type(twin.tags) is dict
    twin.image_id = "m-twin"
    twin.tags["twin"] = "yes"
    assert store.check() == []
    store[twin.image_id] = twin
    twin.tags["later"] = "1"
    assert store.check() == []
    assert [i.image_id for i in store.candidates(tags=[("later", "1")])] == ["m-twin"]
    assert {i.image_id for i in store.candidates(family="web")} == {image_id, "m-twin"}
    # Replacing an image under its id keeps its place; pop, update, setdefault, clear
    order = list(store)
    store[image_id] = copy.deepcopy(image)
    assert list(store) == order and store.check() == []
    assert store.pop("m-twin") is twin and twin._store is None and store.check() == []
    assert store.pop("m-none", None) is None
    store.update({"m-twin": twin})
    store.setdefault("m-twin", image)
    assert store["m-twin"] is twin and store.check() == []
    other = ImageStore()
    other.update(store)
    assert other.check() == [] and store.check() != []  # each image is attached to one store: the last
    other.clear()
    assert other.check() == [] and len(other) == 0


# Every filter DescribeImages has, alone and combined: the indexed answer must equal a full scan's.
QUERIES: list[dict[str, Any]] = [
    {},
    {"status": ALL_IMAGE_STATUSES},
    {"status": "ALL", "image_owner_alias": "self"},
    {"status": "ALL", "image_owner_alias": "system"},
    {"image_family": "web"},
    {"image_family": "web", "status": ALL_IMAGE_STATUSES, "page_size": 2, "page_number": 2},
    {"image_family": "nope"},
    {"image_name": "A"},
    {"usage": "instance", "status": "ALL"},
    {"usage": "none", "image_owner_alias": "self", "status": "ALL"},
    {"is_public": True},
    {"is_public": False, "status": "ALL"},
    {"usable": True, "status": "ALL"},
    {"ostype": "linux", "architecture": "x86_64", "status": "ALL"},
    {"tag": [m.DescribeImagesRequestTag(key="stage", value="canary")], "status": "ALL"},
    {"tag": [m.DescribeImagesRequestTag(key="stage")], "image_family": "web", "status": "ALL"},
    {"tag": [m.DescribeImagesRequestTag(key="stage"), m.DescribeImagesRequestTag(key="team", value="x")],
     "status": "ALL"},
    {"tag": [m.DescribeImagesRequestTag(key="nope")], "status": "ALL"},
]  # fmt: skip


def _answers(env: CloudEnv, image_ids: list[str]) -> list[Any]:
    answers = []
    for query in [*QUERIES, {"image_id": ",".join([*image_ids[:2], "m-missing"]), "status": "ALL"}]:
        body = env.ecs.describe_images(m.DescribeImagesRequest(region_id=env.region, **query)).body.to_map()
        body.pop("RequestId", None)
        answers.append(body)
    for snapshot in env.cloud.ecs.snapshots:
        body = env.ecs.describe_snapshots(m.DescribeSnapshotsRequest(region_id=env.region, snapshot_ids=json.dumps([snapshot]),
                                                                     usage="image")).body.to_map()  # fmt: skip
        body.pop("RequestId", None)
        answers.append(body)
    return answers


def test_indexed_answers_equal_a_full_scan(env: CloudEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given images in several families, statuses and tags (one instance runs from a public image)
    ids = []
    for n, family in zip(range(6), itertools.cycle(["web", "", "api"])):
        ids.append(create_image(env, instance_id=f"i-{n % 3}", image_family=family, image_name=f"img-a{n}"))
        if n % 3 == 2:
            env.cloud.advance(600)  # the instances' snapshots are done: they may be imaged again
    ids.append(create_image(env, instance_id="i-0", image_family="web", image_name="late"))  # still Creating
    _tag(env, ids[0], stage="canary", team="x")
    _tag(env, ids[3], stage="prod")
    # When every query is answered through the indexes, and again by scanning every image
    indexed = _answers(env, ids)
    monkeypatch.setattr(ImageStore, "candidates", lambda self, **_: iter(list(self.values())))
    monkeypatch.setattr(ImageStore, "using_snapshot", lambda self, s: [i for i in self.values()
                                                                       if any(x.snapshot_id == s for x in i.mappings)])  # fmt: skip
    scanned = _answers(env, ids)
    # Then the answers are the same
    assert indexed == scanned
    assert any(a.get("Images", {}).get("Image") for a in indexed)  # the queries did find images


def _raw_describe_images(env: CloudEnv, **params: str) -> Any:
    """DescribeImages with raw query values (the SDK would not send an invalid boolean)."""
    from urllib.parse import urlencode

    import requests

    query = urlencode({"Action": "DescribeImages", "Version": "2014-05-26", "RegionId": env.region, **params})
    return requests.post(f"http://{env.endpoint}/?{query}", timeout=10)


def test_a_bad_filter_value_fails_where_it_did_before(env: CloudEnv) -> None:
    # Given an image tagged stage=x, and queries with an invalid IsPublic
    image_id = create_image(env, instance_id="i-0")
    _tag(env, image_id, stage="x")
    # When a public image reaches that check, even with a tag filter no image matches / Then it fails
    reply = _raw_describe_images(env, Status="ALL", IsPublic="maybe", **{"Tag.1.Key": "nope"})
    assert reply.status_code == 400 and "IsPublic" in reply.text
    # And when no image gets that far (no image is Waiting), there is no error, as before
    assert _raw_describe_images(env, Status="Waiting", IsPublic="maybe").status_code == 200


def test_the_in_process_transport_keeps_only_recent_calls(env: CloudEnv) -> None:
    for _ in range(mock.RECENT_CALLS + 20):
        find_images(env)
    assert mock._mock is not None
    assert len(mock._mock.calls) == mock.RECENT_CALLS
    assert all(len(route.calls) <= mock.RECENT_CALLS for route in mock._mock.registered())
    assert mock._mock.calls[-1].request.headers["x-acs-action"] == "DescribeImages"
    assert len(mock._mock.calls[-3:]) == 3


def test_tuned_gc_is_undone_when_the_last_run_ends() -> None:
    before = gc.get_threshold()
    with tuned_gc():
        assert gc.get_threshold()[0] >= 50_000 and gc.get_freeze_count() > 0
        with tuned_gc(gen0_threshold=10):  # runs overlap: the larger threshold holds
            assert gc.get_threshold()[0] >= 50_000
        assert gc.get_threshold()[0] >= 50_000  # the outer run is still going
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_discarded_sandbox_is_gone_at_once_and_deleted_soon(tmp_path: Any) -> None:
    disk = GuestDisk(disk_id="d-1", device="vda", disk_type="system", size_gib=20, category="cloud_essd", serial="s")
    sandbox = GuestSandbox("i-1", GuestSpec(), [disk], base_dir=str(tmp_path))
    path = sandbox.base_dir
    sandbox.cleanup()
    assert not os.path.exists(path)
    _reaper.drain()
    assert os.listdir(tmp_path) == []  # no trash left behind either


def test_a_local_run_tunes_gc_while_it_runs_and_restores_it_when_closed() -> None:
    from bakery_tools.local import LocalRun

    before = gc.get_threshold()
    run = LocalRun(Scenario.from_mapping({}))
    try:
        assert gc.get_threshold()[0] >= 50_000 and gc.get_freeze_count() > 0
    finally:
        run.close()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
