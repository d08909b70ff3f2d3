"""`imagestore push`: a folder's images onto the service, in parallel, resumable.

Resuming costs one `POST /images/check` per 1,000 files: a path not stored is sent (read once,
hashed as it goes, the hash compared with the checksum the service took); a path stored with
another size is sent; one stored with the same size is hashed here and sent only if it differs.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from imagestore.cache import Checksums, unchanged
from imagestore.calls import CHECK_BATCH, StoredFile
from imagestore.client import AsyncClient
from imagestore.errors import ImageStoreError, sentence
from imagestore.files import HashingReader, LocalImage, checksum, scan, sidecar_metadata
from imagestore.retries import retried

# Checks in flight at once: the service answers a batch in tens of milliseconds, and a resume
# with nothing to send is little else than these waits.
CHECKS_AHEAD = 4
NOT_UTF8 = "its name is not UTF-8, which a path on the service must be."


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
    cache: bool = True  # checksums kept between runs (cache.py)


async def push(client: AsyncClient, root: Path, options: PushOptions, progress: Progress | None = None) -> PushReport:
    scanning = asyncio.create_task(asyncio.to_thread(scan, root, options.prefix))
    try:
        # Not tried again: a wrong URL is said at once; later, a service restarting is waited for.
        await client.info()
    finally:
        found = await scanning
    pushing = _Push(client, options, progress or Progress(), Checksums() if options.cache else None)
    pushing.report.found, pushing.report.skipped = len(found.images), found.skipped
    pushing.report.failures += [
        (
            name.encode("utf-8", "backslashreplace").decode(),
            "its name is not UTF-8, which a path on the service must be.",
        )
        for name in found.unnamable
    ]
    pushing.report.found_bytes = sum(image.size for image in found.images)
    pushing.progress.start(pushing.report.found, pushing.report.found_bytes)
    workers = [asyncio.create_task(pushing.send()) for _ in range(options.jobs)]
    try:
        await pushing.plan(found.images)
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.to_thread(pushing.close)
    return pushing.report


class _Push:
    def __init__(self, client: AsyncClient, options: PushOptions, progress: Progress, cache: Checksums | None) -> None:
        self.client = client
        self.options = options
        self.progress = progress
        self.report = PushReport()
        self.cache = cache
        self.hashed: list[tuple[LocalImage, str]] = []  # to remember in the cache
        self.queue: asyncio.Queue[LocalImage | None] = asyncio.Queue(maxsize=options.jobs * 4)
        self.hashing = asyncio.Semaphore(options.jobs)

    async def plan(self, images: list[LocalImage]) -> None:
        """Queue what must be sent, asking the service about CHECK_BATCH paths at a time, up to
        CHECKS_AHEAD batches ahead of the one whose files are being judged."""
        starts = range(0, len(images), CHECK_BATCH)

        def asked(start: int) -> asyncio.Task[list[StoredFile]]:
            batch = images[start : start + CHECK_BATCH]
            return asyncio.create_task(retried(partial(self.client.check, [(image.file, None) for image in batch])))

        answering = deque(asked(start) for start in starts[:CHECKS_AHEAD])
        try:
            for number, start in enumerate(starts):
                answers = await answering.popleft()
                if number + CHECKS_AHEAD < len(starts):
                    answering.append(asked(starts[number + CHECKS_AHEAD]))
                batch = images[start : start + CHECK_BATCH]
                known = await asyncio.to_thread(self.cache.known, batch) if self.cache else {}
                reasons = await self.reasons(batch, answers, known)
                for image, why in zip(batch, reasons, strict=True):
                    if why is None:
                        self.report.stored_already += 1
                        self.progress.done(image.size, moved=False)
                    elif self.options.dry_run:
                        self.report.would_send.append((image.file, why))
                        self.progress.done(image.size, moved=False)
                    else:
                        await self.queue.put(image)
                await self.remember()
        finally:
            for pending in answering:
                pending.cancel()
            for _ in range(self.options.jobs):
                await self.queue.put(None)

    async def reasons(
        self, batch: list[LocalImage], answers: list[StoredFile], known: dict[Path, str]
    ) -> list[str | None]:
        """Why each image must be sent, or None if the service holds these very bytes at its
        path; the files whose checksum decides it and is not known are hashed, `jobs` at once."""
        reasons: list[str | None] = []
        unknown: list[tuple[int, LocalImage, StoredFile]] = []
        for image, stored in zip(batch, answers, strict=True):
            if not stored.stored:
                reasons.append("new")
            elif stored.size != image.size or stored.checksum is None:
                reasons.append("changed")
            elif (checksum_known := known.get(image.path)) is not None:
                reasons.append(None if checksum_known == stored.checksum else "changed")
            else:
                reasons.append(None)
                unknown.append((len(reasons) - 1, image, stored))

        async def hashed(image: LocalImage) -> str:
            async with self.hashing:
                taken = await asyncio.to_thread(checksum, image.path)
            self.hashed.append((image, taken))
            return taken

        taken = await asyncio.gather(*(hashed(image) for _, image, _ in unknown))
        for (index, _, stored), checksum_now in zip(unknown, taken, strict=True):
            reasons[index] = None if checksum_now == stored.checksum else "changed"
        return reasons

    async def send(self) -> None:
        while (image := await self.queue.get()) is not None:
            try:
                sent = await retried(partial(self.send_one, image))
            except (ImageStoreError, ValueError, OSError, httpx.HTTPError) as error:
                self.report.failures.append((image.file, sentence(error)))
                self.progress.done(image.size, moved=False)
            else:
                self.hashed.append((image, sent))
                self.report.sent += 1
                self.report.sent_bytes += image.size
                self.progress.done(image.size, moved=True)

    async def send_one(self, image: LocalImage) -> str:
        """Upload the file, read once and hashed as it goes; the checksum the service took."""
        metadata = {**self.options.meta, **sidecar_metadata(image)}
        with image.path.open("rb") as source:
            reader = HashingReader(source, self.progress.bytes)
            try:
                sent = await self.client.upload(
                    reader,  # type: ignore[arg-type]  # a file object as httpx reads one
                    image.file,
                    metadata,
                    filename=image.path.name,
                    refuse_duplicates=self.options.refuse_duplicates,
                )
            except ImageStoreError:
                self.progress.bytes(-reader.read_bytes)
                raise
        digest = reader.digest.hexdigest()
        if sent.checksum is not None and sent.checksum != digest:
            raise ValueError("the service stored other bytes than were read here (did the file change while sent?)")
        return digest

    async def remember(self) -> None:
        if self.cache is not None and self.hashed:
            hashed, self.hashed = self.hashed, []
            await asyncio.to_thread(self.cache.remember, unchanged(hashed))

    def close(self) -> None:
        if self.cache is not None:
            self.cache.remember(unchanged(self.hashed))
            self.cache.close()
