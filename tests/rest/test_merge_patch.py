"""Deep metadata changes: JSON Merge Patch (RFC 7396) on PATCH and in GraphQL, beside the
legacy's one-level merge, which plain `application/json` keeps."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.utils.graphql import error_codes, gql, gql_data
from tests.utils.images import make_image
from tests.utils.service import upload

MERGE_PATCH = "application/merge-patch+json"
DATA = {"label": "cat", "camera": {"make": "Acme", "iso": 100, "lens": {"mm": 50}}, "tags": ["a", "b"], "draft": True}


async def stored_image(client: httpx.AsyncClient, file: str = "a.png", data: dict[str, Any] = DATA) -> dict[str, Any]:
    response = await upload(client, make_image(), fields={"file": file, "data": json.dumps(data)})
    assert response.status_code == 200, response.text
    image: dict[str, Any] = response.json()
    return image


async def merge_patch(
    client: httpx.AsyncClient, url: str, body: Any, *, content_type: str = MERGE_PATCH, **headers: str
) -> httpx.Response:
    return await client.patch(url, content=json.dumps(body), headers={"Content-Type": content_type, **headers})


async def test_a_merge_patch_changes_one_nested_key_and_keeps_its_siblings(client: httpx.AsyncClient) -> None:
    image = await stored_image(client)
    before = (await client.get(f"/images/{image['_id']}")).headers["ETag"]
    patched = await merge_patch(
        client,
        f"/images/{image['_id']}",
        {"camera": {"iso": 200, "lens": {"mm": None}}, "tags": ["c"], "draft": None, "boxes": [{"label": "cat"}]},
    )
    assert patched.status_code == 200, patched.text
    expected = {
        "label": "cat",
        "camera": {"make": "Acme", "iso": 200, "lens": {}},
        "tags": ["c"],
        "boxes": [{"label": "cat"}],
    }
    assert patched.json()["data"] == expected
    assert (await client.get(f"/images/{image['_id']}")).json()["data"] == expected
    assert patched.headers["ETag"] != before  # a new revision
    # The media type may carry parameters.
    again = await merge_patch(
        client, f"/images/{image['_id']}", {"camera": {"make": None}}, content_type=f"{MERGE_PATCH}; charset=utf-8"
    )
    assert again.json()["data"]["camera"] == {"iso": 200, "lens": {}}


async def test_plain_json_keeps_the_legacy_one_level_merge(client: httpx.AsyncClient) -> None:
    image = await stored_image(client)
    patched = await client.patch(f"/images/{image['_id']}", json={"camera": {"iso": 200}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["camera"] == {"iso": 200}  # `make` and `lens` dropped, as the legacy did


async def test_a_merge_patch_names_the_revision_it_read(client: httpx.AsyncClient) -> None:
    image = await stored_image(client)
    etag = (await client.get(f"/images/{image['_id']}")).headers["ETag"]
    first = await merge_patch(client, f"/images/{image['_id']}", {"camera": {"iso": 400}}, **{"If-Match": etag})
    assert first.status_code == 200, first.text
    stale = await merge_patch(client, f"/images/{image['_id']}", {"camera": {"iso": 800}}, **{"If-Match": etag})
    assert stale.status_code == 412
    assert (await client.get(f"/images/{image['_id']}")).json()["data"]["camera"]["iso"] == 400


async def test_a_bad_merge_patch_is_a_400_that_changes_nothing(client: httpx.AsyncClient) -> None:
    image = await stored_image(client)
    for body in ([{"label": "dog"}], "dog", {"$unset": {"label": ""}}, {"camera": {"a.b": 1}}, {"camera": {"$set": 1}}):
        response = await merge_patch(client, f"/images/{image['_id']}", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["detail"].endswith("."), response.json()
    assert (await client.get(f"/images/{image['_id']}")).json()["data"] == DATA
    bulk = await merge_patch(client, "/images?label=cat", [1, 2])
    assert bulk.status_code == 400
    assert (await client.get(f"/images/{image['_id']}")).json()["data"] == DATA


async def test_a_bulk_merge_patch_changes_every_match_deeply(client: httpx.AsyncClient) -> None:
    cat = await stored_image(client, "cat.png")
    dog = await stored_image(client, "dog.png", {**DATA, "label": "dog"})
    response = await merge_patch(client, "/images?label=cat", {"camera": {"iso": 1600, "make": None}})
    assert response.status_code == 200, response.text
    assert response.json()["matchedCount"] == 1 and response.json()["modifiedCount"] == 1
    assert (await client.get(f"/images/{cat['_id']}")).json()["data"]["camera"] == {"iso": 1600, "lens": {"mm": 50}}
    assert (await client.get(f"/images/{dog['_id']}")).json()["data"] == {**DATA, "label": "dog"}


async def test_graphql_applies_merge_patches_too(client: httpx.AsyncClient) -> None:
    image = await stored_image(client)
    one = await gql_data(
        client,
        "mutation($id: ID!, $patch: JSON!) { patchImage(id: $id, patch: $patch) { data } }",
        {"id": image["_id"], "patch": {"camera": {"lens": None}, "label": None}},
    )
    assert one["patchImage"]["data"] == {"camera": {"make": "Acme", "iso": 100}, "tags": ["a", "b"], "draft": True}
    many = await gql_data(
        client,
        "mutation($patch: JSON!) { patchImages(filter: {ids: []}, patch: $patch) { matchedCount } }",
        {"patch": {"draft": None}},
    )
    assert many["patchImages"]["matchedCount"] == 0
    every = await gql_data(
        client,
        'mutation($patch: JSON!) { patchImages(filter: {file: {eq: "a.png"}}, patch: $patch) { modifiedCount } }',
        {"patch": {"draft": None}},
    )
    assert every["patchImages"]["modifiedCount"] == 1
    assert (await client.get(f"/images/{image['_id']}")).json()["data"] == {
        "camera": {"make": "Acme", "iso": 100},
        "tags": ["a", "b"],
    }
    refused = await gql(
        client,
        "mutation($id: ID!, $patch: JSON!) { patchImage(id: $id, patch: $patch) { data } }",
        {"id": image["_id"], "patch": ["not", "an", "object"]},
    )
    assert error_codes(refused) == ["BAD_USER_INPUT"]
