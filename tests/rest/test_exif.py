"""EXIF facts read at upload into the read-only system field `exif`, shown and filterable."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image as PillowImage
from PIL.ExifTags import GPS, IFD, Base

from tests.utils.graphql import gql_data
from tests.utils.images import make_image
from tests.utils.service import upload

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)

# What the real photo's EXIF says: 46°32'16.59"N 6°40'52.95"E, 787 m, in decimal degrees.
CAT_EXIF = {
    "takenAt": "2019-12-24T15:55:20.000Z",
    "make": "ASUS",
    "model": "ASUS_I01WD",
    "orientation": 1,
    "gps": {"latitude": 46.5379417, "longitude": 6.681375, "altitude": 787.0},
}


def jpeg_with_exif() -> bytes:
    """A southern, western photo whose camera recorded its time zone; turned (orientation 6)."""
    tags = PillowImage.Exif()
    tags[Base.Make] = "Canon\x00"
    tags[Base.Orientation] = 6
    tags.get_ifd(IFD.Exif).update({Base.DateTimeOriginal: "2024:03:01 10:00:00", Base.OffsetTimeOriginal: "+02:00"})
    tags.get_ifd(IFD.GPSInfo).update(
        {
            GPS.GPSLatitudeRef: "S",
            GPS.GPSLatitude: (33.0, 51.0, 0.0),
            GPS.GPSLongitudeRef: "W",
            GPS.GPSLongitude: (70.0, 40.0, 0.0),
        }
    )
    buffer = io.BytesIO()
    PillowImage.new("RGB", (40, 30)).save(buffer, "JPEG", exif=tags)
    return buffer.getvalue()


async def test_the_photos_exif_is_a_system_field(client: httpx.AsyncClient, cat_jpeg: bytes) -> None:
    created = (await upload(client, cat_jpeg, filename="cat.jpg", fields={"label": "cat"})).json()
    assert created["exif"] == CAT_EXIF
    assert created["data"] == {"label": "cat"}  # never mixed into the user's metadata
    assert (await client.get(f"/images/{created['_id']}")).json()["exif"] == CAT_EXIF

    other = (await upload(client, jpeg_with_exif(), filename="andes.jpg")).json()
    assert other["exif"] == {
        "takenAt": "2024-03-01T08:00:00.000Z",  # 10:00 at +02:00
        "make": "Canon",
        "orientation": 6,
        "gps": {"latitude": -33.85, "longitude": -70.6666667},
    }
    plain = (await upload(client, make_image(), filename="plain.png")).json()
    assert "exif" not in plain

    query = (
        "query($id: ID!) { image(id: $id) { exif { takenAt make model orientation"
        " gps { latitude longitude altitude } } } }"
    )
    shown = (await gql_data(client, query, {"id": created["_id"]}))["image"]["exif"]
    assert shown == {
        "takenAt": "2019-12-24T15:55:20+00:00",
        "make": "ASUS",
        "model": "ASUS_I01WD",
        "orientation": 1,
        "gps": {"latitude": 46.5379417, "longitude": 6.681375, "altitude": 787.0},
    }
    assert (await gql_data(client, query, {"id": plain["_id"]}))["image"]["exif"] is None


async def test_exif_is_filterable_like_other_system_fields(client: httpx.AsyncClient, cat_jpeg: bytes) -> None:
    await upload(client, cat_jpeg, filename="cat.jpg")
    await upload(client, jpeg_with_exif(), filename="andes.jpg")
    await upload(client, make_image(), filename="plain.png")

    async def files(condition: dict[str, object]) -> list[str]:
        response = await client.get("/images", params={"filter": json.dumps(condition), "sort": "file"})
        assert response.status_code == 200, response.text
        return [item["file"] for item in response.json()["items"]]

    assert await files({"exif.make": "ASUS"}) == ["cat.jpg"]
    assert await files({"exif.takenAt": {"$gte": "2020-01-01T00:00:00Z"}}) == ["andes.jpg"]
    assert await files({"exif.gps.latitude": {"$lt": 0}}) == ["andes.jpg"]
    assert await files({"exif": {"$exists": False}}) == ["plain.png"]
    bad = await client.get("/images", params={"filter": json.dumps({"exif.takenAt": {"$gt": "yesterday"}})})
    assert bad.status_code == 400


async def test_a_replacement_takes_the_exif_of_its_new_bytes(client: httpx.AsyncClient, cat_jpeg: bytes) -> None:
    created = (await upload(client, cat_jpeg, filename="x.jpg")).json()
    replaced = (await upload(client, make_image(format="JPEG"), filename="x.jpg")).json()
    assert replaced["_id"] == created["_id"]
    assert "exif" not in replaced
    assert "exif" not in (await client.get(f"/images/{created['_id']}")).json()
