"""Routes for the platform rather than for users: liveness and Prometheus metrics.

None of them takes a token, with or without OIDC: probes and scrapers carry none (none depends
on ScopeDep). Keep them off the public ingress; they reveal traffic counts.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.metrics import Metrics

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process serves requests (no dependency is touched)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", response_class=Response, summary="Prometheus metrics, text exposition format")
async def metrics(request: Request) -> Response:
    # On the app, not on Services: it exists before the lifespan opens any connection.
    registry: Metrics = request.app.state.metrics
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
