"""`/graphql`: Strawberry's FastAPI router with uploads on, and GraphiQL on GET (served offline, `ide.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

from fastapi import Depends, Request
from starlette.requests import HTTPConnection
from strawberry.types.unset import UNSET, UnsetType

from app.domain.metadata import check_json_nesting
from app.errors import BadInput
from app.graphql.context import Context, authenticate, get_context
from app.graphql.ide import OfflineGraphiQLRouter
from app.graphql.schema import schema

# Any of these makes a browser send a CORS preflight first, which a cross-site form cannot.
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")


async def guard_uploads(connection: HTTPConnection) -> AsyncIterator[None]:
    """Multipart requests are "simple" to a browser: without the header check any web page a
    user visits could post uploads with the user's cookies (the multipart spec's CSRF note).

    Strawberry parses the multipart body itself, so closing its spooled files (and deleting
    any that went to disk) is left to us, once the request is done. (A WebSocket has neither.)
    """
    is_multipart = connection.headers.get("content-type", "").startswith("multipart/form-data")
    if is_multipart and not any(name in connection.headers for name in PREFLIGHT_HEADERS):
        raise BadInput("File uploads need an Apollo-Require-Preflight header (any value).")
    try:
        yield
    finally:
        if isinstance(connection, Request):
            await connection.close()


class ImagesGraphQLRouter(OfflineGraphiQLRouter):
    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        await authenticate(context, context.connection_params)
        return cast(UnsetType, UNSET)  # a connection_ack without a payload

    def decode_json(self, data: str | bytes) -> object:
        # Parsers recurse once per level: thousands of levels (in a multipart request's
        # `operations`, or GET variables) are refused before parsing. JSON bodies were checked
        # already, as they were read (app/rest/limits.py).
        check_json_nesting(data, what="The GraphQL request")
        return super().decode_json(data)


def graphql_router() -> ImagesGraphQLRouter:
    return ImagesGraphQLRouter(
        schema,
        context_getter=get_context,
        multipart_uploads_enabled=True,
        dependencies=[Depends(guard_uploads)],
    )
