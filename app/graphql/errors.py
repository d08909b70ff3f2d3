"""The one place where errors become GraphQL errors: a clear message and a code in `extensions`.

Domain errors keep their sentence and get a code; errors GraphQL itself raises (syntax,
validation, a variable of the wrong type) keep theirs; anything else is a bug, logged once with
its traceback and shown as "Unexpected error." with no detail.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app import errors

log = logging.getLogger(__name__)

CODES: dict[type[errors.ServiceError], str] = {
    errors.BadInput: "BAD_USER_INPUT",
    errors.TooLarge: "BAD_USER_INPUT",
    errors.NotAnImage: "BAD_USER_INPUT",
    errors.Unprocessable: "UNPROCESSABLE",
    errors.Unauthenticated: "UNAUTHENTICATED",
    errors.Forbidden: "FORBIDDEN",
    errors.NotFound: "NOT_FOUND",
    # Before Conflict: the first class the error is an instance of names its code.
    errors.Busy: "BUSY",
    errors.Duplicate: "DUPLICATE",
    errors.Conflict: "CONFLICT",
    errors.Gone: "GONE",
    errors.StaleRevision: "STALE_REVISION",
    errors.Unavailable: "SERVICE_UNAVAILABLE",
}


def graphql_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, errors.ServiceError):
        code = next(code for kind, code in CODES.items() if isinstance(original, kind))
        return _with(error, original.detail, code)
    if original is None or isinstance(original, GraphQLError):
        code = (error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
        return _with(error, error.message, str(code))
    log.error("unexpected error in GraphQL %s", error.path, exc_info=original)
    return _with(error, "Unexpected error.", "INTERNAL_SERVER_ERROR")


def _with(error: GraphQLError, message: str, code: str) -> GraphQLError:
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), "code": code},
    )


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors_found: list[GraphQLError] | None = getattr(result, "errors", None)
        if result is not None and errors_found:
            result.errors = [graphql_error(error) for error in errors_found]
