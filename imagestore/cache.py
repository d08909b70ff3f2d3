"""Checksums of local files, kept between runs so that a resumed push reads no file twice.

A push that finds a path stored with the same size must know the local file's SHA-256 to tell
whether it changed; reading every such file again would cost a resume as much disk time as the
first push. Each checksum is kept with the file's size, modification time and inode, as git's
index and rsync keep theirs, and trusted only while all three are unchanged and the file was
last modified well before it was hashed (a change within the same clock tick as the hashing
would otherwise go unseen). The cache is a SQLite file under `IMAGESTORE_CACHE_DIR`, else
`$XDG_CACHE_HOME/imagestore`, else `~/.cache/imagestore`; where none can be written, pushes work
without it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from imagestore.files import LocalImage

# A file modified this close to its hashing is hashed again next time.
SETTLED_NS = 2_000_000_000
NAME = "checksums.sqlite3"


def cache_directory() -> Path:
    configured = os.environ.get("IMAGESTORE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imagestore"


class Checksums:
    """Checksums by absolute path; every method is a no-op once the file cannot be used."""

    def __init__(self, directory: Path | None = None) -> None:
        self._connection: sqlite3.Connection | None = None
        try:
            place = directory or cache_directory()
            place.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(place / NAME, timeout=5, check_same_thread=False)
            connection.execute(
                "CREATE TABLE IF NOT EXISTS checksums (path TEXT PRIMARY KEY, size INTEGER, modified_ns INTEGER,"
                " inode INTEGER, hashed_ns INTEGER, checksum TEXT)"
            )
            self._connection = connection
        except (OSError, sqlite3.Error):
            self._connection = None

    def known(self, images: Iterable[LocalImage]) -> dict[Path, str]:
        """The checksums still true of `images`, by path."""
        if self._connection is None:
            return {}
        found: dict[Path, str] = {}
        wanted = {str(image.path.absolute()): image for image in images}
        names = list(wanted)
        try:
            for start in range(0, len(names), 500):
                part = names[start : start + 500]
                rows = self._connection.execute(
                    "SELECT path, size, modified_ns, inode, hashed_ns, checksum FROM checksums"
                    f" WHERE path IN ({','.join('?' * len(part))})",
                    part,
                )
                for path, size, modified_ns, inode, hashed_ns, checksum in rows:
                    image = wanted[path]
                    if (size, modified_ns, inode) == (image.size, image.modified_ns, image.inode) and (
                        hashed_ns - modified_ns >= SETTLED_NS
                    ):
                        found[image.path] = checksum
        except sqlite3.Error:
            return found
        return found

    def remember(self, hashed: Iterable[tuple[LocalImage, str]]) -> None:
        """Keep checksums taken just now of files as the scan saw them."""
        if self._connection is None:
            return
        now = time.time_ns()
        rows = [
            (str(image.path.absolute()), image.size, image.modified_ns, image.inode, now, checksum)
            for image, checksum in hashed
        ]
        try:
            with self._connection:
                self._connection.executemany("INSERT OR REPLACE INTO checksums VALUES (?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error:
            self._connection = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def unchanged(hashed: Iterable[tuple[LocalImage, str]]) -> list[tuple[LocalImage, str]]:
    """Those of `hashed` whose file is still as the scan saw it: the checksum is of those bytes."""
    kept = []
    for image, checksum in hashed:
        try:
            status = image.path.stat()
        except OSError:
            continue
        if (status.st_size, status.st_mtime_ns, status.st_ino) == (image.size, image.modified_ns, image.inode):
            kept.append((image, checksum))
    return kept
