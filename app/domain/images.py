"""Operations on single images: upload, read, change metadata, delete, download.

Each takes the caller's `Scope`, so that authorization is a property of every call rather than
a check some route might forget. Files and documents change together: a new image writes its
file first and its document second, undoing the file if the document cannot be written; a
replacement stages its bytes and moves them into place (app/domain/replacement.py); a delete
removes the document first. So a failure or a crash never leaves a document pointing at nothing
or at bytes it does not describe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import mimetypes
import posixpath
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, BinaryIO, Literal

from anyio import to_thread
from bson import ObjectId

from app.domain import checksums, cursors, data_keys, replacement, rewrite
from app.domain.checksums import HashingReader
from app.domain.events import Events
from app.domain.facets import Facet, as_facets
from app.domain.leases import Leases, path_key
from app.domain.media import sniff
from app.domain.metadata import check_data, parse_data_patch, parse_object_id
from app.domain.query import ImageQuery, all_of, check_count, check_path, check_skip, scoped
from app.domain.resize import Resize
from app.domain.scope import Scope
from app.domain.thumbnails import Source, Thumbnails
from app.errors import BadInput, Conflict, NotFound, ServiceError, TooLarge, Unavailable
from app.metrics import Metrics
from app.models import LEGACY_FIELDS, Image, to_stored_time, utc_now
from app.storage import Storage
from app.store import Store

log = logging.getLogger(__name__)

DELETE_BATCH = 2000  # images deleted per round of leases
GROUP_IDS = 100  # image ids listed per group of identical files
MAX_GROUPS = 1000  # groups of identical files per page
MAX_FACETS = 10_000  # values per facet list
# System fields whose values can be counted, by the name clients use.
SYSTEM_FACETS = {"contentType": "contentType", "owner": "userId"}
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600  # the longest S3 (signature version 4) signs for
LOOKUPS_AT_ONCE = 16  # storage lookups (stat, HEAD) side by side

# Where an upload looks for the image already at its path (ImageService._existing).
Look = Literal["storage first", "database", "nowhere"]


@dataclass(kw_only=True)
class NewImage:
    """An uploaded file and what came with it. `source` is a readable, seekable binary file."""

    source: BinaryIO
    length: int
    filename: str | None = None  # the name the client gave the upload
    file: str | None = None  # where to store it; defaults to `filename`
    time: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)
    image_id: ObjectId | None = None
    # False (restoring an archive): an id already used elsewhere is dropped, not a conflict.
    id_required: bool = True
    # True when the caller has just found, in a batch lookup, that no image has this path:
    # skips the lookup per image (a search by path may read the whole collection).
    known_new: bool = False
    # Refuse (Conflict) a file identical to one of another image the caller can see.
    refuse_duplicates: bool = False
    # The source's bytes are in memory: reading them waits on no disk.
    in_memory: bool = False


@dataclass(frozen=True, kw_only=True)
class DuplicateGroup:
    checksum: str
    count: int  # every image of the group the caller can see
    ids: list[str]  # at most GROUP_IDS of them


@dataclass(frozen=True, kw_only=True)
class Page:
    total: int | None  # every match, not just this page; None when not counted
    items: list[dict[str, Any]]  # raw documents, projected as the query asked
    # When walking by cursor: the cursor after each image (None if `select` hid the sort
    # values), and the next page's (None on the last page).
    cursors: list[str] | None = None
    next_cursor: str | None = None

    @property
    def counted(self) -> int:
        """`total`, of a page found with its count (the default)."""
        if self.total is None:
            raise ValueError("this page was found without its count")
        return self.total


@dataclass(frozen=True, kw_only=True)
class UpdateSummary:
    matched: int
    modified: int


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
    resized: str | None = None  # for a resized copy (app/domain/thumbnails.py), its `Resize.name`

    @property
    def etag(self) -> str | None:
        """What identifies these bytes: the checksum, and for a copy what it was resized to."""
        if self.checksum is None:
            return None
        return self.checksum if self.resized is None else f"{self.checksum}-{self.resized}"


class ImageService:
    def __init__(
        self,
        *,
        store: Store,
        storage: Storage,
        leases: Leases,
        thumbnails: Thumbnails,
        events: Events,
        max_upload_bytes: int,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.storage = storage
        self.thumbnails = thumbnails
        # Every write below publishes what it wrote (app/domain/events.py).
        self.events = events
        # Every write holds its image's lease: see app/domain/leases.py.
        self.leases = leases
        self.max_upload_bytes = max_upload_bytes
        self.metrics = metrics
        self._signer: cursors.Cursors | None = None  # read from the database when first needed

    # -- reading ------------------------------------------------------------------------------

    async def get(self, scope: Scope, image_id: str) -> Image:
        self.store.require_ready()
        with self.store.errors():
            # By `_id` alone, the scope checked here: the one lookup every engine answers
            # through an index.
            found = await self.store.images.by_id(parse_object_id(image_id))
        image = None if found is None else _loaded(found)
        if image is None or not scope.allows({"userId": image.userId}):
            # Also the answer for another owner's image: its existence is not revealed.
            raise NotFound(f"No image with id {image_id}.")
        return image

    async def file(self, scope: Scope, image_id: str) -> ImageFile:
        """What a download of the image's file would send; NotFound if the file is missing."""
        image = await self.get(scope, image_id)
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
        image = await self.get(scope, image_id)
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

    async def read(self, file: ImageFile, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of `file` from `start` up to (not including) `end`, by default all of them.

        Conflict if the file was replaced since `file` described it: the headers already
        promised its length.
        """
        try:
            stored = await self.storage.open(file.key, start=start, end=end)
        except NotFound:
            stored = None  # a staged file moved onto its path meanwhile
        if stored is None or stored.size != file.size:
            if stored is not None:
                await stored.chunks.aclose()
            raise Conflict(f"The file of image {file.image_id} was replaced while it was being read; try again.")
        if file.checksum is None and start == 0 and end is None and file.key == file.path and file.resized is None:
            return self.metrics.count_download(self._checksummed(file, stored.chunks))
        return self.metrics.count_download(stored.chunks)

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

    # -- writing ------------------------------------------------------------------------------

    async def upload(self, scope: Scope, new: NewImage) -> Image:
        """Store a file and its document; the image already at that `file` is replaced whole."""
        file, fields = await self._prepare(scope, new)
        self.store.require_ready()
        with self.store.errors():
            async with self.leases.hold([path_key(file)], what=f"The image at {file!r}"):
                return await self._upload_holding_lease(scope, new, file, fields)

    async def _prepare(self, scope: Scope, new: NewImage) -> tuple[str, dict[str, Any]]:
        """The upload's path and the document's fields; BadInput, TooLarge or NotAnImage."""
        if new.length > self.max_upload_bytes:
            raise TooLarge(f"The file is larger than the maximum upload size of {self.max_upload_bytes} bytes.")
        if not (new.file or new.filename):
            raise BadInput("The upload has no file name; give one in the 'file' field.")
        file = scope.file_path(new.file or new.filename or "")
        # From memory a header is read in less time than a trip to a worker thread takes.
        facts = sniff(new.source) if new.in_memory else await to_thread.run_sync(sniff, new.source)
        data = check_data(new.data)
        fields = {
            "time": to_stored_time(new.time) if new.time else utc_now(),
            "data": data,
            "dataKeys": data_keys.data_keys(data),
            "size": new.length,
            "contentType": facts.content_type,
            "width": facts.width,
            "height": facts.height,
        }
        if facts.exif is not None:
            fields["exif"] = facts.exif
        return file, fields

    async def create_many(self, scope: Scope, news: list[NewImage]) -> list[Image | ServiceError]:
        """New images at paths the caller has just found free (`known_new`), written together.

        One lease take, one insert and one release for the lot, where `upload` spends three
        database writes per image (and the embedded database runs one write at a time). Files
        first, then the documents, as `upload` does. Each result is the image or the error
        that refused it; one whose path or id turned out taken goes through `upload` after.
        A storage outage is the result of the images it hit (Unavailable); those whose files
        were stored are still written. A database outage is raised.
        """
        results: list[Image | ServiceError | None] = [None] * len(news)
        documents: dict[int, dict[str, Any]] = {}
        for index, new in enumerate(news):
            try:
                file, fields = await self._prepare(scope, new)
            except ServiceError as error:
                results[index] = error
                continue
            if any(document["file"] == file for document in documents.values()):
                continue  # a second entry for one path: a replacement, left to `upload`
            documents[index] = _new_document(scope, file, fields, image_id=new.image_id)
        self.store.require_ready()
        if documents:
            paths = [path_key(document["file"]) for document in documents.values()]
            try:
                with self.store.errors():
                    async with self.leases.hold(paths, what="An image of this batch"):
                        await self._create_holding_leases(news, documents, results)
            except Conflict:
                pass  # a writer kept one of the paths: each goes through `upload`, which waits its turn
        outage = next((result for result in results if isinstance(result, Unavailable)), None)
        for index, new in enumerate(news):
            if results[index] is None and outage is not None:
                results[index] = outage  # not tried again while the storage is away
            elif results[index] is None:
                await to_thread.run_sync(new.source.seek, 0)
                try:
                    results[index] = await self.upload(scope, new)
                except Unavailable:
                    raise
                except ServiceError as error:
                    results[index] = error
        return [result for result in results if result is not None]

    async def _create_holding_leases(
        self, news: list[NewImage], documents: dict[int, dict[str, Any]], results: list[Image | ServiceError | None]
    ) -> None:
        # One after the other, in the caller's order: of two entries that clash on a disk (a
        # file where the other needs a folder), the later one is refused, as one by one.
        for index in list(documents):
            document, new = documents[index], news[index]
            try:
                document["checksum"] = await self._save(document["file"], new, content_type=document["contentType"])
            except ServiceError as error:
                results[index] = error
                del documents[index]
                if isinstance(error, Unavailable):  # the storage is away: the rest are not tried
                    for later in [later for later in documents if later > index]:
                        del documents[later]
                    break
        if not documents:
            return
        order = list(documents)
        try:
            with self.store.errors():
                fates = await self.store.images.insert_each([documents[index] for index in order])
        except Unavailable:
            # As in `_create`: documents may have been stored all the same, and need their files.
            log.warning("import: the database did not confirm %d documents; their files are kept", len(order))
            raise
        for index, fate in zip(order, fates, strict=True):
            document = documents[index]
            if fate == "stored":
                results[index] = _loaded(document)
                self.metrics.uploaded(news[index].length)
                self.events.publish("created", [document])
            elif fate == "taken":
                # Taken meanwhile by a writer that holds no lease, or the id is another image's:
                # `upload` sorts it out. The file stays only if a document at its path owns it.
                with self.store.errors():
                    owner = await self.store.images.at_path(document["file"], {"_id": 1})
                if owner is None:
                    await self._delete_file_quietly(document["file"])
            else:
                results[index] = BadInput(f"The database refused the document of {document['file']!r}.")
                await self._delete_file_quietly(document["file"])

    async def _upload_holding_lease(self, scope: Scope, new: NewImage, file: str, fields: dict[str, Any]) -> Image:
        for attempt in range(rewrite.MAX_ATTEMPTS):
            # A retry looks in the database whatever the storage says: see `_existing`.
            look: Look = "database" if attempt > 0 else "nowhere" if new.known_new else "storage first"
            image = await self._store(scope, new, file, fields, look=look)
            if image is not None:
                self.metrics.uploaded(new.length)
                return image
            # Written in between by something that holds no lease (another image took the
            # id, say): look again.
            await to_thread.run_sync(new.source.seek, 0)
            await rewrite.pause(attempt)
        raise rewrite.kept_changing(f"The image at {file!r}")

    async def _store(
        self, scope: Scope, new: NewImage, file: str, fields: dict[str, Any], *, look: Look
    ) -> Image | None:
        """One attempt at an upload; None if another writer changed the path meanwhile."""
        if look == "storage first" and new.image_id is None:
            # The usual upload: no id asked for, likely a new path. One storage call stores the
            # file unless the path has one; only then is the database asked whose it is.
            document = _new_document(scope, file, fields, image_id=None)
            checksum = await self._save_new(file, new, content_type=document["contentType"])
            if checksum is not None:
                document["checksum"] = checksum
                return await self._insert_created(scope, new, document, file_was_absent=True)
            look = "database"
        # Look before writing the file: a database outage or an id clash then costs no write.
        with self.store.errors():
            existing = None if look == "nowhere" else await self._existing(file, ask_storage=look == "storage first")
            if existing is not None and not scope.allows(existing):
                # Only where images of another scope share the owner's folder (a database that
                # ran both with and without IMAGE_SCOPE): their file must not be overwritten.
                raise Conflict(f"{file!r} is taken by an image outside your scope.")
            image_id = new.image_id
            if image_id is not None and existing is not None and existing["_id"] != image_id:
                if new.id_required:
                    raise Conflict(f"{file!r} belongs to image {existing['_id']}; upload without _id to replace it.")
            elif image_id is not None and existing is None and await self.store.images.by_id(image_id, {"_id": 1}):
                if new.id_required:
                    raise Conflict(f"The id {image_id} belongs to another image.")
                image_id = None
        if existing is not None:
            return await self._replace(scope, existing, new, fields)
        document = _new_document(scope, file, fields, image_id=image_id)
        return await self._create(scope, new, document, file_was_absent=look == "storage first")

    async def _save(self, key: str, new: NewImage, *, content_type: str) -> str:
        """Store the upload's bytes at `key`; their SHA-256, taken on the way."""
        reader = HashingReader(new.source)
        await self.storage.save(key, reader.as_file(), length=new.length, content_type=content_type)
        return reader.hexdigest()

    async def _save_new(self, key: str, new: NewImage, *, content_type: str) -> str | None:
        """As `_save`, unless the storage has a file at `key`: then None, and nothing stored."""
        reader = HashingReader(new.source)
        if not await self.storage.save_new(key, reader.as_file(), length=new.length, content_type=content_type):
            return None
        return reader.hexdigest()

    async def _refuse_duplicate(self, scope: Scope, new: NewImage, file: str, checksum: str) -> None:
        """Conflict if the upload asked to refuse duplicates and another image the caller can see
        holds identical bytes. Uploads of one file racing each other may both pass: it is a
        check, not a constraint (duplicates are allowed unless asked)."""
        if not new.refuse_duplicates:
            return
        condition = scoped({"checksum": checksum, "file": {"$ne": file}}, scope)
        with self.store.errors():
            twin = await self.store.images.first(condition, {"file": 1})
        if twin is not None:
            raise Conflict(f"The file is identical to that of image {twin['_id']} ({twin['file']!r}).")

    async def _existing(self, file: str, *, ask_storage: bool) -> dict[str, Any] | None:
        """The document at `file`, the caller holding its lease.

        By `file` alone: it is the storage key, so one path is one image whoever owns it.
        With `ask_storage`, a path with no stored file is taken to hold no image, without
        asking the database: every document has its file, and the storage answers at once
        where the embedded database reads the whole collection for a `file` (it finds only
        `_id`s by index): 10 ms at 200 images, a second at 20,000. A document whose file went missing
        is no exception that matters: inserting beside it fails on the unique `file` index,
        and the retry asks the database.
        """
        if ask_storage and not await self.storage.exists(file):
            return None
        return await self.store.images.at_path(file)

    async def _create(
        self, scope: Scope, new: NewImage, document: dict[str, Any], *, file_was_absent: bool
    ) -> Image | None:
        # File first, then the document: if the database refuses the document, the file goes.
        document["checksum"] = await self._save(document["file"], new, content_type=document["contentType"])
        return await self._insert_created(scope, new, document, file_was_absent=file_was_absent)

    async def _insert_created(
        self, scope: Scope, new: NewImage, document: dict[str, Any], *, file_was_absent: bool
    ) -> Image | None:
        """The document of a file just stored; None if the path or the id turned out taken."""
        key = document["file"]
        try:
            await self._refuse_duplicate(scope, new, key, document["checksum"])
        except ServiceError:  # refused, or the database went away: no document will name the file
            await self._delete_file_quietly(key)  # the path held no image
            raise
        try:
            with self.store.errors():
                if not await self.store.images.insert(document):
                    # The id is another image's, or the path had a document after all (one
                    # whose file is missing: see `_existing`), or a writer that holds no lease
                    # (a legacy process) took the path a moment ago. Only in that last case is
                    # the file at the path theirs now; else ours goes, as nothing was there.
                    if file_was_absent or await self.store.images.at_path(key, {"_id": 1}) is None:
                        await self._delete_file_quietly(key)
                    return None
        except Unavailable:
            # The database went away mid-insert: the document may have been stored all the same,
            # and then it needs its file. Kept: if the document never arrived, the file is only
            # an orphan taking space, which `python -m app.fsck` finds.
            log.warning("upload of %r: the database did not confirm the document; its file is kept", key)
            raise
        except ServiceError:
            await self._delete_file_quietly(key)
            raise
        self.events.publish("created", [document])
        return _loaded(document)

    async def _replace(
        self, scope: Scope, existing: dict[str, Any], new: NewImage, fields: dict[str, Any]
    ) -> Image | None:
        # In steps a crash can stop between without the document and the bytes parting ways:
        # see app/domain/replacement.py. A whole replacement: see rewrite.py.
        existing = await replacement.settle(self.store.images, self.storage, existing)
        staged = replacement.staging_key(existing["_id"])
        checksum = await self._save(staged, new, content_type=fields["contentType"])
        try:
            await self._refuse_duplicate(scope, new, existing["file"], checksum)
        except ServiceError:  # refused, or the database went away: the staged bytes are nobody's
            await replacement.discard_staged(self.storage, staged)
            raise
        # Facts of the old bytes that the new ones may lack go with them.
        kept = {name: value for name, value in existing.items() if name != "exif"}
        document = rewrite.next_revision(kept, **fields, checksum=checksum, **{replacement.PENDING: staged})
        try:
            with self.store.errors():
                replaced = await self.store.images.replace(document)
        except Unavailable:
            # The database may have stored the document all the same, and then it needs the
            # staged file; if it did not, the file is an orphan that fsck removes.
            log.warning("upload of %r: the database did not confirm the document; its file is kept", existing["file"])
            raise
        except ServiceError:
            await replacement.discard_staged(self.storage, staged)
            raise
        if not replaced:
            await replacement.discard_staged(self.storage, staged)
            return None
        try:
            with self.store.errors():
                document = await replacement.settle(self.store.images, self.storage, document)
        except ServiceError as error:
            # Acknowledged all the same: the document names where its bytes are, readers get
            # them, and the next upload or the start-up maintenance finishes the move.
            log.warning("image %s: its new file stays staged for now: %s", existing["_id"], error.detail)
        await self.thumbnails.forget(str(existing["_id"]))  # copies of the old bytes
        self.events.publish("updated", [document])
        return _loaded(document)

    async def update_data(
        self, scope: Scope, image_id: str, changes: Any, *, revisions: Collection[int] | None = None
    ) -> Image:
        """Merge `changes` into the image's data (`$unset` removes keys); the updated image.

        With `revisions`, the image must be at one of them (else StaleRevision).
        """
        to_set, to_unset = parse_data_patch(changes)
        return await self._rewrite_one(scope, image_id, rewrite.merge(to_set, to_unset), revisions)

    async def replace_data(
        self, scope: Scope, image_id: str, data: Any, *, revisions: Collection[int] | None = None
    ) -> Image:
        if not isinstance(data, dict):
            raise BadInput("The request body must be a JSON object: the image's new metadata.")
        return await self._rewrite_one(scope, image_id, rewrite.replace(check_data(data)), revisions)

    async def _rewrite_one(
        self, scope: Scope, image_id: str, change: rewrite.DataChange, revisions: Collection[int] | None
    ) -> Image:
        image = await self.get(scope, image_id)
        condition = {"_id": image.id}  # in scope, as `get` found; an image never changes owner
        with self.store.errors():
            async with self.leases.hold([path_key(image.file)]):
                document = await rewrite.rewrite_one(self.store.images, condition, change, revisions=revisions)
        if document is None:
            raise NotFound(f"No image with id {image_id}.")
        self.events.publish("updated", [document])
        return _loaded(document)

    async def delete(self, scope: Scope, image_id: str, *, revisions: Collection[int] | None = None) -> None:
        """Delete the image and its file. With `revisions`, it must be at one of them."""
        image = await self.get(scope, image_id)
        with self.store.errors():
            # The file goes under the lease too: an upload to this path waits until it is gone.
            async with self.leases.hold([path_key(image.file)]):
                document = await self.store.images.by_id(image.id)
                if document is None or not scope.allows(document):
                    raise NotFound(f"No image with id {image_id}.")
                rewrite.check_revision(document, revisions)
                if await self.store.images.delete(document["_id"]):
                    await self._delete_files_quietly(document)
                    self.events.publish("deleted", [document])
                    return
        raise rewrite.kept_changing(f"Image {image_id}")

    # -- many at once ---------------------------------------------------------------------------

    async def taken_paths(self, scope: Scope, paths: list[str]) -> set[str]:
        """Which of these canonical paths, as the caller gives them, already hold a stored file.

        Asked of the storage, as `_existing` does and for the same reason: a search of the
        collection by `file` may read every document (on the embedded database, for each of a
        batch's paths), so imports slowed down with every image already stored. A path whose
        document lost its file reads as free; `create_many` then meets its document on insert
        and hands it to `upload`.
        """
        placed = {scope.file_path(path): path for path in paths}
        slots = asyncio.Semaphore(LOOKUPS_AT_ONCE)

        async def stored(file: str) -> bool:
            async with slots:
                try:
                    return await self.storage.exists(file)
                except ServiceError:
                    return True  # unknown: left to `upload`, which meets the failure in its turn

        found = await asyncio.gather(*(stored(file) for file in placed))
        return {path for (file, path), taken in zip(placed.items(), found, strict=True) if taken}

    async def find(self, scope: Scope, query: ImageQuery, *, count: bool = True) -> Page:
        """One page of matches (raw documents, projected as asked) and, unless `count` is false,
        the count of all of them. A sorted page, or one asked for with `after` (app/domain/
        cursors.py), also has the cursor each of its images ends at and the next page's."""
        condition = scoped(query.filter, scope)
        walking = bool(query.sort) or query.after is not None
        sort = query.sort or ([("_id", 1)] if walking else [])
        bound_to = cursors.fingerprint(condition, sort) if walking else b""
        self.store.require_ready()
        with self.store.errors(user_query=True):
            where = condition
            if query.after:
                values = (await self._cursors()).read(query.after, scope=scope, query=bound_to)
                where = all_of([condition, cursors.keyset(sort, values)])
            projection = _with_id(query.projection) if walking else query.projection
            # One more than the page when walking: whether there is a next page.
            limit = query.limit + 1 if walking else query.limit
            # After a cursor, the page's condition is not the one to count.
            fetched, total = await self.store.images.page(
                where, projection, sort=sort, skip=query.skip, limit=limit, count=count and not query.after
            )
            items = fetched[: query.limit]
            # Totals are exact: counted, never a collection statistic (which some engines
            # estimate).
            if count and total is None and not query.after:  # the last page tells the total itself
                total = page_total(skip=query.skip, limit=query.limit, returned=len(fetched))
            if count and total is None:
                total = await self.store.images.count(condition)
            page = Page(total=total, items=items)
            if walking:
                page = await self._with_cursors(
                    page, scope, sort, bound_to, more=len(fetched) > query.limit, projection=query.projection
                )
        return page

    async def count(self, scope: Scope, query_filter: Mapping[str, Any]) -> int:
        """How many images match."""
        self.store.require_ready()
        with self.store.errors(user_query=True):
            return await self.store.images.count(scoped(query_filter, scope))

    async def _with_cursors(
        self,
        page: Page,
        scope: Scope,
        sort: list[tuple[str, int]],
        bound_to: bytes,
        *,
        more: bool,
        projection: dict[str, int] | None,
    ) -> Page:
        signer = await self._cursors()

        def cursor(document: Mapping[str, Any]) -> str:
            return signer.make(scope=scope, query=bound_to, values=cursors.sort_values(document, sort))

        if _shows(projection, [path for path, _ in sort]):
            each = [cursor(document) for document in page.items]
            next_cursor = each[-1] if more else None
        else:
            # `select` hid a sort key: the last image's sort values, read by its `_id`.
            each = None
            next_cursor = None
            if more:
                last = await self.store.images.by_id(page.items[-1]["_id"], {path: 1 for path, _ in sort})
                next_cursor = cursor(last or page.items[-1])
        if projection is not None and projection.get("_id") == 0:
            page = replace(page, items=[_without_id(document) for document in page.items])
        return replace(page, cursors=each, next_cursor=next_cursor)

    async def _cursors(self) -> cursors.Cursors:
        if self._signer is None:
            self._signer = cursors.Cursors(await self.store.secrets.shared(cursors.KEY_ID, cursors.new_key))
        return self._signer

    async def update_many(self, scope: Scope, query_filter: Mapping[str, Any], changes: Any) -> UpdateSummary:
        """Merge `changes` into the data of every match (`$unset` removes keys)."""
        to_set, to_unset = parse_data_patch(changes)
        condition = scoped(query_filter, scope)
        self.store.require_ready()
        with self.store.errors(user_query=True):
            result = await rewrite.rewrite_many(
                self.store.images,
                condition,
                rewrite.merge(to_set, to_unset),
                leases=self.leases,
                written=lambda documents: self.events.publish("updated", documents),
            )
        return UpdateSummary(matched=result.matched, modified=result.modified)

    async def delete_many(self, scope: Scope, query_filter: Mapping[str, Any]) -> int:
        """Delete every match and its file; the number of documents deleted.

        Works through the matches a batch at a time, so memory stays bounded and a batch that
        fails half-way never hides the ones after it.
        """
        condition = scoped(query_filter, scope)
        self.store.require_ready()
        deleted = 0
        with self.store.errors(user_query=True):
            async for batch in self.store.images.batches(condition, {"file": 1}, DELETE_BATCH):
                # Files go under the leases too: an upload to one of these paths waits until it is gone.
                async with self.leases.hold(path_key(doc["file"]) for doc in batch):
                    # Read again under the leases: an image may have stopped matching meanwhile.
                    ids = [doc["_id"] for doc in batch]
                    # Whole: the deleted events carry the images as they were.
                    gone = await self.store.images.by_ids(ids, condition)
                    deleted += await self.store.images.delete_by_ids([doc["_id"] for doc in gone])
                    await self._delete_files_of(gone)
                    self.events.publish("deleted", gone)
        return deleted

    async def duplicates(self, scope: Scope, *, skip: int, limit: int) -> list[DuplicateGroup]:
        """Groups of the caller's images that hold identical files (one checksum), by checksum;
        each with its full count and the ids of at most `GROUP_IDS` of its images."""
        check_skip(skip)
        check_count(limit, name="limit", minimum=1, maximum=MAX_GROUPS)
        self.store.require_ready()
        with self.store.errors():
            groups = await self.store.images.duplicate_groups(
                scoped({}, scope), skip=skip, limit=limit, ids_each=GROUP_IDS
            )
        return [
            DuplicateGroup(checksum=group.checksum, count=group.count, ids=[str(image_id) for image_id in group.ids])
            for group in groups
        ]

    async def fields(self, scope: Scope, query_filter: Mapping[str, Any]) -> list[str]:
        """The distinct top-level `data` keys over the matches."""
        self.store.require_ready()
        with self.store.errors(user_query=True):
            keys = await self.store.images.distinct("dataKeys", scoped(query_filter, scope))
        return sorted(key for key in keys if isinstance(key, str))

    async def field_values(self, scope: Scope, name: str, query_filter: Mapping[str, Any]) -> list[Any]:
        """The distinct values of `data.<name>` over the matches (array elements count singly)."""
        path = f"data.{check_path(name, what='field')}"
        self.store.require_ready()
        with self.store.errors(user_query=True):
            values = await self.store.images.distinct(path, scoped(query_filter, scope))
        return values

    async def facets(self, scope: Scope, name: str, query_filter: Mapping[str, Any], *, limit: int) -> list[Facet]:
        """The most frequent values of `data.<name>` over the matches, with their counts."""
        return await self._facets(scope, f"data.{check_path(name, what='field')}", query_filter, limit=limit)

    async def system_facets(
        self, scope: Scope, field: str, query_filter: Mapping[str, Any], *, limit: int
    ) -> list[Facet]:
        """The same for a system field: `contentType`, or `owner` (an image's `userId`)."""
        path = SYSTEM_FACETS.get(field)
        if path is None:
            raise BadInput(f"Counts are kept for the system fields {', '.join(SYSTEM_FACETS)}, not {field!r}.")
        return await self._facets(scope, path, query_filter, limit=limit, system=True)

    async def _facets(
        self, scope: Scope, path: str, query_filter: Mapping[str, Any], *, limit: int, system: bool = False
    ) -> list[Facet]:
        check_count(limit, name="limit", minimum=1, maximum=MAX_FACETS)
        self.store.require_ready()
        with self.store.errors(user_query=True):
            counts = await self.store.images.value_counts(
                path, scoped(query_filter, scope), limit=limit, arrays=not system
            )
        return as_facets(counts)

    async def _delete_files_of(self, documents: list[dict[str, Any]]) -> None:
        """`_delete_files_quietly` for each, a few side by side: all 2,000 of a batch waiting on
        worker threads at once raised the service's peak memory by 8 MB."""
        slots = asyncio.Semaphore(LOOKUPS_AT_ONCE)

        async def one(document: dict[str, Any]) -> None:
            async with slots:
                await self._delete_files_quietly(document)

        await asyncio.gather(*(one(document) for document in documents))

    async def _delete_files_quietly(self, document: Mapping[str, Any]) -> None:
        """The files of a deleted document: its own, the staged one of a replacement a crash
        left unfinished, and its resized copies."""
        pending = document.get(replacement.PENDING)
        if isinstance(pending, str):
            await self._delete_file_quietly(pending)
        await self._delete_file_quietly(document["file"])
        await self.thumbnails.forget(str(document["_id"]))

    async def _delete_file_quietly(self, key: str) -> None:
        # The document is gone (or was never written); a leftover file is only wasted space,
        # so report it for the operator rather than fail a request that otherwise succeeded.
        try:
            await self.storage.delete(key)
        except ServiceError as error:
            log.error("could not delete file %r from storage: %s", key, error.detail)


def page_total(*, skip: int, limit: int, returned: int) -> int | None:
    """The number of all matches when a page tells it (it is the last one); else None."""
    if returned < limit and (returned > 0 or skip == 0):
        return skip + returned
    return None


def _with_id(projection: dict[str, int] | None) -> dict[str, int] | None:
    """The projection, showing `_id` whatever `select` said: a cursor needs it."""
    if projection is None or projection.get("_id") != 0:
        return projection
    kept = {path: value for path, value in projection.items() if path != "_id"}
    return kept or None


def _without_id(document: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in document.items() if name != "_id"}


def _shows(projection: dict[str, int] | None, paths: list[str]) -> bool:
    """Whether documents read with `projection` hold the whole value at each of `paths`."""
    if projection is None:
        return True
    fields = {path: value for path, value in projection.items() if path != "_id"}
    including = any(fields.values())

    def shown(path: str) -> bool:
        if path == "_id":
            return True
        related = [
            name for name in fields if path == name or path.startswith(f"{name}.") or name.startswith(f"{path}.")
        ]
        if including:
            return any(path == name or path.startswith(f"{name}.") for name in related)
        return not related

    return all(shown(path) for path in paths)


def _loaded(raw: dict[str, Any]) -> Image:
    """An Image from a raw document that a PyMongo call returned."""
    image: Image = Image.model_validate(raw)
    return image


def _new_document(scope: Scope, file: str, fields: dict[str, Any], *, image_id: ObjectId | None) -> dict[str, Any]:
    """The document of a new image at `file`, at its first revision; a new id unless given."""
    document = {"_id": image_id or ObjectId(), "file": file, "userId": scope.owner, **fields, **LEGACY_FIELDS}
    return rewrite.next_revision(document)
