"""What a crash can leave behind, found and (on request) fixed: the work of `python -m app.fsck`.

- Files without a document (orphans): an upload that died between its file and its document,
  or a delete between its document and its file, or an insert the database did not confirm.
  Deleted on repair, under their paths' leases after checking again that no document has
  appeared, and only once older than the grace period (younger ones may be uploads in flight).
- Documents whose file is missing: reported, never deleted; their metadata may be all that is
  left of the image.
- Temporary files of writes that never finished (local storage): deleted past the grace period.
  The service also removes these by itself at start-up.
- Replacements a crash interrupted (app/domain/writes/replacement.py): finished on repair. Their
  staged files count as the document's, never as orphans.
- Expired leases (a process died holding them): deleted; writers would take them over anyway.
- Files kept for snapshots (app/domain/datasets/kept.py) are never orphans: their checks are
  app/domain/datasets/kept_repair.py's.
- Stale resized copies (app/domain/media/thumbnails.py): of images deleted, or of bytes since
  replaced, when a thumbnail was being made as that happened. Deleted past the grace period;
  the copies of current images are never findings.

Both sides are streamed a batch at a time (the storage listing, then the documents through one
cursor) into an on-disk inventory (app/domain/writes/inventory.py) where they are matched, so memory
stays bounded whatever the number of images, and no step asks the database once per file.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from app.domain.media import thumbnails
from app.domain.writes import replacement
from app.domain.writes.inventory import Inventory
from app.domain.writes.leases import Leases, path_key
from app.errors import BadInput, Conflict
from app.storage import Storage
from app.storage.base import ListedFile
from app.storage.keys import checksum_of_kept
from app.store import Store
from app.store.images import ImageStore

log = logging.getLogger(__name__)

BATCH = 1000
ORPHAN_BATCH = 500  # leases held at once while deleting, as a bulk delete does
CHECKS_AT_ONCE = 16

Kind = Literal[
    "orphan file",
    "missing file",
    "temporary file",
    "unfinished replacement",
    "expired lease",
    "stale resized copy",
    "unneeded kept file",
    "missing kept file",
    "hold of a deleted snapshot",
    "leftover of a deleted snapshot",
]


@dataclass(frozen=True, kw_only=True)
class Finding:
    kind: Kind
    name: str  # a storage key, or a lease's key
    detail: str
    repaired: bool = False


async def check(
    *,
    store: Store,
    storage: Storage,
    leases: Leases,
    grace: timedelta,
    repair: bool,
) -> AsyncIterator[Finding]:
    """Every finding as it is made (and, with `repair`, fixed)."""
    cutoff = datetime.now(UTC) - grace
    images = store.images
    with tempfile.TemporaryDirectory(prefix="fsck-") as folder:
        inventory = Inventory(Path(folder) / "inventory.sqlite3")
        try:
            async for finding in _storage_side(storage, inventory, cutoff, repair):
                yield finding
            async for finding in _database_side(images, storage, leases, inventory, repair):
                yield finding
            async for finding in _orphans(images, storage, leases, inventory, cutoff, repair):
                yield finding
            async for finding in _stale_copies(storage, inventory, cutoff, repair):
                yield finding
        finally:
            inventory.close()
    async for finding in _expired_leases(store, repair):
        yield finding


async def _storage_side(
    storage: Storage, inventory: Inventory, cutoff: datetime, repair: bool
) -> AsyncIterator[Finding]:
    """Temporary files found (and removed); every other file noted in the inventory."""
    async for batch in storage.list_files():
        for item in batch:
            if item.temporary and item.modified < cutoff:
                if repair:
                    await storage.delete(item.key)
                yield Finding(kind="temporary file", name=item.key, detail=described(item), repaired=repair)
        # Kept files are named by snapshots' holds, not by documents: app/domain/datasets/kept_repair.py.
        inventory.add_files(
            item
            for item in batch
            if not item.temporary and not thumbnails.is_variant(item.key) and checksum_of_kept(item.key) is None
        )
        inventory.add_copies(
            (item, *(thumbnails.variant_of(item.key) or (None, None)))
            for item in batch
            if thumbnails.is_variant(item.key)
        )


async def _database_side(
    images: ImageStore, storage: Storage, leases: Leases, inventory: Inventory, repair: bool
) -> AsyncIterator[Finding]:
    """Documents whose file is missing, and unfinished replacements; every named key noted."""
    projection = {"file": 1, "checksum": 1, replacement.PENDING: 1}
    async for batch in images.batches({}, projection, BATCH):
        async for finding in _check_documents(images, storage, leases, inventory, batch, repair):
            yield finding


async def _check_documents(
    images: ImageStore,
    storage: Storage,
    leases: Leases,
    inventory: Inventory,
    batch: list[dict[str, Any]],
    repair: bool,
) -> AsyncIterator[Finding]:
    named = [key for document in batch for key in _keys(document)]
    inventory.add_named(named)
    inventory.add_current((str(doc["_id"]), doc["checksum"]) for doc in batch if isinstance(doc.get("checksum"), str))
    listed = inventory.listed_among(named)
    slots = asyncio.Semaphore(CHECKS_AT_ONCE)

    async def present(document: dict[str, Any]) -> bool:
        keys = _keys(document)
        if listed.intersection(keys):
            return True
        async with slots:  # not listed: maybe written since the listing, so ask the storage
            for key in keys:
                try:
                    if await storage.exists(key):
                        return True
                except BadInput:
                    pass  # a path no storage key can be: no file can be there
        return False

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


def _keys(document: dict[str, Any]) -> list[str]:
    """The storage keys a document names: its staged file (if any), then its own."""
    return [key for key in (document.get(replacement.PENDING), document.get("file")) if isinstance(key, str)]


async def _orphans(
    images: ImageStore,
    storage: Storage,
    leases: Leases,
    inventory: Inventory,
    cutoff: datetime,
    repair: bool,
) -> AsyncIterator[Finding]:
    for batch in inventory.unnamed_files(modified_before=cutoff, batch=ORPHAN_BATCH):
        if not repair:
            for item in batch:
                yield Finding(kind="orphan file", name=item.key, detail=described(item))
            continue
        keys = [item.key for item in batch]
        try:
            # Under the leases, asked again: an upload may have written a document since it was read.
            async with leases.hold(path_key(key) for key in keys):
                kept = await _referenced(images, keys)
                await asyncio.gather(*(storage.delete(item.key) for item in batch if item.key not in kept))
        except Conflict:
            kept = set(keys)  # a writer held on to one of them: left for the next run
        for item in batch:
            yield Finding(kind="orphan file", name=item.key, detail=described(item), repaired=item.key not in kept)


async def _stale_copies(
    storage: Storage, inventory: Inventory, cutoff: datetime, repair: bool
) -> AsyncIterator[Finding]:
    # No lease: a copy is only ever a cache. One made meanwhile for a current image is made again.
    for batch in inventory.stale_copies(modified_before=cutoff, batch=ORPHAN_BATCH):
        if repair:
            await asyncio.gather(*(storage.delete(item.key) for item in batch))
        for item in batch:
            yield Finding(kind="stale resized copy", name=item.key, detail=described(item), repaired=repair)


async def _referenced(images: ImageStore, keys: list[str]) -> set[str]:
    """Which of these storage keys a document names, as its file or as its staged file."""
    condition = {"$or": [{"file": {"$in": keys}}, {replacement.PENDING: {"$in": keys}}]}
    names: set[Any] = set()
    async for batch in images.batches(condition, {"file": 1, replacement.PENDING: 1}, BATCH):
        for document in batch:
            names.update(_keys(document))
    return names & set(keys)


async def _settle(images: ImageStore, storage: Storage, leases: Leases, document: dict[str, Any]) -> bool:
    try:
        await replacement.settle_one(images, storage, leases, document)
    except Conflict:
        return False  # a live writer kept the image past the wait: reported, finished by a later run
    return True


async def _expired_leases(store: Store, repair: bool) -> AsyncIterator[Finding]:
    now = datetime.now(UTC)
    async for lease in store.leases.expired(now):
        if repair:
            await store.leases.drop(lease["_id"])  # its `_id` names its holder
        yield Finding(
            kind="expired lease",
            name=str(lease.get("key", lease["_id"])),
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


def described(item: ListedFile) -> str:
    return f"{item.size} bytes, modified {item.modified.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
