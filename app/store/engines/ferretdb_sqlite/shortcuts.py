"""Counts, pages and distinct values read from FerretDB's SQLite files, for engine.py.

FerretDB 1.24 hands SQLite nothing but a lookup by `_id`: every count, sort, `distinct` or
filter whose page does not fill early decodes the whole collection in Go, about 80 µs a
document (7.7 s to count `{"data.label": "cat"}` among 100,000 images). SQLite's JSON functions
test the same filter in about 2.5 µs a row (0.23 s). So where sql.py can
translate the filter, the answer comes from SQLite: the count, the page's ids (then looked up
through FerretDB, by its index), or the strings of a field. Each is exactly what MongoDB's rules
give; where SQLite cannot say, the answer is None and FerretDB is asked. Each answer takes one
read of the table (a page SQLite finds takes a second, for the page itself), and whether SQLite
can answer a filter at all (`decides`) takes none.

Every answer is None until start-up's check (layout.py) has found FerretDB 1.24.x and its files
laid out as sql.py reads them: in another layout SQLite would not fail, it would answer wrongly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bson import Int64, ObjectId
from bson.tz_util import utc
from pymongo.asynchronous.collection import AsyncCollection

from app.store.engines.ferretdb_sqlite import layout, paths, walk
from app.store.engines.ferretdb_sqlite.files import DOCUMENT, opened, quoted, table_name
from app.store.engines.ferretdb_sqlite.sql import (
    NUMBER_TYPES,
    At,
    Parameters,
    Where,
    by_id_alone,
    conditions,
    locate,
    sql_list,
    translate,
)
from app.store.engines.ferretdb_sqlite.tuning import tune

log = logging.getLogger(__name__)

Answer = TypeVar("Answer")


@dataclass(frozen=True)
class PagePlan:
    total: int  # every match
    ids: list[Any] | None  # the page's ids in order; None: the server's own find is no slower
    # Each image's `revision` when its id was read: one looked up with another (changed or
    # deleted in between) makes the server find the page itself, so that a page is always one
    # moment's answer.
    revisions: list[Any] | None = None


class SQLiteShortcuts:
    """Counts and pages read from FerretDB's SQLite files in `directory`, for engine.py. Each
    answer is None where SQLite cannot say exactly, or the files cannot be read, and every one
    is None until `check` has found the files laid out as this package reads them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._database: str | None = None  # the database whose files passed `check`

    async def start(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        """At start-up: check FerretDB's version and files, and only if they are as this package
        reads them, answer from them and index ids (tuning.py)."""
        if await self.check(collection):
            await tune(collection, directory=self.directory)

    async def check(self, collection: AsyncCollection[dict[str, Any]]) -> bool:
        """Whether the files of `collection`'s database are laid out as this package reads them
        (layout.py); from now on the shortcuts answer for that database only if so. A mismatch
        is logged, once, with its reason."""
        problem = await layout.mismatch(collection, directory=self.directory)
        if problem is not None:
            self._database = None
            log.warning(
                "FerretDB's SQLite files in %s are not used (FerretDB answers every query itself, and lookups "
                "by id stay unindexed): %s",
                self.directory,
                problem,
            )
            return False
        self._database = collection.database.name
        return True

    def reads(self, collection: AsyncCollection[dict[str, Any]]) -> bool:
        """Whether the files of `collection`'s database passed `check`."""
        return collection.database.name == self._database

    def decides(self, condition: Mapping[str, Any]) -> bool:
        """Whether SQLite can answer for `condition` at all, found without reading: the filter
        translates to SQL, and is not the lookup by a lone `_id` FerretDB makes through an index.
        Rows holding an array on a filter path may still leave an answer to FerretDB."""
        return self._database is not None and not by_id_alone(condition) and conditions(condition) is not None

    async def count(self, collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any]) -> int | None:
        """How many documents of `collection` match `condition`."""
        where = None if by_id_alone(condition) else conditions(condition)
        if where is None:
            return None
        return await self._read(collection, partial(_count_where, where=where), "a count")

    async def plan_page(
        self,
        collection: AsyncCollection[dict[str, Any]],
        condition: Mapping[str, Any],
        *,
        sort: Sequence[tuple[str, int]],
        skip: int,
        limit: int,
    ) -> PagePlan | None:
        """The number of matches and, where SQLite finds the page sooner than FerretDB would,
        the ids of the page's images in order."""
        if by_id_alone(condition):
            return None
        parameters = Parameters()
        translated = translate(condition, parameters)
        keys = [(locate(path, parameters), direction) for path, direction in sort]
        if translated is None:
            return None
        match, unsure = translated
        located = [(at, direction) for at, direction in keys if at is not None]
        query = _PageQuery(
            match=match,
            unsure=unsure,
            keys=located,
            # A sort path SQL cannot name still leaves the total to count here: whoever counts
            # beside FerretDB's page then need not ask again (engine.py `find_page`).
            sortable=len(located) == len(keys),
            parameters=parameters,
            skip=skip,
            limit=limit,
        )
        return await self._read(collection, partial(_plan, query=query), "a page")

    async def distinct_values(
        self, collection: AsyncCollection[dict[str, Any]], field: str, condition: Mapping[str, Any]
    ) -> list[Any] | None:
        """What FerretDB's `distinct(field, condition)` gives (each value once, an array's
        elements singly, in MongoDB's order)."""
        query = _field_query(condition, field)
        if query is None:
            return None
        return await self._read(collection, partial(_distinct_values, query=query), "distinct values")

    async def value_counts(
        self, collection: AsyncCollection[dict[str, Any]], field: str, condition: Mapping[str, Any], *, limit: int
    ) -> list[tuple[Any, int]] | None:
        """How many matching documents hold each value at `field`, an array's distinct elements
        once each (1 and 1.0 being one value, `True` and 1 two): every value at least as
        frequent as the `limit`-th most frequent, in no particular order."""
        query = _field_query(condition, field)
        if query is None:
            return None
        return await self._read(collection, partial(_value_counts, query=query, limit=limit), "value counts")

    async def one_by_one(self, collection: AsyncCollection[dict[str, Any]], count: int) -> bool:
        """Whether `count` statements by a lone `_id` (one index read each) cost FerretDB less
        than one by their `$in`, which it answers by decoding every document."""
        documents = await self._read(collection, _documents, "the number of documents")
        return documents is not None and count * LOOKUP_SECONDS < documents * FERRETDB_READ_SECONDS

    async def next_page(
        self, collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any], *, after: int, limit: int
    ) -> list[walk.Step] | None:
        """The next rows of a walk through the matches in natural order (app/store/engines/
        ferretdb_sqlite/walk.py); None where SQLite cannot say."""
        return await self._read(
            collection, partial(walk.next_page, condition=condition, after=after, limit=limit), "a walk's page"
        )

    async def at_paths(
        self,
        collection: AsyncCollection[dict[str, Any]],
        files: Sequence[str],
        condition: Mapping[str, Any],
        *,
        shown_id: bool,
        fields: Sequence[str],
    ) -> list[paths.Found] | None:
        """The documents stored at `files` that match `condition`, with the fields asked
        (app/store/engines/ferretdb_sqlite/paths.py); None where SQLite cannot say."""
        found_at = partial(paths.found_at, files=files, condition=condition, shown_id=shown_id, fields=fields)
        return await self._read(collection, found_at, "the documents at paths")

    async def key_range(
        self,
        collection: AsyncCollection[dict[str, Any]],
        *,
        after: str,
        below: str | None,
        through: str | None,
        limit: int,
    ) -> list[str] | None:
        """The text `_id`s after `after` and below `below` (or up to `through`), in order, from
        the index tuning.py adds; None where SQLite cannot say."""
        return await self._read(
            collection, partial(_key_range, after=after, below=below, through=through, limit=limit), "a key range"
        )

    async def _read(
        self, collection: AsyncCollection[dict[str, Any]], read: Callable[..., Answer | None], what: str
    ) -> Answer | None:
        """`read(connection, table)` on the collection's table (None if FerretDB has not made
        it yet), in a worker thread; None without reading files that have not passed `check`."""
        database, name = collection.database.name, collection.name
        if database != self._database:
            return None

        def run() -> Answer | None:
            with opened(self.directory, database) as connection:
                return read(connection, table_name(connection, name))

        try:
            return await asyncio.to_thread(run)
        except (OSError, sqlite3.Error) as error:
            log.debug("reading %s from FerretDB's SQLite files failed, FerretDB answers: %s", what, error)
            return None


