"""Whether FerretDB's files are laid out as this package reads them, checked once at start-up.

sql.py reads each value's type from the schema FerretDB 1.24 stores beside it (`$s`, see sql.py),
and finds a collection's rows through `_ferretdb_collections`. Nothing in SQL would notice
another layout: without the schema every type reads as NULL, so `{path: null}` matches every
row and a total comes out wrong instead of falling back to FerretDB. The shortcuts therefore
answer only after `mismatch` has found nothing to object to:

- the server is FerretDB 1.24.x (`buildInfo`'s `ferretdbVersion`: the one layout this code was
  written for; 2.x keeps its data in PostgreSQL/DocumentDB, and anything else is unknown);
- the files are that server's: the database's file lists the collection under the same UUID
  as the server does (a copy of the files, or another server's, would answer from stale data);
- `_ferretdb_collections` has its `name`, `table_name` and `settings` columns, and each table
  it lists has the `_ferretdb_sjson` column;
- the first and last row of each table hold a document whose `$s` schema gives, under `p`,
  a known type `t` for each of its keys, at any depth (objects under `$s`, array items under
  `i`), with values stored as sql.py expects them (dates and longs as numbers, ObjectIds as
  strings...), and SQLite's own `json_extract` reads the `_id` type as sql.py asks for it.

FerretDB writes a collection's rows in one format, so sampling a few rows per table is enough
to tell the layout; the version check is what guards the rows not sampled.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from bson import Binary
from bson.binary import UUID_SUBTYPE
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, PyMongoError

from app.store.engines.ferretdb_sqlite.files import DOCUMENT, opened, quoted

# `buildInfo`'s `ferretdbVersion` of the releases whose storage layout this package reads
# (FerretDB 1.24.2 answers "v1.24.2").
KNOWN_VERSIONS = re.compile(r"v1\.24\.\d+")

# The types FerretDB 1.24's schema names (sql.TYPE_ALIASES), and how sjson stores each one's
# value in JSON.
STORED_AS: dict[str, tuple[type, ...]] = {
    "double": (int, float),  # 2.0 is stored as 2
    "string": (str,),
    "object": (dict,),
    "array": (list,),
    "binData": (str,),  # base64
    "objectId": (str,),  # hex
    "bool": (bool,),
    "date": (int,),  # milliseconds
    "null": (type(None),),
    "regex": (str,),
    "int": (int,),
    "timestamp": (int,),
    "long": (int,),
}


async def mismatch(collection: AsyncCollection[dict[str, Any]], *, directory: Path) -> str | None:
    """Why the files in `directory` cannot be read as this package reads them, for `collection`'s
    database; None when they can. Connection errors propagate (start-up retries)."""
    database = collection.database
    try:
        build = await database.command("buildInfo")
        listed = await (await database.list_collections(filter={"name": collection.name})).to_list(None)
    except ConnectionFailure:
        raise  # the server is away, not different: start-up tries again (app/store/database.py)
    except PyMongoError as error:
        return f"the server did not describe itself ({error})"
    version = build.get("ferretdbVersion")
    if not isinstance(version, str) or not KNOWN_VERSIONS.fullmatch(version):
        return f"the server is not FerretDB 1.24.x (ferretdbVersion: {version!r})"
    info = listed[0].get("info") if listed else None
    uuid = info.get("uuid") if isinstance(info, Mapping) else None
    if isinstance(uuid, Binary) and uuid.subtype == UUID_SUBTYPE:  # as PyMongo gives it by default
        uuid = uuid.as_uuid()
    if not isinstance(uuid, UUID):
        return f"the server gives no UUID for the collection {collection.name!r}"
    try:
        return await asyncio.to_thread(_files_mismatch, directory, database.name, collection.name, str(uuid))
    # ValueError, TypeError: what is stored is not JSON text.
    except (OSError, sqlite3.Error, ValueError, TypeError) as error:
        return f"the files could not be read ({error})"


def _files_mismatch(directory: Path, database: str, collection: str, uuid: str) -> str | None:
    with opened(directory, database) as connection:
        connection.execute("BEGIN")  # one snapshot: FerretDB may be creating or dropping tables
        try:
            return _tables_mismatch(connection, collection, uuid)
        finally:
            connection.execute("COMMIT")


def _tables_mismatch(connection: sqlite3.Connection, collection: str, uuid: str) -> str | None:
    columns = {row[0] for row in connection.execute("SELECT name FROM pragma_table_info('_ferretdb_collections')")}
    if not {"name", "table_name", "settings"} <= columns:
        return f"no _ferretdb_collections table with name, table_name and settings columns (columns: {sorted(columns)})"
    listed = connection.execute("SELECT name, table_name, settings FROM _ferretdb_collections").fetchall()
    settings = {name: json.loads(settings) for name, _, settings in listed}
    if collection not in settings:
        return f"_ferretdb_collections does not list {collection!r}: these are not the server's files"
    stored = settings[collection].get("uuid") if isinstance(settings[collection], dict) else None
    if stored != uuid:
        return f"{collection!r} has another UUID in the files than on the server: these are not the server's files"
    for name, table, _ in listed:
        problem = _table_mismatch(connection, str(table))
        if problem is not None:
            return f"collection {name!r}: {problem}"
    return None


def _table_mismatch(connection: sqlite3.Connection, table: str) -> str | None:
    columns = {row[0] for row in connection.execute("SELECT name FROM pragma_table_info(?)", (table,))}
    if DOCUMENT not in columns:
        return f"its table {table!r} has no {DOCUMENT} column"
    rows = quoted(table)
    sampled = connection.execute(
        f'SELECT {DOCUMENT}, json_extract({DOCUMENT}, \'$."$s".p."_id".t\') FROM {rows}'
        f" WHERE rowid IN ((SELECT min(rowid) FROM {rows}), (SELECT max(rowid) FROM {rows}))"
    ).fetchall()
    for stored, id_type in sampled:
        document = json.loads(stored)
        if not isinstance(document, dict) or not _fits(
            {key: value for key, value in document.items() if key != "$s"}, document.get("$s"), top=True
        ):
            return "a stored document does not carry the $s schema this package reads"
        if id_type not in STORED_AS:
            return f"SQLite reads the type of a stored _id as {id_type!r}"
    return None


def _fits(document: Mapping[str, Any], schema: Any, *, top: bool = False) -> bool:
    """Whether `schema` (an sjson `$s`) types every key of `document`, and only those."""
    if not isinstance(schema, Mapping):
        return False
    properties = schema.get("p", {})  # an empty object's schema has no `p`
    if not isinstance(properties, Mapping) or set(properties) != set(document) or (top and "_id" not in document):
        return False
    return all(_value_fits(document[key], properties[key]) for key in document)


def _value_fits(value: Any, entry: Any) -> bool:
    kind = entry.get("t") if isinstance(entry, Mapping) else None
    if not isinstance(kind, str) or kind not in STORED_AS:
        return False
    if isinstance(value, dict):
        return kind == "object" and _fits(value, entry.get("$s"))
    if isinstance(value, list):
        items = entry.get("i")
        return (
            kind == "array"
            and isinstance(items, list)
            and len(items) == len(value)
            and all(_value_fits(item, item_entry) for item, item_entry in zip(value, items, strict=True))
        )
    # A scalar: JSON's kind of value must be the one sjson stores this type as.
    return isinstance(value, STORED_AS[kind]) and (kind == "bool") == isinstance(value, bool)
