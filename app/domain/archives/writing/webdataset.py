"""WebDataset: `<s>/shard-000000.tar`, … with `shard_size` samples a shard (1,000 unless asked).

A sample is two tar members with one key: the image (`000000.jpg`, its file's extension) and
`000000.json`: `file`, `id`, `width`, `height` and `data`, the whole metadata with its labels and
boxes. Keys count up across a split's shards in the export's order. A key is a number, not the
image's path: WebDataset splits a member's name at the first dot of its last part, so a path
such as `a/b.v2.jpg` would not come back whole; the path is in the JSON.

The tar is written as it streams, inside the zip member: a member's header holds its size,
which the storage reports before the bytes (`StoredFile.size`); a file that then streams a
different length stops the export rather than write a corrupt shard.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import IO, Any

from anyio import to_thread

from app.domain.annotations import Annotations
from app.domain.archives.training import DEFAULT_SHARD_SIZE, Fields, Format, Sample, Survey
from app.domain.archives.zipping import FILE_MODE, INLINE_BYTES, SPOOL_BYTES, Member, read_spooled
from app.domain.writes.replacement import PENDING
from app.models import document_to_json

BLOCK = 512
END = b"\0" * (2 * BLOCK)  # a tar's end
SAMPLE_KEYS = ("file", "width", "height", "data")


def check(document: Mapping[str, Any], found: Annotations, fields: Fields) -> None:
    """A sample holds any image."""


def not_carried(document: Mapping[str, Any], found: Annotations, fields: Fields) -> Iterable[tuple[str, str]]:
    return ()


class WebDatasetWriter:
    def __init__(self, survey: Survey, fields: Fields, shard_size: int = DEFAULT_SHARD_SIZE) -> None:
        self._shard_size = shard_size
        self._splits = [split for split in survey.splits if survey.counts.get(split)]
        self._shards: dict[str, int] = {}  # split -> shards begun
        self._filling: dict[str, _Filling] = {}  # split -> its shard being filled (several splits)
        self._filled: list[_Filling] = []  # closed here too, should a response end before reading one

    def summary(self) -> dict[str, Any]:
        return {"shards": sum(self._shards.values()), "shardSize": self._shard_size}

    async def members(self, samples: AsyncIterator[Sample]) -> AsyncIterator[Member]:
        if len(self._splits) <= 1:
            stream = _Pending(samples)
            while await stream.more():
                split, first = stream.next_split_and_time()
                number = self._begun(split)
                yield _shard_name(split, number), first, FILE_MODE, self._streamed(stream, number * self._shard_size)
            return
        # The splits come mixed, and a shard holds one split's samples in a zip member written
        # whole: each split fills a shard of its own on the side (disk past a few MB), sent once full.
        async for sample in samples:
            filling = self._filling.get(sample.split)
            if filling is None:
                number = self._begun(sample.split)
                filling = _Filling(
                    _shard_name(sample.split, number), number * self._shard_size, sample.time, len(self._splits)
                )
                self._filling[sample.split] = filling
                self._filled.append(filling)
            async for chunk in _sample(filling.take_key(), sample):
                await filling.write(chunk)
            if filling.count == self._shard_size:
                del self._filling[sample.split]
                yield filling.name, filling.first, FILE_MODE, filling.chunks()

    async def closing(self) -> AsyncIterator[Member]:
        for split in self._splits:
            filling = self._filling.pop(split, None)
            if filling is not None:
                yield filling.name, filling.first, FILE_MODE, filling.chunks()

    def close(self) -> None:
        for filling in self._filled:
            filling.close()

    def _begun(self, split: str) -> int:
        """The number of the split's next shard, now begun (keys count up across its shards)."""
        number = self._shards.get(split, 0)
        self._shards[split] = number + 1
        return number

    async def _streamed(self, stream: _Pending, first: int) -> AsyncIterator[bytes]:
        for index in range(first, first + self._shard_size):
            sample = await stream.take()
            if sample is None:
                break
            async for chunk in _sample(index, sample):
                yield chunk
        yield END


def _shard_name(split: str, number: int) -> str:
    return f"{split}/shard-{number:06d}.tar"


class _Filling:
    """A shard being filled on the side: spooled, then read back as its member."""

    def __init__(self, name: str, first_key: int, first: datetime, splits: int) -> None:
        # The splits' shards share what one spool may keep in memory.
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES // splits)  # noqa: SIM115
        self.name, self.first = name, first
        self._first_key = first_key
        self.count = 0

    def take_key(self) -> int:
        """The next sample's key."""
        self.count += 1
        return self._first_key + self.count - 1

    async def write(self, chunk: bytes) -> None:
        if len(chunk) > INLINE_BYTES:  # once on disk, a large write would hold up the event loop
            await to_thread.run_sync(self.file.write, chunk)
        else:
            self.file.write(chunk)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            await to_thread.run_sync(self.file.write, END)
            async for chunk in read_spooled(self.file):
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self.file.close()


async def _sample(index: int, sample: Sample) -> AsyncIterator[bytes]:
    """The sample's two tar members: its image and its JSON."""
    key = f"{index:06d}"
    async for chunk in _member(f"{key}.{_extension(sample.file)}", sample.size, sample.time, sample.chunks):
        yield chunk
    described = json.dumps(_description(sample), ensure_ascii=False).encode()
    async for chunk in _member(f"{key}.json", len(described), sample.time, _one(described)):
        yield chunk


class _Pending:
    """One split's samples, looked at one ahead so a shard is begun only when one is left."""

    def __init__(self, samples: AsyncIterator[Sample]) -> None:
        self._samples = samples
        self._next: Sample | None = None

    async def more(self) -> bool:
        if self._next is None:
            self._next = await anext(self._samples, None)
        return self._next is not None

    def next_split_and_time(self) -> tuple[str, datetime]:
        assert self._next is not None
        return self._next.split, self._next.time

    async def take(self) -> Sample | None:
        await self.more()
        sample, self._next = self._next, None
        return sample


async def _member(name: str, size: int, time: datetime, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(time.timestamp()), 0o644
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    written = 0
    async for chunk in chunks:
        written += len(chunk)
        if written > size:
            break
        yield chunk
    if written != size:
        raise OSError(f"{name}: the storage gave {written} bytes where it had reported {size}")
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)


def _description(sample: Sample) -> dict[str, Any]:
    document = document_to_json({key: value for key, value in sample.document.items() if key != PENDING})
    return {"id": document.get("_id"), **{key: document.get(key) for key in SAMPLE_KEYS}}


def _extension(file: str) -> str:
    extension = posixpath.splitext(file)[1].lstrip(".").lower()
    return extension if extension and "." not in extension else "bin"


async def _one(content: bytes) -> AsyncIterator[bytes]:
    yield content


def webdataset(shard_size: int = DEFAULT_SHARD_SIZE) -> Format:
    """The format, with `shard_size` samples a shard."""
    return Format(
        name="webdataset",
        check=check,
        not_carried=not_carried,
        writer=lambda survey, fields: WebDatasetWriter(survey, fields, shard_size),
    )
