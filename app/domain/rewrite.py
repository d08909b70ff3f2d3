"""Changing metadata: read the document, compute the new one here, replace it whole.

Callers hold the image's lease (app/domain/leases.py), so no other writer interleaves. Every
write raises the document's `revision` (documents written elsewhere, such as the legacy
service's, have none: revision 0), which clients see as the ETag and may name in `If-Match` to
change only the state they read.

Replacements name the document by its `_id` alone (`unchanged`). A condition on the revision
read would stop, on MongoDB, a writer that ignores leases (the legacy service running against
the same database at the same time), but FerretDB pushes a filter down to its storage only when
it is a lone `_id` equality: with the revision beside it, every write read the whole collection
(a PATCH of one image among 20,000: 724 ms, of which the write ~600 ms), and a bulk change
grew with the square of the collection. On FerretDB the condition would not make the write
atomic anyway (an update reads, then writes in a second step). A replacement that matches
nothing (the image was deleted by such a writer) reads again, a bounded number of times.

Why whole documents, not `$set` of the keys that change: FerretDB 1.24 (the test and
`make run` database) compares an embedded document with the one it would replace by values
only, ignoring keys, and silently skips the write when they look alike, even beside other
changes in the same update: `$set: {"data": {"y": 1}}` leaves `{"x": 1}` in place, and so does
`$set: {"data.box": {"y": 1}}` over `{"box": {"x": 1}}`. Replacing the whole document is
honoured by FerretDB and MongoDB alike.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson import ObjectId
from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection

from app.db import Database, pages_by_id, write_in_parts
from app.domain.data_keys import data_keys
from app.domain.leases import Leases, path_key
from app.domain.query import all_of
from app.errors import Conflict, StaleRevision

BATCH = 500
MAX_ATTEMPTS = 10
REVISION = "revision"

DataChange = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Rewritten:
    matched: int
    modified: int


def merge(to_set: Mapping[str, Any], to_unset: list[str]) -> DataChange:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        merged = {key: value for key, value in data.items() if key not in to_unset}
        merged.update(to_set)
        return merged

    return change


def replace(new_data: dict[str, Any]) -> DataChange:
    return lambda _: new_data


def revision_of(document: Mapping[str, Any]) -> int:
    revision = document.get(REVISION)
    return revision if isinstance(revision, int) and not isinstance(revision, bool) else 0


def unchanged(document: Mapping[str, Any]) -> dict[str, Any]:
    """The filter of a write of `document`, read under its lease: its `_id` (see above)."""
    return {"_id": document["_id"]}


def next_revision(document: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """`document` with `fields` changed and its revision raised: what replaces it."""
    return {**document, **fields, REVISION: revision_of(document) + 1}


def check_revision(document: Mapping[str, Any], revisions: Collection[int] | None) -> None:
    """StaleRevision unless `document` is at one of `revisions` (None: any will do)."""
    if revisions is not None and revision_of(document) not in revisions:
        raise StaleRevision(
            f"Image {document['_id']} is at revision {revision_of(document)}, not the one given; "
            "read it again before changing it."
        )


async def pause(attempt: int) -> None:
    """A short random wait before attempt `attempt + 1`, longer after each lost race."""
    await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))


def kept_changing(what: str) -> Conflict:
    return Conflict(f"{what} kept changing while this change was being applied; try again.")


async def rewrite_one(
    collection: AsyncCollection[dict[str, Any]],
    condition: Mapping[str, Any],
    change: DataChange,
    *,
    revisions: Collection[int] | None = None,
) -> dict[str, Any] | None:
    """Apply `change` to the data of the one image `condition` selects; the image as it now is.

    None if there is no such image. With `revisions`, the image must be at one of them when
    the change is written, else StaleRevision: the client's copy is out of date. The caller
    holds the image's lease.
    """
    document, _ = await _apply(collection, condition, change, revisions=revisions)
    return document


async def rewrite_many(
    collection: AsyncCollection[dict[str, Any]],
    condition: Mapping[str, Any],
    change: DataChange,
    *,
    database: Database,
    leases: Leases,
    written: Callable[[list[dict[str, Any]]], None] = lambda documents: None,
) -> Rewritten:
    """Apply `change` to the data of every match, in `_id` order, a batch at a time, each batch
    under the leases of its images' paths. `written` gets each batch's changed documents."""
    matched = modified = 0
    async for found in pages_by_id(collection, condition, {"file": 1}, BATCH, database=database):
        async with leases.hold(path_key(document["file"]) for document in found):
            # Read again under the leases: an image may have changed, or stopped matching, meanwhile.
            batch = await database.find_by_ids(collection, [document["_id"] for document in found], condition)
            done, documents = await _rewrite_batch(collection, condition, batch, change)
        written(documents)
        matched, modified = matched + done.matched, modified + done.modified
    return Rewritten(matched=matched, modified=modified)


async def _rewrite_batch(
    collection: AsyncCollection[dict[str, Any]],
    condition: Mapping[str, Any],
    batch: list[dict[str, Any]],
    change: DataChange,
) -> tuple[Rewritten, list[dict[str, Any]]]:
    """Conditional replacements, in order: a value the database refuses fails the first one
    and so writes nothing, since every match receives the same values. Images another writer
    changed in between are read again and changed on top, one by one. The counts, and the
    documents as written."""
    changed = [(document, new) for document in batch if (new := _changed(document, change)) is not None]
    matched, modified = len(batch), len(changed)
    if not changed:
        return Rewritten(matched=matched, modified=modified), []
    # The first on its own: FerretDB 1.24 answers a bulk write that it refuses a value in
    # without the counts PyMongo needs (a KeyError in the driver), a single write with the
    # error itself. Every match receives the same values, so if the first passes, all pass.
    first, *rest = changed
    written = (await collection.replace_one(unchanged(first[0]), first[1])).matched_count
    if rest:
        result = await write_in_parts(collection, [ReplaceOne(unchanged(old), new) for old, new in rest], ordered=True)
        written += result.matched
    documents = [new for _, new in changed]
    if written < len(changed):
        missed = await _not_written(collection, documents)
        documents = [document for document in documents if document["_id"] not in missed]
        for image_id in missed:
            document, done = await _apply(collection, all_of([condition, {"_id": image_id}]), change)
            matched -= document is None  # deleted meanwhile, or no longer a match
            modified -= not done
            if done and document is not None:
                documents.append(document)
    return Rewritten(matched=matched, modified=modified), documents


async def _not_written(collection: AsyncCollection[dict[str, Any]], intended: list[dict[str, Any]]) -> list[ObjectId]:
    """The ids of `intended` documents that are not stored as intended (another writer won)."""
    by_id = {document["_id"]: document for document in intended}
    stored = collection.find({"_id": {"$in": list(by_id)}})
    found = {document["_id"]: document async for document in stored}
    return [image_id for image_id, document in by_id.items() if not _same(found.get(image_id), document)]


async def _apply(
    collection: AsyncCollection[dict[str, Any]],
    condition: Mapping[str, Any],
    change: DataChange,
    *,
    revisions: Collection[int] | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """Apply `change` to the image `condition` selects, read afresh: the image as it now is
    (None if nothing matches) and whether this wrote it. The caller holds the image's lease."""
    for attempt in range(MAX_ATTEMPTS):
        document = await collection.find_one(condition)
        if document is None:
            return None, False
        check_revision(document, revisions)
        new = _changed(document, change)
        if new is None:
            return document, False
        if (await collection.replace_one(unchanged(document), new)).matched_count:
            return new, True
        await pause(attempt)
    raise kept_changing("The image")


def _changed(document: dict[str, Any], change: DataChange) -> dict[str, Any] | None:
    """The document after `change`, or None when that changes nothing."""
    data = document.get("data")
    current = data if isinstance(data, dict) else {}
    new_data = change(current)
    if _same(new_data, current) and document.get("dataKeys") == data_keys(new_data):
        return None
    return next_revision(document, data=new_data, dataKeys=data_keys(new_data))


def _same(left: Any, right: Any) -> bool:
    # Byte-equal BSON: Python's == takes 1 == 1.0 == True, which MongoDB stores differently.
    return bson.encode({"d": left}) == bson.encode({"d": right})
