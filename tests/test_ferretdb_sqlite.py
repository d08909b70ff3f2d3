"""The embedded default's FerretDB/SQLite files: the `_id` index FerretDB 1.24 lacks, and the
start-up advice to move to MongoDB. Only against the suite's own FerretDB (an external
database has no files here)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from app import ferretdb_sqlite
from app.config import Settings
from app.main import create_app
from tests.rest.test_images import LifespanClient, upload
from tests.utils.images import make_image

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)

ADVICE = "move to MongoDB"


@pytest.fixture
def sqlite_directory(ferretdb_sqlite_directory: Path | None) -> Path:
    if ferretdb_sqlite_directory is None:
        pytest.skip("the database is external: no FerretDB SQLite files to look at")
    return ferretdb_sqlite_directory


async def id_lookup_plan(settings: Settings, image_id: str) -> str:
    """What SQLite does for FerretDB's find by `_id` (FerretDB's explain shows SQLite's plan)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        explained = await client[settings.mongodb_database].command(
            "explain", {"find": "images", "filter": {"_id": ObjectId(image_id)}}
        )
    finally:
        await client.close()
    return " ".join(explained["queryPlanner"]["Plan"])


async def test_lookups_by_id_read_an_index_not_the_whole_collection(
    make_settings: Callable[..., Settings], sqlite_directory: Path
) -> None:
    # Without the directory the service cannot add the index: FerretDB scans (the failure this prevents).
    unaware = make_settings(ferretdb_sqlite_directory=None)
    async with LifespanClient(create_app(unaware)) as (http, _):
        image_id = (await upload(http, make_image(), fields={"file": "a.png"})).json()["_id"]
    assert "SCAN" in await id_lookup_plan(unaware, image_id)

    settings = make_settings()
    async with LifespanClient(create_app(settings)) as (http, _):

        async def indexed() -> bool:
            return "USING INDEX _imagestore_" in await id_lookup_plan(settings, image_id)

        assert await indexed()  # before the first request is served
        assert (await http.get(f"/images/{image_id}")).json()["file"] == "a.png"
        assert (await http.patch(f"/images/{image_id}", json={"label": "cat"})).json()["data"] == {"label": "cat"}
        assert (await http.delete(f"/images/{image_id}")).status_code == 200
        assert (await http.get(f"/images/{image_id}")).status_code == 404


async def test_start_up_advises_mongodb_once_the_collection_outgrows_the_embedded_database(
    make_settings: Callable[..., Settings],
    sqlite_directory: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ferretdb_sqlite, "ADVISED_MOST_IMAGES", 2)
    caplog.set_level(logging.INFO, logger="app.ferretdb_sqlite")
    settings = make_settings()

    def advice() -> list[str]:
        return [record.getMessage() for record in caplog.records if ADVICE in record.getMessage()]

    async def tuned() -> bool:
        return any("indexed by the expression" in record.getMessage() for record in caplog.records)

    async with LifespanClient(create_app(settings)) as (http, _):
        for name in ("a.png", "b.png"):
            assert (await upload(http, make_image(), fields={"file": name})).status_code == 200
        assert await tuned()
    assert advice() == []  # two images: not above the limit

    caplog.clear()
    async with LifespanClient(create_app(settings)) as (http, _):
        assert (await upload(http, make_image(), fields={"file": "c.png"})).status_code == 200
        assert await tuned()
    assert advice() == []  # counted at start-up, when there were two

    caplog.clear()
    async with LifespanClient(create_app(settings)) as (http, _):
        assert await tuned()
    assert len(advice()) == 1
    assert "holds 3 images" in advice()[0]


async def test_a_wrong_directory_costs_speed_only(
    make_settings: Callable[..., Settings], sqlite_directory: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "not-ferretdb"
    elsewhere.mkdir()
    settings = make_settings(ferretdb_sqlite_directory=elsewhere)

    async def warned() -> bool:
        return any("could not index FerretDB's SQLite files" in record.getMessage() for record in caplog.records)

    async with LifespanClient(create_app(settings)) as (http, _):
        image_id = (await upload(http, make_image(), fields={"file": "a.png"})).json()["_id"]
        assert await warned()
        assert (await http.get(f"/images/{image_id}")).status_code == 200
    assert list(elsewhere.iterdir()) == []  # no empty database file made up there
