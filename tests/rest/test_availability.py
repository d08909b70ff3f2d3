"""Outages: a 503 with a clear sentence while a dependency is down, recovery without a restart,
and nothing half-written when a write fails part-way.

These tests stop and start servers, so they run their own FerretDB instead of the session's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.config import Settings
from app.main import create_app
from app.models import Image
from scripts.servers import FerretDB, free_port, start_ferretdb, start_minio
from tests.utils.images import make_image
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import count_documents, stored_keys
from tests.utils.waiting import eventually


@pytest.fixture
def own_ferretdb(tmp_path: Path) -> Iterator[FerretDB]:
    with start_ferretdb(tmp_path / "own-ferretdb") as server:
        yield server


async def test_database_outage_is_503_and_service_recovers(
    own_ferretdb: FerretDB, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        mongodb_connection_string=f"{own_ferretdb.uri.rstrip('/')}/outage", mongodb_timeout_ms=1000
    )
    async with LifespanClient(create_app(settings)) as (client, app):
        created = (await upload(client, make_image(), fields={"file": "before.png"})).json()

        own_ferretdb.stop()
        response = await client.get(f"/images/{created['_id']}")
        assert response.status_code == 503
        assert response.json() == {"detail": "The database is unreachable; try again shortly.", "code": "unavailable"}
        failed_upload = await upload(client, make_image(), fields={"file": "during.png"})
        assert failed_upload.status_code == 503
        assert await stored_keys(app) == {"before.png"}  # the failed upload left no file
        info = await client.get("/")
        assert info.status_code == 200
        assert info.json()["mongodb"]["connected"] is False

        own_ferretdb.restart()

        async def image_readable() -> bool:
            return (await client.get(f"/images/{created['_id']}")).status_code == 200

        await eventually(image_readable)
        assert (await client.get("/")).json()["mongodb"]["connected"] is True


async def test_service_started_while_database_is_down_comes_up_when_it_does(
    own_ferretdb: FerretDB, make_settings: Callable[..., Settings]
) -> None:
    own_ferretdb.stop()
    settings = make_settings(mongodb_connection_string=f"{own_ferretdb.uri.rstrip('/')}/late", mongodb_timeout_ms=500)
    async with LifespanClient(create_app(settings)) as (client, _):
        response = await upload(client, make_image())
        assert response.status_code == 503
        assert "database is unreachable" in response.json()["detail"]

        own_ferretdb.restart()

        async def upload_works() -> bool:
            return (await upload(client, make_image())).status_code == 200

        await eventually(upload_works)


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
async def test_storage_outage_is_503_and_writes_no_document(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(s3_endpoint=f"http://127.0.0.1:{free_port()}", s3_connect_timeout=0.5)
    async with LifespanClient(create_app(settings)) as (client, app):
        response = await upload(client, make_image())

        assert response.status_code == 503
        assert "S3 storage" in response.json()["detail"]
        assert await count_documents(app) == 0
        assert (await client.get("/")).json()["storage"]["reachable"] is False


async def is_ferretdb(settings: Settings) -> bool:
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=3000)
    try:
        return "ferretdbVersion" in await client.admin.command("buildInfo")
    finally:
        await client.close()


async def test_value_refused_by_database_is_400_and_leaves_no_file(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    # Our own checks pass nested arrays (MongoDB stores them); FerretDB refuses them only when
    # the document is written, after the file: the file must be taken back.
    if not await is_ferretdb(settings):
        pytest.skip("only FerretDB refuses nested arrays")
    response = await upload(client, make_image(), fields={"data": '{"grid": [[1, 2], [3, 4]]}'})

    assert response.status_code == 400
    assert "nested arrays" in response.json()["detail"]
    assert await stored_keys(app) == set()
    assert await count_documents(app) == 0


async def test_value_refused_on_replace_keeps_the_old_file_and_document(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    if not await is_ferretdb(settings):
        pytest.skip("only FerretDB refuses nested arrays")
    old_bytes = make_image(color=(1, 1, 1))
    first = (await upload(client, old_bytes, fields={"file": "k.png", "a": "1"})).json()
    response = await upload(client, make_image(9, 9, color=(2, 2, 2)), fields={"file": "k.png", "data": '{"g": [[1]]}'})

    assert response.status_code == 400
    assert (await client.get(f"/images/{first['_id']}")).json() == first
    assert (await client.get(f"/images/{first['_id']}/image")).content == old_bytes


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
async def test_storage_failure_during_replace_restores_the_document(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with start_minio(tmp_path / "own-minio") as minio:
        settings = make_settings(
            s3_endpoint=f"http://{minio.endpoint}",
            s3_access_key_id=minio.access_key,
            s3_secret_access_key=minio.secret_key,
            s3_connect_timeout=0.5,
        )
        async with LifespanClient(create_app(settings)) as (client, app):
            first = (await upload(client, make_image(), fields={"file": "r.png", "a": "1"})).json()
            minio.stop()

            response = await upload(client, make_image(50, 50), fields={"file": "r.png", "b": "2"})

            assert response.status_code == 503
            assert (await client.get(f"/images/{first['_id']}")).json() == first


async def test_database_killed_mid_uploads_leaves_no_document_without_its_file(
    own_ferretdb: FerretDB, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(mongodb_connection_string=f"{own_ferretdb.uri.rstrip('/')}/crash", mongodb_timeout_ms=1000)
    async with LifespanClient(create_app(settings)) as (client, app):
        for round_ in range(4):
            writes = [
                asyncio.create_task(upload(client, make_image(8 + index, 8), fields={"file": f"r{round_}/{index}.png"}))
                for index in range(40)
            ]
            # Some uploads done, others in flight, when the database dies without a word.
            await asyncio.sleep(0.05 + 0.05 * round_)
            own_ferretdb.kill()
            answers = await asyncio.gather(*writes)
            assert {answer.status_code for answer in answers} <= {200, 503}
            own_ferretdb.restart()

            async def readable() -> bool:
                return (await client.get("/images?limit=1")).status_code == 200

            await eventually(readable)
            documents = await Image.get_pymongo_collection().find({}, {"file": 1}).to_list(None)
            files = await stored_keys(app)
            assert {document["file"] for document in documents} <= files, round_
            for answer in answers:  # every acknowledged upload is there, file and document
                if answer.status_code == 200:
                    assert answer.json()["file"] in files
                    assert (await client.get(f"/images/{answer.json()['_id']}")).status_code == 200
