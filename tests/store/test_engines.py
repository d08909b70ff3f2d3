"""Which engine the store runs on comes from what the server says, not only from configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

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
