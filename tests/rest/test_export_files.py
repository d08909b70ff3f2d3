"""GET /export/files: the matches' files as an uncompressed tar stream, read back by Python's
tarfile in stream mode and by GNU tar, on local and S3 storage."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.utils.images import make_image

IMAGES = {
    "cats/a.png": ({"label": "cat"}, make_image(color=(1, 2, 3))),
    "cats/deep/b.png": ({"label": "cat"}, make_image(40, 30, color=(4, 5, 6))),
    "dogs/c.jpg": ({"label": "dog"}, make_image(format="JPEG", color=(7, 8, 9))),
    "naïve name with spaces.png": ({"label": "odd"}, make_image(color=(10, 11, 12))),
}


@pytest.fixture
async def uploaded(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    documents = {}
    for file, (data, content) in IMAGES.items():
        answer = await client.post(
            "/images", files={"image": (file, content)}, data={"file": file, "data": json.dumps(data)}
        )
        assert answer.status_code == 200, answer.text
        documents[file] = answer.json()
    return documents


def members(archive: bytes) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Each member's bytes and pax headers, read front to back as a stream reader does."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|") as tar:
        for member in tar:
            source = tar.extractfile(member)
            assert source is not None
            found[member.name] = (source.read(), dict(member.pax_headers))
    return found


async def test_every_match_is_a_member_with_its_id_and_checksum(
    client: httpx.AsyncClient, uploaded: dict[str, dict[str, Any]]
) -> None:
    answer = await client.get("/export/files")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-tar"
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    found = members(answer.content)
    assert set(found) == set(IMAGES)
    for file, (content, headers) in found.items():
        assert content == IMAGES[file][1]
        assert headers["IMAGESTORE.id"] == uploaded[file]["_id"]
        assert headers["IMAGESTORE.checksum"] == uploaded[file]["checksum"]

    cats = members((await client.get("/export/files", params={"label": "cat"})).content)
    assert set(cats) == {"cats/a.png", "cats/deep/b.png"}
    chosen = [uploaded["dogs/c.jpg"]["_id"], uploaded["cats/a.png"]["_id"]]
    by_ids = members((await client.get("/export/files", params={"ids": ",".join(chosen)})).content)
    assert set(by_ids) == {"dogs/c.jpg", "cats/a.png"}
    none = await client.get("/export/files", params={"label": "nobody"})
    assert none.status_code == 200 and members(none.content) == {}


async def test_gnu_tar_unpacks_it(client: httpx.AsyncClient, uploaded: dict[str, Any], tmp_path: Path) -> None:
    archive = (await client.get("/export/files")).content
    into = tmp_path / "unpacked"
    into.mkdir()
    unpacked = subprocess.run(["tar", "-x", "-C", str(into)], input=archive, capture_output=True)
    assert unpacked.returncode == 0, unpacked.stderr
    assert {path.relative_to(into).as_posix(): path.read_bytes() for path in into.rglob("*.*")} == {
        file: content for file, (_, content) in IMAGES.items()
    }


async def test_a_bad_filter_is_refused_before_the_first_byte(client: httpx.AsyncClient) -> None:
    answer = await client.get("/export/files", params={"filter": json.dumps({"$where": "1"})})
    assert answer.status_code == 400
    assert answer.json()["code"] == "bad_input"


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_an_image_whose_file_is_missing_is_left_out(
    client: httpx.AsyncClient, uploaded: dict[str, Any], settings: Settings
) -> None:
    (settings.uploads_directory / "dogs/c.jpg").unlink()
    found = members((await client.get("/export/files")).content)
    assert set(found) == set(IMAGES) - {"dogs/c.jpg"}
