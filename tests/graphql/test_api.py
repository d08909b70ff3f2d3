"""Every GraphQL query and mutation over HTTP against the real servers, on local and S3 storage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.graphql.schema import schema
from app.main import create_app
from tests.utils.commands import recorded
from tests.utils.graphql import error_codes, gql, gql_data, gql_upload
from tests.utils.images import make_image
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import count_documents, leases_settled, stored_keys

REPO = Path(__file__).resolve().parents[2]

IMAGE_FIELDS = "id file time data userId size contentType width height url"


async def files_matching(client: httpx.AsyncClient, image_filter: dict[str, Any], **arguments: Any) -> list[str]:
    data = await gql_data(
        client,
        "query($f: ImageFilter, $s: [SortInput!], $skip: Int! = 0, $limit: Int! = 100) {"
        " images(filter: $f, sort: $s, skip: $skip, limit: $limit) { total items { file } } }",
        {"f": image_filter, **arguments},
    )
    return [item["file"] for item in data["images"]["items"]]


def test_checked_in_schema_matches_the_code() -> None:
    # Regenerate with `make schema` after changing app/graphql/.
    assert (REPO / "schema.graphql").read_text().strip() == schema.as_str().strip()


# -- queries -------------------------------------------------------------------------------


async def test_images_page_and_fields(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    data = await gql_data(client, f"{{ images(skip: 1, limit: 2) {{ total skip limit items {{ {IMAGE_FIELDS} }} }} }}")
    page = data["images"]
    assert (page["total"], page["skip"], page["limit"]) == (5, 1, 2)
    first = page["items"][0]
    rest = seeded["cats/b.JPG"]
    assert first["id"] == rest["_id"] and first["file"] == "cats/b.JPG" and first["data"] == rest["data"]
    assert first["time"].startswith("2022-06-01T12:00:00")
    assert (first["contentType"], first["width"], first["userId"]) == ("image/png", 32, None)
    # Its content address, as the REST document gives it.
    assert first["url"] == f"http://testserver/images/{rest['_id']}/content/{rest['checksum']}-{rest['size']}"
    assert first["url"] == f"http://testserver{rest['url']}"
    assert (await client.get(first["url"])).status_code == 200


async def test_image_by_id(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    image_id = seeded["dogs/c.png"]["_id"]
    data = await gql_data(client, "query($id: ID!) { image(id: $id) { id file data } }", {"id": image_id})
    assert data["image"] == {"id": image_id, "file": "dogs/c.png", "data": seeded["dogs/c.png"]["data"]}


async def test_fields_and_field_values(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    cats = {"data": [{"path": "label", "eq": "cat"}]}
    data = await gql_data(
        client,
        'query($f: ImageFilter) { all: fields cats: fields(filter: $f) labels: fieldValues(field: "label")'
        ' catCounts: fieldValues(field: "count", filter: $f) nested: fieldValues(field: "nested.a") }',
        {"f": cats},
    )
    assert data["all"] == ["count", "key3", "label", "nested", "ok", "part_number", "tags"]
    assert data["cats"] == ["count", "label", "ok", "part_number", "tags"]
    assert sorted(data["labels"]) == ["Doggo", "cat", "dog"]
    assert sorted(map(str, data["catCounts"])) == ["2", "2"]
    assert data["nested"] == [1]


@pytest.mark.parametrize(
    ("image_filter", "expected"),
    [
        ({"ids": []}, []),
        ({"file": {"eq": "cats/a.jpg"}}, ["cats/a.jpg"]),
        ({"file": {"contains": "JPG"}}, ["cats/a.jpg", "cats/b.JPG"]),
        ({"file": {"contains": "."}}, ["cats/a.jpg", "cats/b.JPG", "dogs/c.png", "dogs/d.png", "e.png"]),
        ({"file": {"regex": "^dogs/"}}, ["dogs/c.png", "dogs/d.png"]),
        ({"time": {"gte": "2022-06-01T12:00:00Z", "lt": "2023-06-01T00:00:00Z"}}, ["cats/b.JPG", "dogs/c.png"]),
        ({"time": {"gt": "2023-06-01T00:00:00Z"}}, ["e.png"]),
        ({"time": {"lte": "2022-01-01T00:00:00Z"}}, ["cats/a.jpg"]),
        ({"data": [{"path": "label", "eq": "cat"}]}, ["cats/a.jpg", "cats/b.JPG"]),
        ({"data": [{"path": "label", "ne": "cat"}]}, ["dogs/c.png", "dogs/d.png", "e.png"]),
        ({"data": [{"path": "count", "gt": 2}]}, ["dogs/c.png"]),
        ({"data": [{"path": "count", "gte": 2}]}, ["cats/a.jpg", "dogs/c.png"]),
        ({"data": [{"path": "count", "lt": 3}]}, ["cats/a.jpg"]),
        ({"data": [{"path": "count", "lte": 3, "gte": 3}]}, ["dogs/c.png"]),
        ({"data": [{"path": "label", "in": ["dog", "Doggo"]}]}, ["dogs/c.png", "dogs/d.png"]),
        ({"data": [{"path": "label", "nin": ["dog", "cat"]}]}, ["dogs/d.png", "e.png"]),
        ({"data": [{"path": "key3", "exists": True}]}, ["dogs/c.png", "dogs/d.png"]),
        ({"data": [{"path": "label", "exists": False}]}, ["e.png"]),
        ({"data": [{"path": "label", "regex": "^DO", "caseInsensitive": True}]}, ["dogs/c.png", "dogs/d.png"]),
        ({"data": [{"path": "label", "regex": "^DO"}]}, []),
        ({"data": [{"path": "nested.a", "eq": 1}]}, ["dogs/c.png"]),
        ({"data": [{"path": "tags", "eq": "x"}]}, ["cats/b.JPG"]),
        ({"data": [{"path": "label", "eq": "cat"}, {"path": "ok", "eq": True}]}, ["cats/a.jpg"]),
        (
            {"or": [{"data": [{"path": "count", "eq": 3}]}, {"file": {"eq": "e.png"}}]},
            ["dogs/c.png", "e.png"],
        ),
        (
            {"and": [{"file": {"regex": "^cats"}}, {"data": [{"path": "count", "eq": "2"}]}]},
            ["cats/b.JPG"],
        ),
        ({"not": {"data": [{"path": "label", "eq": "cat"}]}}, ["dogs/c.png", "dogs/d.png", "e.png"]),
        ({"where": {"data.label": {"$in": ["cat", "dog"]}}}, ["cats/a.jpg", "cats/b.JPG", "dogs/c.png"]),
        ({"where": {"$or": [{"data.ok": True}, {"data.count": 3}]}}, ["cats/a.jpg", "dogs/c.png"]),
    ],
)
async def test_filters(
    client: httpx.AsyncClient, seeded: dict[str, Any], image_filter: dict[str, Any], expected: list[str]
) -> None:
    assert sorted(await files_matching(client, image_filter)) == expected


async def test_filter_by_ids(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    ids = [seeded["cats/a.jpg"]["_id"], seeded["e.png"]["_id"]]
    assert sorted(await files_matching(client, {"ids": ids})) == ["cats/a.jpg", "e.png"]


async def test_sorting_by_several_keys_and_paging(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    by_label_then_file = [{"field": "data.label", "direction": "DESC"}, {"field": "file", "direction": "ASC"}]
    assert await files_matching(client, {}, s=by_label_then_file) == [
        "dogs/c.png",
        "cats/a.jpg",
        "cats/b.JPG",
        "dogs/d.png",
        "e.png",
    ]
    newest_first = [{"field": "time", "direction": "DESC"}]
    assert await files_matching(client, {}, s=newest_first, skip=1, limit=2) == ["dogs/d.png", "dogs/c.png"]
    assert await files_matching(client, {}, s=[{"field": "file"}], limit=1) == ["cats/a.jpg"]


# -- mutations -----------------------------------------------------------------------------


async def test_update_image_sets_and_unsets(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    image_id = seeded["cats/a.jpg"]["_id"]
    data = await gql_data(
        client,
        'mutation($id: ID!, $set: JSON) { updateImage(id: $id, set: $set, unset: ["ok"]) { data } }',
        {"id": image_id, "set": {"count": 5, "box": {"w": 1}}},
    )
    assert data["updateImage"]["data"] == {"label": "cat", "count": 5, "part_number": "200-004", "box": {"w": 1}}
    assert (await client.get(f"/images/{image_id}")).json()["data"] == data["updateImage"]["data"]


async def test_replace_image_data(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    image_id = seeded["dogs/c.png"]["_id"]
    data = await gql_data(
        client,
        "mutation($id: ID!, $data: JSON!) { replaceImageData(id: $id, data: $data) { id data } }",
        {"id": image_id, "data": {"only": "this"}},
    )
    assert data["replaceImageData"] == {"id": image_id, "data": {"only": "this"}}
    assert "nested" not in (await client.get("/fields")).json()


async def test_update_images(client: httpx.AsyncClient, seeded: dict[str, Any]) -> None:
    data = await gql_data(
        client,
        'mutation($f: ImageFilter!) { updateImages(filter: $f, set: {reviewed: true}, unset: ["key3"])'
        " { matchedCount modifiedCount } }",
        {"f": {"file": {"regex": "^dogs/"}}},
    )
    assert data["updateImages"] == {"matchedCount": 2, "modifiedCount": 2}
    for file in ("dogs/c.png", "dogs/d.png"):
        stored = (await client.get(f"/images/{seeded[file]['_id']}")).json()["data"]
        assert stored["reviewed"] is True and "key3" not in stored


async def test_delete_image(client: httpx.AsyncClient, app: FastAPI, seeded: dict[str, Any]) -> None:
    image_id = seeded["e.png"]["_id"]
    data = await gql_data(client, "mutation($id: ID!) { deleteImage(id: $id) }", {"id": image_id})
    assert data["deleteImage"] == image_id
    assert (await client.get(f"/images/{image_id}")).status_code == 404
    assert "e.png" not in await stored_keys(app)


async def test_delete_images_needs_a_filter_or_all(
    client: httpx.AsyncClient, app: FastAPI, seeded: dict[str, Any]
) -> None:
    refused = await gql(client, "mutation { deleteImages { deletedCount } }")
    assert error_codes(refused) == ["BAD_USER_INPUT"]
    refused = await gql(client, "mutation { deleteImages(filter: {}) { deletedCount } }")
    assert error_codes(refused) == ["BAD_USER_INPUT"]
    assert await count_documents(app) == 5

    some = await gql_data(client, 'mutation { deleteImages(filter: {file: {regex: "^cats/"}}) { deletedCount } }')
    assert some["deleteImages"] == {"deletedCount": 2}
    everything = await gql_data(client, "mutation { deleteImages(all: true) { deletedCount } }")
    assert everything["deleteImages"] == {"deletedCount": 3}
    assert await stored_keys(app) == set()


# -- uploads (GraphQL multipart request spec) ----------------------------------------------


async def test_upload_one_image(client: httpx.AsyncClient, app: FastAPI, cat_jpeg: bytes) -> None:
    response = await gql_upload(
        client,
        "mutation($file: Upload!, $data: JSON, $time: DateTime) {"
        ' uploadImage(file: $file, path: "pets/cat.jpg", data: $data, time: $time) { id file data time width } }',
        {"file": None, "data": {"label": "cat", "camera": {"iso": 100}}, "time": "2022-11-02T23:41:55.711Z"},
        {"0": ("variables.file", ("cat.jpg", cat_jpeg))},
    )
    assert response.status_code == 200, response.text
    image = response.json()["data"]["uploadImage"]
    assert image["file"] == "pets/cat.jpg" and image["width"] == 4000
    assert image["data"] == {"label": "cat", "camera": {"iso": 100}}
    assert image["time"].startswith("2022-11-02T23:41:55.711")
    assert (await client.get(f"/images/{image['id']}/image")).content == cat_jpeg
    assert await stored_keys(app) == {"pets/cat.jpg"}


async def test_upload_several_images(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await gql_upload(
        client,
        "mutation($files: [Upload!]!) { uploadImages(files: $files, data: {batch: 1})"
        " { images { file data } skipped { name reason } } }",
        {"files": [None, None, None]},
        {
            "0": ("variables.files.0", ("a.png", make_image())),
            "1": ("variables.files.1", ("b.gif", make_image(format="GIF"))),
            "2": ("variables.files.2", ("notes.png", b"not an image")),
        },
    )
    result = response.json()["data"]["uploadImages"]
    assert [image["file"] for image in result["images"]] == ["a.png", "b.gif"]
    assert all(image["data"] == {"batch": 1} for image in result["images"])
    assert result["skipped"] == [
        {"name": "notes.png", "reason": "The file is not a supported image (judged by its content, not its name)."}
    ]
    assert await stored_keys(app) == {"a.png", "b.gif"}


async def test_upload_without_preflight_header_is_refused(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await gql_upload(
        client,
        "mutation($file: Upload!) { uploadImage(file: $file) { id } }",
        {"file": None},
        {"0": ("variables.file", ("a.png", make_image()))},
        preflight=False,
    )
    assert response.status_code == 400
    assert "Apollo-Require-Preflight" in response.json()["detail"]
    assert await count_documents(app) == 0


@pytest.mark.parametrize(
    ("path", "content", "code"),
    [("../x.png", None, "BAD_USER_INPUT"), ("ok.png", b"text", "BAD_USER_INPUT")],
)
async def test_bad_uploads_are_user_errors(
    client: httpx.AsyncClient, app: FastAPI, path: str, content: bytes | None, code: str
) -> None:
    response = await gql_upload(
        client,
        "mutation($file: Upload!, $path: String) { uploadImage(file: $file, path: $path) { id } }",
        {"file": None, "path": path},
        {"0": ("variables.file", ("a.png", content if content is not None else make_image()))},
    )
    assert error_codes(response.json()) == [code]
    assert await stored_keys(app) == set()


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "code", "message"),
    [
        ("query($id: ID!) { image(id: $id) { id } }", {"id": "6385c4b3a1e2f0c9d8b7a615"}, "NOT_FOUND", "No image"),
        ("query($id: ID!) { image(id: $id) { id } }", {"id": "nope"}, "BAD_USER_INPUT", "not a valid image id"),
        (
            "query($f: ImageFilter) { images(filter: $f) { total } }",
            {"f": {"where": {"$where": "sleep(1)"}}},
            "BAD_USER_INPUT",
            "$where",
        ),
        (
            "query($f: ImageFilter) { images(filter: $f) { total } }",
            {"f": {"where": {"data.a": {"$expr": 1}}}},
            "BAD_USER_INPUT",
            "$expr",
        ),
        (
            "query($f: ImageFilter) { images(filter: $f) { total } }",
            {"f": {"data": [{"path": "$x", "eq": 1}]}},
            "BAD_USER_INPUT",
            "'$'",
        ),
        (
            "query($f: ImageFilter) { images(filter: $f) { total } }",
            {"f": {"data": [{"path": "label"}]}},
            "BAD_USER_INPUT",
            "names no comparison",
        ),
        (
            "query($f: ImageFilter) { images(filter: $f) { total } }",
            {"f": {"file": {"regex": "("}}},
            "BAD_USER_INPUT",
            "regular expression",
        ),
        ("{ images(limit: 0) { total } }", None, "BAD_USER_INPUT", "limit must be between"),
        ("{ images(limit: 100000) { total } }", None, "BAD_USER_INPUT", "limit must be between"),
        ("{ images(skip: -1) { total } }", None, "BAD_USER_INPUT", "skip must be at least 0"),
        ('{ images(sort: [{field: "$natural"}]) { total } }', None, "BAD_USER_INPUT", "'$'"),
        ('{ fieldValues(field: "$where") }', None, "BAD_USER_INPUT", "'$'"),
        (
            "mutation($id: ID!) { updateImage(id: $id, set: [1]) { id } }",
            {"id": "6385c4b3a1e2f0c9d8b7a615"},
            "BAD_USER_INPUT",
            "set must be a JSON object",
        ),
        (
            "mutation($id: ID!) { replaceImageData(id: $id, data: {a: 1}) { id } }",
            {"id": "6385c4b3a1e2f0c9d8b7a615"},
            "NOT_FOUND",
            "No image",
        ),
        ("{ images { nosuchfield } }", None, "GRAPHQL_VALIDATION_FAILED", "nosuchfield"),
        ("{ images(", None, "GRAPHQL_VALIDATION_FAILED", "Syntax Error"),
    ],
)
async def test_errors_have_a_message_and_a_code(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None, code: str, message: str
) -> None:
    body = await gql(client, query, variables)
    assert error_codes(body) == [code]
    assert message in body["errors"][0]["message"]
    assert "Traceback" not in json.dumps(body)


async def test_deep_nested_filters_are_refused(client: httpx.AsyncClient) -> None:
    nested: dict[str, Any] = {"file": {"eq": "x"}}
    for _ in range(12):
        nested = {"and": [nested]}
    body = await gql(client, "query($f: ImageFilter) { images(filter: $f) { total } }", {"f": nested})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_oversized_requests_are_refused(client: httpx.AsyncClient) -> None:
    aliases = " ".join(f"a{index}: fields" for index in range(30))
    body = await gql(client, f"{{ {aliases} }}")
    assert body["data"] is None and "aliases" in body["errors"][0]["message"].lower()
    huge = "{ images { total " + "total " * 5000 + "} }"
    body = await gql(client, huge)
    assert body["data"] is None and "token" in body["errors"][0]["message"].lower()


async def test_graphiql_page_on_get(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_a_page_is_one_database_round_trip(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    async with LifespanClient(create_app(settings)) as (client, app):
        for index in range(5):
            await upload(client, make_image(), fields={"file": f"{index}.png", "n": str(index)})
        await leases_settled(app)  # the uploads' lease releases, sent after their answers
        commands: dict[str, list[str]] = {}
        for name, arguments in (("whole", ""), ("part", "(limit: 2)"), ("past the end", "(skip: 9)")):
            with recorded() as sent:
                data = await gql_data(client, f"{{ images{arguments} {{ total items {{ {IMAGE_FIELDS} }} }} }}")
            assert data["images"]["total"] == 5
            commands[name] = sorted(command.name for command in sent)
    # The page, and the count only when the page cannot tell it; never a query per image.
    if settings.ferretdb_sqlite_directory is None:
        assert commands == {"whole": ["find"], "part": ["aggregate", "find"], "past the end": ["aggregate", "find"]}
    else:
        # The embedded FerretDB/SQLite: counted in its files, which also tell that a page past
        # the last match is empty (app/store/engines/ferretdb_sqlite/).
        assert commands == {"whole": ["find"], "part": ["find"], "past the end": []}
