"""Image facts (`size`, `contentType`, `width`, `height`, `exif`) for documents written without them.

Uploads record the facts while they store the file. The legacy service recorded none, so its
documents get theirs from `backfill`, run in the background at start-up: only the first bytes
of each file are read (the header names the format and the dimensions), a few files at a time.
A document changed meanwhile keeps what the change wrote: the facts are written under the
image's lease, and only where `size` is still missing. A document whose file is missing, or
whose path this service would refuse, is left as it is (its download says what is wrong); the
next start tries it again.
"""

from __future__ import annotations

import asyncio
import io
import logging
from contextlib import aclosing
from typing import Any

from anyio import to_thread

from app.domain.media.sniffing import MediaFacts, sniff
from app.domain.writes.leases import Leases, path_key
from app.errors import BadInput, NotAnImage, NotFound
from app.storage import Storage
from app.storage.base import StoredFile
from app.store import FieldUpdate
from app.store.images import ImageStore

log = logging.getLogger(__name__)

BATCH = 200
CONCURRENCY = 4
# Past the metadata blocks (EXIF, ICC profiles, XMP) that may precede a JPEG's frame header.
HEADER_BYTES = 1024 * 1024


async def backfill(images: ImageStore, *, storage: Storage, leases: Leases) -> int:
    """Record the facts of every document without `size`; the number of documents updated.

    Storage outages stop it (Unavailable): it runs again at the next start.
    """
    updated = 0
    slots = asyncio.Semaphore(CONCURRENCY)

    async def facts_of(document: dict[str, Any]) -> dict[str, Any] | None:
        async with slots:
            return await read_facts(storage, document.get("file"))

    async for batch in images.pages_by_id({"size": {"$exists": False}}, {"file": 1}, BATCH):
        found = await asyncio.gather(*(facts_of(document) for document in batch))
        updates = [
            # Raising the revision: what clients see of the image has changed.
            FieldUpdate(image_id=document["_id"], fields=facts, missing="size", raise_revision=True)
            for document, facts in zip(batch, found, strict=True)
            if facts is not None
        ]
        if updates:
            async with leases.hold(path_key(document["file"]) for document in batch):
                updated += await images.set_missing(updates)
    if updated:
        log.info("recorded the image facts of %d documents written without them", updated)
    return updated


async def open_named(storage: Storage, file: Any) -> StoredFile | None:
    """The stored file a document's `file` names, opened; None if it is missing or names none
    this service would store (a document written elsewhere may hold anything there)."""
    if not isinstance(file, str):
        return None
    try:
        return await storage.open(file)
    except (NotFound, BadInput):
        return None


async def read_facts(storage: Storage, file: Any) -> dict[str, Any] | None:
    """The facts of the stored file at `file`, or None if there is no such (storable) file.

    A file that is not a recognisable image still gets its size.
    """
    stored = await open_named(storage, file)
    if stored is None:
        return None
    head = bytearray()
    media: MediaFacts | None = None
    async with aclosing(stored.chunks) as chunks:
        async for chunk in chunks:
            head += chunk
            media = await _sniffed(head)
            if media is not None or len(head) >= HEADER_BYTES:
                break
    facts: dict[str, Any] = {"size": stored.size}
    if media is None:
        return facts
    facts |= {"contentType": media.content_type, "width": media.width, "height": media.height}
    return facts if media.exif is None else facts | {"exif": media.exif}


async def _sniffed(head: bytearray) -> MediaFacts | None:
    try:
        return await to_thread.run_sync(sniff, io.BytesIO(head))
    except NotAnImage:
        return None
