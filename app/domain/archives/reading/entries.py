"""The archive's entries as the readers need them: which ones count, their text, their JSON,
an image's size.

Every failure here is BadInput naming the entry: an entry that is damaged (a bad CRC, a broken
deflate stream, cut short), encrypted or compressed in a way zipfile cannot read; text that is
not UTF-8; JSON that does not parse; an image Pillow cannot identify.
"""

from __future__ import annotations

import json
import posixpath
import stat
import zipfile
import zlib
from collections.abc import Mapping
from functools import cache
from typing import Any, BinaryIO, cast

from PIL import Image as PillowImage

from app.domain.media.sniffing import ACCEPTED_FORMATS, sniff
from app.domain.metadata import check_json_nesting
from app.errors import BadInput, NotAnImage

# Encrypted entries raise RuntimeError, unknown compression methods NotImplementedError.
DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def usable(entries: Mapping[str, zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """The entries a reader may look at: not macOS's resource forks, hidden files or links.

    A symbolic link's content is the path it points to, never an image; `..` parts start with a
    dot, so no name that climbs out of the archive is ever used."""
    return {name: info for name, info in entries.items() if not _hidden(name) and not _is_link(info)}


def _hidden(name: str) -> bool:
    parts = name.split("/")
    return parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def read_text(zip_file: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """The entry as UTF-8 text, a byte-order mark dropped (editors on Windows write one)."""
    try:
        with zip_file.open(info) as handle:
            content = handle.read()  # to the end, so zipfile checks the CRC
    except DAMAGED as error:
        raise damaged(info, error) from None
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInput(f"{info.filename} is not UTF-8 text (byte {error.start} cannot be read).") from None


def load_json(text: str, *, where: str, one_line: bool = False) -> Any:
    """Parsed JSON; `where` names the entry (and the line, for one line of a `.jsonl`)."""
    # Python's parser recurses once per level: thousands of `[` would exhaust the stack.
    check_json_nesting(text, what=where)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        at = f"column {error.colno}" if one_line else f"line {error.lineno}, column {error.colno}"
        raise BadInput(f"{where} is not valid JSON: {error.msg} at {at}.") from None


def image_size(zip_file: zipfile.ZipFile, info: zipfile.ZipInfo, *, needed_by: str) -> tuple[int, int]:
    """Width and height from the image's header (no pixel decoded), for boxes to be placed on it.

    Judged as an upload is (`sniff`), so an image accepted here is accepted when written."""
    try:
        with zip_file.open(info) as handle:
            facts = sniff(cast(BinaryIO, handle))
    except DAMAGED as error:
        raise damaged(info, error) from None
    except NotAnImage:
        raise BadInput(
            f"{info.filename} is not a supported image (judged by its content), yet {needed_by} gives it boxes."
        ) from None
    if facts.width is None or facts.height is None:
        raise BadInput(f"{info.filename} has no size in its header, yet {needed_by} gives it boxes.")
    return facts.width, facts.height


def damaged(info: zipfile.ZipInfo, error: Exception) -> BadInput:
    detail = str(error) or type(error).__name__
    return BadInput(f"The archive entry {info.filename} is damaged or unsupported ({detail.rstrip('.')}).")


def looks_like_image(name: str) -> bool:
    """Whether the name ends as an image the service accepts would (.png, .jpg, ...)."""
    return posixpath.splitext(name)[1].lower() in _image_suffixes()


@cache
def _image_suffixes() -> frozenset[str]:
    # Pillow's own table, so that the suffixes follow the formats uploads accept.
    return frozenset(
        suffix
        for suffix, image_format in PillowImage.registered_extensions().items()
        if image_format in ACCEPTED_FORMATS
    )
