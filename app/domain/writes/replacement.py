"""Replacing an image's bytes so that a crash at any step leaves a document that describes them.

A new image writes its file, then its document: a crash in between leaves only a file with no
document, which `python -m app.fsck` removes. A replacement cannot do the same at the image's
own key, since the old document and the new bytes (or the new document and the old bytes)
would then meet. So, holding the path's lease (app/domain/writes/leases.py):

1. the new bytes go to a key of their own in the service's folder (`staging_key`);
2. the document is replaced, new facts and all, naming that key in `pendingFile`: from here
   on the new bytes are the image's, and readers open them there (`open_stored`);
3. the staged file is moved onto `file` (a rename on disk, a server-side copy on S3);
4. `pendingFile` is removed.

A crash after 1 leaves an unreferenced staged file (fsck removes it past its grace period).
A crash after 2 or 3 leaves a document whose `pendingFile` still says where its bytes are;
the next upload to that path, the start-up maintenance and `fsck --repair` finish the job
(`settle`), and until then readers are served the right bytes. The storage layout stays the
legacy one: once settled, an image's bytes are at its `file`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from app.domain.writes.leases import Leases, path_key
from app.errors import Conflict, NotFound, ServiceError
from app.storage import Storage
from app.storage.base import FileStat, StoredFile
from app.storage.keys import system_key
from app.store.images import ImageStore

log = logging.getLogger(__name__)

PENDING = "pendingFile"
BATCH = 200


def staging_key(image_id: Any) -> str:
    """A fresh key for an image's next bytes; unique, so an abandoned one is never reused."""
    return system_key("pending", f"{image_id}.{uuid.uuid4().hex}")


async def open_stored(storage: Storage, file: str, pending: Any) -> StoredFile:
    """The bytes of the image at `file` whose document names `pending`. NotFound if missing."""
    if isinstance(pending, str):
        try:
            return await storage.open(pending)
        except NotFound:
            pass  # moved onto `file` since the document was read
    return await storage.open(file)


@dataclass(frozen=True, kw_only=True)
class Located:
    """An image's bytes, opened, and where they were found: `key` (with `pending`, as the
    document named it, to open them again) or a snapshot's kept copy (app/domain/datasets/kept.py)."""

    key: str
    pending: Any
    opened: StoredFile


async def locate_stored(storage: Storage, file: str, pending: Any) -> Located:
    """`open_stored`, with what opens the bytes again."""
    return Located(key=file, pending=pending, opened=await open_stored(storage, file, pending))


async def stat_stored(storage: Storage, file: str, pending: Any) -> tuple[str, FileStat]:
    """Where the bytes of the image at `file` are (see `open_stored`), and their size and time."""
    if isinstance(pending, str):
        try:
            return pending, await storage.stat(pending)
        except NotFound:
            pass  # moved onto `file` since the document was read
    return file, await storage.stat(file)


async def settle(images: ImageStore, storage: Storage, document: dict[str, Any]) -> dict[str, Any]:
    """Finish an interrupted replacement (steps 3 and 4); the document as it then is.

    The caller holds the image's lease. Storage or database errors propagate: the document
    still names its bytes correctly, so the next attempt can finish.
    """
    pending = document.get(PENDING)
    if pending is None:
        return document
    if isinstance(pending, str):
        with suppress(NotFound):  # gone: step 3 was done, the bytes are at `file` already
            await storage.move(pending, document["file"])
    await images.remove_field(document["_id"], PENDING, pending)
    return {name: value for name, value in document.items() if name != PENDING}


async def settle_all(images: ImageStore, *, storage: Storage, leases: Leases) -> int:
    """Finish every replacement a crash interrupted; how many. Start-up maintenance.

    The crashed process's lease on such an image is taken over once it expires, up to `ttl`
    (30 s) after the crash: no engine tells a dead holder from a live one sooner (README,
    "Concurrency"). An image that a live writer keeps past the wait is tried again after the
    others, until it is settled: only an upload settles it first, and a metadata change, say,
    keeps `pendingFile` as it is.
    """
    settled = 0
    held: list[Mapping[str, Any]] = []
    async for batch in images.pages_by_id({PENDING: {"$exists": True}}, {"file": 1}, BATCH):
        done, kept = await _settle_each(images, storage, leases, batch)
        settled, held = settled + done, held + kept
    while held:
        log.info("%d unfinished image replacements are on paths other writers hold; trying again", len(held))
        done, held = await _settle_each(images, storage, leases, held)
        settled += done
    if settled:
        log.info("finished %d image replacements that a crash had interrupted", settled)
    return settled


async def _settle_each(
    images: ImageStore, storage: Storage, leases: Leases, found: Sequence[Mapping[str, Any]]
) -> tuple[int, list[Mapping[str, Any]]]:
    """Settle each of `found`: how many were unsettled, and those a live writer kept past the wait."""
    settled = 0
    held = []
    for document in found:
        try:
            settled += await settle_one(images, storage, leases, document)
        except Conflict:
            held.append(document)
    return settled, held


async def settle_one(images: ImageStore, storage: Storage, leases: Leases, found: Mapping[str, Any]) -> bool:
    """Settle the document `found` under its lease, reading it again there; whether it was unsettled."""
    async with leases.hold([path_key(found["file"])], what=f"The image at {found['file']!r}"):
        document = await images.by_id(found["_id"])
        if document is None or PENDING not in document:
            return False  # settled (or deleted) meanwhile
        await settle(images, storage, document)
        return True


async def discard_staged(storage: Storage, key: str) -> None:
    """Remove a staged file no document names; failing that, leave it to fsck."""
    try:
        await storage.delete(key)
    except ServiceError as error:
        log.warning("could not remove the staged file %r: %s", key, error.detail)
