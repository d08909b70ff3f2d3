"""GET/PATCH/DELETE /images and /fields against the real database, on local and S3 storage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from app.config import Settings
from app.domain.images import documents, edits
from app.main import create_app
from app.models import Image
from tests.utils.images import make_image
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import stored_keys
from tests.utils.waiting import eventually


async def files_of(client: httpx.AsyncClient, query: str) -> list[str]:
    response = await client.get(f"/images?{query}")
    assert response.status_code == 200, response.text
    return [item["file"] for item in response.json()["items"]]


# -- GET /images ---------------------------------------------------------------------------


async def test_list_shape_and_total_counts_all_matches(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    response = await client.get("/images?limit=2&skip=1")
    body = response.json()
    # The legacy shape, and `nextCursor` (additive: legacy clients ignore it), null when unsorted.
    assert set(body) == {"total", "skip", "limit", "items", "select", "nextCursor"}
    assert (body["total"], body["skip"], body["limit"], body["select"], body["nextCursor"]) == (5, 1, 2, [], None)
    assert [item["file"] for item in body["items"]] == ["cats/b.JPG", "dogs/c.png"]  # insertion order by default
    assert body["items"][0] == seeded["cats/b.JPG"]


async def test_default_limit_is_100(client: httpx.AsyncClient, app: FastAPI) -> None:
    collection = Image.get_pymongo_collection()
    await collection.insert_many([{"file": f"f{i}.png", "data": {}, "userId": None} for i in range(105)])
    body = (await client.get("/images")).json()
    assert (body["total"], body["limit"], len(body["items"])) == (105, 100, 100)


async def test_paging_walks_every_image_once(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    pages = [await files_of(client, f"sort=time&order=-1&limit=2&skip={skip}") for skip in (0, 2, 4)]
    assert pages == [["e.png", "dogs/d.png"], ["dogs/c.png", "cats/b.JPG"], ["cats/a.jpg"]]


async def test_legacy_gui_list_call(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    response = await client.get("/images?limit=20&skip=0&sort=time&order=-1&label=cat")
    assert [item["file"] for item in response.json()["items"]] == ["cats/b.JPG", "cats/a.jpg"]
    assert response.json()["total"] == 2


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("count=2", ["cats/a.jpg", "cats/b.JPG"]),  # the number 2 and the string "2"
        ("ok=true", ["cats/a.jpg"]),
        ("label=cat&count=2", ["cats/a.jpg", "cats/b.JPG"]),
        ("label=cat&label=dog", ["cats/a.jpg", "cats/b.JPG", "dogs/c.png"]),
        ("nested.a=1", ["dogs/c.png"]),
        ("tags=y", ["cats/b.JPG"]),
        ("regex=true&label=DOG", ["dogs/c.png", "dogs/d.png"]),
        ("regex=true&label=^do", ["dogs/c.png", "dogs/d.png"]),
        ("file=cats/a.jpg", ["cats/a.jpg"]),
        ("file=cats/A.jpg", []),
        ("file=jpg&regex=true", ["cats/a.jpg", "cats/b.JPG"]),
        ("from=2022-06-01T12:00:00Z&to=2023-01-01T00:00:00Z", ["cats/b.JPG", "dogs/c.png"]),  # inclusive
        ("from=2023-06-01", ["dogs/d.png", "e.png"]),
        ("to=2021-12-31", []),
        ('filter={"data.label":{"$in":["cat","dog"]}}', ["cats/a.jpg", "cats/b.JPG", "dogs/c.png"]),
        ('filter={"$or":[{"data.count":3},{"data.ok":true}]}', ["cats/a.jpg", "dogs/c.png"]),
        (
            'filter={"$and":[{"data.label":{"$regex":"do","$options":"i"}},{"data.label":{"$ne":"dog"}}]}',
            ["dogs/d.png"],
        ),
        ('filter={"data.label":{"$not":{"$regex":"^c"}}}', ["dogs/c.png", "dogs/d.png", "e.png"]),
        ('filter={"data.tags":{"$all":["x"],"$size":2}}', ["cats/b.JPG"]),
        ('filter={"data.key3":{"$exists":true}}&label=dog', ["dogs/c.png"]),
        ('filter={"time":{"$gte":"2023-01-01T00:00:00Z"}}', ["dogs/c.png", "dogs/d.png", "e.png"]),
        ('filter={"data.count":{"$type":"string"}}', ["cats/b.JPG"]),
        ('filter={"$nor":[{"data.label":"cat"}]}', ["dogs/c.png", "dogs/d.png", "e.png"]),
    ],
)
async def test_filters(client: httpx.AsyncClient, seeded: dict[str, Any], query: str, expected: list[str]) -> None:
    assert sorted(await files_of(client, query)) == expected


async def test_ids_in_every_spelling(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    a, c = seeded["cats/a.jpg"]["_id"], seeded["dogs/c.png"]["_id"]
    for query in (f"ids={a}&ids={c}", f"ids={a},{c}", f"ids[]={a}&ids[]={c}"):
        assert sorted(await files_of(client, query)) == ["cats/a.jpg", "dogs/c.png"]


async def test_sort_by_data_field_and_file(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    assert await files_of(client, "sort=file&order=desc&limit=2") == ["e.png", "dogs/d.png"]
    assert (await files_of(client, 'sort=data.count&order=asc&filter={"data.count":{"$type":"number"}}')) == [
        "cats/a.jpg",
        "dogs/c.png",
    ]


async def test_select_includes_or_excludes(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    body = (await client.get("/images?select=file,data.label&label=dog")).json()
    assert body["select"] == ["file", "data.label"]
    assert body["items"] == [{"_id": seeded["dogs/c.png"]["_id"], "file": "dogs/c.png", "data": {"label": "dog"}}]
    excluded = (await client.get("/images?select=-data&label=dog")).json()["items"][0]
    assert "data" not in excluded and excluded["file"] == "dogs/c.png" and "time" in excluded
    # A field with one of its own (data with data.label) is the field: MongoDB would refuse both.
    whole = (await client.get("/images?select=data.label,data,file&label=dog")).json()["items"][0]
    assert whole == {"_id": seeded["dogs/c.png"]["_id"], "file": "dogs/c.png", "data": seeded["dogs/c.png"]["data"]}
    without = (await client.get("/images?select=-data,-data.label&label=dog")).json()["items"][0]
    assert "data" not in without and without["file"] == "dogs/c.png"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('filter={"$where":"sleep(100)"}', "$where"),
        ('filter={"data.a":{"$expr":{}}}', "$expr"),
        ('filter={"$function":{}}', "$function"),
        ('filter={"data.a":{"$accumulator":{}}}', "$accumulator"),
        ('filter={"data.a":{"$bogus":1}}', "$bogus"),
        ("filter=[]", "JSON object"),
        ('filter="text"', "JSON object"),
        ("filter={oops", "not valid JSON"),
        ("limit=abc", "limit"),
        ("limit=100001", "limit"),
        ("skip=-3", "skip"),
        ("from=tomorrow", "from"),
        ("to=2022-02-30", "to"),
        ("ids=123", "ids"),
        ("ids[]=zzz", "ids"),
        ("order=up&sort=time", "order"),
        ("regex=true&label=[", "regular expression"),
        ("select=file,-data", "cannot mix"),
        ("$where=1", "'$'"),
    ],
)
async def test_bad_queries_are_400_with_a_sentence(
    client: httpx.AsyncClient, seeded: dict[str, Any], query: str, message: str
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        if method != "GET" and query.startswith("select"):
            continue  # a projection only matters for reading
        body = {"json": {"x": 1}} if method == "PATCH" else {}
        response = await client.request(method, f"/images?{query}", **body)
        assert response.status_code == 400, (method, response.text)
        assert message in response.json()["detail"]
    assert (await client.get("/images")).json()["total"] == 5  # nothing was changed or deleted


async def test_limit_above_configured_maximum(make_settings: Callable[..., Settings]) -> None:
    async with LifespanClient(create_app(make_settings(query_max_limit=50))) as (client, _):
        response = await client.get("/images?limit=51")
        assert response.status_code == 400
        assert response.json()["detail"] == "limit must be between 1 and 50; got 51."
        assert (await client.get("/images?limit=50")).status_code == 200


# -- PATCH /images -------------------------------------------------------------------------


async def test_bulk_patch_merges_into_every_match(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    response = await client.patch("/images?label=cat", json={"checked": True, "review": {"by": "ann"}})

    assert response.json() == {
        "acknowledged": True,
        "matchedCount": 2,
        "modifiedCount": 2,
        "upsertedCount": 0,
        "upsertedId": None,
    }
    for file in ("cats/a.jpg", "cats/b.JPG"):
        data = (await client.get(f"/images/{seeded[file]['_id']}")).json()["data"]
        assert data["checked"] is True and data["review"] == {"by": "ann"} and data["label"] == "cat"
    assert "checked" not in (await client.get(f"/images/{seeded['dogs/c.png']['_id']}")).json()["data"]


async def test_legacy_gui_bulk_patch_by_part_number_with_nested_body(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    body = {"inspection": {"result": "pass", "defects": [], "operator": {"id": 7}}}
    response = await client.patch("/images?part_number=200-004", json=body)
    assert response.json()["matchedCount"] == 1
    assert (await client.get(f"/images/{seeded['cats/a.jpg']['_id']}")).json()["data"]["inspection"] == body[
        "inspection"
    ]


async def test_bulk_patch_by_ids_bracket_form(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    a, d = seeded["cats/a.jpg"]["_id"], seeded["dogs/d.png"]["_id"]
    response = await client.patch(f"/images?ids[]={a}&ids[]={d}", json={"batch": 1})
    assert response.json()["matchedCount"] == 2


async def test_bulk_unset_removes_key_from_data_and_fields(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    # The filter selects by the very key being removed.
    response = await client.patch("/images?key3=value3", json={"$unset": {"key3": ""}, "moved": "yes"})

    assert response.json()["modifiedCount"] == 2
    assert "key3" not in (await client.get("/fields")).json()
    assert "moved" in (await client.get("/fields")).json()
    assert (await client.get(f"/images/{seeded['dogs/c.png']['_id']}")).json()["data"]["moved"] == "yes"


async def test_bulk_patch_without_query_changes_all(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    response = await client.patch("/images", json={"all": 1})
    assert response.json()["matchedCount"] == 5


@pytest.mark.parametrize("body", [b"[1]", b"{nope", b'{"$set": {"a": 1}}', b'{"a.b": 1}', b'{"a": {"$gt": 1}}'])
async def test_bad_bulk_patch_body_is_400(client: httpx.AsyncClient, seeded: dict[str, Any], body: bytes) -> None:
    response = await client.patch("/images?label=cat", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert (await client.get(f"/images/{seeded['cats/a.jpg']['_id']}")).json() == seeded["cats/a.jpg"]


# -- DELETE /images ------------------------------------------------------------------------


async def test_legacy_gui_bulk_delete_removes_documents_and_files(
    client: httpx.AsyncClient, app: FastAPI, seeded: dict[str, Any]
) -> None:
    response = await client.delete("/images?key3=value3")

    assert response.json() == {"acknowledged": True, "deletedCount": 2}
    assert sorted(await files_of(client, "")) == ["cats/a.jpg", "cats/b.JPG", "e.png"]
    assert await stored_keys(app) == {"cats/a.jpg", "cats/b.JPG", "e.png"}


async def test_delete_without_query_deletes_everything(
    client: httpx.AsyncClient, app: FastAPI, seeded: dict[str, Any]
) -> None:
    assert (await client.delete("/images")).json()["deletedCount"] == 5
    assert await stored_keys(app) == set()
    assert (await client.get("/images")).json()["total"] == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"file": "e.png"}', "application/json"),
        (b"{}", "application/json"),
        (b"file=e.png", "application/x-www-form-urlencoded"),
        (b" ", "text/plain"),
    ],
)
async def test_a_delete_with_a_body_is_refused_and_deletes_nothing(
    client: httpx.AsyncClient, app: FastAPI, seeded: dict[str, Any], body: bytes, content_type: str
) -> None:
    for url in ("/images", "/images?key3=value3"):
        response = await client.request("DELETE", url, content=body, headers={"content-type": content_type})
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == (
            "DELETE /images takes its filter in the query string, not in a body; nothing was deleted."
        )
    assert (await client.get("/images")).json()["total"] == 5
    assert len(await stored_keys(app)) == 5


async def test_delete_many_in_batches(client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(12):
        await upload(client, make_image(), fields={"file": f"batch/{index}.png"})
    await upload(client, make_image(), fields={"file": "kept.png"})
    monkeypatch.setattr(edits, "DELETE_BATCH", 5)  # several batches, the last one short

    assert (await client.delete("/images?regex=true&file=^batch/")).json()["deletedCount"] == 12
    assert await stored_keys(app) == {"kept.png"}


async def test_a_bulk_delete_removes_files_a_few_at_a_time(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(40):
        await upload(client, make_image(), fields={"file": f"many/{index}.png"})
    storage = app.state.services.storage
    delete = storage.delete
    under_way = most = 0

    async def counted(key: str) -> None:
        nonlocal under_way, most
        under_way += 1
        most = max(most, under_way)
        try:
            await asyncio.sleep(0.01)
            await delete(key)
        finally:
            under_way -= 1

    monkeypatch.setattr(storage, "delete", counted)
    assert (await client.delete("/images")).json()["deletedCount"] == 40
    assert await stored_keys(app) == set()
    # Each deletion waits on a worker thread or an S3 call: a batch of thousands all waiting
    # at once held megabytes for nothing.
    assert 1 < most <= documents.LOOKUPS_AT_ONCE


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_file_that_fails_to_delete_is_logged_and_document_stays_deleted(
    client: httpx.AsyncClient, app: FastAPI, seeded: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    root = app.state.services.storage.root
    (root / "e.png").unlink()
    (root / "e.png").mkdir()  # a directory where the file was: removing "the file" now fails
    (root / "e.png" / "blocker").write_bytes(b"x")

    with caplog.at_level(logging.ERROR):
        response = await client.delete(f"/images?ids={seeded['e.png']['_id']}")

    assert response.json()["deletedCount"] == 1
    assert (await client.get(f"/images/{seeded['e.png']['_id']}")).status_code == 404
    assert any("could not delete file 'e.png'" in record.getMessage() for record in caplog.records)


# -- /fields -------------------------------------------------------------------------------


async def test_fields_lists_distinct_top_level_keys(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    assert (await client.get("/fields")).json() == ["count", "key3", "label", "nested", "ok", "part_number", "tags"]
    assert (await client.get("/fields?label=cat")).json() == ["count", "label", "ok", "part_number", "tags"]
    assert (await client.get("/fields?limit=20&skip=40&sort=time&order=-1&label=dog")).json() == [
        "count",
        "key3",
        "label",
        "nested",
    ]


async def test_field_values(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    assert sorted((await client.get("/fields/label")).json()) == ["Doggo", "cat", "dog"]
    assert (await client.get("/fields/label?label=cat")).json() == ["cat"]
    assert sorted((await client.get("/fields/tags")).json()) == ["x", "y"]
    assert (await client.get("/fields/nested.a")).json() == [1]
    assert (await client.get("/fields/missing")).json() == []


async def test_fields_follow_put_and_patch(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    image = seeded["e.png"]["_id"]
    await client.put(f"/images/{image}", json={"fresh": 1})
    assert "fresh" in (await client.get("/fields")).json()
    await client.patch(f"/images/{image}", json={"$unset": {"fresh": ""}, "other": 2})
    fields = (await client.get("/fields")).json()
    assert "fresh" not in fields and "other" in fields


@pytest.mark.parametrize("query", ['filter={"$where":"1"}', "from=nope"])
async def test_fields_refuse_bad_queries(client: httpx.AsyncClient, query: str) -> None:
    assert (await client.get(f"/fields?{query}")).status_code == 400
    assert (await client.get(f"/fields/label?{query}")).status_code == 400


async def test_field_value_name_is_checked(client: httpx.AsyncClient) -> None:
    response = await client.get("/fields/$where")
    assert response.status_code == 400


async def test_documents_written_elsewhere_get_their_fields_at_start_up(
    make_settings: Callable[..., Settings], settings: Settings
) -> None:
    # As a deployment that switches from the legacy service finds its database.
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        await raw[settings.mongodb_database]["images"].insert_many(
            [{"file": f"legacy{i}.jpg", "data": {"legacy": i, f"k{i}": True}} for i in range(3)]
        )
    finally:
        await raw.close()

    async with LifespanClient(create_app(make_settings())) as (client, _):

        async def backfilled() -> bool:
            return bool((await client.get("/fields")).json() == ["k0", "k1", "k2", "legacy"])

        await eventually(backfilled, seconds=15)
        assert (await client.get("/images?legacy=1")).json()["items"][0]["file"] == "legacy1.jpg"


async def test_bulk_patch_replaces_nested_values_that_differ_only_in_keys(
    client: httpx.AsyncClient, seeded: dict[str, Any]
) -> None:
    await client.patch("/images?label=cat", json={"box": {"x": 1}})
    response = await client.patch("/images?label=cat", json={"box": {"y": 1}})
    assert response.json()["modifiedCount"] == 2
    for file in ("cats/a.jpg", "cats/b.JPG"):
        assert (await client.get(f"/images/{seeded[file]['_id']}")).json()["data"]["box"] == {"y": 1}


async def test_bulk_patch_with_nothing_new_modifies_nothing(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    response = await client.patch("/images?label=cat", json={"label": "cat"})
    assert (response.json()["matchedCount"], response.json()["modifiedCount"]) == (2, 0)


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # metadata only
async def test_a_bulk_patch_of_hundreds_of_images_changes_every_one(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # FerretDB 1.24 never answers an update command of 100 statements or more: a bulk change
    # of more than a hundred images hung until the write is sent in parts (app/store/engines/ferretdb.py).
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        await raw[settings.mongodb_database]["images"].insert_many(
            [{"file": f"many/{index}.png", "userId": None, "data": {"n": index}} for index in range(260)]
        )
    finally:
        await raw.close()
    response = await client.patch("/images?regex=true&file=^many/", json={"batch": "b1"})
    assert response.json()["matchedCount"] == response.json()["modifiedCount"] == 260
    listed = (await client.get("/images?batch=b1&limit=1000")).json()
    assert listed["total"] == 260
    assert all(item["data"] == {"n": item["data"]["n"], "batch": "b1"} for item in listed["items"])


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # metadata only
async def test_hundreds_of_documents_written_elsewhere_get_their_keys_at_start_up(
    make_settings: Callable[..., Settings],
) -> None:
    # More than one part of the backfill's writes (app/store/engines/ferretdb.py, 99 a time), and more documents
    # than FerretDB answers in one update command from a bulk PATCH.
    settings = make_settings()
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        await raw[settings.mongodb_database]["images"].insert_many(
            [{"file": f"old/{index}.png", "userId": None, "data": {f"k{index % 3}": index}} for index in range(260)]
        )
    finally:
        await raw.close()
    async with LifespanClient(create_app(settings)) as (client, _):

        async def all_keys_known() -> bool:
            return bool((await client.get("/fields")).json() == ["k0", "k1", "k2"])

        await eventually(all_keys_known)
