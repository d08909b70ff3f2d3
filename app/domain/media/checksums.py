"""SHA-256 checksums of stored files, taken while the bytes pass on their way to the storage."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from app.domain.media.file_facts import open_named
from app.domain.writes.leases import Leases, path_key
from app.storage import Storage
from app.store import FieldUpdate
from app.store.images import ImageStore

log = logging.getLogger(__name__)

# Documents per round of leases; files read side by side.
BATCH = 50
CONCURRENCY = 4


class HashingReader:
    """`source` read on to its end, hashing every byte that passes: the checksum of a file
    as it is stored, without reading it a second time."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        self._hash.update(chunk)
        return chunk

    def readable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def as_file(self) -> BinaryIO:
        # What storage backends take: they only ever read a source from start to end.
        return cast(BinaryIO, self)


async def backfill(images: ImageStore, *, storage: Storage, leases: Leases) -> int:
    """Record the checksum of every document without one; the number of documents updated.

    For documents written before checksums were recorded, or by the legacy service. Each file
    is read whole, `CONCURRENCY` at a time, outside any lease; the checksum is then written
    under the image's lease, and only if the document still has none and names the same file,
    so an upload or replacement in between (which records its own) wins. The documents come
    in the store's batches, read as the engine reads fastest. A document whose
    file is missing is left as it is; the next start tries again. Storage outages stop it
    (Unavailable): it runs again at the next start.
    """
    updated = 0
    slots = asyncio.Semaphore(CONCURRENCY)

    async def checksum_of(document: dict[str, Any]) -> str | None:
        async with slots:
            return await read_checksum(storage, document.get("file"))

    async for batch in images.batches({"checksum": {"$exists": False}}, {"file": 1}, BATCH):
        found = await asyncio.gather(*(checksum_of(document) for document in batch))
        pairs = zip(batch, found, strict=True)
        read = [Read(document["_id"], document["file"], checksum) for document, checksum in pairs if checksum]
        updated += await record(images, leases, read)
    if updated:
        log.info("recorded the checksums of %d documents written without them", updated)
    return updated


@dataclass(frozen=True)
class Read:
    """The checksum of the file at `path`, read for the image `image_id` (which had none)."""

    image_id: Any
    path: str
    checksum: str


async def record(images: ImageStore, leases: Leases, reads: list[Read]) -> int:
    """Write checksums read outside the images' leases; the number written.

    Under the leases, each image is read again by `_id`: an image that has a checksum by now
    (an upload or replacement recorded its own) or names another file keeps what it has.
    """
    if not reads:
        return 0
    async with leases.hold(path_key(read.path) for read in reads):
        updates = []
        for read in reads:
            now = await images.by_id(read.image_id, {"file": 1, "checksum": 1})
            if now is not None and now.get("file") == read.path and "checksum" not in now:
                # By `_id` alone: read again under the lease just now.
                updates.append(FieldUpdate(image_id=read.image_id, fields={"checksum": read.checksum}))
        if not updates:
            return 0
        return await images.set_missing(updates)


async def read_checksum(storage: Storage, file: Any) -> str | None:
    """The SHA-256 of the stored file at `file`, or None if there is no such (storable) file."""
    stored = await open_named(storage, file)
    if stored is None:
        return None
    digest = hashlib.sha256()
    async with aclosing(stored.chunks) as chunks:
        async for chunk in chunks:
            digest.update(chunk)
    return digest.hexdigest()
