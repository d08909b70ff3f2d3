"""`/docs` (Swagger UI) and `/redoc` (ReDoc), from files the service serves itself.

FastAPI's own pages load Swagger UI and ReDoc from cdn.jsdelivr.net, ReDoc's fonts from Google
and a favicon from fastapi.tiangolo.com: on a closed network `/docs` is a blank page. The same
packages, at the versions pinned here, are committed in app/static/docs/ and served under
/docs/static/. After a version here changes, `make web-assets` fetches them from the npm
registry (tests/rest/test_docs_pages.py fails until then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from app.assets import vendored_files

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "docs"
STATIC_URL = "/docs/static"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
# The pages may load nothing from elsewhere: ReDoc's sidebar shows Redocly's logo from
# cdn.redoc.ly (hidden when it fails to load), which a closed network should never be asked for.
# Both pages run an inline script and inline styles; ReDoc searches in a blob: worker.
LOCAL_ONLY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'"
)


@dataclass(frozen=True)
class Vendored:
    """A file of an npm package, as app/static/docs/ keeps it."""

    package: str
    version: str
    path: str  # inside the package

    @property
    def name(self) -> str:
        # The version in the name: a browser never holds a copy from before an upgrade.
        return f"{self.package}@{self.version}-{self.path.rsplit('/', 1)[-1]}"

    @property
    def url(self) -> str:
        return f"{STATIC_URL}/{self.name}"


SWAGGER_UI = "swagger-ui-dist", "5.35.0"
REDOC = "redoc", "2.5.4"
SWAGGER_JS = Vendored(*SWAGGER_UI, "swagger-ui-bundle.js")
SWAGGER_CSS = Vendored(*SWAGGER_UI, "swagger-ui.css")
FAVICON = Vendored(*SWAGGER_UI, "favicon-32x32.png")
REDOC_JS = Vendored(*REDOC, "bundles/redoc.standalone.js")
ASSETS = (SWAGGER_JS, SWAGGER_CSS, FAVICON, REDOC_JS)


def install_docs(app: FastAPI, *, title: str) -> None:
    """Serve the two pages and their files (the app is made with `docs_url=None, redoc_url=None`)."""
    missing = [asset.name for asset in ASSETS if not (STATIC_DIR / asset.name).is_file()]
    if missing:
        log.error("/docs and /redoc will not render: %s missing; run `make web-assets`", ", ".join(missing))
    openapi_url = app.openapi_url or "/openapi.json"
    # Versioned names, cached for good: the 3 MB load once per browser.
    app.mount(STATIC_URL, vendored_files(STATIC_DIR), name="docs-static")
    title = f"{title}: REST API"
    swagger_html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=SWAGGER_JS.url,
        swagger_css_url=SWAGGER_CSS.url,
        swagger_favicon_url=FAVICON.url,
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        # Swagger UI's default validator badge sends the whole OpenAPI document to swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    redoc_html = get_redoc_html(
        openapi_url=openapi_url,
        title=title,
        redoc_js_url=REDOC_JS.url,
        redoc_favicon_url=FAVICON.url,
        with_google_fonts=False,
    ).body
    headers = {"Content-Security-Policy": LOCAL_ONLY}

    @app.api_route(DOCS_URL, methods=["GET", "HEAD"], include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger_html, headers=headers)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.api_route(REDOC_URL, methods=["GET", "HEAD"], include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(redoc_html, headers=headers)
