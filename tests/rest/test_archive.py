"""GET /export and POST /import, on local and S3 storage, with the legacy service's real archive."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import zipfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.utils.archives import import_zip, make_zip
from tests.utils.commands import recorded
from tests.utils.fixtures import FIXTURES
from tests.utils.images import make_image
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import count_documents, leases_settled, stored_keys


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


async def export_zip(client: httpx.AsyncClient, query: str = "") -> zipfile.ZipFile:
    response = await client.get(f"/export?{query}")
    assert response.status_code == 200, response.text
    return zipfile.ZipFile(io.BytesIO(response.content))


async def all_documents(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The documents as stored: without the `url` a listing adds (an address, not the image's data)."""
    body = (await client.get("/images?limit=1000&sort=file")).json()
    return [{key: value for key, value in item.items() if key != "url"} for item in body["items"]]


# -- the legacy archive --------------------------------------------------------------------


async def test_legacy_archive_imports_keeping_id_and_time(client: httpx.AsyncClient, app: FastAPI) -> None:
    legacy = (FIXTURES / "upstream-export.zip").read_bytes()

    response = await import_zip(client, legacy, data="null")

    assert response.status_code == 200, response.text
    assert response.json() == {"file": "dataset.zip", "imported": 1, "skipped": []}
    [image] = await all_documents(client)
    assert image["_id"] == "63630043e69a96978b2bd2dc"
    assert image["time"] == "2022-11-02T23:41:55.711Z"
    assert image["file"] == "example.jpg"
    assert image["data"] == {}
    original = zipfile.ZipFile(FIXTURES / "upstream-export.zip").read("example.jpg")
    assert (await client.get(f"/images/{image['_id']}/image")).content == original
    assert await stored_keys(app) == {"example.jpg"}


async def test_legacy_archive_with_extra_fields(client: httpx.AsyncClient) -> None:
    legacy = (FIXTURES / "upstream-export.zip").read_bytes()
    await import_zip(client, legacy, batch="b7", site="north")
    assert (await all_documents(client))[0]["data"] == {"batch": "b7", "site": "north"}


# -- round trip ----------------------------------------------------------------------------


