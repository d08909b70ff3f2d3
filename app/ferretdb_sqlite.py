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
- **Count matches in SQL** (`count_matching`), for the total of a list page. FerretDB counts by
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
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions, DatetimeConversion
from pymongo.asynchronous.collection import AsyncCollection

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


async def count_matching(
    collection: AsyncCollection[dict[str, Any]], condition: Mapping[str, Any], *, directory: Path
) -> int | None:
    """How many documents of `collection` match `condition`, counted by SQLite; None when SQLite
    cannot say exactly (see the module's docstring) or cannot be read: then ask FerretDB."""
    where = _conditions(condition)
    if where is None:
        return None
    database, name = collection.database.name, collection.name
    try:
        return await asyncio.to_thread(_count_where, directory, database, name, where)
    except (OSError, sqlite3.Error) as error:
        log.debug("counting in FerretDB's SQLite files failed, FerretDB counts: %s", error)
        return None


@dataclass(frozen=True)
class _Where:
    """A filter as SQL over one FerretDB row: `match` where it holds, `unsure` where the row's
    shape (an array on the path) makes plain SQL unable to tell; parameters by number."""

    match: str
    unsure: str
    parameters: tuple[Any, ...]


class _Parameters:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"?{len(self.values)}"


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
    return _Where(match=match, unsure=unsure, parameters=tuple(parameters.values))


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


def _field(path: str, value: Any, parameters: _Parameters) -> tuple[str, str] | None:
    """`{path: value}`: equality with a scalar, `$eq`, `$in` of scalars, and ranges."""
    segments = path.split(".")
    if not all(_plain_key(segment) for segment in segments):
        return None
    # JSON paths to the value and to its schema entry: `$."data"."label"` and
    # `$."$s".p."data"."$s".p."label"`.
    value_path = "$" + "".join(f'."{segment}"' for segment in segments)
    schema_paths = [
        "$" + "".join(f'."$s".p."{segment}"' for segment in segments[: depth + 1]) for depth in range(len(segments))
    ]
    prefixes = [f"json_extract({DOCUMENT}, {parameters(schema + '.t')})" for schema in schema_paths[:-1]]
    leaf_type = f"json_extract({DOCUMENT}, {parameters(schema_paths[-1] + '.t')})"
    leaf_value = f"json_extract({DOCUMENT}, {parameters(value_path)})"
    # Any array on the way (`data.parts.name` with `parts` a list) brings in MongoDB's traversal
    # of array elements: unsure. An array at the end is plain for equality (any element equals).
    prefix_unsure = [f"{prefix} = 'array'" for prefix in prefixes]
    prefix_objects = " AND ".join([f"{prefix} = 'object'" for prefix in prefixes] or ["1"])

    operators = value if isinstance(value, Mapping) else {"$eq": value}
    if not operators or not all(isinstance(name, str) and name.startswith("$") for name in operators):
        return None  # `{path: {...}}` without operators is equality with a whole document
    tests: list[str] = []
    leaf_unsure = False
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
                listed = ", ".join(f"'{name}'" for name in types)
                equals.append(f"({leaf_type} IN ({listed}) AND {leaf_value} = {given})")
                items = f"json_each({DOCUMENT}, {parameters(value_path)})"
                item_type = f"json_extract({DOCUMENT}, {parameters(schema_paths[-1])} || '.i[' || item.key || '].t')"
                equals.append(
                    f"({leaf_type} = 'array' AND EXISTS (SELECT 1 FROM {items} AS item"
                    f" WHERE item.value = {given} AND {item_type} IN ({listed})))"
                )
            tests.append("(" + (" OR ".join(equals) or "0") + ")")
        elif operator in RANGES:
            typed = _typed(operand)
            if typed is None or isinstance(operand, bool):
                return None
            types, stored = typed
            listed = ", ".join(f"'{name}'" for name in types)
            # On an array MongoDB takes each bound on any element, not on one: unsure.
            leaf_unsure = True
            tests.append(f"({leaf_type} IN ({listed}) AND {leaf_value} {RANGES[operator]} {parameters(stored)})")
        else:
            return None
    unsure = prefix_unsure + ([f"{leaf_type} = 'array'"] if leaf_unsure else [])
    match = f"({prefix_objects} AND " + " AND ".join(tests) + ")"
    return match, "(" + (" OR ".join(unsure) or "0") + ")"


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
