"""Changing metadata by rewriting whole documents.

Why not `$set`: FerretDB 1.24 (the test and `make run` database) compares an embedded
document with the one it would replace by values only, ignoring keys, and skips the write
when they look alike: `$set: {"data": {"y": 1}}` leaves `{"x": 1}` in place. Replacing the
whole document is honoured by FerretDB and MongoDB alike, so every metadata change reads the
matching documents, computes the new `data` (and `dataKeys`) here, and replaces them.

The cost: a concurrent write to the same image between the read and the replace is lost
(last writer wins), and bulk changes move each document twice instead of once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson import ObjectId
from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection

from app.domain.data_keys import data_keys
from app.domain.query import all_of

BATCH = 500

DataChange = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Rewritten:
    matched: int
    modified: int
    last: dict[str, Any] | None  # the last matching document as it is now (for single-image changes)


def merge(to_set: Mapping[str, Any], to_unset: list[str]) -> DataChange:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        merged = {key: value for key, value in data.items() if key not in to_unset}
        merged.update(to_set)
        return merged

    return change


def replace(new_data: dict[str, Any]) -> DataChange:
    return lambda _: new_data


async def rewrite_data(
    collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any], change: DataChange
) -> Rewritten:
    """Apply `change` to the data of every match, in `_id` order, a batch at a time."""
    matched = modified = 0
    last: dict[str, Any] | None = None
    after: ObjectId | None = None
    while True:
        page = all_of([condition, {"_id": {"$gt": after}} if after is not None else {}])
        batch = await collection.find(page, sort=[("_id", 1)], limit=BATCH).to_list(None)
        if not batch:
            return Rewritten(matched=matched, modified=modified, last=last)
        after = batch[-1]["_id"]
        requests = []
        for document in batch:
            data = document.get("data")
            current = data if isinstance(data, dict) else {}
            new_data = change(current)
            matched += 1
            if not _same(new_data, current) or document.get("dataKeys") != data_keys(new_data):
                document = {**document, "data": new_data, "dataKeys": data_keys(new_data)}
                requests.append(ReplaceOne({"_id": document["_id"]}, document))
                modified += 1
            last = document
        if requests:
            # Ordered: a value the database refuses fails the first write and so writes nothing,
            # since every document of a bulk change receives the same values.
            await collection.bulk_write(requests, ordered=True)


def _same(left: dict[str, Any], right: dict[str, Any]) -> bool:
    # Byte-equal BSON: Python's == takes 1 == 1.0 == True, which MongoDB stores differently.
    return bson.encode({"d": left}) == bson.encode({"d": right})
