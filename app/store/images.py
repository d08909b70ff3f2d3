"""The images collection, asked in the domain's words.

Every call names an image by its `_id` where it can (the lookup every engine answers through an
index), and changes a document by replacing it whole, by `_id` alone: callers hold the image's
lease (app/domain/writes/leases.py), which is what keeps two writers apart on every engine (see
app/store/engines/ferretdb.py for why a condition on the write would not). Call inside the
store's `errors()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.errors import WriteError

from app.models import Image
from app.store import value_counts
from app.store.database import Database
from app.store.engines.mongodb import Collection, MongoDB
from app.store.errors import DUPLICATE_KEY
from app.store.together import InsertsTogether

# Documents per batch read when matches are grouped in the service.
BATCH_FOR_GROUPS = 1000

# Each index serves a query the GUI or the scripts make all the time: a time range or a page
# sorted by time (with `_id` breaking ties, as the query compiler sorts), the same per owner,
# the upsert by `file`, and `GET /fields` over the derived `dataKeys`.
#
# `file` is unique on its own, not per owner: it is the storage key, so two documents with one
# `file` would share one stored file. Owners never share a path anyway, since per-user scope
# puts each owner's files under their own folder. It is also, name and all, the index the
# legacy service's mongoose schema created, so a legacy database already has it.
IMAGE_INDEXES = [
    IndexModel([("time", ASCENDING), ("_id", ASCENDING)], name="time_1__id_1"),
    IndexModel([("userId", ASCENDING), ("time", ASCENDING), ("_id", ASCENDING)], name="userId_1_time_1__id_1"),
    IndexModel([("file", ASCENDING)], name="file_1", unique=True),
    IndexModel([("dataKeys", ASCENDING)], name="dataKeys_1"),
    # Finding identical files: filters on `checksum` and the duplicate groups.
    IndexModel([("checksum", ASCENDING)], name="checksum_1"),
]

# What became of each document of an insert: stored, refused because its path or id is taken,
# or refused for its content.
Inserted = Literal["stored", "taken", "refused"]


@dataclass(frozen=True, kw_only=True)
class FieldUpdate:
    """Fields set on one image, optionally raising its revision. With `missing`, only while that
    field is still absent from it (a write in between stored something newer); without, by
    `_id` alone, the caller having read the image under its lease (the one write every engine
    answers through an index)."""

    image_id: Any
    fields: dict[str, Any]
    missing: str | None = None
    raise_revision: bool = False


@dataclass(frozen=True, kw_only=True)
class DuplicateGroup:
    checksum: str
    count: int
    ids: list[Any] = field(default_factory=list)


class ImageStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        # Concurrent uploads' documents go to the database together.
        self._inserts = InsertsTogether(self._collection)

    def _collection(self) -> Collection:
        return self._database.collection(Image.Settings.name)

    @property
    def _engine(self) -> MongoDB:
        return self._database.engine  # known once the database is reached

    # -- one image ------------------------------------------------------------------------------

    async def by_id(self, image_id: Any, projection: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        return await self._collection().find_one({"_id": image_id}, projection)

    async def at_path(self, file: str, projection: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The image stored at `file` (one at most: `file` is unique)."""
        return await self._collection().find_one({"file": file}, projection)

    async def first(
        self, condition: Mapping[str, Any], projection: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Any one match, or None."""
        found, _ = await self._engine.find_page(
            self._collection(), condition, projection, sort=[], skip=0, limit=1, count=False
        )
        return found[0] if found else None

    async def insert(self, document: dict[str, Any]) -> bool:
        """Store a new image's document; False if its path or id is taken. Inserts of concurrent
        callers go to the database as one command."""
        (refusal,) = await self._inserts.insert_many([document])
        if refusal is None:
            return True
        if refusal.get("code") == DUPLICATE_KEY:
            return False
        raise WriteError(refusal.get("errmsg", "write error"), refusal.get("code"), refusal)

    async def insert_each(self, documents: list[dict[str, Any]]) -> list[Inserted]:
        """Store new images' documents in one unordered insert; what became of each."""
        refusals = await self._inserts.insert_many(documents)
        return [
            "stored" if refusal is None else "taken" if refusal.get("code") == DUPLICATE_KEY else "refused"
            for refusal in refusals
        ]

    async def replace(self, document: dict[str, Any]) -> bool:
        """Replace the image's document whole, by `_id`; False if it is gone."""
        return bool((await self._collection().replace_one({"_id": document["_id"]}, document)).matched_count)

    async def replace_each(self, documents: Sequence[dict[str, Any]]) -> int:
        """`replace` each, in order; how many were there. A value the database refuses fails the
        first write it is in, and nothing after it is written."""
        return await self._engine.replace_each(self._collection(), documents)

    async def remove_field(self, image_id: Any, name: str, value: Any) -> None:
        """Remove the field `name` from the image while it still holds `value`."""
        await self._collection().update_one({"_id": image_id, name: value}, {"$unset": {name: ""}})

    async def set_missing(self, updates: Sequence[FieldUpdate]) -> int:
        """Apply each update (see FieldUpdate); how many images changed."""
        requests = [
            UpdateOne(
                {"_id": update.image_id, **({update.missing: {"$exists": False}} if update.missing else {})},
                {"$set": update.fields, **({"$inc": {"revision": 1}} if update.raise_revision else {})},
            )
            for update in updates
        ]
        return (await self._engine.write(self._collection(), requests, ordered=False)).modified

    async def delete(self, image_id: Any) -> bool:
        """Delete the image's document; False if it was gone."""
        return bool((await self._collection().delete_one({"_id": image_id})).deleted_count)

    # -- many images ----------------------------------------------------------------------------

    async def count(self, condition: Mapping[str, Any]) -> int:
        return await self._engine.count(self._collection(), condition)

    async def page(
        self,
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
        *,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int,
        count: bool,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """The page of matches and, if `count`, the number of all of them where that costs no
        extra read (else None: the caller counts, or reads it off the page)."""
        return await self._engine.find_page(
            self._collection(), condition, projection, sort=sort, skip=skip, limit=limit, count=count
        )

    async def by_ids(
        self, ids: Sequence[Any], condition: Mapping[str, Any], projection: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The documents of `ids` that match `condition`, in `_id` order."""
        return await self._engine.find_by_ids(self._collection(), ids, condition, projection)

    async def at_paths(
        self, files: Sequence[str], condition: Mapping[str, Any], projection: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The documents stored at `files` that match `condition`, in `_id` order (one per path at
        most: `file` is unique)."""
        return await self._engine.find_at_paths(self._collection(), files, condition, projection)

    async def delete_by_ids(self, ids: Sequence[Any]) -> int:
        return await self._engine.delete_by_ids(self._collection(), ids)

    def batches(
        self, condition: Mapping[str, Any], projection: Mapping[str, Any] | None, size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every match once, `size` at a time, each batch read once the previous one is done
        with, in the order the engine reads fastest: for work that does not change what matches."""
        return self._engine.batches(self._collection(), condition, projection, size)

    def pages_by_id(
        self, condition: Mapping[str, Any], projection: Mapping[str, Any] | None, size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every match once in `_id` order, `size` at a time, each page found once the previous
        one is done with: for work that changes the matches as it goes."""
        return self._engine.pages_by_id(self._collection(), condition, projection, size)

    def in_order(
        self,
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
        sort: Sequence[tuple[str, int]],
        size: int,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every match once in `sort` order (as `batches` when there is none), `size` at a time."""
        return self._engine.in_order(self._collection(), condition, projection, sort, size)

    async def distinct(self, field: str, condition: Mapping[str, Any]) -> list[Any]:
        """Each value of `field` among the matches once (an array's elements singly)."""
        return await self._engine.distinct(self._collection(), field, condition)

    async def value_counts(
        self, path: str, condition: Mapping[str, Any], *, limit: int, arrays: bool
    ) -> list[tuple[Any, int]]:
        """The `limit` most frequent values at `path` among the matches, with how many matches
        hold each (an array's distinct elements once each), most frequent first. `arrays=False`
        for a field only ever written with a plain value, or nothing."""
        if not arrays:
            # A system field holds a plain string, or nothing (null, or missing) on images that
            # have none to count: one more is asked for, in case one of them is null.
            counted = await self._engine.value_counts(self._collection(), path, condition, limit=limit + 1)
            if counted is not None:
                return value_counts.ranked([(value, n) for value, n in counted if value is not None], limit)
            present = value_counts.all_of([condition, {path: {"$exists": True, "$ne": None}}])
            return await value_counts.count_values(self._collection(), present, path, limit=limit, arrays=False)
        counted = await self._engine.value_counts(self._collection(), path, condition, limit=limit)
        if counted is not None:
            return value_counts.ranked(counted, limit)
        return await value_counts.count_values(self._collection(), condition, path, limit=limit)

    async def duplicate_groups(
        self, condition: Mapping[str, Any], *, skip: int, limit: int, ids_each: int
    ) -> list[DuplicateGroup]:
        """Groups of matches that hold one checksum, by checksum; each with its full count and
        the ids of at most `ids_each` of its images."""
        if not self._engine.exact(condition):
            return await self._duplicates_checked(condition, skip=skip, limit=limit, ids_each=ids_each)
        collection = self._collection()
        pipeline: list[dict[str, Any]] = [
            {"$match": value_counts.all_of([condition, {"checksum": {"$type": "string"}}])},
            {"$group": {"_id": "$checksum", "count": {"$sum": 1}}},
            {"$match": {"count": {"$gt": 1}}},
            {"$sort": {"_id": 1}},
            {"$skip": skip},
            {"$limit": limit},
        ]
        groups = await (await collection.aggregate(pipeline)).to_list(None)
        found = []
        for group in groups:
            members = collection.find(
                value_counts.all_of([condition, {"checksum": group["_id"]}]), {"_id": 1}, limit=ids_each
            )
            ids = [document["_id"] for document in await members.to_list(None)]
            found.append(DuplicateGroup(checksum=group["_id"], count=group["count"], ids=ids))
        return found

    async def _duplicates_checked(
        self, condition: Mapping[str, Any], *, skip: int, limit: int, ids_each: int
    ) -> list[DuplicateGroup]:
        """`duplicate_groups` where the engine checks its matches itself: grouped here, over the
        matches' checksums (one entry per distinct checksum held in memory)."""
        counts: dict[str, int] = {}
        members: dict[str, list[Any]] = {}
        async for batch in self.batches(condition, {"checksum": 1}, BATCH_FOR_GROUPS):
            for document in batch:
                checksum = document.get("checksum")
                if not isinstance(checksum, str):
                    continue
                counts[checksum] = counts.get(checksum, 0) + 1
                kept = members.setdefault(checksum, [])
                if len(kept) < ids_each:
                    kept.append(document["_id"])
        duplicated = sorted(checksum for checksum, count in counts.items() if count > 1)
        return [
            DuplicateGroup(checksum=checksum, count=counts[checksum], ids=members[checksum])
            for checksum in duplicated[skip : skip + limit]
        ]
