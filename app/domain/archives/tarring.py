"""The files of a selection as an uncompressed tar stream: `GET /export/files`.

What a client that wants only the bytes (the `imagestore pull` command, `curl … | tar -x`)
reads fastest: no compression (images are compressed already; the zip's deflate costs the
service more CPU than anything else in an export), no metadata files, and a format any tar
reader takes from a stream, member by member, where a zip must be read from its end. Each
member is the image's file at its path (POSIX pax format: any length, any characters), with the
image's id and checksum in the member's pax headers (`IMAGESTORE.id`, `IMAGESTORE.checksum`).

An image whose file cannot be read is left out (the client knows which it asked for); a file
whose size differs from what its storage reported when opened ends the stream early, so a
reader sees a truncated archive rather than a member with other bytes.
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from app.domain.archives.export import Selection, modified_time
from app.domain.writes import replacement
from app.errors import NotFound
from app.storage import Storage
from app.store import Store

log = logging.getLogger(__name__)

BLOCK = tarfile.BLOCKSIZE
# Pieces smaller than this (headers, padding, small files) are sent together.
COALESCE_BYTES = 64 * 1024
BATCH = 200  # documents read at a time
ID_HEADER = "IMAGESTORE.id"
CHECKSUM_HEADER = "IMAGESTORE.checksum"


async def files_archive(selection: Selection, *, store: Store, storage: Storage) -> AsyncIterator[bytes]:
    """The tar's bytes. Raises before the first byte if the database is unreachable or the
    query is refused (read here, not mid-stream)."""
    store.require_ready()
    batches = selection.batches({"file": 1, "time": 1, "checksum": 1, replacement.PENDING: 1})
    with store.errors(user_query=True):
        first: list[dict[str, Any]] = await anext(batches, [])
    return _tar_chunks(store, storage, first, batches)


async def _tar_chunks(
    store: Store, storage: Storage, first: list[dict[str, Any]], rest: AsyncIterator[list[dict[str, Any]]]
) -> AsyncIterator[bytes]:
    pending: list[bytes] = []
    held = 0
    with store.errors():
        batch = first
        while batch:
            for document in batch:
                async for piece in _member(storage, document):
                    pending.append(piece)
                    held += len(piece)
                    if held >= COALESCE_BYTES:
                        yield b"".join(pending)
                        pending, held = [], 0
            batch = await anext(rest, [])
    pending.append(b"\0" * (2 * BLOCK))  # the end-of-archive marker
    yield b"".join(pending)


async def _member(storage: Storage, document: Mapping[str, Any]) -> AsyncIterator[bytes]:
    try:
        opened = await replacement.open_stored(storage, document["file"], document.get(replacement.PENDING))
    except NotFound:
        log.warning("export: the file of image %s (%r) is missing; left out", document["_id"], document["file"])
        return
    info = tarfile.TarInfo(document["file"])
    info.size = opened.size
    info.mtime = int(modified_time(document).timestamp())
    info.mode = 0o644
    info.pax_headers = {ID_HEADER: str(document["_id"])}
    if isinstance(document.get("checksum"), str):
        info.pax_headers[CHECKSUM_HEADER] = document["checksum"]
    yield info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")
    sent = 0
    async with aclosing(opened.chunks) as chunks:
        async for chunk in chunks:
            sent += len(chunk)
            if sent > opened.size:
                break
            yield chunk
    if sent != opened.size:
        # A tar member's size is promised in its header: other bytes cannot follow it.
        raise RuntimeError(f"the file of image {document['_id']} changed size while it was being sent")
    if opened.size % BLOCK:
        yield b"\0" * (BLOCK - opened.size % BLOCK)
