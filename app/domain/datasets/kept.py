"""Bytes kept for snapshots: what a snapshot froze stays readable after the image changes.

A snapshot freezes metadata; the bytes stay at the image's path for as long as the image holds
them. When an image some snapshot froze is about to lose them (replaced by an upload, or
deleted), they are first kept, by checksum, at `.imagestore/kept/<2 hex>/<checksum>` (a path no
user path can name): a hard link on local storage, a server-side copy on S3, so the service
never reads them. One file per checksum, however many snapshots and images share it.

Who holds what (app/store/kept.py):

- A *flag* on the image's own document (`snapshotted: true`), set as a snapshot freezes it,
  under its lease: the question each replacement and delete asks first, answered by the
  document it has read anyway. An image never frozen costs nothing more.
- A *mark* per image and snapshot that froze it (`frozen_marks`, `_id` "<image>:<snapshot>",
  with the checksum and revision frozen): read for a flagged image, one `_id` range through an
  index, to learn which snapshots froze these very bytes (the same checksum; for images frozen
  before checksums, the same revision); then the registry, as a mark outlives its snapshot
  until the sweep removes it. The flag stays (a replacement carries it on): it only costs that
  read.
- A *hold* per (checksum, snapshot, image) whose bytes were kept (`kept_holds`). The bytes go
  when their last hold does. Holds are inserted and deleted, never counted in place: some
  engines run an update as a read and a write (app/store/engines/), so two processes' `$inc`s
  of one counter could lose one.

Snapshots made before marks were are marked at start-up (`mark_old_snapshots`); until they all
are, each write also asks each of those snapshots directly.

Why nothing is lost, with two processes and a crash between any two steps:

- Freezing takes the leases of the batch's paths, reads the images again under them, flags and
  marks them, then writes them into the snapshot. A replacement or delete holds its path's lease and keeps
  the bytes before it changes the document: so it either ran before the freeze read the image
  (the snapshot freezes the new document) or after the snapshot holds the old one (and keeps it).
- Keeping copies the bytes, then inserts the holds, both under the checksum's lease, before the
  document changes; a crash in between leaves the image as it was (its bytes at its path), and
  at worst a kept file with no hold, which the next keeper reuses or fsck removes.
- Releasing (a snapshot deleted) deletes, for each checksum no other snapshot's hold names, the
  file, then the snapshot's holds, under the checksum's lease: so a keeper of the same checksum
  for another snapshot either sees the file gone and copies it again, or inserted its hold
  first and the file stays. A failure between the two leaves holds the next sweep releases.
- Deleting a snapshot removes its entry first: from then on no write keeps bytes for it (the
  registry is read after the marks). Its marks, frozen images and holds are then leftovers,
  cleared at once, or by the sweep after a crash.
- A snapshot deleted while a replacement of one of its images runs: the replacement may insert a
  hold for it after its holds were released. Such holds name a snapshot that is no more; the
  sweep that follows every snapshot delete (and runs at start-up, and in `fsck --repair`)
  releases them, as it does the holds of a delete a crash cut short.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from app.domain.media.checksums import read_checksum
from app.domain.scope import Scope
from app.domain.writes import replacement
from app.domain.writes.leases import Leases, path_key
from app.domain.writes.rewrite import REVISION, revision_of
from app.errors import NotFound
from app.storage import Storage
from app.storage.base import FileStat, StoredFile
from app.storage.keys import kept_key
from app.store import FieldUpdate, Store
from app.store.kept import hold_id

log = logging.getLogger(__name__)

AT_ONCE = 16  # storage calls side by side
FLAG = "snapshotted"  # on an image's document: some snapshot froze it (never shown to clients)
MARK_BATCH = 1000


def kept_lease(checksum: str) -> str:
    return f"kept:{checksum}"


@dataclass(frozen=True, kw_only=True)
class KeptCopy:
    key: str  # where the bytes are kept
    stat: FileStat
    file: str  # the path the image had when frozen


class KeptBytes:
    def __init__(self, *, store: Store, storage: Storage, leases: Leases) -> None:
        self.store = store
        self.storage = storage
        self.leases = leases
        # Once every snapshot's images are marked, a write's look at its marks is enough; until
        # then (snapshots made before marks were, while `mark_old_snapshots` runs) every write
        # also asks each of those. Snapshots made since are marked as they are frozen.
        self._all_marked = False

    # -- before a replacement or a delete ---------------------------------------------------------

    async def keep(self, documents: Sequence[Mapping[str, Any]]) -> None:
        """Keep the bytes of each of `documents` that a snapshot froze, for every such snapshot.

        The caller holds the documents' path leases and is about to replace or delete them;
        their bytes are where the documents say. Failures propagate: the write must not go on."""
        # The registry before the marks: a snapshot recorded as marked had its marks in first.
        unmarked = [] if self._all_marked else await self._unmarked()
        flagged = [document for document in documents if document.get(FLAG)]
        holders = await self._holders_by_marks(flagged) if flagged else {}
        if unmarked:
            for image_id, snapshot_ids in (await self._holders_asking(documents, unmarked)).items():
                holders[image_id] = [*holders.get(image_id, []), *snapshot_ids]
        if not holders:
            return
        # Only snapshots that still are: a mark outlives its snapshot until the sweep.
        registered = set(await self.store.snapshots.every_id())
        needed = []
        for document in documents:
            snapshot_ids = [held for held in holders.get(document["_id"], []) if held in registered]
            if snapshot_ids:
                needed.append((document, snapshot_ids))
        if needed:
            await self._keep(needed)

    async def _unmarked(self) -> list[Any]:
        unmarked = await self.store.snapshots.unmarked()
        self._all_marked = not unmarked
        return unmarked

    async def mark_old_snapshots(self) -> int:
        """Flag and mark the images of snapshots made before marks were, so that their bytes are
        kept from now on; how many snapshots. Start-up maintenance (any replica; each batch
        under its paths' leases, as a freeze; a snapshot is recorded as marked only once all its
        images are)."""
        marked = 0
        for snapshot_id in await self.store.snapshots.unmarked():
            projection = {"file": 1, "checksum": 1, REVISION: 1}
            async for batch in self.store.snapshots.frozen(snapshot_id, projection, MARK_BATCH):
                async with self.leases.hold(path_key(str(document["file"])) for document in batch):
                    await self.flag([document["_id"] for document in batch])
                    await self.store.kept.mark(snapshot_id, batch)
            await self.store.snapshots.set_marked(snapshot_id)
            marked += 1
        if marked:
            log.info("marked the images of %d snapshots made before snapshots kept bytes", marked)
        await self._unmarked()
        return marked

    async def flag(self, image_ids: Sequence[Any]) -> None:
        """Flag images a snapshot freezes (those gone meanwhile are no matter); the caller holds
        their paths' leases, so no writer of theirs runs in between."""
        if image_ids:
            flags = [FieldUpdate(image_id=image_id, fields={FLAG: True}) for image_id in image_ids]
            await self.store.images.set_missing(flags)

    async def _holders_by_marks(self, documents: Sequence[Mapping[str, Any]]) -> dict[Any, list[Any]]:
        """For each image, the snapshots whose marks say they froze the bytes it has now."""
        marks = await self.store.kept.frozen_by([document["_id"] for document in documents])
        holders = {}
        for document in documents:
            same = [mark["snapshot"] for mark in marks.get(document["_id"], []) if same_bytes(mark, document)]
            if same:
                holders[document["_id"]] = same
        return holders

    async def _holders_asking(
        self, documents: Sequence[Mapping[str, Any]], snapshot_ids: Sequence[Any]
    ) -> dict[Any, list[Any]]:
        """For each image, which of `snapshot_ids` froze the bytes it has now, asking each."""
        current = {document["_id"]: document for document in documents}
        holders: dict[Any, list[Any]] = defaultdict(list)
        ids = list(current)
        slots = asyncio.Semaphore(AT_ONCE)

        async def frozen_in(snapshot_id: Any) -> list[dict[str, Any]]:
            async with slots:
                return await self.store.snapshots.frozen_by_ids(snapshot_id, ids, {"checksum": 1, REVISION: 1})

        for snapshot_id, frozen in zip(snapshot_ids, await asyncio.gather(*map(frozen_in, snapshot_ids)), strict=True):
            for entry in frozen:
                if same_bytes(entry, current[entry["_id"]]):
                    holders[entry["_id"]].append(snapshot_id)
        return holders

    async def _keep(self, needed: list[tuple[Mapping[str, Any], list[Any]]]) -> None:
        located = []
        for document, snapshot_ids in needed:
            checksum = document.get("checksum")
            if not isinstance(checksum, str):  # written before checksums, not reached by the backfill yet
                checksum = await read_checksum(self.storage, _where(document))
                if checksum is None:
                    log.warning("image %s: its file is missing, so no snapshot can keep it", document["_id"])
                    continue
            located.append((document, checksum, snapshot_ids))
        checksums = sorted({checksum for _, checksum, _ in located})
        async with self.leases.hold((kept_lease(checksum) for checksum in checksums), what="A snapshot's kept file"):
            sources = {checksum: document for document, checksum, _ in located}
            slots = asyncio.Semaphore(AT_ONCE)

            async def copied(checksum: str) -> None:
                async with slots:
                    if not await self.storage.exists(kept_key(checksum)):
                        await _copy_stored(self.storage, sources[checksum], kept_key(checksum))

            await asyncio.gather(*(copied(checksum) for checksum in checksums))
            await self.store.kept.hold(
                [
                    _hold(checksum, snapshot_id, document)
                    for document, checksum, snapshot_ids in located
                    for snapshot_id in snapshot_ids
                ]
            )

    # -- a snapshot deleted -----------------------------------------------------------------------

    async def release(self, snapshot_id: Any) -> int:
        """Drop the snapshot's holds, and the kept files no hold names any more; how many files went."""
        released = 0
        async for holds in self.store.kept.of_snapshot(snapshot_id):
            checksums = sorted({hold["checksum"] for hold in holds})
            async with self.leases.hold((kept_lease(checksum) for checksum in checksums), what="A kept file"):
                # The files first, the holds after: a failure or a crash in between leaves holds
                # of a deleted snapshot, which the next sweep releases again.
                unneeded = set(checksums) - await self.store.kept.held_besides(checksums, snapshot_id)
                await _gathered(self.storage.delete(kept_key(checksum)) for checksum in sorted(unneeded))
                await self.store.kept.drop([hold["_id"] for hold in holds])
            released += len(unneeded)
        return released

    async def forget(self, snapshot_id: Any) -> int:
        """What a snapshot no longer registered leaves: its images' marks, its frozen images,
        then its kept files (`release`); how many kept files went. Repeatable after a crash."""
        async for batch in self.store.snapshots.frozen(snapshot_id, {"_id": 1}, MARK_BATCH):
            await self.store.kept.unmark(snapshot_id, [document["_id"] for document in batch])
        await self.store.snapshots.drop_frozen(snapshot_id)
        return await self.release(snapshot_id)

    async def sweep(self) -> int:
        """Clear what snapshots that are no more left: their frozen images and marks (a delete
        cut short), and their holds (that too, or a keeper that raced the delete); how many
        kept files went. Holds are read before the registry, so a snapshot registered after them
        cannot be mistaken for a deleted one."""
        released = 0
        for snapshot_id in await self.store.snapshots.leftovers():
            released += await self.forget(snapshot_id)
        held = await self.store.kept.snapshots()
        registered = set(await self.store.snapshots.every_id())
        for snapshot_id in held:
            if snapshot_id not in registered:
                released += await self.release(snapshot_id)
        if released:
            log.info("released %d kept files no snapshot holds", released)
        return released

    # -- reading ----------------------------------------------------------------------------------

    async def open_frozen(self, snapshot_id: Any, frozen: Mapping[str, Any]) -> replacement.Located | None:
        """The frozen bytes of an image, opened: at its path while the image holds them, else
        kept. None if they are neither (changed before snapshots kept bytes). NotFound if the
        image still holds them but its file is missing.

        The path is opened first and the image read after: a replacement changes the document
        before it moves new bytes onto the path, so a document still the frozen one after the
        open means the bytes opened are the frozen ones (an open file keeps the bytes it had)."""
        images = self.store.images
        current = await images.by_id(frozen["_id"], {"file": 1, "checksum": 1, REVISION: 1, replacement.PENDING: 1})
        if current is not None and current.get("file") == frozen.get("file") and same_bytes(frozen, current):
            pending = current.get(replacement.PENDING)
            opened: StoredFile | None = None
            with suppress(NotFound):  # deleted meanwhile, or missing: the second look tells
                opened = await replacement.open_stored(self.storage, current["file"], pending)
            again = await images.by_id(frozen["_id"], {REVISION: 1})
            if again is not None and revision_of(again) == revision_of(current):
                if opened is None:
                    raise NotFound(f"The file {current['file']!r} is missing from storage.")
                return replacement.Located(key=current["file"], pending=pending, opened=opened)
            if opened is not None:
                await opened.chunks.aclose()
        checksum = frozen.get("checksum")
        if not isinstance(checksum, str):
            hold = await self.store.kept.of_image(snapshot_id, frozen["_id"])
            checksum = None if hold is None else hold["checksum"]
        if checksum is None:
            return None
        try:
            opened = await self.storage.open(kept_key(checksum))
        except NotFound:
            return None
        return replacement.Located(key=kept_key(checksum), pending=None, opened=opened)

    async def kept_copy(self, scope: Scope, image_id: Any, checksum: str) -> KeptCopy | None:
        """The kept bytes `checksum` of image `image_id`, if a snapshot in `scope` holds them."""
        for hold in await self.store.kept.of_image_bytes(image_id, checksum):
            snapshot = await self.store.snapshots.by_id(hold["snapshot"])
            if snapshot is None or (scope.owner is not None and snapshot.get("owner") != scope.owner):
                continue
            frozen = await self.store.snapshots.frozen_by_ids(snapshot["_id"], [image_id], {"file": 1})
            try:
                stat = await self.storage.stat(kept_key(checksum))
            except NotFound:
                return None
            file = frozen[0]["file"] if frozen else f"{image_id}"
            return KeptCopy(key=kept_key(checksum), stat=stat, file=str(file))
        return None

    async def kept_only_by(self) -> dict[Any, int]:
        """Per snapshot, the bytes of the kept files it alone holds: what deleting it frees."""
        totals: dict[Any, int] = defaultdict(int)
        checksum: str | None = None
        holders: set[Any] = set()
        size = 0

        def counted() -> None:
            if len(holders) == 1:
                totals[next(iter(holders))] += size

        async for holds in self.store.kept.every():
            for hold in holds:
                if hold["checksum"] != checksum:
                    counted()
                    checksum, holders, size = hold["checksum"], set(), int(hold.get("size") or 0)
                holders.add(hold["snapshot"])
        counted()
        return totals


def same_bytes(frozen: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether the image `current` still has the bytes `frozen` describes."""
    if isinstance(frozen.get("checksum"), str):
        return bool(current.get("checksum") == frozen["checksum"])
    return revision_of(current) == revision_of(frozen)


def _where(document: Mapping[str, Any]) -> str:
    pending = document.get(replacement.PENDING)
    return pending if isinstance(pending, str) else str(document["file"])


async def _copy_stored(storage: Storage, document: Mapping[str, Any], target: str) -> None:
    """Copy the bytes `document` describes (at its staged key while a replacement is unsettled)."""
    pending = document.get(replacement.PENDING)
    if isinstance(pending, str):
        try:
            await storage.copy(pending, target)
            return
        except NotFound:
            pass  # moved onto `file` since the document was read
    await storage.copy(document["file"], target)


def _hold(checksum: str, snapshot_id: Any, document: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "_id": hold_id(checksum, snapshot_id, document["_id"]),
        "checksum": checksum,
        "snapshot": snapshot_id,
        "image": document["_id"],
        "size": document.get("size"),
    }


async def _gathered(calls: Iterable[Any]) -> None:
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(call: Any) -> None:
        async with slots:
            await call

    await asyncio.gather(*(one(call) for call in calls))
