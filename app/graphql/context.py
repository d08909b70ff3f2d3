"""What every resolver gets: the services, the caller's scope, and where downloads live."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from fastapi import Request
from strawberry.fastapi import BaseContext

from app.domain.scope import Scope
from app.rest.deps import ScopeDep, ServicesDep
from app.services import Services


@dataclass
class Context(BaseContext):
    services: Services
    scope: Scope
    base_url: str  # e.g. http://host:3000, for the REST download URLs of images


async def get_context(services: ServicesDep, scope: ScopeDep, request: Request) -> Context:
    """A FastAPI dependency: the same services and scope as the REST routes get."""
    return Context(services=services, scope=scope, base_url=str(request.base_url).rstrip("/"))


Info = strawberry.Info[Context, None]
