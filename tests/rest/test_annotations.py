"""The box convention: never required on writes, checked where labels and boxes are read."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.utils.images import make_image
from tests.utils.service import upload

BOX = {"label": "cat", "x": 1, "y": 2, "w": 10, "h": 5}


async def stored(client: httpx.AsyncClient, data: dict[str, Any], *, width: int = 64, height: int = 48) -> str:
    response = await upload(client, make_image(width, height), fields={"data": json.dumps(data)})
    assert response.status_code == 200, response.text  # the convention is never required
    return str(response.json()["_id"])


async def test_labels_and_boxes_are_read_as_stored(client: httpx.AsyncClient) -> None:
    # A polygon as COCO writes it, flat: FerretDB stores no array directly inside an array.
    box = {**BOX, "score": 0.9, "id": "a1", "polygon": [1, 2, 11, 2, 11, 7], "occluded": True}
    points = {**BOX, "label": "dog", "w": 0, "polygon": [{"x": 1, "y": 2}, {"x": 1, "y": 7}, {"x": 0, "y": 7}]}
    image_id = await stored(client, {"label": ["cat", "indoor"], "boxes": [box, points]})
    response = await client.get(f"/images/{image_id}/annotations")
    assert response.status_code == 200
    assert response.json() == {
        "_id": image_id,
        "width": 64,
        "height": 48,
        "labels": ["cat", "indoor"],
        "boxes": [
            {**box, "polygon": [[1, 2], [11, 2], [11, 7]]},
            {**points, "polygon": [[1, 2], [1, 7], [0, 7]]},
        ],
    }


async def test_other_fields_can_be_named(client: httpx.AsyncClient) -> None:
    image_id = await stored(client, {"class": "cat", "ann": {"objects": [BOX]}})
    response = await client.get(
        f"/images/{image_id}/annotations", params={"labelField": "class", "boxesField": "data.ann.objects"}
    )
    assert response.json()["labels"] == ["cat"]
    assert response.json()["boxes"] == [BOX]
    nothing = (await client.get(f"/images/{image_id}/annotations")).json()
    assert (nothing["labels"], nothing["boxes"]) == ([], [])


async def test_a_box_outside_the_image_is_a_400_naming_the_image_and_the_box(client: httpx.AsyncClient) -> None:
    image_id = await stored(client, {"boxes": [BOX, {**BOX, "x": 60}]})
    response = await client.get(f"/images/{image_id}/annotations")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"Image {image_id}: box 1 of data.boxes lies outside the 64x48 image: its bottom-right corner is at (70, 7)."
    )


async def test_a_box_with_a_negative_size_is_a_400(client: httpx.AsyncClient) -> None:
    image_id = await stored(client, {"boxes": [{**BOX, "w": -3}]})
    response = await client.get(f"/images/{image_id}/annotations")
    assert response.status_code == 400
    assert response.json()["detail"] == f"Image {image_id}: box 0 of data.boxes has a negative size (w -3, h 5)."


async def test_metadata_that_breaks_the_convention_is_stored_and_refused_only_where_read(
    client: httpx.AsyncClient,
) -> None:
    image_id = await stored(client, {"label": 7, "boxes": "three cats"})
    patched = await client.patch(f"/images/{image_id}", json={"boxes": [{"label": "cat", "x": "left"}]})
    assert patched.status_code == 200
    response = await client.get(f"/images/{image_id}/annotations")
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == f"Image {image_id}: data.label must be a string or a list of strings, not a number."
    )
    fixed = await client.patch(f"/images/{image_id}", json={"label": "cat"})
    assert fixed.status_code == 200
    response = await client.get(f"/images/{image_id}/annotations")
    assert response.json()["detail"] == f"Image {image_id}: box 0 of data.boxes needs x as a number, not a string."


async def test_bad_field_names_and_unknown_images(client: httpx.AsyncClient) -> None:
    image_id = await stored(client, {"boxes": [BOX]})
    bad = await client.get(f"/images/{image_id}/annotations", params={"boxesField": "$where"})
    assert bad.status_code == 400
    assert "boxesField" in bad.json()["detail"]
    missing = await client.get("/images/6385c4b3a1e2f0c9d8b7a615/annotations")
    assert missing.status_code == 404
