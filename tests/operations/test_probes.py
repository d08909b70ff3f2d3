"""/healthz and /readyz through real outages, and the platform routes with OIDC on.

The outage tests stop and start servers, so they run their own FerretDB (as
tests/rest/test_availability.py does) instead of the session's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from scripts.servers import FerretDB, free_port, start_ferretdb
from tests.utils.metrics import sample, scrape
from tests.utils.oidc import AUDIENCE, ISSUER, bearer, claims_for, jwks_server, rsa_key, sign
from tests.utils.service import LifespanClient
from tests.utils.waiting import eventually

DEPENDENCY_ERRORS = "image_storage_dependency_errors_total"


@pytest.fixture
def own_ferretdb(tmp_path: Path) -> Iterator[FerretDB]:
    with start_ferretdb(tmp_path / "own-ferretdb") as server:
        yield server


async def test_healthz_and_readyz_when_all_is_well(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})

    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}, "failed": []}


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_readyz_follows_a_database_outage_without_a_restart(
    own_ferretdb: FerretDB, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(mongodb_connection_string=f"{own_ferretdb.uri.rstrip('/')}/ready", mongodb_timeout_ms=1000)
    async with LifespanClient(create_app(settings)) as (client, _):
        assert (await client.get("/readyz")).status_code == 200

        own_ferretdb.stop()
        started = time.monotonic()
        response = await client.get("/readyz")
        assert time.monotonic() - started < 5  # each check is bounded, whatever the driver's timeouts
        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "checks": {"database": "unreachable", "storage": "ok"},
            "failed": ["database"],
        }
        # Liveness does not depend on the database: restarting the process would not help.
        assert (await client.get("/healthz")).status_code == 200
        assert sample(await scrape(client), DEPENDENCY_ERRORS, kind="database") >= 1

        own_ferretdb.restart()

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready)
        assert (await client.get("/readyz")).json()["failed"] == []


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_readyz_waits_for_a_database_that_is_down_at_start_up(
    own_ferretdb: FerretDB, make_settings: Callable[..., Settings]
) -> None:
    own_ferretdb.stop()
    settings = make_settings(mongodb_connection_string=f"{own_ferretdb.uri.rstrip('/')}/late", mongodb_timeout_ms=500)
    async with LifespanClient(create_app(settings)) as (client, _):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).json()["failed"] == ["database"]

        own_ferretdb.restart()

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        # Not just reachable: ready once the background start-up has set the database up.
        await eventually(ready)


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
async def test_readyz_names_the_storage_when_s3_is_unreachable(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(s3_endpoint=f"http://127.0.0.1:{free_port()}", s3_connect_timeout=0.5)
    async with LifespanClient(create_app(settings)) as (client, _):
        response = await client.get("/readyz")

        assert response.status_code == 503
        assert response.json() == {
            "status": "unavailable",
            "checks": {"database": "ok", "storage": "unreachable"},
            "failed": ["storage"],
        }
        assert (await client.get("/healthz")).status_code == 200
        text = await scrape(client)
        assert sample(text, DEPENDENCY_ERRORS, kind="storage") >= 1
        assert sample(text, DEPENDENCY_ERRORS, kind="database") == 0


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_platform_routes_need_no_token_when_oidc_is_on(make_settings: Callable[..., Settings]) -> None:
    key = rsa_key("probe-key")
    with jwks_server([key]) as jwks:
        settings = make_settings(oidc_jwks_uri=jwks.uri, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, image_scope="user")
        async with LifespanClient(create_app(settings)) as (client, _):
            assert (await client.get("/images")).status_code == 401
            assert (await client.get("/images", headers=bearer(sign(claims_for("alice"), key)))).status_code == 200

            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            text = await scrape(client)
            assert sample(text, "image_storage_http_requests_total", route="/images", status="401") == 1
