"""SHA-256 checksums of stored files: taken while uploads, replacements and imports store the
bytes, shown in REST and GraphQL, and usable to find identical files. Local and S3 storage."""

from __future__ import annotations

import hashlib
import json
import zipfile
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.config import Settings
from app.domain.images import uploads
from app.errors import Unavailable
from tests.utils.archives import make_zip
from tests.utils.fixtures import FIXTURES
from tests.utils.graphql import gql, gql_data, gql_upload
from tests.utils.images import make_image
from tests.utils.service import upload
from tests.utils.stored import stored_keys


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def test_an_upload_records_the_sha256_of_its_bytes(client: httpx.AsyncClient, cat_jpeg: bytes) -> None:
    created = (await upload(client, cat_jpeg, filename="cat.jpg", fields={"file": "cats/cat.jpg"})).json()
    assert created["checksum"] == sha256(cat_jpeg)
    shown = (await client.get(f"/images/{created['_id']}")).json()
    assert shown["checksum"] == sha256(cat_jpeg)
    assert sha256((await client.get(f"/images/{created['_id']}/image")).content) == shown["checksum"]
    # A metadata change keeps it: the bytes did not change.
    patched = (await client.patch(f"/images/{created['_id']}", json={"label": "cat"})).json()
    assert patched["checksum"] == sha256(cat_jpeg)
    listed = (await client.get("/images")).json()["items"]
    assert [item["checksum"] for item in listed] == [sha256(cat_jpeg)]


async def test_a_replacement_records_the_checksum_of_the_new_bytes(client: httpx.AsyncClient) -> None:
    first, second = make_image(color=(255, 0, 0)), make_image(color=(0, 0, 255))
    created = (await upload(client, first, fields={"file": "a.png"})).json()
    replaced = (await upload(client, second, fields={"file": "a.png"})).json()
    assert replaced["_id"] == created["_id"]
    assert replaced["checksum"] == sha256(second) != sha256(first)
    assert (await client.get(f"/images/{created['_id']}")).json()["checksum"] == sha256(second)


async def test_imports_record_the_checksum_of_every_file(client: httpx.AsyncClient) -> None:
    legacy = zipfile.ZipFile(FIXTURES / "upstream-export.zip")
    response = await client.post(
        "/import", files={"archive": ("legacy.zip", (FIXTURES / "upstream-export.zip").read_bytes())}
    )
    assert response.status_code == 200, response.text
    plain = [("one.png", make_image(color=(1, 2, 3))), ("two.png", make_image(color=(4, 5, 6)))]
    response = await client.post("/import", files={"archive": ("plain.zip", make_zip(plain))})
    assert response.status_code == 200, response.text
    items = (await client.get("/images", params={"limit": 100})).json()["items"]
    expected = {name: sha256(content) for name, content in plain} | {"example.jpg": sha256(legacy.read("example.jpg"))}
    assert {item["file"]: item.get("checksum") for item in items} == expected


async def test_identical_files_are_found_by_their_checksum(client: httpx.AsyncClient) -> None:
    same, other = make_image(color=(9, 9, 9)), make_image(color=(8, 8, 8))
    ids = [(await upload(client, same, fields={"file": name})).json()["_id"] for name in ("x/1.png", "y/2.png")]
    await upload(client, other, fields={"file": "z/3.png"})

    found = (await client.get("/images", params={"filter": json.dumps({"checksum": sha256(same)})})).json()
    assert sorted(item["_id"] for item in found["items"]) == sorted(ids)
    assert found["total"] == 2

    query = "query($c: String) { images(filter: {checksum: $c}) { total items { id checksum } } }"
    page = (await gql_data(client, query, {"c": sha256(same).upper()}))["images"]
    assert sorted(item["id"] for item in page["items"]) == sorted(ids)
    assert {item["checksum"] for item in page["items"]} == {sha256(same)}

    refused = await gql(client, query, {"c": "abc"})
    assert refused["errors"][0]["message"] == "A checksum is a SHA-256: 64 hexadecimal characters."


async def test_duplicate_groups_list_the_images_holding_identical_files(client: httpx.AsyncClient) -> None:
    three, two, single = make_image(color=(1, 1, 1)), make_image(color=(2, 2, 2)), make_image(color=(3, 3, 3))
    ids: dict[str, list[str]] = {sha256(three): [], sha256(two): []}
    for content, paths in ((three, ["a/1.png", "b/1.png", "c/1.png"]), (two, ["a/2.png", "b/2.png"])):
        for path in paths:
            ids[sha256(content)].append((await upload(client, content, fields={"file": path})).json()["_id"])
    await upload(client, single, fields={"file": "a/3.png"})
    expected = [{"checksum": checksum, "count": len(ids[checksum]), "ids": ids[checksum]} for checksum in sorted(ids)]

    groups = (await client.get("/duplicates")).json()
    assert [(group["checksum"], group["count"], sorted(group["ids"])) for group in groups] == [
        (group["checksum"], group["count"], sorted(group["ids"])) for group in expected
    ]
    second = (await client.get("/duplicates", params={"skip": 1, "limit": 1})).json()
    assert [group["checksum"] for group in second] == [expected[1]["checksum"]]
    assert (await client.get("/duplicates", params={"skip": 2})).json() == []

    query = "query($skip: Int!) { duplicates(skip: $skip, limit: 1) { checksum count ids } }"
    first = (await gql_data(client, query, {"skip": 0}))["duplicates"]
    assert [(group["checksum"], group["count"], sorted(group["ids"])) for group in first] == [
        (expected[0]["checksum"], expected[0]["count"], sorted(expected[0]["ids"]))
    ]


