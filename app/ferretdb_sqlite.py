"""FerretDB's SQLite files, when the service knows where they are (`make run` starts it so).

Three things the wire protocol cannot do:

- **Index what FerretDB 1.24 looks `_id` up by.** Its SQLite backend finds a document by id with
  `_ferretdb_sjson->'$._id' = ?` (internal/backends/sqlite/metadata/metadata.go, `IDColumn`),
  used by every find, update and delete whose filter is a lone `_id` and by every write of a
  document it has read. But it builds its own `_id` index on `_ferretdb_sjson->"_id"`
  (metadata/registry.go, `indexesCreate`), and SQLite uses an expression index only for the very
  same expression. So each of those reads the whole table: 138 ms for one `find_one` among
  100,000 documents, 0.6 ms with an index on the expression it queries. FerretDB does not know
  this index (it is not in its metadata, `listIndexes` does not show it, it cannot clash with the
  names FerretDB gives, which start with the table name); it goes with the table when the
  collection is dropped, and the next start adds it again.
- **Count the images cheaply**, to tell the operator when to move to MongoDB: through FerretDB a
  count reads every document.
- **Count matches and find pages in SQL** (`SQLiteShortcuts`), for list pages and their totals. FerretDB counts by
  decoding every document in Go, about 80 µs each: 7.7 s for `{"data.label": "cat"}` among
  100,000 images, where SQLite's JSON functions take 0.23 s over the same rows. Only filters
  whose meaning is plain in FerretDB's storage format are counted so (`_conditions` below);
  anything else, and any document on which the filter's path crosses an array, is left to
  FerretDB, so the count is always the one MongoDB's rules give.

All of it is best effort: without it the service is correct, only slower or silent.

FerretDB's storage format ("sjson", internal/handler/sjson/sjson.go): each row holds a document
as JSON, with its types in a schema under `$s`: `{"$s": {"p": {"data": {"t": "object", "$s":
{"p": {"label": {"t": "string"}}}}}}, "data": {"label": "cat"}}`. Strings, ObjectIds and binary
data are all JSON strings, and dates are milliseconds, so a value is only ever compared together
with its type from the schema. An array's element types are under `"i": [...]`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo.asynchronous.collection import AsyncCollection

from app.db import PagePlan

log = logging.getLogger(__name__)

# Above this many images a filtered list page takes FerretDB/SQLite more than a second
# (bench/bench_embedded.py; README, "How far the embedded database goes").
ADVISED_MOST_IMAGES = 10_000

# FerretDB waits this long for a lock itself (`busy_timeout`, pool/uri.go); indexing a
# collection of a million documents holds the write lock for about a second.
BUSY_TIMEOUT_SECONDS = 10.0


async def tune(collection: AsyncCollection[dict[str, Any]], *, directory: Path) -> None:
    """Index the images collection's ids, and advise MongoDB once if it has grown past what suits."""
    database, name = collection.database.name, collection.name
    try:
        indexed = await asyncio.to_thread(index_ids, directory, database, name)
        images = await asyncio.to_thread(count, directory, database, name)
    except (OSError, sqlite3.Error) as error:
        log.warning("could not index FerretDB's SQLite files in %s (lookups by id stay slow): %s", directory, error)
        return
    if indexed:
        log.info("FerretDB SQLite: %s.%s indexed by the expression FerretDB looks ids up by", database, name)
    if images > ADVISED_MOST_IMAGES:
        log.warning(
            "The embedded database holds %d images. Above %d, filtered lists take FerretDB/SQLite more than "
            'a second each: move to MongoDB (docker/compose.yaml; README, "How far the embedded database goes").',
            images,
            ADVISED_MOST_IMAGES,
        )


def index_ids(directory: Path, database: str, collection: str) -> bool:
    """Index `collection` by the expression FerretDB looks `_id` up by; False if it is not there."""
    with _connection(directory, database) as connection:
        table = _table(connection, collection)
        if table is None:
            return False
        connection.execute(
            f"CREATE INDEX IF NOT EXISTS {_quoted('_imagestore_' + table + '_id')} "
            f"ON {_quoted(table)} (_ferretdb_sjson->'$._id')"
        )
        return True


def count(directory: Path, database: str, collection: str) -> int:
    """The number of documents in `collection` (0 if it does not exist)."""
    with _connection(directory, database) as connection:
        table = _table(connection, collection)
        if table is None:
            return 0
        row = connection.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchone()
        return int(row[0])


