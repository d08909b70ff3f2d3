"""Which engine the store runs on comes from what the server says, not only from configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from app.config import Settings
from app.main import create_app
from app.store.engines import FerretDB, FerretDBSQLite, MongoDB, recognise
from tests.utils.service import lifespan

# What MongoDB 7 answers `buildInfo` with, in the parts that matter (no `ferretdbVersion`).
MONGODB_BUILD_INFO = {"version": "7.0.14", "versionArray": [7, 0, 14, 0], "ok": 1.0}
FERRETDB_BUILD_INFO = {"version": "7.0.42", "ferretdbVersion": "v1.24.2", "ok": 1.0}


def test_a_server_without_ferretdbs_version_is_mongodb(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert type(recognise(MONGODB_BUILD_INFO, sqlite_directory=None)) is MongoDB
    # A directory configured beside MongoDB is not read: there are no FerretDB files to trust.
    with caplog.at_level(logging.WARNING):
        assert type(recognise(MONGODB_BUILD_INFO, sqlite_directory=tmp_path)) is MongoDB
    assert "not FerretDB" in caplog.text


def test_ferretdb_is_recognised_with_or_without_its_files(tmp_path: Path) -> None:
    plain = recognise(FERRETDB_BUILD_INFO, sqlite_directory=None)
    assert type(plain) is FerretDB and plain.max_statements_per_write == 99
    with_files = recognise(FERRETDB_BUILD_INFO, sqlite_directory=tmp_path)
    assert isinstance(with_files, FerretDBSQLite) and with_files.directory == tmp_path


def test_only_ferretdb_strips_go_source_locations_from_its_errors() -> None:
    message = "[sort.go:96 common.ValidateSortDocument] maximum sort keys exceeded: 40"
    assert FerretDB("v1.24.2").error_text(message) == "maximum sort keys exceeded: 40"
    assert MongoDB().error_text(message) == message


async def test_the_service_asks_the_server_what_it_is(
    make_settings: Callable[..., Settings], ferretdb_sqlite_directory: Path | None
) -> None:
    if ferretdb_sqlite_directory is None:
        pytest.skip("the database is external: its engine is whatever it is")
    for settings, expected in (
        (make_settings(), FerretDBSQLite),
        (make_settings(ferretdb_sqlite_directory=None), FerretDB),
    ):
        application = create_app(settings)
        async with lifespan(application):
            assert type(application.state.services.store.database.engine) is expected


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # no storage
async def test_every_engine_finds_documents_at_paths_alike(
    raw_database: AsyncDatabase[dict[str, Any]], ferretdb_sqlite_directory: Path | None
) -> None:
    images = raw_database["images"]
    await images.insert_many(
        [
            {"file": "alice/a.jpg", "userId": "alice", "checksum": "a" * 64},
            {"file": "alice/b.jpg", "userId": "alice"},
            {"file": "bob/a.jpg", "userId": "bob", "checksum": "b" * 64},
            {"file": "c.jpg"},
        ]
    )
    engines: list[MongoDB] = [MongoDB(), FerretDB("v1.24.2")]
    if ferretdb_sqlite_directory is not None:
        with_files = FerretDBSQLite("v1.24.2", ferretdb_sqlite_directory)
        await with_files.start(images)
        engines.append(with_files)
    wanted = ["alice/a.jpg", "bob/a.jpg", "alice/b.jpg", "c.jpg", "nowhere.jpg", "alice/a.jpg"]
    shown = {"_id": 0, "file": 1}
    for engine in engines:
        everyone = await engine.find_at_paths(images, wanted, {}, shown)
        assert sorted(document["file"] for document in everyone) == ["alice/a.jpg", "alice/b.jpg", "bob/a.jpg", "c.jpg"]
        alices = await engine.find_at_paths(images, wanted, {"userId": "alice"}, shown)
        assert sorted(document["file"] for document in alices) == ["alice/a.jpg", "alice/b.jpg"], engine.name
        assert await engine.find_at_paths(images, [], {}, shown) == []
