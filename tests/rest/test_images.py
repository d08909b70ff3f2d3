"""The single-image routes, on local and S3 storage (the `storage_kind` fixture runs both)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from tests.utils.commands import recorded
from tests.utils.images import make_image
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import count_documents, leases_settled, stored_keys

# -- upload --------------------------------------------------------------------------------


async def test_upload_with_plain_fields_stores_them_as_data(client: httpx.AsyncClient, cat_jpeg: bytes) -> None:
    response = await upload(client, cat_jpeg, filename="cat.jpg", fields={"label": "cat", "part_number": "200-004"})

    assert response.status_code == 200
    image = response.json()
    assert image["file"] == "cat.jpg"
    assert image["data"] == {"label": "cat", "part_number": "200-004"}
    assert len(image["_id"]) == 24
    assert image["contentType"] == "image/jpeg"
    assert (image["width"], image["height"]) == (4000, 3000)
    assert image["size"] == len(cat_jpeg)
    # JavaScript's `new Date()` must read it: ISO, milliseconds, Z.
    assert datetime.strptime(image["time"], "%Y-%m-%dT%H:%M:%S.%fZ")


async def test_upload_with_data_json_string_keeps_nested_values(client: httpx.AsyncClient) -> None:
    data = {"label": "cat", "camera": {"iso": 200, "lens": {"mm": 35.5}}, "tags": ["a", "b"], "ok": True, "n": None}
    response = await upload(client, make_image(), fields={"data": json.dumps(data), "ignored": "plain"})

    assert response.status_code == 200
    assert response.json()["data"] == data


async def test_upload_accepts_json_field_as_alias_of_data(client: httpx.AsyncClient) -> None:
    response = await upload(client, make_image(), fields={"json": '{"a": 1}'})
    assert response.json()["data"] == {"a": 1}


async def test_upload_with_data_null_means_no_metadata(client: httpx.AsyncClient) -> None:
    response = await upload(client, make_image(), fields={"data": "null"})
    assert response.status_code == 200
    assert response.json()["data"] == {}


async def test_repeated_plain_field_becomes_a_list(client: httpx.AsyncClient) -> None:
    response = await client.post("/images", files={"image": ("a.png", make_image())}, data={"tag": ["x", "y"]})
    assert response.json()["data"] == {"tag": ["x", "y"]}


async def test_upload_into_folder_and_read_back(client: httpx.AsyncClient, app: FastAPI) -> None:
    content = make_image(format="JPEG")
    response = await upload(client, content, fields={"file": "myFolder/myImage.jpg"})

    assert response.status_code == 200
    image = response.json()
    assert image["file"] == "myFolder/myImage.jpg"
    assert await stored_keys(app) == {"myFolder/myImage.jpg"}
    download = await client.get(f"/images/{image['_id']}/image")
    assert download.content == content


async def test_file_path_is_normalised(client: httpx.AsyncClient) -> None:
    response = await upload(client, make_image(), fields={"file": "./a//b/./c.png"})
    assert response.json()["file"] == "a/b/c.png"


async def test_upload_with_time_and_id(client: httpx.AsyncClient) -> None:
    fields = {"time": "2022-11-02T23:41:55.711Z", "_id": "6385c4b3a1e2f0c9d8b7a615"}
    response = await upload(client, make_image(), fields=fields)

    image = response.json()
    assert image["time"] == "2022-11-02T23:41:55.711Z"
    assert image["_id"] == "6385c4b3a1e2f0c9d8b7a615"
    assert (await client.get("/images/6385c4b3a1e2f0c9d8b7a615")).json()["time"] == "2022-11-02T23:41:55.711Z"


async def test_time_without_zone_is_utc(client: httpx.AsyncClient) -> None:
    response = await upload(client, make_image(), fields={"time": "2022-11-02T10:00:00"})
    assert response.json()["time"] == "2022-11-02T10:00:00.000Z"


async def test_upload_to_existing_path_replaces_bytes_time_and_data(client: httpx.AsyncClient, app: FastAPI) -> None:
    first = (await upload(client, make_image(color=(1, 2, 3)), fields={"file": "x.png", "label": "old"})).json()
    new_bytes = make_image(64, 48, color=(9, 9, 9))
    second = await upload(client, new_bytes, fields={"file": "x.png", "other": "new", "time": "2020-01-01T00:00:00Z"})

    assert second.status_code == 200
    replaced = second.json()
    assert replaced["_id"] == first["_id"]
    assert replaced["data"] == {"other": "new"}
    assert replaced["time"] == "2020-01-01T00:00:00.000Z"
    assert replaced["width"] == 64
    assert (await client.get(f"/images/{first['_id']}/file")).content == new_bytes
    assert await stored_keys(app) == {"x.png"}


async def test_upload_to_a_path_whose_file_went_missing_replaces_that_image(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    first = (await upload(client, make_image(), fields={"file": "x.png", "label": "old"})).json()
    await app.state.services.storage.delete("x.png")  # lost behind the service's back
    new_bytes = make_image(40, 30)
    second = await upload(client, new_bytes, fields={"file": "x.png", "label": "new"})

    assert second.status_code == 200
    assert second.json()["_id"] == first["_id"]
    assert (await client.get("/images")).json()["total"] == 1
    assert (await client.get(f"/images/{first['_id']}/file")).content == new_bytes
    assert await stored_keys(app) == {"x.png"}


async def test_upload_over_a_file_no_image_names_stores_a_new_image(client: httpx.AsyncClient, app: FastAPI) -> None:
    # A file with no document: copied in behind the service's back, or left by a crash
    # between the file and its document. The storage says the path is taken; the database
    # says by nobody.
    left = b"left over"
    await app.state.services.storage.save("x.png", io.BytesIO(left), length=len(left), content_type="image/png")
    new_bytes = make_image(40, 30)
    response = await upload(client, new_bytes, fields={"file": "x.png", "label": "new"})

    assert response.status_code == 200
    assert response.json()["data"] == {"label": "new"}
    assert (await client.get("/images")).json()["total"] == 1
    assert (await client.get(f"/images/{response.json()['_id']}/file")).content == new_bytes
    assert await stored_keys(app) == {"x.png"}


async def test_a_new_image_never_searches_the_collection_by_path(make_settings: Callable[..., Settings]) -> None:
    # On FerretDB with SQLite a search by `file` reads every document: uploads would slow down
    # with every image stored. A new path is known new from the storage.
    async with LifespanClient(create_app(make_settings())) as (client, app):
        await upload(client, make_image(), fields={"file": "first.png"})
        # The start-up maintenance searches the collection: let it finish first.
        await asyncio.gather(*app.state.services.store.database._background)
        await leases_settled(app)
        with recorded() as sent:
            response = await upload(client, make_image(), fields={"file": "second.png"})
            await leases_settled(app)
    assert response.status_code == 200
    assert [(command.name, command.collection) for command in sent] == [
        ("insert", "leases"),
        ("insert", "images"),
        ("delete", "leases"),
    ]


async def test_upload_with_id_of_another_image_is_a_conflict(client: httpx.AsyncClient, app: FastAPI) -> None:
    first = (await upload(client, make_image(), fields={"file": "a.png"})).json()
    response = await upload(client, make_image(), fields={"file": "b.png", "_id": first["_id"]})

    assert response.status_code == 409
    assert await stored_keys(app) == {"a.png"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data": "{not json"}, "not valid JSON"),
        ({"data": "[1, 2]"}, "JSON object"),
        ({"data": '"text"'}, "JSON object"),
        ({"json": '{"a": NaN}'}, "not valid JSON"),
        ({"data": '{"$where": 1}'}, "must not start with '$'"),
        ({"data": '{"a": {"b.c": 1}}'}, "must not contain '.'"),
        ({"time": "yesterday"}, "ISO-8601"),
        ({"_id": "not-an-id"}, "not a valid image id"),
        ({"file": "../escape.png"}, "'..'"),
        ({"file": "/etc/passwd.png"}, "relative"),
        ({"file": "C:/x.png"}, "relative"),
        ({"file": "a\\b.png"}, "backslash"),
        ({"file": "a\x00b.png"}, "control character"),
        ({"file": "a/../../b.png"}, "'..'"),
        ({"$set": "x"}, "must not start with '$'"),
    ],
)
async def test_bad_upload_input_is_a_400_and_writes_nothing(
    client: httpx.AsyncClient, app: FastAPI, fields: dict[str, str], message: str
) -> None:
    response = await upload(client, make_image(), fields=fields)

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert await stored_keys(app) == set()
    assert (await count_documents(app)) == 0


async def test_upload_without_file_part_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/images", data={"label": "cat"})
    assert response.status_code == 400
    assert "'image'" in response.json()["detail"]


async def test_upload_with_image_as_plain_field_is_a_400(client: httpx.AsyncClient, app: FastAPI) -> None:
    response = await client.post("/images", data={"image": "not a file"})
    assert response.status_code == 400
    assert response.json()["detail"] == "The field 'image' must be a file, not text."
    assert await count_documents(app) == 0


async def test_upload_with_its_path_sent_as_a_file_is_a_400(client: httpx.AsyncClient, app: FastAPI) -> None:
    files = {"image": ("a.png", make_image(), "image/png"), "file": ("path.txt", b"a.png", "text/plain")}
    response = await client.post("/images", files=files)
    assert response.status_code == 400
    assert response.json()["detail"] == "The field 'file' must be text, not a file."
    assert await stored_keys(app) == set()


async def test_upload_with_empty_path_and_time_fields_takes_the_defaults(client: httpx.AsyncClient) -> None:
    # Browsers send a form's unfilled fields empty.
    response = await upload(client, make_image(), filename="named.png", fields={"file": "", "time": "", "_id": ""})
    assert response.status_code == 200
    assert response.json()["file"] == "named.png"


async def test_upload_that_is_not_multipart_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/images", json={"image": "x"})
    assert response.status_code == 400
    assert response.json()["detail"] == "The field 'image' is required."


async def test_upload_with_a_broken_multipart_body_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/images", content=b"--b\r\nno headers end", headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    "content",
    [b"hello, I am text", b"%PDF-1.4\n%...", b"", b"\x89PNG\r\n\x1a\n truncated"],
    ids=["text", "pdf", "empty", "broken-png"],
)
async def test_files_that_are_not_images_get_415_whatever_their_name(
    client: httpx.AsyncClient, app: FastAPI, content: bytes
) -> None:
    response = await upload(client, content, filename="looks-like.jpg")

    assert response.status_code == 415
    assert "not a supported image" in response.json()["detail"]
    assert await stored_keys(app) == set()


async def test_image_named_like_text_is_accepted(client: httpx.AsyncClient) -> None:
    response = await upload(client, make_image(format="GIF"), filename="notes.txt")
    assert response.status_code == 200
    assert response.json()["contentType"] == "image/gif"


async def test_upload_over_the_maximum_size_is_a_413(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(max_upload_bytes=10_000)
    big = make_image(400, 400, format="BMP")  # about 480 KB
    assert len(big) > 10_000
    async with LifespanClient(create_app(settings)) as (client, app):
        response = await upload(client, big)
        assert response.status_code == 413
        assert "maximum upload size" in response.json()["detail"]
        assert response.json()["code"] == "too_large"
        assert await stored_keys(app) == set()
        assert (await upload(client, make_image())).status_code == 200


async def test_upload_over_maximum_without_content_length_is_a_413(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(max_upload_bytes=10_000)
    big = make_image(400, 400, format="BMP")
    request = httpx.Request("POST", "http://testserver/images", files={"image": ("big.bmp", big)})
    body = request.read()

    async def chunks():  # a streamed body: no Content-Length, the limit must hold anyway
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    headers = {"Content-Type": request.headers["Content-Type"]}
    async with LifespanClient(create_app(settings)) as (client, app):
        response = await client.post("/images", content=chunks(), headers=headers)
        assert response.status_code == 413
        assert await stored_keys(app) == set()


# -- read ----------------------------------------------------------------------------------


async def test_get_returns_the_document(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image(), fields={"label": "cat"})).json()
    response = await client.get(f"/images/{created['_id']}")
    assert response.status_code == 200
    assert response.json() == created


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
@pytest.mark.parametrize(
    ("image_id", "status"),
    [("123", 400), ("zzzzzzzzzzzzzzzzzzzzzzzz", 400), ("6385c4b3a1e2f0c9d8b7a615", 404)],
    ids=["short", "not-hex", "unknown"],
)
async def test_bad_or_unknown_ids(client: httpx.AsyncClient, method: str, image_id: str, status: int) -> None:
    body = {"json": {"a": 1}} if method in ("PATCH", "PUT") else {}
    response = await client.request(method, f"/images/{image_id}", **body)
    assert response.status_code == status
    assert response.json()["detail"].endswith(".")


@pytest.mark.parametrize("suffix", ["image", "file"])
async def test_download_streams_identical_bytes_with_type_and_name(
    client: httpx.AsyncClient, cat_jpeg: bytes, suffix: str
) -> None:
    created = (await upload(client, cat_jpeg, fields={"file": "pets/cat.jpg"})).json()
    response = await client.get(f"/images/{created['_id']}/{suffix}")
    assert response.status_code == 200
    assert response.content == cat_jpeg
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["content-length"] == str(len(cat_jpeg))
    assert response.headers["content-disposition"] == 'inline; filename="cat.jpg"'


async def test_download_name_survives_non_ascii(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image(), fields={"file": "fotos/Käse überall.png"})).json()
    response = await client.get(f"/images/{created['_id']}/image")
    disposition = response.headers["content-disposition"]
    assert "filename*=UTF-8''K%C3%A4se%20%C3%BCberall.png" in disposition


@pytest.mark.parametrize("image_id", ["nope", "6385c4b3a1e2f0c9d8b7a615"])
async def test_download_of_bad_or_unknown_id(client: httpx.AsyncClient, image_id: str) -> None:
    response = await client.get(f"/images/{image_id}/image")
    assert response.status_code in (400, 404)


async def test_download_of_image_whose_file_vanished_is_a_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    created = (await upload(client, make_image(), fields={"file": "gone.png"})).json()
    await app.state.services.storage.delete("gone.png")
    response = await client.get(f"/images/{created['_id']}/image")
    assert response.status_code == 404
    assert "missing from storage" in response.json()["detail"]


# -- change --------------------------------------------------------------------------------


async def test_patch_merges_into_data_and_unsets(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image(), fields={"data": '{"a": 1, "b": {"c": 2}, "d": 3}'})).json()
    response = await client.patch(f"/images/{created['_id']}", json={"a": 10, "e": {"f": [1]}, "$unset": {"d": ""}})

    assert response.status_code == 200
    assert response.json()["data"] == {"a": 10, "b": {"c": 2}, "e": {"f": [1]}}
    assert (await client.get(f"/images/{created['_id']}")).json()["data"] == response.json()["data"]


async def test_empty_patch_changes_nothing(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image(), fields={"a": "1"})).json()
    response = await client.patch(f"/images/{created['_id']}", json={})
    assert response.json() == created


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{broken", "invalid"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b'{"$set": {"a": 1}}', "only $unset"),
        (b'{"a.b": 1}', "must not contain '.'"),
        (b'{"a": {"$gt": 1}}', "must not start with '$'"),
        (b'{"a": 1, "$unset": {"a": ""}}', "both set and unset"),
        (b'{"$unset": 5}', "$unset must be"),
    ],
)
async def test_bad_patch_is_a_400_and_changes_nothing(client: httpx.AsyncClient, body: bytes, message: str) -> None:
    created = (await upload(client, make_image(), fields={"a": "1"})).json()
    response = await client.patch(
        f"/images/{created['_id']}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert (await client.get(f"/images/{created['_id']}")).json() == created


async def test_put_replaces_data_and_returns_the_document(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image(), fields={"a": "1", "b": "2"})).json()
    response = await client.put(f"/images/{created['_id']}", json={"c": {"d": True}})

    assert response.status_code == 200
    assert response.json() == {**created, "data": {"c": {"d": True}}}


@pytest.mark.parametrize("body", [b"[]", b"5", b"null", b"{oops", b'{"$x": 1}'])
async def test_bad_put_is_a_400(client: httpx.AsyncClient, body: bytes) -> None:
    created = (await upload(client, make_image(), fields={"a": "1"})).json()
    response = await client.put(f"/images/{created['_id']}", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert (await client.get(f"/images/{created['_id']}")).json() == created


# -- delete --------------------------------------------------------------------------------


async def test_delete_removes_document_and_file(client: httpx.AsyncClient, app: FastAPI) -> None:
    created = (await upload(client, make_image(), fields={"file": "deep/er/x.png"})).json()
    kept = (await upload(client, make_image(), fields={"file": "deep/y.png"})).json()

    response = await client.delete(f"/images/{created['_id']}")

    assert response.status_code == 200
    assert response.json() == {"_id": created["_id"]}
    assert (await client.get(f"/images/{created['_id']}")).status_code == 404
    assert await stored_keys(app) == {"deep/y.png"}
    assert (await client.get(f"/images/{kept['_id']}/image")).status_code == 200
    assert (await client.delete(f"/images/{created['_id']}")).status_code == 404


# -- protocol ------------------------------------------------------------------------------


async def test_cors_preflight_with_odd_request_header_succeeds(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/images/6385c4b3a1e2f0c9d8b7a615",
        headers={
            "Origin": "http://gui.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "access-control-allow-origin,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "PATCH" in response.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/images", "DELETE, GET, OPTIONS, PATCH, POST"),
        ("/images/6385c4b3a1e2f0c9d8b7a615", "DELETE, GET, OPTIONS, PATCH, PUT"),
        ("/snapshots", "GET, OPTIONS, POST"),
        ("/views/cats", "DELETE, GET, OPTIONS, PUT"),
    ],
)
async def test_allow_lists_every_method_of_a_path(client: httpx.AsyncClient, path: str, methods: str) -> None:
    options = await client.options(path)
    assert (options.status_code, options.headers["allow"]) == (204, methods)
    refused = await client.request("TRACE", path)
    assert (refused.status_code, refused.headers["allow"]) == (405, methods)
    assert (await client.options("/nowhere")).status_code == 404


async def test_cors_exposes_content_disposition(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image())).json()
    response = await client.get(f"/images/{created['_id']}/image", headers={"Origin": "http://gui.example"})
    assert "content-disposition" in response.headers["access-control-expose-headers"].lower()


async def test_info_reports_connections_without_secrets(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await client.get("/")
    info = response.json()
    assert info["mongodb"]["connected"] is True
    assert info["storage"]["kind"] == settings.storage_kind
    assert info["storage"]["reachable"] is True
    if settings.s3_secret_access_key:
        assert settings.s3_secret_access_key.get_secret_value() not in response.text


async def test_openapi_lists_every_route_with_parameters(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths["/images/{image_id}"]) == {"get", "patch", "put", "delete"}
    assert "post" in paths["/images"]
    assert "/images/{image_id}/image" in paths and "/images/{image_id}/file" in paths
    upload_body = paths["/images"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    form = upload_body["properties"]
    assert {"image", "file", "time", "_id", "data", "json"} <= set(form)
    assert form["image"] == {"type": "string", "format": "binary", "description": "the image file"}
    assert upload_body["required"] == ["image"]
    assert (await client.get("/docs")).status_code == 200


def test_time_format_matches_legacy() -> None:
    from app.models import format_time

    assert format_time(datetime(2022, 11, 2, 23, 41, 55, 711999, tzinfo=UTC)) == "2022-11-02T23:41:55.711Z"


# -- metadata that differs only in its keys (FerretDB 1.24 ignores such a $set) -----------


async def test_put_replaces_data_that_differs_only_in_keys(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image(), fields={"data": '{"x": 1, "nested": {"a": 1}}'})).json()
    response = await client.put(f"/images/{created['_id']}", json={"y": 1, "nested": {"b": 1}})
    assert response.json()["data"] == {"y": 1, "nested": {"b": 1}}
    assert (await client.get(f"/images/{created['_id']}")).json()["data"] == {"y": 1, "nested": {"b": 1}}


async def test_patch_replaces_nested_value_that_differs_only_in_keys(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image(), fields={"data": '{"k": {"x": 1}, "l": [{"a": 1}]}'})).json()
    await client.patch(f"/images/{created['_id']}", json={"k": {"y": 1}, "l": [{"b": 1}]})
    assert (await client.get(f"/images/{created['_id']}")).json()["data"] == {"k": {"y": 1}, "l": [{"b": 1}]}


async def test_patch_keeps_types_apart(client: httpx.AsyncClient) -> None:
    created = (await upload(client, make_image(), fields={"data": '{"a": 1}'})).json()
    assert (await client.patch(f"/images/{created['_id']}", json={"a": True})).json()["data"] == {"a": True}
    assert (await client.patch(f"/images/{created['_id']}", json={"a": 1.5})).json()["data"] == {"a": 1.5}


async def test_reupload_replaces_data_that_differs_only_in_keys(client: httpx.AsyncClient) -> None:
    first = (await upload(client, make_image(), fields={"file": "k.png", "x": "1"})).json()
    again = (await upload(client, make_image(), fields={"file": "k.png", "y": "1"})).json()
    assert again["data"] == {"y": "1"}
    assert (await client.get(f"/images/{first['_id']}")).json()["data"] == {"y": "1"}
