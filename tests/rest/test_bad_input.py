"""Hostile and odd input: a 4xx with one sentence, never a 500, never counted as an outage."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI

from tests.utils.graphql import gql, gql_data, gql_upload
from tests.utils.images import make_image
from tests.utils.metrics import sample
from tests.utils.service import upload
from tests.utils.stored import count_documents, stored_keys

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


# The code each status's refusals here carry (app/rest/errors.py).
CODES = {400: "bad_input", 404: "not_found", 409: "conflict", 413: "too_large"}


def assert_one_sentence(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.json()["code"] == CODES[status], response.text
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
    info = await app.state.services.store.database.client.admin.command("buildInfo")
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


# -- text that is not valid Unicode ----------------------------------------------------------

# A lone UTF-16 surrogate: valid JSON (`"\ud800"`), but no UTF-8, BSON or response can carry it.
LONE = "\ud800"


def as_json(value: Any) -> str:
    """JSON text with every non-ASCII character escaped, as a client holding a lone surrogate
    sends it (httpx's own encoder would fail on it)."""
    return json.dumps(value, ensure_ascii=True)


async def unchanged_state(client: httpx.AsyncClient) -> dict[str, Any]:
    """What a refused request must leave as it was: the images, the views and the snapshots."""
    return {
        "images": [(item["file"], item["data"]) for item in (await client.get("/images")).json()["items"]],
        "views": (await client.get("/views")).json(),
        "snapshots": (await client.get("/snapshots")).json(),
    }


async def test_a_lone_surrogate_is_a_400_on_every_route_that_takes_text(
    client: httpx.AsyncClient, image: dict[str, Any]
) -> None:
    one = f"/images/{image['_id']}"
    bodies = [
        ("PATCH", one, {"a": LONE}),
        ("PATCH", one, {LONE: 1}),
        ("PATCH", one, {"a": {"b": [1, {"c": LONE}]}}),
        ("PATCH", one, {"$unset": {LONE: ""}}),
        ("PUT", one, {"a": LONE}),
        ("PUT", one, {"a": {LONE: 1}}),
        ("PATCH", "/images", {"a": LONE}),
        ("PATCH", "/images", {LONE: True}),
        ("PUT", "/views/v", {"filter": {"data.a": LONE}}),
        ("PUT", "/views/v", {"filter": {f"data.{LONE}": 1}}),
        ("PUT", "/views/v", {"sort": f"data.{LONE}"}),
        ("POST", "/snapshots", {"name": LONE}),
        ("POST", "/snapshots", {"name": f"s{LONE}"}),
        ("POST", "/snapshots", {"name": "s", "filter": {"data.a": {"$in": ["x", LONE]}}}),
        ("POST", "/snapshots", {"name": "s", "view": LONE}),
    ]
    filters = [
        {"data.a": LONE},
        {LONE: 1},
        {"data.a": {"$regex": LONE}},
        {"data.a": {"$not": {"$regex": f"^{LONE}"}}},
        {"data.a": {"$elemMatch": {"b": LONE}}},
        {"data.a": {"b": {LONE: 1}}},
        {"$or": [{"file": LONE}, {"data.a": 1}]},
    ]
    queries = [
        (method, route, {"filter": as_json(query_filter)})
        for query_filter in filters
        for method, route in [
            ("GET", "/images"),
            ("GET", "/fields"),
            ("GET", "/fields/label"),
            ("GET", "/fields/label?counts=true"),
            ("GET", "/facets/contentType"),
            ("GET", "/export"),
            ("DELETE", "/images"),
        ]
    ]
    before = await unchanged_state(client)
    for method, url, body in bodies:
        response = await client.request(
            method, url, content=as_json(body), headers={"content-type": "application/json"}
        )
        assert "surrogate" in assert_one_sentence(response, 400), (method, url, body)
    for method, url, params in queries:
        response = await client.request(method, url, params=params)
        assert "surrogate" in assert_one_sentence(response, 400), (method, url, params)
    patched = await client.patch("/images", params={"filter": as_json({"data.a": LONE})}, json={"b": 1})
    assert "surrogate" in assert_one_sentence(patched, 400)
    assert await unchanged_state(client) == before


async def test_a_lone_surrogate_in_uploaded_metadata_is_a_400_storing_nothing(
    client: httpx.AsyncClient, app: FastAPI, cat_jpeg: bytes
) -> None:
    for fields in ({"data": as_json({"a": LONE})}, {"json": as_json({LONE: 1})}, {"data": as_json({"a": [LONE]})}):
        response = await upload(client, make_image(), fields={"file": "u.png", **fields})
        assert "surrogate" in assert_one_sentence(response, 400), fields
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("cat.jpg", cat_jpeg)
    imported = await client.post(
        "/import",
        files={"archive": ("a.zip", archive.getvalue(), "application/zip")},
        data={"data": as_json({"a": LONE})},
    )
    assert "surrogate" in assert_one_sentence(imported, 400)
    assert await count_documents(app) == 0
    assert await stored_keys(app) == set()


async def test_a_lone_surrogate_in_a_restored_document_skips_that_image_only(
    client: httpx.AsyncClient, app: FastAPI, cat_jpeg: bytes
) -> None:
    documents = [
        {"_id": "6385c4b3a1e2f0c9d8b7a615", "file": "good.jpg", "time": "2022-11-02T23:41:55.711Z", "data": {"a": 1}},
        {"_id": "6385c4b3a1e2f0c9d8b7a616", "file": "bad.jpg", "time": "2022-11-02T23:41:55.711Z", "data": {"a": LONE}},
    ]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("good.jpg", cat_jpeg)
        zipped.writestr("bad.jpg", cat_jpeg)
        zipped.writestr("mongodb_data.json", as_json(documents))
    imported = await client.post("/import", files={"archive": ("a.zip", archive.getvalue(), "application/zip")})
    assert imported.status_code == 200, imported.text
    summary = imported.json()
    assert summary["imported"] == 1
    assert [(skipped["name"], "surrogate" in skipped["reason"]) for skipped in summary["skipped"]] == [
        ("bad.jpg", True)
    ]
    assert [item["file"] for item in (await client.get("/images")).json()["items"]] == ["good.jpg"]
    assert await stored_keys(app) == {"good.jpg"}


GRAPHQL_WITH_TEXT = [
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"where": {"data.a": LONE}}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"where": {LONE: 1}}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"file": {"eq": LONE}}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"file": {"contains": LONE}}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"file": {"regex": LONE}}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"data": [{"path": "a", "eq": LONE}]}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"data": [{"path": LONE, "eq": 1}]}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"data": [{"path": "a", "in": [LONE]}]}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"data": [{"path": "a", "regex": LONE}]}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"checksum": LONE}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"ids": [LONE]}}),
    ("query($f: ImageFilter) { images(filter: $f) { total } }", {"f": {"not": {"file": {"eq": LONE}}}}),
    ("query($s: [SortInput!]) { images(sort: $s) { total } }", {"s": [{"field": f"data.{LONE}"}]}),
    ("query($v: String) { images(view: $v) { total } }", {"v": LONE}),
    ("query($a: String) { imagesConnection(after: $a) { edges { cursor } } }", {"a": LONE}),
    ("query($a: String) { imagesConnection(after: $a) { edges { cursor } } }", {"a": f"x{LONE}y" * 10}),
    ("query($i: ID!) { image(id: $i) { id } }", {"i": LONE}),
    ("query($f: ImageFilter) { fields(filter: $f) }", {"f": {"where": {"data.a": LONE}}}),
    ("query($n: String!) { fieldValues(field: $n) }", {"n": LONE}),
    ("query($n: String!) { facets(field: $n) { value count } }", {"n": LONE}),
    (
        "query($f: ImageFilter) { systemFacets(field: CONTENT_TYPE, filter: $f) { count } }",
        {"f": {"where": {"a": LONE}}},
    ),
    ("query($n: String!) { view(name: $n) { name } }", {"n": LONE}),
    ("query($n: String!) { snapshot(name: $n) { name } }", {"n": LONE}),
    ("query($n: String!) { snapshotDiff(name: $n, other: $n) { added { count } } }", {"n": LONE}),
    ("mutation($i: ID!, $s: JSON) { updateImage(id: $i, set: $s) { id } }", {"s": {"a": LONE}}),
    ("mutation($i: ID!, $s: JSON) { updateImage(id: $i, set: $s) { id } }", {"s": {LONE: 1}}),
    ("mutation($i: ID!, $u: [String!]) { updateImage(id: $i, unset: $u) { id } }", {"u": [LONE]}),
    ("mutation($i: ID!, $d: JSON!) { replaceImageData(id: $i, data: $d) { id } }", {"d": {"a": [LONE]}}),
    ("mutation($s: JSON) { updateImages(filter: {}, set: $s) { matchedCount } }", {"s": {"a": LONE}}),
    (
        "mutation($f: ImageFilter!) { updateImages(filter: $f, set: {b: 1}) { matchedCount } }",
        {"f": {"where": {"a": LONE}}},
    ),
    ("mutation($u: [String!]) { updateImages(filter: {}, unset: $u) { matchedCount } }", {"u": [LONE]}),
    ("mutation($i: ID!) { deleteImage(id: $i) }", {"i": f"{LONE}" * 24}),
    ("mutation($f: ImageFilter) { deleteImages(filter: $f) { deletedCount } }", {"f": {"where": {"data.a": LONE}}}),
    ("mutation($n: String!) { saveView(name: $n) { name } }", {"n": LONE}),
    ('mutation($f: ImageFilter) { saveView(name: "v", filter: $f) { name } }', {"f": {"where": {"a": LONE}}}),
    ('mutation($s: [SortInput!]) { saveView(name: "v", sort: $s) { name } }', {"s": [{"field": LONE}]}),
    ("mutation($n: String!) { createSnapshot(name: $n) { name } }", {"n": LONE}),
    ('mutation($f: ImageFilter) { createSnapshot(name: "s", filter: $f) { name } }', {"f": {"where": {"a": LONE}}}),
    ('mutation($v: String) { createSnapshot(name: "s", view: $v) { name } }', {"v": LONE}),
    ("mutation($n: String!) { deleteSnapshot(name: $n) }", {"n": LONE}),
    ("mutation($n: String!) { deleteView(name: $n) }", {"n": LONE}),
]


