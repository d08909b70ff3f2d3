"""Which of a caller's paths are stored, and whether with the bytes the caller holds.

A client syncing a folder asks once for a batch of paths (with the SHA-256 of each file where it
has one) instead of listing the whole collection: each path is answered as the caller's upload
of it would place it (`Scope.file_path`), in the request's order, repeats answered each time.
Only images in the caller's scope are reported; another owner's image at a path reads as not
stored, so nothing about it is revealed.

A path no upload could store (empty, absolute, with `..`, too long; `app/storage/keys.py`) is
answered `stored: false` rather than refusing the batch: nothing is stored there, and the upload
of it is where the client learns why. A malformed batch (no entries, more than `MAX_FILES`, a
checksum that is not SHA-256 hex) is BadInput.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.domain.scope import Scope
from app.errors import BadInput
from app.store import Store

MAX_FILES = 1000

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_SHOWN = {"_id": 1, "file": 1, "userId": 1, "checksum": 1, "size": 1, "revision": 1}


@dataclass(frozen=True, kw_only=True)
class FileCheck:
    file: str
    checksum: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    file: str  # as the caller gave it
    stored: bool
    id: Any = None
    checksum: str | None = None
    size: int | None = None
    revision: int | None = None
    # Whether the stored file has the caller's checksum; None unless both are known.
    same: bool | None = None


def checked_batch(files: Sequence[FileCheck]) -> list[FileCheck]:
    """The batch, its checksums in lower case; BadInput for a batch this check does not take."""
    if not files:
        raise BadInput("Give at least one file to check.")
    if len(files) > MAX_FILES:
        raise BadInput(f"At most {MAX_FILES:,} files can be checked at once; got {len(files):,}.")
    for index, entry in enumerate(files):
        if entry.checksum is not None and not _SHA256.fullmatch(entry.checksum):
            raise BadInput(f"The checksum of file {index} is not a SHA-256 (64 hexadecimal characters).")
    return [FileCheck(file=entry.file, checksum=entry.checksum and entry.checksum.lower()) for entry in files]


async def check(store: Store, scope: Scope, files: Sequence[FileCheck]) -> list[StoredFile]:
    """Each of `files`, in order: whether the caller has an image there, and which."""
    batch = checked_batch(files)
    placed = [_placed(scope, entry.file) for entry in batch]
    wanted = sorted({key for key in placed if key is not None})
    store.require_ready()
    with store.errors():
        found = await store.images.at_paths(wanted, scope.condition(), _SHOWN) if wanted else []
    by_file = {document["file"]: document for document in found if scope.allows(document)}
    return [_answer(entry, None if key is None else by_file.get(key)) for entry, key in zip(batch, placed, strict=True)]


def _placed(scope: Scope, path: str) -> str | None:
    """The `file` an upload of `path` by this caller would have; None if none could."""
    try:
        return scope.file_path(path)
    except BadInput:
        return None


def _answer(entry: FileCheck, document: dict[str, Any] | None) -> StoredFile:
    if document is None:
        return StoredFile(file=entry.file, stored=False)
    recorded = document.get("checksum")
    recorded = recorded if isinstance(recorded, str) else None
    same = None if entry.checksum is None or recorded is None else recorded.lower() == entry.checksum
    return StoredFile(
        file=entry.file,
        stored=True,
        id=document["_id"],
        checksum=recorded,
        size=document.get("size"),
        revision=document.get("revision", 0),
        same=same,
    )