class SQLiteShortcuts:
    """Counts and pages read from FerretDB's SQLite files in `directory` (app/db.py `Shortcuts`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def count(self, collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any]) -> int | None:
        """How many documents of `collection` match `condition`, counted by SQLite; None when
        SQLite cannot say exactly (see the module's docstring) or cannot be read."""
        where = _conditions(condition)
        if where is None:
            return None
        database, name = collection.database.name, collection.name
        try:
            return await asyncio.to_thread(_count_where, self.directory, database, name, where)
        except (OSError, sqlite3.Error) as error:
            log.debug("counting in FerretDB's SQLite files failed, FerretDB counts: %s", error)
            return None

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
        the ids of the page's images in order; None when SQLite cannot say exactly."""
        return await _plan_page(collection, condition, sort=sort, skip=skip, limit=limit, directory=self.directory)

    async def distinct_strings(
        self, collection: AsyncCollection[dict[str, Any]], field: str, condition: Mapping[str, Any]
    ) -> set[str] | None:
        """The strings `distinct(field, condition)` gives (an array's string elements, or a
        string value); None when SQLite cannot say exactly."""
        parameters = _Parameters()
        translated = _all(condition, parameters)
        at = _path(field, parameters)
        if translated is None or at is None:
            return None
        match, unsure = translated
        query = _DistinctQuery(match=match, unsure=f"({unsure} OR {at.crosses_array})", at=at, parameters=parameters)
        database, name = collection.database.name, collection.name
        try:
            return await asyncio.to_thread(_distinct_strings, self.directory, database, name, query)
        except (OSError, sqlite3.Error) as error:
            log.debug("distinct values from FerretDB's SQLite files failed, FerretDB finds them: %s", error)
            return None


async def _plan_page(
    collection: AsyncCollection[dict[str, Any]],
    condition: Mapping[str, Any],
    *,
    sort: Sequence[tuple[str, int]],
    skip: int,
    limit: int,
    directory: Path,
) -> PagePlan | None:
    if set(condition) == {"_id"} and not isinstance(condition["_id"], Mapping):
        return None  # the one lookup FerretDB hands SQLite itself, by an index
    parameters = _Parameters()
    translated = _all(condition, parameters)
    if translated is None:
        return None
    keys: list[tuple[_Path, int]] = []
    for path, direction in sort:
        at = _path(path, parameters)
        if at is None:
            return None
        keys.append((at, direction))
    match, unsure = translated
    query = _PageQuery(match=match, unsure=unsure, keys=keys, parameters=parameters, skip=skip, limit=limit)
    database, name = collection.database.name, collection.name
    try:
        return await asyncio.to_thread(_plan, directory, database, name, query)
    except (OSError, sqlite3.Error) as error:
        log.debug("planning a page in FerretDB's SQLite files failed, FerretDB finds it: %s", error)
        return None


@dataclass(frozen=True)
class _Where:
    """A filter as SQL over one FerretDB row: `match` where it holds, `unsure` where the row's
    shape (an array on the path) makes plain SQL unable to tell; parameters by name."""

    match: str
    unsure: str
    parameters: dict[str, Any]


class _Parameters:
    """Values bound by name: a statement may leave some out (the planning query uses a sort
    key's type, not its value)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f":{name}"


DOCUMENT = "_ferretdb_sjson"
NUMBER_TYPES = ("int", "long", "double")
# Integers beyond this are not all exact as doubles, and SQLite and MongoDB compare them with
# doubles differently; they are left to FerretDB.
EXACT_INTEGERS = 2**53
RANGES = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _conditions(condition: Mapping[str, Any]) -> _Where | None:
    parameters = _Parameters()
    translated = _all(condition, parameters)
    if translated is None:
        return None
    match, unsure = translated
    return _Where(match=match, unsure=unsure, parameters=parameters.values)


def _all(condition: Mapping[str, Any], parameters: _Parameters) -> tuple[str, str] | None:
    """`condition` (implicitly ANDed keys) as SQL; None if any part is not plain."""
    parts: list[tuple[str, str]] = []
    for key, value in condition.items():
        if key in ("$and", "$or") and isinstance(value, list) and value:
            children = [_all(child, parameters) if isinstance(child, Mapping) else None for child in value]
            if any(child is None for child in children):
                return None
            joiner = " AND " if key == "$and" else " OR "
            parts.append(
                (
                    "(" + joiner.join(child[0] for child in children if child) + ")",
                    "(" + " OR ".join(child[1] for child in children if child) + ")",
                )
            )
            continue
        part = _field(key, value, parameters)
        if part is None:
            return None
        parts.append(part)
    if not parts:
        return "1", "0"
    return " AND ".join(match for match, _ in parts), "(" + " OR ".join(unsure for _, unsure in parts) + ")"


@dataclass(frozen=True)
class _Path:
    """SQL for a dotted path in a FerretDB row."""

    value: str  # the value there
    type: str  # its type, from the schema
    value_path: str  # a parameter: the value's JSON path
    schema_path: str  # a parameter: the schema entry's JSON path (`.i[n].t` are an array's items)
    objects: str  # every step before the last is an object
    crosses_array: str  # some step before the last is an array


def _path(path: str, parameters: _Parameters) -> _Path | None:
    segments = path.split(".")
    if not all(_plain_key(segment) for segment in segments):
        return None
    # `$."data"."label"`, and its schema entry `$."$s".p."data"."$s".p."label"`.
    value_steps = [f'."{segment}"' for segment in segments]
    schema_steps = [f'."$s".p."{segment}"' for segment in segments]
    prefixes = [
        f"json_extract({DOCUMENT}, {parameters('$' + ''.join(schema_steps[:depth]) + '.t')})"
        for depth in range(1, len(segments))
    ]
    value_path = parameters("$" + "".join(value_steps))
    return _Path(
        value=f"json_extract({DOCUMENT}, {value_path})",
        type=f"json_extract({DOCUMENT}, {parameters('$' + ''.join(schema_steps) + '.t')})",
        value_path=value_path,
        schema_path=parameters("$" + "".join(schema_steps)),
        objects=" AND ".join([f"{prefix} = 'object'" for prefix in prefixes] or ["1"]),
        crosses_array=" OR ".join([f"{prefix} = 'array'" for prefix in prefixes] or ["0"]),
    )


def _field(path: str, value: Any, parameters: _Parameters) -> tuple[str, str] | None:
    """`{path: value}`: equality with a scalar, `$eq`, `$in` of scalars, and ranges."""
    at = _path(path, parameters)
    if at is None:
        return None
    operators = value if isinstance(value, Mapping) else {"$eq": value}
    if not operators or not all(isinstance(name, str) and name.startswith("$") for name in operators):
        return None  # `{path: {...}}` without operators is equality with a whole document
    tests: list[str] = []
    # Any array on the way (`data.parts.name` with `parts` a list) brings in MongoDB's traversal
    # of array elements: unsure. An array at the end is plain for equality (any element equals).
    unsure = [at.crosses_array]
    for operator, operand in operators.items():
        if operator in ("$eq", "$in"):
            candidates = operand if operator == "$in" else [operand]
            if not isinstance(candidates, list):
                return None
            equals: list[str] = []
            for candidate in candidates:
                typed = _typed(candidate)
                if typed is None:
                    return None
                types, stored = typed
                given = parameters(stored)
                listed = _listed(types)
                item_type = f"json_extract({DOCUMENT}, {at.schema_path} || '.i[' || item.key || '].t')"
                equals.append(f"({at.type} IN ({listed}) AND {at.value} = {given})")
                equals.append(
                    f"({at.type} = 'array' AND EXISTS (SELECT 1 FROM json_each({DOCUMENT}, {at.value_path}) AS item"
                    f" WHERE item.value = {given} AND {item_type} IN ({listed})))"
                )
            tests.append("(" + (" OR ".join(equals) or "0") + ")")
        elif operator in RANGES:
            typed = _typed(operand)
            if typed is None or isinstance(operand, bool):
                return None
            types, stored = typed
            # On an array MongoDB takes each bound on any element, not on one: unsure.
            unsure.append(f"{at.type} = 'array'")
            tests.append(f"({at.type} IN ({_listed(types)}) AND {at.value} {RANGES[operator]} {parameters(stored)})")
        else:
            return None
    return f"({at.objects} AND " + " AND ".join(tests) + ")", "(" + " OR ".join(unsure) + ")"


def _listed(types: tuple[str, ...]) -> str:
    return ", ".join(f"'{name}'" for name in types)


def _plain_key(segment: str) -> bool:
    # What a quoted JSON path label can hold; `$` starts FerretDB's own keys (`$s`, `$k`).
    return (
        bool(segment)
        and not segment.startswith("$")
        and all(character not in '"\\' and character.isprintable() for character in segment)
    )


MILLISECONDS: CodecOptions[dict[str, Any]] = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)


def _typed(value: Any) -> tuple[tuple[str, ...], Any] | None:
    """The schema types a stored value equal to `value` may have, and `value` as stored."""
    if isinstance(value, bool):
        return ("bool",), int(value)
    if isinstance(value, int):
        return (NUMBER_TYPES, value) if abs(value) < EXACT_INTEGERS else None
    if isinstance(value, float):
        return (NUMBER_TYPES, value) if math.isfinite(value) else None
    if isinstance(value, str):
        return ("string",), value
    if isinstance(value, datetime):
        # As BSON stores it: whole milliseconds.
        return ("date",), int(bson.decode(bson.encode({"v": value}), codec_options=MILLISECONDS)["v"])
    return None


def _count_where(directory: Path, database: str, collection: str, where: _Where) -> int | None:
    with _connection(directory, database) as connection:
        table = _table(connection, collection)
        if table is None:
            return 0
        row = connection.execute(
            f"SELECT count(*) FILTER (WHERE {where.match}), count(*) FILTER (WHERE {where.unsure}) "
            f"FROM {_quoted(table)}",
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
    keys: list[tuple[_Path, int]]
    parameters: _Parameters
    skip: int
    limit: int


def _plan(directory: Path, database: str, collection: str, query: _PageQuery) -> PagePlan | None:
    with _connection(directory, database) as connection:
        table = _table(connection, collection)
        if table is None:
            return PagePlan(total=0, ids=[])
        match = query.match
        kinds = [
            f"count(*) FILTER (WHERE {match} AND {at.type} IN ({_listed(kind)}))"
            for at, _ in query.keys
            for kind in SORTABLE_KINDS
        ]
        row = connection.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {match}), count(*) FILTER (WHERE {query.unsure})"
            + "".join(f", {column}" for column in kinds)
            + f" FROM {_quoted(table)}",
            query.parameters.values,
        ).fetchone()
        rows, matches, unsure = int(row[0]), int(row[1]), int(row[2])
        if unsure:
            return None
        if matches <= query.skip:
            return PagePlan(total=matches, ids=[])
        per_key = [
            row[3 + index : 3 + index + len(SORTABLE_KINDS)] for index in range(0, len(kinds), len(SORTABLE_KINDS))
        ]
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
            f'SELECT json_extract({DOCUMENT}, \'$."_id"\'), json_extract({DOCUMENT}, \'$."$s".p."_id".t\')'
            f" FROM {_quoted(table)} WHERE {match} ORDER BY {', '.join([*order, 'rowid'])}"
            f" LIMIT {limit} OFFSET {offset}",
            query.parameters.values,
        ).fetchall()
        ids = [_stored_id(value, kind) for value, kind in found]
        if any(image_id is None for image_id in ids):
            return PagePlan(total=matches, ids=None)
        return PagePlan(total=matches, ids=ids)


@dataclass(frozen=True)
class _DistinctQuery:
    match: str
    unsure: str
    at: _Path
    parameters: _Parameters


def _distinct_strings(directory: Path, database: str, collection: str, query: _DistinctQuery) -> set[str] | None:
    with _connection(directory, database) as connection:
        table = _table(connection, collection)
        if table is None:
            return set()
        unsure = f"SELECT count(*) FROM {_quoted(table)} WHERE {query.unsure}"
        if connection.execute(unsure, query.parameters.values).fetchone()[0]:
            return None
        at = query.at
        element_type = f"json_extract({DOCUMENT}, {at.schema_path} || '.i[' || element.key || '].t')"
        rows = connection.execute(
            f"SELECT element.value FROM {_quoted(table)}, json_each({DOCUMENT}, {at.value_path}) AS element"
            f" WHERE {query.match} AND {at.objects} AND {at.type} = 'array' AND {element_type} = 'string'"
            f" UNION SELECT {at.value} FROM {_quoted(table)}"
            f" WHERE {query.match} AND {at.objects} AND {at.type} = 'string'",
            query.parameters.values,
        ).fetchall()
        return {str(value) for (value,) in rows}


def _stored_id(value: Any, kind: str) -> Any:
    """An `_id` as PyMongo gives it, from its JSON and schema type; None for kinds not handled."""
    if kind == "objectId":
        return ObjectId(value)
    if kind in ("string", "int", "long") or kind == "double" and isinstance(value, float):
        return value
    return None


@contextmanager
def _connection(directory: Path, database: str) -> Iterator[sqlite3.Connection]:
    # FerretDB keeps one file per database, `<name>.sqlite`. Read-write but never create: a
    # wrong directory must not leave empty database files behind.
    path = directory / f"{database}.sqlite"
    if not path.is_file():
        raise FileNotFoundError(f"no FerretDB database file at {path}")
    uri = f"{path.resolve().as_uri()}?mode=rw"
    # Autocommit: each statement is its own transaction, holding the write lock no longer.
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    with closing(connection):
        yield connection


def _table(connection: sqlite3.Connection, collection: str) -> str | None:
    row = connection.execute("SELECT table_name FROM _ferretdb_collections WHERE name = ?", (collection,)).fetchone()
    return None if row is None else str(row[0])


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