def _key_range(
    connection: sqlite3.Connection, table: str | None, *, after: str, below: str | None, through: str | None, limit: int
) -> list[str] | None:
    if table is None:
        return []
    # The expression of tuning.py's index, compared as it stores a text `_id`: JSON text, quoted.
    key = f"{DOCUMENT}->'$._id'"
    upper, bound = (f" AND {key} < ?", [json.dumps(below)]) if below is not None else ("", [])
    if through is not None:
        upper, bound = f" AND {key} <= ?", [json.dumps(through)]
    rows = connection.execute(
        f"SELECT {key} FROM {quoted(table)} WHERE {key} > ?{upper} ORDER BY {key} LIMIT ?",
        [json.dumps(after), *bound, limit],
    ).fetchall()
    keys = [json.loads(row[0]) for row in rows]
    if not all(isinstance(found, str) for found in keys):
        return None  # not text keys: FerretDB answers
    return keys


def _documents(connection: sqlite3.Connection, table: str | None) -> int:
    return 0 if table is None else int(connection.execute(f"SELECT count(*) FROM {quoted(table)}").fetchone()[0])


def _count_where(connection: sqlite3.Connection, table: str | None, *, where: Where) -> int | None:
    if table is None:
        return 0
    row = connection.execute(
        f"SELECT count(*) FILTER (WHERE {where.match}), count(*) FILTER (WHERE {where.unsure}) FROM {quoted(table)}",
        where.parameters,
    ).fetchone()
    matches, unsure = int(row[0]), int(row[1])
    return None if unsure else matches


