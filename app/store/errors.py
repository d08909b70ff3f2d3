"""The driver's errors as the domain's: unreachable → Unavailable, refused value → BadInput."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bson.errors import InvalidDocument
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    CursorNotFound,
    DocumentTooLarge,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteError,
)

from app.errors import BadInput, Conflict, Unavailable

# A driver error some code path did not map: the faces answer it 503 rather than 500.
UNREACHABLE = ConnectionFailure
# Any error of the driver: what start-up and background work catch and log.
DRIVER_ERROR = PyMongoError

DUPLICATE_KEY = 11000
# Server error codes that mean "this value cannot be stored", not "the server is broken".
_REFUSED_VALUE_CODES = {2, 17419, 52, 55, 56, 57}  # BadValue, DocumentTooLarge, dollar/dotted/…

Readable = Callable[[str], str]


def _plain(message: str) -> str:
    return message.rstrip(".")


@contextmanager
def database_errors(*, user_query: bool = False, readable: Readable = _plain) -> Iterator[None]:
    """Turn driver errors into domain errors; `readable` makes a server's message fit for a
    client (the engine's `error_text`).

    With `user_query`, any command error counts as the user's: the query compiler has already
    refused everything unsafe, so what the server still refuses (a projection path collision,
    say) is a query the user can fix.
    """
    try:
        yield
    except DuplicateKeyError:
        raise Conflict("Another image already uses this file path or id.") from None
    except (ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError) as error:
        raise Unavailable("The database is unreachable; try again shortly.", cause=type(error).__name__) from None
    except CursorNotFound:  # before OperationFailure, which it is a kind of: not the user's query
        lost = "The database lost its place in this request's results; try again."
        raise Unavailable(lost, cause="CursorNotFound") from None
    except BulkWriteError as error:  # before OperationFailure, which it is a kind of
        first = (error.details.get("writeErrors") or [{}])[0]
        message = readable(str(first.get("errmsg") or "a write was refused"))
        if first.get("code") == DUPLICATE_KEY:
            raise Conflict("Another image already uses this file path or id.") from None
        if first.get("code") in _REFUSED_VALUE_CODES:
            raise BadInput(f"The database refused a value: {message}.") from None
        raise
    except (WriteError, OperationFailure) as error:
        text = str((error.details or {}).get("errmsg") or error).split(", full error")[0]
        message = readable(text)
        if user_query and not isinstance(error, WriteError):
            raise BadInput(f"The database could not run this query: {message}.") from None
        if error.code in _REFUSED_VALUE_CODES:
            raise BadInput(f"The database refused a value: {message}.") from None
        raise
    except (DocumentTooLarge, InvalidDocument) as error:
        raise BadInput(f"The database refused the document: {error}.") from None
