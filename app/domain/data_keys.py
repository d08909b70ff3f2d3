"""Keeping `dataKeys` (the top-level keys of `data`) true, so `GET /fields` is a cheap distinct.

Every write of `data` stores `data_keys(data)` beside it (uploads, and the whole-document
rewrites of app/domain/rewrite.py). Documents written by someone else (the legacy service, a
restore made outside this service) get theirs from `backfill`, run at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from app.db import write_in_parts
from app.domain.leases import Leases, path_key

log = logging.getLogger(__name__)

BACKFILL_BATCH = 500


def data_keys(data: Mapping[str, Any] | None) -> list[str]:
    return sorted(data or {})


async def backfill(collection: AsyncCollection[dict[str, Any]], *, leases: Leases) -> int:
    """Give every document without `dataKeys` its list; the number of documents updated."""
    updated = 0
    while True:
        batch = (
            await collection.find({"dataKeys": {"$exists": False}}, {"data": 1, "file": 1})
            .limit(BACKFILL_BATCH)
            .to_list(None)
        )
        if not batch:
            break
        requests = [
            # Only while still missing: a write in between stored the keys of newer data.
            UpdateOne(
                {"_id": document["_id"], "dataKeys": {"$exists": False}},
                {"$set": {"dataKeys": data_keys(_as_mapping(document.get("data")))}},
            )
            for document in batch
        ]
        async with leases.hold(path_key(document["file"]) for document in batch):
            await write_in_parts(collection, requests, ordered=False)
        updated += len(batch)
    if updated:
        log.info("recorded the metadata keys of %d documents written without them", updated)
    return updated


def _as_mapping(data: Any) -> Mapping[str, Any] | None:
    return data if isinstance(data, Mapping) else None
