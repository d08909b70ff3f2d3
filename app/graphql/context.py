"""What every resolver gets: the services, the caller's scope, and where downloads live."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import strawberry
from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext

from app.domain.scope import Scope
from app.errors import ServiceError
from app.rest.deps import ServicesDep
from app.services import Services


@dataclass
class Context(BaseContext):
    services: Services
    base_url: str  # e.g. http://host:3000, for the REST download URLs of images
    scope_or_error: Scope | ServiceError

    @property
    def scope(self) -> Scope:
        """The caller's scope. A missing or bad token fails the fields that need it, as a
        GraphQL error with code UNAUTHENTICATED, rather than the whole HTTP request (so the
        GraphiQL page loads without a token)."""
        if isinstance(self.scope_or_error, ServiceError):
            raise self.scope_or_error
        return self.scope_or_error

    async def link(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The absolute URL of a REST `path` for this caller: signed under OIDC, so a browser
        opens it without a header (app/domain/links.py)."""
        linker = await self.services.linker(self.scope)
        return f"{self.base_url}{linker(path, query)}"


async def get_context(services: ServicesDep, connection: HTTPConnection) -> Context:
    """A FastAPI dependency: the same services and token rules as the REST routes. For a
    WebSocket the token may also come in the `connection_init` payload (`authenticate`)."""
    base_url = str(connection.base_url).rstrip("/")
    if connection.scope["type"] == "websocket":  # the base URL of the HTTP routes, for `Image.url`
        base_url = base_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    return Context(
        services=services,
        base_url=base_url,
        scope_or_error=await _scope(services, connection.headers.get("authorization")),
    )


async def authenticate(context: Context, connection_params: object) -> None:
    """A WebSocket's `connection_init` payload: `{"Authorization": "Bearer <JWT>"}`, which
    browsers cannot send as a header, replaces the upgrade request's."""
    if isinstance(connection_params, dict):
        token = connection_params.get("Authorization") or connection_params.get("authorization")
        if isinstance(token, str):
            context.scope_or_error = await _scope(context.services, token)


async def _scope(services: Services, authorization: str | None) -> Scope | ServiceError:
    try:
        return await services.scope_for(authorization)
    except ServiceError as error:
        return error


Info = strawberry.Info[Context, None]
