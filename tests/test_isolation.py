"""With IMAGE_SCOPE=user, user A can never see, count, change, download, export or delete
user B's images, by any REST route or GraphQL field, filters included. Local and S3 storage."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.utils.commands import recorded
from tests.utils.graphql import error_codes
from tests.utils.images import make_image
from tests.utils.oidc import AUDIENCE, ISSUER, JwksServer, bearer, claims_for, jwks_server, rsa_key, sign
from tests.utils.service import lifespan

KEY = rsa_key("isolation")
SNEAKY_FILTERS = [
    {"userId": "bob"},
    {"$or": [{"userId": "bob"}]},
    {"$or": [{"userId": "bob"}, {"userId": "alice"}]},
    {"userId": {"$ne": "alice"}},
    {"$nor": [{"userId": "alice"}]},
    {"userId": {"$exists": True}},
]


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server([KEY]) as server:
        yield server


@pytest.fixture
async def http(make_settings: Callable[..., Settings], jwks: JwksServer) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(oidc_jwks_uri=jwks.uri, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, image_scope="user")
    app = create_app(settings)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
    ):
        yield client


class User:
    def __init__(self, http: httpx.AsyncClient, name: str) -> None:
        self.http, self.name = http, name
        self.headers = bearer(sign(claims_for(name), KEY))

    async def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return await self.http.request(method, url, headers=self.headers | (headers or {}), **kwargs)

    async def upload(self, file: str, content: bytes, data: dict[str, Any]) -> dict[str, Any]:
        response = await self.request(
            "POST", "/images", files={"image": (file, content)}, data={"file": file, "data": json.dumps(data)}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.request("POST", "/graphql", json={"query": query, "variables": variables or {}})
        body: dict[str, Any] = response.json()
        return body

    async def everything(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.request("GET", "/images?sort=file")).json()["items"]
        return items


BOB_PNG = make_image(color=(0, 0, 255))
ALICE_PNG = make_image(color=(255, 0, 0))


@pytest.fixture
async def users(http: httpx.AsyncClient) -> tuple[User, User, dict[str, dict[str, Any]]]:
    alice, bob = User(http, "alice"), User(http, "bob")
    bobs = {
        "shared": await bob.upload("shared.png", BOB_PNG, {"label": "bob-secret", "bobonly": 1}),
        "private": await bob.upload("folder/private.png", BOB_PNG, {"label": "bob-secret"}),
    }
    await alice.upload("shared.png", ALICE_PNG, {"label": "alice"})
    await alice.upload("mine.png", ALICE_PNG, {"label": "alice"})
    return alice, bob, bobs


async def test_alice_never_touches_bobs_images(users: tuple[User, User, dict[str, dict[str, Any]]]) -> None:
    alice, bob, bobs = users
    before = await bob.everything()
    bob_id = bobs["private"]["_id"]

    # Single-image routes: another user's image answers exactly like a missing one.
    missing = "6385c4b3a1e2f0c9d8b7a615"
    for method, suffix, body in [
        ("GET", "", None),
        ("GET", "/image", None),
        ("GET", "/file", None),
        ("GET", "/image?redirect=true", None),  # no presigned URL before the scope is checked
        ("GET", "/image?width=64", None),  # no thumbnail either
        ("PATCH", "", {"label": "hacked"}),
        ("PUT", "", {"label": "hacked"}),
        ("DELETE", "", None),
    ]:
        theirs = await alice.request(method, f"/images/{bob_id}{suffix}", json=body)
        nobodys = await alice.request(method, f"/images/{missing}{suffix}", json=body)
        assert theirs.status_code == nobodys.status_code == 404, (method, suffix)
        assert theirs.json()["detail"].replace(bob_id, "X") == nobodys.json()["detail"].replace(missing, "X")

    for method, suffix in [("HEAD", "/image"), ("HEAD", "/file")]:
        assert (await alice.request(method, f"/images/{bob_id}{suffix}")).status_code == 404
    ranged = await alice.request("GET", f"/images/{bob_id}/image", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 404
    # Identical files: each sees the groups among their own images only.
    alices_ids = {item["_id"] for item in await alice.everything()}
    assert [set(group["ids"]) for group in (await alice.request("GET", "/duplicates")).json()] == [alices_ids]
    bobs_ids = {bobs["shared"]["_id"], bob_id}
    # A cursor is its user's: another user's is refused, and could only narrow their own query anyway.
    alices_page = (await alice.request("GET", "/images", params={"sort": "file", "limit": 1})).json()
    assert alices_page["nextCursor"] is not None
    taken = await bob.request("GET", "/images", params={"sort": "file", "limit": 1, "after": alices_page["nextCursor"]})
    assert (taken.status_code, taken.json()["detail"]) == (400, "The cursor was given to another user.")
    # Views are their owner's: another user neither sees nor uses them, and may have one of the same name.
    assert (await alice.request("PUT", "/views/mine", json={"filter": {"data.label": "alice"}})).status_code == 200
    assert (await bob.request("GET", "/views")).json() == []
    assert (await bob.request("GET", "/images", params={"view": "mine"})).status_code == 404
    assert (await bob.request("PUT", "/views/mine", json={"filter": {}})).status_code == 200
    assert (await bob.request("GET", "/images", params={"view": "mine"})).json()["total"] == 2  # only bob's
    assert (await alice.request("GET", "/views/mine")).json()["filter"] == {"data.label": "alice"}
    # Snapshots freeze the caller's images only, and are the caller's.
    frozen = await alice.request("POST", "/snapshots", json={"name": "all"})
    assert frozen.json()["count"] == len(alices_ids)
    assert (await bob.request("GET", "/snapshots/all/images")).status_code == 404
    assert (await bob.request("GET", "/snapshots")).json() == []
    assert (await bob.request("POST", "/snapshots", json={"name": "all"})).json()["count"] == 2
    # Counts: each sees only their own images, and only themselves as an owner.
    owners = (await alice.request("GET", "/facets/owner")).json()
    assert [owner["count"] for owner in owners] == [len(alices_ids)]
    assert owners[0]["value"] != bobs["shared"]["userId"]
    types = (await alice.request("GET", "/facets/contentType")).json()
    assert sum(facet["count"] for facet in types) == len(alices_ids)
    assert [set(group["ids"]) for group in (await bob.request("GET", "/duplicates")).json()] == [bobs_ids]
    twin = await alice.request(
        "POST",
        "/images",
        params={"refuseDuplicates": "true"},
        files={"image": ("b.png", BOB_PNG)},
        data={"file": "b.png"},
    )
    assert twin.status_code == 200  # a file identical to Bob's is no duplicate of Alice's images
    await alice.request("DELETE", f"/images/{twin.json()['_id']}")

    # Collection routes, plain and with filters that try to reach Bob.
    assert {item["file"] for item in await alice.everything()} == {"alice/shared.png", "alice/mine.png"}
    for sneaky in SNEAKY_FILTERS:
        query = f"filter={json.dumps(sneaky)}"
        listed = (await alice.request("GET", f"/images?{query}")).json()
        assert all(item["userId"] == "alice" for item in listed["items"]), sneaky
        assert listed["total"] == len(listed["items"]) <= 2
        patched = (await alice.request("PATCH", f"/images?{query}", json={"label": "hacked"})).json()
        assert patched["matchedCount"] <= 2
        assert "bobonly" not in (await alice.request("GET", f"/fields?{query}")).json()
        assert "bob-secret" not in (await alice.request("GET", f"/fields/label?{query}")).json()
        exported = zipfile.ZipFile(io.BytesIO((await alice.request("GET", f"/export?{query}")).content))
        documents = json.loads(exported.read("mongodb_data.json"))
        assert all(document["userId"] == "alice" for document in documents)
    assert (await alice.request("GET", "/images?userId=bob")).json()["total"] == 0  # data.userId, not the owner
    assert (await alice.request("GET", f"/images?ids={bob_id}")).json()["total"] == 0

    # Alice's upload to the same path is her own image; Bob's stays.
    shared_for_alice = [item for item in await alice.everything() if item["file"] == "alice/shared.png"][0]
    assert shared_for_alice["_id"] != bobs["shared"]["_id"]
    assert (await alice.request("GET", f"/images/{shared_for_alice['_id']}/image")).content == ALICE_PNG

    # Re-using Bob's id in an upload or an import never reaches his image.
    conflict = await alice.request(
        "POST", "/images", files={"image": ("x.png", ALICE_PNG)}, data={"file": "x.png", "_id": bob_id}
    )
    assert conflict.status_code == 409
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zip_file:
        zip_file.writestr("folder/private.png", ALICE_PNG)
        zip_file.writestr("mongodb_data.json", json.dumps([{"_id": bob_id, "file": "folder/private.png", "data": {}}]))
    imported = await alice.request("POST", "/import", files={"archive": ("a.zip", archive.getvalue())})
    assert imported.json()["imported"] == 1
    assert (await alice.request("GET", f"/images/{bob_id}")).status_code == 404

    # Bulk deletes, even "everything", stay inside Alice's images.
    for sneaky in SNEAKY_FILTERS:
        await alice.request("DELETE", f"/images?filter={json.dumps(sneaky)}")
    await alice.request("DELETE", "/images")
    assert await alice.everything() == []

    # GraphQL, every field.
    gone = await alice.graphql("query($id: ID!) { image(id: $id) { id } }", {"id": bob_id})
    assert error_codes(gone) == ["NOT_FOUND"]
    for sneaky in SNEAKY_FILTERS:
        where = {"f": {"where": sneaky}}
        page = await alice.graphql(
            "query($f: ImageFilter) { images(filter: $f) { total items { id } } fields(filter: $f)"
            ' fieldValues(field: "label", filter: $f) }',
            where,
        )
        assert page["data"] == {"images": {"total": 0, "items": []}, "fields": [], "fieldValues": []}, sneaky
        changed = await alice.graphql(
            'mutation($f: ImageFilter!) { updateImages(filter: $f, set: {label: "hacked"}) { matchedCount } }', where
        )
        assert changed["data"]["updateImages"]["matchedCount"] == 0
        deleted = await alice.graphql("mutation($f: ImageFilter) { deleteImages(filter: $f) { deletedCount } }", where)
        assert deleted["data"]["deleteImages"]["deletedCount"] == 0
    by_ids = await alice.graphql("query($ids: [ID!]) { images(filter: {ids: $ids}) { total } }", {"ids": [bob_id]})
    assert by_ids["data"]["images"]["total"] == 0
    for mutation in [
        'mutation($id: ID!) { updateImage(id: $id, set: {label: "hacked"}) { id } }',
        'mutation($id: ID!) { replaceImageData(id: $id, data: {label: "hacked"}) { id } }',
        "mutation($id: ID!) { deleteImage(id: $id) }",
    ]:
        assert error_codes(await alice.graphql(mutation, {"id": bob_id})) == ["NOT_FOUND"], mutation
    everything = await alice.graphql("mutation { deleteImages(all: true) { deletedCount } }")
    assert everything["data"]["deleteImages"]["deletedCount"] == 0

    # Bob's images are exactly as they were, bytes included.
    assert await bob.everything() == before
    for image in before:
        assert (await bob.request("GET", f"/images/{image['_id']}/image")).content == BOB_PNG
    assert (await bob.request("GET", "/fields")).json() == ["bobonly", "label"]


async def test_files_live_under_each_owners_folder(
    users: tuple[User, User, dict[str, dict[str, Any]]], http: httpx.AsyncClient
) -> None:
    storage = http._transport.app.state.services.storage  # type: ignore[attr-defined]
    for key in ("bob/shared.png", "bob/folder/private.png", "alice/shared.png", "alice/mine.png"):
        assert await storage.exists(key), key
    assert not await storage.exists("shared.png")


async def test_one_image_is_read_by_its_id_alone_and_the_owner_checked_after(
    users: tuple[User, User, dict[str, dict[str, Any]]],
) -> None:
    # FerretDB pushes a filter down to its storage only when it is a lone `_id` equality; with
    # the owner beside it, it reads the whole collection for every single-image request.
    alice, _, bobs = users
    mine = next(item for item in await alice.everything() if item["file"] == "alice/mine.png")
    with recorded() as sent:
        answers = [
            await alice.request("GET", f"/images/{mine['_id']}"),
            await alice.request("PATCH", f"/images/{mine['_id']}", json={"seen": True}),
            await alice.request("GET", f"/images/{bobs['private']['_id']}"),
        ]
    assert [answer.status_code for answer in answers] == [200, 200, 404]
    filters = [command.filter for command in sent if command.name == "find" and command.collection == "images"]
    assert filters
    assert all(set(condition) == {"_id"} for condition in filters), filters


async def test_a_content_address_opens_only_for_its_owner(users: tuple[User, User, dict[str, dict[str, Any]]]) -> None:
    # The content address names the bytes, not who may read them: bob's token on alice's
    # address (file or thumbnail, even with alice's signed link beside it) finds no image.
    alice, bob, _ = users
    mine = next(item for item in await alice.everything() if item["file"] == "alice/mine.png")
    signed = mine["url"]  # under OIDC, signed for alice
    path = urlsplit(signed).path
    assert path == f"/images/{mine['_id']}/content/{mine['checksum']}-{mine['size']}"
    missing = "6385c4b3a1e2f0c9d8b7a615"
    for suffix in ("", "?width=16"):
        own = await alice.request("GET", path + suffix)
        assert own.status_code == 200, (suffix, own.text)
        theirs = await bob.request("GET", path + suffix)
        nobodys = await bob.request("GET", path.replace(mine["_id"], missing) + suffix)
        assert theirs.status_code == nobodys.status_code == 404, suffix
        assert theirs.json()["detail"].replace(mine["_id"], "X") == nobodys.json()["detail"].replace(missing, "X")
        assert (await bob.request("HEAD", path + suffix)).status_code == 404
    # A token decides over a signature: bob holding alice's link is still bob.
    assert (await alice.http.get(signed)).status_code == 200
    assert (await bob.request("GET", signed)).status_code == 404
    assert (await bob.request("GET", signed + "&width=16")).status_code == 404


async def test_a_content_address_of_kept_bytes_opens_only_for_the_snapshots_owner(
    users: tuple[User, User, dict[str, dict[str, Any]]],
) -> None:
    alice, bob, _ = users
    mine = next(item for item in await alice.everything() if item["file"] == "alice/mine.png")
    path = f"/images/{mine['_id']}/content/{mine['checksum']}-{mine['size']}"
    assert (await alice.request("POST", "/snapshots", json={"name": "v1"})).status_code == 201
    await alice.upload("mine.png", make_image(color=(1, 2, 3)), {"label": "alice"})  # replaced: kept for v1
    kept = await alice.request("GET", path)
    assert (kept.status_code, kept.content) == (200, ALICE_PNG)
    theirs = await bob.request("GET", path)
    missing = "6385c4b3a1e2f0c9d8b7a615"
    nobodys = await bob.request("GET", path.replace(mine["_id"], missing))
    assert theirs.status_code == nobodys.status_code == 404
    assert theirs.json()["detail"].replace(mine["_id"], "X") == nobodys.json()["detail"].replace(missing, "X")
    # bob's own snapshot holds his images only.
    assert (await bob.request("POST", "/snapshots", json={"name": "v1"})).status_code == 201
    assert (await bob.request("GET", path)).status_code == 404
