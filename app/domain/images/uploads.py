"""Uploads: a new image's file, then its document; an existing path's image replaced whole.

A new image writes its file first and its document second, undoing the file if the document
cannot be written; a replacement stages its bytes and moves them into place (app/domain/writes/
replacement.py). So a failure or a crash never leaves a document pointing at nothing or at bytes
it does not describe. Every upload holds its path's lease (app/domain/writes/leases.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Literal

from anyio import to_thread
from bson import ObjectId

from app.domain.datasets.events import EVENT_FIELD, Events
from app.domain.datasets.kept import KeptBytes
from app.domain.images import data_keys
from app.domain.images.documents import LOOKUPS_AT_ONCE, FileRemoval, loaded, new_document
from app.domain.media.checksums import HashingReader
from app.domain.media.sniffing import sniff
from app.domain.media.thumbnails import Thumbnails
from app.domain.metadata import check_data
from app.domain.query import scoped
from app.domain.scope import Scope
from app.domain.writes import replacement, rewrite
from app.domain.writes.leases import Leases, path_key
from app.errors import BadInput, Conflict, Duplicate, ServiceError, TooLarge, Unavailable
from app.metrics import Metrics
from app.models import Image, to_stored_time, utc_now
from app.storage import Storage
from app.store import Store

log = logging.getLogger(__name__)

# Where an upload looks for the image already at its path (`image_at`).
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
    # Refuse (Duplicate, a Conflict) a file identical to one of another image the caller can see.
    refuse_duplicates: bool = False
    # The source's bytes are in memory: reading them waits on no disk.
    in_memory: bool = False


class Uploads:
    def __init__(
        self,
        *,
        store: Store,
        storage: Storage,
        leases: Leases,
        thumbnails: Thumbnails,
        events: Events,
        kept: KeptBytes,
        max_upload_bytes: int,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.storage = storage
        self.leases = leases
        self.thumbnails = thumbnails
        self.events = events  # every upload records what it wrote, under its lease (app/domain/datasets/events/)
        self.kept = kept  # a replaced image's bytes, kept first for the snapshots that froze them
        self.max_upload_bytes = max_upload_bytes
        self.metrics = metrics
        self.removal = FileRemoval(storage=storage, thumbnails=thumbnails)

    async def upload(self, scope: Scope, new: NewImage) -> Image:
        """Store a file and its document; the image already at that `file` is replaced whole."""
        file, fields = await prepared(scope, new, max_upload_bytes=self.max_upload_bytes)
        self.store.require_ready()
        with self.store.errors():
            async with self.leases.hold([path_key(file)], what=f"The image at {file!r}"):
                return await self._upload_holding_lease(scope, new, file, fields)

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
                file, fields = await prepared(scope, new, max_upload_bytes=self.max_upload_bytes)
            except ServiceError as error:
                results[index] = error
                continue
            if any(document["file"] == file for document in documents.values()):
                continue  # a second entry for one path: a replacement, left to `upload`
            documents[index] = new_document(scope, file, fields, image_id=new.image_id)
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
                document["checksum"] = await save(
                    self.storage, document["file"], new, content_type=document["contentType"]
                )
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
        for index in order:
            documents[index][EVENT_FIELD] = self.events.stamp("created")
        try:
            with self.store.errors():
                fates = await self.store.images.insert_each([documents[index] for index in order])
        except ServiceError as error:
            # No events: not confirmed (files kept, in case the database stored them: see `_create`).
            for index in order:
                self.events.cancel(documents[index].pop(EVENT_FIELD, None))
            if isinstance(error, Unavailable):
                log.warning("import: the database did not confirm %d documents; their files are kept", len(order))
            raise
        stored: list[dict[str, Any]] = []
        for index, fate in zip(order, fates, strict=True):
            document = documents[index]
            if fate == "stored":
                results[index] = loaded(document)
                self.metrics.uploaded(news[index].length)
                stored.append(document)
                continue
            self.events.cancel(document.pop(EVENT_FIELD, None))
            if fate == "taken":
                # Taken meanwhile by a writer that holds no lease, or the id is another image's:
                # `upload` sorts it out. The file stays only if a document at its path owns it.
                with self.store.errors():
                    owner = await self.store.images.at_path(document["file"], {"_id": 1})
                if owner is None:
                    await self.removal.file(document["file"])
            else:
                results[index] = BadInput(f"The database refused the document of {document['file']!r}.")
                await self.removal.file(document["file"])
        self.events.written(stored)

    async def taken_paths(self, scope: Scope, paths: list[str]) -> set[str]:
        """Which of these canonical paths, as the caller gives them, already hold a stored file.

        Asked of the storage, as `image_at` does and for the same reason: a search of the
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

    async def _upload_holding_lease(self, scope: Scope, new: NewImage, file: str, fields: dict[str, Any]) -> Image:
        for attempt in range(rewrite.MAX_ATTEMPTS):
            # A retry looks in the database whatever the storage says: see `image_at`.
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
            document = new_document(scope, file, fields, image_id=None)
            checksum = await save_new(self.storage, file, new, content_type=document["contentType"])
            if checksum is not None:
                document["checksum"] = checksum
                return await self._insert_created(scope, new, document, file_was_absent=True)
            look = "database"
        # Look before writing the file: a database outage or an id clash then costs no write.
        with self.store.errors():
            existing = (
                None
                if look == "nowhere"
                else await image_at(self.store, self.storage, file, ask_storage=look == "storage first")
            )
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
        document = new_document(scope, file, fields, image_id=image_id)
        return await self._create(scope, new, document, file_was_absent=look == "storage first")

    async def _create(
        self, scope: Scope, new: NewImage, document: dict[str, Any], *, file_was_absent: bool
    ) -> Image | None:
        # File first, then the document: if the database refuses the document, the file goes.
        document["checksum"] = await save(self.storage, document["file"], new, content_type=document["contentType"])
        return await self._insert_created(scope, new, document, file_was_absent=file_was_absent)

    async def _insert_created(
        self, scope: Scope, new: NewImage, document: dict[str, Any], *, file_was_absent: bool
    ) -> Image | None:
        """The document of a file just stored; None if the path or the id turned out taken."""
        key = document["file"]
        try:
            await refuse_duplicate(self.store, scope, new, key, document["checksum"])
        except ServiceError:  # refused, or the database went away: no document will name the file
            await self.removal.file(key)  # the path held no image
            raise
        document[EVENT_FIELD] = self.events.stamp("created")
        try:
            with self.store.errors():
                if not await self.store.images.insert(document):
                    self.events.cancel(document.pop(EVENT_FIELD))
                    # The id is another image's, or the path had a document after all (one
                    # whose file is missing: see `image_at`), or a writer that holds no lease
                    # (a legacy process) took the path a moment ago. Only in that last case is
                    # the file at the path theirs now; else ours goes, as nothing was there.
                    if file_was_absent or await self.store.images.at_path(key, {"_id": 1}) is None:
                        await self.removal.file(key)
                    return None
        except Unavailable:
            # The database went away mid-insert: the document may have been stored all the same,
            # and then it needs its file. Kept: if the document never arrived, the file is only
            # an orphan taking space, which `python -m app.fsck` finds. No event: not confirmed.
            self.events.cancel(document.get(EVENT_FIELD))
            log.warning("upload of %r: the database did not confirm the document; its file is kept", key)
            raise
        except ServiceError:
            self.events.cancel(document.pop(EVENT_FIELD, None))
            await self.removal.file(key)
            raise
        self.events.written([document])
        return loaded(document)

    async def _replace(
        self, scope: Scope, existing: dict[str, Any], new: NewImage, fields: dict[str, Any]
    ) -> Image | None:
        # In steps a crash can stop between without the document and the bytes parting ways:
        # see app/domain/writes/replacement.py. A whole replacement: see rewrite.py.
        existing = await replacement.settle(self.store.images, self.storage, existing)
        await self.kept.keep([existing])
        staged = replacement.staging_key(existing["_id"])
        checksum = await save(self.storage, staged, new, content_type=fields["contentType"])
        try:
            await refuse_duplicate(self.store, scope, new, existing["file"], checksum)
        except ServiceError:  # refused, or the database went away: the staged bytes are nobody's
            await replacement.discard_staged(self.storage, staged)
            raise
        # Facts of the old bytes that the new ones may lack go with them.
        kept = {name: value for name, value in existing.items() if name != "exif"}
        document = rewrite.next_revision(kept, **fields, checksum=checksum, **{replacement.PENDING: staged})
        document[EVENT_FIELD] = self.events.stamp("updated")
        try:
            with self.store.errors():
                replaced = await self.store.images.replace(document)
        except Unavailable:
            # The database may have stored the document all the same, and then it needs the
            # staged file; if it did not, the file is an orphan that fsck removes.
            self.events.cancel(document[EVENT_FIELD])
            log.warning("upload of %r: the database did not confirm the document; its file is kept", existing["file"])
            raise
        except ServiceError:
            self.events.cancel(document[EVENT_FIELD])
            await replacement.discard_staged(self.storage, staged)
            raise
        if not replaced:
            self.events.cancel(document[EVENT_FIELD])
            await replacement.discard_staged(self.storage, staged)
            return None
        try:
            with self.store.errors():
                document = await replacement.settle(self.store.images, self.storage, document)
        except ServiceError as error:
            # Acknowledged all the same: the document names where its bytes are, readers get
            # them, and the next upload or the start-up maintenance finishes the move.
            log.warning("image %s: its new file stays staged for now: %s", existing["_id"], error.detail)
        self.events.written([document])
        await self.thumbnails.forget(str(existing["_id"]))  # copies of the old bytes
        return loaded(document)


