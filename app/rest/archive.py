"""`/export` and `/import`: whole datasets as `.zip` archives; `/export/files`: the files alone, as a tar stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from app.domain.archives.export import Selection, archive_name, archive_of, matching
from app.domain.archives.imports import ImportFormat, ImportLimits, import_archive
from app.domain.archives.options import checked_fields, export_options, training_export
from app.domain.archives.reading import FORMATS as READ_FORMATS
from app.domain.archives.tarring import files_archive
from app.domain.archives.training import MAX_SHARD_SIZE, TrainingExport, training_archive
from app.domain.archives.writing import FORMATS
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
IMPORT_FORMATS = ("legacy", *READ_FORMATS)
SPLITS_PATTERN = r"^[^,:]+:[^,:]+(,[^,:]+:[^,:]+)*$"

ZIP_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "the archive"}
}

TAR_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/x-tar": {}}, "description": "the files, an uncompressed POSIX tar"}
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
    options = export_options(
        format, split=split, splits=splits, shard_size=shard_size, label_field=label_field, boxes_field=boxes_field
    )
    return await training_export(options, views=services.views, scope=scope)


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


@router.get(
    "/export/files",
    response_class=StreamingResponse,
    responses={**TAR_RESPONSE, **error_responses(400, 404, 503)},
    summary="Download the matching images' files as an uncompressed tar stream",
)
async def export_files(query: ImageQueryDep, services: ServicesDep, scope: ScopeDep) -> StreamingResponse:
    """Every match's file at its path, and nothing else, in a POSIX tar that any tar reader
    unpacks as it arrives (`curl … | tar -x`); each member's pax headers name the image
    (`IMAGESTORE.id`) and its checksum (`IMAGESTORE.checksum`). Faster than the .zip for the same
    images: nothing is compressed. An image whose file is missing is left out."""
    selection = matching(services.store, scope, query)
    chunks = await files_archive(selection, store=services.store, storage=services.storage)
    name = archive_name().removesuffix(".zip") + ".tar"
    headers = {"Content-Disposition": content_disposition(name, kind="attachment")}
    return StreamingResponse(chunks, media_type="application/x-tar", headers=headers)


@router.post(
    "/import",
    response_model=ImportOut,
    responses=error_responses(400, 413, 503),
    summary="Import a .zip archive (from /export, the legacy service's, or a training format's)",
)
async def import_images(
    request: Request,
    services: ServicesDep,
    scope: ScopeDep,
    archive: Annotated[UploadFile, File(description="the .zip archive")],
    # Read by form_metadata with any other fields, which are merged into every image's data.
    data: Annotated[str | None, Form(description="metadata for every image, as JSON text")] = None,
    format: Annotated[
        str | None,
        Query(
            description="how to read the archive: `legacy` (ours or the legacy service's), or a training format:"
            " `coco`, `yolo` and `hf` are also recognised from the contents, `imagefolder` only when named",
            json_schema_extra=documented(type="string", enum=list(IMPORT_FORMATS)),
        ),
    ] = None,
    label_field: LabelFieldQuery = None,
    boxes_field: BoxesFieldQuery = None,
) -> JSONResponse:
    """Every image of the archive (file part `archive`) is stored as an upload would store it,
    with its metadata; the other form fields (or `data` as JSON text) are merged into every
    image's `data`. Answers `{"file", "imported", "skipped": [{"name", "reason"}]}`. Not a zip,
    or a corrupt mongodb_data.json or annotation file, is a 400 and stores nothing; too many
    entries or bytes (a zip bomb) or an archive over MAX_ARCHIVE_BYTES, a 413. A storage or
    database failure part-way is a 503 whose body still lists what was imported."""
    settings = services.settings
    if format is not None and format not in IMPORT_FORMATS:
        raise BadInput(f"format must be one of {', '.join(IMPORT_FORMATS)}, not {format!r}.")
    fields = checked_fields(label_field, boxes_field)
    read_as = ImportFormat(name=format, label_field=fields.label, boxes_field=fields.boxes)
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
        format=read_as,
    )
    return JSONResponse(summary.as_json())
