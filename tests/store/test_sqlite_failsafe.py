"""The embedded FerretDB/SQLite's shortcuts fail safe (app/store/engines/ferretdb_sqlite/): they only read
FerretDB's files, only files laid out as they were written for, and a filter they cannot
decide costs them no read at all.

Files of another layout are made from a copy of the test database's own file, changed behind
FerretDB's back; the service is then pointed at the copy, while FerretDB keeps serving the real
one, so every answer can be compared with FerretDB's own."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from app.config import Settings
from app.domain.images import edits
from app.domain.writes import rewrite
from app.main import create_app
from app.store.engines.ferretdb_sqlite import files, layout, shortcuts, sql
from app.store.engines.ferretdb_sqlite.shortcuts import SQLiteShortcuts
from tests.utils.commands import recorded
from tests.utils.images import make_image
from tests.utils.service import LifespanClient

# The tests against the suite's FerretDB: the storage plays no part.
ON_LOCAL_STORAGE = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)

# Two of the six images have no `label`: what `{"data.label": null}` must count.
LABELS = ["cat", "cat", "cat", "dog", None, None]
# The images `fill` gives no label hold a number instead. (Not `{"data.label": null}`: FerretDB
# answers null through arrays wrongly, so the store checks its matches itself, and whether
# FerretDB counted no longer shows as its count command.)
UNLABELLED = {"filter": json.dumps({"data.n": {"$gte": 0}}), "limit": 1}


def test_connections_read_only_unless_asked_to_write(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "db.sqlite")) as made:
        made.execute("CREATE TABLE t (x)")
    with files.opened(tmp_path, "db") as connection, pytest.raises(sqlite3.OperationalError, match="readonly"):
        connection.execute("INSERT INTO t VALUES (1)")
    with files.opened(tmp_path, "db", writable=True) as connection:  # tuning.py's index, once at start-up
        connection.execute("INSERT INTO t VALUES (1)")
    with files.opened(tmp_path, "db") as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]


@pytest.fixture
def images(raw_database: AsyncDatabase[dict[str, Any]]) -> AsyncCollection[dict[str, Any]]:
    """The test database's images collection, through a client of the test's own."""
    return raw_database["images"]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("app.store.engines.ferretdb_sqlite") and record.levelno >= logging.WARNING
    ]


async def fill(http: httpx.AsyncClient, labels: list[str | None]) -> None:
    for index, label in enumerate(labels):
        data = {"n": index} if label is None else {"label": label}
        files = {"image": (f"{index}.png", make_image())}
        assert (await http.post("/images", files=files, data={"data": json.dumps(data)})).status_code == 200


async def unlabelled(http: httpx.AsyncClient) -> tuple[int, bool]:
    """The total of `UNLABELLED`, and whether FerretDB counted it (else SQLite did)."""
    with recorded() as sent:
        total = (await http.get("/images", params=UNLABELLED)).json()["total"]
    return total, any(command.name == "aggregate" for command in sent)


def copy_of(directory: Path, database: str, into: Path) -> Path:
    """A directory holding a copy of `database`'s file as it is now (WAL included)."""
    into.mkdir()
    with files.opened(directory, database) as source, closing(sqlite3.connect(into / f"{database}.sqlite")) as copy:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    return into


def has_id_index(directory: Path, database: str) -> bool:
    with files.opened(directory, database) as connection:
        found = connection.execute("SELECT 1 FROM sqlite_master WHERE name LIKE '\\_imagestore\\_%' ESCAPE '\\'")
        return found.fetchone() is not None


