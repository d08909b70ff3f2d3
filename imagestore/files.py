"""Local files: which are images, their sidecars, their checksums, paths kept inside a folder."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

# Extensions of the formats the service accepts (it judges by content; this only spares
# sending what is surely no image). Compared lower-cased.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp", ".ico", ".jp2", ".j2k",
     ".jpx", ".ppm", ".pgm", ".pbm", ".pnm", ".avif"}
)  # fmt: skip
SIDECAR_SUFFIX = ".json"
CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class LocalImage:
    path: Path
    file: str  # its path on the service
    size: int
    sidecar: Path | None
    # When the scan saw it: whether a checksum taken earlier still holds (cache.py).
    modified_ns: int = 0
    inode: int = 0


@dataclass(kw_only=True)
class Scan:
    images: list[LocalImage]
    skipped: int  # files that are not images (sidecars aside)
    # Images whose name is not UTF-8 (bytes a path on the service cannot hold): their paths here.
    unnamable: list[str] = field(default_factory=list)


def scan(root: Path, prefix: str = "") -> Scan:
    """Every image under `root`, in path order (a folder's files, then its folders), each named on
    the service by its path relative to `root` under `prefix`; a `<name.ext>.json` beside an
    image is its sidecar, not a file to send. Links to folders are not followed (as os.walk)."""
    found = Scan(images=[], skipped=0)
    _scan_folder(root, prefix.strip("/"), found)
    return found


def _scan_folder(folder: Path, under: str, found: Scan) -> None:
    # scandir knows each entry's kind from the folder itself: one stat per image, none per folder.
    with os.scandir(folder) as listed:
        entries = sorted(listed, key=lambda entry: entry.name)
    present = {entry.name for entry in entries}
    folders = []
    for entry in entries:
        name = entry.name
        if entry.is_dir(follow_symlinks=False):
            folders.append(entry)
            continue
        if not entry.is_file():
            found.skipped += 1  # a socket, a broken link: nothing to read
            continue
        if name.endswith(SIDECAR_SUFFIX) and name[: -len(SIDECAR_SUFFIX)] in present:
            continue
        if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
            found.skipped += 1
            continue
        path = folder / name
        if not name.isascii() and not _utf8(name):
            found.unnamable.append(f"{under}/{name}" if under else name)
            continue
        status = entry.stat()
        found.images.append(
            LocalImage(
                path=path,
                file=f"{under}/{name}" if under else name,
                size=status.st_size,
                modified_ns=status.st_mtime_ns,
                inode=status.st_ino,
                sidecar=path.with_name(name + SIDECAR_SUFFIX) if name + SIDECAR_SUFFIX in present else None,
            )
        )
    for entry in folders:
        _scan_folder(folder / entry.name, f"{under}/{entry.name}" if under else entry.name, found)


def _utf8(name: str) -> bool:
    """Whether a file name read from the disk is text (os gives undecodable bytes as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sidecar_metadata(image: LocalImage) -> dict[str, Any]:
    """The sidecar's object (empty without one); ValueError saying what is wrong with it."""
    if image.sidecar is None:
        return {}
    try:
        parsed = json.loads(image.sidecar.read_bytes())
    except (OSError, ValueError) as error:
        raise ValueError(f"its sidecar {image.sidecar.name} cannot be read as JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"its sidecar {image.sidecar.name} holds {type(parsed).__name__}, not a JSON object")
    return parsed


def checksum(path: Path) -> str:
    """SHA-256 of the file, hex (the service's `checksum`)."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashingReader:
    """A file read once: hashed and counted as httpx reads it to send it. `fileno` lets httpx
    give the upload a Content-Length; a rewind (httpx rewinds before sending) starts over."""

    def __init__(self, source: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._source = source
        self._on_read = on_read
        self.digest = hashlib.sha256()
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._source.read(size)
        self.digest.update(chunk)
        self.read_bytes += len(chunk)
        self._on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._source.seek(offset, whence)
        if position == 0:
            self._on_read(-self.read_bytes)
            self.digest = hashlib.sha256()
            self.read_bytes = 0
        return position

    def tell(self) -> int:
        return self._source.tell()

    def fileno(self) -> int:
        return self._source.fileno()


def inside(root: Path, file: str) -> Path | None:
    """Where the service's path `file` goes under `root`; None if it would land outside it."""
    parts = PurePosixPath(file).parts
    if not parts or PurePosixPath(file).is_absolute() or any(part in ("..", ".", "") for part in parts):
        return None
    if any(os.sep in part or (os.altsep and os.altsep in part) for part in parts):
        return None
    return root.joinpath(*parts)


def parse_value(text: str) -> Any:
    """A value given on the command line: JSON if it parses as JSON, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_pairs(pairs: list[str], what: str) -> Iterator[tuple[str, Any]]:
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ValueError(f"{what} takes KEY=VALUE, not {pair!r}")
        yield key, parse_value(value)
