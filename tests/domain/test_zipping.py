"""The zip every archive is written as: any reader takes it, and its memory does not grow with
its member count (zipfile's own bookkeeping is about 1 KB a member)."""

from __future__ import annotations

import tracemalloc
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from app.domain.archives.zipping import FILE_MODE, Member, zipped
from app.metrics import Metrics

MEMBERS = 30_000


async def one_chunk(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def members(count: int) -> AsyncIterator[Member]:
    moment = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
    for number in range(count):
        yield f"images/train/part-{number % 7}/image-{number:06d}.png", moment, FILE_MODE, one_chunk(b"%d" % number)


async def test_a_zip_of_many_members_is_whole_and_its_memory_does_not_grow_with_them(tmp_path: Path) -> None:
    archive = tmp_path / "archive.zip"
    tracemalloc.start()
    try:
        with archive.open("wb") as out:  # on disk: what is received is not the writer's memory
            async for chunk in zipped(members(MEMBERS), Metrics()):
                out.write(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    with zipfile.ZipFile(archive) as read:
        assert read.testzip() is None
        infos = read.infolist()
        assert len(infos) == MEMBERS
        assert infos[12_345].filename == "images/train/part-4/image-012345.png"
        assert read.read(infos[12_345]) == b"12345"
        assert infos[0].date_time == (2026, 12, 5, 10, 30, 0)
        assert infos[0].external_attr >> 16 == FILE_MODE
    # Each member's bookkeeping kept in memory would be some 30 MB here.
    assert peak < 8 * 1024 * 1024, f"the writer held {peak / 1e6:.1f} MB"
