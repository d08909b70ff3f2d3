"""SHA-256 checksums of stored files, taken while the bytes pass on their way to the storage."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from contextlib import aclosing
from typing import Any, BinaryIO, cast

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from app.db import in_batches, write_in_parts
from app.domain.leases import Leases, path_key
from app.errors import BadInput, NotFound
from app.storage import Storage

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


async def backfill(collection: AsyncCollection[dict[str, Any]], *, storage: Storage, leases: Leases) -> int:
    """Record the checksum of every document without one; the number of documents updated.

    For documents written before checksums were recorded, or by the legacy service. Each file
    is read whole, `CONCURRENCY` at a time, outside any lease; the checksum is then written
    under the image's lease, and only if the document still has none and names the same file,
    so an upload or replacement in between (which records its own) wins. One cursor over the
    documents and writes by `_id` alone: FerretDB reads the whole collection for any other
    query, so paging or conditional writes would cost a full read per batch. A document whose
    file is missing is left as it is; the next start tries again. Storage outages stop it
    (Unavailable): it runs again at the next start.
    """
    updated = 0
    slots = asyncio.Semaphore(CONCURRENCY)

    async def checksum_of(document: dict[str, Any]) -> str | None:
        async with slots:
            return await read_checksum(storage, document.get("file"))

    missing = collection.find({"checksum": {"$exists": False}}, {"file": 1}, batch_size=BATCH)
    async for batch in in_batches(missing, BATCH):
        found = await asyncio.gather(*(checksum_of(document) for document in batch))
        read = [(document, checksum) for document, checksum in zip(batch, found, strict=True) if checksum]
        if not read:
            continue
        async with leases.hold(path_key(document["file"]) for document, _ in read):
            requests = []
            for document, checksum in read:
                now = await collection.find_one({"_id": document["_id"]}, {"file": 1, "checksum": 1})
                if now is not None and now.get("file") == document["file"] and "checksum" not in now:
                    requests.append(UpdateOne({"_id": document["_id"]}, {"$set": {"checksum": checksum}}))
            if requests:
                updated += (await write_in_parts(collection, requests, ordered=False)).modified
    if updated:
        log.info("recorded the checksums of %d documents written without them", updated)
    return updated


async def read_checksum(storage: Storage, file: Any) -> str | None:
    """The SHA-256 of the stored file at `file`, or None if there is no such (storable) file."""
    if not isinstance(file, str):
        return None
    try:
        stored = await storage.open(file)
    except (NotFound, BadInput):
        return None
    digest = hashlib.sha256()
    async with aclosing(stored.chunks) as chunks:
        async for chunk in chunks:
            digest.update(chunk)
    return digest.hexdigest()
