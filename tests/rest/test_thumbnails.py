"""Resized copies of images (`?width=`, `?height=`): sizes, orientation, formats, the cache in the
storage and its life with the image, bad requests. Local and S3 storage, the real photo."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI
from PIL import Image as PillowImage
from PIL import ImageChops, ImageStat
from pymongo import AsyncMongoClient

from app.config import Settings
from app.domain.media.thumbnails import variants_folder
from app.main import create_app
from app.storage.keys import SYSTEM_FOLDER
from tests.utils.graphql import gql, gql_data
from tests.utils.images import make_image
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import stored_keys


@pytest.fixture
async def photo(client: httpx.AsyncClient, cat_jpeg: bytes) -> dict[str, Any]:
    """The real 4000x3000 photo, uploaded."""
    return (await upload(client, cat_jpeg, filename="cat.jpg", fields={"file": "cat.jpg"})).json()


def opened(content: bytes) -> PillowImage.Image:
    picture = PillowImage.open(io.BytesIO(content))
    picture.load()
    return picture


def made(app: FastAPI, outcome: str = "made") -> float:
    value = app.state.services.metrics.registry.get_sample_value("image_storage_thumbnails_total", {"outcome": outcome})
    return value or 0.0


async def copies_of(app: FastAPI, image_id: str) -> set[str]:
    return {key for key in await stored_keys(app) if key.startswith(f"{variants_folder(image_id)}/")}


def difference(one: PillowImage.Image, other: PillowImage.Image) -> float:
    """Mean absolute difference of two same-sized pictures, 0 to 255."""
    return sum(ImageStat.Stat(ImageChops.difference(one.convert("RGB"), other.convert("RGB"))).mean) / 3


async def test_a_thumbnail_of_the_photo_has_the_size_asked_for(
    client: httpx.AsyncClient, photo: dict[str, Any]
) -> None:
    url = f"/images/{photo['_id']}/image"
    for params, size in (
        ({"width": 256}, (256, 192)),
        ({"height": 100}, (133, 100)),
        ({"width": 256, "height": 256}, (256, 192)),  # inside the box, proportions kept
        ({"width": 256, "height": 256, "fit": "cover"}, (256, 256)),  # the box filled, cropped
        ({"width": 300, "height": 100, "fit": "inside"}, (133, 100)),
    ):
        response = await client.get(url, params=params)
        assert response.status_code == 200, (params, response.text)
        assert response.headers["content-type"] == "image/jpeg"
        assert opened(response.content).size == size, params
        assert int(response.headers["content-length"]) == len(response.content)


async def test_a_thumbnail_looks_like_the_photo(
    client: httpx.AsyncClient, photo: dict[str, Any], cat_jpeg: bytes
) -> None:
    thumbnail = opened((await client.get(f"/images/{photo['_id']}/image", params={"width": 256})).content)
    expected = PillowImage.open(io.BytesIO(cat_jpeg)).resize((256, 192))
    # (Another scaling of the same photo differs by about 5.5; a mirrored one by about 46.)
    assert difference(thumbnail, expected) < 10
    assert difference(thumbnail, expected.transpose(PillowImage.Transpose.FLIP_LEFT_RIGHT)) > 30


async def test_formats_and_quality(client: httpx.AsyncClient, photo: dict[str, Any]) -> None:
    url = f"/images/{photo['_id']}/image"
    for format, content_type, pillow_format in (("webp", "image/webp", "WEBP"), ("png", "image/png", "PNG")):
        response = await client.get(url, params={"width": 128, "format": format})
        assert response.headers["content-type"] == content_type
        assert (opened(response.content).format, opened(response.content).size) == (pillow_format, (128, 96))
        assert response.headers["content-disposition"] == f'inline; filename="cat.{format}"'
    small = await client.get(url, params={"width": 256, "quality": 10})
    fine = await client.get(url, params={"width": 256, "quality": 95})
    assert len(small.content) < len(fine.content) / 2
    assert small.headers["content-disposition"] == 'inline; filename="cat.jpg"'


async def test_the_exif_orientation_is_applied(client: httpx.AsyncClient, cat_jpeg: bytes) -> None:
    # The photo as a camera held upright stores it: pixels sideways, EXIF orientation 6 (turn 90° clockwise).
    sideways = PillowImage.open(io.BytesIO(cat_jpeg)).transpose(PillowImage.Transpose.ROTATE_90)
    exif = PillowImage.Exif()
    exif[0x0112] = 6
    stored = io.BytesIO()
    sideways.save(stored, format="JPEG", quality=90, exif=exif)
    created = (await upload(client, stored.getvalue(), filename="upright.jpg", fields={"file": "upright.jpg"})).json()
    assert created["exif"]["orientation"] == 6

    response = await client.get(f"/images/{created['_id']}/image", params={"width": 256})
    thumbnail = opened(response.content)
    assert thumbnail.size == (256, 192)  # shown as the photo was taken: landscape
    expected = PillowImage.open(io.BytesIO(cat_jpeg)).resize((256, 192))
    assert difference(thumbnail, expected) < 10
    assert difference(thumbnail, expected.transpose(PillowImage.Transpose.ROTATE_180)) > 30  # not turned the wrong way


async def test_an_image_is_never_enlarged(client: httpx.AsyncClient) -> None:
    small = (await upload(client, make_image(40, 30), fields={"file": "small.png"})).json()
    url = f"/images/{small['_id']}/image"
    assert opened((await client.get(url, params={"width": 256})).content).size == (40, 30)
    assert opened((await client.get(url, params={"height": 4096, "format": "png"})).content).size == (40, 30)
    # Covering a square box, it is cropped to a square as large as it allows.
    assert opened((await client.get(url, params={"width": 256, "height": 256, "fit": "cover"})).content).size == (
        30,
        30,
    )


async def test_a_transparent_image_stays_transparent_where_the_format_allows(client: httpx.AsyncClient) -> None:
    picture = PillowImage.new("RGBA", (64, 64), (255, 0, 0, 0))
    picture.paste((0, 0, 255, 255), (16, 16, 48, 48))
    stored = io.BytesIO()
    picture.save(stored, format="PNG")
    created = (await upload(client, stored.getvalue(), filename="t.png", fields={"file": "t.png"})).json()
    url = f"/images/{created['_id']}/image"
    png = opened((await client.get(url, params={"width": 32, "format": "png"})).content)
    assert png.mode == "RGBA" and png.getpixel((0, 0))[3] == 0 and png.getpixel((16, 16))[3] == 255
    jpeg = opened((await client.get(url, params={"width": 32})).content).convert("RGB")
    corner: Any = jpeg.getpixel((0, 0))
    assert min(corner) > 240  # shown over white


async def test_a_second_request_is_served_from_the_stored_copy(
    app: FastAPI, client: httpx.AsyncClient, photo: dict[str, Any]
) -> None:
    url = f"/images/{photo['_id']}/image"
    first = await client.get(url, params={"width": 256})
    assert (made(app), made(app, "cached")) == (1, 0)
    second = await client.get(url, params={"width": 256})
    assert (made(app), made(app, "cached")) == (1, 1)  # no second decode
    assert second.content == first.content
    assert first.headers["etag"] == f'"{photo["checksum"]}-w256-h0-inside-q80.jpeg"'
    assert first.headers["cache-control"] == "private, no-cache"
    revalidated = await client.get(url, params={"width": 256}, headers={"If-None-Match": first.headers["etag"]})
    assert (revalidated.status_code, revalidated.content) == (304, b"")
    # Another size is another copy; the image itself keeps its own validator.
    other = await client.get(url, params={"width": 128})
    assert other.headers["etag"] != first.headers["etag"]
    assert (await client.get(url)).headers["etag"] == f'"{photo["checksum"]}"'
    assert len(await copies_of(app, photo["_id"])) == 2
    assert made(app) == 2


async def test_concurrent_requests_for_one_copy_decode_it_once(
    app: FastAPI, client: httpx.AsyncClient, photo: dict[str, Any]
) -> None:
    url = f"/images/{photo['_id']}/image"
    answers = await asyncio.gather(*(client.get(url, params={"width": 200}) for _ in range(10)))
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.content for answer in answers}) == 1
    assert (made(app), made(app, "cached")) == (1, 9)


async def test_head_and_ranges_work_on_a_thumbnail(client: httpx.AsyncClient, photo: dict[str, Any]) -> None:
    url = f"/images/{photo['_id']}/image"
    whole = await client.get(url, params={"width": 256})
    head = await client.head(url, params={"width": 256})
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(whole.content))
    assert head.headers["etag"] == whole.headers["etag"]
    part = await client.get(url, params={"width": 256}, headers={"Range": "bytes=0-99"})
    assert (part.status_code, part.content) == (206, whole.content[:100])
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"


async def test_a_replaced_image_gets_new_thumbnails_and_loses_the_old(
    app: FastAPI, client: httpx.AsyncClient, photo: dict[str, Any]
) -> None:
    url = f"/images/{photo['_id']}/image"
    before = await client.get(url, params={"width": 256})
    old = await copies_of(app, photo["_id"])
    assert len(old) == 1
    replaced = await upload(client, make_image(300, 300, format="JPEG"), filename="cat.jpg", fields={"file": "cat.jpg"})
    assert replaced.json()["_id"] == photo["_id"]
    assert not (await copies_of(app, photo["_id"])) & old  # the old bytes' copies are gone

    after = await client.get(url, params={"width": 256}, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert opened(after.content).size == (256, 256)
    assert made(app) == 2


async def test_thumbnails_go_with_their_image(app: FastAPI, client: httpx.AsyncClient, photo: dict[str, Any]) -> None:
    other = (await upload(client, make_image(500, 400), fields={"file": "b/other.png"})).json()
    kept = (await upload(client, make_image(300, 200), fields={"file": "c/kept.png"})).json()
    for image in (photo, other, kept):
        for width in (64, 128):
            assert (await client.get(f"/images/{image['_id']}/image", params={"width": width})).status_code == 200
    assert len(await copies_of(app, photo["_id"])) == 2
    assert (await client.delete(f"/images/{photo['_id']}")).status_code == 200
    assert await copies_of(app, photo["_id"]) == set()
    # A bulk delete too: its filter's match goes with its copies, the image it does not match stays with its own.
    kept_copies = await copies_of(app, kept["_id"])
    assert len(kept_copies) == 2
    deleted = await client.request("DELETE", "/images", params={"file": "b/other.png"})
    assert deleted.json()["deletedCount"] == 1
    assert [item["_id"] for item in (await client.get("/images")).json()["items"]] == [kept["_id"]]
    assert await stored_keys(app) == {"c/kept.png", *kept_copies}


async def test_thumbnails_are_never_listed_or_exported_as_images(
    app: FastAPI, client: httpx.AsyncClient, photo: dict[str, Any]
) -> None:
    assert (await client.get(f"/images/{photo['_id']}/image", params={"width": 64})).status_code == 200
    assert len(await copies_of(app, photo["_id"])) == 1
    listed = (await client.get("/images")).json()
    assert [item["file"] for item in listed["items"]] == ["cat.jpg"]
    archive = zipfile.ZipFile(io.BytesIO((await client.get("/export")).content))
    assert not [name for name in archive.namelist() if SYSTEM_FOLDER in name or "variants" in name]
    assert (await client.get("/fields")).status_code == 200


async def test_bad_resize_requests_are_a_400(client: httpx.AsyncClient, photo: dict[str, Any]) -> None:
    url = f"/images/{photo['_id']}/image"
    for params, start in (
        ({"width": 0}, "width must be between 1 and 4096 pixels"),
        ({"width": 4097}, "width must be between 1 and 4096 pixels"),
        ({"height": -3}, "height must be between 1 and 4096 pixels"),
        ({"width": 64, "fit": "stretch"}, "fit must be one of inside, cover"),
        ({"width": 64, "format": "gif"}, "format must be one of jpeg, webp, png"),
        ({"width": 64, "quality": 0}, "quality must be between 1 and 100"),
        ({"width": 64, "quality": 101}, "quality must be between 1 and 100"),
        ({"format": "png"}, "fit, format and quality apply to a resized copy"),
        ({"width": "wide"}, "The query parameter 'width' is invalid"),
    ):
        response = await client.get(url, params=params)
        assert response.status_code == 400, params
        assert response.json()["detail"].startswith(start), (params, response.json())


async def test_an_undecodable_file_gets_a_422_and_its_download_still_works(
    client: httpx.AsyncClient, cat_jpeg: bytes
) -> None:
    broken = cat_jpeg[: len(cat_jpeg) // 3]  # its header is whole: the upload takes it
    created = (await upload(client, broken, filename="cut.jpg", fields={"file": "cut.jpg"})).json()
    response = await client.get(f"/images/{created['_id']}/image", params={"width": 64})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "The image's file cannot be decoded, so no resized copy can be made of it.",
        "code": "unprocessable",
    }
    assert (await client.get(f"/images/{created['_id']}/image")).content == broken


async def test_an_image_over_the_pixel_limit_is_refused(
    make_settings: Callable[..., Settings], cat_jpeg: bytes
) -> None:
    async with LifespanClient(create_app(make_settings(thumbnail_max_pixels=1_000_000))) as (client, _):
        png = io.BytesIO()
        PillowImage.new("RGB", (1200, 1000)).save(png, format="PNG")
        created = (await upload(client, png.getvalue(), filename="big.png", fields={"file": "big.png"})).json()
        response = await client.get(f"/images/{created['_id']}/image", params={"width": 64})
        assert response.status_code == 422
        assert "1,200,000 pixels, more than the 1,000,000" in response.json()["detail"]
        # A JPEG is decoded at a reduced scale first: the photo's 12 million pixels are fine.
        photo = (await upload(client, cat_jpeg, filename="cat.jpg", fields={"file": "cat.jpg"})).json()
        assert (await client.get(f"/images/{photo['_id']}/image", params={"width": 256})).status_code == 200


async def test_a_thumbnail_records_a_missing_checksum(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    content = make_image(300, 200, color=(9, 9, 9))
    created = (await upload(client, content, fields={"file": "old.png"})).json()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        # As the legacy service (or this one before checksums) left it.
        await mongo[settings.mongodb_database]["images"].update_one(
            {"_id": ObjectId(created["_id"])}, {"$unset": {"checksum": ""}}
        )
        url = f"/images/{created['_id']}/image"
        first = await client.get(url, params={"width": 100})
        assert first.status_code == 200
        checksum = hashlib.sha256(content).hexdigest()
        assert first.headers["etag"] == f'"{checksum}-w100-h0-inside-q80.jpeg"'
        assert (await client.get(f"/images/{created['_id']}")).json()["checksum"] == checksum
        assert (await client.get(url, params={"width": 100})).content == first.content
        assert (made(app), made(app, "cached")) == (1, 1)
    finally:
        await mongo.close()


async def test_a_missing_image_has_no_thumbnail(client: httpx.AsyncClient) -> None:
    missing = str(ObjectId())
    response = await client.get(f"/images/{missing}/image", params={"width": 64})
    assert response.status_code == 404
    assert response.json() == {"detail": f"No image with id {missing}.", "code": "not_found"}


async def test_graphql_gives_the_thumbnail_url(client: httpx.AsyncClient, photo: dict[str, Any]) -> None:
    query = "query($id: ID!, $width: Int!) { image(id: $id) { url thumbnailUrl(width: $width) } }"
    image = (await gql_data(client, query, {"id": photo["_id"], "width": 256}))["image"]
    assert image["thumbnailUrl"] == f"{image['url']}?width=256"
    assert opened((await client.get(image["thumbnailUrl"])).content).size == (256, 192)
    error = (await gql(client, query, {"id": photo["_id"], "width": 5000}))["errors"][0]
    assert error["message"] == "width must be between 1 and 4096 pixels, not 5000."
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
