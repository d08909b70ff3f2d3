"""What every storage backend offers; the domain only ever talks to this."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO, Literal, Protocol

CHUNK_SIZE = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    """An opened file: its whole size as the backend reports it, and its bytes (all of them,
    or the range asked for) as a stream.

    Closing the stream (`aclose`) before its end releases the file or connection at once.
    """

    size: int
    chunks: AsyncGenerator[bytes, None]


@dataclass(frozen=True, kw_only=True)
class FileStat:
    size: int
    modified: datetime  # UTC


@dataclass(frozen=True, kw_only=True)
class ListedFile:
    """One stored object, as a listing of the whole storage reports it."""

    key: str
    size: int
    modified: datetime  # UTC
    # Left by a write that never finished (local storage's `.<name>.<id>.part`), not an image.
    temporary: bool = False


class Storage(Protocol):
    @property
    def kind(self) -> Literal["local", "s3"]: ...

    @property
    def location(self) -> str:
        """Where files go, for `GET /` (a directory, or endpoint and bucket); never a secret."""
        ...

    async def start(self) -> None:
        """Prepare the backend (create the directory or bucket). Unavailable if unreachable."""
        ...

    async def save(self, key: str, source: BinaryIO, *, length: int, content_type: str) -> None:
        """Store `length` bytes read from `source` at `key`, replacing any file there.

        Readers never see a partial file: the new content appears whole or not at all.
        """
        ...

    async def save_new(self, key: str, source: BinaryIO, *, length: int, content_type: str) -> bool:
        """As `save`, unless a file is already at `key`: then nothing is read or stored, and
        the answer is False. One call where `exists` then `save` take two; the look and the
        write are not one step, so the caller holds the path's lease.
        """
        ...

    async def open(self, key: str, *, start: int = 0, end: int | None = None) -> StoredFile:
        """The file, ready to stream: bytes `start` up to (not including) `end`, by default all.
        NotFound if there is no such file. A range is read as a range (S3: a ranged GET),
        never the whole file cut; `start` and `end` must lie within the file.

        The check happens when this is awaited, before any byte is sent, so a caller can
        still answer 404.
        """
        ...

    async def stat(self, key: str) -> FileStat:
        """The file's size and last modification, without opening it. NotFound if missing."""
        ...

    async def presigned_url(self, key: str, *, expires: timedelta, filename: str, content_type: str) -> str | None:
        """A URL that downloads the file without credentials until `expires` has passed, served
        with this name and type; None where the backend cannot sign one (local storage)."""
        ...

    async def move(self, source: str, target: str) -> None:
        """Put the file at `source` in place of any file at `target`; NotFound if `source` is gone.

        Readers of `target` see the old file or the moved one, never a part. A crash midway
        leaves `source` in place (and maybe `target` already a copy of it), so moving again
        finishes the job.
        """
        ...

    async def copy(self, source: str, target: str) -> None:
        """Put a copy of the file at `source` at `target`, in place of any file there; NotFound
        if `source` is gone. The bytes are not read through the service: a hard link on disk
        (a copy where the file system has none), a server-side copy on S3. Readers of `target`
        see the old file or the copy, never a part; a crash midway leaves `target` as it was.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove the file; a missing file is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...

    def list_files(self, *, folder: str | None = None) -> AsyncIterator[list[ListedFile]]:
        """Every stored file (or every one inside `folder`), in batches, in no particular order:
        never the whole listing at once."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers right now."""
        ...

    async def close(self) -> None: ...
