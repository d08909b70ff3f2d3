"""Content addresses: an image's bytes at a URL that names them, so a browser may keep them for good.

`/images/{id}/content/{sha256}-{size}` (with `?width=…` for a resized copy) can never mean other
bytes: once the image is replaced, its document names a new checksum and the old address
answers 404, unless a snapshot of the caller's keeps those bytes (app/domain/datasets/kept.py):
then it answers with them. An image whose checksum is not known yet (written by the legacy service, before
the start-up backfill reached it) has no content address; its `/images/{id}/file` serves it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import BadInput

CONTENT_KEY = re.compile(r"^(?P<checksum>[0-9a-f]{64})-(?P<size>0|[1-9][0-9]{0,15})$")
CONTENT_KEY_PATTERN = CONTENT_KEY.pattern


@dataclass(frozen=True)
class ContentKey:
    checksum: str  # SHA-256, lowercase hex
    size: int  # bytes

    def __str__(self) -> str:
        return f"{self.checksum}-{self.size}"


def parse_content_key(text: str) -> ContentKey:
    found = CONTENT_KEY.match(text)
    if found is None:
        raise BadInput("A content address ends in <sha256>-<size>: 64 lowercase hex digits, a dash, the size in bytes.")
    return ContentKey(found["checksum"], int(found["size"]))


def content_key_of(document: Mapping[str, Any]) -> ContentKey | None:
    checksum, size = document.get("checksum"), document.get("size")
    if isinstance(checksum, str) and isinstance(size, int) and not isinstance(size, bool):
        return ContentKey(checksum, size)
    return None


def file_path(image_id: str) -> str:
    return f"/images/{image_id}/file"


def content_path(document: Mapping[str, Any]) -> str:
    """The path of the image's bytes: its content address when its checksum is known, else
    the file route (which a browser revalidates each time)."""
    image_id = str(document["_id"])
    key = content_key_of(document)
    return file_path(image_id) if key is None else f"/images/{image_id}/content/{key}"
