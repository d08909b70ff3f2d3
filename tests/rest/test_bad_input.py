"""Hostile and odd input: a 4xx with one sentence, never a 500, never counted as an outage."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.rest.test_images import count_documents, stored_keys, upload
from tests.utils.images import make_image
from tests.utils.metrics import sample

DEEP = 5000
INT64_MAX = 2**63 - 1


def nested(depth: int, leaf: Any = 1, *, kind: str = "object") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"x": value} if kind == "object" else [value]
    return value


def deep_text(depth: int) -> str:
    """Deeply nested JSON as text, built without Python's recursion (json.dumps would fail)."""
    return '{"a": ' + "[" * depth + "1" + "]" * depth + "}"


def assert_one_sentence(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    detail: str = response.json()["detail"]
    assert detail.endswith(".") and "\n" not in detail and "Traceback" not in detail
    assert ".go:" not in detail  # no database source location
    return detail


@pytest.fixture
async def image(client: httpx.AsyncClient) -> dict[str, Any]:
    created: dict[str, Any] = (await upload(client, make_image(), fields={"file": "x.png", "label": "cat"})).json()
    return created


# -- nesting ---------------------------------------------------------------------------------


async def test_deeply_nested_bodies_are_400(client: httpx.AsyncClient, image: dict[str, Any]) -> None:
    headers = {"content-type": "application/json"}
    for method, url in [("PATCH", f"/images/{image['_id']}"), ("PUT", f"/images/{image['_id']}"), ("PATCH", "/images")]:
        response = await client.request(method, url, content=deep_text(DEEP), headers=headers)
        assert "nested" in assert_one_sentence(response, 400), (method, url)
    too_deep = await client.patch(f"/images/{image['_id']}", json={"a": nested(40)})
    assert "nested more than" in assert_one_sentence(too_deep, 400)
    assert (await client.get(f"/images/{image['_id']}")).json()["data"] == {"label": "cat"}


async def test_deeply_nested_metadata_in_an_upload_is_400(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await upload(client, make_image(), fields={"file": "y.png", "data": deep_text(DEEP)})
    assert "nested" in assert_one_sentence(response, 400)
    assert await stored_keys(app) == set()


async def test_deeply_nested_filters_are_400(client: httpx.AsyncClient) -> None:
    deep_or = '{"$or": [' * 1200 + '{"a": 1}' + "]}" * 1200
    for text in [deep_or, deep_text(1200)]:
        for route in ("/images", "/fields", "/fields/label", "/export"):
            response = await client.get(route, params={"filter": text})
            assert "nested" in assert_one_sentence(response, 400), route
        assert_one_sentence(await client.patch("/images", params={"filter": text}, json={"a": 1}), 400)
        assert_one_sentence(await client.delete("/images", params={"filter": text}), 400)


# -- numbers and dates -----------------------------------------------------------------------


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 10**30])
async def test_integers_beyond_64_bits_are_400(client: httpx.AsyncClient, image: dict[str, Any], number: int) -> None:
    body = json.dumps({"n": number})
    headers = {"content-type": "application/json"}
    for method, url in [("PATCH", f"/images/{image['_id']}"), ("PUT", f"/images/{image['_id']}"), ("PATCH", "/images")]:
        response = await client.request(method, url, content=body, headers=headers)
        assert "64-bit" in assert_one_sentence(response, 400), (method, url)
    uploaded = await upload(client, make_image(), fields={"file": "n.png", "data": body})
    assert "64-bit" in assert_one_sentence(uploaded, 400)
    filtered = await client.get("/images", params={"filter": json.dumps({"data.n": {"$gt": number}})})
    assert "64-bit" in assert_one_sentence(filtered, 400)
    # A plain `key=value` that spells such a number still matches it as text.
    assert (await client.get("/images", params={"n": str(number)})).json()["total"] == 0
    edge = await client.patch(f"/images/{image['_id']}", json={"max": INT64_MAX, "min": -(2**63)})
    assert edge.status_code == 200


async def test_skip_beyond_64_bits_is_400(client: httpx.AsyncClient) -> None:
    assert "skip" in assert_one_sentence(await client.get("/images", params={"skip": str(2**63)}), 400)
    assert (await client.get("/images", params={"skip": str(INT64_MAX)})).json()["items"] == []


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_dates_that_leave_the_calendar_in_utc_are_400(client: httpx.AsyncClient, moment: str) -> None:
    for params in [{"from": moment}, {"to": moment}, {"filter": json.dumps({"time": {"$gte": moment}})}]:
        assert "out of range" in assert_one_sentence(await client.get("/images", params=params), 400)
    uploaded = await upload(client, make_image(), fields={"file": "t.png", "time": moment})
    assert "out of range" in assert_one_sentence(uploaded, 400)


