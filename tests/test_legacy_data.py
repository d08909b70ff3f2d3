"""A legacy deployment's database and files, used in place, in both scope modes.

Seeded as the legacy Node service (v1.20.2) leaves them, behind the service's back: documents
as mongoose writes them (`{_id, file, userId, data, time, __v: 0}`), mongoose's unique index on
`file` alone, and the bytes at `<uploads>/<file>` or under the key `<file>` in the bucket. With
`IMAGE_SCOPE=user` the legacy's `file` is `<userId>/<name>`. The service is then started on
them, on local and S3 storage, and every route is tried on the legacy's images.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI
from pymongo import AsyncMongoClient, monitoring

from app.config import Settings
from app.main import create_app
from app.models import LEGACY_FIELDS
from app.store.engines.mongodb import MongoDB
from app.store.images import IMAGE_INDEXES
from tests.utils.images import make_image
from tests.utils.oidc import AUDIENCE, ISSUER, JwksServer, bearer, claims_for, jwks_server, rsa_key, sign
from tests.utils.s3 import S3Server
from tests.utils.service import LifespanClient
from tests.utils.stored import stored_keys
from tests.utils.waiting import eventually

KEY = rsa_key("legacy")
DOG_PNG = make_image(40, 30, color=(10, 200, 10))
BOB_PNG = make_image(16, 16, color=(0, 0, 255))
NEW_PNG = make_image(8, 8, color=(1, 2, 3))


@dataclass(frozen=True)
class LegacyImage:
    _id: ObjectId
    file: str
    user_id: str | None
    data: dict[str, Any]
    time: datetime
    content: bytes

    def document(self) -> dict[str, Any]:
        """As mongoose wrote it."""
        return {
            "_id": self._id,
            "file": self.file,
            "userId": self.user_id,
            "data": self.data,
            "time": self.time,
            "__v": 0,
        }


def legacy_images(mode: str, cat_jpeg: bytes) -> list[LegacyImage]:
    """Alice's images (in per-user mode under `alice/`, as the legacy wrote them) and Bob's."""
    owner, prefix = ("alice", "alice/") if mode == "user" else (None, "")
    bob, bob_prefix = ("bob", "bob/") if mode == "user" else (None, "")
    return [
        LegacyImage(
            ObjectId("63630043e69a96978b2bd2dc"),
            f"{prefix}cat.jpg",
            owner,
            {"label": "cat", "camera": {"iso": 200}, "part_number": "200-004"},
            datetime(2022, 11, 2, 23, 41, 55, 711000, tzinfo=UTC),
            cat_jpeg,
        ),
        LegacyImage(
            ObjectId("63630043e69a96978b2bd2dd"),
            f"{prefix}dog.png",
            owner,
            {"label": "dog", "checked": False},
            datetime(2022, 11, 3, 8, 0, 0, tzinfo=UTC),
            DOG_PNG,
        ),
        LegacyImage(
            ObjectId("63630043e69a96978b2bd2de"),
            f"{bob_prefix}bob.png",
            bob,
            {"label": "bird"},
            datetime(2022, 11, 4, 8, 0, 0, tzinfo=UTC),
            BOB_PNG,
        ),
    ]


@pytest.fixture(params=["shared", "user"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server([KEY]) as server:
        yield server


@pytest.fixture
def legacy_settings(make_settings: Callable[..., Settings], jwks: JwksServer, mode: str) -> Settings:
    if mode == "shared":
        return make_settings()
    return make_settings(oidc_jwks_uri=jwks.uri, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, image_scope="user")


async def seed_legacy(settings: Settings, images: list[LegacyImage], s3: S3Server | None) -> None:
    """Documents, index and files exactly where the legacy service puts them."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        collection = client[settings.mongodb_database]["images"]
        await collection.create_index("file", unique=True, background=True)  # mongoose's `unique: true`
        await collection.insert_many([image.document() for image in images])
    finally:
        await client.close()
    for image in images:
        if s3 is None:
            path = Path(settings.uploads_directory) / image.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image.content)
        else:
            minio = s3.client()
            assert settings.s3_bucket
            if not minio.bucket_exists(settings.s3_bucket):
                minio.make_bucket(settings.s3_bucket)
            minio.put_object(settings.s3_bucket, image.file, io.BytesIO(image.content), len(image.content))