# What a sort key's values may all be for SQLite to order them as MongoDB does: one kind each.
# (Across kinds MongoDB orders by kind first, and a missing value or an array sorts by rules
# of its own: such sorts are left to FerretDB.) Strings compare byte by byte in both.
SORTABLE_KINDS = (("string",), NUMBER_TYPES, ("date",), ("objectId",), ("bool",))
# Costs that decide who finds a page (2 shared cores, 100,000 images; bench/bench_embedded.py):
# FerretDB decodes each document it reads in Go, SQLite tests a filter on a row in C, and the
# page's documents are then looked up by id through FerretDB, each an index read.
FERRETDB_READ_SECONDS = 80e-6
SQLITE_ROW_SECONDS = 2.5e-6
LOOKUP_SECONDS = 0.7e-3


@dataclass(frozen=True)
class _PageQuery:
    match: str
    unsure: str
    keys: list[tuple[At, int]]
    sortable: bool  # every sort key is among `keys`
    parameters: Parameters
    skip: int
    limit: int


def _plan(connection: sqlite3.Connection, table: str | None, *, query: _PageQuery) -> PagePlan | None:
    if table is None:
        return PagePlan(total=0, ids=[])
    match = query.match
    kinds = [
        f"count(*) FILTER (WHERE {match} AND {at.type} IN ({sql_list(kind)}))"
        for at, _ in query.keys
        for kind in SORTABLE_KINDS
    ]
    row = connection.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {match}), count(*) FILTER (WHERE {query.unsure})"
        + "".join(f", {column}" for column in kinds)
        + f" FROM {quoted(table)}",
        query.parameters.values,
    ).fetchone()
    rows, matches, unsure = int(row[0]), int(row[1]), int(row[2])
    if unsure:
        return None
    if matches <= query.skip:
        return PagePlan(total=matches, ids=[])
    if not query.sortable:
        return PagePlan(total=matches, ids=None)
    per_key = [row[3 + index : 3 + index + len(SORTABLE_KINDS)] for index in range(0, len(kinds), len(SORTABLE_KINDS))]
    if not all(matches in counts for counts in per_key):
        return PagePlan(total=matches, ids=None)  # the sort is FerretDB's to do
    # Unsorted, FerretDB stops at the page's last match: about this far into the collection.
    wanted = query.skip + query.limit
    read = rows if query.keys or wanted >= matches else math.ceil(wanted * rows / matches)
    page = min(query.limit, matches - query.skip)
    if rows * SQLITE_ROW_SECONDS + page * LOOKUP_SECONDS >= read * FERRETDB_READ_SECONDS:
        return PagePlan(total=matches, ids=None)
    order = [f"{at.value} {'DESC' if direction < 0 else 'ASC'}" for at, direction in query.keys]
    limit, offset = query.parameters(query.limit), query.parameters(query.skip)
    found = connection.execute(
        f'SELECT json_extract({DOCUMENT}, \'$."_id"\'), json_extract({DOCUMENT}, \'$."$s".p."_id".t\'),'
        f" json_extract({DOCUMENT}, '$.\"revision\"')"
        f" FROM {quoted(table)} WHERE {match} ORDER BY {', '.join([*order, 'rowid'])}"
        f" LIMIT {limit} OFFSET {offset}",
        query.parameters.values,
    ).fetchall()
    ids = [stored_id(value, kind) for value, kind, _ in found]
    if any(image_id is None for image_id in ids):
        return PagePlan(total=matches, ids=None)
    return PagePlan(total=matches, ids=ids, revisions=[revision for _, _, revision in found])


