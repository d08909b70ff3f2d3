"""Cursor paging: a page starts after the last image of the one before, not after a count.

A cursor names the sort values of the last image a page held (its sort keys, then `_id`), so
the next page is "everything after these values": images inserted or deleted meanwhile never
shift it, and every image that survives the walk is met exactly once. The values go in BSON
(a date stays a date, 2 stays an int), signed with a key kept in the database (so that every
replica accepts every replica's cursors), and bound to the caller and to the query: a cursor
that was altered, or that another user or another filter or sort tries to use, is refused. A
cursor only ever narrows the caller's own query; the scope is ANDed on top as always.

"After" follows MongoDB's sort order, which compares values of different types by type first
(null and missing, then numbers, strings, objects, binary, ids, booleans, dates) while `$gt`
only compares within one type: so the condition names the later types too. A field holding
arrays sorts by one of its elements, which no condition can follow: cursor pages sorted by
such a field may skip or repeat images.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import bson
from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.errors import BSONError

from app.domain.query import all_of, any_of
from app.domain.scope import Scope
from app.errors import BadInput

KEY_ID = "cursor-signing-key"
MAC_BYTES = 16
VERSION = 1
NEVER = {"_id": {"$exists": False}}  # matches nothing

# MongoDB's order of BSON types in a sort, by the `$type` names of each rank. Arrays sort by an
# element, so they have no rank of their own here.
TYPE_RANKS: list[list[str]] = [
    ["null"],
    ["number"],  # double, int, long and decimal
    ["string"],
    ["object"],
    ["binData"],
    ["objectId"],
    ["bool"],
    ["date"],
    ["timestamp"],
    ["regex"],
]


def _rank(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 6
    if isinstance(value, (int, float, Int64, Decimal128)):
        return 1
    if isinstance(value, str):
        return 2
    if isinstance(value, Mapping):
        return 3
    if isinstance(value, (bytes, Binary)):
        return 4
    if isinstance(value, ObjectId):
        return 5
    if isinstance(value, datetime):
        return 7
    if isinstance(value, Timestamp):
        return 8
    if isinstance(value, (Regex, re.Pattern)):
        return 9
    raise BadInput("The cursor holds a value images cannot be sorted by.")


def _types(ranks: range) -> list[str]:
    return [name for rank in ranks for name in TYPE_RANKS[rank]]


def after(path: str, value: Any, direction: int) -> dict[str, Any]:
    """The images whose `path` comes after `value` in that direction of MongoDB's sort."""
    rank = _rank(value)
    branches: list[dict[str, Any]] = []
    if direction == 1:
        if rank:
            branches.append({path: {"$gt": value}})
        if rank + 1 < len(TYPE_RANKS):
            branches.append({path: {"$type": _types(range(rank + 1, len(TYPE_RANKS)))}})
    else:
        if rank:
            branches.append({path: {"$lt": value}})
            if rank > 1:
                branches.append({path: {"$type": _types(range(1, rank))}})
            branches.append({path: None})  # null and missing come last
    return any_of(branches) if branches else NEVER


def keyset(sort: Sequence[tuple[str, int]], values: Sequence[Any]) -> dict[str, Any]:
    """After the image with these sort values: later on the first key, or equal on it and later
    on the next, and so on down to `_id`."""
    branches = []
    for index, (path, direction) in enumerate(sort):
        equal = [{earlier: values[position]} for position, (earlier, _) in enumerate(sort[:index])]
        branches.append(all_of([*equal, after(path, values[index], direction)]))
    return any_of(branches)


def sort_values(document: Mapping[str, Any], sort: Sequence[tuple[str, int]]) -> list[Any]:
    """The document's value at each sort path (None where it has none, as the sort sees it)."""
    values = []
    for path, _ in sort:
        value: Any = document
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        values.append(value)
    return values


def fingerprint(condition: Mapping[str, Any], sort: Sequence[tuple[str, int]]) -> bytes:
    """What a cursor is bound to besides its caller: the filter and the sort."""
    return hashlib.sha256(bson.encode({"f": condition, "s": [list(key) for key in sort]})).digest()[:8]


class Cursors:
    """Makes and reads the signed cursors of one service (one signing key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def make(self, *, scope: Scope, query: bytes, values: Sequence[Any]) -> str:
        payload = bson.encode({"v": VERSION, "u": scope.owner, "q": Binary(query), "k": list(values)})
        signature = hmac.new(self._key, payload, hashlib.sha256).digest()[:MAC_BYTES]
        return base64.urlsafe_b64encode(payload + signature).decode().rstrip("=")

    def read(self, text: str, *, scope: Scope, query: bytes) -> list[Any]:
        """The sort values a cursor names; BadInput when it is not one for this caller and query."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise BadInput("The cursor is not one this service gave out.") from None
        payload, signature = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:MAC_BYTES]
        if len(raw) <= MAC_BYTES or not hmac.compare_digest(signature, expected):
            raise BadInput("The cursor is not one this service gave out.")
        try:
            content = bson.decode(payload)
        except BSONError:
            raise BadInput("The cursor is not one this service gave out.") from None
        if content.get("u") != scope.owner:
            raise BadInput("The cursor was given to another user.")
        if content.get("q") != query:
            raise BadInput("The cursor belongs to another filter or sort: page from the start without it.")
        values: list[Any] = content["k"]
        return values


def new_key() -> bytes:
    """A fresh signing key (the store keeps the first replica's: `SecretStore.shared`)."""
    return os.urandom(32)
