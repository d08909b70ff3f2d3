"""The matches of a filter in FerretDB's natural order, a page at a time, read from SQLite.

FerretDB keeps a collection's documents in insertion order by SQLite's `rowid`, which is the
natural order it answers an unsorted `find` in. A page here is the `_id`s of the next `limit`
matches after a `rowid`: SQLite reads on from there through its `rowid` index, so walking all
the matches reads the table once in all, not once per page.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.store.engines.ferretdb_sqlite.files import DOCUMENT, quoted
from app.store.engines.ferretdb_sqlite.sql import Parameters, translate


@dataclass(frozen=True)
class Step:
    rowid: int
    id_value: Any  # as SQLite holds it: see `shortcuts._stored_id`
    id_kind: str
    unsure: bool  # plain SQL cannot tell whether this row matches (an array on the filter's path)


def next_page(
    connection: sqlite3.Connection, table: str | None, *, condition: Mapping[str, Any], after: int, limit: int
) -> list[Step] | None:
    """The rows after `after` that match, or that SQL cannot decide, `limit` at most; None if
    `condition` cannot be translated."""
    if table is None:
        return []
    parameters = Parameters()
    translated = translate(condition, parameters)
    if translated is None:
        return None
    match, unsure = translated
    rows = connection.execute(
        f'SELECT rowid, json_extract({DOCUMENT}, \'$."_id"\'), json_extract({DOCUMENT}, \'$."$s".p."_id".t\'),'
        f" ({unsure}) FROM {quoted(table)} WHERE rowid > {parameters(after)} AND (({match}) OR ({unsure}))"
        f" ORDER BY rowid LIMIT {parameters(limit)}",
        parameters.values,
    ).fetchall()
    return [Step(rowid=row[0], id_value=row[1], id_kind=row[2], unsure=bool(row[3])) for row in rows]