async def test_export_wipe_import_gives_back_identical_documents_and_files(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    originals: dict[str, bytes] = {}
    for index in range(105):
        content = make_image(8 + index % 7, 8, color=(index, 2 * index % 256, 7))
        file = f"set{index % 4}/sub{index % 3}/img{index:03}.png"
        data = {"index": index, "label": ["cat", "dog"][index % 2], "camera": {"iso": 100 * index, "lens": {"mm": 35}}}
        fields = {"file": file, "time": f"2022-01-{1 + index % 28:02}T10:00:{index % 60:02}.{index:03}Z"}
        response = await upload(client, content, fields={**fields, "data": json.dumps(data)})
        assert response.status_code == 200
        originals[file] = content
    before = await all_documents(client)

    archive = (await client.get("/export")).content
    assert (await client.delete("/images")).json()["deletedCount"] == 105
    assert await stored_keys(app) == set()
    response = await import_zip(client, archive)

    assert response.json() == {"file": "dataset.zip", "imported": 105, "skipped": []}
    assert await all_documents(client) == before
    for image in before:
        assert (await client.get(f"/images/{image['_id']}/file")).content == originals[image["file"]]
    assert await stored_keys(app) == set(originals)


async def test_export_layout_json_and_spreadsheet(client: httpx.AsyncClient) -> None:
    await upload(client, make_image(), fields={"file": "a/one.png", "data": '{"label": "cat", "camera": {"iso": 200}}'})
    await upload(client, make_image(), fields={"file": "two.png", "data": '{"tags": ["x", "y"], "ok": true}'})

    response = await client.get("/export")
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="images-export-{date.today()}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))

    assert archive.namelist() == ["a/one.png", "two.png", "mongodb_data.json", "mongodb_data.xlsx"]
    assert archive.testzip() is None
    documents = json.loads(archive.read("mongodb_data.json"))
    assert [document["file"] for document in documents] == ["a/one.png", "two.png"]
    assert documents == await all_documents(client)
    sheet = openpyxl.load_workbook(io.BytesIO(archive.read("mongodb_data.xlsx"))).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == ("_id", "file", "time", "camera.iso", "label", "ok", "tags")
    assert rows[1][1:2] + rows[1][3:] == ("a/one.png", 200, "cat", None, None)
    assert rows[2][1:2] + rows[2][3:] == ("two.png", None, None, True, '["x", "y"]')


async def test_export_with_filter_holds_only_the_matches(client: httpx.AsyncClient) -> None:
    for index, label in enumerate(["cat", "dog", "cat"]):
        await upload(client, make_image(), fields={"file": f"{label}{index}.png", "label": label})

    archive = await export_zip(client, "label=cat&sort=file&order=-1")

    assert archive.namelist() == ["cat2.png", "cat0.png", "mongodb_data.json", "mongodb_data.xlsx"]
    assert [document["data"] for document in json.loads(archive.read("mongodb_data.json"))] == [{"label": "cat"}] * 2


async def test_export_of_nothing_is_a_valid_archive(client: httpx.AsyncClient) -> None:
    archive = await export_zip(client, "label=nobody")
    assert archive.namelist() == ["mongodb_data.json", "mongodb_data.xlsx"]
    assert json.loads(archive.read("mongodb_data.json")) == []


async def test_image_with_missing_file_is_listed_but_not_archived(client: httpx.AsyncClient, app: FastAPI) -> None:
    await upload(client, make_image(), fields={"file": "kept.png"})
    gone = (await upload(client, make_image(), fields={"file": "gone.png"})).json()
    await app.state.services.storage.delete("gone.png")

    content = (await client.get("/export")).content
    archive = zipfile.ZipFile(io.BytesIO(content))

    assert "gone.png" not in archive.namelist() and "kept.png" in archive.namelist()
    listed = {document["file"]: document for document in json.loads(archive.read("mongodb_data.json"))}
    assert listed["gone.png"]["fileMissing"] is True
    assert listed["gone.png"]["_id"] == gone["_id"]
    # Importing it back reports the missing file instead of creating a document without one.
    await client.delete("/images")
    result = (await import_zip(client, content)).json()
    assert result["imported"] == 1
    assert result["skipped"] == [
        {"name": "gone.png", "reason": "listed in mongodb_data.json but its file is not in the archive"}
    ]


@pytest.mark.parametrize("query", ['filter={"$where":"1"}', "from=never", "ids=nope"])
async def test_export_with_bad_query_is_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/export?{query}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")


# -- import variants -----------------------------------------------------------------------


async def test_archive_without_json_gives_one_new_image_per_file(client: httpx.AsyncClient, app: FastAPI) -> None:
    archive = make_zip(
        [
            ("photos/a.png", make_image()),
            ("photos/deep/b.jpg", make_image(format="JPEG")),
            ("c.gif", make_image(format="GIF")),
        ]
    )

    response = await import_zip(client, archive, data='{"source": "camera 3", "meta": {"x": 1}}')

    assert response.json() == {"file": "dataset.zip", "imported": 3, "skipped": []}
    documents = await all_documents(client)
    assert [document["file"] for document in documents] == ["c.gif", "photos/a.png", "photos/deep/b.jpg"]
    assert all(document["data"] == {"source": "camera 3", "meta": {"x": 1}} for document in documents)
    assert await stored_keys(app) == {"c.gif", "photos/a.png", "photos/deep/b.jpg"}


async def test_json_document_whose_file_is_absent_is_skipped(client: httpx.AsyncClient) -> None:
    documents = [{"_id": "6385c4b3a1e2f0c9d8b7a615", "file": "here.png", "data": {"a": 1}}, {"file": "absent.png"}]
    archive = make_zip([("here.png", make_image()), ("mongodb_data.json", json.dumps(documents).encode())])

    result = (await import_zip(client, archive)).json()

    assert result["imported"] == 1
    assert result["skipped"] == [
        {"name": "absent.png", "reason": "listed in mongodb_data.json but its file is not in the archive"}
    ]
    assert (await client.get("/images/6385c4b3a1e2f0c9d8b7a615")).json()["data"] == {"a": 1}


async def test_import_over_existing_images_replaces_them(client: httpx.AsyncClient) -> None:
    existing = (await upload(client, make_image(), fields={"file": "same.png", "old": "yes"})).json()
    documents = [{"_id": "6385c4b3a1e2f0c9d8b7a615", "file": "same.png", "data": {"new": "yes"}}]
    archive = make_zip([("same.png", make_image(5, 5)), ("mongodb_data.json", json.dumps(documents).encode())])

    assert (await import_zip(client, archive)).json()["imported"] == 1

    [image] = await all_documents(client)
    assert image["_id"] == existing["_id"]  # the path's image keeps its id
    assert image["data"] == {"new": "yes"} and image["width"] == 5


async def test_bad_metadata_in_one_document_skips_only_that_image(client: httpx.AsyncClient) -> None:
    documents = [{"file": "bad.png", "data": {"$set": 1}}, {"file": "good.png", "data": {"ok": 1}}]
    archive = make_zip(
        [("bad.png", make_image()), ("good.png", make_image()), ("mongodb_data.json", json.dumps(documents).encode())]
    )
    result = (await import_zip(client, archive)).json()
    assert result["imported"] == 1
    assert result["skipped"][0]["name"] == "bad.png" and "'$'" in result["skipped"][0]["reason"]


# -- hostile archives ----------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04 truncated", b""])
async def test_not_a_zip_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    response = await import_zip(client, content)
    assert response.status_code == 400
    assert response.json()["detail"] == "The archive is not a valid .zip file."


async def test_import_without_archive_part_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/import", data={"x": "1"})
    assert response.status_code == 400
    assert "'archive'" in response.json()["detail"]


async def test_escaping_entries_and_links_are_skipped_and_nothing_lands_outside(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    image = make_image()
    archive = make_zip(
        [
            ("../escape.png", image),
            ("a/../../escape2.png", image),
            ("/abs/escape3.png", image),
            ("C:/Windows/escape4.png", image),
            ("dir\\escape5.png", image),
            symlink_entry("link.png", "/etc/passwd"),
            ("fine/ok.png", image),
        ]
    )

    result = (await import_zip(client, archive)).json()

    assert result["imported"] == 1
    reasons = {item["name"]: item["reason"] for item in result["skipped"]}
    assert set(reasons) == {
        "../escape.png",
        "a/../../escape2.png",
        "/abs/escape3.png",
        "C:/Windows/escape4.png",
        "dir\\escape5.png",
        "link.png",
    }
    assert reasons["link.png"] == "symbolic links are not imported"
    assert "'..'" in reasons["../escape.png"] and "relative" in reasons["/abs/escape3.png"]
    assert await stored_keys(app) == {"fine/ok.png"}
    assert [path.name for path in tmp_path.rglob("escape*")] == []


async def test_entries_that_are_not_images_are_skipped_and_reported(client: httpx.AsyncClient) -> None:
    archive = make_zip(
        [("notes.txt", b"hello"), ("fake.jpg", b"\xff\xd8 not really"), ("real.png", make_image()), ("empty/", b"")]
    )
    result = (await import_zip(client, archive)).json()
    assert result["imported"] == 1
    assert {item["name"] for item in result["skipped"]} == {"notes.txt", "fake.jpg"}
    assert all("not a supported image" in item["reason"] for item in result["skipped"])


@pytest.mark.parametrize(
    ("overrides", "entries", "message"),
    [
        ({"import_max_entries": 3}, 4, "holds 4 files"),
        ({"import_max_uncompressed_bytes": 1000}, 2, "unpacks to"),
    ],
)
async def test_archives_over_the_limits_are_413_before_any_write(
    make_settings: Callable[..., Settings], overrides: dict[str, int], entries: int, message: str
) -> None:
    archive = make_zip([(f"img{index}.bmp", make_image(40, 40, format="BMP")) for index in range(entries)])
    async with LifespanClient(create_app(make_settings(**overrides))) as (client, app):
        response = await import_zip(client, archive)
        assert response.status_code == 413
        assert message in response.json()["detail"]
        assert await stored_keys(app) == set()
        assert await count_documents(app) == 0


async def test_zip_bomb_is_refused_by_declared_size(make_settings: Callable[..., Settings]) -> None:
    # 200 MB of zeros deflates to about 200 KB: the declared size gives it away.
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("bomb.png", "w") as entry,
    ):
        for _ in range(200):
            entry.write(bytes(1024 * 1024))
    assert len(buffer.getvalue()) < 1024 * 1024
    async with LifespanClient(create_app(make_settings(import_max_uncompressed_bytes=50 * 1024 * 1024))) as (
        client,
        app,
    ):
        response = await import_zip(client, buffer.getvalue())
        assert response.status_code == 413
        assert await stored_keys(app) == set()


async def test_archive_upload_over_the_body_limit_is_413(make_settings: Callable[..., Settings]) -> None:
    archive = make_zip([(f"img{index}.bmp", make_image(300, 300, format="BMP")) for index in range(10)])
    async with LifespanClient(create_app(make_settings(max_archive_bytes=100_000))) as (client, _):
        response = await import_zip(client, archive)
        assert response.status_code == 413


@pytest.mark.parametrize(
    ("json_text", "message"),
    [
        (b"[{broken", "is corrupt"),
        (b'{"file": "a.png"}', "must hold an array"),
        (b'"text"', "must hold an array"),
        (b"[1, 2]", "item 0 is not an object"),
        (b'[{"file": "a.png"}, {"data": {}}]', "item 1 has no file path"),
        (b'[{"file": "a.png", "_id": "xyz"}]', "not a valid image id"),
        (b'[{"file": "a.png", "time": "soon"}]', "not an ISO-8601 date"),
        (b'[{"file": "a.png", "data": [1]}]', "data that is not an object"),
    ],
)
async def test_corrupt_json_is_400_before_any_write(
    client: httpx.AsyncClient, app: FastAPI, json_text: bytes, message: str
) -> None:
    archive = make_zip([("a.png", make_image()), ("b.png", make_image()), ("mongodb_data.json", json_text)])
    response = await import_zip(client, archive)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert await stored_keys(app) == set()
    assert await count_documents(app) == 0


async def test_damaged_entry_is_skipped(client: httpx.AsyncClient, app: FastAPI) -> None:
    archive = bytearray(make_zip([("good.png", make_image()), ("bad.png", make_image(50, 50))]))
    # Flip bytes inside the second entry's data: its CRC no longer matches.
    start = archive.index(b"bad.png") + len("bad.png") + 40
    archive[start : start + 8] = b"\x00" * 8
    result = (await import_zip(client, bytes(archive))).json()
    assert result["imported"] == 1
    assert result["skipped"][0]["name"] == "bad.png"
    assert await stored_keys(app) == {"good.png"}


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_import_stopped_by_storage_failure_reports_what_it_imported(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    root = app.state.services.storage.root
    (root / "blocked").symlink_to("blocked")  # a link loop: the disk cannot store anything there
    archive = make_zip([("a.png", make_image()), ("blocked/b.png", make_image()), ("c.png", make_image())])

    response = await import_zip(client, archive)

    assert response.status_code == 503
    body = response.json()
    # What it says it imported is exactly what is there, each image with its file.
    documents = await all_documents(client)
    assert "a.png" in [document["file"] for document in documents]
    assert "blocked/b.png" not in [document["file"] for document in documents]
    assert body["imported"] == len(documents) and f"stopped after {len(documents)} images" in body["detail"]
    assert body["code"] == "unavailable"
    for document in documents:
        assert (await client.get(f"/images/{document['_id']}/image")).status_code == 200


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_an_entry_where_a_file_is_a_folder_on_disk_is_skipped_with_the_reason(client: httpx.AsyncClient) -> None:
    archive = make_zip([("col/x", make_image()), ("col/x/y.png", make_image()), ("z.png", make_image())])
    response = await import_zip(client, archive)
    assert response.status_code == 200
    body = response.json()
    assert body["imported"] == 2
    assert [entry["name"] for entry in body["skipped"]] == ["col/x/y.png"]
    assert "folder" in body["skipped"][0]["reason"]


async def test_an_entry_twice_in_one_archive_ends_as_its_later_copy(client: httpx.AsyncClient, app: FastAPI) -> None:
    first, second = make_image(10, 10), make_image(20, 20)
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = make_zip([("twice.png", first), ("other.png", make_image()), ("twice.png", second)])
    body = (await import_zip(client, archive)).json()
    assert body["imported"] == 2 and body["skipped"] == []  # one name, one image: the later entry
    documents = {document["file"]: document for document in await all_documents(client)}
    assert set(documents) == {"twice.png", "other.png"}
    assert (documents["twice.png"]["width"], documents["twice.png"]["height"]) == (20, 20)
    assert (await client.get(f"/images/{documents['twice.png']['_id']}/image")).content == second
    assert await stored_keys(app) == {"twice.png", "other.png"}


async def test_an_import_of_new_images_writes_them_a_batch_at_a_time_without_searching_by_path(
    make_settings: Callable[..., Settings],
) -> None:
    # One lease take, one insert and one release per batch of 50, not per image: FerretDB with
    # SQLite runs one write at a time.
    archive = make_zip([(f"many/{index}.png", make_image()) for index in range(120)])
    async with LifespanClient(create_app(make_settings())) as (client, app):
        await asyncio.gather(*app.state.services.store.database._background)  # start-up maintenance done
        with recorded() as sent:
            body = (await import_zip(client, archive)).json()
            await leases_settled(app)
        assert body["imported"] == 120
        assert len(await all_documents(client)) == 120
    commands = [(command.name, command.collection) for command in sent]
    writes = [command for command in commands if command[0] in ("insert", "delete", "update")]
    # A lease insert and an image insert per batch of 50; the batches' releases, sent after
    # them, may go together in fewer deletes (app/store/leases.py).
    assert [write for write in writes if write != ("delete", "leases")] == [
        ("insert", "leases"),
        ("insert", "images"),
    ] * 3
    assert 1 <= writes.count(("delete", "leases")) <= 3
    # Which paths are free is asked of the storage: a search by path reads every document on FerretDB.
    assert ("find", "images") not in commands
