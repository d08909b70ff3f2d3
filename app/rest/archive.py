"""`/export` and `/import`: whole datasets as `.zip` archives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from app.domain.annotations import DEFAULT_BOXES_FIELD, DEFAULT_LABEL_FIELD, field_path
from app.domain.archives.export import Selection, archive_name, archive_of, matching
from app.domain.archives.imports import ImportLimits, import_archive
from app.domain.archives.training import MAX_SHARD_SIZE, Fields, Splits, TrainingExport, named_splits, training_archive
from app.domain.archives.writing import FORMATS, format_named
from app.domain.query import FIELD_PATH_PATTERN
from app.errors import BadInput
from app.rest.deps import BoxesFieldQuery, ImageQueryDep, LabelFieldQuery, ScopeDep, ServicesDep
from app.rest.downloads import content_disposition
from app.rest.forms import form_metadata
from app.rest.schemas import ImportOut, documented, error_responses
from app.services import Services

router = APIRouter(tags=["archives"])

# The legacy archive (the default), then the training formats.
EXPORT_FORMATS = ("legacy", *FORMATS)
SPLITS_PATTERN = r"^[^,:]+:[^,:]+(,[^,:]+:[^,:]+)*$"

ZIP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "the archive"}
}


def zip_response(chunks: AsyncIterator[bytes]) -> StreamingResponse:
    """An archive as it is built, to be saved under a dated name."""
    headers = {"Content-Disposition": content_disposition(archive_name(), kind="attachment")}
    return StreamingResponse(chunks, media_type="application/zip", headers=headers)


async def get_training_export(
    services: ServicesDep,
    scope: ScopeDep,
    format: Annotated[
        str | None,
        Query(
            description="the archive's layout: `legacy` (the default: files at their paths, mongodb_data.json and"
            " .xlsx) or a training format, from the labels and boxes of the box convention (see the README)",
            json_schema_extra=documented(type="string", enum=list(EXPORT_FORMATS)),
        ),
    ] = None,
    split: Annotated[
        str | None,
        Query(
            description="training formats: a split per value of this metadata key (e.g. `subset`)",
            json_schema_extra=documented(type="string", pattern=FIELD_PATH_PATTERN),
        ),
    ] = None,
    splits: Annotated[
        str | None,
        Query(
            description="training formats: splits from your saved views, `train:viewA,val:viewB`; they must not"
            " overlap",
            json_schema_extra=documented(type="string", pattern=SPLITS_PATTERN),
        ),
    ] = None,
    shard_size: Annotated[
        int | None,
        Query(
            alias="shardSize",
            description="webdataset: samples a shard (default 1000)",
            json_schema_extra=documented(type="integer", minimum=1, maximum=MAX_SHARD_SIZE),
        ),
    ] = None,
    label_field: LabelFieldQuery = None,
    boxes_field: BoxesFieldQuery = None,
) -> TrainingExport | None:
    """The training export asked for; None for the legacy archive."""
    fields = Fields(  # checked whatever the format, so a bad one is never silently ignored
        label=field_path(label_field, DEFAULT_LABEL_FIELD, what="labelField"),
        boxes=field_path(boxes_field, DEFAULT_BOXES_FIELD, what="boxesField"),
    )
    if format in (None, "legacy"):
        if split is not None or splits is not None or shard_size is not None:
            raise BadInput("split, splits and shardSize apply to the training formats (format=coco, …) only.")
        return None
    if shard_size is not None and not 1 <= shard_size <= MAX_SHARD_SIZE:
        raise BadInput(f"shardSize must be between 1 and {MAX_SHARD_SIZE}.")
    chosen = format_named(format, shard_size=shard_size)
    return TrainingExport(format=chosen, fields=fields, splits=await _splits(services, scope, split, splits))


async def _splits(services: Services, scope: Any, key: str | None, named: str | None) -> Splits:
    if key is not None and named is not None:
        raise BadInput("Give split (a metadata key) or splits (views), not both.")
    if key is not None:
        return Splits(key=field_path(key, key, what="split"))
    if named is None:
        return Splits()
    views = []
    for name, view_name in named_splits(named):
        view = await services.views.get(scope, view_name)
        if view.problem is not None:
            raise BadInput(f"The view {view_name!r} cannot be used: {view.problem}")
        views.append((name, view.filter))
    return Splits(views=views)


TrainingExportDep = Annotated[TrainingExport | None, Depends(get_training_export)]


async def archive_response(
    services: Services, selection: Selection, training: TrainingExport | None
) -> StreamingResponse:
    """The legacy archive of the selection, or the training export asked for."""
    store, storage, metrics = services.store, services.storage, services.metrics
    if training is None:
        return zip_response(await archive_of(selection, store=store, storage=storage, metrics=metrics))
    return zip_response(await training_archive(selection, training, store=store, storage=storage, metrics=metrics))


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={**ZIP_RESPONSE, **error_responses(400, 404, 503)},
    summary="Download the matching images and their metadata as a .zip",
)
async def export_images(
    query: ImageQueryDep, services: ServicesDep, scope: ScopeDep, training: TrainingExportDep
) -> StreamingResponse:
    """Every match (paging parameters are ignored): files at their paths, mongodb_data.json,
    mongodb_data.xlsx; or, with `format`, a training dataset."""
    return await archive_response(services, matching(services.store, scope, query), training)


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