# -- values the database refuses -------------------------------------------------------------


async def test_nested_arrays_are_400_on_every_write_where_the_database_refuses_them(
    client: httpx.AsyncClient, image: dict[str, Any], app: FastAPI
) -> None:
    if not await _database_is_ferretdb(app):
        pytest.skip("MongoDB stores nested arrays")
    for method, url in [("PATCH", f"/images/{image['_id']}"), ("PUT", f"/images/{image['_id']}"), ("PATCH", "/images")]:
        response = await client.request(method, url, json={"grid": [[1, 2], [3, 4]]})
        assert "nested arrays" in assert_one_sentence(response, 400), (method, url)
    assert (await client.get(f"/images/{image['_id']}")).json()["data"] == {"label": "cat"}


async def _database_is_ferretdb(app: FastAPI) -> bool:
    info = await app.state.services.database.client.admin.command("buildInfo")
    return "ferretdb" in json.dumps(info).lower()


# -- paths -----------------------------------------------------------------------------------


async def test_a_path_segment_longer_than_255_bytes_is_400(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await upload(client, make_image(), fields={"file": f"folder/{'a' * 300}.png"})
    assert "255" in assert_one_sentence(response, 400)
    unicode = await upload(client, make_image(), fields={"file": "é" * 130 + ".png"})  # 260 bytes in UTF-8
    assert_one_sentence(unicode, 400)
    assert await count_documents(app) == 0
    assert await stored_keys(app) == set()


async def test_a_file_where_a_folder_is_and_back_is_409_on_local_storage(
    client: httpx.AsyncClient, app: FastAPI, storage_kind: str
) -> None:
    assert (await upload(client, make_image(), fields={"file": "col/x"})).status_code == 200
    under_file = await upload(client, make_image(), fields={"file": "col/x/y.png"})
    assert (await upload(client, make_image(), fields={"file": "col/a/b.png"})).status_code == 200
    over_folder = await upload(client, make_image(), fields={"file": "col/a"})
    if storage_kind == "s3":  # keys are flat there: both are files
        assert (under_file.status_code, over_folder.status_code) == (200, 200)
        assert (await client.delete("/images")).json()["deletedCount"] == 4
        return
    assert "folder" in assert_one_sentence(under_file, 409)
    assert "folder" in assert_one_sentence(over_folder, 409)
    assert await count_documents(app) == 2
    assert await stored_keys(app) == {"col/x", "col/a/b.png"}
    metrics = (await client.get("/metrics")).text
    assert sample(metrics, "image_storage_dependency_errors_total", kind="storage") == 0


# -- sorting ---------------------------------------------------------------------------------


async def test_too_many_sort_keys_is_400_in_our_words(client: httpx.AsyncClient) -> None:
    response = await client.get("/images", params={"sort": ",".join(f"data.k{index}" for index in range(40))})
    assert "sort keys" in assert_one_sentence(response, 400)


async def test_database_errors_from_a_query_never_show_its_internals(client: httpx.AsyncClient) -> None:
    # A query the compiler lets through and the database refuses: a 400 in our words.
    response = await client.get("/images", params={"filter": json.dumps({"data.a": {"$type": "nonsense"}})})
    assert_one_sentence(response, 400)


# -- GraphQL ---------------------------------------------------------------------------------


async def test_graphql_variables_nested_deep_are_a_client_error(client: httpx.AsyncClient) -> None:
    body = '{"query": "mutation($s: JSON) { updateImages(filter: {}, set: $s) { matchedCount } }", "variables": {"s": '
    body += deep_text(10_000) + "}}"
    response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "nested" in response.text


async def test_graphql_integers_beyond_64_bits_are_bad_user_input(
    client: httpx.AsyncClient, image: dict[str, Any]
) -> None:
    mutation = "mutation($id: ID!, $s: JSON) { updateImage(id: $id, set: $s) { id } }"
    response = await client.post(
        "/graphql", json={"query": mutation, "variables": {"id": image["_id"], "s": {"n": 2**64}}}
    )
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"]
    assert "64-bit" in errors[0]["message"]