@ON_LOCAL_STORAGE
async def test_the_embedded_ferretdb_passes_the_check(
    make_settings: Callable[..., Settings],
    sqlite_directory: Path,
    images: AsyncCollection[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings()
    async with LifespanClient(create_app(settings)) as (http, _):
        await fill(http, LABELS)
        assert await unlabelled(http) == (2, False)  # counted in SQLite
    assert warnings(caplog) == []
    assert has_id_index(sqlite_directory, settings.mongodb_database)
    # What the check asks the server: FerretDB names its own version beside the MongoDB one.
    build = await images.database.command("buildInfo")
    assert layout.KNOWN_VERSIONS.fullmatch(build["ferretdbVersion"]), build
    assert await layout.mismatch(images, directory=sqlite_directory) is None


@ON_LOCAL_STORAGE
async def test_rows_without_the_schema_turn_the_shortcuts_off_instead_of_miscounting(
    make_settings: Callable[..., Settings],
    sqlite_directory: Path,
    images: AsyncCollection[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    database = make_settings().mongodb_database
    async with LifespanClient(create_app(make_settings())) as (http, _):
        await fill(http, LABELS)
    changed = copy_of(sqlite_directory, database, tmp_path / "changed")
    with closing(sqlite3.connect(changed / f"{database}.sqlite")) as connection, connection:
        table = connection.execute("SELECT table_name FROM _ferretdb_collections WHERE name = 'images'").fetchone()[0]
        connection.execute(
            f"UPDATE {files.quoted(table)} SET {files.DOCUMENT} = json_remove({files.DOCUMENT}, '$.\"$s\"')"
        )
    # The failure the check prevents: read unchecked, every row is "null or missing" at the path.
    where = sql.conditions({"data.label": None})
    assert where is not None
    with files.opened(changed, database) as connection:
        assert shortcuts._count_where(connection, files.table_name(connection, "images"), where=where) == 6

    caplog.clear()
    async with LifespanClient(create_app(make_settings(ferretdb_sqlite_directory=changed))) as (http, _):
        assert await unlabelled(http) == (2, True)  # FerretDB's count, and the right one
    assert len(warnings(caplog)) == 1, warnings(caplog)
    assert "does not carry the $s schema" in warnings(caplog)[0]

    unchecked = SQLiteShortcuts(changed)
    assert not await unchecked.check(images)
    assert await unchecked.count(images, {"data.label": None}) is None
    assert not unchecked.decides({"data.label": None})


@ON_LOCAL_STORAGE
async def test_another_ferretdb_version_turns_the_shortcuts_and_the_index_off(
    make_settings: Callable[..., Settings],
    sqlite_directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(layout, "KNOWN_VERSIONS", re.compile(r"v1\.23\.\d+"))
    settings = make_settings()
    async with LifespanClient(create_app(settings)) as (http, _):
        await fill(http, LABELS)
        assert await unlabelled(http) == (2, True)
    assert len(warnings(caplog)) == 1, warnings(caplog)
    assert "not FerretDB 1.24.x (ferretdbVersion: 'v1.24." in warnings(caplog)[0]
    assert not has_id_index(sqlite_directory, settings.mongodb_database)


@ON_LOCAL_STORAGE
async def test_a_stale_copy_of_the_files_turns_the_shortcuts_off(
    make_settings: Callable[..., Settings],
    sqlite_directory: Path,
    images: AsyncCollection[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings()
    async with LifespanClient(create_app(settings)) as (http, _):
        await fill(http, LABELS)
    stale = copy_of(sqlite_directory, settings.mongodb_database, tmp_path / "stale")
    await images.drop()  # the copy keeps the six images; the collection FerretDB makes again has none
    caplog.clear()
    async with LifespanClient(create_app(make_settings(ferretdb_sqlite_directory=stale))) as (http, _):
        await fill(http, ["cat", None, None, None])
        assert await unlabelled(http) == (3, True)
    assert len(warnings(caplog)) == 1, warnings(caplog)
    assert "another UUID" in warnings(caplog)[0]


@ON_LOCAL_STORAGE
async def test_decides_tells_without_reading(
    images: AsyncCollection[dict[str, Any]], sqlite_directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await images.database.create_collection(images.name)
    checked = SQLiteShortcuts(sqlite_directory)
    assert not checked.decides({"data.label": "cat"})  # off until checked
    assert await checked.check(images)

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("decides read the files")

    monkeypatch.setattr(files, "opened", no_reading)
    monkeypatch.setattr(shortcuts, "opened", no_reading)
    assert checked.decides({"data.label": "cat", "time": {"$gte": 0}})
    assert checked.decides({"_id": {"$in": [1, 2]}})
    assert not checked.decides({"_id": 1})  # FerretDB's own indexed lookup
    assert not checked.decides({"file": {"$regex": "^a"}})
    assert not checked.decides({"data.label": {"$exists": True}})


@ON_LOCAL_STORAGE
async def test_bulk_changes_find_their_batches_without_counting_first(
    make_settings: Callable[..., Settings], sqlite_directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shortcuts, "FERRETDB_READ_SECONDS", 1.0)  # SQLite and lookups wherever they can
    monkeypatch.setattr(rewrite, "BATCH", 2)
    monkeypatch.setattr(edits, "DELETE_BATCH", 2)
    counted: list[Any] = []
    count = SQLiteShortcuts.count

    async def counting(self: SQLiteShortcuts, *args: Any) -> int | None:
        counted.append(args[1])
        return await count(self, *args)

    monkeypatch.setattr(SQLiteShortcuts, "count", counting)

    async def run(settings: Settings) -> list[Any]:
        async with LifespanClient(create_app(settings)) as (http, _):
            await http.delete("/images")
            # Arrays at `data.n`: their rows are unsure for a range, and FerretDB answers those pages.
            for index, n in enumerate([1, 2, 3, [2, 5], [0], 4, "x", 6]):
                files = {"image": (f"{index}.png", make_image())}
                response = await http.post("/images", files=files, data={"data": json.dumps({"n": n})})
                assert response.status_code == 200
            counted.clear()
            greater = {"filter": json.dumps({"data.n": {"$gt": 1}})}
            patched = (await http.patch("/images", params=greater, json={"seen": True})).json()
            plain = {"filter": json.dumps({"data.seen": True, "data.n": {"$in": [2, 3]}})}
            deleted = (await http.delete("/images", params=plain)).json()
            assert counted == []
            listing = (await http.get("/images", params={"sort": "file", "limit": 100})).json()
        return [patched, deleted, [(item["file"], item["data"]) for item in listing["items"]]]

    shortcut = await run(make_settings())
    own = await run(make_settings(ferretdb_sqlite_directory=None))
    assert shortcut == own
    assert (own[0]["matchedCount"], own[1]["deletedCount"]) == (5, 3)


@ON_LOCAL_STORAGE
async def test_a_sorted_page_sqlite_cannot_count_reads_sqlite_once(
    make_settings: Callable[..., Settings], sqlite_directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    read = SQLiteShortcuts._read

    async def recording(self: SQLiteShortcuts, collection: Any, reader: Any, what: str) -> Any:
        reads.append(what)
        return await read(self, collection, reader, what)

    monkeypatch.setattr(SQLiteShortcuts, "_read", recording)
    async with LifespanClient(create_app(make_settings())) as (http, _):
        # An array at `data.n` makes a range on it unsure: FerretDB finds the page and counts.
        for index, n in enumerate([1, 2, 3, [2, 5], 4]):
            files = {"image": (f"{index}.png", make_image())}
            assert (await http.post("/images", files=files, data={"data": json.dumps({"n": n})})).status_code == 200
        reads.clear()
        params = {"filter": json.dumps({"data.n": {"$gt": 1}}), "sort": "file", "limit": 2}
        page = (await http.get("/images", params=params)).json()
    assert page["total"] == 4 and [item["file"] for item in page["items"]] == ["1.png", "2.png"]
    assert reads == ["a page"]  # not "a count" besides, to learn again that SQLite cannot tell
