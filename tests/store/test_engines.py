"""Which engine the store runs on comes from what the server says, not only from configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bson import Int64, ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from app.config import Settings
from app.main import create_app
from app.store.engines import FerretDB, FerretDBSQLite, MongoDB, recognise
from app.store.engines.ferretdb_sqlite import paths
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


# What `POST /images/check` asks for (app/domain/images/stored.py).
SHOWN = {"_id": 1, "file": 1, "userId": 1, "checksum": 1, "size": 1, "revision": 1}
ODD_PATHS = ['say "cheese".png', "it's.png", "café/日本/😀.png", "a&b<c>.png", "line\u2028break.png", "back\\slash.png"]


def _typed(documents: list[dict[str, Any]]) -> list[list[tuple[str, type, Any]]]:
    """Documents with their values' types and key order: Int64 is not int, nor 2 2.0, to this."""
    return [[(key, type(value), value) for key, value in document.items()] for document in documents]


async def _engines(
    images: Any, ferretdb_sqlite_directory: Path | None, *, unchecked: bool = False
) -> tuple[MongoDB, list[MongoDB]]:
    """The plain path (the reference answer) and the engines compared with it on this server."""
    if ferretdb_sqlite_directory is None:
        return MongoDB(), [FerretDB("v1.24.2")]
    with_files = FerretDBSQLite("v1.24.2", ferretdb_sqlite_directory)
    await with_files.start(images)
    others: list[MongoDB] = [FerretDB("v1.24.2"), with_files]
    if unchecked:  # its files never checked: every shortcut answers None
        others.append(FerretDBSQLite("v1.24.2", ferretdb_sqlite_directory))
    return MongoDB(), others


