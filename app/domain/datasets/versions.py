"""A snapshot's version: one id for exactly what it froze, so a training run can record it.

The SHA-256 (lowercase hex) of the UTF-8 bytes of a JSON array holding, for each frozen image in
`_id` order (ObjectIds compare as their 24 hex digits do), the object
`{"checksum", "data", "file", "id", "time"}`:

- `id`: the image's id, 24 hex digits; `file`: its path; `checksum`: its SHA-256, or null for an
  image frozen before its checksum was known;
- `time`: UTC ISO-8601 with milliseconds and `Z` (`2024-05-01T12:00:00.000Z`), as the API shows it;
- `data`: the metadata as the API shows it (times inside it as `time` is).

Canonical: keys sorted at every depth, no whitespace, non-ASCII characters as themselves, numbers
as Python's `json` writes them. Any client can compute it from a snapshot's listing
(`GET /snapshots/{name}/images`); two snapshots with the same images, files, checksums, times
and data have the same version, whatever their names or when they were made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId

from app.models import format_time

VERSIONED_FIELDS = ("file", "checksum", "time", "data")


class VersionHash:
    """The version of entries fed in `_id` order, a batch at a time."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256(b"[")
        self._first = True

    def add(self, documents: Iterable[Mapping[str, Any]]) -> None:
        for document in documents:
            text = json.dumps(
                entry(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
            )
            self._digest.update((text if self._first else "," + text).encode())
            self._first = False

    def hexdigest(self) -> str:
        digest = self._digest.copy()
        digest.update(b"]")
        return digest.hexdigest()


def entry(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the version covers of one frozen image."""
    time = document.get("time")
    checksum = document.get("checksum")
    return {
        "id": str(document["_id"]),
        "file": document.get("file"),
        "checksum": checksum if isinstance(checksum, str) else None,
        "time": format_time(time) if isinstance(time, datetime) else time,
        "data": document.get("data"),
    }


def _plain(value: Any) -> Any:
    """Values JSON lacks, as the API renders them."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, ObjectId):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form")
