"""`/export` and `/import`: whole datasets as `.zip` archives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from app.domain.annotations import DEFAULT_BOXES_FIELD, DEFAULT_LABEL_FIELD, field_path
from app.domain.archives.coco import Fields, export_coco
from app.domain.archives.export import archive_name, export_archive
from app.domain.archives.imports import ImportLimits, import_archive
from app.errors import BadInput
from app.rest.deps import BoxesFieldQuery, ImageQueryDep, LabelFieldQuery, ScopeDep, ServicesDep
from app.rest.downloads import content_disposition
from app.rest.forms import form_metadata
from app.rest.schemas import ImportOut, documented, error_responses

router = APIRouter(tags=["archives"])

# The legacy archive (the default) and the training formats built so far.
EXPORT_FORMATS = ("legacy", "coco")

ZIP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "the archive"}
}


def zip_response(chunks: AsyncIterator[bytes]) -> StreamingResponse:
    """An archive as it is built, to be saved under a dated name."""
    headers = {"Content-Disposition": content_disposition(archive_name(), kind="attachment")}
    return StreamingResponse(chunks, media_type="application/zip", headers=headers)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={**ZIP_RESPONSE, **error_responses(400, 404, 503)},
    summary="Download the matching images and their metadata as a .zip",
)
async def export_images(
    query: ImageQueryDep,
    services: ServicesDep,
    scope: ScopeDep,
    format: Annotated[
        str | None,
        Query(
            description="`coco`: a COCO object-detection dataset (annotations/instances_all.json, images/all/<file>)"
            " from the labels and boxes of the box convention; default: the legacy archive",
            json_schema_extra=documented(type="string", enum=list(EXPORT_FORMATS)),
        ),
    ] = None,
    label_field: LabelFieldQuery = None,
    boxes_field: BoxesFieldQuery = None,
) -> StreamingResponse:
    """Every match (paging parameters are ignored): files at their paths, mongodb_data.json,
    mongodb_data.xlsx; or, with `format`, a training dataset."""
    fields = Fields(  # checked whatever the format, so a bad one is never silently ignored
        label=field_path(label_field, DEFAULT_LABEL_FIELD, what="labelField"),
        boxes=field_path(boxes_field, DEFAULT_BOXES_FIELD, what="boxesField"),
    )
    if format in (None, "legacy"):
        chunks = await export_archive(
            store=services.store, storage=services.storage, scope=scope, query=query, metrics=services.metrics
        )
        return zip_response(chunks)
    if format not in EXPORT_FORMATS:
        raise BadInput(f"format must be one of {', '.join(EXPORT_FORMATS)}, not {format!r}.")
    chunks = await export_coco(
        store=services.store,
        storage=services.storage,
        scope=scope,
        query=query,
        fields=fields,
        metrics=services.metrics,
    )
    return zip_response(chunks)


@router.post(
    "/import",
    response_model=ImportOut,
    responses=error_responses(400, 413, 503),
    summary="Import a .zip archive (from /export, or the legacy service's)",
)
async def import_images(
    request: Request,
    services: ServicesDep,
    scope: ScopeDep,
    archive: Annotated[UploadFile, File(description="the .zip archive")],
    # Read by form_metadata with any other fields, which are merged into every image's data.
    data: Annotated[str | None, Form(description="metadata for every image, as JSON text")] = None,
) -> JSONResponse:
    settings = services.settings
    summary = await import_archive(
        services.uploads,
        scope,
        archive=archive.file,
        archive_name=archive.filename or "archive.zip",
        extra_data=form_metadata(await request.form(), special={"archive"}),
        limits=ImportLimits(
            max_entries=settings.import_max_entries,
            max_uncompressed_bytes=settings.import_max_uncompressed_bytes,
        ),
    )
    return JSONResponse(summary.as_json())