@dataclass(frozen=True)
class _FieldQuery:
    """The values of a field over the matches of a filter, in SQL."""

    match: str
    unsure: str  # the filter cannot be told here, or the field's path crosses an array
    at: At
    parameters: Parameters

    def values(self, table: str) -> str:
        """A select of `(row, value, kind, unsure)` in one read of the table: each matching
        row's value, or each element of its array, and each unsure row at least once, flagged,
        so that the same read tells whether SQLite may answer at all. The kind is NULL on the
        row of an empty array (no value: whether it matches cannot change an answer), and may
        be on an unsure row; callers skip rows without a kind once sure that none is unsure."""
        at, rows = self.at, quoted(table)
        # `json_each` of an array gives its elements (keyed by index), of a scalar that one
        # value (key NULL: its kind is the field's), of an object its members (their kind
        # then the field's, 'object', which callers leave to FerretDB), and of nothing no row:
        # hence the outer join.
        element_type = f"json_extract({DOCUMENT}, {at.schema_path} || '.i[' || element.key || '].t')"
        kind = (
            f"CASE WHEN typeof(element.key) = 'integer' THEN {element_type}"
            f" WHEN element.id IS NULL AND {at.type} = 'array' THEN NULL ELSE {at.type} END"
        )
        return (
            f"SELECT {rows}.rowid, element.value, {kind}, {self.unsure}"
            f" FROM {rows} LEFT JOIN json_each({DOCUMENT}, {at.value_path}) AS element"
            f" WHERE ({self.match} AND {at.objects} AND {at.type} IS NOT NULL) OR {self.unsure}"
        )


def _field_query(condition: Mapping[str, Any], field: str) -> _FieldQuery | None:
    parameters = Parameters()
    translated = translate(condition, parameters)
    at = locate(field, parameters)
    if translated is None or at is None:
        return None
    match, unsure = translated
    return _FieldQuery(match=match, unsure=f"({unsure} OR {at.crosses_array})", at=at, parameters=parameters)


# The kinds of value a distinct list is made of here, in MongoDB's order of types; any other
# (an object, binary data, a regex, a timestamp) is left to FerretDB.
DISTINCT_KINDS = {"null": 0, "int": 1, "long": 1, "double": 1, "string": 2, "objectId": 3, "bool": 4, "date": 5}


