"""Keeping `dataKeys` (the top-level keys of `data`) true, so `GET /fields` is a cheap distinct.

Every write of `data` goes through here: a whole new `data` sets the list, a merge adds the
keys it sets and prunes the keys it unsets. Documents written by someone else (the legacy
service, a restore made outside this service) get theirs from `backfill`, run at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

log = logging.getLogger(__name__)

BACKFILL_BATCH = 500


def data_keys(data: Mapping[str, Any] | None) -> list[str]:
    return sorted(data or {})


def merge_update(to_set: Mapping[str, Any], to_unset: list[str]) -> dict[str, Any]:
    """The update for merging `to_set` into data and removing `to_unset` from it.

    The unset keys leave `dataKeys` in a second step (`prune`): MongoDB refuses to add to and
    remove from one array in the same update.
    """
    update: dict[str, Any] = {}
    if to_set:
        update["$set"] = {f"data.{key}": value for key, value in to_set.items()}
        update["$addToSet"] = {"dataKeys": {"$each": sorted(to_set)}}
    if to_unset:
        update["$unset"] = {f"data.{key}": "" for key in to_unset}
    return update


async def prune(collection: AsyncCollection[dict[str, Any]], keys: list[str], condition: Mapping[str, Any]) -> None:
    """Take `keys` out of `dataKeys` wherever `data` no longer has them.

    Matching on the key's absence rather than on the caller's filter matters: the filter may
    have selected documents by the very key that was just removed.
    """
    for key in keys:
        await collection.update_many(
            {**condition, "dataKeys": key, f"data.{key}": {"$exists": False}}, {"$pull": {"dataKeys": key}}
        )


async def backfill(collection: AsyncCollection[dict[str, Any]]) -> int:
    """Give every document without `dataKeys` its list; the number of documents updated."""
    updated = 0
    while True:
        batch = await collection.find({"dataKeys": {"$exists": False}}, {"data": 1}).limit(BACKFILL_BATCH).to_list(None)
        if not batch:
            break
        requests = [
            UpdateOne({"_id": document["_id"]}, {"$set": {"dataKeys": data_keys(_as_mapping(document.get("data")))}})
            for document in batch
        ]
        await collection.bulk_write(requests, ordered=False)
        updated += len(batch)
    if updated:
        log.info("recorded the metadata keys of %d documents written without them", updated)
    return updated


def _as_mapping(data: Any) -> Mapping[str, Any] | None:
    return data if isinstance(data, Mapping) else None
