"""Uploads and their metadata as multipart form fields, the way the legacy GUI and scripts send them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartParser

from app.domain.metadata import check_key, parse_data_field
from app.errors import BadInput

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


# Form fields with a meaning of their own; every other field becomes metadata.
UPLOAD_FIELDS = {"image", "file", "time", "_id"}

# The upload form as /docs shows it. The route reads the form itself (`upload_form`): FastAPI's
# form parameters cost an upload a fifth of its CPU, inspecting their annotations per request.
UPLOAD_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "the image file"},
        "file": {
            "type": "string",
            "description": "storage path; default: the upload's file name. With IMAGE_SCOPE=user it is placed in"
            " the caller's folder unless it already starts with it",
        },
        "time": {"type": "string", "description": "ISO-8601 capture time; default: now"},
        "_id": {"type": "string", "description": "keep this id (24 hex)"},
        "data": {"type": "string", "description": "metadata as JSON text; `null` for none"},
        "json": {"type": "string", "description": "alias of `data`"},
    },
    "additionalProperties": {"type": "string", "description": "any other field is metadata: `label=cat`"},
}
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": UPLOAD_FORM_SCHEMA}}}
}


@dataclass(frozen=True, kw_only=True)
class UploadForm:
    image: UploadFile
    file: str | None  # None: not given, or empty
    time: str | None
    image_id: str | None
    metadata: dict[str, Any]


def upload_form(form: FormData) -> UploadForm:
    """The fields of an upload form; BadInput, in one sentence, for a missing or misplaced one."""
    image = form.get("image")
    if image is None:
        raise BadInput("The field 'image' is required.")
    if not isinstance(image, UploadFile):
        raise BadInput("The field 'image' must be a file, not text.")
    return UploadForm(
        image=image,
        file=_text(form, "file"),
        time=_text(form, "time"),
        image_id=_text(form, "_id"),
        metadata=form_metadata(form, special=UPLOAD_FIELDS),
    )


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is not None and not isinstance(value, str):
        raise BadInput(f"The field {name!r} must be text, not a file.")
    return value or None  # an empty field counts as not given, as browsers send unfilled ones