@pytest.mark.parametrize("indexed", [True, False], ids=["file-indexed", "no-index"])
@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # no storage
async def test_documents_at_paths_are_found_as_the_plain_path_finds_them(
    raw_database: AsyncDatabase[dict[str, Any]], ferretdb_sqlite_directory: Path | None, indexed: bool
) -> None:
    images = raw_database["images"]
    if indexed:  # as the store makes it: FerretDB's SQLite index on `file` then finds the rows
        await images.create_index("file", unique=True, name="file_1")
    await images.insert_many(
        [
            {"file": "alice/a.jpg", "userId": "alice", "checksum": "a" * 64, "size": Int64(10), "revision": 2},
            {"file": "alice/b.jpg", "userId": "alice", "size": 11, "revision": 0},
            {"file": "bob/a.jpg", "userId": "bob", "checksum": "b" * 64, "size": 12},
            {"_id": "named", "file": "c.jpg", "userId": None, "size": 2.0},
            {"_id": 7, "file": "d.jpg", "revision": Int64(1)},  # no userId: `{"userId": None}` matches it too
            {"_id": 3.5, "file": "e.jpg", "userId": None, "checksum": None},
            *({"file": path, "userId": "alice", "size": index} for index, path in enumerate(ODD_PATHS)),
            # Read through FerretDB (a value SQLite does not turn into Python), and an array `file`.
            {"file": "f.jpg", "userId": "alice", "checksum": {"sha256": "c" * 64}},
            {"file": "mixed.jpg", "userId": "alice", "size": True},
            {"file": ["g.jpg", "h.jpg"], "userId": "alice"},
            {"file": "alice/no-match.jpg", "userId": "carol"},
            {"file": 5, "userId": "alice"},  # not a string: no path equals it
        ]
    )
    reference, engines = await _engines(images, ferretdb_sqlite_directory, unchecked=True)
    engines = engines[:2] if ferretdb_sqlite_directory is None else engines
    wanted = [
        *ODD_PATHS,
        "alice/a.jpg",
        "bob/a.jpg",
        "alice/b.jpg",
        "c.jpg",
        "d.jpg",
        "e.jpg",
        "f.jpg",
        "mixed.jpg",
        "h.jpg",
        "nowhere.jpg",
        "alice/a.jpg",  # repeated
        "5",
        '"alice/a.jpg"',  # the JSON text of a stored path is not that path
        "ALICE/A.JPG",
    ]
    for condition in ({}, {"userId": "alice"}, {"userId": None}, {"userId": {"$in": ["bob", None]}}):
        for projection in (SHOWN, {"_id": 0, "file": 1}, {"file": 1, "size": 1}, {"_id": 1}, {"_id": 0}):
            expected = await reference.find_at_paths(images, wanted, condition, projection)
            assert expected, condition
            for engine in engines:
                found = await engine.find_at_paths(images, wanted, condition, projection)
                assert _typed(found) == _typed(expected), (engine.describe(), condition, projection)
    if ferretdb_sqlite_directory is not None:  # SQLite answered, reading all but f.jpg and h.jpg
        rows = await FerretDBSQLite("v1.24.2", ferretdb_sqlite_directory).shortcuts.at_paths(
            images, wanted, {}, shown_id=True, fields=list(SHOWN)[1:]
        )
        assert rows is None  # files unchecked
        rows = await engines[1].shortcuts.at_paths(images, wanted, {}, shown_id=True, fields=list(SHOWN)[1:])
        assert rows is not None and not any(row.unsure or not row.id_known for row in rows)
        looked_up = images.find({"file": {"$in": ["f.jpg", "h.jpg"]}}, sort=[("_id", 1)])
        assert [row.id for row in rows if row.document is None] == [found["_id"] async for found in looked_up]
    everyone = {document["_id"] for document in await reference.find_at_paths(images, wanted, {}, SHOWN)}
    assert len(everyone) == len(ODD_PATHS) + 9  # each path's document, and `h.jpg`'s array one
    alices = await reference.find_at_paths(images, wanted, {"userId": "alice"}, {"_id": 0, "file": 1})
    assert {"file": "bob/a.jpg"} not in alices and {"file": "alice/no-match.jpg"} not in alices


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # no storage
async def test_documents_at_paths_that_sqlite_cannot_decide_are_ferretdbs_answer(
    raw_database: AsyncDatabase[dict[str, Any]], ferretdb_sqlite_directory: Path | None
) -> None:
    images = raw_database["images"]
    await images.insert_many(
        [
            {"file": "a.jpg", "userId": "alice", "owner": {"team": "x"}},
            {"file": "b.jpg", "userId": "alice", "owner": [{"team": "x"}, {"team": "y"}]},  # unsure: an array
            {"file": "c.jpg", "userId": "bob", "owner": {"team": "y"}},
            {"_id": {"odd": 1}, "file": "d.jpg", "userId": "alice"},  # an `_id` SQLite does not read
        ]
    )
    reference, engines = await _engines(images, ferretdb_sqlite_directory)
    wanted = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "line\nbreak.jpg"]
    for condition, projection in (
        ({"owner.team": "x"}, SHOWN),  # b.jpg unsure: FerretDB's plain path answers
        ({"userId": {"$regex": "^al"}}, SHOWN),  # not translated
        ({"userId": "alice"}, SHOWN),  # d.jpg's `_id`
        ({}, None),  # whole documents
        ({}, {"owner": 0}),  # fields left out
        ({}, {"_id": 0}),  # `_id` left out
        ({}, {"_id": 1}),  # `_id` alone
        ({}, {"owner.team": 1}),  # a dotted path
    ):
        expected = await reference.find_at_paths(images, wanted, condition, projection)
        for engine in engines:
            found = await engine.find_at_paths(images, wanted, condition, projection)
            assert _typed(found) == _typed(expected), (engine.describe(), condition, projection)
    if ferretdb_sqlite_directory is not None:
        rows = await engines[-1].shortcuts.at_paths(images, wanted, {"owner.team": "x"}, shown_id=True, fields=[])
        assert rows is not None and [row.unsure for row in rows] == [False, True]
    team_x = await engines[-1].find_at_paths(images, wanted, {"owner.team": "x"}, {"_id": 0, "file": 1})
    assert team_x == [{"file": "a.jpg"}, {"file": "b.jpg"}]


def test_a_row_sqlite_cannot_read_is_left_to_ferretdb() -> None:
    """Rows not as FerretDB 1.24 writes them (layout.py samples only some): no answer read from them."""
    oid = "6b14c52a80e5814608001df9"
    read = paths.found_row((oid, "objectId", '["_id","size"]', 0, 5, "long"), True, ["size"])
    assert read.document == {"_id": ObjectId(oid), "size": Int64(5)} and type(read.document["size"]) is Int64
    assert paths.found_row((oid, "objectId", None, 0, 5, "long"), True, ["size"]).document is None  # no `$k`
    assert paths.found_row((oid, "objectId", '["_id"]', 0, 5, "long"), True, ["size"]).document is None
    assert paths.found_row(("zz", "objectId", '["_id"]', 0), True, []).id_known is False
    assert paths.found_row((oid, "objectId", '["_id","n"]', 0, "x", "int"), True, ["n"]).document is None
    assert paths.found_row((1, "bool", '["_id"]', 0), True, []).id_known is False  # ordered apart by MongoDB