def _distinct_values(connection: sqlite3.Connection, table: str | None, *, query: _FieldQuery) -> list[Any] | None:
    if table is None:
        return []
    found = connection.execute(
        f"WITH items(image, value, kind, unsure) AS ({query.values(table)})"
        # DISTINCT, not GROUP BY: it keeps only distinct rows, where GROUP BY sorts every one.
        " SELECT DISTINCT value, kind, unsure FROM items",
        query.parameters.values,
    ).fetchall()
    if any(unsure for *_, unsure in found):
        return None  # SQLite cannot tell some row's answer
    rows = [(value, kind) for value, kind, _ in found if kind is not None]
    if any(kind not in DISTINCT_KINDS for _, kind in rows):
        return None
    numbers: dict[Any, str] = {}
    for value, kind in rows:
        if DISTINCT_KINDS[kind] == 1 and numbers.setdefault(value, kind) != kind:
            # 1 and 1.0 (or a long 1) are one value to MongoDB, and which of them it lists is
            # whichever it met first.
            return None
    ordered = sorted({(DISTINCT_KINDS[kind], value, kind) for value, kind in rows}, key=lambda row: row[:2])
    return [_stored_value(value, kind) for _, value, kind in ordered]


# Values tied with the `limit`-th most frequent that are still counted here; with more (as many
# values as images, each once) FerretDB is asked, its counting bounded by the database.
MAX_TIED = 10_000


def _value_counts(
    connection: sqlite3.Connection, table: str | None, *, query: _FieldQuery, limit: int
) -> list[tuple[Any, int]] | None:
    if table is None:
        return []
    # A value's class: numbers are one (1 and 1.0 are one value), the others one kind each, and
    # -1 for the kinds left to FerretDB (objects, arrays in arrays, binary data…).
    kind_class = " ".join(f"WHEN '{kind}' THEN {rank}" for kind, rank in DISTINCT_KINDS.items())
    found = connection.execute(
        f"WITH items(image, value, kind, unsure) AS ({query.values(table)}),"
        # Each image once per value, whatever its array repeats.
        f" held(image, value, class, low, high, unsure) AS ("
        f" SELECT image, value, CASE kind {kind_class} ELSE -1 END, min(kind), max(kind), max(unsure)"
        f" FROM items WHERE kind IS NOT NULL OR unsure GROUP BY 1, 2, 3),"
        f" counted(value, class, images, low, high, unsure) AS MATERIALIZED ("
        f" SELECT value, class, count(*), min(low), max(high), max(unsure) FROM held GROUP BY value, class)"
        f" SELECT value, class, images, low, high, unsure FROM counted"
        f" WHERE class = -1 OR unsure OR images >= coalesce("
        f"(SELECT images FROM counted ORDER BY images DESC LIMIT 1 OFFSET {int(limit) - 1}), 0)"
        f" LIMIT {int(limit) + MAX_TIED}",
        query.parameters.values,
    ).fetchall()
    if len(found) == limit + MAX_TIED:
        return None  # too many tied
    if any(unsure for *_, unsure in found):
        return None  # SQLite cannot tell some row's answer
    if any(kind_class == -1 or low != high for _, kind_class, _, low, high, _ in found):
        return None  # a kind left to FerretDB, or 1 beside 1.0: which of them MongoDB shows is its own
    return [(_stored_value(value, low), images) for value, _, images, low, _, _ in found]


def _stored_value(value: Any, kind: str) -> Any:
    """A scalar as PyMongo gives it, from its JSON and schema type (one of DISTINCT_KINDS)."""
    if kind == "long":
        return Int64(value)
    if kind == "double":
        return float(value)
    if kind == "bool":
        return bool(value)
    if kind == "date":
        return EPOCH + timedelta(milliseconds=value)
    if kind == "objectId":
        return ObjectId(value)
    return value  # null, int, string


EPOCH = datetime(1970, 1, 1, tzinfo=utc)  # PyMongo's own zone object, as its dates carry


def stored_id(value: Any, kind: str) -> Any:
    """An `_id` as PyMongo gives it, from its JSON and schema type; None for kinds not handled."""
    if kind == "objectId":
        return ObjectId(value)
    if kind in ("string", "int", "long") or kind == "double" and isinstance(value, float):
        return value
    return None
