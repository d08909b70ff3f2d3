"""`POST /images/check`: which of a batch of paths are stored, and with which bytes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from app.domain.images import stored
from app.rest.deps import ImagesDep, ScopeDep
from app.rest.schemas import error_responses

router = APIRouter(tags=["images"])


class FileCheckIn(BaseModel):
    file: str = Field(
        description="a path as an upload's `file` names it (with IMAGE_SCOPE=user, inside your folder)",
        examples=["cats/001.jpg"],
    )
    checksum: str | None = Field(
        default=None,
        description="the SHA-256 of your copy of the file, 64 hexadecimal characters; optional",
        json_schema_extra={"pattern": "^[0-9a-fA-F]{64}$"},
    )


class FileChecksIn(BaseModel):
    files: list[FileCheckIn] = Field(
        description=f"1 to {stored.MAX_FILES:,} paths; each is answered in this order, repeats each time",
        # Checked by the domain, with its sentence: stated here for generated clients.
        json_schema_extra={"minItems": 1, "maxItems": stored.MAX_FILES},
    )


class StoredFileOut(BaseModel):
    file: str = Field(description="the path as it was given")
    stored: bool = Field(description="whether one of your images is stored at this path")
    id: str | None = Field(description="that image's id (24 hexadecimal characters), else null")
    checksum: str | None = Field(description="the SHA-256 of its file, once known, else null")
    size: int | None = Field(description="its file's size in bytes, once known, else null")
    revision: int | None = Field(description="its revision (as its ETag gives it), else null")
    same: bool | None = Field(
        description="whether its file has the checksum given; null without a checksum on either side"
    )


class StoredFilesOut(BaseModel):
    files: list[StoredFileOut] = Field(description="one answer per path asked about, in the same order")


@router.post(
    "/images/check",
    response_model=StoredFilesOut,
    responses=error_responses(400, 413, 503),
    summary="Check which paths are stored, and whether with the same file",
)
async def check_stored(
    body: Annotated[FileChecksIn, Body(description="the paths to check, with checksums where known")],
    images: ImagesDep,
    scope: ScopeDep,
) -> StoredFilesOut:
    """For each path, whether one of your images is stored there, which, and (given your file's
    SHA-256) whether it holds the same bytes: what to upload when syncing a folder, in one request
    per 1,000 files. Only your images are reported; a path no upload could store is answered as
    not stored."""
    checks = [stored.FileCheck(file=entry.file, checksum=entry.checksum) for entry in body.files]
    answers = await images.stored(scope, checks)
    return StoredFilesOut(
        files=[
            StoredFileOut(
                file=answer.file,
                stored=answer.stored,
                id=None if answer.id is None else str(answer.id),
                checksum=answer.checksum,
                size=answer.size,
                revision=answer.revision,
                same=answer.same,
            )
            for answer in answers
        ]
    )
