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
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any

from app.domain.annotations import Annotations
from app.domain.archives.training import DEFAULT_SHARD_SIZE, Fields, Format, Sample, Survey
from app.domain.archives.zipping import FILE_MODE, Member
from app.domain.writes.replacement import PENDING
from app.models import document_to_json

BLOCK = 512
SAMPLE_KEYS = ("file", "width", "height", "data")


def check(document: Mapping[str, Any], found: Annotations, fields: Fields) -> None:
    """A sample holds any image."""


def not_carried(document: Mapping[str, Any], found: Annotations, fields: Fields) -> Iterable[tuple[str, str]]:
    return ()


class WebDatasetWriter:
    def __init__(self, survey: Survey, fields: Fields, shard_size: int = DEFAULT_SHARD_SIZE) -> None:
        self._shard_size = shard_size
        self._shards = 0

    def summary(self) -> dict[str, Any]:
        return {"shards": self._shards, "shardSize": self._shard_size}

    async def members(self, samples: AsyncIterator[Sample]) -> AsyncIterator[Member]:
        """One split's shards (the format is read split by split)."""
        pending = _Pending(samples)
        number = 0
        while await pending.more():
            self._shards += 1
            split, first = pending.next_split_and_time()
            yield f"{split}/shard-{number:06d}.tar", first, FILE_MODE, self._shard(pending, number)
            number += 1

    async def closing(self) -> AsyncIterator[Member]:
        return
        yield

    def close(self) -> None:
        pass

    async def _shard(self, pending: _Pending, number: int) -> AsyncIterator[bytes]:
        for index in range(number * self._shard_size, (number + 1) * self._shard_size):
            sample = await pending.take()
            if sample is None:
                break
            key = f"{index:06d}"
            async for chunk in _member(f"{key}.{_extension(sample.file)}", sample.size, sample.time, sample.chunks):
                yield chunk
            described = json.dumps(_description(sample), ensure_ascii=False).encode()
            async for chunk in _member(f"{key}.json", len(described), sample.time, _one(described)):
                yield chunk
        yield b"\0" * (2 * BLOCK)  # the end of the tar


class _Pending:
    """The split's samples, looked at one ahead so a shard is begun only when one is left."""

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
        split_by_split=True,
    )