async def raw_documents(settings: Settings) -> dict[ObjectId, dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    try:
        found = client[settings.mongodb_database]["images"].find({})
        return {document["_id"]: document async for document in found}
    finally:
        await client.close()


async def stored_bytes(app: FastAPI, key: str) -> bytes | None:
    """What the storage holds at `key`, read behind the service's back (None: nothing)."""
    storage = app.state.services.storage
    if storage.kind == "local":
        path = storage.root / key
        return path.read_bytes() if path.is_file() else None
    if key not in await stored_keys(app):
        return None
    response = storage._client.get_object(storage.bucket, key)
    try:
        content: bytes = response.read()
        return content
    finally:
        response.close()
        response.release_conn()


@dataclass
class Legacy:
    """The service started on a legacy deployment's data, and a caller (Alice in per-user mode)."""

    client: httpx.AsyncClient
    app: FastAPI
    settings: Settings
    images: list[LegacyImage]
    headers: dict[str, str]
    mode: str

    @property
    def alices(self) -> list[LegacyImage]:
        return self.images[:2]

    @property
    def cat(self) -> LegacyImage:
        return self.images[0]

    @property
    def dog(self) -> LegacyImage:
        return self.images[1]

    @property
    def bob(self) -> LegacyImage:
        return self.images[2]

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, url, headers=self.headers, **kwargs)


@pytest.fixture
async def legacy(
    legacy_settings: Settings, mode: str, storage_kind: str, cat_jpeg: bytes, request: pytest.FixtureRequest
) -> AsyncIterator[Legacy]:
    images = legacy_images(mode, cat_jpeg)
    s3: S3Server | None = request.getfixturevalue("s3_server") if storage_kind == "s3" else None
    await seed_legacy(legacy_settings, images, s3)
    headers = bearer(sign(claims_for("alice"), KEY)) if mode == "user" else {}
    async with LifespanClient(create_app(legacy_settings)) as (client, app):
        yield Legacy(client, app, legacy_settings, images, headers, mode)


