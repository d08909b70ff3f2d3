"""`/graphql`: Strawberry's FastAPI router with uploads on, and GraphiQL on GET."""

from __future__ import annotations

from fastapi import Depends, Request
from strawberry.fastapi import GraphQLRouter

from app.errors import BadInput
from app.graphql.context import get_context
from app.graphql.schema import schema

# Any of these makes a browser send a CORS preflight first, which a cross-site form cannot.
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")


def require_preflight_for_uploads(request: Request) -> None:
    """Multipart requests are "simple" to a browser: without this check any web page a user
    visits could post uploads with the user's cookies (the multipart spec's CSRF note)."""
    is_multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    if is_multipart and not any(name in request.headers for name in PREFLIGHT_HEADERS):
        raise BadInput("File uploads need an Apollo-Require-Preflight header (any value).")


def graphql_router() -> GraphQLRouter:  # type: ignore[type-arg]
    return GraphQLRouter(
        schema,
        context_getter=get_context,
        multipart_uploads_enabled=True,
        dependencies=[Depends(require_preflight_for_uploads)],
    )
