"""Response shapes, for the OpenAPI document. The JSON itself is rendered by the domain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from app.domain.metadata import INT64_MAX, INT64_MIN


def documented(**schema: Any) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` for a parameter the domain reads and checks itself: the OpenAPI
    document states exactly what it accepts (so a generated client cannot send what will be
    refused), while the route still takes the raw text and the sentence for anything else
    comes from the domain, the same in REST and GraphQL."""

    def replace(generated: dict[str, Any]) -> None:
        kept: dict[str, Any] = {key: generated[key] for key in ("title", "description", "examples") if key in generated}
        generated.clear()
        generated.update(kept, **schema)

    return replace


# A `skip`: the database takes up to a 64-bit integer (app/domain/metadata.check_skip).
SKIP = documented(type="integer", minimum=0, maximum=INT64_MAX)


# Metadata as the domain's checks take it (app/domain/metadata.py), for request bodies: keys not
# empty, not starting with '$', without '.' or NUL; integers of 64 bits; and, as every engine the
# store runs on can store it, no NUL in a string and no array directly inside an array. Nesting
# is bounded too (32 levels), which a schema cannot say and no client reaches.
METADATA_KEY_PATTERN = r"^[^$.\x00][^.\x00]*$"
_METADATA_SCALARS: list[dict[str, Any]] = [
    {"type": "string", "pattern": r"^[^\x00]*$"},
    {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
    {"type": "number", "not": {"type": "integer"}},
    {"type": "boolean"},
    {"type": "null"},
]
_REF = "#/components/schemas/"
_KEY = {"type": "string", "pattern": METADATA_KEY_PATTERN}
COMPONENTS: dict[str, dict[str, Any]] = {
    "Metadata": {
        "type": "object",
        "description": "free-form metadata: nested objects, numbers, strings, booleans, arrays and null",
        "propertyNames": {"pattern": METADATA_KEY_PATTERN},
        "additionalProperties": {"$ref": f"{_REF}MetadataValue"},
    },
    "MetadataValue": {
        "anyOf": [
            *_METADATA_SCALARS,
            {"type": "array", "items": {"$ref": f"{_REF}MetadataItem"}},
            {"$ref": f"{_REF}Metadata"},
        ]
    },
    "MetadataItem": {"anyOf": [*_METADATA_SCALARS, {"$ref": f"{_REF}Metadata"}]},
    "MetadataChanges": {
        "type": "object",
        "description": 'keys to set (`{"k": v}` sets `data.k`) and `$unset`, the keys to remove',
        "properties": {
            "$unset": {
                "anyOf": [
                    {"type": "object", "propertyNames": {"pattern": METADATA_KEY_PATTERN}},
                    {"type": "array", "items": _KEY},
                    _KEY,
                ]
            }
        },
        "propertyNames": {"pattern": r"^(?:\$unset|[^$.\x00][^.\x00]*)$"},
        "additionalProperties": {"$ref": f"{_REF}MetadataValue"},
    },
}


# A PATCH body may also be a JSON Merge Patch (RFC 7396), sent as this media type: metadata
# whose `null`s remove keys, at any depth (app/rest/deps.MergePatchDep).
MERGE_PATCH = "application/merge-patch+json"
MERGE_PATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            MERGE_PATCH: {
                "schema": {
                    "$ref": f"{_REF}Metadata",
                    "description": "RFC 7396: objects merged at any depth, null removes a key",
                }
            }
        }
    }
}


def component(name: str) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` for a body whose schema is one of `COMPONENTS`."""
    return documented(**{"$ref": f"{_REF}{name}"})


def add_components(app: FastAPI) -> None:
    """Put `COMPONENTS` in the app's OpenAPI document, where the bodies refer to them."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class ImageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id", description="24 hexadecimal characters", examples=["6385c4b3a1e2f0c9d8b7a615"])
    file: str = Field(
        description="storage path, folders allowed; with IMAGE_SCOPE=user it starts with the owner's folder",
        examples=["myFolder/myImage.jpg"],
    )
    time: str = Field(description="ISO-8601 UTC", examples=["2022-11-02T23:41:55.711Z"])
    data: dict[str, Any] = Field(description="free-form metadata")
    userId: str | None = Field(default=None, description="owner, only with IMAGE_SCOPE=user")
    size: int | None = Field(default=None, description="bytes, when known")
    contentType: str | None = Field(default=None, description="detected from the content, when known")
    width: int | None = None
    height: int | None = None
    checksum: str | None = Field(
        default=None,
        description="SHA-256 of the file (hex), when known; images with equal checksums hold identical files",
    )
    exif: dict[str, Any] | None = Field(
        default=None,
        description="what the photo's EXIF says, the keys present: takenAt (ISO UTC), make, model, orientation"
        " (1-8), gps {latitude, longitude, altitude}; read-only, filterable as exif.make etc. in `filter`",
    )
    url: str | None = Field(
        default=None,
        description="where a browser loads the file: `/images/{id}/content/{sha256}-{size}`, cached for good"
        " (`?width=256` for a thumbnail), or `/images/{id}/file` while the checksum is unknown; with OIDC"
        " signed, so `<img src>` needs no header. Not stored (a change to the image gives a new one); not in"
        " a list with `select`",
        examples=[
            "/images/6385c4b3a1e2f0c9d8b7a615/content/08745d74197ee3717468b647d8b0b3c1ddd8073bb48e9703c389d786ee101c5d-1949435"
        ],
    )


class DuplicateGroupOut(BaseModel):
    checksum: str = Field(description="SHA-256 of the file the images share (hex)")
    count: int = Field(description="how many of your images hold it")
    ids: list[str] = Field(description="their ids (at most 100)")


class FacetOut(BaseModel):
    value: Any = Field(description="a value the field takes (each element of an array counts on its own)")
    count: int = Field(description="how many of the matching images take it")


class DeletedOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(alias="_id")


class ErrorOut(BaseModel):
    detail: str = Field(examples=["'abc' is not a valid image id (expected 24 hexadecimal characters)."])
    code: str = Field(
        description="stable and machine-readable, for clients to branch on: `bad_input`, `unauthenticated`, "
        "`forbidden`, `not_found`, `method_not_allowed`, `timeout`, `conflict` (final), `busy` (another request "
        "is changing the image: retry), `duplicate` (an identical file is stored already), `stale_revision`, "
        "`too_large`, `not_an_image`, `unprocessable`, `rate_limited`, `unavailable` (retry later), `internal`",
        examples=["bad_input"],
    )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut} for status in statuses}


class PageOut(BaseModel):
    total: int = Field(description="every match, not just this page")
    skip: int
    limit: int
    items: list[ImageOut]
    select: list[str] = Field(description="the `select` fields as given")
    nextCursor: str | None = Field(
        description="of a sorted page, or one asked for with `after`: give it as `after` for the next page; "
        "null on the last page and on unsorted pages"
    )


class UpdateManyOut(BaseModel):
    acknowledged: bool
    matchedCount: int
    modifiedCount: int
    upsertedCount: int = Field(description="always 0: bulk updates never create images")
    upsertedId: str | None = None


class DeleteManyOut(BaseModel):
    acknowledged: bool
    deletedCount: int


class SkippedOut(BaseModel):
    name: str
    reason: str


class ImportOut(BaseModel):
    file: str = Field(description="the archive's name")
    imported: int
    skipped: list[SkippedOut]