def rendered(image: LegacyImage) -> dict[str, Any]:
    expected: dict[str, Any] = {
        "_id": str(image._id),
        "file": image.file,
        "time": image.time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{image.time.microsecond // 1000:03d}Z",
        "data": image.data,
    }
    if image.user_id is not None:
        expected["userId"] = image.user_id
    return expected


LEGACY_KEYS = {"_id", "file", "userId", "data", "time", "__v"}


def assert_legacy_shape(document: dict[str, Any]) -> None:
    """What the legacy service's mongoose model reads: its fields, with its types."""
    assert set(document) >= LEGACY_KEYS, document
    assert isinstance(document["_id"], ObjectId)
    assert isinstance(document["file"], str)
    assert document["userId"] is None or isinstance(document["userId"], str)
    assert isinstance(document["data"], dict)
    assert isinstance(document["time"], datetime)
    assert document["__v"] == LEGACY_FIELDS["__v"]


# -- reading -------------------------------------------------------------------------------


async def test_start_up_keeps_the_legacy_index_and_is_ready(legacy: Legacy) -> None:
    assert (await legacy.client.get("/readyz")).status_code == 200
    indexes = await legacy.app.state.services.store.database.client[legacy.settings.mongodb_database][
        "images"
    ].index_information()
    on_file = [info for info in indexes.values() if [name for name, _ in info["key"]] == ["file"]]
    assert len(on_file) == 1 and on_file[0].get("unique") is True  # the legacy's, not a second one


async def test_legacy_images_are_listed_and_filtered(legacy: Legacy) -> None:
    listed = (await legacy.request("GET", "/images?sort=time")).json()
    expected = legacy.alices if legacy.mode == "user" else legacy.images
    assert listed["total"] == len(expected)
    for item, image in zip(listed["items"], expected, strict=True):
        assert {key: item.get(key) for key in rendered(image)} == rendered(image)
    cat_id = str(legacy.cat._id)
    for query in [
        "label=cat",
        f"file={legacy.cat.file}",
        "file=CAT.j&regex=true",
        "from=2022-11-02T23:41:55.711Z&to=2022-11-02T23:41:55.711Z",
        "filter=" + json.dumps({"data.camera.iso": {"$gte": 100}}),
        f"ids={cat_id}",
    ]:
        found = (await legacy.request("GET", f"/images?{query}")).json()
        assert [item["_id"] for item in found["items"]] == [cat_id], query
    assert (await legacy.request("GET", f"/images/{cat_id}")).json()["file"] == legacy.cat.file


async def test_legacy_files_download_byte_identical(legacy: Legacy) -> None:
    for image in legacy.alices:
        for route in ("image", "file"):
            response = await legacy.request("GET", f"/images/{image._id}/{route}")
            assert response.status_code == 200, response.text
            assert response.content == image.content
    cat = await legacy.request("GET", f"/images/{legacy.cat._id}/image")
    assert cat.headers["content-type"] == "image/jpeg"
    assert 'filename="cat.jpg"' in cat.headers["content-disposition"]


async def test_legacy_images_get_their_facts_and_fields_in_the_background(legacy: Legacy) -> None:
    async def facts_known() -> bool:
        cat = (await legacy.request("GET", f"/images/{legacy.cat._id}")).json()
        return "size" in cat

    await eventually(facts_known, seconds=20)
    cat = (await legacy.request("GET", f"/images/{legacy.cat._id}")).json()
    assert (cat["size"], cat["contentType"], cat["width"], cat["height"]) == (
        len(legacy.cat.content),
        "image/jpeg",
        4000,
        3000,
    )
    assert (cat["exif"]["make"], cat["exif"]["takenAt"]) == ("ASUS", "2019-12-24T15:55:20.000Z")
    dog = (await legacy.request("GET", f"/images/{legacy.dog._id}")).json()
    assert (dog["size"], dog["contentType"], dog["width"], dog["height"]) == (len(DOG_PNG), "image/png", 40, 30)
    assert "exif" not in dog

    async def fields_known() -> bool:
        return bool((await legacy.request("GET", "/fields")).json())

    await eventually(fields_known, seconds=20)
    assert (await legacy.request("GET", "/fields")).json() == ["camera", "checked", "label", "part_number"]
    labels = (await legacy.request("GET", "/fields/label")).json()
    assert sorted(labels) == (["cat", "dog"] if legacy.mode == "user" else ["bird", "cat", "dog"])
    assert (await legacy.request("GET", "/fields/camera.iso")).json() == [200]
    # The background work changed no legacy field.
    for document in (await raw_documents(legacy.settings)).values():
        assert_legacy_shape(document)


async def test_legacy_images_get_their_checksums_in_the_background(legacy: Legacy) -> None:
    async def checksums_known() -> bool:
        return all("checksum" in document for document in (await raw_documents(legacy.settings)).values())

    await eventually(checksums_known, seconds=20)
    documents = await raw_documents(legacy.settings)
    assert {image._id: documents[image._id]["checksum"] for image in legacy.images} == {
        image._id: hashlib.sha256(image.content).hexdigest() for image in legacy.images
    }
    shown = (await legacy.request("GET", f"/images/{legacy.cat._id}")).json()
    assert shown["checksum"] == hashlib.sha256(legacy.cat.content).hexdigest()
    for document in documents.values():
        assert_legacy_shape(document)


async def test_graphql_shows_the_legacy_file_and_url(legacy: Legacy) -> None:
    response = await legacy.request(
        "POST", "/graphql", json={"query": '{ images(sort: [{field: "time"}]) { items { id file url } } }'}
    )
    item = response.json()["data"]["images"]["items"][0]
    assert (item["id"], item["file"]) == (str(legacy.cat._id), legacy.cat.file)
    # The file route until the background has learned the checksum, then the content address;
    # with OIDC signed, so a browser opens it without a header.
    url = urlsplit(item["url"])
    checksum = hashlib.sha256(legacy.cat.content).hexdigest()
    assert url.path in (
        f"/images/{legacy.cat._id}/file",
        f"/images/{legacy.cat._id}/content/{checksum}-{len(legacy.cat.content)}",
    )
    assert ("signature=" in url.query) == (legacy.mode == "user")
    opened = await legacy.client.get(item["url"])  # no header
    assert opened.status_code == 200 and opened.content == legacy.cat.content


# -- writing -------------------------------------------------------------------------------


async def test_legacy_images_are_patched_and_replaced_in_place(legacy: Legacy) -> None:
    cat_id = str(legacy.cat._id)
    patched = await legacy.request("PATCH", f"/images/{cat_id}", json={"checked": True, "$unset": {"part_number": ""}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"] == {"label": "cat", "camera": {"iso": 200}, "checked": True}
    put = await legacy.request("PUT", f"/images/{legacy.dog._id}", json={"label": "wolf"})
    assert put.json()["data"] == {"label": "wolf"}
    bulk = await legacy.request("PATCH", "/images?label=cat", json={"reviewed": "yes"})
    assert bulk.json()["matchedCount"] == 1

    documents = await raw_documents(legacy.settings)
    for document in documents.values():
        assert_legacy_shape(document)
    assert documents[legacy.cat._id]["data"]["reviewed"] == "yes"
    assert documents[legacy.cat._id]["time"] == legacy.cat.time
    assert await stored_bytes(legacy.app, legacy.cat.file) == legacy.cat.content  # bytes untouched


async def test_reupload_to_a_legacy_path_keeps_its_id(legacy: Legacy) -> None:
    # The path as the caller saw it (`alice/dog.png` in per-user mode) and, in per-user mode,
    # without the owner's folder: both name the legacy image.
    paths = [legacy.dog.file] + (["dog.png"] if legacy.mode == "user" else [])
    for number, path in enumerate(paths):
        content = make_image(12 + number, 9, color=(number, 99, 9))
        response = await legacy.request(
            "POST", "/images", files={"image": ("upload.png", content)}, data={"file": path, "label": "again"}
        )
        assert response.status_code == 200, response.text
        assert (response.json()["_id"], response.json()["file"]) == (str(legacy.dog._id), legacy.dog.file)
        assert await stored_bytes(legacy.app, legacy.dog.file) == content  # where the legacy service reads it
        assert (await legacy.request("GET", f"/images/{legacy.dog._id}/image")).content == content
    assert (await legacy.request("GET", "/images")).json()["total"] == (2 if legacy.mode == "user" else 3)
    assert_legacy_shape((await raw_documents(legacy.settings))[legacy.dog._id])


async def test_legacy_images_are_deleted_with_their_files(legacy: Legacy) -> None:
    assert (await legacy.request("DELETE", f"/images/{legacy.cat._id}")).status_code == 200
    assert await stored_bytes(legacy.app, legacy.cat.file) is None
    assert (await legacy.request("DELETE", "/images?label=dog")).json()["deletedCount"] == 1
    assert await stored_bytes(legacy.app, legacy.dog.file) is None
    remaining = await raw_documents(legacy.settings)
    assert set(remaining) == {legacy.bob._id}
    assert await stored_bytes(legacy.app, legacy.bob.file) == legacy.bob.content  # nobody else's image went


async def test_legacy_images_export_and_import_at_their_paths(legacy: Legacy) -> None:
    exported = await legacy.request("GET", "/export")
    assert exported.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(exported.content))
    for image in legacy.alices:
        assert archive.read(image.file) == image.content
    documents = {document["file"]: document for document in json.loads(archive.read("mongodb_data.json"))}
    assert documents[legacy.cat.file]["_id"] == str(legacy.cat._id)

    # Restoring the archive over the same data names the same images: nothing new, ids kept.
    imported = await legacy.request("POST", "/import", files={"archive": ("export.zip", exported.content)})
    assert imported.status_code == 200, imported.text
    assert imported.json()["skipped"] == []
    after = (await legacy.request("GET", "/images?sort=time")).json()
    assert after["total"] == (2 if legacy.mode == "user" else 3)
    assert [(item["_id"], item["file"]) for item in after["items"]][:2] == [
        (str(image._id), image.file) for image in legacy.alices
    ]
    for document in (await raw_documents(legacy.settings)).values():
        assert_legacy_shape(document)


async def test_new_images_are_laid_out_as_the_legacy_service_reads_them(legacy: Legacy) -> None:
    response = await legacy.request(
        "POST", "/images", files={"image": ("new.png", NEW_PNG)}, data={"file": "folder/new.png", "k": "v"}
    )
    assert response.status_code == 200, response.text
    created = response.json()
    expected_file = "alice/folder/new.png" if legacy.mode == "user" else "folder/new.png"
    assert created["file"] == expected_file
    assert await stored_bytes(legacy.app, expected_file) == NEW_PNG  # `<uploads>/<file>`: the legacy's lookup
    document = (await raw_documents(legacy.settings))[ObjectId(created["_id"])]
    assert_legacy_shape(document)
    assert document["userId"] == ("alice" if legacy.mode == "user" else None)


# -- per-user layout -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["user"], indirect=True)
async def test_paths_are_always_placed_under_the_callers_folder(legacy: Legacy) -> None:
    for path, file in [
        ("bob/x.png", "alice/bob/x.png"),  # Bob's folder name is only a folder of Alice's
        ("x.png", "alice/x.png"),
        ("alice/x.png", "alice/x.png"),  # the same image again
        ("./alice//y.png", "alice/y.png"),
    ]:
        response = await legacy.request("POST", "/images", files={"image": ("u.png", NEW_PNG)}, data={"file": path})
        assert response.json()["file"] == file, path
        assert await stored_bytes(legacy.app, file) == NEW_PNG
    assert await stored_bytes(legacy.app, legacy.bob.file) == legacy.bob.content
    files = sorted(item["file"] for item in (await legacy.request("GET", "/images")).json()["items"])
    assert files == ["alice/bob/x.png", "alice/cat.jpg", "alice/dog.png", "alice/x.png", "alice/y.png"]

    # An owner id that is not one plain path segment gets a folder that cannot collide or escape.
    odd = bearer(sign(claims_for("a/b"), KEY))
    response = await legacy.client.post(
        "/images", files={"image": ("u.png", NEW_PNG)}, data={"file": "c.png"}, headers=odd
    )
    assert response.json()["file"] == "a%2Fb/c.png"
    assert await stored_bytes(legacy.app, "a%2Fb/c.png") == NEW_PNG


@pytest.mark.parametrize("mode", ["user"], indirect=True)
async def test_a_path_held_by_an_image_of_another_scope_is_a_conflict(legacy: Legacy) -> None:
    # A database that also ran without IMAGE_SCOPE can hold an ownerless image in Alice's folder.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(legacy.settings.mongodb_uri)
    try:
        await client[legacy.settings.mongodb_database]["images"].insert_one(
            {"file": "alice/ownerless.png", "userId": None, "data": {}, "time": datetime.now(UTC), "__v": 0}
        )
    finally:
        await client.close()
    response = await legacy.request(
        "POST", "/images", files={"image": ("u.png", NEW_PNG)}, data={"file": "ownerless.png"}
    )
    assert response.status_code == 409
    assert response.json()["detail"] == "'alice/ownerless.png' is taken by an image outside your scope."
    assert await stored_bytes(legacy.app, "alice/ownerless.png") is None  # nothing written


# -- older and odder legacy data -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["shared"], indirect=True)
async def test_odd_legacy_documents_never_fail(
    legacy_settings: Settings, storage_kind: str, request: pytest.FixtureRequest
) -> None:
    # Legacy versions before per-user scope wrote no `userId` at all, and `data` could be null;
    # the legacy stored any file, images or not, and a file can go missing behind its back.
    s3: S3Server | None = request.getfixturevalue("s3_server") if storage_kind == "s3" else None
    old = LegacyImage(ObjectId(), "old.png", None, {}, datetime(2021, 1, 1, tzinfo=UTC), DOG_PNG)
    notes = LegacyImage(ObjectId(), "notes.txt", None, {"kind": "notes"}, datetime(2021, 1, 2, tzinfo=UTC), b"hello")
    gone = LegacyImage(ObjectId(), "gone.jpg", None, {"kind": "gone"}, datetime(2021, 1, 3, tzinfo=UTC), b"")
    await seed_legacy(legacy_settings, [old, notes], s3)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(legacy_settings.mongodb_uri)
    try:
        collection = client[legacy_settings.mongodb_database]["images"]
        await collection.insert_one(gone.document())  # no file anywhere
        await collection.update_one({"_id": old._id}, {"$unset": {"userId": ""}, "$set": {"data": None}})
    finally:
        await client.close()
    async with LifespanClient(create_app(legacy_settings)) as (http, app):
        listed = (await http.get("/images?sort=time")).json()
        assert [item["file"] for item in listed["items"]] == ["old.png", "notes.txt", "gone.jpg"]
        assert (await http.get(f"/images/{old._id}")).json()["data"] == {}
        missing = await http.get(f"/images/{gone._id}/image")
        assert missing.status_code == 404
        assert missing.json()["detail"] == f"The file of image {gone._id} is missing from storage."
        exported = zipfile.ZipFile(io.BytesIO((await http.get("/export")).content))
        listed_in_zip = {document["file"]: document for document in json.loads(exported.read("mongodb_data.json"))}
        assert listed_in_zip["gone.jpg"]["fileMissing"] is True
        assert exported.read("notes.txt") == b"hello"

        async def facts_known() -> bool:
            return "size" in (await http.get(f"/images/{notes._id}")).json()

        await eventually(facts_known, seconds=20)
        assert (await http.get(f"/images/{notes._id}")).json()["size"] == 5  # not an image: its size only
        assert "contentType" not in (await http.get(f"/images/{notes._id}")).json()
        assert "size" not in (await http.get(f"/images/{gone._id}")).json()
        assert (await http.get(f"/images/{notes._id}/image")).content == b"hello"

        assert (await http.patch(f"/images/{old._id}", json={"k": 1})).json()["data"] == {"k": 1}
        again = await http.post("/images", files={"image": ("old.png", NEW_PNG)}, data={"file": "old.png"})
        assert again.json()["_id"] == str(old._id)
        assert await stored_bytes(app, "old.png") == NEW_PNG


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_start_up_goes_on_when_an_index_cannot_be_built(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # Two documents with one `file` (one per owner): the unique index on `file` cannot be built.
    settings = make_settings()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        await client[settings.mongodb_database]["images"].insert_many(
            [{"file": "same.png", "userId": owner, "data": {}, "time": datetime.now(UTC)} for owner in ("a", "b")]
        )
    finally:
        await client.close()
    async with LifespanClient(create_app(settings)) as (http, _):
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/images")).json()["total"] == 2
    assert any("index file_1 could not be created" in record.getMessage() for record in caplog.records)


class CreatedIndexes(monitoring.CommandListener):
    """The key patterns of the indexes a client asks the server to create."""

    def __init__(self) -> None:
        self.keys: list[list[tuple[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "createIndexes":
            self.keys += [list(index["key"].items()) for index in event.command["indexes"]]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_an_index_on_file_under_another_name_is_the_one_kept(settings: Settings) -> None:
    # MongoDB refuses a second index on the same keys under another name; never ask for one.
    created = CreatedIndexes()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, event_listeners=[created])
    try:
        collection = client[settings.mongodb_database]["images"]
        await collection.create_index("file", unique=True, name="unique_file")
        created.keys.clear()
        await MongoDB().ensure_indexes(collection, IMAGE_INDEXES)
        assert [("file", 1)] not in created.keys
        assert len(created.keys) == len(IMAGE_INDEXES) - 1  # every other index was created
        on_file = [
            name for name, info in (await collection.index_information()).items() if info["key"] == [("file", 1)]
        ]
        assert on_file == ["unique_file"]
    finally:
        await client.close()