async def test_a_lone_surrogate_is_bad_user_input_in_every_graphql_operation_that_takes_text(
    client: httpx.AsyncClient, image: dict[str, Any]
) -> None:
    before = await unchanged_state(client)
    for query, variables in GRAPHQL_WITH_TEXT:
        body = as_json({"query": query, "variables": {"i": image["_id"], **variables}})
        response = await client.post("/graphql", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 200, (query, variables, response.text)
        errors = response.json()["errors"]
        assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"], (query, variables, errors)
    assert await unchanged_state(client) == before


async def test_a_lone_surrogate_in_a_graphql_upload_is_bad_user_input_storing_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    cases = [
        ("mutation($f: Upload!, $p: String) { uploadImage(file: $f, path: $p) { id } }", {"p": f"a/{LONE}.png"}),
        ("mutation($f: Upload!, $d: JSON) { uploadImage(file: $f, data: $d) { id } }", {"d": {"a": LONE}}),
    ]
    for query, variables in cases:
        # gql_upload's json.dumps escapes the surrogate, as a client holding one sends it.
        response = await gql_upload(
            client, query, {"f": None, **variables}, files={"0": ("variables.f", ("x.png", make_image()))}
        )
        errors = response.json()["errors"]
        assert [error["extensions"]["code"] for error in errors] == ["BAD_USER_INPUT"], (query, errors)
        assert "surrogate" in errors[0]["message"]
    several = (
        "mutation($f: [Upload!]!, $d: JSON) { uploadImages(files: $f, data: $d) { images { id } skipped { reason } } }"
    )
    response = await gql_upload(
        client, several, {"f": [None], "d": {LONE: 1}}, files={"0": ("variables.f.0", ("x.png", make_image()))}
    )
    result = response.json()["data"]["uploadImages"]
    assert result["images"] == []
    assert ["surrogate" in skipped["reason"] for skipped in result["skipped"]] == [True]
    assert await count_documents(app) == 0
    assert await stored_keys(app) == set()


# -- names of views and snapshots ------------------------------------------------------------


def registry(app: FastAPI, name: str) -> Any:
    """A collection of the service's database (`views`, `snapshots`), behind the service's back."""
    return app.state.services.store.database.client[app.state.services.store.database.name][name]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a/b", "'/'"),
        ("/", "'/'"),
        ("a/", "'/'"),
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        ("a\tb", "control characters"),
        ("a\nb", "control characters"),
        ("   ", "not only spaces"),
        ("x" * 101, "1 to 100 characters"),
    ],
)
async def test_a_name_no_route_could_reach_is_refused_when_created(
    client: httpx.AsyncClient, name: str, reason: str
) -> None:
    snapshot = await client.post("/snapshots", json={"name": name})
    assert reason in assert_one_sentence(snapshot, 400)
    saved = await gql(client, "mutation($n: String!) { saveView(name: $n) { name } }", {"n": name})
    assert [error["extensions"]["code"] for error in saved["errors"]] == ["BAD_USER_INPUT"]
    assert reason in saved["errors"][0]["message"]
    made = await gql(client, "mutation($n: String!) { createSnapshot(name: $n) { name } }", {"n": name})
    assert reason in made["errors"][0]["message"]
    assert (await client.get("/snapshots")).json() == []
    assert (await client.get("/views")).json() == []


