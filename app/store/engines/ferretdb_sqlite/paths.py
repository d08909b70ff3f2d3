"""The documents at given paths, found and read from FerretDB's SQLite rows (engine.py `find_at_paths`).

FerretDB 1.24 answers `{"file": {"$in": [...]}}` by decoding every document of the collection in
Go (80 µs each), its own unique index on `file` unused. That index is an SQLite expression
index on `_ferretdb_sjson->"file"` (the JSON text of the value), and SQLite uses it for a
statement naming the same expression: so here SQLite probes it with the texts each path may
be stored as (`renderings`), takes the rows whose `file` is an array beside them (a range of
the same index: their text starts with `[`), and decides each of those rows exactly by value
and schema type, and by the caller's condition as sql.py translates it. It gives the asked
fields of each match with their schema types, so that the documents come back as PyMongo would
decode them without FerretDB reading a thing. A field of a kind not turned into Python here (an
object, an array, binary data...) leaves its document to be looked up through FerretDB by `_id`.

Without the index (a collection the store has not indexed yet) the same statement reads the
whole table, still exactly: about 2.5 µs a row instead of FerretDB's 80.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import Int64, ObjectId

from app.store.engines.ferretdb_sqlite.files import DOCUMENT, quoted
from app.store.engines.ferretdb_sqlite.sql import Parameters, plain_key, translate


@dataclass(frozen=True)
class Found:
    """A row whose `file` is among the paths and whose condition SQL decided or could not."""

    id: Any  # as PyMongo gives it, if `id_known`
    id_known: bool  # the `_id` is of a kind handled here (ID_KINDS)
    document: dict[str, Any] | None  # the asked fields, in the document's order; None: look it up
    unsure: bool  # plain SQL cannot tell whether the condition holds (an array on its path)


class _Unread(Exception):
    """A value of a kind not turned into Python here."""


def fields_shown(projection: Mapping[str, Any] | None) -> tuple[bool, list[str]] | None:
    """For a projection naming top-level fields to show: whether `_id` is shown, and the other
    fields; None for any other projection (fields left out, dotted paths, operators)."""
    if not projection:
        return None
    shown_id = True
    fields: list[str] = []
    for path, value in projection.items():
        if path == "_id" and value in (0, 1) and not isinstance(value, float):
            shown_id = bool(value)
        elif value == 1 and not isinstance(value, float) and "." not in path and plain_key(path):
            fields.append(path)
        else:
            return None
    if not fields and not shown_id:
        return None  # `{"_id": 0}` alone leaves `_id` out of whole documents
    return shown_id, fields


def found_at(
    connection: sqlite3.Connection,
    table: str | None,
    *,
    files: Sequence[str],
    condition: Mapping[str, Any],
    shown_id: bool,
    fields: Sequence[str],
) -> list[Found] | None:
    """The rows stored at any of `files` (each `plain_path`) that match `condition` or that
    SQL cannot decide; None if `condition` does not translate."""
    if table is None:
        return []
    parameters = Parameters()
    translated = translate(condition, parameters)
    if translated is None:
        return None
    match, unsure = translated
    rows_of = quoted(table)
    wanted = parameters(json.dumps(list(files), ensure_ascii=False))
    rendered = parameters(json.dumps(sorted({text for path in files for text in renderings(path)}), ensure_ascii=False))
    # FerretDB's index on `file` (as it makes the unique one the store asks for) is on this very
    # expression: the JSON text of the value. It gives the rows whose text is one a path may be
    # stored as, and the arrays (their text starts with `[`): SQL then decides each exactly, by
    # value and type. Without the index the same statement reads the whole table, still exact.
    indexed = f"{DOCUMENT}->'file'"
    candidates = (
        f"rowid IN (SELECT rowid FROM {rows_of} WHERE {indexed} IN (SELECT value FROM json_each({rendered}))"
        f" UNION ALL SELECT rowid FROM {rows_of} WHERE {indexed} >= '[' AND {indexed} < '\\')"
    )
    file_value = f"json_extract({DOCUMENT}, '$.\"file\"')"
    file_type = f'json_extract({DOCUMENT}, \'$."$s".p."file".t\')'
    item_type = f"json_extract({DOCUMENT}, '$.\"$s\".p.\"file\".i[' || item.key || '].t')"
    # A string `file` among the paths, or (MongoDB's equality on arrays) an array holding one.
    at_paths = (
        f"({file_type} = 'string' AND {file_value} IN (SELECT value FROM paths))"
        f" OR ({file_type} = 'array' AND EXISTS (SELECT 1 FROM json_each({DOCUMENT}, '$.\"file\"') AS item"
        f" WHERE item.value IN (SELECT value FROM paths) AND {item_type} = 'string'))"
    )
    # `plain_key` fields: no quote or backslash to escape in a JSON path label.
    columns = []
    for field in fields:
        value_path, type_path = parameters(f'$."{field}"'), parameters(f'$."$s".p."{field}".t')
        columns.append(f"json_extract({DOCUMENT}, {value_path}), json_extract({DOCUMENT}, {type_path})")
    rows = connection.execute(
        f"WITH paths(value) AS (SELECT value FROM json_each({wanted}))"
        f' SELECT json_extract({DOCUMENT}, \'$."_id"\'), json_extract({DOCUMENT}, \'$."$s".p."_id".t\'),'
        f' json_extract({DOCUMENT}, \'$."$s"."$k"\'), ({unsure})'
        + "".join(f", {column}" for column in columns)
        + f" FROM {rows_of} WHERE {candidates} AND ({at_paths}) AND (({match}) OR ({unsure}))",
        parameters.values,
    ).fetchall()
    return [found_row(row, shown_id, fields) for row in rows]


def plain_path(path: str) -> bool:
    """Whether `renderings` knows every text `path` may be stored as: valid UTF-8 without
    control characters (which the store refuses in paths anyway: app/storage/keys.py)."""
    if any(character < " " for character in path):
        return False
    try:
        path.encode()
    except UnicodeEncodeError:
        return False
    return True


# What Go's encoding/json, which writes FerretDB's JSON, escapes beside `"` and `\`: `&`, `<`
# and `>` unless told not to (FerretDB 1.24 does not), and U+2028 and U+2029 always.
HTML_ESCAPES = str.maketrans({"&": "\\u0026", "<": "\\u003c", ">": "\\u003e"})
LINE_ESCAPES = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029"})


def renderings(path: str) -> set[str]:
    """The JSON texts a `plain_path` may be stored as (FerretDB's own, and the plainer ones it
    would write with other encoder settings: a text not among them would make a stored path
    look unstored, so there are more of them than needed)."""
    plain = json.dumps(path, ensure_ascii=False)
    lines = plain.translate(LINE_ESCAPES)
    return {plain, lines, lines.translate(HTML_ESCAPES)}


def found_row(row: Sequence[Any], shown_id: bool, fields: Sequence[str]) -> Found:
    id_value, id_kind, keys, unsure = row[:4]
    try:
        if id_kind not in ID_KINDS:
            raise _Unread
        image_id = stored_value(id_value, id_kind)
    except _Unread:
        return Found(id=None, id_known=False, document=None, unsure=bool(unsure))
    values: dict[str, Any] = {}
    try:
        for index, field in enumerate(fields):
            value, kind = row[4 + 2 * index], row[5 + 2 * index]
            if kind is not None:  # missing: not shown
                values[field] = stored_value(value, kind)
    except _Unread:
        return Found(id=image_id, id_known=True, document=None, unsure=bool(unsure))
    order = json.loads(keys) if isinstance(keys, str) else None
    if not isinstance(order, list) or not set(values) <= set(order):
        return Found(id=image_id, id_known=True, document=None, unsure=bool(unsure))
    document = {"_id": image_id} if shown_id else {}
    # In the document's own key order (`$k`), as the server gives them (`_id` is always first).
    document.update((key, values[key]) for key in order if key in values)
    return Found(id=image_id, id_known=True, document=document, unsure=bool(unsure))


def stored_value(value: Any, kind: str) -> Any:
    """A stored scalar as PyMongo decodes it, from its JSON and schema type; _Unread for a kind
    (or a stored form) not handled here."""
    if kind == "string" and isinstance(value, str) or kind == "null" and value is None:
        return value
    if kind == "int" and isinstance(value, int):
        return value
    if kind == "long" and isinstance(value, int):
        return Int64(value)
    if kind == "double" and isinstance(value, int | float):
        return float(value)  # 2.0 is stored as 2
    if kind == "bool" and value in (0, 1):
        return bool(value)
    if kind == "objectId" and isinstance(value, str) and ObjectId.is_valid(value):
        return ObjectId(value)
    raise _Unread


# The kinds of `_id` handled here: those `id_order` orders as MongoDB does.
ID_KINDS = ("null", "int", "long", "double", "string", "objectId")


def id_order(image_id: Any) -> tuple[int, Any]:
    """MongoDB's order of `_id`s of ID_KINDS: null, numbers, strings (by their UTF-8 bytes,
    which is their code points' order), then ObjectIds."""
    if image_id is None:
        return -1, 0
    if isinstance(image_id, ObjectId):
        return 2, image_id.binary
    if isinstance(image_id, str):
        return 1, image_id
    return 0, image_id
