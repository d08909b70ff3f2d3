"""FerretDB 1.24 (the embedded default of `make run`, and the test database): what it answers
differently from MongoDB, and how the store works around each.

- **Reads.** It pushes a filter down to its storage only when the filter is a lone `_id`
  equality (and a sort only when it is `$natural`): any other filter, range, sort or `$in` is
  answered by decoding every document of the collection in Go, about 80 µs each. So the store
  finds an image by `_id` alone and checks the rest itself, reads a collection's matches from one
  cursor in natural order (`batches`: paging by `_id` would read the whole collection once per
  page), and makes every write name its document by `_id` alone (the store's `replace`): with
  any condition beside it a PATCH of one image among 20,000 took 724 ms. The unique index on
  `file` is not used either, so paths are looked up together (`find_at_paths`, the plain path's
  one `$in`, which ferretdb_sqlite/ answers through SQLite and that index): over 20,000 documents
  (SQLite backend) the `$in` of 1,000 paths decodes the collection once, 1.1–1.3 s, while a
  `find_one({"file": f})` per path, 16 at a time, scans up to its match each (all of it for a
  path not stored): 100 of them, 10 not stored, took 18.6 s.
- **Updates are not atomic.** An update (replace, `$set`, `$inc`, findAndModify) reads the
  matching documents and writes them back in a second, separate step, so two processes' updates
  of one document both "match" and the later silently undoes the earlier (measured: 30
  concurrent `replace_one({_id, revision: 0}, …)` → up to 8 report a match). Deletes, too, read
  then delete. An insert against a unique index is atomic (SQLite enforces it). So writers of an
  image take turns through leases, which are inserts (app/domain/writes/leases.py), never through a
  condition on the write, and a lease's `_id` names its holder, so that a delete by `_id` can
  only remove the deleter's own lease.
- **Embedded documents.** It compares an embedded document with the one it would replace by
  values only, ignoring keys, and silently skips the write when they look alike, even beside
  other changes in the same update: `$set: {"data": {"y": 1}}` leaves `{"x": 1}` in place. The
  store therefore changes documents by replacing them whole, which it honours.
- **Bulk writes.** An `update` command of 100 statements or more is never answered (measured
  with UpdateOne and ReplaceOne by `_id`: 99 in 0.5 s, 100 still unanswered after 20 s; SQLite
  backend): sent 99 at a time. A bulk write in which it refuses a value comes back without the
  counts PyMongo needs (a KeyError in the driver), where a single write carries the error: the
  first of a run of replacements goes alone.
- **Indexes.** It drops the connection when several indexes of one `createIndexes` command
  already exist: one index per command.
- **Error texts.** Some start with where in its Go source they were raised:
  "[sort.go:96 common.ValidateSortDocument] maximum sort keys exceeded: 40". Clients get the
  sentence, not the server's internals.
- **Storage format.** No array directly inside an array, no NUL in a string (the store keeps
  view sort keys as objects for this).
- **No change streams**, and no `$collStats` count that is exact on every backend: totals are
  counted.
- **Per-element queries.** `$elemMatch`, and `$ne`, `$nin`, `$not` and null through arrays,
  among others, are answered wrongly (ferretdb_filters.py has the list, measured against the
  per-element reference table). For such a filter the store asks FerretDB a wider one it answers
  right and checks each document it returns against the filter itself (app/store/matching.py),
  so every read (pages, totals, walks, distinct values, value counts) answers as MongoDB would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import bson

from app.errors import BadInput
from app.store.engines.ferretdb_filters import Asked, ask, fields_named
from app.store.engines.mongodb import Collection, MongoDB, in_batches
from app.store.matching import Unanswerable, distinct_values, matches, projected

# See "Bulk writes" above.
MAX_UPDATE_STATEMENTS = 99

_GO_SOURCE_LOCATION = re.compile(r"^\[[^\]]*\.go:\d+[^\]]*\]\s*")


class FerretDB(MongoDB):
    name = "FerretDB"
    max_statements_per_write = MAX_UPDATE_STATEMENTS

    def __init__(self, version: str = "") -> None:
        self.version = version

    def describe(self) -> str:
        return f"{self.name} {self.version}".strip()

    def error_text(self, message: str) -> str:
        return _GO_SOURCE_LOCATION.sub("", message).rstrip(".")

    def exact(self, condition: Mapping[str, Any]) -> bool:
        return ask(condition).exact

    async def count(self, collection: Collection, condition: Mapping[str, Any]) -> int:
        asked = ask(condition)
        if asked.exact:
            return await super().count(collection, condition)
        counted = 0
        async for _ in _checked(collection, condition, asked, _reading(condition, None)):
            counted += 1
        return counted

    async def distinct(self, collection: Collection, field: str, condition: Mapping[str, Any]) -> list[Any]:
        asked = ask(condition)
        if asked.exact:
            return await super().distinct(collection, field, condition)
        found: dict[Any, Any] = {}  # one entry per distinct value, not per match
        async for document in _checked(collection, condition, asked, _reading(condition, {field: 1})):
            for value in distinct_values([document], field):
                found.setdefault(_value_key(value), value)
        return distinct_values([{"values": list(found.values())}], "values")

    async def value_counts(
        self, collection: Collection, field: str, condition: Mapping[str, Any], *, limit: int
    ) -> list[tuple[Any, int]] | None:
        asked = ask(condition)
        if asked.exact:
            return await super().value_counts(collection, field, condition, limit=limit)
        counts: dict[Any, tuple[Any, int]] = {}
        async for document in _checked(collection, condition, asked, _reading(condition, {field: 1})):
            for value in distinct_values([document], field):
                key = _value_key(value)
                counts[key] = (value, counts.get(key, (value, 0))[1] + 1)
        return list(counts.values())

    async def find_page(
        self,
        collection: Collection,
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
        *,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int,
        count: bool,
    ) -> tuple[list[dict[str, Any]], int | None]:
        asked = ask(condition)
        if asked.exact:
            return await super().find_page(
                collection, condition, projection, sort=sort, skip=skip, limit=limit, count=count
            )
        page: list[dict[str, Any]] = []
        seen = 0
        async for document in _checked(collection, condition, asked, _reading(condition, projection), sort):
            if skip <= seen < skip + limit:
                page.append(projected(document, projection))
            seen += 1
            if seen >= skip + limit and not count:
                break
        return page, seen if count else None

    async def batches(
        self, collection: Collection, condition: Mapping[str, Any], projection: Mapping[str, Any] | None, size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        # One cursor in natural order: see "Reads".
        asked = ask(condition)
        if asked.exact:
            found = collection.find(condition, projection, batch_size=size)
            async for batch in in_batches(found, size):
                yield batch
            return
        checked = _checked(collection, condition, asked, _reading(condition, projection))
        async for batch in in_batches(_projected(checked, projection), size):
            yield batch

    async def in_order(
        self,
        collection: Collection,
        condition: Mapping[str, Any],
        projection: Mapping[str, Any] | None,
        sort: Sequence[tuple[str, int]],
        size: int,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        asked = ask(condition)
        if asked.exact or not sort:
            async for batch in super().in_order(collection, condition, projection, sort, size):
                yield batch
            return
        found = _checked(collection, condition, asked, _reading(condition, projection), sort)
        async for batch in in_batches(_projected(found, projection), size):
            yield batch

    async def replace_each(self, collection: Collection, documents: Sequence[dict[str, Any]]) -> int:
        if not documents:
            return 0
        # The first alone: see "Bulk writes".
        first, *rest = documents
        written = (await collection.replace_one({"_id": first["_id"]}, first)).matched_count
        return written + await super().replace_each(collection, rest)


async def _checked(
    collection: Collection,
    condition: Mapping[str, Any],
    asked: Asked,
    projection: Mapping[str, Any] | None,
    sort: Sequence[tuple[str, int]] = (),
) -> AsyncIterator[dict[str, Any]]:
    """The documents FerretDB finds for the wider filter that match the filter itself; a form
    neither FerretDB nor the check answers as MongoDB would is refused (BadInput)."""
    async for document in collection.find(asked.pushed, projection, sort=list(sort) or None):
        if checked_match(condition, document):
            yield document


async def _projected(
    documents: AsyncIterator[dict[str, Any]], projection: Mapping[str, Any] | None
) -> AsyncIterator[dict[str, Any]]:
    async for document in documents:
        yield projected(document, projection)


def checked_match(condition: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """Whether `document` matches, as the store's check decides; BadInput for a form it does not
    answer as MongoDB would (never a guess)."""
    try:
        return matches(condition, document)
    except Unanswerable as error:
        raise BadInput(f"This filter cannot be answered exactly on FerretDB: {error}.") from None


def _reading(condition: Mapping[str, Any], projection: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What to read of each document to check it and then show what `projection` shows."""
    if projection is not None and all(value == 0 for value in projection.values()):
        return None  # fields left out: read whole, left out after the check
    shown = dict(projection or {}) if projection is not None else None
    if shown is None:
        return None
    shown.pop("_id", None)
    return {**{field: 1 for field in fields_named(condition)}, **shown}


def _value_key(value: Any) -> Any:
    """Equal for values counted together: numbers by value (1 and 1.0), the rest by their BSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("number", value)
    return bson.encode({"v": value})
