"""Filters as SQL over FerretDB's SQLite rows, where their meaning there is plain.

FerretDB's storage format ("sjson", internal/handler/sjson/sjson.go): each row holds a document
as JSON, with its types in a schema under `$s`: `{"$s": {"p": {"data": {"t": "object", "$s":
{"p": {"label": {"t": "string"}}}}}}, "data": {"label": "cat"}}`. Strings, ObjectIds and binary
data are all JSON strings, and dates are milliseconds, so a value is only ever compared together
with its type from the schema. An array's element types are under `"i": [...]`.

Translated: equality, `$in` and ranges of strings, numbers, booleans, dates and ObjectIds, under
`$and` and `$or`. Anything else gives None, and so does nothing here decide a document on which
the filter's path crosses an array (MongoDB's traversal of array elements): such a row is
"unsure", and the caller leaves the question to FerretDB.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions, DatetimeConversion

from app.store.engines.ferretdb_sqlite.files import DOCUMENT


@dataclass(frozen=True)
class Where:
    """A filter as SQL over one FerretDB row: `match` where it holds, `unsure` where the row's
    shape (an array on the path) makes plain SQL unable to tell; parameters by name."""

    match: str
    unsure: str
    parameters: dict[str, Any]


class Parameters:
    """Values bound by name: a statement may leave some out (the planning query uses a sort
    key's type, not its value)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f":{name}"


NUMBER_TYPES = ("int", "long", "double")
# Integers beyond this are not all exact as doubles, and SQLite and MongoDB compare them with
# doubles differently; they are left to FerretDB.
EXACT_INTEGERS = 2**53
RANGES = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def by_id_alone(condition: Mapping[str, Any]) -> bool:
    """Whether `condition` is the one lookup FerretDB hands SQLite itself, through an index."""
    return set(condition) == {"_id"} and not isinstance(condition["_id"], Mapping)


def conditions(condition: Mapping[str, Any]) -> Where | None:
    """`condition` as SQL with its own parameters; None if any part is not plain."""
    parameters = Parameters()
    translated = translate(condition, parameters)
    if translated is None:
        return None
    match, unsure = translated
    return Where(match=match, unsure=unsure, parameters=parameters.values)


def translate(condition: Mapping[str, Any], parameters: Parameters) -> tuple[str, str] | None:
    """`condition` (implicitly ANDed keys) as SQL; None if any part is not plain."""
    parts: list[tuple[str, str]] = []
    for key, value in condition.items():
        if key in ("$and", "$or") and isinstance(value, list) and value:
            children = [translate(child, parameters) if isinstance(child, Mapping) else None for child in value]
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
class At:
    """SQL for a dotted path in a FerretDB row."""

    value: str  # the value there
    type: str  # its type, from the schema
    value_path: str  # a parameter: the value's JSON path
    schema_path: str  # a parameter: the schema entry's JSON path (`.i[n].t` are an array's items)
    objects: str  # every step before the last is an object
    crosses_array: str  # some step before the last is an array


def locate(path: str, parameters: Parameters) -> At | None:
    segments = path.split(".")
    if not all(plain_key(segment) for segment in segments):
        return None
    # `$."data"."label"`, and its schema entry `$."$s".p."data"."$s".p."label"`.
    value_steps = [f'."{segment}"' for segment in segments]
    schema_steps = [f'."$s".p."{segment}"' for segment in segments]
    prefixes = [
        f"json_extract({DOCUMENT}, {parameters('$' + ''.join(schema_steps[:depth]) + '.t')})"
        for depth in range(1, len(segments))
    ]
    value_path = parameters("$" + "".join(value_steps))
    return At(
        value=f"json_extract({DOCUMENT}, {value_path})",
        type=f"json_extract({DOCUMENT}, {parameters('$' + ''.join(schema_steps) + '.t')})",
        value_path=value_path,
        schema_path=parameters("$" + "".join(schema_steps)),
        objects=" AND ".join([f"{prefix} = 'object'" for prefix in prefixes] or ["1"]),
        crosses_array=" OR ".join([f"{prefix} = 'array'" for prefix in prefixes] or ["0"]),
    )


def _field(path: str, value: Any, parameters: Parameters) -> tuple[str, str] | None:
    """`{path: value}`: equality with a scalar or null, `$eq`, `$in`, ranges and `$type`."""
    at = locate(path, parameters)
    if at is None:
        return None
    operators = value if isinstance(value, Mapping) else {"$eq": value}
    if not operators or not all(isinstance(name, str) and name.startswith("$") for name in operators):
        return None  # `{path: {...}}` without operators is equality with a whole document
    tests: list[str] = []
    # Any array on the way (`data.parts.name` with `parts` a list) brings in MongoDB's traversal
    # of array elements: unsure. An array at the end is plain for equality (any element equals).
    unsure = [at.crosses_array]
    item_type = f"json_extract({DOCUMENT}, {at.schema_path} || '.i[' || item.key || '].t')"
    items = f"json_each({DOCUMENT}, {at.value_path}) AS item"
    for operator, operand in operators.items():
        if operator in ("$eq", "$in"):
            candidates = operand if operator == "$in" else [operand]
            if not isinstance(candidates, list):
                return None
            equals: list[str] = []
            for candidate in candidates:
                if candidate is None:
                    # Null or missing, and missing includes a path through a scalar or a
                    # missing step: no object needed on the way.
                    equals.append(
                        f"({at.type} IS NULL OR {at.type} = 'null' OR ({at.type} = 'array'"
                        f" AND EXISTS (SELECT 1 FROM {items} WHERE {item_type} = 'null')))"
                    )
                    continue
                typed = typed_value(candidate)
                if typed is None:
                    return None
                types, stored = typed
                given = parameters(stored)
                listed = sql_list(types)
                equals.append(f"({at.objects} AND {at.type} IN ({listed}) AND {at.value} = {given})")
                equals.append(
                    f"({at.objects} AND {at.type} = 'array' AND EXISTS (SELECT 1 FROM {items}"
                    f" WHERE item.value = {given} AND {item_type} IN ({listed})))"
                )
            tests.append("(" + (" OR ".join(equals) or "0") + ")")
        elif operator in RANGES:
            typed = typed_value(operand)
            if typed is None or isinstance(operand, bool):
                return None
            types, stored = typed
            # On an array MongoDB takes each bound on any element, not on one: unsure.
            unsure.append(f"{at.type} = 'array'")
            compared = f"{at.value} {RANGES[operator]} {parameters(stored)}"
            tests.append(f"({at.objects} AND {at.type} IN ({sql_list(types)}) AND {compared})")
        elif operator == "$type":
            names = operand if isinstance(operand, list) else [operand]
            stored_types = [TYPE_ALIASES.get(name) if isinstance(name, str) else None for name in names]
            if not stored_types or any(kinds is None for kinds in stored_types):
                return None
            listed = sql_list(tuple(kind for kinds in stored_types if kinds for kind in kinds))
            if "array" not in names:
                unsure.append(f"{at.type} = 'array'")  # then MongoDB looks at the elements
            tests.append(f"({at.objects} AND {at.type} IN ({listed}))")
        else:
            return None
    return "(" + " AND ".join(tests) + ")", "(" + " OR ".join(unsure) + ")"


# `$type` names as FerretDB's schema spells the types (FerretDB 1.24 has no decimal, and no
# types beyond these).
TYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "number": NUMBER_TYPES,
    **{
        name: (name,)
        for name in (
            "double",
            "string",
            "object",
            "array",
            "binData",
            "objectId",
            "bool",
            "date",
            "null",
            "regex",
            "int",
            "timestamp",
            "long",
        )
    },
}


