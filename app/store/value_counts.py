"""Value counts (facets): the values one field takes over the matches, with how many take each.

An image counts once for each value it has: once for a plain value, once for each distinct
element of an array (so `["cat", "dog"]` counts for both, and `["dog", "dog"]` once for
`dog`). Values are ordered by count, most frequent first, then by value.

Built from the aggregation stages both FerretDB 1.24 and MongoDB run: `$match`, `$group` with
`$sum`, `$sort`, `$limit`. FerretDB 1.24 has no `$unwind` of a nested path that works (it drops
arrays under `data.`), no `$project` or `$addFields` of a path, and no `$first`/`$push`, so
arrays cannot be taken apart in the database. So there are two passes. Plain values are counted,
ordered and cut in the database: on MongoDB its memory, spilled to disk when needed, not ours.
Arrays are grouped whole there, and their elements counted here as the groups stream past: the
service holds one count per distinct element found in arrays, which for the label lists this is
made for is small. The plain counts of those elements are then asked for by name, so that the
top of the list is exact.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Hashable, Mapping
from typing import Any

import bson
from pymongo.asynchronous.collection import AsyncCollection

LOOKUP_BATCH = 500  # elements asked for by name in one `$in`
_Key = Hashable
Counted = tuple[Any, int]


def all_of(conditions: list[Mapping[str, Any]]) -> dict[str, Any]:
    present = [dict(condition) for condition in conditions if condition]
    return present[0] if len(present) == 1 else {"$and": present}


async def count_values(
    collection: AsyncCollection[dict[str, Any]],
    condition: Mapping[str, Any],
    path: str,
    *,
    limit: int,
    arrays: bool = True,
) -> list[Counted]:
    """The `limit` most frequent values of `path` among the documents matching `condition`.
    `arrays=False` for a field the service only ever writes plain values to: one pass."""
    if not arrays:
        return [(group["_id"], group["count"]) for group in await _group(collection, condition, path, limit)]
    # Side by side: on FerretDB each pass reads every document, and reads run in parallel.
    plain, (in_arrays, values) = await asyncio.gather(
        _group(collection, all_of([condition, {path: {"$exists": True, "$not": {"$type": "array"}}}]), path, limit),
        _array_elements(collection, condition, path),
    )
    if not in_arrays:
        return [(group["_id"], group["count"]) for group in plain]
    totals: Counter[_Key] = Counter(in_arrays)
    for group in plain:
        values.setdefault(_key(group["_id"]), group["_id"])
    known = {_key(group["_id"]): group["count"] for group in plain}
    # The plain counts of elements that did not make the plain top `limit`.
    wanted = [values[key] for key in in_arrays if key not in known]
    for start in range(0, len(wanted), LOOKUP_BATCH):
        part = wanted[start : start + LOOKUP_BATCH]
        # `$exists`: `$in: [null]` alone also matches the documents without the field.
        named = all_of([condition, {path: {"$exists": True, "$in": part, "$not": {"$type": "array"}}}])
        for group in await _group(collection, named, path, None):
            known[_key(group["_id"])] = group["count"]
    totals.update(known)
    return ranked([(values[key], count) for key, count in totals.items()], limit)


async def _array_elements(
    collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any], path: str
) -> tuple[Counter[_Key], dict[_Key, Any]]:
    """How many documents hold each element in an array at `path`, and the elements by key."""
    in_arrays: Counter[_Key] = Counter()
    values: dict[_Key, Any] = {}
    groups = await collection.aggregate(
        [
            {"$match": all_of([condition, {path: {"$type": "array"}}])},
            {"$group": {"_id": f"${path}", "count": {"$sum": 1}}},
        ],
        allowDiskUse=True,
    )
    async for group in groups:
        for element in _distinct(group["_id"]):
            key = _key(element)
            values.setdefault(key, element)
            in_arrays[key] += group["count"]
    return in_arrays, values


async def _group(
    collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any], path: str, limit: int | None
) -> list[dict[str, Any]]:
    pipeline: list[dict[str, Any]] = [
        {"$match": condition},
        {"$group": {"_id": f"${path}", "count": {"$sum": 1}}},
        {"$sort": {"count": -1, "_id": 1}},
    ]
    if limit is not None:
        pipeline.append({"$limit": limit})
    return await (await collection.aggregate(pipeline, allowDiskUse=True)).to_list(None)


def ranked(counts: list[Counted], limit: int) -> list[Counted]:
    """The `limit` most frequent of `(value, count)` pairs, as `count_values` orders them."""
    return sorted(counts, key=lambda pair: (-pair[1], _order(pair[0])))[:limit]


def _key(value: Any) -> _Key:
    """Equal for values the database groups together: numbers by value (1 and 1.0), the rest by
    their BSON (so 1 and True differ)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("number", value)
    return bson.encode({"v": value})


def _distinct(elements: list[Any]) -> list[Any]:
    seen: dict[_Key, Any] = {}
    for element in elements:
        seen.setdefault(_key(element), element)
    return list(seen.values())


# MongoDB's order of types, for values of different types with equal counts.
_TYPE_ORDER = {type(None): 0, int: 1, float: 1, str: 2, dict: 3, list: 4, bool: 6}


def _order(value: Any) -> tuple[int, Any]:
    rank = _TYPE_ORDER.get(type(value), 5)
    return (rank, value if rank in (1, 2) else str(value))
