"""Changing metadata: read the document, compute the new one here, replace it whole.

Callers hold the image's lease (app/domain/writes/leases.py), so no other writer interleaves. Every
write raises the document's `revision` (documents written elsewhere, such as the legacy
service's, have none: revision 0), which clients see as the ETag and may name in `If-Match` to
change only the state they read.

Documents are replaced whole, by `_id` alone, through the store (app/store/images.py): the
lease keeps other writers of this service out, and the store promises no more of a condition on
the write than the lease already gives (on some engines an update is a read and a write in two
steps, and a whole replacement is the one change every engine honours as written). A
replacement that matches nothing (the image was deleted by a writer that ignores leases, such
as the legacy service run against the same database) reads again, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import bson
from bson import ObjectId

from app.domain.datasets.events.keys import EVENT_FIELD
from app.domain.images.data_keys import data_keys
from app.domain.query import all_of
from app.domain.writes.leases import Leases, path_key
from app.errors import Busy, StaleRevision
from app.store.images import ImageStore

BATCH = 500
MAX_ATTEMPTS = 10
REVISION = "revision"

DataChange = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Rewritten:
    matched: int
    modified: int


def merge(to_set: Mapping[str, Any], to_unset: list[str]) -> DataChange:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        merged = {key: value for key, value in data.items() if key not in to_unset}
        merged.update(to_set)
        return merged

    return change


def merge_patch(patch: Mapping[str, Any]) -> DataChange:
    """RFC 7396: `null` removes a key, an object is merged into the object it meets (or
    replaces what is not one), anything else (an array included) replaces the value whole."""

    def merged(target: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
        result = dict(target) if isinstance(target, dict) else {}
        for key, value in changes.items():
            if value is None:
                result.pop(key, None)
            elif isinstance(value, Mapping):
                result[key] = merged(result.get(key), value)
            else:
                result[key] = value
        return result

    return lambda data: merged(data, patch)


def replace(new_data: dict[str, Any]) -> DataChange:
    return lambda _: new_data


def revision_of(document: Mapping[str, Any]) -> int:
    revision = document.get(REVISION)
    return revision if isinstance(revision, int) and not isinstance(revision, bool) else 0


def next_revision(document: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """`document` with `fields` changed and its revision raised: what replaces it."""
    return {**document, **fields, REVISION: revision_of(document) + 1}


def check_revision(document: Mapping[str, Any], revisions: Collection[int] | None) -> None:
    """StaleRevision unless `document` is at one of `revisions` (None: any will do)."""
    if revisions is not None and revision_of(document) not in revisions:
        raise StaleRevision(
            f"Image {document['_id']} is at revision {revision_of(document)}, not the one given; "
            "read it again before changing it."
        )


async def pause(attempt: int) -> None:
    """A short random wait before attempt `attempt + 1`, longer after each lost race."""
    await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))


def kept_changing(what: str) -> Busy:
    return Busy(f"{what} kept changing while this change was being applied; try again.")


class Stamps(Protocol):
    """Live events of writes (app/domain/datasets/events/): a stamp stored in each document
    written, then said to be written, or cancelled when its write did not happen."""

    def stamp(self, kind: Literal["created", "updated"]) -> str: ...

    def cancel(self, stamp: str | None) -> None: ...

    def written(self, documents: Iterable[Mapping[str, Any]]) -> None: ...


async def rewrite_one(
    images: ImageStore,
    condition: Mapping[str, Any],
    change: DataChange,
    *,
    stamps: Stamps,
    revisions: Collection[int] | None = None,
) -> dict[str, Any] | None:
    """Apply `change` to the data of the one image `condition` selects; the image as it now is.

    None if there is no such image. With `revisions`, the image must be at one of them when
    the change is written, else StaleRevision: the client's copy is out of date. The caller
    holds the image's lease.
    """
    document, _ = await _apply(images, condition, change, stamps, revisions=revisions)
    return document


async def rewrite_many(
    images: ImageStore,
    condition: Mapping[str, Any],
    change: DataChange,
    *,
    leases: Leases,
    stamps: Stamps,
) -> Rewritten:
    """Apply `change` to the data of every match, in `_id` order, a batch at a time, each batch
    under the leases of its images' paths, each changed document stamped."""
    matched = modified = 0
    async for found in images.pages_by_id(condition, {"file": 1}, BATCH):
        async with leases.hold(path_key(document["file"]) for document in found):
            # Read again under the leases: an image may have changed, or stopped matching, meanwhile.
            batch = await images.by_ids([document["_id"] for document in found], condition)
            done = await _rewrite_batch(images, condition, batch, change, stamps)
        matched, modified = matched + done.matched, modified + done.modified
    return Rewritten(matched=matched, modified=modified)


