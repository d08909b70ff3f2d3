"""FerretDB 1.24 on SQLite, with its files at hand: FerretDB, with the answers SQLite gives sooner.

Where `SQLiteShortcuts` can answer exactly (a count, a page's ids, distinct values, value counts,
the matches of a walk) the answer comes from SQLite and the documents are then looked up through
FerretDB by `_id`, the one lookup it pushes down (with the index `tuning` adds, 0.6 ms instead
of a scan). Where it cannot (a filter SQL cannot translate, an array on the filter's path, files
it cannot read), FerretDB answers as it does without them: the shortcuts may make a call
faster, never different. SQL decides a row only where its meaning is MongoDB's (no array on
the filter's path); where FerretDB itself would answer wrongly (ferretdb_filters.py), its
answer is checked document by document, and so are a walk's unsure rows (app/store/matching.py).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from pymongo import DeleteOne
from pymongo.errors import CollectionInvalid

from app.errors import Unavailable
from app.store.engines.ferretdb import FerretDB, checked_match
from app.store.engines.ferretdb_filters import fields_named
from app.store.engines.ferretdb_sqlite import paths, tuning, walk
from app.store.engines.ferretdb_sqlite.shortcuts import (
    FERRETDB_READ_SECONDS,
    LOOKUP_SECONDS,
    SQLiteShortcuts,
    stored_id,
)
from app.store.engines.mongodb import Collection, gathered_lookups

log = logging.getLogger(__name__)

# Lookups by id of one page, sent at once.
LOOKUPS_AT_ONCE = 16


class FerretDBSQLite(FerretDB):
    name = "FerretDB"

    def __init__(self, version: str, directory: Path) -> None:
        super().__init__(version)
        self.directory = directory
        self.shortcuts = SQLiteShortcuts(directory)

    def describe(self) -> str:
        return f"{super().describe()}, its SQLite files read at {self.directory}"

    async def start(self, images: Collection) -> None:
        # FerretDB's version and the files' layout checked first (layout.py): on a mismatch the
        # shortcuts stay off and every answer is FerretDB's.
        await self.shortcuts.start(images)

    def decides(self, condition: Mapping[str, Any]) -> bool:
        return self.shortcuts.decides(condition)

    async def count(self, collection: Collection, condition: Mapping[str, Any]) -> int:
        counted = await self.shortcuts.count(collection, condition)
        return counted if counted is not None else await super().count(collection, condition)

    async def distinct(self, collection: Collection, field: str, condition: Mapping[str, Any]) -> list[Any]:
        found = await self.shortcuts.distinct_values(collection, field, condition)
        return found if found is not None else await super().distinct(collection, field, condition)

    async def value_counts(
        self, collection: Collection, field: str, condition: Mapping[str, Any], *, limit: int
    ) -> list[tuple[Any, int]] | None:
        counted = await self.shortcuts.value_counts(collection, field, condition, limit=limit)
        if counted is None and not self.exact(condition):
            return await super().value_counts(collection, field, condition, limit=limit)
        return counted

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
        plan = None
        if count or sort:
            plan = await self.shortcuts.plan_page(collection, condition, sort=sort, skip=skip, limit=limit)
        total = plan.total if plan is not None and count else None
        if plan is not None and plan.ids is not None:
            documents = await _as_read(collection, plan.ids, plan.revisions, projection)
            if documents is not None:
                return documents, total
        if not self.exact(condition):  # FerretDB's answer, checked (with SQLite's total, if any)
            checked, checked_total = await super().find_page(
                collection, condition, projection, sort=sort, skip=skip, limit=limit, count=count and total is None
            )
            return checked, total if total is not None else checked_total
        found = collection.find(condition, projection, sort=list(sort) or None, skip=skip, limit=limit)
        if count and total is None and sort:
            # A sort reads every match on FerretDB, as long as the count does: side by side
            # the page costs one such read instead of two. FerretDB's own count: the shortcuts
            # asked above gave no total, and would read SQLite again to say so.
            items, total = await asyncio.gather(found.to_list(None), super().count(collection, condition))
            return items, total
        return await found.to_list(None), total

    async def index_keys(self, collection: Collection) -> None:
        # FerretDB reads a range of `_id`s by decoding the whole collection (ferretdb.py); SQLite
        # reads it through the index tuning.py adds on the expression FerretDB keeps `_id` at.
        # The collection must exist first: FerretDB makes its table then.
        if not self.shortcuts.reads(collection):
            return  # its files did not pass the start-up check: nothing here writes to them
        if collection.name not in await collection.database.list_collection_names():
            with suppress(CollectionInvalid):
                await collection.database.create_collection(collection.name)
        try:
            await asyncio.to_thread(tuning.index_ids, self.directory, collection.database.name, collection.name)
        except (OSError, sqlite3.Error) as error:
            # Not FerretDB's files after all (another server at the URI, say): ranges are then
            # read from SQLite without the index, or from FerretDB (`key_range`).
            log.warning("could not index %s in FerretDB's SQLite files: %s", collection.name, error)

    async def key_range(
        self, collection: Collection, *, after: str, below: str | None = None, through: str | None = None, limit: int
    ) -> list[dict[str, Any]]:
        """The `_id`s from SQLite through that index, then each document from FerretDB by its
        `_id` (pushed down, and indexed): a poll of the journal's tail reads the tail only."""
        ids = await self.shortcuts.key_range(collection, after=after, below=below, through=through, limit=limit)
        if ids is None:
            return await super().key_range(collection, after=after, below=below, through=through, limit=limit)
        found = await gathered_lookups(collection, ids, None, LOOKUPS_AT_ONCE)
        return [document for document in found if document is not None]  # gone meanwhile: swept

    async def batches(
        self, collection: Collection, condition: Mapping[str, Any], projection: Mapping[str, Any] | None, size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """In natural order as FerretDB's own cursor gives them, but the matches found by SQLite
        (walk.py): a rare filter then costs one read of SQLite's table and a lookup per match,
        instead of FerretDB decoding every document. Where matches are common (the first page
        fills from few rows), a lookup per match costs more than FerretDB's own read, which then
        answers."""
        if not self.decides(condition):
            async for batch in super().batches(collection, condition, projection, size):
                yield batch
            return
        after = 0
        while True:
            steps = await self.shortcuts.next_page(collection, condition, after=after, limit=size)
            if steps is None and after == 0:  # the files cannot be read: FerretDB walks instead
                async for batch in super().batches(collection, condition, projection, size):
                    yield batch
                return
            if steps is None:
                # Half-way, FerretDB cannot take over: it has no way to start after a row.
                raise Unavailable("The database's files could not be read half-way; try again.", cause="SQLiteFiles")
            if not steps:
                return
            if after == 0 and _dense(steps, size):
                async for batch in super().batches(collection, condition, projection, size):
                    yield batch
                return
            after = steps[-1].rowid
            batch = await _matching(collection, condition, steps, projection)
            if batch:
                yield batch

    async def find_at_paths(
        self,
        collection: Collection,
        files: Sequence[str],
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """As the plain path, but found and read by SQLite through FerretDB's own index on
        `file` (paths.py). FerretDB answers the plain path's `$in` by decoding every document,
        the index unused: `POST /images/check` of 1,000 paths (900 stored) took 0.33-0.83 s
        over 2,000 images, 2.7-6.9 s over 20,000 and 10-40 s over 100,000; read here, 33-183
        ms, 29-227 ms and 70-199 ms (httpx against the real service, 5 checks each; a 2-core
        machine under other load, hence the spread), the statement itself about 20 ms over
        20,000 (60 ms without the index). Looking the 900 found ids up through FerretDB instead, each an index read
        (0.7 ms), would cost more than the whole read here, so a document is looked up only
        for a field SQLite does not read into Python. Where SQLite cannot say for some row (an
        array on the condition's path, an `_id` of a kind not read here) or at all (a
        condition, projection or path it does not take, files not checked), FerretDB answers
        the plain path's `$in`."""
        shown = paths.fields_shown(projection)
        found = None
        if files and shown is not None and all(paths.plain_path(file) for file in files):
            found = await self.shortcuts.at_paths(collection, files, condition, shown_id=shown[0], fields=shown[1])
        if found is None or any(row.unsure or not row.id_known for row in found):
            return await super().find_at_paths(collection, files, condition, projection)
        found.sort(key=lambda row: paths.id_order(row.id))
        unread = [row.id for row in found if row.document is None]
        looked_up = iter(await gathered_lookups(collection, unread, projection, LOOKUPS_AT_ONCE))
        documents = [row.document if row.document is not None else next(looked_up) for row in found]
        # One deleted since SQLite was read: left out, as the plain path's find would.
        return [document for document in documents if document is not None]

    async def delete_by_ids(self, collection: Collection, ids: Sequence[Any]) -> int:
        if ids and await self.shortcuts.one_by_one(collection, len(ids)):
            result = await collection.bulk_write([DeleteOne({"_id": image_id}) for image_id in ids], ordered=False)
            return result.deleted_count
        return await super().delete_by_ids(collection, ids)


def _dense(first_page: list[walk.Step], size: int) -> bool:
    """Whether matches are so common that looking each up costs more than FerretDB reading every
    document: judged from the first page, by how many rows it took to fill (row numbers grow by
    one per insert, so the last one read is about how many rows were read)."""
    if len(first_page) < size:
        return False  # every match is on this page: nothing more to read
    return len(first_page) * LOOKUP_SECONDS > first_page[-1].rowid * FERRETDB_READ_SECONDS


async def _matching(
    collection: Collection, condition: Mapping[str, Any], steps: list[walk.Step], projection: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The documents of a walk's page that match, in its order: the sure ones looked up by id,
    the unsure ones (an array on the filter's path) read and checked here, as MongoDB would
    decide them (FerretDB decides some such filters wrongly: engines/ferretdb_filters.py)."""
    ids = [stored_id(step.id_value, step.id_kind) for step in steps]
    unsure = [image_id for image_id, step in zip(ids, steps, strict=True) if step.unsure or image_id is None]
    confirmed: set[Any] = set()
    if unsure:
        checked = collection.find({"_id": {"$in": unsure}}, dict.fromkeys(fields_named(condition), 1))
        confirmed = {document["_id"] async for document in checked if checked_match(condition, document)}
    wanted = [image_id for image_id, step in zip(ids, steps, strict=True) if not step.unsure or image_id in confirmed]
    found = await gathered_lookups(collection, [i for i in wanted if i is not None], projection, LOOKUPS_AT_ONCE)
    # Deleted since SQLite was read: left out, as a cursor that reached it later would have.
    return [document for document in found if document is not None]


async def _as_read(
    collection: Collection, ids: list[Any], revisions: list[Any] | None, projection: Mapping[str, Any] | None
) -> list[dict[str, Any]] | None:
    """The documents of `ids` in that order, projected; None if one is gone or at another
    revision than `revisions` says."""
    looked_up, hide_revision = _showing_revision(projection)
    found = await gathered_lookups(collection, ids, looked_up, LOOKUPS_AT_ONCE)
    documents = []
    for index, document in enumerate(found):
        if document is None or (revisions is not None and document.get("revision") != revisions[index]):
            return None
        if hide_revision:
            document.pop("revision", None)
        documents.append(document)
    return documents


def _showing_revision(projection: Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, bool]:
    """A projection that shows `revision` too, and whether it must then be hidden again."""
    if projection is None:
        return None, False
    if all(value == 0 for value in projection.values()):  # fields left out
        if projection.get("revision") != 0:
            return projection, False
        return {path: value for path, value in projection.items() if path != "revision"} or None, True
    if projection.get("revision") == 1:
        return projection, False
    return {**projection, "revision": 1}, True
