"""Keeping `dataKeys` (the top-level keys of `data`) true, so `GET /fields` is a cheap distinct.

Every write of `data` stores `data_keys(data)` beside it (uploads, and the whole-document
rewrites of app/domain/writes/rewrite.py). Documents written by someone else (the legacy service, a
restore made outside this service) get theirs from `backfill`, run at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from app.domain.writes.leases import Leases, path_key
from app.store import FieldUpdate
from app.store.images import ImageStore

log = logging.getLogger(__name__)

BACKFILL_BATCH = 500


def data_keys(data: Mapping[str, Any] | None) -> list[str]:
    return sorted(data or {})


async def backfill(images: ImageStore, *, leases: Leases) -> int:
    """Give every document without `dataKeys` its list; the number of documents updated."""
    updated = 0
    missing = {"dataKeys": {"$exists": False}}
    async for batch in images.pages_by_id(missing, {"data": 1, "file": 1}, BACKFILL_BATCH):
        updates = [
            # Only while still missing: a write in between stored the keys of newer data.
            FieldUpdate(
                image_id=document["_id"],
                fields={"dataKeys": data_keys(_as_mapping(document.get("data")))},
                missing="dataKeys",
            )
            for document in batch
        ]
        async with leases.hold(path_key(document["file"]) for document in batch):
            await images.set_missing(updates)
        updated += len(batch)
    if updated:
        log.info("recorded the metadata keys of %d documents written without them", updated)
    return updated


def _as_mapping(data: Any) -> Mapping[str, Any] | None:
    return data if isinstance(data, Mapping) else None