async def prepared(scope: Scope, new: NewImage, *, max_upload_bytes: int) -> tuple[str, dict[str, Any]]:
    """The upload's path and the document's fields; BadInput, TooLarge or NotAnImage."""
    if new.length > max_upload_bytes:
        raise TooLarge(f"The file is larger than the maximum upload size of {max_upload_bytes} bytes.")
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


async def refuse_duplicate(store: Store, scope: Scope, new: NewImage, file: str, checksum: str) -> None:
    """Duplicate if the upload asked to refuse duplicates and another image the caller can see
    holds identical bytes. Uploads of one file racing each other may both pass: it is a
    check, not a constraint (duplicates are allowed unless asked)."""
    if not new.refuse_duplicates:
        return
    condition = scoped({"checksum": checksum, "file": {"$ne": file}}, scope)
    with store.errors():
        twin = await store.images.first(condition, {"file": 1})
    if twin is not None:
        raise Duplicate(f"The file is identical to that of image {twin['_id']} ({twin['file']!r}).")


async def save(storage: Storage, key: str, new: NewImage, *, content_type: str) -> str:
    """Store the upload's bytes at `key`; their SHA-256, taken on the way."""
    reader = HashingReader(new.source)
    await storage.save(key, reader.as_file(), length=new.length, content_type=content_type)
    return reader.hexdigest()


async def save_new(storage: Storage, key: str, new: NewImage, *, content_type: str) -> str | None:
    """As `save`, unless the storage has a file at `key`: then None, and nothing stored."""
    reader = HashingReader(new.source)
    if not await storage.save_new(key, reader.as_file(), length=new.length, content_type=content_type):
        return None
    return reader.hexdigest()


async def image_at(store: Store, storage: Storage, file: str, *, ask_storage: bool) -> dict[str, Any] | None:
    """The document at `file`, the caller holding its lease.

    By `file` alone: it is the storage key, so one path is one image whoever owns it.
    With `ask_storage`, a path with no stored file is taken to hold no image, without
    asking the database: every document has its file, and the storage answers at once
    where the embedded database reads the whole collection for a `file` (it finds only
    `_id`s by index): 10 ms at 200 images, a second at 20,000. A document whose file went missing
    is no exception that matters: inserting beside it fails on the unique `file` index,
    and the retry asks the database.
    """
    if ask_storage and not await storage.exists(file):
        return None
    return await store.images.at_path(file)
