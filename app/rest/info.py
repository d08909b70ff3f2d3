"""`GET /`: what this service is and what it is connected to, secrets redacted."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app import __version__
from app.rest.deps import ServicesDep

router = APIRouter(tags=["info"])


@router.get("/", summary="Service information and connection state")
async def info(services: ServicesDep) -> dict[str, Any]:
    settings = services.settings
    return {
        "name": "image-storage",
        "version": __version__,
        "mongodb": {
            "uri": settings.mongodb_uri_redacted,
            "database": settings.mongodb_database,
            "connected": await services.store.ping(),
        },
        "storage": {
            "kind": services.storage.kind,
            "location": services.storage.location,
            "reachable": await services.storage.ping(),
        },
        "auth": {
            "oidc": settings.oidc_jwks_uri is not None,
            "jwksUri": settings.oidc_jwks_uri,
            "issuer": settings.oidc_issuer,
            "audience": settings.oidc_audience,
            "userIdentifier": settings.user_identifier,
        },
        "imageScope": settings.image_scope,
    }
