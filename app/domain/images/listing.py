"""Listing: a page of matches with its total, by offset or by cursor, and counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from app.domain.datasets import cursors
from app.domain.query import ImageQuery, all_of, scoped
from app.domain.scope import Scope
from app.store import Store


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


class Listing:
    def __init__(self, *, store: Store) -> None:
        self.store = store
        self._signer: cursors.Cursors | None = None  # read from the database when first needed

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
