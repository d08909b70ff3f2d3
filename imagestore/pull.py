"""`imagestore pull`: a selection's files under a folder at their paths (resumable), or an
export in a training format unpacked there."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tarfile
import zipfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from imagestore.calls import Image, Page
from imagestore.client import AsyncClient, Client
from imagestore.errors import ImageStoreError, Unreachable, sentence, unreachable
from imagestore.files import checksum, inside
from imagestore.push import Progress
from imagestore.retries import retried

PART_SUFFIX = ".imagestore-part"
# What one download holds in memory before it writes to disk.
IN_MEMORY = 4 << 20
# A tar of the service's `/export/files` brings at most this many files (their ids fit in the
# 64 KB a request's target may take), or about this many bytes; two at once, so that one is
# written to disk while the other arrives.
BATCH_FILES = 2000
BATCH_BYTES = 1 << 30
ARCHIVES_AT_ONCE = 2
CHUNK = 1 << 20
# The pax header of a member of /export/files that names its image.
ID_HEADER = "IMAGESTORE.id"


@dataclass(frozen=True, kw_only=True)
class Selection:
    filter: Mapping[str, Any] | None = None
    view: str | None = None
    snapshot: str | None = None


@dataclass(kw_only=True)
class PullReport:
    found: int = 0
    present_already: int = 0
    received: int = 0
    received_bytes: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


async def pull(
    client: AsyncClient, dest: Path, selection: Selection, *, jobs: int = 8, progress: Progress | None = None
) -> PullReport:
    """Each selected image's file at `dest/<file>`: one already there with the image's checksum
    is kept; the others are fetched, written beside their place and moved onto it once their
    checksum is checked. A filter's or a view's images come as `/export/files` tar streams of up
    to BATCH_FILES (BATCH_BYTES) at a time, which the service sends faster than it answers as
    many requests; a snapshot's, from the content address of each frozen file, `jobs` at a time."""
    progress = progress or Progress()
    await client.info()  # a wrong URL said at once, not after the retries meant for a restart
    pulling = _Pull(client, dest, selection, jobs, progress)
    started = False
    batch: list[tuple[Image, Path]] = []
    batch_bytes = 0
    # Two streams at once: one's files are written to disk while the other's arrive.
    archives = asyncio.Semaphore(ARCHIVES_AT_ONCE)
    running: list[asyncio.Task[None]] = []

    async def unpacked(batch: list[tuple[Image, Path]]) -> None:
        try:
            await pulling.archive(batch)
        finally:
            archives.release()

    async def send_off(batch: list[tuple[Image, Path]]) -> None:
        await archives.acquire()
        running.append(asyncio.create_task(unpacked(batch)))

    try:
        async for page in _pages(client, selection):
            if not started:
                progress.start(page.total or 0, 0)
                started = True
            missing = await pulling.missing(page.items)
            if selection.snapshot:
                await pulling.one_by_one(missing)
                continue
            for image, target in missing:
                if batch and (len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES):
                    await send_off(batch)
                    batch, batch_bytes = [], 0
                batch.append((image, target))
                batch_bytes += image.size or 0
        if batch:
            await send_off(batch)
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        pulling.sync_client.close()
    if not started:
        progress.start(0, 0)
    return pulling.report


class _Pull:
    def __init__(self, client: AsyncClient, dest: Path, selection: Selection, jobs: int, progress: Progress) -> None:
        self.client = client
        self.sync_client = client.sync()
        self.dest = dest
        self.selection = selection
        self.slots = asyncio.Semaphore(jobs)
        self.progress = progress
        self.report = PullReport()

    def failed(self, image: Image, error: BaseException) -> None:
        self.report.failures.append((image.file, sentence(error)))
        self.progress.done(image.size or 0, moved=False)

    def received(self, size: int) -> None:
        self.report.received += 1
        self.report.received_bytes += size
        self.progress.done(size, moved=True)

    async def missing(self, images: list[Image]) -> list[tuple[Image, Path]]:
        """Those of `images` not under `dest` with their checksum, each with its place there."""
        self.report.found += len(images)

        async def judge(image: Image) -> tuple[Image, Path] | None:
            target = inside(self.dest, image.file)
            if target is None:
                self.failed(image, ValueError("its path would leave the destination folder"))
                return None
            async with self.slots:
                present = await asyncio.to_thread(_present, target, image)
            if present:
                self.report.present_already += 1
                self.progress.done(image.size or 0, moved=False)
                return None
            return image, target

        return [found for found in await asyncio.gather(*(judge(image) for image in images)) if found]

    async def one_by_one(self, batch: list[tuple[Image, Path]]) -> None:
        async def fetch(image: Image, target: Path) -> None:
            async with self.slots:
                try:
                    size = await retried(partial(_download, self.client, image, target, self.progress))
                except (ImageStoreError, ValueError, OSError, httpx.HTTPError) as error:
                    self.failed(image, error)
                else:
                    self.received(size)

        await asyncio.gather(*(fetch(image, target) for image, target in batch))

    async def archive(self, batch: list[tuple[Image, Path]]) -> None:
        """The batch's files from one `/export/files?ids=…` tar stream, each landed as it arrives;
        what a broken stream left out is asked for again."""
        wanted = {image.id: (image, target) for image, target in batch}
        outcomes: dict[str, int | BaseException] = {}

        async def attempt() -> None:
            left = {image_id: place for image_id, place in wanted.items() if image_id not in outcomes}
            await asyncio.to_thread(_receive_files, self.sync_client, left, outcomes, self.progress)

        try:
            await retried(attempt)
        except (ImageStoreError, OSError, httpx.HTTPError) as error:
            for image_id in wanted:
                outcomes.setdefault(image_id, error)
        for image_id, (image, _) in wanted.items():
            outcome = outcomes.get(image_id, _NO_FILE)
            if isinstance(outcome, BaseException):
                self.failed(image, outcome)
            else:
                self.received(outcome)


