"""Real servers for the whole session, a fresh app, database and bucket for every test.

FerretDB and MinIO are built (once, cached in `.tools/`) and started on free loopback ports.
`MONGODB_CONNECTION_STRING` and `S3_ENDPOINT` (+ `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`)
in the environment point the suite at servers of your own instead; each test then works in a
database and a bucket of its own and removes them afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import settings as hypothesis_settings
from pymongo import AsyncMongoClient

from app.config import Settings, load_settings
from app.main import create_app
from scripts.servers import start_ferretdb, start_minio
from tests.utils.fixtures import FIXTURES
from tests.utils.s3 import S3Server
from tests.utils.seed import upload_seed
from tests.utils.service import lifespan

# CI explores the same examples every run (a red run must mean a change broke something);
# developers' runs explore new ones and keep failures in .hypothesis/ to replay.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# Every variable the service reads; removed for the session so that the settings under test
# are exactly the ones each test gives, whatever the developer's shell has exported.
SERVICE_VARIABLES = [name.upper() for name in Settings.model_fields]


@pytest.fixture(scope="session")
def external_environment() -> Iterator[dict[str, str]]:
    captured = {name: os.environ[name] for name in SERVICE_VARIABLES if os.environ.get(name)}
    with pytest.MonkeyPatch.context() as patch:
        for name in SERVICE_VARIABLES:
            patch.delenv(name, raising=False)
        yield captured


@pytest.fixture(scope="session")
def mongodb_server(
    external_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path | None]]:
    """A URI without database name (tests add their own), and the SQLite files of the embedded default."""
    external = external_environment.get("MONGODB_CONNECTION_STRING")
    if external:
        parts = urlsplit(external)
        yield parts._replace(path="/").geturl(), None
        return
    with start_ferretdb(tmp_path_factory.mktemp("ferretdb")) as server:
        yield server.uri, server.state_dir


@pytest.fixture(scope="session")
def mongodb_server_uri(mongodb_server: tuple[str, Path | None]) -> str:
    return mongodb_server[0]


@pytest.fixture(scope="session")
def ferretdb_sqlite_directory(mongodb_server: tuple[str, Path | None]) -> Path | None:
    """Where the suite's own FerretDB keeps its SQLite files; None for an external database."""
    return mongodb_server[1]


@pytest.fixture(scope="session")
def s3_server(external_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    endpoint = external_environment.get("S3_ENDPOINT")
    if endpoint:
        if "://" not in endpoint:
            secure = external_environment.get("S3_USE_SSL", "true").lower() in ("1", "true", "yes")
            endpoint = f"{'https' if secure else 'http'}://{endpoint}"
        yield S3Server(
            endpoint=endpoint,
            access_key=external_environment.get("S3_ACCESS_KEY_ID", ""),
            secret_key=external_environment.get("S3_SECRET_ACCESS_KEY", ""),
            region=external_environment.get("S3_REGION"),
        )
        return
    with start_minio(tmp_path_factory.mktemp("minio")) as server:
        yield S3Server(endpoint=f"http://{server.endpoint}", access_key=server.access_key, secret_key=server.secret_key)


@pytest.fixture
async def database_name(mongodb_server_uri: str) -> AsyncIterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    client: AsyncMongoClient = AsyncMongoClient(mongodb_server_uri, serverSelectionTimeoutMS=5000)
    try:
        await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture
def bucket(s3_server: S3Server) -> Iterator[str]:
    """A bucket name for one test; the service creates it, the fixture empties and removes it."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = s3_server.client()
    if client.bucket_exists(name):
        for item in client.list_objects(name, recursive=True):
            client.remove_object(name, item.object_name)
        client.remove_bucket(name)


@pytest.fixture(params=["local", "s3"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_settings(
    storage_kind: str,
    mongodb_server_uri: str,
    ferretdb_sqlite_directory: Path | None,
    database_name: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Callable[..., Settings]:
    """Settings for this test's database and storage; keyword arguments override any field."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "mongodb_connection_string": f"{mongodb_server_uri.rstrip('/')}/{database_name}",
            "mongodb_timeout_ms": 2000,
            "uploads_directory": tmp_path / "uploads",
            # As `make run` configures the embedded default.
            "ferretdb_sqlite_directory": ferretdb_sqlite_directory,
        }
        if storage_kind == "s3":
            s3: S3Server = request.getfixturevalue("s3_server")
            values |= {
                "s3_bucket": request.getfixturevalue("bucket"),
                "s3_endpoint": s3.endpoint,
                "s3_access_key_id": s3.access_key,
                "s3_secret_access_key": s3.secret_key,
                "s3_region": s3.region,
                "s3_connect_timeout": 2.0,
            }
        return load_settings(**(values | overrides))

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with lifespan(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """The images of tests/utils/seed.py, uploaded; by file name."""
    return await upload_seed(client)


@pytest.fixture(scope="session")
def cat_jpeg() -> bytes:
    """A real 4000x3000 photo with EXIF, from the legacy service's users."""
    return (FIXTURES / "cat.jpg").read_bytes()
