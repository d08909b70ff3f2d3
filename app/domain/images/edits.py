"""Edits: an image's metadata changed or replaced, images deleted, one or every match of a filter.

Each write holds its image's lease (app/domain/writes/leases.py) and raises its revision
(app/domain/writes/rewrite.py); a delete removes the document first, then the files.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.datasets.events import Events
from app.domain.datasets.kept import KeptBytes
from app.domain.images.documents import FileRemoval, loaded
from app.domain.images.reading import ImageReader
from app.domain.metadata import check_data, parse_data_patch, parse_merge_patch
from app.domain.query import scoped
from app.domain.scope import Scope
from app.domain.writes import rewrite
from app.domain.writes.leases import Leases, path_key
from app.errors import BadInput, NotFound
from app.models import Image
from app.store import Store

DELETE_BATCH = 2000  # images deleted per round of leases


@dataclass(frozen=True, kw_only=True)
class UpdateSummary:
    matched: int
    modified: int


class Edits:
    def __init__(
        self,
        *,
        store: Store,
        reader: ImageReader,
        leases: Leases,
        events: Events,
        kept: KeptBytes,
        removal: FileRemoval,
    ) -> None:
        self.store = store
        self.reader = reader  # finds the image in the caller's scope first
        self.leases = leases
        self.events = events  # every edit records what it wrote, under its leases (app/domain/datasets/events/)
        self.kept = kept  # a deleted image's bytes, kept first for the snapshots that froze them
        self.removal = removal

    async def update_data(
        self,
        scope: Scope,
        image_id: str,
        changes: Any,
        *,
        revisions: Collection[int] | None = None,
        deep: bool = False,
    ) -> Image:
        """Merge `changes` into the image's data; the updated image. One level, as the legacy
        service merged (`$unset` removes keys), or with `deep` a JSON Merge Patch (RFC 7396:
        objects merged at every depth, `null` removes a key).

        With `revisions`, the image must be at one of them (else StaleRevision).
        """
        return await self._rewrite_one(scope, image_id, _change(changes, deep=deep), revisions)

    async def replace_data(
        self, scope: Scope, image_id: str, data: Any, *, revisions: Collection[int] | None = None
    ) -> Image:
        if not isinstance(data, dict):
            raise BadInput("The request body must be a JSON object: the image's new metadata.")
        return await self._rewrite_one(scope, image_id, rewrite.replace(check_data(data)), revisions)

    async def _rewrite_one(
        self, scope: Scope, image_id: str, change: rewrite.DataChange, revisions: Collection[int] | None
    ) -> Image:
        image = await self.reader.get(scope, image_id)
        condition = {"_id": image.id}  # in scope, as `get` found; an image never changes owner
        with self.store.errors():
            async with self.leases.hold([path_key(image.file)]):
                document = await rewrite.rewrite_one(
                    self.store.images, condition, change, stamps=self.events, revisions=revisions
                )
        if document is None:
            raise NotFound(f"No image with id {image_id}.")
        return loaded(document)

    async def delete(self, scope: Scope, image_id: str, *, revisions: Collection[int] | None = None) -> None:
        """Delete the image and its file. With `revisions`, it must be at one of them."""
        image = await self.reader.get(scope, image_id)
        with self.store.errors():
            # The file goes under the lease too: an upload to this path waits until it is gone.
            async with self.leases.hold([path_key(image.file)]):
                document = await self.store.images.by_id(image.id)
                if document is None or not scope.allows(document):
                    raise NotFound(f"No image with id {image_id}.")
                rewrite.check_revision(document, revisions)
                await self.kept.keep([document])
                if await self.store.images.delete(document["_id"]):
                    await self.events.record("deleted", [document])
                    await self.removal.of_document(document)
                    return
        raise rewrite.kept_changing(f"Image {image_id}")

    async def update_many(
        self, scope: Scope, query_filter: Mapping[str, Any], changes: Any, *, deep: bool = False
    ) -> UpdateSummary:
        """Merge `changes` into the data of every match, as `update_data` does."""
        change = _change(changes, deep=deep)
        condition = scoped(query_filter, scope)
        self.store.require_ready()
        with self.store.errors(user_query=True):
            result = await rewrite.rewrite_many(
                self.store.images,
                condition,
                change,
                leases=self.leases,
                stamps=self.events,
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
                    await self.kept.keep(gone)
                    deleted += await self.store.images.delete_by_ids([doc["_id"] for doc in gone])
                    await self.events.record("deleted", gone)
                    await self.removal.of_documents(gone)
        return deleted


def _change(changes: Any, *, deep: bool) -> rewrite.DataChange:
    """The change a metadata update asks for (see `Edits.update_data`), checked."""
    if deep:
        return rewrite.merge_patch(parse_merge_patch(changes))
    to_set, to_unset = parse_data_patch(changes)
    return rewrite.merge(to_set, to_unset)
