"""What a set of images holds: identical files, metadata keys and values, and facets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.domain.datasets.facets import Facet, as_facets
from app.domain.metadata import check_count, check_skip
from app.domain.query import check_path, scoped
from app.domain.scope import Scope
from app.errors import BadInput
from app.store import Store

GROUP_IDS = 100  # image ids listed per group of identical files
MAX_GROUPS = 1000  # groups of identical files per page
MAX_FACETS = 10_000  # values per facet list
# System fields whose values can be counted, by the name clients use.
SYSTEM_FACETS = {"contentType": "contentType", "owner": "userId"}


@dataclass(frozen=True, kw_only=True)
class DuplicateGroup:
    checksum: str
    count: int  # every image of the group the caller can see
    ids: list[str]  # at most GROUP_IDS of them


class Analytics:
    def __init__(self, *, store: Store) -> None:
        self.store = store

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
