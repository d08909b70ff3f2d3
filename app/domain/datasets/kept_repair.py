"""What fsck checks of the bytes kept for snapshots (app/domain/datasets/kept.py).

- Frozen images and marks of deleted snapshots (a delete a crash cut short): cleared on repair,
  and holds of deleted snapshots (that too, or a keeper that raced the delete): released, as
  the sweep after every delete does.
- Kept files no hold names (a keeper that died between its copy and its holds, or a file put
  there by hand): deleted on repair, under the checksum's lease after asking again, and only
  past the grace period. A kept file a hold names is never a finding, and never deleted.
- Kept files a hold names but the storage lacks (deleted by hand): copied again on repair from
  an image that still has those bytes, if one does; else reported, as a missing file is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

from app.domain.datasets.kept import AT_ONCE, KeptBytes, kept_lease
from app.domain.media.checksums import read_checksum
from app.domain.writes import replacement
from app.domain.writes.repair import Finding, described
from app.errors import Conflict, NotFound
from app.storage.keys import KEPT, checksum_of_kept, kept_key, system_key


async def check(kept: KeptBytes, *, cutoff: datetime, repair: bool) -> AsyncIterator[Finding]:
    """Every finding about kept bytes as it is made (and, with `repair`, fixed)."""
    async for finding in _leftovers(kept, repair):
        yield finding
    async for finding in _holds_of_deleted(kept, repair):
        yield finding
    async for finding in _unneeded(kept, cutoff, repair):
        yield finding
    async for finding in _missing(kept, repair):
        yield finding


async def _leftovers(kept: KeptBytes, repair: bool) -> AsyncIterator[Finding]:
    for snapshot_id in await kept.store.snapshots.leftovers():
        released = await kept.forget(snapshot_id) if repair else 0
        detail = f"cleared, {released} kept files released" if repair else "its frozen images and marks are left"
        yield Finding(kind="leftover of a deleted snapshot", name=str(snapshot_id), detail=detail, repaired=repair)


async def _holds_of_deleted(kept: KeptBytes, repair: bool) -> AsyncIterator[Finding]:
    held = await kept.store.kept.snapshots()  # before the registry: see KeptBytes.sweep
    registered = set(await kept.store.snapshots.every_id())
    for snapshot_id in held:
        if snapshot_id in registered:
            continue
        released = await kept.release(snapshot_id) if repair else 0
        detail = f"{released} kept files released with it" if repair else "its kept files are released on repair"
        yield Finding(kind="hold of a deleted snapshot", name=str(snapshot_id), detail=detail, repaired=repair)


async def _unneeded(kept: KeptBytes, cutoff: datetime, repair: bool) -> AsyncIterator[Finding]:
    async for listed in kept.storage.list_files(folder=system_key(KEPT)):
        files = {
            checksum: item
            for item in listed
            if (checksum := checksum_of_kept(item.key)) is not None and not item.temporary and item.modified < cutoff
        }
        if not files:
            continue
        unheld = set(files) - await kept.store.kept.holders(files)
        if not unheld:
            continue
        deleted: set[str] = set()
        if repair:
            try:
                async with kept.leases.hold(kept_lease(checksum) for checksum in sorted(unheld)):
                    deleted = unheld - await kept.store.kept.holders(unheld)  # asked again, under the leases
                    await asyncio.gather(*(kept.storage.delete(kept_key(checksum)) for checksum in sorted(deleted)))
            except Conflict:
                deleted = set()  # a keeper held on to one of them: left for the next run
        for checksum in sorted(unheld):
            yield Finding(
                kind="unneeded kept file",
                name=files[checksum].key,
                detail=f"no snapshot holds it; {described(files[checksum])}",
                repaired=checksum in deleted,
            )


async def _missing(kept: KeptBytes, repair: bool) -> AsyncIterator[Finding]:
    slots = asyncio.Semaphore(AT_ONCE)

    async def present(checksum: str) -> bool:
        async with slots:
            return await kept.storage.exists(kept_key(checksum))

    previous: str | None = None
    async for holds in kept.store.kept.every():
        checksums = sorted({hold["checksum"] for hold in holds} - {previous})
        previous = holds[-1]["checksum"]
        found = await asyncio.gather(*(present(checksum) for checksum in checksums))
        for checksum, exists in zip(checksums, found, strict=True):
            if exists:
                continue
            repaired = repair and await _copy_again(kept, checksum)
            yield Finding(
                kind="missing kept file",
                name=kept_key(checksum),
                detail="a snapshot holds it" + ("; copied again from an image" if repaired else ""),
                repaired=repaired,
            )


async def _copy_again(kept: KeptBytes, checksum: str) -> bool:
    """Copy the bytes of `checksum` from an image that has them; whether one did."""
    images = kept.store.images
    try:
        async with kept.leases.hold([kept_lease(checksum)]):
            if await kept.storage.exists(kept_key(checksum)):
                return True
            async for batch in images.batches({"checksum": checksum}, {"file": 1, replacement.PENDING: 1}, 100):
                for document in batch:
                    try:
                        key, _ = await replacement.stat_stored(
                            kept.storage, document["file"], document.get(replacement.PENDING)
                        )
                        await kept.storage.copy(key, kept_key(checksum))
                    except NotFound:
                        continue
                    # Checked: the image may have been replaced since it was read.
                    if await read_checksum(kept.storage, kept_key(checksum)) == checksum:
                        return True
                    await kept.storage.delete(kept_key(checksum))
    except Conflict:
        pass
    return False