_NO_FILE = ValueError("the service has no file for it (imagestore get shows the image; fsck finds what happened)")


def _receive_files(
    client: Client,
    wanted: dict[str, tuple[Image, Path]],
    outcomes: dict[str, int | BaseException],
    progress: Progress,
) -> None:
    """Land each member of the tar of `wanted` as it arrives, its outcome in `outcomes`: its
    size, or why it could not land (another checksum than listed: replaced since)."""
    try:
        with client.files(ids=list(wanted)) as response:
            stream = io.BufferedReader(_Chunks(response.iter_bytes()), buffer_size=IN_MEMORY)
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    place = wanted.get(member.pax_headers.get(ID_HEADER, ""))
                    source = archive.extractfile(member) if member.isfile() else None
                    if place is None or source is None:
                        continue  # not asked for: nothing of ours
                    image, target = place
                    landing = _Landing(target)
                    try:
                        while chunk := source.read(CHUNK):
                            landing.add_now(chunk)
                            progress.bytes(len(chunk))
                        landing.land(image.checksum)
                    except (ValueError, OSError) as error:
                        landing.discard()
                        progress.bytes(-landing.size)
                        outcomes[image.id] = error
                    else:
                        outcomes[image.id] = landing.size
    except httpx.TransportError as error:
        raise unreachable(client.url, error) from None
    except tarfile.TarError as error:
        # Cut short (the service ended the stream, or the connection): what arrived stays landed.
        raise Unreachable(f"The files from {client.url} stopped arriving part-way ({error}).") from None


class _Chunks(io.RawIOBase):
    """An iterator of byte chunks as a file that tarfile reads from, front to back."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            self._rest = next(self._chunks, b"")
            if not self._rest:
                return 0
        size = min(len(buffer), len(self._rest))
        buffer[:size] = self._rest[:size]
        self._rest = self._rest[size:]
        return size


def _pages(client: AsyncClient, selection: Selection) -> AsyncIterator[Page]:
    if selection.snapshot:
        return client.snapshot_pages(selection.snapshot)
    return client.pages(filter=selection.filter, view=selection.view)


def _present(target: Path, image: Image) -> bool:
    if image.checksum is None or not target.is_file():
        return False
    return target.stat().st_size == image.size and checksum(target) == image.checksum


async def _download(client: AsyncClient, image: Image, target: Path, progress: Progress) -> int:
    """Land the image's bytes on `target` (see `_Landing`), from the content address of the
    bytes the listing named, which never serves others."""
    landing = _Landing(target)
    try:
        async with client.download(image) as response:
            async for chunk in response.aiter_bytes():
                await landing.add(chunk)
                progress.bytes(len(chunk))
        await asyncio.to_thread(landing.land, image.checksum)
    except BaseException:
        progress.bytes(-landing.size)
        await asyncio.to_thread(landing.discard)
        raise
    return landing.size


class _Landing:
    """A file's bytes on their way to `target`: held in memory up to IN_MEMORY, then written to
    a part file beside it, which is moved onto it once whole and checked. An interrupted pull
    leaves the old file or the new one, never half of one. The disk work happens in a thread,
    off the event loop that is receiving the other files."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.part = target.with_name(target.name + PART_SUFFIX)
        self.size = 0
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._out: BinaryIO | None = None
        self._digest = hashlib.sha256()

    async def add(self, chunk: bytes) -> None:
        if self._hold(chunk):
            await asyncio.to_thread(self._spill)

    def add_now(self, chunk: bytes) -> None:
        """`add`, in a thread that may wait on the disk."""
        if self._hold(chunk):
            self._spill()

    def _hold(self, chunk: bytes) -> bool:
        """Whether the bytes held are now enough to write out."""
        self._held.append(chunk)
        self._held_bytes += len(chunk)
        self.size += len(chunk)
        return self._held_bytes >= IN_MEMORY

    def _spill(self) -> None:
        if self._out is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._out = self.part.open("wb")
        for chunk in self._held:
            self._out.write(chunk)
            self._digest.update(chunk)
        self._held.clear()
        self._held_bytes = 0

    def land(self, checksum: str | None) -> None:
        self._spill()
        assert self._out is not None
        self._out.close()
        if checksum is not None and self._digest.hexdigest() != checksum:
            raise ValueError("the bytes received do not have the image's checksum (it was replaced meanwhile)")
        os.replace(self.part, self.target)

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
            self.part.unlink(missing_ok=True)


async def pull_format(
    client: AsyncClient, dest: Path, selection: Selection, format: str, progress: Progress | None = None
) -> int:
    """The export in `format`, streamed to a file under `dest` and unpacked there; its size."""
    progress = progress or Progress()
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / f".imagestore-export-{format}.zip{PART_SUFFIX}"
    received = 0
    progress.start(1, 0)
    try:
        async with client.export(
            filter=selection.filter, view=selection.view, snapshot=selection.snapshot, format=format
        ) as response:
            with archive.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
                    received += len(chunk)
                    progress.bytes(len(chunk))
        # zipfile drops absolute paths and `..` parts of member names: nothing lands outside dest.
        await asyncio.to_thread(_unpack, archive, dest)
    finally:
        archive.unlink(missing_ok=True)
    progress.done(received, moved=True)
    return received


def _unpack(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as unpacked:
        unpacked.extractall(dest)
