"""Both backends behind one interface, against a real directory and a real MinIO."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings, load_settings
from app.errors import BadInput, NotFound, Unavailable
from app.metrics import Metrics
from app.storage import LocalStorage, Storage, build_storage
from app.storage.base import CHUNK_SIZE
from app.storage.keys import system_key
from scripts.servers import free_port


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[Storage]:
    backend = build_storage(settings, Metrics())
    await backend.start()
    yield backend
    await backend.close()


async def read_all(storage: Storage, key: str) -> bytes:
    opened = await storage.open(key)
    assert opened.size > 0
    return b"".join([chunk async for chunk in opened.chunks])


async def test_save_open_exists_delete(storage: Storage) -> None:
    await storage.save("a/b/c.bin", io.BytesIO(b"hello"), length=5, content_type="application/octet-stream")

    assert await storage.exists("a/b/c.bin")
    assert await read_all(storage, "a/b/c.bin") == b"hello"
    await storage.delete("a/b/c.bin")
    assert not await storage.exists("a/b/c.bin")
    await storage.delete("a/b/c.bin")  # deleting twice is fine


async def test_large_file_is_streamed_in_chunks(storage: Storage) -> None:
    content = os.urandom(3 * CHUNK_SIZE + 123)
    await storage.save("big.bin", io.BytesIO(content), length=len(content), content_type="application/octet-stream")

    opened = await storage.open("big.bin")
    chunks = [chunk async for chunk in opened.chunks]
    assert opened.size == len(content)

    assert b"".join(chunks) == content
    assert len(chunks) >= 3
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE


async def test_a_range_is_read_as_a_range(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    content = os.urandom(3 * CHUNK_SIZE + 123)
    await storage.save("r.bin", io.BytesIO(content), length=len(content), content_type="application/octet-stream")
    sent_ranges: list[str | None] = []
    if storage.kind == "s3":
        http = storage._client._http  # type: ignore[attr-defined]
        urlopen = http.urlopen

        def recording(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if method == "GET":
                sent_ranges.append((kwargs.get("headers") or {}).get("Range"))
            return urlopen(method, url, *args, **kwargs)

        monkeypatch.setattr(http, "urlopen", recording)

    middle = await storage.open("r.bin", start=CHUNK_SIZE + 5, end=2 * CHUNK_SIZE + 17)
    assert middle.size == len(content)  # the whole file's, the range's own length being known
    assert b"".join([chunk async for chunk in middle.chunks]) == content[CHUNK_SIZE + 5 : 2 * CHUNK_SIZE + 17]
    tail = await storage.open("r.bin", start=len(content) - 10)
    assert b"".join([chunk async for chunk in tail.chunks]) == content[-10:]
    if storage.kind == "s3":  # asked of S3 as ranges, not downloaded whole and cut
        assert sent_ranges == [f"bytes={CHUNK_SIZE + 5}-{2 * CHUNK_SIZE + 16}", f"bytes={len(content) - 10}-"]

    found = await storage.stat("r.bin")
    assert found.size == len(content)
    assert abs((datetime.now(UTC) - found.modified).total_seconds()) < 60
    with pytest.raises(NotFound):
        await storage.stat("nothing.bin")


async def test_save_replaces_existing_file(storage: Storage) -> None:
    await storage.save("x.bin", io.BytesIO(b"old content"), length=11, content_type="text/plain")
    await storage.save("x.bin", io.BytesIO(b"new"), length=3, content_type="text/plain")
    assert await read_all(storage, "x.bin") == b"new"


async def test_save_new_stores_only_where_no_file_is(storage: Storage) -> None:
    source = io.BytesIO(b"first")
    assert await storage.save_new("n/x.bin", source, length=5, content_type="text/plain")
    assert await read_all(storage, "n/x.bin") == b"first"
    assert source.tell() == 5

    later = io.BytesIO(b"second")
    assert not await storage.save_new("n/x.bin", later, length=6, content_type="text/plain")
    assert await read_all(storage, "n/x.bin") == b"first"
    assert later.tell() == 0  # not read: an upload that finds the path taken still has its bytes


async def test_move_puts_a_file_in_place_of_another(storage: Storage) -> None:
    staged = system_key("pending", "x")
    await storage.save("x.bin", io.BytesIO(b"old"), length=3, content_type="text/plain")
    await storage.save(staged, io.BytesIO(b"new content"), length=11, content_type="text/plain")
    await storage.move(staged, "x.bin")
    assert await read_all(storage, "x.bin") == b"new content"
    assert not await storage.exists(staged)
    with pytest.raises(NotFound):
        await storage.move(staged, "x.bin")  # what a crash after the move leaves: nothing to move
    assert await read_all(storage, "x.bin") == b"new content"
    listed = [item.key async for batch in storage.list_files() for item in batch]
    assert listed == ["x.bin"]  # no folder of the move left behind either


async def test_copy_puts_a_copy_in_place_of_another_file(storage: Storage) -> None:
    kept = system_key("kept", "ab", "x")
    await storage.save("x.bin", io.BytesIO(b"frozen"), length=6, content_type="text/plain")
    await storage.copy("x.bin", kept)
    await storage.save("x.bin", io.BytesIO(b"replaced"), length=8, content_type="text/plain")
    assert await read_all(storage, kept) == b"frozen"  # a hard link keeps the bytes it had
    await storage.copy("x.bin", kept)  # in place of the old copy
    assert await read_all(storage, kept) == b"replaced"
    await storage.delete("x.bin")
    assert await read_all(storage, kept) == b"replaced"
    with pytest.raises(NotFound):
        await storage.copy("x.bin", kept)
    assert await read_all(storage, kept) == b"replaced"


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_local_writes_into_a_folder_another_writer_just_removed_succeed(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move or delete removes the folder it leaves empty; another writer may have made that
    folder a moment before, to put its file in it. Each write then makes the folder again."""
    made = Path.mkdir
    racing = {"pending", "cd", "out", "mkdir"}

    def made_then_removed(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == "out" and "mkdir" in racing:
            # Inside mkdir: the folder was there (so mkdir fails), and is gone by its look.
            racing.discard("mkdir")
            raise FileExistsError(17, "File exists", str(self))
        made(self, *args, **kwargs)
        if self.name in racing:
            racing.discard(self.name)
            self.rmdir()  # what another writer's move or delete does right then, once

    monkeypatch.setattr(Path, "mkdir", made_then_removed)
    staged = system_key("pending", "1")
    await storage.save(staged, io.BytesIO(b"x"), length=1, content_type="text/plain")
    await storage.copy(staged, system_key("kept", "cd", "1"))
    await storage.move(staged, "out/1.bin")
    monkeypatch.setattr(Path, "mkdir", made)
    assert await read_all(storage, "out/1.bin") == await read_all(storage, system_key("kept", "cd", "1")) == b"x"


async def test_a_folder_lists_only_its_own_files(storage: Storage) -> None:
    for key in ("a/1.bin", "a/b/2.bin", "ab/3.bin", "a.bin"):
        await storage.save(key, io.BytesIO(b"x"), length=1, content_type="text/plain")
    listed = sorted([item.key async for batch in storage.list_files(folder="a") for item in batch])
    assert listed == ["a/1.bin", "a/b/2.bin"]  # keys from the root; not `ab/`, not `a.bin`
    assert [batch async for batch in storage.list_files(folder="nothing/here")] == []
    assert [batch async for batch in storage.list_files(folder="a.bin")] == []  # a file is no folder


async def test_move_again_after_a_crash_mid_move_finishes_it(storage: Storage) -> None:
    # On S3 a move is a copy then a delete: a crash between them leaves both files.
    staged = system_key("pending", "y")
    for key in (staged, "y.bin"):
        await storage.save(key, io.BytesIO(b"new"), length=3, content_type="text/plain")
    await storage.move(staged, "y.bin")
    assert await read_all(storage, "y.bin") == b"new"
    assert not await storage.exists(staged)


async def test_missing_file_is_not_found_before_any_byte(storage: Storage) -> None:
    with pytest.raises(NotFound):
        await storage.open("nothing/here.jpg")
    assert not await storage.exists("nothing/here.jpg")


@pytest.mark.parametrize("key", ["../outside.bin", "/abs.bin", "a\\b.bin", "a\x00b", "C:/x"])
async def test_escaping_keys_are_refused_by_every_operation(storage: Storage, key: str) -> None:
    with pytest.raises(BadInput):
        await storage.save(key, io.BytesIO(b"x"), length=1, content_type="text/plain")
    with pytest.raises(BadInput):
        await storage.open(key)
    with pytest.raises(BadInput):
        await storage.delete(key)


async def test_ping_answers_true_when_reachable(storage: Storage) -> None:
    assert await storage.ping()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_local_symlink_out_of_root_is_refused(storage: Storage, tmp_path: Path) -> None:
    assert isinstance(storage, LocalStorage)
    outside = tmp_path / "outside"
    outside.mkdir()
    (storage.root / "link").symlink_to(outside, target_is_directory=True)

    with pytest.raises(BadInput, match="outside"):
        await storage.save("link/evil.bin", io.BytesIO(b"x"), length=1, content_type="text/plain")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_local_failed_write_keeps_the_old_file(storage: Storage) -> None:
    await storage.save("keep.bin", io.BytesIO(b"old"), length=3, content_type="text/plain")

    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise OSError(5, "Input/output error")

    with pytest.raises(Unavailable):
        await storage.save("keep.bin", Broken(), length=10, content_type="text/plain")
    assert await read_all(storage, "keep.bin") == b"old"
    assert sorted(path.name for path in storage.root.iterdir()) == ["keep.bin"]  # no partial file left


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_local_delete_prunes_empty_folders(storage: Storage) -> None:
    assert isinstance(storage, LocalStorage)
    await storage.save("a/b/c.bin", io.BytesIO(b"x"), length=1, content_type="text/plain")
    await storage.save("a/keep.bin", io.BytesIO(b"x"), length=1, content_type="text/plain")
    await storage.delete("a/b/c.bin")
    assert sorted(str(p.relative_to(storage.root)) for p in storage.root.rglob("*")) == ["a", "a/keep.bin"]


async def test_unreachable_s3_is_unavailable() -> None:
    unreachable = load_settings(
        mongodb_connection_string="mongodb://127.0.0.1/unused",
        s3_bucket="images",
        s3_endpoint=f"http://127.0.0.1:{free_port()}",
        s3_connect_timeout=0.5,
    )
    backend = build_storage(unreachable, Metrics())
    with pytest.raises(Unavailable, match="unreachable"):
        await backend.start()
    with pytest.raises(Unavailable):
        await backend.save("x.bin", io.BytesIO(b"x"), length=1, content_type="text/plain")
    assert not await backend.ping()
