"""`imagestore pull`: a selection's files under a folder at their paths (resumable), or an
export in a training format unpacked there."""

from __future__ import annotations

import asyncio
import hashlib
import os
import zipfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from imagestore.calls import Image, Page
from imagestore.client import AsyncClient
from imagestore.errors import ImageStoreError, sentence
from imagestore.files import checksum, inside
from imagestore.push import Progress
from imagestore.retries import retried

PART_SUFFIX = ".imagestore-part"


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
    is kept, any other written beside it and moved over it once its checksum is checked."""
    progress = progress or Progress()
    report = PullReport()
    queue: asyncio.Queue[Image | None] = asyncio.Queue(maxsize=jobs * 4)

    async def list_images() -> None:
        try:
            started = False
            async for page in _pages(client, selection):
                if not started:
                    progress.start(page.total or 0, 0)
                    started = True
                for image in page.items:
                    report.found += 1
                    await queue.put(image)
            if not started:
                progress.start(0, 0)
        finally:
            for _ in range(jobs):
                await queue.put(None)

    async def fetch() -> None:
        while (image := await queue.get()) is not None:
            size = image.size or 0
            try:
                target = inside(dest, image.file)
                if target is None:
                    raise ValueError("its path would leave the destination folder")
                if await asyncio.to_thread(_present, target, image):
                    report.present_already += 1
                    progress.done(size, moved=False)
                    continue
                received = await retried(partial(_download, client, image, target, progress))
            except (ImageStoreError, ValueError, OSError, httpx.HTTPError) as error:
                report.failures.append((image.file, sentence(error)))
                progress.done(size, moved=False)
            else:
                report.received += 1
                report.received_bytes += received
                progress.done(received, moved=True)

    workers = [asyncio.create_task(fetch()) for _ in range(jobs)]
    try:
        await list_images()
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
    return report


def _pages(client: AsyncClient, selection: Selection) -> AsyncIterator[Page]:
    if selection.snapshot:
        return client.snapshot_pages(selection.snapshot)
    return client.pages(filter=selection.filter, view=selection.view)


def _present(target: Path, image: Image) -> bool:
    if image.checksum is None or not target.is_file():
        return False
    return target.stat().st_size == image.size and checksum(target) == image.checksum


async def _download(client: AsyncClient, image: Image, target: Path, progress: Progress) -> int:
    """Write the image's bytes beside `target`, check them, then move them onto it: an
    interrupted pull leaves either the old file or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    digest = hashlib.sha256()
    written = 0
    try:
        async with client.download(image) as response:
            with part.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    progress.bytes(len(chunk))
        if image.checksum is not None and digest.hexdigest() != image.checksum:
            raise ValueError("the bytes received do not have the image's checksum (it was replaced meanwhile)")
        os.replace(part, target)
    except BaseException:
        progress.bytes(-written)
        part.unlink(missing_ok=True)
        raise
    return written


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
