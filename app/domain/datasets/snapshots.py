"""Snapshots: a dataset frozen under a name, to say "trained on v3" and mean it.

Creating one copies, for every image the filter (or view) matches in the caller's scope, its
id, file, checksum, time, data and the other facts a listing shows, as they are at that
moment, into a collection of the snapshot's own (`snapshot_<id>`, keyed by the image id). The
registry (`snapshots`, one per owner and name) says which collection is whose, whether it is
complete, and its `version` (app/domain/datasets/versions.py). Nothing ever writes to a
snapshot's images afterwards: they can be listed and paged, compared with another snapshot,
and exported.

Creation streams: matches are read once, as a list page finds them, and written a batch at a time, so memory
stays flat at any size, and other requests run between the batches. Each batch is frozen under
its paths' leases, and its images marked, so that a replacement or delete of one of them keeps
the frozen bytes (app/domain/datasets/kept.py). A creation that fails or is cancelled is undone.
One cut short by a crash, or by a database that is gone (so nothing can be undone), stays
marked unfinished: it cannot be read or exported, and can be deleted.

An export of a snapshot has the frozen metadata and the frozen bytes of every image: at its path
while the image holds them, else kept. Bytes an image lost before snapshots kept them (before
this service kept bytes) are missing: such images are listed with `fileChanged: true` and
without bytes, never with a newer file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.domain.archives.export import Selection
from app.domain.datasets.kept import FLAG, KeptBytes
from app.domain.datasets.saved_filters import filter_as_json, filter_from_text, filter_to_text
from app.domain.datasets.versions import VERSIONED_FIELDS, VersionHash
from app.domain.metadata import check_count, check_name, check_new_name, check_skip
from app.domain.query import check_filter, scoped
from app.domain.scope import Scope
from app.domain.writes.leases import Leases, path_key
from app.domain.writes.rewrite import REVISION
from app.errors import Conflict, NotFound, ServiceError
from app.models import RENDERED_FIELDS, utc_now
from app.store import Store

log = logging.getLogger(__name__)

BATCH = 1000
MAX_DIFF_IDS = 10_000
FROZEN_FIELDS = (*RENDERED_FIELDS, REVISION)
COMPARED_FIELDS = ("file", "checksum", "time", "data")  # a change of any is a changed image


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    id: ObjectId
    name: str
    filter: dict[str, Any]
    created: datetime
    count: int | None  # None while unfinished
    version: str | None = None  # None while unfinished
    kept_bytes: int = 0  # of the kept files only this snapshot holds (listings say; else 0)

    @property
    def finished(self) -> bool:
        return self.count is not None

    @property
    def filter_json(self) -> Any:
        """The filter as clients see it: relaxed Extended JSON (`{"$date": …}` for dates)."""
        return filter_as_json(self.filter)


@dataclass(frozen=True, kw_only=True)
class SnapshotPage:
    total: int
    items: list[dict[str, Any]]  # frozen images, as documents


@dataclass(frozen=True, kw_only=True)
class IdList:
    count: int
    ids: list[str]  # at most the limit asked for


@dataclass(frozen=True, kw_only=True)
class Diff:
    added: IdList
    removed: IdList
    changed: IdList


class SnapshotService:
    def __init__(self, *, store: Store, leases: Leases, kept: KeptBytes) -> None:
        self.store = store
        self.leases = leases
        self.kept = kept

    async def create(self, scope: Scope, name: str, query_filter: Mapping[str, Any]) -> Snapshot:
        """Freeze the matches; Conflict if the caller has a snapshot of that name."""
        check_new_name(name, what="A snapshot")
        checked = check_filter(query_filter)
        snapshot_id = ObjectId()
        entry: dict[str, Any] = {
            "_id": snapshot_id,
            "owner": scope.owner,
            "name": name,
            "filter": filter_to_text(checked),
            "created": utc_now(),
            "marked": True,  # its images are marked as they are frozen (app/domain/datasets/kept.py)
        }
        self.store.require_ready()
        with self.store.errors(user_query=True):
            if not await self.store.snapshots.register(entry):
                raise Conflict(f"You have a snapshot named {name!r} already; snapshots never change.")
            try:
                count, version = await self._freeze(snapshot_id, scoped(checked, scope))
                await self.store.snapshots.finish(snapshot_id, count, version)
            except BaseException:
                await self._discard(snapshot_id, name)
                raise
        return _loaded({**entry, "count": count, "version": version})

    async def _freeze(self, snapshot_id: ObjectId, condition: Mapping[str, Any]) -> tuple[int, str]:
        """Copy the matches into the snapshot, a batch at a time, in `_id` order; how many, and
        the version. Each batch under its paths' leases, read again there: a replacement or
        delete of one of its images then comes wholly before (and is frozen) or wholly after
        (and finds the mark, so keeps the frozen bytes)."""
        projection = dict.fromkeys((*FROZEN_FIELDS, FLAG), 1)
        count = 0
        version = VersionHash()
        async for found in self.store.images.pages_by_id(condition, {"file": 1}, BATCH):
            async with self.leases.hold(path_key(document["file"]) for document in found):
                batch = await self.store.images.by_ids([document["_id"] for document in found], condition, projection)
                await self.kept.flag([document["_id"] for document in batch if not document.pop(FLAG, False)])
                await self.store.kept.mark(snapshot_id, batch)
                if batch:
                    await self.store.snapshots.freeze(snapshot_id, batch)
            version.add(batch)
            count += len(batch)
        return count, version.hexdigest()

    async def _discard(self, snapshot_id: ObjectId, name: str) -> None:
        """Remove a snapshot whose creation failed or was cancelled. If the database is the
        reason, this fails too: the snapshot then stays, marked unfinished, for its owner to
        delete (or, once unregistered, its leftovers for the sweep)."""
        try:
            with self.store.errors():
                await self.store.snapshots.unregister(snapshot_id)
                await self.kept.forget(snapshot_id)
        except ServiceError as error:
            log.warning("snapshot %r: its creation failed and it could not be removed (%s)", name, error.detail)

    async def list(self, scope: Scope) -> Sequence[Snapshot]:
        """The caller's snapshots, each with its version and the bytes only it keeps."""
        self.store.require_ready()
        with self.store.errors():
            found = [await self._versioned(document) for document in await self.store.snapshots.of_owner(scope.owner)]
        return await self._with_kept(found)

    async def describe(self, scope: Scope, name: str) -> Snapshot:
        """`get`, unfinished or not, with the bytes only it keeps."""
        (snapshot,) = await self._with_kept([await self.get(scope, name, finished=False)])
        return snapshot

    async def _with_kept(self, snapshots: Sequence[Snapshot]) -> Sequence[Snapshot]:
        with self.store.errors():
            kept = await self.kept.kept_only_by() if snapshots else {}
        return [dataclasses.replace(snapshot, kept_bytes=kept.get(snapshot.id, 0)) for snapshot in snapshots]

    async def _versioned(self, document: Mapping[str, Any]) -> Snapshot:
        """The snapshot, its version computed (and recorded) if it was made before versions were."""
        snapshot = _loaded(document)
        if snapshot.finished and snapshot.version is None:
            version = VersionHash()
            async for batch in self.store.snapshots.frozen(snapshot.id, dict.fromkeys(VERSIONED_FIELDS, 1), BATCH):
                version.add(batch)
            await self.store.snapshots.set_version(snapshot.id, version.hexdigest())
            snapshot = dataclasses.replace(snapshot, version=version.hexdigest())
        return snapshot

    async def get(self, scope: Scope, name: str, *, finished: bool = True) -> Snapshot:
        self.store.require_ready()
        with self.store.errors():
            document = await self.store.snapshots.get(scope.owner, check_name(name, what="A snapshot"))
        if document is None:
            raise NotFound(f"No snapshot named {name!r}.")
        with self.store.errors():
            snapshot = await self._versioned(document)
        if finished and not snapshot.finished:
            raise Conflict(f"The snapshot {name!r} is unfinished (its creation was cut short); delete it.")
        return snapshot

    async def delete(self, scope: Scope, name: str) -> None:
        """The snapshot, then the kept bytes no other snapshot holds (released at once; what a
        crash or a racing replacement leaves, the sweep after each delete releases)."""
        snapshot = await self.get(scope, name, finished=False)
        with self.store.errors():
            await self.store.snapshots.unregister(snapshot.id)
        try:
            with self.store.errors():
                await self.kept.sweep()  # its leftovers, and any an earlier delete left
        except ServiceError as error:
            # The snapshot is gone, as asked; what it leaves goes with the next sweep (the next
            # delete, a start, or fsck --repair).
            log.warning("snapshot %r deleted; what it leaves could not be cleared yet (%s)", name, error.detail)

    async def page(self, scope: Scope, name: str, *, skip: int, limit: int, max_limit: int) -> SnapshotPage:
        """Frozen images in image-id order."""
        check_skip(skip)
        check_count(limit, name="limit", minimum=1, maximum=max_limit)
        snapshot = await self.get(scope, name)
        with self.store.errors():
            items = await self.store.snapshots.frozen_page(snapshot.id, skip=skip, limit=limit)
        assert snapshot.count is not None
        return SnapshotPage(total=snapshot.count, items=items)

    async def diff(self, scope: Scope, name: str, other: str, *, limit: int) -> Diff:
        """From snapshot `name` to `other`: images added, removed, and changed (file, checksum,
        time or data), each with its count and at most `limit` ids. Both are read once, in id
        order, side by side."""
        check_count(limit, name="limit", minimum=0, maximum=MAX_DIFF_IDS)
        before, after = await self.get(scope, name), await self.get(scope, other)
        lists: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        counts = dict.fromkeys(lists, 0)

        def note(kind: str, image_id: ObjectId) -> None:
            counts[kind] += 1
            if len(lists[kind]) < limit:
                lists[kind].append(str(image_id))

        projection = dict.fromkeys(COMPARED_FIELDS, 1)
        with self.store.errors():
            old = self._ordered(before.id, projection)
            new = self._ordered(after.id, projection)
            left, right = await anext(old, None), await anext(new, None)
            while left is not None or right is not None:
                if right is None or (left is not None and left["_id"] < right["_id"]):
                    assert left is not None
                    note("removed", left["_id"])
                    left = await anext(old, None)
                elif left is None or right["_id"] < left["_id"]:
                    note("added", right["_id"])
                    right = await anext(new, None)
                else:
                    if any(left.get(field) != right.get(field) for field in COMPARED_FIELDS):
                        note("changed", left["_id"])
                    left, right = await anext(old, None), await anext(new, None)
        return Diff(**{kind: IdList(count=counts[kind], ids=lists[kind]) for kind in lists})

    async def _ordered(self, snapshot_id: ObjectId, projection: dict[str, int]) -> AsyncIterator[dict[str, Any]]:
        async for batch in self.store.snapshots.frozen(snapshot_id, projection, BATCH):
            for document in batch:
                yield document

    async def selection(self, scope: Scope, name: str) -> Selection:
        """What an export of the snapshot holds (app/domain/archives/export.py)."""
        snapshot = await self.get(scope, name)
        return Selection(
            batches=lambda projection: self.store.snapshots.frozen(snapshot.id, projection, BATCH),
            open_frozen=lambda frozen: self.kept.open_frozen(snapshot.id, frozen),
        )


def _loaded(document: Mapping[str, Any]) -> Snapshot:
    return Snapshot(
        id=document["_id"],
        name=document["name"],
        filter=filter_from_text(document["filter"]),
        created=document["created"],
        count=document.get("count"),
        version=document.get("version"),
    )
