"""The one place where errors become HTTP responses: `{"detail": "<one sentence>", "code": "<code>"}`.

`code` is stable and machine-readable: a domain error's class names it (`app/errors.py`), and
answers not raised by the domain (an unknown route, a wrong method, a body too large or too slow)
take theirs from `status_code` below. The README's table lists every code.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

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
    errors.Gone: 410,
    errors.StaleRevision: 412,
    errors.TooLarge: 413,
    errors.NotAnImage: 415,
    errors.Unprocessable: 422,
    errors.Unavailable: 503,
}


# The code of an answer the domain did not raise, by its HTTP status (Starlette's 404 and 405,
# the body limits' 408 and 413, the server's 414 and 431).
_STATUS_CODES: dict[int, str] = {
    400: "bad_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    412: "stale_revision",
    413: "too_large",
    414: "bad_input",
    415: "not_an_image",
    422: "unprocessable",
    429: "rate_limited",
    431: "bad_input",
    503: "unavailable",
    504: "timeout",
}


_SENTENCES = {
    404: "There is no route at this path.",
    405: "This route does not take {method} requests.",
}


def status_code(status: int) -> str:
    """The `code` of an error answer with HTTP status `status` that no domain error named."""
    return _STATUS_CODES.get(status, "bad_input" if status < 500 else "internal")


def error_response(status: int, detail: str, code: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"detail": detail, "code": code or status_code(status)}
    return JSONResponse(body, status_code=status, headers=headers)


async def _service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.ServiceError)
    status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
    response = error_response(status, error.detail, error.code)
    if isinstance(error, ImportInterrupted):
        # What did get imported, so the client knows exactly where the import stopped.
        body = {"detail": error.detail, "code": error.code, **error.summary.as_json()}
        response = JSONResponse(body, status_code=status)
    return response


async def _http_error(request: Request, error: Exception) -> Response:
    # Starlette's own refusals (unknown route, wrong method) and the body limits': the same body
    # as the domain's, keeping the headers they carry (a 405's Allow).
    assert isinstance(error, HTTPException)
    if error.status_code in (204, 304):
        return Response(status_code=error.status_code, headers=error.headers)
    detail = str(error.detail)
    if detail == HTTPStatus(error.status_code).phrase:
        # Starlette's bare phrase ("Not Found"): one sentence, like every other answer.
        detail = _SENTENCES.get(error.status_code, f"{detail}.").format(method=request.method)
    body = {"detail": detail, "code": status_code(error.status_code)}
    headers = dict(error.headers or {})
    if error.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=error.status_code, headers=headers or None)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    # FastAPI's default is a 422 with a list; legacy clients expect a 400 and one sentence.
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0]
    where = {"path": "path parameter", "query": "query parameter", "body": "field", "header": "header"}
    location = list(first.get("loc", ()))
    kind = where.get(str(location[0]), "value") if location else "value"
    name = ".".join(str(part) for part in location[1:]) or "body"
    if first.get("type") == "missing":
        return error_response(400, f"The {kind} {name!r} is required.", errors.BadInput.code)
    reason = first.get("msg", "bad value")
    return error_response(400, f"The {kind} {name!r} is invalid: {reason}.", errors.BadInput.code)


async def _database_unreachable(request: Request, error: Exception) -> JSONResponse:
    # A driver error that escaped the domain's mapping (the store's `errors()` counts the ones it maps).
    request.app.state.metrics.dependency_error("database", type(error).__name__)
    return error_response(503, "The database is unreachable; try again shortly.", errors.Unavailable.code)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # The one log line for this error, with its traceback; the request's access line (same
    # request_id) carries the route. Not the raw URL: its path and query may hold anything.
    log.error("unexpected error while serving a request", exc_info=error)
    return error_response(500, "Internal server error.", "internal")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.ServiceError, _service_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UNREACHABLE, _database_unreachable)
    app.add_exception_handler(Exception, _unexpected)
