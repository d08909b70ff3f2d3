"""`imagestore push`: a folder's images onto the service, in parallel, resumable.

Resuming costs one `POST /images/check` per 1,000 files: a path not stored is sent (read once,
hashed as it goes, the hash compared with the checksum the service took); a path stored with
another size is sent; one stored with the same size is hashed here and sent only if it differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from imagestore.calls import CHECK_BATCH, StoredFile
from imagestore.client import AsyncClient
from imagestore.errors import ImageStoreError, sentence
from imagestore.files import HashingReader, LocalImage, checksum, scan, sidecar_metadata
from imagestore.retries import retried


@dataclass(kw_only=True)
class PushReport:
    found: int = 0  # images in the folder
    found_bytes: int = 0
    skipped: int = 0  # files that are not images
    stored_already: int = 0
    sent: int = 0
    sent_bytes: int = 0
    would_send: list[tuple[str, str]] = field(default_factory=list)  # a dry run's (path, why)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, sentence)


class Progress:
    """What push and pull tell as they go; the command draws it (cli.py), tests ignore it."""

    def start(self, files: int, size: int) -> None: ...
    def bytes(self, amount: int) -> None: ...
    def done(self, size: int, *, moved: bool) -> None: ...


@dataclass(frozen=True, kw_only=True)
class PushOptions:
    prefix: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    jobs: int = 8
    dry_run: bool = False
    refuse_duplicates: bool = False


async def push(client: AsyncClient, root: Path, options: PushOptions, progress: Progress | None = None) -> PushReport:
    progress = progress or Progress()
    # Not tried again: a wrong URL is said at once; later, a service restarting is waited for.
    await client.info()
    found = await asyncio.to_thread(scan, root, options.prefix)
    report = PushReport(found=len(found.images), skipped=found.skipped)
    report.found_bytes = sum(image.size for image in found.images)
    progress.start(report.found, report.found_bytes)
    queue: asyncio.Queue[LocalImage | None] = asyncio.Queue(maxsize=options.jobs * 4)

    async def plan() -> None:
        try:
            for start in range(0, len(found.images), CHECK_BATCH):
                batch = found.images[start : start + CHECK_BATCH]
                asked = [(image.file, None) for image in batch]
                answers = await retried(partial(client.check, asked))
                for image, stored in zip(batch, answers, strict=True):
                    why = await _reason_to_send(image, stored)
                    if why is None:
                        report.stored_already += 1
                        progress.done(image.size, moved=False)
                    elif options.dry_run:
                        report.would_send.append((image.file, why))
                        progress.done(image.size, moved=False)
                    else:
                        await queue.put(image)
        finally:
            for _ in range(options.jobs):
                await queue.put(None)

    async def send() -> None:
        while (image := await queue.get()) is not None:
            try:
                await _send_one(client, image, options, progress)
            except (ImageStoreError, ValueError, OSError, httpx.HTTPError) as error:
                report.failures.append((image.file, sentence(error)))
                progress.done(image.size, moved=False)
            else:
                report.sent += 1
                report.sent_bytes += image.size
                progress.done(image.size, moved=True)

    workers = [asyncio.create_task(send()) for _ in range(options.jobs)]
    try:
        await plan()
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
    return report


async def _reason_to_send(image: LocalImage, stored: StoredFile) -> str | None:
    """Why the image must be sent, or None if the service holds these very bytes at its path."""
    if not stored.stored:
        return "new"
    if stored.size != image.size or stored.checksum is None:
        return "changed"
    if await asyncio.to_thread(checksum, image.path) != stored.checksum:
        return "changed"
    return None


async def _send_one(client: AsyncClient, image: LocalImage, options: PushOptions, progress: Progress) -> None:
    metadata = {**options.meta, **sidecar_metadata(image)}

    async def attempt() -> None:
        with image.path.open("rb") as source:
            reader = HashingReader(source, progress.bytes)
            try:
                sent = await client.upload(
                    reader,  # type: ignore[arg-type]  # a file object as httpx reads one
                    image.file,
                    metadata,
                    filename=image.path.name,
                    refuse_duplicates=options.refuse_duplicates,
                )
            except ImageStoreError:
                progress.bytes(-reader.read_bytes)
                raise
        if sent.checksum is not None and sent.checksum != reader.digest.hexdigest():
            raise ValueError("the service stored other bytes than were read here (did the file change while sent?)")

    await retried(attempt)
