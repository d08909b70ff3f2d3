"""`GET /`: what this service is and what it is connected to, secrets redacted.

API clients (the legacy GUI and scripts among them) get JSON; a browser, whose `Accept`
prefers HTML, is sent to the pages instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from app import __version__
from app.rest.deps import ServicesDep
from app.rest.gallery import GALLERY_URL

router = APIRouter(tags=["info"])

# Where a browser opening the service's address lands: the gallery, which links nothing of
# the API pages, but /docs and /graphql are one address away.
BROWSER_HOME = GALLERY_URL


@router.get(
    "/",
    summary="Service information and connection state",
    description="JSON for API clients; a request whose `Accept` prefers `text/html` (a browser) "
    f"is redirected to `{BROWSER_HOME}`.",
    response_model=dict[str, Any],
    responses={307: {"description": "to the pages, for a browser"}},
)
async def info(services: ServicesDep, request: Request) -> Response | dict[str, Any]:
    accept = request.headers.get("accept")
    if accept and parse_accept_header(accept, MIMEAccept).best_match(["application/json", "text/html"]) == "text/html":
        return RedirectResponse(BROWSER_HOME, status_code=307)
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
