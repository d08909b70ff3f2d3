"""Routes for the platform rather than for users: liveness, readiness and Prometheus metrics.

None of them takes a token, with or without OIDC: probes and scrapers carry none (none depends
on ScopeDep). Keep them off the public ingress; they reveal only traffic counts and whether the
database and storage answer.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.metrics import Metrics
from app.rest.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process serves requests (no dependency is touched)")
async def healthz() -> dict[str, str]:
    """`{"status": "ok"}` while the process serves requests. It touches neither the database nor
    the storage: restarting the process would not bring either back."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database and the storage answer now",
    responses={503: {"description": "the dependencies under `failed` do not answer"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Pings the database (and checks that the start-up set-up is done) and the storage, both at
    once, each giving up after 2 s: `{"status": "ready", "checks": {"database": "ok", "storage":
    "ok"}, "failed": []}`. Otherwise a 503, `status` `unavailable` and `failed` naming each that
    does not answer (the database may also be `initialising`); it turns back by itself."""
    checks = await services.readiness()
    failed = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "unavailable" if failed else "ready", "checks": checks, "failed": failed}
    return JSONResponse(body, status_code=503 if failed else 200)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics, text exposition format")
async def metrics(request: Request) -> Response:
    """Counters and histograms of HTTP requests, GraphQL operations, bytes uploaded and
    downloaded, archives, thumbnails and dependency errors, plus the process's own, for a
    Prometheus scraper. Takes no token: keep it off the public ingress."""
    # On the app, not on Services: it exists before the lifespan opens any connection.
    registry: Metrics = request.app.state.metrics
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
