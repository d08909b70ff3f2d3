"""Driver errors become domain errors with one sentence of the server's, never its internals."""

from __future__ import annotations

import pytest
from pymongo.errors import BulkWriteError, CursorNotFound, OperationFailure, WriteError

from app.errors import BadInput, Conflict, Unavailable
from app.store.engines.ferretdb import FerretDB
from app.store.errors import database_errors

FERRETDB_TEXT = FerretDB("v1.24.2").error_text

# Error documents as FerretDB 1.24 sends them (seen in tests/rest/test_bad_input.py's cases).
SORT_KEYS = {
    "ok": 0.0,
    "errmsg": "[sort.go:96 common.ValidateSortDocument] maximum sort keys exceeded: 40",
    "code": 1,
    "codeName": "InternalError",
}
CURSOR_LOST = {"ok": 0.0, "errmsg": "cursor id 1166500280 not found", "code": 43, "codeName": "CursorNotFound"}
NESTED_ARRAY = {"index": 0, "code": 2, "errmsg": 'invalid value: { "a": [ [ 1 ] ] } (nested arrays are not supported)'}


def test_a_refused_query_is_bad_input_without_the_source_location() -> None:
    with pytest.raises(BadInput) as caught, database_errors(user_query=True, readable=FERRETDB_TEXT):
        raise OperationFailure(SORT_KEYS["errmsg"], code=1, details=SORT_KEYS)
    assert caught.value.detail == "The database could not run this query: maximum sort keys exceeded: 40."


def test_a_refused_value_is_bad_input_naming_it() -> None:
    with pytest.raises(BadInput) as caught, database_errors():
        raise WriteError(NESTED_ARRAY["errmsg"], code=2, details=NESTED_ARRAY)
    assert "nested arrays are not supported" in caught.value.detail
    with pytest.raises(BadInput), database_errors():
        raise BulkWriteError({"writeErrors": [NESTED_ARRAY], "nInserted": 0})


def test_a_duplicate_key_in_a_bulk_write_is_a_conflict() -> None:
    with pytest.raises(Conflict), database_errors():
        raise BulkWriteError({"writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}]})


def test_a_lost_cursor_is_the_servers_trouble_not_the_users_query() -> None:
    # FerretDB drops a connection's cursors when the connection closes.
    with pytest.raises(Unavailable) as caught, database_errors(user_query=True):
        raise CursorNotFound(CURSOR_LOST["errmsg"], code=43, details=CURSOR_LOST)
    assert caught.value.detail == "The database lost its place in this request's results; try again."
