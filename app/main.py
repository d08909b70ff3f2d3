"""The application factory: `uvicorn app.main:create_app --factory`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from app import __version__
from app.config import ConfigError, Settings, load_settings
from app.graphql.router import graphql_router
from app.logs import configure_logging
from app.metrics import Metrics
from app.rest import (
    archive,
    collection,
    downloads,
    events,
    fields,
    images,
    info,
    operations,
    snapshots,
    stored,
    views,
)
from app.rest.access import ObservedFastAPI, RouteTemplates
from app.rest.docs import install_docs
from app.rest.errors import install_error_handlers
from app.rest.events import DRAINING
from app.rest.gallery import install_gallery
from app.rest.limits import BodyLimits, RequestBodyLimits
from app.rest.methods import AllowedMethods
from app.rest.schemas import add_components
from app.services import Services

log = logging.getLogger("app")

TITLE = "Image storage"
# Every tag a router gives its routes, in the order /docs and /redoc show the groups.
TAGS = [
    {
        "name": "images",
        "description": "Images one at a time, and every image a query matches: upload, list, read, download, "
        "change the metadata of, delete.",
    },
    {
        "name": "fields",
        "description": "What the matching images' metadata holds: its keys, their values and how many images take "
        "each; and which images hold identical files.",
    },
    {
        "name": "archives",
        "description": "Whole datasets as .zip archives: the matches exported in the legacy layout or a training "
        "format, and archives imported.",
    },
    {
        "name": "views",
        "description": "Saved views: a named filter and sort of yours, usable as `?view=<name>` wherever the query "
        "parameters are.",
    },
    {
        "name": "snapshots",
        "description": "Images frozen under a name, then listed, paged, compared and exported as they were.",
    },
    {
        "name": "events",
        "description": "Images created, updated and deleted through any replica, as they happen (Server-Sent "
        "Events; GraphQL has the same as the `imageEvents` subscription).",
    },
    {"name": "info", "description": "What this service is, and whether its database and storage answer."},
    {
        "name": "operations",
        "description": "For the platform, not for users: liveness, readiness and Prometheus metrics. They take no "
        "token; keep them off the public ingress.",
    },
]


def create_app(settings: Settings | None = None) -> FastAPI:
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as error:
            # One sentence and a non-zero exit, not a traceback, for a misconfigured deployment.
            raise SystemExit(f"Configuration error: {error}") from None
    configure_logging(level=settings.log_level, format=settings.log_format)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        services = await Services.open(settings, metrics)
        app.state.services = services
        try:
            # Set when the server starts to stop (app/server.py): endless streams end then.
            yield {DRAINING: asyncio.Event()}
        finally:
            # Uvicorn runs this only after in-flight requests finished (or the grace period
            # ran out), so no download or export loses its database or storage mid-way.
            await services.close()

    app = ObservedFastAPI(
        title=TITLE,
        version=__version__,
        description="Image datasets: files on disk or S3, metadata in MongoDB.",
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # served from local files instead: app/rest/docs.py
        redoc_url=None,
    )
    install_docs(app, title=TITLE)
    install_gallery(app, settings)
    install_error_handlers(app)
    routes = RouteTemplates()
    routes.add(app.routes)  # /docs, /redoc, /openapi.json
    routers = (info, operations, collection, stored, images, downloads, fields, archive, views, snapshots, events)
    for router in (module.router for module in routers):
        app.include_router(router)
        routes.add(router.routes)
    graphql = graphql_router()
    app.include_router(graphql, prefix="/graphql", include_in_schema=False)
    routes.add(graphql.routes, prefix="/graphql")
    add_components(app)
    app.state.metrics = metrics
    app.state.route_templates = routes
    limits = BodyLimits(
        upload_bytes=settings.max_upload_bytes,
        archive_bytes=settings.max_archive_bytes,
        json_bytes=settings.max_json_bytes,
        timeout=settings.request_body_timeout_seconds,
    )
    app.add_middleware(AllowedMethods, routes=routes)
    app.add_middleware(RequestBodyLimits, limits=limits)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()],
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        # The legacy GUI sends an unusual request header, so every header must pass preflight.
        allow_headers=["*"],
        expose_headers=["Content-Disposition", "X-Request-ID", "ETag"],
    )
    return app


def _operation_id(route: APIRoute) -> str:
    # Clean names for generated clients: `upload_image`, not `upload_image_images_post`.
    return route.name
