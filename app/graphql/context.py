"""What every resolver gets: the services, the caller's scope, and where downloads live."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from fastapi import Request
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


async def get_context(services: ServicesDep, request: Request) -> Context:
    """A FastAPI dependency: the same services and token rules as the REST routes."""
    scope: Scope | ServiceError
    try:
        scope = await services.scope_for(request.headers.get("authorization"))
    except ServiceError as error:
        scope = error
    return Context(services=services, base_url=str(request.base_url).rstrip("/"), scope_or_error=scope)


Info = strawberry.Info[Context, None]