@pytest.mark.parametrize("name", ["a.b", "...", " a ", "été", "a%2Fb", "a?b#c", "a\\b"])
async def test_a_name_that_is_one_path_segment_is_reachable_by_every_route(
    client: httpx.AsyncClient, name: str
) -> None:
    segment = quote(name, safe="")
    assert (await client.post("/snapshots", json={"name": name})).status_code == 201
    assert (await client.put(f"/views/{segment}", json={})).status_code == 200
    for url in (f"/snapshots/{segment}", f"/snapshots/{segment}/images", f"/snapshots/{segment}/diff/{segment}"):
        assert (await client.get(url)).status_code == 200, url
    assert (await client.get(f"/snapshots/{segment}/export")).status_code == 200
    assert (await client.get(f"/views/{segment}")).json()["name"] == name
    assert (await client.get("/images", params={"view": name})).status_code == 200
    assert (await client.delete(f"/snapshots/{segment}")).json() == {"name": name}
    assert (await client.delete(f"/views/{segment}")).json() == {"name": name}


async def test_names_stored_before_they_were_refused_can_be_read_and_deleted_through_graphql(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    now = datetime.now(UTC)
    await registry(app, "snapshots").insert_one(
        {"_id": ObjectId(), "owner": None, "name": "a/b", "filter": "{}", "created": now, "count": 0}
    )
    await registry(app, "views").insert_one(
        {"owner": None, "name": "c/d", "filter": "{}", "sort": [], "created": now, "updated": now}
    )
    assert [item["name"] for item in (await client.get("/snapshots")).json()] == ["a/b"]
    assert [item["name"] for item in (await client.get("/views")).json()] == ["c/d"]
    assert (await client.get("/snapshots/a%2Fb")).status_code == 404  # routing splits at %2F

    read = await gql_data(client, '{ snapshot(name: "a/b") { name count } view(name: "c/d") { name } }')
    assert read == {"snapshot": {"name": "a/b", "count": 0}, "view": {"name": "c/d"}}
    deleted = await gql_data(client, 'mutation { deleteSnapshot(name: "a/b") deleteView(name: "c/d") }')
    assert deleted == {"deleteSnapshot": "a/b", "deleteView": "c/d"}
    assert (await client.get("/snapshots")).json() == []
    assert (await client.get("/views")).json() == []


# -- stored data that today's checks refuse --------------------------------------------------


async def test_a_view_stored_with_a_lone_surrogate_is_listed_and_refused_only_when_used(
    client: httpx.AsyncClient, app: FastAPI, image: dict[str, Any]
) -> None:
    # As an earlier version stored `PUT /views/sv {"filter": {"data.a": "\ud800"}}`.
    now = datetime.now(UTC)
    await registry(app, "views").insert_one(
        {"owner": None, "name": "sv", "filter": as_json({"data.a": LONE}), "sort": [], "created": now, "updated": now}
    )
    listed = await client.get("/views")
    assert listed.status_code == 200, listed.text
    [view] = listed.json()
    assert view["filter"] == {"data.a": "\ufffd"}
    assert "surrogate" in view["problem"]
    assert (await client.get("/views/sv")).json() == view
    graphql = await gql_data(client, '{ views { name filter problem } view(name: "sv") { problem } }')
    assert graphql["views"] == [{"name": "sv", "filter": {"data.a": "\ufffd"}, "problem": view["problem"]}]
    for route in ("/images", "/fields", "/export"):
        used = await client.get(route, params={"view": "sv"})
        assert "can no longer be used" in assert_one_sentence(used, 400), route
    refused = await client.post("/snapshots", json={"name": "s", "view": "sv"})
    assert "can no longer be used" in assert_one_sentence(refused, 400)

    # Saved again, it works; and it can be deleted as it is.
    assert (await client.put("/views/sv", json={"filter": {"data.label": "cat"}})).json()["problem"] is None
    assert (await client.get("/images", params={"view": "sv"})).json()["total"] == 1
    assert (await client.delete("/views/sv")).status_code == 200


# -- codes of answers the domain does not raise ------------------------------------------------


async def test_unknown_routes_and_methods_carry_codes(client: httpx.AsyncClient) -> None:
    unknown = await client.get("/no/such/route")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert unknown.json()["detail"] == "There is no route at this path."
    wrong = await client.put("/images")
    assert wrong.json() == {"detail": "This route does not take PUT requests.", "code": "method_not_allowed"}
    assert "GET" in wrong.headers["allow"]
    missing = await client.get(f"/images/{ObjectId()}")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    invalid = await client.get("/images/abc")
    assert (invalid.status_code, invalid.json()["code"]) == (400, "bad_input")
