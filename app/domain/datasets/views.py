"""Saved views: a named filter and sort, kept per owner, usable wherever a filter is.

A view is stored as `{owner, name, filter, sort, created, updated}`, unique per (owner, name)
(app/store/views.py). The filter is kept as relaxed Extended JSON text, not as a document:
its keys are MongoDB operators and dotted paths, which a database may refuse as field names,
and the text keeps dates and ids as what they are. It passes the query compiler's checks when
saved and again each time it is used, so a view can never run more than a filter could. A view
saved before a check that its filter now fails is still listed, read and deleted as usual, with
the reason in `problem`; using it is a 400 saying so, until it is saved again or deleted.

Using a view narrows a request: its filter is ANDed with whatever else the request filters on,
and its sort applies unless the request gives one. A view belongs to its owner; another user
naming it gets a 404, as for anything they cannot see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.domain.datasets.saved_filters import filter_as_json, filter_from_text, filter_to_text
from app.domain.metadata import check_name, check_new_name
from app.domain.query import ImageQuery, all_of, build_sort, check_filter
from app.domain.scope import Scope
from app.errors import BadInput, Conflict, NotFound
from app.models import utc_now
from app.store import Store

MAX_VIEWS = 1000  # per owner


@dataclass(frozen=True, kw_only=True)
class View:
    name: str
    filter: dict[str, Any]  # checked, as the query compiler gives it (dates as datetimes)
    sort: list[tuple[str, int]]
    created: datetime
    updated: datetime
    # Why the stored filter fails today's checks (then `filter` is as stored, unchecked).
    problem: str | None = None

    @property
    def filter_json(self) -> Any:
        """The filter as clients see it: relaxed Extended JSON (`{"$date": …}` for dates)."""
        return filter_as_json(self.filter)


class ViewService:
    def __init__(self, *, store: Store) -> None:
        self.store = store

    async def list(self, scope: Scope) -> list[View]:
        self.store.require_ready()
        with self.store.errors():
            return [_loaded(document) for document in await self.store.views.of_owner(scope.owner, limit=MAX_VIEWS)]

    async def get(self, scope: Scope, name: str) -> View:
        self.store.require_ready()
        with self.store.errors():
            document = await self.store.views.get(scope.owner, check_name(name, what="A view"))
        if document is None:
            raise NotFound(f"No view named {name!r}.")
        return _loaded(document)

    async def save(
        self, scope: Scope, name: str, query_filter: Mapping[str, Any], sort: Sequence[tuple[str, int]]
    ) -> View:
        """Create the view, or replace the one of that name."""
        check_new_name(name, what="A view")
        checked = check_filter(query_filter)
        keys = build_sort(sort)
        text = filter_to_text(checked)
        now = utc_now()
        views = self.store.views
        self.store.require_ready()
        with self.store.errors():
            if not await views.update(scope.owner, name, filter_text=text, sort=keys, updated=now):
                if await views.count(scope.owner) >= MAX_VIEWS:
                    raise Conflict(f"You have {MAX_VIEWS} views already; delete one first.")
                if not await views.create(scope.owner, name, filter_text=text, sort=keys, now=now):
                    # Saved by another request meanwhile: ours comes after.
                    await views.update(scope.owner, name, filter_text=text, sort=keys, updated=now)
            document = await views.get(scope.owner, name)
        if document is None:  # deleted by another request meanwhile
            raise NotFound(f"No view named {name!r}.")
        return _loaded(document)

    async def delete(self, scope: Scope, name: str) -> None:
        self.store.require_ready()
        with self.store.errors():
            deleted = await self.store.views.delete(scope.owner, check_name(name, what="A view"))
        if not deleted:
            raise NotFound(f"No view named {name!r}.")

    async def narrow(self, scope: Scope, query: ImageQuery, name: str) -> ImageQuery:
        """The query with the view's filter ANDed in, and its sort unless the query has one."""
        view = await self.get(scope, name)
        if view.problem is not None:
            raise BadInput(f"The view {name!r} can no longer be used; save it again or delete it. {view.problem}")
        return replace(query, filter=check_filter(all_of([view.filter, query.filter])), sort=query.sort or view.sort)


def _loaded(document: Mapping[str, Any]) -> View:
    stored = filter_from_text(document["filter"])
    try:
        checked, problem = check_filter(stored), None
    except BadInput as error:
        checked, problem = stored, error.detail
    return View(
        name=document["name"],
        filter=checked,
        sort=list(document["sort"]),
        created=document["created"],
        updated=document["updated"],
        problem=problem,
    )
