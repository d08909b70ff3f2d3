"""The application factory: `uvicorn app.main:create_app --factory`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from app import __version__
from app.config import ConfigError, Settings, load_settings
from app.graphql.router import graphql_router
from app.rest import archive, collection, fields, images, info
from app.rest.errors import install_error_handlers
from app.rest.limits import BodySizeLimit
from app.services import Services

log = logging.getLogger("app")


def create_app(settings: Settings | None = None) -> FastAPI:
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as error:
            # One sentence and a non-zero exit, not a traceback, for a misconfigured deployment.
            raise SystemExit(f"Configuration error: {error}") from None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.open(settings)
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="Image storage",
        version=__version__,
        description="Image datasets: files on disk or S3, metadata in MongoDB.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    install_error_handlers(app)
    app.include_router(info.router)
    app.include_router(collection.router)
    app.include_router(images.router)
    app.include_router(fields.router)
    app.include_router(archive.router)
    app.include_router(graphql_router(), prefix="/graphql", include_in_schema=False)
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes, routes={("POST", "/images")})
    app.add_middleware(BodySizeLimit, limit=settings.max_archive_bytes, routes={("POST", "/import")})
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()],
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        # The legacy GUI sends an unusual request header, so every header must pass preflight.
        allow_headers=["*"],
        expose_headers=["Content-Disposition"],
    )
    return app


def _operation_id(route: APIRoute) -> str:
    # Clean names for generated clients: `upload_image`, not `upload_image_images_post`.
    return route.name
