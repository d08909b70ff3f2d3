"""Files in a local directory (`UPLOADS_DIRECTORY`)."""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO, Literal, TypeVar

from anyio import to_thread

from app.errors import BadInput, Conflict, NotFound, Unavailable
from app.metrics import Metrics
from app.storage.base import CHUNK_SIZE, FileStat, ListedFile, StoredFile
from app.storage.keys import storage_key
from app.storage.threads import open_in_thread

LIST_BATCH = 1000
FOLDER_ATTEMPTS = 5  # to make a file in a folder that other writers keep emptying and removing
Made = TypeVar("Made")
PARTIAL_SUFFIX = ".part"
# What _write_atomically writes beside a file until it is complete: `.<name>.<32 hex>.part`.
_PARTIAL = re.compile(r"^\..+\.[0-9a-f]{32}\.part$")


class LocalStorage:
    kind: Literal["local"] = "local"

    def __init__(self, *, root: Path, metrics: Metrics) -> None:
        self.root = root.resolve()
        self._metrics = metrics

    @property
    def location(self) -> str:
        return str(self.root)

    async def start(self) -> None:
        try:
            await to_thread.run_sync(lambda: self.root.mkdir(parents=True, exist_ok=True))
        except OSError as error:
            raise self._unavailable(f"The uploads directory {self.root} cannot be created", error) from None

    def _path(self, key: str) -> Path:
        try:
            path = (self.root / storage_key(key)).resolve()
        except (RuntimeError, OSError) as error:  # a symbolic link loop inside the root
            self._metrics.dependency_error("storage", "ELOOP")
            raise Unavailable(f"The storage path of {key!r} cannot be resolved: {error}.", cause="ELOOP") from None
        # Keys are already free of '..', but a symlink inside the root could still lead out:
        # compare the resolved path, as Starlette's StaticFiles does.
        if os.path.commonpath([self.root, path]) != str(self.root):
            raise BadInput("The file path leads outside the storage directory.")
        return path

    async def save(self, key: str, source: BinaryIO, *, length: int, content_type: str) -> None:
        path = self._path(key)
        try:
            await to_thread.run_sync(_write_atomically, path, source)
        except (NotADirectoryError, FileExistsError, IsADirectoryError) as error:
            raise _clash(key, error) from None
        except OSError as error:
            raise self._unavailable("The file could not be written to local storage", error) from None

    async def save_new(self, key: str, source: BinaryIO, *, length: int, content_type: str) -> bool:
        path = self._path(key)
        try:
            return await to_thread.run_sync(_write_if_absent, path, source)
        except (NotADirectoryError, FileExistsError, IsADirectoryError) as error:
            raise _clash(key, error) from None
        except OSError as error:
            raise self._unavailable("The file could not be written to local storage", error) from None

    async def open(self, key: str, *, start: int = 0, end: int | None = None) -> StoredFile:
        path = self._path(key)

        def open_file() -> tuple[BinaryIO, int]:
            handle = path.open("rb")
            try:
                if start:
                    handle.seek(start)
                return handle, os.fstat(handle.fileno()).st_size
            except BaseException:
                handle.close()
                raise

        try:
            handle, size = await open_in_thread(open_file, lambda opened: opened[0].close())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"The file {key!r} is missing from storage.") from None
        except OSError as error:
            raise self._unavailable("The file could not be read from local storage", error) from None
        length = None if end is None else end - start
        return StoredFile(size=size, chunks=_read_chunks(handle, length))

    async def presigned_url(self, key: str, *, expires: timedelta, filename: str, content_type: str) -> None:
        return None  # files on disk are only ever served by the service

    async def stat(self, key: str) -> FileStat:
        path = self._path(key)
        try:
            found = await to_thread.run_sync(path.stat)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"The file {key!r} is missing from storage.") from None
        except OSError as error:
            raise self._unavailable("The file could not be read from local storage", error) from None
        if not S_ISREG(found.st_mode):
            raise NotFound(f"The file {key!r} is missing from storage.")
        return FileStat(size=found.st_size, modified=datetime.fromtimestamp(found.st_mtime, UTC))

    async def move(self, source: str, target: str) -> None:
        await self._from_file(source, target, self._rename, "moved")

    def _rename(self, source: Path, target: Path) -> None:
        # Atomic within one file system, which the root is.
        _in_folder(target, lambda: os.replace(source, target), source=source)
        self._remove_with_empty_parents(source)

    async def copy(self, source: str, target: str) -> None:
        await self._from_file(source, target, _link_or_copy, "copied")

    async def _from_file(self, source: str, target: str, work: Callable[[Path, Path], None], done: str) -> None:
        """`work(source path, target path)` in a worker thread, its errors in the domain's terms."""
        source_path, target_path = self._path(source), self._path(target)
        try:
            await to_thread.run_sync(work, source_path, target_path)
        except FileNotFoundError:
            raise NotFound(f"The file {source!r} is missing from storage.") from None
        except (NotADirectoryError, FileExistsError, IsADirectoryError) as error:
            raise _clash(target, error) from None
        except OSError as error:
            raise self._unavailable(f"The file could not be {done} in local storage", error) from None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await to_thread.run_sync(self._remove_with_empty_parents, path)
        except OSError as error:
            raise self._unavailable("The file could not be deleted from local storage", error) from None

    def _remove_with_empty_parents(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()  # only succeeds while the folder is empty
            except OSError:
                break
            parent = parent.parent

    async def exists(self, key: str) -> bool:
        return await to_thread.run_sync(self._path(key).is_file)

    async def list_files(self, *, folder: str | None = None) -> AsyncIterator[list[ListedFile]]:
        start = self.root if folder is None else self._path(folder)
        if not await to_thread.run_sync(start.is_dir):
            return
        batches = _walk(start, self.root)
        done: list[ListedFile] = []
        try:
            while batch := await to_thread.run_sync(next, batches, done):
                yield batch
        except OSError as error:
            raise self._unavailable("The uploads directory could not be listed", error) from None

    async def ping(self) -> bool:
        writable = await to_thread.run_sync(lambda: os.access(self.root, os.W_OK))
        if not writable:
            self._metrics.dependency_error("storage", "NotWritable")
        return writable

    def _unavailable(self, what: str, error: OSError) -> Unavailable:
        # By errno (ENOSPC, EACCES…): the class alone would say OSError for a full disk.
        cause = errno.errorcode.get(error.errno or 0, type(error).__name__)
        self._metrics.dependency_error("storage", cause)
        return Unavailable(f"{what}: {error.strerror}.", cause=cause)

    async def close(self) -> None:
        pass


def _clash(key: str, error: OSError) -> Conflict:
    # On a disk a name is a file or a folder, not both (S3 keys are flat: no such clash).
    if isinstance(error, IsADirectoryError):
        return Conflict(f"{key!r} cannot be stored: it is already a folder holding other files.")
    return Conflict(f"{key!r} cannot be stored: a folder on its path is already a file.")


def _write_atomically(path: Path, source: BinaryIO) -> None:
    # Write beside the target and rename over it: a crash or a failed copy leaves the old file
    # (or none) in place, never half of the new one.
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
    try:
        target = _in_folder(path, lambda: partial.open("wb"))
        with target:
            shutil.copyfileobj(source, target, CHUNK_SIZE)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link costs no bytes and no time; every write here replaces a file by a rename,
    # never in place, so the two names keep the bytes they had. Made beside the target and
    # renamed over it, so the target is never half there.
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")

    def link() -> None:
        try:
            os.link(source, partial)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            shutil.copyfile(source, partial)  # a file system without hard links (or at its limit)

    try:
        _in_folder(target, link, source=source)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _in_folder(path: Path, make: Callable[[], Made], *, source: Path | None = None) -> Made:
    """`make()` a file in `path`'s folder, the folder made first. Another writer's delete or
    move removes a folder it leaves empty (`_remove_with_empty_parents`), possibly between the
    two steps, or inside `mkdir` (which then says the folder exists and is not one): the folder
    is then made again. FileNotFoundError if `source` is what is missing; FileExistsError or
    NotADirectoryError if a file really is in the folder's way."""
    for attempt in range(FOLDER_ATTEMPTS):
        last = attempt == FOLDER_ATTEMPTS - 1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return make()
        except (FileExistsError, NotADirectoryError):
            if last or _file_in_the_way(path.parent):
                raise
        except FileNotFoundError:
            if last or (source is not None and not source.exists()):
                raise
    raise AssertionError("unreachable")


def _file_in_the_way(folder: Path) -> bool:
    """Whether `folder` or a folder above it is a file."""
    return any(part.exists() and not part.is_dir() for part in (folder, *folder.parents))


def _write_if_absent(path: Path, source: BinaryIO) -> bool:
    # One trip to a worker thread for the look and the write: the trip costs more than either.
    if path.is_file():
        return False
    _write_atomically(path, source)
    return True


def _walk(start: Path, root: Path, batch_size: int = LIST_BATCH) -> Iterator[list[ListedFile]]:
    """The files under `start`, keyed from `root`, depth first, a batch at a time. scandir
    streams each folder, so even a folder of a million files is never listed whole."""
    batch: list[ListedFile] = []
    folders = [start]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    status = entry.stat(follow_symlinks=False)
                    batch.append(
                        ListedFile(
                            key=Path(entry.path).relative_to(root).as_posix(),
                            size=status.st_size,
                            modified=datetime.fromtimestamp(status.st_mtime, UTC),
                            temporary=_PARTIAL.match(entry.name) is not None,
                        )
                    )
                    if len(batch) == batch_size:
                        yield batch
                        batch = []
    if batch:
        yield batch


async def _read_chunks(handle: BinaryIO, length: int | None = None) -> AsyncGenerator[bytes, None]:
    """The handle's bytes from where it stands: `length` of them, or to the end."""
    left = length
    try:
        while left is None or left > 0:
            chunk = await to_thread.run_sync(handle.read, CHUNK_SIZE if left is None else min(CHUNK_SIZE, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk
    finally:
        handle.close()
