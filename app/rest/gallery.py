"""`/gallery`: the service's own web app to browse, filter, curate and upload images.

Plain ES modules, HTML and CSS in app/static/gallery/, nothing built at run time; the two
third-party files (graphql-ws's browser build, for the live subscription, and oauth4webapi,
for the login) are vendored like the /docs pages' (`make web-assets`) into
app/static/gallery/vendor/ and cached for good.
The app's own files keep plain names so that an edit needs no renaming: they are served with
`Cache-Control: no-cache`, so a browser revalidates them (a 304 by ETag) and never runs a
stale copy against a newer API.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.assets import vendored_files
from app.config import Settings
from app.rest.docs import Vendored

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "gallery"
VENDOR_DIR = STATIC_DIR / "vendor"
GALLERY_URL = "/gallery"
STATIC_URL = "/gallery/static"
VENDOR_URL = "/gallery/vendor"
REVALIDATE = "no-cache"

GRAPHQL_WS = Vendored("graphql-ws", "6.4.2", "umd/graphql-ws.min.js")
# panva's OAuth 2 / OpenID Connect client for browsers (ES module, no dependencies): discovery,
# PKCE and the code exchange of the gallery's login, loaded only when the login is configured.
OAUTH4WEBAPI = Vendored("oauth4webapi", "3.8.9", "build/index.js")
ASSETS = (GRAPHQL_WS, OAUTH4WEBAPI)

# Nothing from elsewhere, ever: images, the API and the subscription are all the service's own
# (Chromium lets `'self'` cover a WebSocket to the same host). Styles set from scripts need no
# 'unsafe-inline'; blob: is for previews of files about to be uploaded.
LOCAL_ONLY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'; form-action 'self'"
)


def login_config(settings: Settings) -> dict[str, str] | None:
    """What the page needs for its OIDC login (public values only: a public client has no
    secret), or None when OIDC_ISSUER or OIDC_CLIENT_ID is unset."""
    if not (settings.oidc_issuer and settings.oidc_client_id):
        return None
    return {
        "issuer": settings.oidc_issuer,
        "clientId": settings.oidc_client_id,
        "scopes": settings.oidc_scopes,
        "library": f"{VENDOR_URL}/{OAUTH4WEBAPI.name}",
    }


def content_security_policy(settings: Settings) -> str:
    """LOCAL_ONLY, and with the login configured the issuer's origin for `connect-src`: the page
    fetches the discovery document and posts the code to the token endpoint (which providers
    serve from the issuer's origin). Going to the authorization endpoint is a top-level
    navigation (`location.assign`), which no CSP directive governs; the page submits no form."""
    config = login_config(settings)
    if config is None:
        return LOCAL_ONLY
    issuer = urlsplit(config["issuer"])
    origin = f"{issuer.scheme}://{issuer.netloc}"
    return LOCAL_ONLY.replace("connect-src 'self'", f"connect-src 'self' {origin}")


class OwnFiles(StaticFiles):
    """The app's own files, revalidated on each visit (see the module's docstring)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = REVALIDATE
        return response


def page_html(settings: Settings | None = None) -> str:
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    config = {"login": login_config(settings) if settings else None}
    # A data block, never run (so the CSP needs no 'unsafe-inline'); `<` escaped so that no
    # value can close the element.
    data = json.dumps(config).replace("<", "\\u003c")
    return html.replace("{{GRAPHQL_WS}}", f"{VENDOR_URL}/{GRAPHQL_WS.name}").replace("{{CONFIG}}", data)


def install_gallery(app: FastAPI, settings: Settings | None = None) -> None:
    """Serve the page and its files; call before the app's route templates are collected."""
    missing = [asset.name for asset in ASSETS if not (VENDOR_DIR / asset.name).is_file()]
    if missing:
        log.error("/gallery will not see live changes: %s missing; run `make web-assets`", ", ".join(missing))
    app.mount(VENDOR_URL, vendored_files(VENDOR_DIR), name="gallery-vendor")
    # Gzipped like the vendored files: the app's 81 KB go out as 27 KB.
    own = GZipMiddleware(OwnFiles(directory=STATIC_DIR, check_dir=False), minimum_size=1024)
    app.mount(STATIC_URL, own, name="gallery-static")
    policy = content_security_policy(settings) if settings else LOCAL_ONLY
    headers = {"Content-Security-Policy": policy, "Cache-Control": REVALIDATE}
    html = page_html(settings)

    @app.api_route(GALLERY_URL, methods=["GET", "HEAD"], include_in_schema=False)
    async def gallery() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)
