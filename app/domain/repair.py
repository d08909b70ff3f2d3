"""What a crash can leave behind, found and (on request) fixed: the work of `python -m app.fsck`.

- Files without a document (orphans): an upload that died between its file and its document,
  or a delete between its document and its file, or an insert the database did not confirm.
  Deleted on repair, each under its path's lease after checking again that no document has
  appeared, and only once older than the grace period (younger ones may be uploads in flight).
- Documents whose file is missing: reported, never deleted; their metadata may be all that is
  left of the image.
- Temporary files of writes that never finished (local storage): deleted past the grace period.
  The service also removes these by itself at start-up.
- Replacements a crash interrupted (app/domain/replacement.py): finished on repair. Their
  staged files count as the document's, never as orphans.
- Expired leases (a process died holding them): deleted; writers would take them over anyway.

Both sides are streamed a batch at a time (the storage listing, the documents by `_id`), so
memory stays bounded whatever the number of images.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection

from app.domain import replacement
from app.domain.leases import Leases, path_key
from app.errors import BadInput, Conflict
from app.storage import Storage
from app.storage.base import ListedFile

log = logging.getLogger(__name__)

BATCH = 1000
CHECKS_AT_ONCE = 16

Kind = Literal["orphan file", "missing file", "temporary file", "unfinished replacement", "expired lease"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: Kind
    name: str  # a storage key, or a lease's key
    detail: str
    repaired: bool = False


async def check(
    *,
    images: AsyncCollection[dict[str, Any]],
    leases_collection: AsyncCollection[dict[str, Any]],
    storage: Storage,
    leases: Leases,
    grace: timedelta,
    repair: bool,
) -> AsyncIterator[Finding]:
    """Every finding as it is made (and, with `repair`, fixed)."""
    cutoff = datetime.now(UTC) - grace
    async for finding in _storage_side(images, storage, leases, cutoff, repair):
        yield finding
    async for finding in _database_side(images, storage, leases, repair):
        yield finding
    async for finding in _expired_leases(leases_collection, repair):
        yield finding


async def _storage_side(
    images: AsyncCollection[dict[str, Any]], storage: Storage, leases: Leases, cutoff: datetime, repair: bool
) -> AsyncIterator[Finding]:
    async for batch in storage.list_files():
        old = [item for item in batch if item.modified < cutoff]
        for item in (item for item in old if item.temporary):
            if repair:
                await storage.delete(item.key)
            yield Finding(kind="temporary file", name=item.key, detail=_described(item), repaired=repair)
        candidates = [item for item in old if not item.temporary]
        known = await _referenced(images, [item.key for item in candidates])
        for item in candidates:
            if item.key in known:
                continue
            repaired = repair and await _delete_orphan(images, storage, leases, item.key)
            yield Finding(kind="orphan file", name=item.key, detail=_described(item), repaired=repaired)


async def _delete_orphan(images: AsyncCollection[dict[str, Any]], storage: Storage, leases: Leases, key: str) -> bool:
    async with leases.hold([path_key(key)], what=f"The file {key!r}"):
        if await _referenced(images, [key]):
            return False  # an upload finished meanwhile: not an orphan after all
        await storage.delete(key)
    return True


async def _referenced(images: AsyncCollection[dict[str, Any]], keys: list[str]) -> set[str]:
    """Which of these storage keys a document names, as its file or as its staged file."""
    found = images.find(
        {"$or": [{"file": {"$in": keys}}, {replacement.PENDING: {"$in": keys}}]}, {"file": 1, replacement.PENDING: 1}
    )
    names: set[Any] = set()
    async for document in found:
        names.update((document.get("file"), document.get(replacement.PENDING)))
    return names & set(keys)


async def _database_side(
    images: AsyncCollection[dict[str, Any]], storage: Storage, leases: Leases, repair: bool
) -> AsyncIterator[Finding]:
    slots = asyncio.Semaphore(CHECKS_AT_ONCE)

    async def present(document: dict[str, Any]) -> bool:
        keys = [document.get(replacement.PENDING), document.get("file")]
        async with slots:
            for key in keys:
                try:
                    if isinstance(key, str) and await storage.exists(key):
                        return True
                except BadInput:
                    pass  # a path no storage key can be: no file can be there
        return False

    after: ObjectId | None = None
    while True:
        condition = {} if after is None else {"_id": {"$gt": after}}
        batch = await images.find(
            condition, {"file": 1, replacement.PENDING: 1}, sort=[("_id", 1)], limit=BATCH
        ).to_list(None)
        if not batch:
            return
        after = batch[-1]["_id"]
        found = await asyncio.gather(*(present(document) for document in batch))
        for document, exists in zip(batch, found, strict=True):
            if not exists:
                yield Finding(kind="missing file", name=str(document.get("file")), detail=f"image {document['_id']}")
            elif replacement.PENDING in document:
                repaired = repair and await _settle(images, storage, leases, document)
                yield Finding(
                    kind="unfinished replacement",
                    name=str(document.get("file")),
                    detail=f"image {document['_id']}, new file staged at {document[replacement.PENDING]}",
                    repaired=repaired,
                )


async def _settle(
    images: AsyncCollection[dict[str, Any]], storage: Storage, leases: Leases, document: dict[str, Any]
) -> bool:
    try:
        await replacement.settle_one(images, storage, leases, document)
    except Conflict:
        return False  # a writer holds the image, and settles it before writing
    return True


async def _expired_leases(leases: AsyncCollection[dict[str, Any]], repair: bool) -> AsyncIterator[Finding]:
    now = datetime.now(UTC)
    async for lease in leases.find({"expires": {"$lt": now}}):
        if repair:
            await leases.delete_one({"_id": lease["_id"], "owner": lease["owner"]})
        yield Finding(
            kind="expired lease",
            name=str(lease["_id"]),
            detail=f"expired {lease['expires']:%Y-%m-%dT%H:%M:%SZ}",
            repaired=repair,
        )


async def remove_stale_temporaries(storage: Storage, *, older_than: timedelta) -> int:
    """Delete the temporary files of writes that never finished; how many. Run at start-up."""
    cutoff = datetime.now(UTC) - older_than
    removed = 0
    async for batch in storage.list_files():
        for item in batch:
            if item.temporary and item.modified < cutoff:
                await storage.delete(item.key)
                removed += 1
    if removed:
        log.info("removed %d temporary files that crashed writes left behind", removed)
    return removed


def _described(item: ListedFile) -> str:
    return f"{item.size} bytes, modified {item.modified.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
