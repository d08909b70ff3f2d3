"""`Client` and `AsyncClient`: typed methods over the REST API, typed errors from its answers."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from imagestore import AsyncClient, Client
from imagestore.errors import Conflict, Duplicate, NotFound, StaleRevision
from tests.utils.images import make_image

RED = make_image(color=(200, 0, 0))
BLUE = make_image(color=(0, 0, 200))


def test_the_sync_client_round_trip(service_url: str, tmp_path: Path) -> None:
    with Client(service_url) as client:
        assert client.info()["storage"]
        image = client.upload(RED, "shelf/red.png", {"label": "red", "camera": {"iso": 100}})
        assert (image.file, image.data, image.size) == (
            "shelf/red.png",
            {"label": "red", "camera": {"iso": 100}},
            len(RED),
        )
        assert client.get(image.id).checksum == image.checksum
        with client.download(image) as response:
            assert b"".join(response.iter_bytes()) == RED

        changed = client.patch(image.id, {"camera": {"iso": None, "f": 2.8}}, revision=image.revision)
        assert changed.data == {"label": "red", "camera": {"f": 2.8}}
        with pytest.raises(StaleRevision) as stale:
            client.patch(image.id, {"label": "x"}, revision=image.revision)
        assert stale.value.status == 412 and stale.value.code == "stale_revision"

        with pytest.raises(Duplicate) as duplicate:
            client.upload(RED, "shelf/again.png", refuse_duplicates=True)
        assert duplicate.value.status == 409 and not duplicate.value.retryable

        blues = [client.upload(BLUE, f"blue/{index}.png", {"n": index}) for index in range(5)]
        assert [found.file for found in client.images(filter={"file": {"$regex": "^blue/"}}, sort="data.n")] == [
            blue.file for blue in blues
        ]
        checked = client.check([("shelf/red.png", changed.checksum), ("nowhere.png", None), ("blue/0.png", "0" * 64)])
        assert [(entry.stored, entry.same) for entry in checked] == [(True, True), (False, None), (True, False)]

        client.save_view("blues", filter={"file": {"$regex": "^blue/"}})
        assert [view["name"] for view in client.views()] == ["blues"]
        client.create_snapshot("v1", view="blues")
        assert [found.file for found in client.snapshot_images("v1")] == sorted(blue.file for blue in blues)
        with client.export(snapshot="v1", format="yolo") as response:
            archive = zipfile.ZipFile(io.BytesIO(response.read()))
        assert "data.yaml" in archive.namelist()

        assert client.delete(blues[0].id) == blues[0].id
        with pytest.raises(NotFound):
            client.get(blues[0].id)
        assert client.delete_many(filter={"file": {"$regex": "^blue/"}}) == 4
        client.delete_snapshot("v1")
        client.delete_view("blues")
        assert client.views() == []


async def test_the_async_client_round_trip(service_url: str) -> None:
    async with AsyncClient(service_url) as client:
        first = await client.upload(io.BytesIO(RED), "a.png", {"k": 1})
        with pytest.raises(Conflict) as taken:
            await client.upload(BLUE, "b.png", image_id=first.id)
        assert taken.value.code == "conflict"
        assert (await client.get(first.id)).data == {"k": 1}
        pages = [page async for page in client.pages()]
        assert pages[0].total == 1 and [image.id for image in pages[0].items] == [first.id]
        assert [image.file async for image in client.images()] == ["a.png"]
        assert await client.update_many({"k": 2}) == 1
        async with client.download(first.id) as response:
            assert await response.aread() == RED
        with pytest.raises(NotFound):
            await client.delete("0123456789abcdef01234567")
