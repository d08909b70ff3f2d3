"""Storage keys: the one place that decides which paths a user or an archive may write to.

A key is a relative, forward-slash path such as `myFolder/myImage.jpg`. Anything that could
point outside the storage root or mean different things on different backends is refused
rather than repaired: `..`, absolute paths, drive letters, backslashes, NUL and other control
characters. Harmless noise (`./`, doubled slashes) is normalised away so that two spellings of
one path name one file.

The top-level folder `SYSTEM_FOLDER` is the service's own (bytes of a replacement in progress,
app/domain/writes/replacement.py; resized copies; bytes kept for snapshots): no user path may
name it, only the backends reach it.
"""

from __future__ import annotations

import re

from app.errors import BadInput

MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes
# Each folder or file name: what local file systems allow (ext4, XFS, APFS, NTFS), so a path
# stored on S3 can still be exported to and imported on a disk.
MAX_SEGMENT_LENGTH = 255
SYSTEM_FOLDER = ".imagestore"
KEPT = "kept"  # inside SYSTEM_FOLDER: bytes snapshots hold
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalise_key(raw: str) -> str:
    """The canonical form of a user-given path, or BadInput saying what is wrong with it."""
    key = storage_key(raw)
    if key == SYSTEM_FOLDER or key.startswith(f"{SYSTEM_FOLDER}/"):
        raise BadInput(f"The file path must not start with {SYSTEM_FOLDER!r}: that folder is the service's own.")
    return key


def system_key(*names: str) -> str:
    """A key inside the service's own folder."""
    return "/".join((SYSTEM_FOLDER, *names))


def kept_key(checksum: str) -> str:
    """Where bytes a snapshot froze are kept once their image lost them (app/domain/datasets/kept.py)."""
    return system_key(KEPT, checksum[:2], checksum)


def checksum_of_kept(key: str) -> str | None:
    """The checksum a kept file's key names; None for any other key."""
    parts = key.split("/")
    if len(parts) != 4 or parts[:2] != [SYSTEM_FOLDER, KEPT]:
        return None
    name = parts[3]
    if len(name) != 64 or name[:2] != parts[2] or any(char not in "0123456789abcdef" for char in name):
        return None
    return name


def storage_key(raw: str) -> str:
    """The canonical form of any key a backend may store: a user's path or a `system_key`."""
    if not raw or not raw.strip():
        raise BadInput("The file path is empty.")
    if _CONTROL.search(raw):
        raise BadInput("The file path contains a control character (such as NUL).")
    if not raw.isascii():
        try:
            raw.encode("utf-8")  # a lone surrogate (JSON's \ud800) names no file on any backend
        except UnicodeEncodeError:
            raise BadInput(
                "The file path holds a lone UTF-16 surrogate (such as \\ud800), which is not valid text."
            ) from None
    if "\\" in raw:
        raise BadInput("The file path contains a backslash; use '/' between folders.")
    if raw.startswith("/") or _DRIVE.match(raw):
        raise BadInput("The file path must be relative, not absolute.")
    segments = [segment for segment in raw.split("/") if segment not in ("", ".")]
    if ".." in segments:
        raise BadInput("The file path must not contain '..'.")
    if not segments:
        raise BadInput("The file path names no file.")
    long = next((segment for segment in segments if len(segment.encode("utf-8")) > MAX_SEGMENT_LENGTH), None)
    if long is not None:
        raise BadInput(f"The file path has a name longer than {MAX_SEGMENT_LENGTH} bytes: {long[:40]!r}….")
    key = "/".join(segments)
    if len(key.encode("utf-8")) > MAX_KEY_LENGTH:
        raise BadInput(f"The file path is longer than {MAX_KEY_LENGTH} bytes.")
    return key