async def _rewrite_batch(
    images: ImageStore,
    condition: Mapping[str, Any],
    batch: list[dict[str, Any]],
    change: DataChange,
    stamps: Stamps,
) -> Rewritten:
    """Replacements, in order: a value the database refuses fails the first one and so writes
    nothing, since every match receives the same values. Images another writer
    changed in between are read again and changed on top, one by one. The counts."""
    changed = [(document, new) for document in batch if (new := _changed(document, change)) is not None]
    matched, modified = len(batch), len(changed)
    if not changed:
        return Rewritten(matched=matched, modified=modified)
    documents = [new for _, new in changed]
    for document in documents:
        document[EVENT_FIELD] = stamps.stamp("updated")
    try:
        written = await images.replace_each(documents)
    except BaseException:
        for document in documents:
            stamps.cancel(document[EVENT_FIELD])
        raise
    missed = await _not_written(images, documents) if written < len(changed) else []
    for intended in documents:
        if intended["_id"] in missed:
            stamps.cancel(intended[EVENT_FIELD])
    stamps.written(intended for intended in documents if intended["_id"] not in missed)
    for image_id in missed:
        found, done = await _apply(images, all_of([condition, {"_id": image_id}]), change, stamps)
        matched -= found is None  # deleted meanwhile, or no longer a match
        modified -= not done
    return Rewritten(matched=matched, modified=modified)


async def _not_written(images: ImageStore, intended: list[dict[str, Any]]) -> list[ObjectId]:
    """The ids of `intended` documents that are not stored as intended (another writer won)."""
    by_id = {document["_id"]: document for document in intended}
    found = {document["_id"]: document for document in await images.by_ids(list(by_id), {})}
    return [image_id for image_id, document in by_id.items() if not _same(found.get(image_id), document)]


async def _apply(
    images: ImageStore,
    condition: Mapping[str, Any],
    change: DataChange,
    stamps: Stamps,
    *,
    revisions: Collection[int] | None = None,
) -> tuple[dict[str, Any] | None, bool]:
    """Apply `change` to the image `condition` selects, read afresh: the image as it now is
    (None if nothing matches) and whether this wrote it (then stamped, and said written). The
    caller holds the image's lease."""
    for attempt in range(MAX_ATTEMPTS):
        document = await images.first(condition)
        if document is None:
            return None, False
        check_revision(document, revisions)
        new = _changed(document, change)
        if new is None:
            return document, False
        new[EVENT_FIELD] = stamps.stamp("updated")
        try:
            replaced = await images.replace(new)
        except BaseException:
            stamps.cancel(new[EVENT_FIELD])
            raise
        if replaced:
            stamps.written([new])
            return new, True
        stamps.cancel(new[EVENT_FIELD])
        await pause(attempt)
    raise kept_changing("The image")


def _changed(document: dict[str, Any], change: DataChange) -> dict[str, Any] | None:
    """The document after `change`, or None when that changes nothing."""
    data = document.get("data")
    current = data if isinstance(data, dict) else {}
    new_data = change(current)
    if _same(new_data, current) and document.get("dataKeys") == data_keys(new_data):
        return None
    return next_revision(document, data=new_data, dataKeys=data_keys(new_data))


def _same(left: Any, right: Any) -> bool:
    # Byte-equal BSON: Python's == takes 1 == 1.0 == True, which MongoDB stores differently.
    return bson.encode({"d": left}) == bson.encode({"d": right})