def sql_list(types: tuple[str, ...]) -> str:
    return ", ".join(f"'{name}'" for name in types)


def plain_key(segment: str) -> bool:
    # What a quoted JSON path label can hold; `$` starts FerretDB's own keys (`$s`, `$k`).
    return (
        bool(segment)
        and not segment.startswith("$")
        and all(character not in '"\\' and character.isprintable() for character in segment)
    )


MILLISECONDS: CodecOptions[dict[str, Any]] = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)


def typed_value(value: Any) -> tuple[tuple[str, ...], Any] | None:
    """The schema types a stored value equal to `value` may have, and `value` as stored."""
    if isinstance(value, bool):
        return ("bool",), int(value)
    if isinstance(value, int):
        return (NUMBER_TYPES, value) if abs(value) < EXACT_INTEGERS else None
    if isinstance(value, float):
        return (NUMBER_TYPES, value) if math.isfinite(value) else None
    if isinstance(value, str):
        return ("string",), value
    if isinstance(value, ObjectId):
        return ("objectId",), str(value)  # lowercase hex: ordered as the 12 bytes are
    if isinstance(value, datetime):
        # As BSON stores it: whole milliseconds.
        return ("date",), int(bson.decode(bson.encode({"v": value}), codec_options=MILLISECONDS)["v"])
    return None
