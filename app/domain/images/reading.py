"""Reading images: one image by id, its stored file or a resized copy, and their bytes.

Each call takes the caller's `Scope`, so that authorization is a property of every call rather
than a check some route might forget: another owner's image is answered as missing.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import posixpath
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.domain.datasets.kept import KeptBytes
from app.domain.images import stored
from app.domain.images.content import ContentKey
from app.domain.images.documents import loaded
from app.domain.media import checksums
from app.domain.media.resize import Resize
from app.domain.media.thumbnails import Source, Thumbnails
from app.domain.metadata import check_count, parse_object_id
from app.domain.scope import Scope
from app.domain.writes import replacement
from app.domain.writes.leases import Leases
from app.errors import Busy, NotFound, ServiceError
from app.metrics import Metrics
from app.models import Image
from app.storage import Storage
from app.store import Store

log = logging.getLogger(__name__)

MAX_PRESIGNED_SECONDS = 7 * 24 * 3600  # the longest S3 (signature version 4) signs for
_REPLACED = (
    "Image {image_id} no longer holds the bytes this address names (it was replaced); "
    "ask for the image again for its current address."
)


@dataclass(frozen=True, kw_only=True)
class ImageFile:
    """An image's stored file as a download describes it, before any byte is read."""

    image_id: str
    path: str  # the image's `file`
    key: str  # where the bytes are (the path, or the staged file of an unfinished replacement)
    filename: str
    content_type: str
    size: int
    modified: datetime  # the stored file's, UTC
    checksum: str | None  # SHA-256 of the image's bytes, once recorded
    resized: str | None = None  # for a resized copy (app/domain/media/thumbnails.py), its `Resize.name`
    kept: bool = False  # bytes a snapshot keeps (app/domain/datasets/kept.py): they never change

    @property
    def etag(self) -> str | None:
        """What identifies these bytes: the checksum, and for a copy what it was resized to."""
        if self.checksum is None:
            return None
        return self.checksum if self.resized is None else f"{self.checksum}-{self.resized}"


