"""What snapshots hold of the images' bytes: marks and holds (app/domain/datasets/kept.py).

- `frozen_marks`: `{_id: "<image id>:<snapshot id>", image, snapshot, checksum, revision}`, one
  per image a snapshot froze, inserted as it is frozen (with the checksum and revision frozen)
  and deleted with the snapshot. The question every replacement and delete asks ("which
  snapshots froze this image, and which bytes?") is then one `_id` range, which both engines
  read through an index (`key_range`); the snapshots themselves are a collection each, so asking
  each of them would cost a lookup per snapshot on every write.
- `kept_holds`: `{_id: "<checksum>:<snapshot id>:<image id>", checksum, snapshot, image, size}`,
  one per frozen image whose bytes are kept for its snapshot. Holders are counted by reading
  these, never by a counter: FerretDB 1.24 runs an update as a read and a write, so two `$inc`s
  of one counter can lose one. The `_id` puts a checksum's holds side by side: its holders are
  one `_id` range, which both engines read through an index (`key_range`).

Both are only inserted (a duplicate `_id` is the same fact twice) or deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from collections.abc import Collection as Many
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.errors import BulkWriteError

from app.store.database import Database
from app.store.engines.mongodb import Collection
from app.store.errors import DUPLICATE_KEY

MARKS = "frozen_marks"
HOLDS = "kept_holds"
HOLD_INDEXES = [
    IndexModel([("snapshot", ASCENDING), ("image", ASCENDING)], name="snapshot_1_image_1"),
    IndexModel([("image", ASCENDING), ("checksum", ASCENDING)], name="image_1_checksum_1"),
]
PAGE = 1000
RANGES_AT_ONCE = 16


def mark_id(image_id: Any, snapshot_id: Any) -> str:
    return f"{image_id}:{snapshot_id}"


def hold_id(checksum: str, snapshot_id: Any, image_id: Any) -> str:
    return f"{checksum}:{snapshot_id}:{image_id}"


class KeptStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def _marks(self) -> Collection:
        return await self._database.indexed(MARKS, [], key_ranges=True)

    async def _holds(self) -> Collection:
        return await self._database.indexed(HOLDS, HOLD_INDEXES, key_ranges=True)

    async def prepare(self) -> None:
        """Let `_id` ranges of the marks and holds be read through an index, from start-up."""
        await self._database.prepare_key_ranges(MARKS)
        await self._database.prepare_key_ranges(HOLDS)

    # -- marks ------------------------------------------------------------------------------------

    async def mark(self, snapshot_id: Any, frozen: Sequence[Mapping[str, Any]]) -> None:
        """Mark each of the `frozen` images (their documents as frozen) as frozen by the snapshot."""
        marks = [
            {
                "_id": mark_id(document["_id"], snapshot_id),
                "image": document["_id"],
                "snapshot": snapshot_id,
                "checksum": document.get("checksum"),
                "revision": document.get("revision"),
            }
            for document in frozen
        ]
        await _insert_new(await self._marks(), marks)

    async def frozen_by(self, image_ids: Sequence[Any]) -> dict[Any, list[dict[str, Any]]]:
        """Per image of `image_ids`, the marks of the snapshots that froze it, each an `_id`
        range read through an index, a few side by side."""
        marks = await self._marks()
        slots = asyncio.Semaphore(RANGES_AT_ONCE)

        async def of(image_id: Any) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            after = f"{image_id}:"
            async with slots:
                while page := await self._database.engine.key_range(
                    marks, after=after, below=f"{image_id};", limit=PAGE
                ):
                    found += page
                    if len(page) < PAGE:
                        break
                    after = page[-1]["_id"]
            return [mark for mark in found if mark.get("image") == image_id]  # not an id that merely starts alike

        found = await asyncio.gather(*(of(image_id) for image_id in image_ids))
        return {image_id: marks for image_id, marks in zip(image_ids, found, strict=True) if marks}

    async def unmark(self, snapshot_id: Any, image_ids: Sequence[Any]) -> None:
        await self._database.engine.delete_by_ids(
            await self._marks(), [mark_id(image_id, snapshot_id) for image_id in image_ids]
        )

    # -- holds ------------------------------------------------------------------------------------

    async def hold(self, holds: Sequence[Mapping[str, Any]]) -> None:
        """Insert holds (`{_id, checksum, snapshot, image, size}`); those already there stay."""
        await _insert_new(await self._holds(), [dict(hold) for hold in holds])

    async def holders(self, checksums: Many[str]) -> set[str]:
        """Which of `checksums` any hold names."""
        held = set()
        holds = await self._holds()
        for checksum in sorted(checksums):
            # The range of `<checksum>:…`; ':' sorts just below ';'.
            found = await self._database.engine.key_range(holds, after=f"{checksum}:", below=f"{checksum};", limit=1)
            if found:
                held.add(checksum)
        return held

    async def held_besides(self, checksums: Many[str], snapshot_id: Any) -> set[str]:
        """Which of `checksums` a hold of another snapshot than `snapshot_id` names: the holds of
        a checksum below and above that snapshot's own range of `_id`s."""
        held = set()
        holds = await self._holds()
        for checksum in sorted(checksums):
            own = f"{checksum}:{snapshot_id}:"
            below = await self._database.engine.key_range(holds, after=f"{checksum}:", below=own, limit=1)
            if below or await self._database.engine.key_range(
                holds, after=f"{checksum}:{snapshot_id};", below=f"{checksum};", limit=1
            ):
                held.add(checksum)
        return held

    async def of_snapshot(self, snapshot_id: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """The snapshot's holds, a page at a time in `_id` order; each page asked for once the
        previous one is done with (the caller deletes them as it goes)."""
        holds = await self._holds()
        async for page in self._database.engine.pages_by_id(holds, {"snapshot": snapshot_id}, None, PAGE):
            yield page

    async def of_image(self, snapshot_id: Any, image_id: Any) -> dict[str, Any] | None:
        return await (await self._holds()).find_one({"snapshot": snapshot_id, "image": image_id})

    async def of_image_bytes(self, image_id: Any, checksum: str) -> list[dict[str, Any]]:
        """The holds of the bytes `checksum` of image `image_id`, whatever the snapshot."""
        return await (await self._holds()).find({"image": image_id, "checksum": checksum}).to_list(None)

    async def every(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Every hold in `_id` order (a checksum's holds side by side), a page at a time."""
        holds = await self._holds()
        after = ""
        while page := await self._database.engine.key_range(holds, after=after, limit=PAGE):
            yield page
            after = page[-1]["_id"]

    async def snapshots(self) -> list[Any]:
        """Every snapshot some hold names."""
        holds = await self._holds()
        return await self._database.engine.distinct(holds, "snapshot", {})

    async def drop(self, hold_ids: Sequence[str]) -> None:
        await self._database.engine.delete_by_ids(await self._holds(), hold_ids)


async def _insert_new(collection: Collection, documents: list[dict[str, Any]]) -> None:
    """Insert each document unless its `_id` is there already."""
    if not documents:
        return
    try:
        await collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        refused = [found for found in error.details.get("writeErrors", []) if found.get("code") != DUPLICATE_KEY]
        if refused:
            raise
