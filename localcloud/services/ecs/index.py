"""The image store: a dict of images by id that also indexes them by family, name, owner and tag.

Why: DescribeImages used to scan every image for every call (and, per image, every instance). A fleet
of N bakes into one family makes the family N images long and the sweep's tag queries run every
minute, so a 1,000-instance local run spent most of its time in that scan.

What the index is for: choosing *candidates*. Every caller still applies its complete filter to them
(DescribeImages its whole filter chain, DescribeImageFromFamily its status/owner test) and sorts as
before, so an answer can only differ from a full scan if the index missed an image. It cannot while:

* images enter and leave only through the dict operations below (``store[id] = image``, ``del``,
  ``pop``...), which (un)index them;
* an indexed attribute (``family``, ``name``, ``owner_alias``, ``tags``, ``mappings``) changes by
  assignment, which ``Image.__setattr__`` reports here;
* tags also change in place (the image check adds the ``acs:`` system tags with ``setdefault``; tests
  poke them): an image's ``tags`` is a ``TagDict``, a dict that reports its own changes. Mappings are
  only ever replaced.

``check()`` recomputes the indexes from scratch and compares; the tests call it after tagging,
untagging, renaming, re-familying and deleting, and after a whole local run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.services.ecs.models import Image

INDEXED_FIELDS = ("family", "name", "owner_alias")
INDEXED_ATTRIBUTES = frozenset((*INDEXED_FIELDS, "tags", "mappings"))


class TagDict(dict[str, str]):
    """An image's tags: a plain dict to every reader, that re-indexes its image when changed in place."""

    def __init__(self, owner: Image, tags: Any = ()) -> None:
        super().__init__(tags)
        self._owner = owner

    def __reduce__(self) -> Any:  # copies and pickles are plain dicts, tied to no image or store
        return dict, (dict(self),)

    def _changing(self, change: Any, *args: Any) -> Any:
        store = self._owner._store
        if store is None:
            return change(self, *args)
        store.before_change(self._owner)
        try:
            return change(self, *args)
        finally:
            store.after_change(self._owner)

    def __setitem__(self, key: str, value: str) -> None:
        self._changing(dict.__setitem__, key, value)

    def __delitem__(self, key: str) -> None:
        self._changing(dict.__delitem__, key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self._changing(dict.setdefault, key, default)

    def pop(self, key: str, *default: Any) -> Any:
        return self._changing(dict.pop, key, *default)

    def popitem(self) -> tuple[str, str]:
        return self._changing(dict.popitem)

    def clear(self) -> None:
        self._changing(dict.clear)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._changing(lambda d: dict.update(d, *args, **kwargs))

    def __ior__(self, other: Any) -> TagDict:  # type: ignore[override,misc]
        self.update(other)
        return self


def own_tags(image: Image, tags: Any) -> TagDict:
    """`tags` as the TagDict of `image` (a copy, unless it already is that)."""
    if isinstance(tags, TagDict) and tags._owner is image:
        return tags
    return TagDict(image, tags)


class ImageStore(dict[str, "Image"]):
    """dict[image id, Image] with secondary indexes (each value: a set of image ids)."""

    def __init__(self) -> None:
        super().__init__()
        self._by_field: dict[str, dict[str, set[str]]] = {name: {} for name in INDEXED_FIELDS}
        self._by_tag_key: dict[str, set[str]] = {}
        self._by_tag: dict[tuple[str, str], set[str]] = {}
        self._by_snapshot: dict[str, set[str]] = {}  # the images whose disk mappings name a snapshot
        self._positions: dict[str, int] = {}  # dict order, for answers that list images in it
        self._inserted = 0

    # -- keeping the indexes ---------------------------------------------------------------------

    def __setitem__(self, image_id: str, image: Image) -> None:
        old = self.get(image_id)
        if old is not None:
            self._unindex(old)
            old._store = None
        else:
            self._inserted += 1
            self._positions[image_id] = self._inserted  # replacing a key keeps its place, as in a dict
        super().__setitem__(image_id, image)
        object.__setattr__(image, "tags", own_tags(image, image.tags))  # e.g. a deep copy's plain dict
        image._store = self
        self._index(image)

    def __delitem__(self, image_id: str) -> None:
        image = self[image_id]
        self._unindex(image)
        image._store = None
        del self._positions[image_id]
        super().__delitem__(image_id)

    def pop(self, image_id: str, *default: Any) -> Any:
        if image_id not in self:
            if default:
                return default[0]
            raise KeyError(image_id)
        image = self[image_id]
        del self[image_id]
        return image

    def popitem(self) -> tuple[str, Image]:
        image_id = next(reversed(self))
        return image_id, self.pop(image_id)

    def setdefault(self, image_id: str, default: Any = None) -> Any:
        if image_id not in self:
            self[image_id] = default
        return self[image_id]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for image_id, image in dict(*args, **kwargs).items():
            self[image_id] = image

    def clear(self) -> None:
        for image_id in list(self):
            del self[image_id]

    def __ior__(self, other: Any) -> ImageStore:  # type: ignore[override,misc]
        self.update(other)
        return self

    def before_change(self, image: Image) -> None:
        """Image.__setattr__, before an indexed attribute of a stored image changes."""
        self._unindex(image)

    def after_change(self, image: Image) -> None:
        self._index(image)

    def _index(self, image: Image) -> None:
        image_id = image.image_id
        for name, index in self._by_field.items():
            index.setdefault(getattr(image, name), set()).add(image_id)
        for key, value in image.tags.items():
            self._by_tag_key.setdefault(key, set()).add(image_id)
            self._by_tag.setdefault((key, value), set()).add(image_id)
        for mapping in image.mappings:
            if mapping.snapshot_id:
                self._by_snapshot.setdefault(mapping.snapshot_id, set()).add(image_id)

    def _unindex(self, image: Image) -> None:
        image_id = image.image_id
        for name, index in self._by_field.items():
            _discard(index, getattr(image, name), image_id)
        for key, value in image.tags.items():
            _discard(self._by_tag_key, key, image_id)
            _discard(self._by_tag, (key, value), image_id)
        for mapping in image.mappings:
            _discard(self._by_snapshot, mapping.snapshot_id, image_id)

    # -- asking ----------------------------------------------------------------------------------

    def with_field(self, name: str, value: str) -> list[Image]:
        """The images whose `name` (family, name or owner_alias) is `value`."""
        return [self[i] for i in self._by_field[name].get(value, ())]

    def count_with(self, name: str, value: str) -> int:
        return len(self._by_field[name].get(value, ()))

    def using_snapshot(self, snapshot_id: str) -> list[Image]:
        """The images with a disk mapping on `snapshot_id`, in the order they were stored."""
        ids = self._by_snapshot.get(snapshot_id, ())
        return sorted((self[i] for i in ids), key=_position_key(self))

    def candidates(
        self,
        *,
        ids: Iterable[str] | None = None,
        family: str | None = None,
        tags: list[tuple[str, str]] | None = None,
        owners: Iterable[str] | None = None,
    ) -> Iterator[Image]:
        """A superset of the images matching every given criterion (the smallest index that applies).
        Tag criteria as Tag.N filters: a key, with a value unless the value is empty. Callers filter again."""
        # Each choice is (how many ids, the ids): only the smallest is read, so a broad one (every image
        # of the account, for ImageOwnerAlias) costs nothing when a narrow one (a family, a tag) applies.
        choices: list[tuple[int, Iterable[str]]] = []
        if ids is not None:
            known = [i for i in dict.fromkeys(ids) if i in self]
            choices.append((len(known), known))
        if family:
            members = self._by_field["family"].get(family, set())
            choices.append((len(members), members))
        for key, value in tags or ():
            tagged = self._by_tag.get((key, value), set()) if value else self._by_tag_key.get(key, set())
            choices.append((len(tagged), tagged))
        if owners is not None:
            by_owner = [self._by_field["owner_alias"].get(owner, set()) for owner in set(owners)]
            # An image has one owner, so these sets are disjoint and their sizes add up.
            choices.append((sum(len(o) for o in by_owner), itertools.chain.from_iterable(by_owner)))
        if not choices:
            return iter(list(self.values()))
        _, smallest = min(choices, key=lambda choice: choice[0])
        return iter([self[i] for i in list(smallest)])

    def check(self) -> list[str]:
        """Differences between the indexes and a rebuild from the images themselves (empty: consistent)."""
        fresh = ImageStore()
        for image in self.values():
            fresh._index(image)
        problems = []
        if fresh._by_field != self._by_field:
            problems.append(f"field index: {self._by_field} != rebuilt {fresh._by_field}")
        if fresh._by_tag_key != self._by_tag_key:
            problems.append(f"tag key index: {self._by_tag_key} != rebuilt {fresh._by_tag_key}")
        if fresh._by_tag != self._by_tag:
            problems.append(f"tag index: {self._by_tag} != rebuilt {fresh._by_tag}")
        if fresh._by_snapshot != self._by_snapshot:
            problems.append(f"snapshot index: {self._by_snapshot} != rebuilt {fresh._by_snapshot}")
        problems += [f"{i}: not attached to this store" for i, image in self.items() if image._store is not self]
        return problems


def _position_key(store: ImageStore) -> Any:
    return lambda image: store._positions[image.image_id]


def _discard(index: dict[Any, set[str]], key: Any, image_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(image_id)
        if not ids:
            del index[key]  # keep the index as small as the live images: no empty sets left behind
