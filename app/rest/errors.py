"""The one place where errors become HTTP responses: `{"detail": "<one sentence>"}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app import errors
from app.domain.archives.imports import ImportInterrupted
from app.store.errors import UNREACHABLE

log = logging.getLogger(__name__)

STATUS: dict[type[errors.ServiceError], int] = {
    errors.BadInput: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.StaleRevision: 412,
    errors.TooLarge: 413,
    errors.NotAnImage: 415,
    errors.Unprocessable: 422,
    errors.Unavailable: 503,
}


def error_response(status: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.ServiceError)
    status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
    response = error_response(status, error.detail)
    if isinstance(error, ImportInterrupted):
        # What did get imported, so the client knows exactly where the import stopped.
        response = JSONResponse({"detail": error.detail, **error.summary.as_json()}, status_code=status)
    return response


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    # FastAPI's default is a 422 with a list; legacy clients expect a 400 and one sentence.
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    where = {"path": "path parameter", "query": "query parameter", "body": "field", "header": "header"}
    location = list(first.get("loc", ()))
    kind = where.get(str(location[0]), "value") if location else "value"
    name = ".".join(str(part) for part in location[1:]) or "body"
    if first.get("type") == "missing":
        return error_response(400, f"The {kind} {name!r} is required.")
    return error_response(400, f"The {kind} {name!r} is invalid: {first.get('msg', 'bad value')}.")


async def _database_unreachable(request: Request, error: Exception) -> JSONResponse:
    # A driver error that escaped the domain's mapping (the store's `errors()` counts the ones it maps).
    request.app.state.metrics.dependency_error("database", type(error).__name__)
    return error_response(503, "The database is unreachable; try again shortly.")


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # The one log line for this error, with its traceback; the request's access line (same
    # request_id) carries the route. Not the raw URL: its path and query may hold anything.
    log.error("unexpected error while serving a request", exc_info=error)
    return error_response(500, "Internal server error.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UNREACHABLE, _database_unreachable)
    app.add_exception_handler(Exception, _unexpected)
