"""A `.zip` written as it streams: every archive the service sends (app/domain/archives/).

Python's own `zipfile` writes the archive into a sink that is drained as it fills: an output
that cannot seek makes zipfile follow each member with a data descriptor (its CRC and sizes),
and every member is written in Zip64 form, so a member of any size needs nothing known before
its bytes. Members are deflated at the fastest level: images are compressed already, and
deflate keeps the zip standard, which every reader takes.

Why not stream-zip's `async_stream_zip` (used before): it runs its generator in a worker thread
and hands over every member and every output chunk through the event loop, a few hundred
microseconds each, 3.9 s for 10,000 small members where this takes 0.2 s; a YOLO export, a
label file beside each image, paid it twice. Here only the deflating of a large chunk leaves
the event loop, one hand-over per chunk.

zipfile keeps every member's ZipInfo (about 1.1 KB of memory each) to write the central
directory at the end: 1.1 GB for a million images. Here they wait pickled in a spooled file
(`_Directory`), and the directory itself is written to one, then streamed, so an archive's
memory does not grow with its member count.
"""

from __future__ import annotations

import io
import pickle
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import IO

from anyio import to_thread

from app.metrics import Metrics
from app.storage.base import CHUNK_SIZE

FILE_MODE = 0o100644
COMPRESSION_LEVEL = 1
# Deflating less than this costs less than handing it to a worker thread.
INLINE_BYTES = 16 * 1024
# What one spooled file (a format's index, a shard, the central directory) keeps in memory
# before it moves to disk.
SPOOL_BYTES = 8 * 1024 * 1024
# The central directory's share: some 10,000 members' worth.
DIRECTORY_SPOOL_BYTES = 1024 * 1024

# (name, modified, mode, bytes)
Member = tuple[str, datetime, int, AsyncIterator[bytes]]


class _Sink(io.RawIOBase):
    """Where zipfile writes: kept until drained, or, once `spill` is called, in a spooled file.
    It cannot seek (zipfile then writes data descriptors, as a stream needs)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0
        self.spilled: IO[bytes] | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.spilled is not None:
            return self.spilled.write(data)
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def spill(self) -> None:
        self.spilled = tempfile.SpooledTemporaryFile(max_size=DIRECTORY_SPOOL_BYTES)  # noqa: SIM115 - closed by zipped()

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return data


class _Directory:
    """Stands in for `ZipFile.filelist`, the members' ZipInfo, pickled into a spooled file.

    Writing, zipfile only appends to the list, takes its length (for the member-count limit and
    the end record) and iterates it once, in `close()`, to write the central directory.
    """

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=DIRECTORY_SPOOL_BYTES)  # noqa: SIM115 - close()
        self._count = 0

    def append(self, info: zipfile.ZipInfo) -> None:
        pickle.dump(info, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[zipfile.ZipInfo]:
        self._file.seek(0)
        for _ in range(self._count):
            yield pickle.load(self._file)  # noqa: S301 - written above by this process
        self._file.seek(0, io.SEEK_END)

    def close(self) -> None:
        self._file.close()


class _Forgotten(dict[str, zipfile.ZipInfo]):
    """Stands in for `ZipFile.NameToInfo`, which a writer uses only to warn of a name given
    twice: every writer here names each member once (its image's unique path), so it keeps
    none of them."""

    def __setitem__(self, name: str, info: zipfile.ZipInfo) -> None:
        pass


async def zipped(members: AsyncIterator[Member], metrics: Metrics) -> AsyncIterator[bytes]:
    """The zip of `members`, chunk by chunk, as it is built."""
    # Timed from the first byte to the last: an export refused up front is no archive.
    with metrics.archive("export"):
        sink = _Sink()
        archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESSION_LEVEL)
        directory = _Directory()
        archive.filelist = directory  # type: ignore[assignment]
        archive.NameToInfo = _Forgotten()
        try:
            async for chunk in _written(archive, sink, members):
                yield chunk
        finally:
            directory.close()
            if sink.spilled is not None:
                sink.spilled.close()


async def _written(archive: zipfile.ZipFile, sink: _Sink, members: AsyncIterator[Member]) -> AsyncIterator[bytes]:
    async for name, modified, mode, chunks in members:
        with archive.open(_info(name, modified, mode), "w", force_zip64=True) as member:
            async for chunk in chunks:
                if len(chunk) > INLINE_BYTES:
                    await to_thread.run_sync(member.write, chunk)
                else:
                    member.write(chunk)
                if sink.size >= CHUNK_SIZE:
                    yield sink.drain()
        if sink.size:
            yield sink.drain()
    # The central directory (some 100 bytes a member) goes to a file first: zipfile writes
    # it whole, in one call.
    sink.spill()
    await to_thread.run_sync(archive.close)
    assert sink.spilled is not None
    async for chunk in read_spooled(sink.spilled):
        yield chunk


async def read_spooled(handle: IO[bytes]) -> AsyncIterator[bytes]:
    await to_thread.run_sync(handle.seek, 0)
    while chunk := await to_thread.run_sync(handle.read, CHUNK_SIZE):
        yield chunk


def _info(name: str, modified: datetime, mode: int) -> zipfile.ZipInfo:
    moment = modified.astimezone(UTC) if modified.tzinfo else modified
    info = zipfile.ZipInfo(name, date_time=moment.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    # zipfile gives a ZipInfo it makes the archive's level, not one it is handed; Python 3.11
    # and 3.12 read it here (3.13 names it `compress_level`, and keeps this name for it).
    info._compresslevel = COMPRESSION_LEVEL  # type: ignore[attr-defined]
    info.external_attr = mode << 16
    return info
