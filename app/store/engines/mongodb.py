"""MongoDB: the plain path. Every other engine is this one with what it needs changed.

Everything here is what MongoDB (a standalone server or a replica set) does with the wire
protocol as written: a filter, sort, range or `$in` is answered through the indexes, a bulk
write is split by the driver, an update is atomic per document. The other engines
(app/store/engines/ferretdb.py, ferretdb_sqlite/) override the calls their server answers
differently, each with that server's behaviour written beside the override.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import DeleteOne, IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import OperationFailure

log = logging.getLogger(__name__)

Collection = AsyncCollection[dict[str, Any]]
Write = UpdateOne | ReplaceOne[dict[str, Any]] | DeleteOne


@dataclass(frozen=True)
class Written:
    matched: int
    modified: int


class MongoDB:
    """What the store asks of the server, as MongoDB answers it."""

    name = "MongoDB"
    # The driver splits a bulk write at the server's own limit (100,000 statements).
    max_statements_per_write: int | None = None

    def describe(self) -> str:
        return self.name

    async def start(self, images: Collection) -> None:
        """Work the engine does once the database is reached, before requests are served."""

    # -- errors -----------------------------------------------------------------------------------

    def error_text(self, message: str) -> str:
        """A server's error message as a client may read it."""
        return message.rstrip(".")

    # -- indexes --------------------------------------------------------------------------------

    async def ensure_indexes(self, collection: Collection, indexes: list[IndexModel]) -> None:
        """Create the missing indexes.

        An index is present when one has its name or its keys (a database the legacy service
        created has its own on `file`; MongoDB refuses a second index on the same keys). One the
        server cannot build, because of the documents already stored or an older index in the
        way, is logged and skipped: the service works without it, slower or less guarded, and
        refusing to start would leave the team with no service at all.
        """
        existing = await collection.index_information()
        keys = {_keys(info["key"]) for info in existing.values()}
        for index in indexes:
            document = index.document
            if document["name"] in existing or _keys(document["key"].items()) in keys:
                continue
            try:
                await self.create_index(collection, index)
            except OperationFailure as error:
                log.error("index %s could not be created, the service runs without it: %s", document["name"], error)

    async def create_index(self, collection: Collection, index: IndexModel) -> None:
        # One per command, so that one the server cannot build is skipped alone (and FerretDB
        # needs it: app/store/engines/ferretdb.py, "Indexes").
        await collection.create_indexes([index])

    # -- reads ----------------------------------------------------------------------------------

    def exact(self, condition: Mapping[str, Any]) -> bool:
        """Whether the server answers `condition` as MongoDB does (else the engine checks what it
        finds, and aggregations over the matches are made in the service)."""
        return True

    def decides(self, condition: Mapping[str, Any]) -> bool:
        """Whether a cheaper way than the server's own read answers `condition` (none here)."""
        return False

    async def count(self, collection: Collection, condition: Mapping[str, Any]) -> int:
        return await collection.count_documents(condition)

    async def distinct(self, collection: Collection, field: str, condition: Mapping[str, Any]) -> list[Any]:
        return await collection.distinct(field, condition)

    async def value_counts(
        self, collection: Collection, field: str, condition: Mapping[str, Any], *, limit: int
    ) -> list[tuple[Any, int]] | None:
        """How many matches hold each value at `field`, an array's distinct elements once each:
        every value at least as frequent as the `limit`-th. None: the caller aggregates."""
        return None

    async def find_page(
        self,
        collection: Collection,
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
        found = collection.find(condition, projection, sort=list(sort) or None, skip=skip, limit=limit)
        return await found.to_list(None), None

    async def find_by_ids(
        self,
        collection: Collection,
        ids: Sequence[Any],
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The documents of `ids` that match `condition`, in `_id` order."""
        return await self._find_among(collection, "_id", ids, condition, projection)

    async def find_at_paths(
        self,
        collection: Collection,
        files: Sequence[str],
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The documents at `files` that match `condition`, in `_id` order: one find, answered
        through the unique index on `file` (so at most one document per path)."""
        return await self._find_among(collection, "file", files, condition, projection)

    async def _find_among(
        self,
        collection: Collection,
        field: str,
        values: Sequence[Any],
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """The documents whose unique `field` is one of `values` and that match `condition`, in
        `_id` order: one `$in`, through `find_page` (so an engine's checks of a page apply)."""
        if not values:
            return []
        listed = {field: {"$in": list(values)}}
        among = {"$and": [condition, listed]} if condition else listed
        found, _ = await self.find_page(
            collection, among, projection, sort=[("_id", 1)], skip=0, limit=len(values), count=False
        )
        return found

    async def batches(
        self, collection: Collection, condition: Mapping[str, Any], projection: Mapping[str, Any] | None, size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every match, `size` at a time, each batch asked for once the previous one is done
        with. Paged by `_id` (the index answers each page): no cursor is kept open while the
        caller works on a batch, so a slow batch never loses its place."""
        async for batch in self.pages_by_id(collection, condition, projection, size):
            yield batch

    async def pages_by_id(
        self, collection: Collection, condition: Mapping[str, Any], projection: Mapping[str, Any] | None, size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The matches of `condition` in `_id` order, `size` at a time, each page asked for once
        the previous one is done with: for work that changes the matches as it goes."""
        after: Any = None
        while True:
            page = condition if after is None else {"$and": [condition, {"_id": {"$gt": after}}]}
            batch, _ = await self.find_page(
                collection, page, projection, sort=[("_id", 1)], skip=0, limit=size, count=False
            )
            if not batch:
                return
            after = batch[-1]["_id"]
            yield batch

    async def in_order(
        self,
        collection: Collection,
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
        sort: Sequence[tuple[str, int]],
        size: int,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every match in `sort` order (any order when none), `size` at a time: one read."""
        if not sort:
            async for batch in self.batches(collection, condition, projection, size):
                yield batch
            return
        found = collection.find(condition, projection, sort=list(sort), batch_size=size)
        async for batch in in_batches(found, size):
            yield batch

    # -- writes ---------------------------------------------------------------------------------

    async def index_keys(self, collection: Collection) -> None:
        """Make reads of `_id` ranges (`key_range`) use an index; MongoDB's `_id` index does."""

    async def key_range(
        self, collection: Collection, *, after: str, below: str | None = None, through: str | None = None, limit: int
    ) -> list[dict[str, Any]]:
        """The documents whose (text) `_id` is after `after` and below `below` or up to `through`,
        in `_id` order, `limit` at most: an index range here."""
        upper = {"$lt": below} if below is not None else {"$lte": through} if through is not None else {}
        found = collection.find({"_id": {"$gt": after, **upper}}, sort=[("_id", 1)], limit=limit)
        return await found.to_list(None)

    async def write(self, collection: Collection, requests: Sequence[Write], *, ordered: bool) -> Written:
        """A bulk write of `requests`, split where the engine needs it; the totals.

        Ordered, a failing part stops the rest, as one ordered bulk write would.
        """
        if not requests:
            return Written(matched=0, modified=0)
        step = self.max_statements_per_write or len(requests)
        matched = modified = 0
        for start in range(0, len(requests), step):
            result = await collection.bulk_write(list(requests[start : start + step]), ordered=ordered)
            matched, modified = matched + result.matched_count, modified + result.modified_count
        return Written(matched=matched, modified=modified)

    async def replace_each(self, collection: Collection, documents: Sequence[dict[str, Any]]) -> int:
        """Replace each document by its `_id`, in order; how many matched. A value the server
        refuses fails the first write it is in, and none after it is made."""
        written = await self.write(
            collection, [ReplaceOne({"_id": doc["_id"]}, doc) for doc in documents], ordered=True
        )
        return written.matched

    async def delete_by_ids(self, collection: Collection, ids: Sequence[Any]) -> int:
        if not ids:
            return 0
        return (await collection.delete_many({"_id": {"$in": list(ids)}})).deleted_count


async def in_batches(
    cursor: AsyncCursor[dict[str, Any]] | AsyncIterator[dict[str, Any]], size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """The cursor's documents, `size` at a time (the driver fetches them as they are asked for)."""
    batch: list[dict[str, Any]] = []
    async for document in cursor:
        batch.append(document)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _keys(pairs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """An index's key pattern, comparable whether a server gave its directions as ints or floats."""
    return tuple((name, int(way) if isinstance(way, (int, float)) else way) for name, way in pairs)


async def gathered_lookups(collection: Collection, ids: Sequence[Any], projection: Any, at_once: int) -> list[Any]:
    """`find_one` by each `_id`, `at_once` side by side, in the order of `ids`."""
    slots = asyncio.Semaphore(at_once)

    async def one(image_id: Any) -> dict[str, Any] | None:
        async with slots:
            return await collection.find_one({"_id": image_id}, projection)

    return list(await asyncio.gather(*(one(image_id) for image_id in ids)))