async def test_duplicate_pages_outside_their_bounds_are_a_400(client: httpx.AsyncClient) -> None:
    for params, message in (
        ({"limit": 0}, "limit must be between 1 and 1000; got 0."),
        ({"limit": 5000}, "limit must be between 1 and 1000; got 5000."),
        ({"skip": -1}, "skip must be at least 0; got -1."),
    ):
        response = await client.get("/duplicates", params=params)
        assert (response.status_code, response.json()) == (400, {"detail": message, "code": "bad_input"})
    response = await client.get("/duplicates", params={"limit": "many"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The query parameter 'limit' is invalid")
    refused = await gql(client, "{ duplicates(limit: 0) { checksum } }")
    assert refused["errors"][0]["message"] == "limit must be between 1 and 1000; got 0."


async def test_an_upload_may_refuse_a_duplicate_of_another_image(app: FastAPI, client: httpx.AsyncClient) -> None:
    original, other = make_image(color=(5, 5, 5)), make_image(color=(6, 6, 6))
    first = (await upload(client, original, fields={"file": "x.png"})).json()
    refuse = {"refuseDuplicates": "true"}

    response = await client.post("/images", params=refuse, files={"image": ("y.png", original)}, data={"file": "y.png"})
    assert (response.status_code, response.json()) == (
        409,
        {"detail": f"The file is identical to that of image {first['_id']} ('x.png').", "code": "duplicate"},
    )
    # The same file again at its own path is no duplicate of another image.
    again = await client.post("/images", params=refuse, files={"image": ("x.png", original)}, data={"file": "x.png"})
    assert (again.status_code, again.json()["_id"]) == (200, first["_id"])
    # Refused as a replacement too: the image keeps its bytes.
    kept = (await upload(client, other, fields={"file": "z.png"})).json()
    response = await client.post("/images", params=refuse, files={"image": ("z.png", original)}, data={"file": "z.png"})
    assert response.status_code == 409
    assert (await client.get(f"/images/{kept['_id']}")).json()["checksum"] == sha256(other)
    assert (await client.get(f"/images/{kept['_id']}/image")).content == other
    assert await stored_keys(app) == {"x.png", "z.png"}  # nothing refused was left behind

    mutation = 'mutation($f: Upload!) { uploadImage(file: $f, path: "w.png", refuseDuplicates: true) { id } }'
    body = (await gql_upload(client, mutation, {"f": None}, {"0": ("variables.f", ("w.png", original))})).json()
    assert body["errors"][0]["message"] == f"The file is identical to that of image {first['_id']} ('x.png')."
    # Not asked: the legacy behaviour, the duplicate is stored.
    assert (await upload(client, original, fields={"file": "y.png"})).status_code == 200
    assert (await client.get("/images")).json()["total"] == 3

    response = await client.post("/images", params={"refuseDuplicates": "maybe"}, files={"image": ("v.png", other)})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The query parameter 'refuseDuplicates' is invalid")


async def test_a_whole_download_records_a_missing_checksum(client: httpx.AsyncClient, settings: Settings) -> None:
    content = make_image(color=(7, 7, 7))
    created = (await upload(client, content, fields={"file": "old.png"})).json()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    images = mongo[settings.mongodb_database]["images"]
    try:
        # As the legacy service (or this one before checksums) left it.
        await images.update_one({"_id": ObjectId(created["_id"])}, {"$unset": {"checksum": ""}})
        url = f"/images/{created['_id']}/image"
        ranged = await client.get(url, headers={"Range": "bytes=0-9"})
        assert (ranged.status_code, "etag" in ranged.headers) == (206, False)
        assert "checksum" not in (await client.get(f"/images/{created['_id']}")).json()  # a part proves nothing

        whole = await client.get(url)
        assert whole.content == content
        assert (await client.get(f"/images/{created['_id']}")).json()["checksum"] == sha256(content)
        assert (await client.get(url)).headers["etag"] == f'"{sha256(content)}"'
    finally:
        await mongo.close()


async def test_a_duplicate_check_the_database_cannot_answer_leaves_no_file(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = (await upload(client, make_image(color=(1, 1, 9)), fields={"file": "kept.png"})).json()

    async def database_gone(*_: object) -> None:
        raise Unavailable("The database is unreachable; try again shortly.")

    monkeypatch.setattr(uploads, "refuse_duplicate", database_gone)
    for path in ("new.png", "kept.png"):  # a new image, and a replacement
        response = await client.post(
            "/images", params={"refuseDuplicates": "true"}, files={"image": (path, make_image())}, data={"file": path}
        )
        assert response.status_code == 503
    assert await stored_keys(app) == {"kept.png"}  # neither the new file nor the staged bytes stay
    assert (await client.get(f"/images/{kept['_id']}")).json()["checksum"] == kept["checksum"]