class ImageReader:
    def __init__(
        self,
        *,
        store: Store,
        storage: Storage,
        leases: Leases,
        thumbnails: Thumbnails,
        metrics: Metrics,
        kept: KeptBytes | None = None,
    ) -> None:
        self.store = store
        # A content address of bytes an image no longer has still answers while a snapshot of
        # the caller's keeps them.
        self.kept = kept
        self.storage = storage
        # Checksums learned while reading are recorded under the image's lease.
        self.leases = leases
        self.thumbnails = thumbnails
        self.metrics = metrics

    async def get(self, scope: Scope, image_id: str) -> Image:
        self.store.require_ready()
        with self.store.errors():
            # By `_id` alone, the scope checked here: the one lookup every engine answers
            # through an index.
            found = await self.store.images.by_id(parse_object_id(image_id))
        image = None if found is None else loaded(found)
        if image is None or not scope.allows({"userId": image.userId}):
            # Also the answer for another owner's image: its existence is not revealed.
            raise NotFound(f"No image with id {image_id}.")
        return image

    async def stored(self, scope: Scope, files: Sequence[stored.FileCheck]) -> list[stored.StoredFile]:
        """Whether the caller has an image at each path, and which (app/domain/images/stored.py)."""
        return await stored.check(self.store, scope, files)

    async def file(self, scope: Scope, image_id: str) -> ImageFile:
        """What a download of the image's file would send; NotFound if the file is missing."""
        return await self._file_of(await self.get(scope, image_id))

    async def content(self, scope: Scope, image_id: str, key: ContentKey, resize: Resize | None) -> ImageFile:
        """What its content address (app/domain/images/content.py) sends: the file, or a resized
        copy, of the bytes `key` names. Once the image holds other bytes (or is deleted), the
        file is still sent while a snapshot of the caller's keeps it; else NotFound."""
        try:
            image: Image | None = await self.get(scope, image_id)
        except NotFound:
            image = None
        if image is None or image.checksum != key.checksum or image.size != key.size:
            kept = None if self.kept is None or resize is not None else await self._kept(scope, image_id, key)
            if kept is not None:
                return kept
            if image is None:
                raise NotFound(f"No image with id {image_id}.")
            raise NotFound(_REPLACED.format(image_id=image_id))
        file = await (self._file_of(image) if resize is None else self._resized_of(image, resize))
        if file.checksum != key.checksum or (resize is None and file.size != key.size):
            raise NotFound(_REPLACED.format(image_id=image_id))
        return file

    async def _kept(self, scope: Scope, image_id: str, key: ContentKey) -> ImageFile | None:
        assert self.kept is not None
        with self.store.errors():
            found = await self.kept.kept_copy(scope, parse_object_id(image_id), key.checksum)
        if found is None or found.stat.size != key.size:
            return None
        stored_key, stat, file = found.key, found.stat, found.file
        return ImageFile(
            image_id=image_id,
            path=file,
            key=stored_key,
            filename=posixpath.basename(file),
            content_type=mimetypes.guess_type(file)[0] or "application/octet-stream",
            size=stat.size,
            modified=stat.modified,
            checksum=key.checksum,
            kept=True,
        )

    async def _file_of(self, image: Image) -> ImageFile:
        image_id = str(image.id)
        try:
            key, found = await replacement.stat_stored(self.storage, image.file, image.pendingFile)
        except NotFound:
            raise NotFound(f"The file of image {image_id} is missing from storage.") from None
        return ImageFile(
            image_id=image_id,
            path=image.file,
            key=key,
            filename=posixpath.basename(image.file),
            content_type=image.contentType or mimetypes.guess_type(image.file)[0] or "application/octet-stream",
            size=found.size,
            modified=found.modified,
            checksum=image.checksum,
        )

    async def resized(self, scope: Scope, image_id: str, resize: Resize) -> ImageFile:
        """The image's file resized: a stored copy, made now if there is none yet."""
        return await self._resized_of(await self.get(scope, image_id), resize)

    async def _resized_of(self, image: Image, resize: Resize) -> ImageFile:
        image_id = str(image.id)
        source = Source(image_id=image_id, file=image.file, pending=image.pendingFile, checksum=image.checksum)
        variant, learned = await self.thumbnails.variant(source, resize)
        if learned is not None:
            await self._record_checksum(checksums.Read(image.id, image.file, learned))
        extension = "jpg" if resize.format == "jpeg" else resize.format
        return ImageFile(
            image_id=image_id,
            path=image.file,
            key=variant.key,
            filename=f"{posixpath.splitext(posixpath.basename(image.file))[0]}.{extension}",
            content_type=resize.content_type,
            size=variant.size,
            modified=variant.modified,
            checksum=variant.checksum,
            resized=resize.name,
        )

    async def presigned_url(self, file: ImageFile, *, expires_in: int) -> str | None:
        """A URL that downloads `file` straight from the storage for `expires_in` seconds, for a
        caller already allowed to; None on local storage (the service's own route serves it)."""
        check_count(expires_in, name="expiresIn", minimum=1, maximum=MAX_PRESIGNED_SECONDS)
        return await self.storage.presigned_url(
            file.key, expires=timedelta(seconds=expires_in), filename=file.filename, content_type=file.content_type
        )

    async def read(
        self, file: ImageFile, *, start: int = 0, end: int | None = None, for_good: bool = False
    ) -> AsyncIterator[bytes]:
        """The bytes of `file` from `start` up to (not including) `end`, by default all of them.

        Busy (a Conflict) if the file was replaced since `file` described it: the headers already
        promised its length. `for_good`, for a content address that promises these bytes for
        good: NotFound unless the document still names `file`'s checksum once the file is open.
        A replacement's document names its new checksum before its file moves onto the path,
        so that means these are the bytes (a same-sized replacement would pass the length check).
        """
        try:
            stored = await self.storage.open(file.key, start=start, end=end)
        except NotFound:
            stored = None  # a staged file moved onto its path meanwhile
        if stored is None or stored.size != file.size:
            if stored is not None:
                await stored.chunks.aclose()
            raise Busy(f"The file of image {file.image_id} was replaced while it was being read; try again.")
        if for_good and not file.kept and not await self._still_holds(file):
            await stored.chunks.aclose()
            raise NotFound(_REPLACED.format(image_id=file.image_id))
        if file.checksum is None and start == 0 and end is None and file.key == file.path and file.resized is None:
            return self.metrics.count_download(self._checksummed(file, stored.chunks))
        return self.metrics.count_download(stored.chunks)

    async def _still_holds(self, file: ImageFile) -> bool:
        with self.store.errors():
            found = await self.store.images.by_id(parse_object_id(file.image_id))
        return found is not None and file.checksum is not None and found.get("checksum") == file.checksum

    async def _checksummed(self, file: ImageFile, chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        """`chunks` passed on and hashed; once all were sent, the image's checksum is recorded
        (it had none: written before checksums were, or by the legacy service)."""
        digest = hashlib.sha256()
        sent = 0
        async with aclosing(chunks):  # a download cut short releases the file at once
            async for chunk in chunks:
                digest.update(chunk)
                sent += len(chunk)
                yield chunk
        if sent != file.size:
            return
        await self._record_checksum(checksums.Read(parse_object_id(file.image_id), file.path, digest.hexdigest()))

    async def _record_checksum(self, read: checksums.Read) -> None:
        """The checksum of an image that had none, learned by reading its file whole."""
        try:
            with self.store.errors():
                await checksums.record(self.store.images, self.leases, [read])
        except ServiceError as error:
            # The start-up backfill records it later; what read it is complete anyway.
            log.warning("image %s: its checksum could not be recorded: %s", read.image_id, error.detail)
