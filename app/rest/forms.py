"""Metadata sent as multipart form fields, the way the legacy GUI and scripts send it."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartParser

from app.domain.metadata import check_key, parse_data_field

# Fields that carry metadata as JSON text, in order of precedence.
JSON_FIELDS = ("json", "data")


def form_metadata(form: FormData, *, special: set[str]) -> dict[str, Any]:
    """Plain fields (`label=cat`) as metadata, unless a `json`/`data` field gives it as JSON.

    `special` names the fields with a meaning of their own. A `data` of `null` means "none
    given" (the GUI sends that), so the plain fields stand.
    """
    for name in JSON_FIELDS:
        text = form.get(name)
        if isinstance(text, str) and (parsed := parse_data_field(text, name=name)) is not None:
            return parsed
    metadata: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name in special or name in JSON_FIELDS or isinstance(value, UploadFile):
            continue
        check_key(name, path="data")
        if name in metadata:  # a repeated field becomes a list, as the legacy form parser did
            previous = metadata[name]
            metadata[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            metadata[name] = value
    return metadata


def held_in_memory(upload: UploadFile) -> bool:
    """Whether Starlette kept the uploaded file in memory: it spools a file to disk only once
    it grows past `spool_max_size`."""
    return upload.size is not None and upload.size <= MultiPartParser.spool_max_size
