"""Snapshots: a registry (`snapshots`, one entry per owner and name) and a collection of frozen
images per snapshot (`snapshot_<id>`, keyed by image id).

Why a collection per snapshot: FerretDB 1.24 filters in its own process after reading a whole
collection, so one shared collection would make every page of every snapshot read all of
them; keyed by image id, a page, a diff or an export reads its own snapshot in `_id` order.
Deleting a snapshot removes its entry first; its collection is then a leftover, dropped at once
or, after a crash, by the next sweep (app/domain/datasets/kept.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel
from pymongo.errors import DuplicateKeyError

from app.store.database import Database
from app.store.engines.mongodb import Collection, in_batches

REGISTRY = "snapshots"
FROZEN_PREFIX = "snapshot_"
INDEXES = [IndexModel([("owner", ASCENDING), ("name", ASCENDING)], name="owner_1_name_1", unique=True)]


def _frozen_name(name: str) -> bool:
    return name.startswith(FROZEN_PREFIX) and ObjectId.is_valid(name[len(FROZEN_PREFIX) :])


class SnapshotStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def _registry(self) -> Collection:
        return await self._database.indexed(REGISTRY, INDEXES)

    def _frozen(self, snapshot_id: Any) -> Collection:
        return self._database.collection(f"{FROZEN_PREFIX}{snapshot_id}", keep=False)

    async def register(self, entry: dict[str, Any]) -> bool:
        """Add an unfinished snapshot (`{_id, owner, name, …}`); False if the owner has one of that name."""
        try:
            await (await self._registry()).insert_one(entry)
        except DuplicateKeyError:
            return False
        return True

    async def finish(self, snapshot_id: Any, count: int, version: str) -> None:
        await (await self._registry()).update_one({"_id": snapshot_id}, {"$set": {"count": count, "version": version}})

    async def set_version(self, snapshot_id: Any, version: str) -> None:
        """Record the version of a snapshot made before versions were (each writer sets the same)."""
        await (await self._registry()).update_one({"_id": snapshot_id}, {"$set": {"version": version}})

    async def unmarked(self) -> list[Any]:
        """The ids of snapshots whose images are not all marked yet (made before marks were)."""
        found = (await self._registry()).find({"marked": {"$ne": True}}, {"_id": 1})
        return [document["_id"] async for document in found]

    async def set_marked(self, snapshot_id: Any) -> None:
        await (await self._registry()).update_one({"_id": snapshot_id}, {"$set": {"marked": True}})

    async def every_id(self) -> list[Any]:
        """Every snapshot's id, whoever's, finished or not."""
        found = (await self._registry()).find({}, {"_id": 1})
        return [document["_id"] async for document in found]

    async def of_owner(self, owner: str | None) -> list[dict[str, Any]]:
        found = (await self._registry()).find({"owner": owner}, sort=[("created", ASCENDING)])
        return await found.to_list(None)

    async def by_id(self, snapshot_id: Any) -> dict[str, Any] | None:
        return await (await self._registry()).find_one({"_id": snapshot_id})

    async def get(self, owner: str | None, name: str) -> dict[str, Any] | None:
        return await (await self._registry()).find_one({"owner": owner, "name": name})

    async def unregister(self, snapshot_id: Any) -> None:
        """Remove the snapshot's entry: from here on it is no more (its frozen images and their
        marks are leftovers, `leftovers` finds them)."""
        await (await self._registry()).delete_one({"_id": snapshot_id})

    async def leftovers(self) -> list[Any]:
        """The ids of frozen collections no entry names: of snapshots deleted (or whose
        creation was undone) whose frozen images are not dropped yet. The collections are
        listed before the registry is read: a snapshot is registered before its collection is
        made, so one made meanwhile is never taken for a leftover."""
        names = await self._database.client[self._database.name].list_collection_names()
        ids = [ObjectId(name[len(FROZEN_PREFIX) :]) for name in names if _frozen_name(name)]
        registered = set(await self.every_id())
        return [snapshot_id for snapshot_id in ids if snapshot_id not in registered]

    async def drop_frozen(self, snapshot_id: Any) -> None:
        await self._frozen(snapshot_id).drop()

    async def freeze(self, snapshot_id: Any, documents: list[dict[str, Any]]) -> None:
        await self._frozen(snapshot_id).insert_many(documents, ordered=False)

    async def frozen_by_ids(
        self, snapshot_id: Any, image_ids: Sequence[Any], projection: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The frozen images of `image_ids` the snapshot holds."""
        if len(image_ids) == 1:  # a write of one image: the plain lookup by `_id`, cheapest everywhere
            found = await self._frozen(snapshot_id).find_one({"_id": image_ids[0]}, projection)
            return [] if found is None else [found]
        return await self._database.engine.find_by_ids(self._frozen(snapshot_id), image_ids, {}, projection)

    async def frozen_page(self, snapshot_id: Any, *, skip: int, limit: int) -> list[dict[str, Any]]:
        """Frozen images in image-id order."""
        found = self._frozen(snapshot_id).find({}, sort=[("_id", ASCENDING)], skip=skip, limit=limit)
        return await found.to_list(None)

    async def frozen(
        self, snapshot_id: Any, projection: Mapping[str, Any] | None, size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every frozen image in image-id order, `size` at a time, from one cursor."""
        found = self._frozen(snapshot_id).find({}, projection, sort=[("_id", ASCENDING)], batch_size=size)
        async for batch in in_batches(found, size):
            yield batch
