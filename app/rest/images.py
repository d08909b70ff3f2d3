"""`/images` routes for one image at a time, as the legacy service had them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from app.domain.images.uploads import NewImage
from app.domain.metadata import parse_object_id, parse_time
from app.models import Image, image_to_json
from app.rest.deps import EditsDep, IfMatchDep, ImageId, ImagesDep, MergePatchDep, ScopeDep, UploadsDep
from app.rest.etags import etag
from app.rest.forms import UPLOAD_BODY, held_in_memory, upload_form
from app.rest.schemas import MERGE_PATCH_BODY, DeletedOut, ImageOut, component, error_responses

router = APIRouter(tags=["images"])

MetadataBody = Annotated[
    Any,
    Body(
        description="JSON object of metadata",
        examples=[{"label": "cat", "camera": {"iso": 200}}],
        json_schema_extra=component("Metadata"),
    ),
]
MetadataChangesBody = Annotated[
    Any,
    Body(
        description='JSON object of metadata to merge; `{"$unset": {"k": ""}}` removes keys',
        examples=[{"label": "cat", "camera": {"iso": 200}, "$unset": ["draft"]}],
        json_schema_extra=component("MetadataChanges"),
    ),
]


@router.post(
    "/images",
    response_model=ImageOut,
    responses=error_responses(400, 409, 413, 415, 503),
    summary="Upload an image (replaces the image at the same path)",
    openapi_extra=UPLOAD_BODY,
)
async def upload_image(
    request: Request,
    uploads: UploadsDep,
    scope: ScopeDep,
    refuse_duplicates: Annotated[
        bool,
        Query(
            alias="refuseDuplicates",
            description="true: answer 409, storing nothing, if another of your images holds an identical file",
        ),
    ] = False,
) -> JSONResponse:
    """Other form fields (`label=cat`) become metadata, unless `data`/`json` gives it as JSON."""
    async with request.form() as form:
        fields = upload_form(form)
        image = fields.image
        new = NewImage(
            source=image.file,
            length=image.size if image.size is not None else _measure(image),
            filename=image.filename,
            file=fields.file,
            time=parse_time(fields.time) if fields.time else None,
            data=fields.metadata,
            image_id=parse_object_id(fields.image_id) if fields.image_id else None,
            refuse_duplicates=refuse_duplicates,
            in_memory=held_in_memory(image),
        )
        stored = await uploads.upload(scope, new)
    return _document(stored)


def _measure(upload: UploadFile) -> int:
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


@router.get("/images/{image_id}", response_model=ImageOut, responses=error_responses(400, 404, 503))
async def get_image(image_id: ImageId, images: ImagesDep, scope: ScopeDep) -> JSONResponse:
    """The document; its `ETag` is its revision, for `If-Match` on the changes that follow."""
    return _document(await images.get(scope, image_id))


@router.patch(
    "/images/{image_id}",
    response_model=ImageOut,
    responses=error_responses(400, 404, 409, 412, 503),
    summary="Merge metadata into an image (`$unset` removes keys; merge-patch+json: RFC 7396)",
    openapi_extra=MERGE_PATCH_BODY,
)
async def patch_image(
    image_id: ImageId,
    changes: MetadataChangesBody,
    edits: EditsDep,
    scope: ScopeDep,
    if_match: IfMatchDep,
    merge_patch: MergePatchDep,
) -> JSONResponse:
    """`application/json`: top-level keys set (one level, as the legacy service merged), `$unset`
    removes keys. `application/merge-patch+json`: RFC 7396, objects merged at any depth and
    `null` removing a key: `{"camera": {"iso": 200}}` keeps `camera.make`."""
    return _document(await edits.update_data(scope, image_id, changes, revisions=if_match, deep=merge_patch))


@router.put(
    "/images/{image_id}",
    response_model=ImageOut,
    responses=error_responses(400, 404, 409, 412, 503),
    summary="Replace an image's metadata",
)
async def put_image(
    image_id: ImageId, data: MetadataBody, edits: EditsDep, scope: ScopeDep, if_match: IfMatchDep
) -> JSONResponse:
    return _document(await edits.replace_data(scope, image_id, data, revisions=if_match))


@router.delete("/images/{image_id}", response_model=DeletedOut, responses=error_responses(400, 404, 409, 412, 503))
async def delete_image(image_id: ImageId, edits: EditsDep, scope: ScopeDep, if_match: IfMatchDep) -> JSONResponse:
    await edits.delete(scope, image_id, revisions=if_match)
    return JSONResponse({"_id": str(parse_object_id(image_id))})


def _document(image: Image) -> JSONResponse:
    return JSONResponse(image_to_json(image), headers={"ETag": etag(image.revision)})
