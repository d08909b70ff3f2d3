"""Thumbnails and other resized copies of images, made once and then served from the storage.

A copy is stored under the service's own folder (never a user's path, so never listed,
exported or imported as an image) at `.imagestore/variants/<image id>/<checksum>/<resize>`.
The checksum of the bytes it was made from is part of the key: once an image's file is
replaced, its document names another checksum, and the old copies are never served again.
They go when the image is replaced or deleted (`forget`); one a crash or a race left behind
is found by `python -m app.fsck`.

Making a copy is bounded: at most `workers` are made at once, each decoding at most
`max_pixels` pixels (about 4 bytes each), so a burst of requests queues instead of
holding many decoded images in memory. Requests for one copy that arrive while it is being
made wait for it, and then read it from the storage.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from typing import IO, BinaryIO, cast

from anyio import to_thread

from app.domain.media.resize import Resize, render
from app.domain.writes import replacement
from app.domain.writes.locks import KeyedLocks
from app.errors import Busy, NotFound, ServiceError
from app.metrics import Metrics
from app.storage import Storage
from app.storage.keys import system_key

log = logging.getLogger(__name__)

FOLDER = "variants"
# A source file is spooled to memory up to this size, to disk beyond.
SPOOL_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class Source:
    """The image a copy is made of, as its document describes it."""

    image_id: str
    file: str
    pending: str | None  # the staged file of a replacement under way
    checksum: str | None


@dataclass(frozen=True, kw_only=True)
class Variant:
    key: str
    checksum: str  # of the source's bytes
    size: int
    modified: datetime


def variants_folder(image_id: str) -> str:
    return system_key(FOLDER, image_id)


def variant_key(image_id: str, checksum: str, resize: Resize) -> str:
    return system_key(FOLDER, image_id, checksum, resize.name)


def is_variant(key: str) -> bool:
    return key.startswith(f"{system_key(FOLDER)}/")


def variant_of(key: str) -> tuple[str, str] | None:
    """(image id, checksum) that a copy's key names; None for a key not of that shape."""
    parts = key.split("/")
    return (parts[2], parts[3]) if len(parts) == 5 and is_variant(key) else None


class Thumbnails:
    def __init__(self, *, storage: Storage, metrics: Metrics, workers: int, max_pixels: int) -> None:
        self._storage = storage
        self._metrics = metrics
        self._workers = asyncio.Semaphore(workers)
        self._max_pixels = max_pixels
        self._making = KeyedLocks()

    async def variant(self, source: Source, resize: Resize) -> tuple[Variant, str | None]:
        """The stored copy of `source` resized, made now if there is none; and the checksum of
        the source's bytes when it had none recorded and had to be read (to record it)."""
        if source.checksum is not None:
            found = await self._stored(variant_key(source.image_id, source.checksum, resize), source.checksum)
            if found is not None:
                self._metrics.thumbnail("cached")
                return found, None
        # One request makes a given copy; the others wait, then read what it stored.
        async with self._making.hold((source.image_id, resize.name)):
            if source.checksum is not None:
                found = await self._stored(variant_key(source.image_id, source.checksum, resize), source.checksum)
                if found is not None:
                    self._metrics.thumbnail("cached")
                    return found, None
            async with self._workers:
                made = await self._make(source, resize)
        self._metrics.thumbnail("made")
        return made, None if source.checksum is not None else made.checksum

    async def _stored(self, key: str, checksum: str) -> Variant | None:
        try:
            found = await self._storage.stat(key)
        except NotFound:
            return None
        return Variant(key=key, checksum=checksum, size=found.size, modified=found.modified)

    async def _make(self, source: Source, resize: Resize) -> Variant:
        with (
            tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as original,
            tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as copy,
        ):
            checksum = await self._spool(source, original)
            if source.checksum is not None and checksum != source.checksum:
                # Replaced since its document was read: a copy made now would be filed under
                # the old checksum.
                raise Busy(f"The file of image {source.image_id} was replaced while it was being read; try again.")
            original.seek(0)
            await to_thread.run_sync(lambda: render(original, resize, copy, max_pixels=self._max_pixels))
            length = copy.tell()
            copy.seek(0)
            key = variant_key(source.image_id, checksum, resize)
            await self._storage.save(key, cast(BinaryIO, copy), length=length, content_type=resize.content_type)
        found = await self._stored(key, checksum)
        if found is None:  # removed with its image meanwhile
            raise NotFound(f"No image with id {source.image_id}.")
        return found

    async def _spool(self, source: Source, target: IO[bytes]) -> str:
        """Copy the source's bytes to `target`; their SHA-256."""
        try:
            stored = await replacement.open_stored(self._storage, source.file, source.pending)
        except NotFound:
            raise NotFound(f"The file of image {source.image_id} is missing from storage.") from None
        digest = hashlib.sha256()
        async with aclosing(stored.chunks):
            async for chunk in stored.chunks:
                digest.update(chunk)
                target.write(chunk)  # memory, or past SPOOL_BYTES a file the page cache takes
        return digest.hexdigest()

    async def forget(self, image_id: str) -> None:
        """Remove every stored copy of the image; a failure is logged (fsck finds what is left)."""
        try:
            async for batch in self._storage.list_files(folder=variants_folder(image_id)):
                await asyncio.gather(*(self._storage.delete(item.key) for item in batch))
        except ServiceError as error:
            log.warning("could not remove the resized copies of image %s: %s", image_id, error.detail)
