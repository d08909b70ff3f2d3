"""Optimistic locking: the ETag of an image is its revision, and changes may name the one they read."""

from __future__ import annotations

import httpx

from tests.utils.graphql import gql, gql_data
from tests.utils.images import make_image
from tests.utils.service import upload


async def test_etag_and_if_match_on_the_single_image_routes(client: httpx.AsyncClient) -> None:
    created = await upload(client, make_image(), fields={"file": "x.png", "label": "cat"})
    first = created.headers["etag"]
    image_id = created.json()["_id"]
    assert (await client.get(f"/images/{image_id}")).headers["etag"] == first

    changed = await client.patch(f"/images/{image_id}", json={"a": 1}, headers={"If-Match": first})
    assert changed.status_code == 200
    second = changed.headers["etag"]
    assert second != first

    # The copy read first is stale now: every change naming it is refused, and changes nothing.
    for method, body in [("PATCH", {"b": 2}), ("PUT", {"c": 3}), ("DELETE", None)]:
        stale = await client.request(method, f"/images/{image_id}", json=body, headers={"If-Match": first})
        assert stale.status_code == 412, method
        assert stale.json()["detail"].endswith("read it again before changing it.")
    assert (await client.get(f"/images/{image_id}")).json()["data"] == {"label": "cat", "a": 1}

    for header in [f'"999", {second}', "*"]:
        response = await client.patch(f"/images/{image_id}", json={"d": header}, headers={"If-Match": header})
        assert response.status_code == 200, header
        second = response.headers["etag"]
    assert (await client.patch(f"/images/{image_id}", json={}, headers={"If-Match": f"W/{second}"})).status_code == 412
    for malformed in ["3", "", '"3" "4"', 'W/"3', "abc"]:
        response = await client.patch(f"/images/{image_id}", json={}, headers={"If-Match": malformed})
        assert response.status_code == 400, malformed
        assert "If-Match" in response.json()["detail"]
    assert (await client.put(f"/images/{image_id}", json={"z": 1}, headers={"If-Match": second})).status_code == 200
    assert (
        await client.patch("/images/6385c4b3a1e2f0c9d8b7a615", json={}, headers={"If-Match": second})
    ).status_code == 404
    deleted = await client.delete(
        f"/images/{image_id}", headers={"If-Match": (await client.get(f"/images/{image_id}")).headers["etag"]}
    )
    assert deleted.status_code == 200


async def test_a_reupload_moves_the_revision_on(client: httpx.AsyncClient) -> None:
    first = await upload(client, make_image(), fields={"file": "x.png"})
    again = await upload(client, make_image(9, 9), fields={"file": "x.png"})
    assert again.json()["_id"] == first.json()["_id"]
    assert again.headers["etag"] != first.headers["etag"]
    stale = await client.patch(
        f"/images/{first.json()['_id']}", json={"a": 1}, headers={"If-Match": first.headers["etag"]}
    )
    assert stale.status_code == 412


async def test_graphql_revision_argument(client: httpx.AsyncClient) -> None:
    image_id = (await upload(client, make_image(), fields={"file": "x.png"})).json()["_id"]
    read = await gql_data(client, "query($id: ID!) { image(id: $id) { revision } }", {"id": image_id})
    revision = read["image"]["revision"]
    update = "mutation($id: ID!, $r: Int) { updateImage(id: $id, set: {a: 1}, revision: $r) { revision data } }"
    changed = await gql_data(client, update, {"id": image_id, "r": revision})
    assert changed["updateImage"] == {"revision": revision + 1, "data": {"a": 1}}
    for mutation in [
        update,
        "mutation($id: ID!, $r: Int) { replaceImageData(id: $id, data: {b: 1}, revision: $r) { id } }",
        "mutation($id: ID!, $r: Int) { deleteImage(id: $id, revision: $r) }",
    ]:
        stale = await gql(client, mutation, {"id": image_id, "r": revision})
        assert [error["extensions"]["code"] for error in stale["errors"]] == ["STALE_REVISION"], mutation
    assert (await client.get(f"/images/{image_id}")).json()["data"] == {"a": 1}
    gone = await gql_data(
        client,
        "mutation($id: ID!, $r: Int) { deleteImage(id: $id, revision: $r) }",
        {"id": image_id, "r": revision + 1},
    )
    assert gone["deleteImage"] == image_id
