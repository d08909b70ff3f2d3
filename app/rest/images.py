"""`/images` routes for one image at a time, as the legacy service had them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from app.domain.annotations import DEFAULT_BOXES_FIELD, DEFAULT_LABEL_FIELD, Box, annotations_of, field_path
from app.domain.images.uploads import NewImage
from app.domain.links import Linker
from app.domain.metadata import parse_object_id, parse_time
from app.models import Image, image_to_json
from app.rest.deps import (
    IMAGE_PATH,
    BoxesFieldQuery,
    EditsDep,
    IfMatchDep,
    ImageId,
    ImagesDep,
    LabelFieldQuery,
    LinkerDep,
    MergePatchDep,
    ScopeDep,
    UploadsDep,
)
from app.rest.etags import etag
from app.rest.forms import UPLOAD_BODY, held_in_memory, upload_form
from app.rest.schemas import MERGE_PATCH_BODY, DeletedOut, ImageOut, component, error_responses
from app.rest.urls import with_url

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
    linker: LinkerDep,
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
    return _document(stored, linker)


def _measure(upload: UploadFile) -> int:
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


@router.get(
    IMAGE_PATH,
    response_model=ImageOut,
    responses=error_responses(400, 404, 503),
    summary="An image's document",
)
async def get_image(image_id: ImageId, images: ImagesDep, scope: ScopeDep, linker: LinkerDep) -> JSONResponse:
    """The document; its `ETag` is its revision, for `If-Match` on the changes that follow."""
    return _document(await images.get(scope, image_id), linker)


@router.get(
    "/images/{image_id}/annotations",
    responses=error_responses(400, 404, 503),
    summary="The image's labels and boxes, read under the box convention and checked",
)
async def get_annotations(
    image_id: ImageId,
    images: ImagesDep,
    scope: ScopeDep,
    label_field: LabelFieldQuery = None,
    boxes_field: BoxesFieldQuery = None,
) -> JSONResponse:
    """`labels` (a list) and `boxes` (`{label, x, y, w, h}` in pixels, origin top-left, with
    `score`, `id`, `polygon` and other keys as stored); a box that breaks the convention is a
    400 naming the image and the box."""
    image = await images.get(scope, image_id)
    found = annotations_of(
        image,
        label_field=field_path(label_field, DEFAULT_LABEL_FIELD, what="labelField"),
        boxes_field=field_path(boxes_field, DEFAULT_BOXES_FIELD, what="boxesField"),
    )
    return JSONResponse(
        {
            "_id": str(image.id),
            "width": image.width,
            "height": image.height,
            "labels": found.labels,
            "boxes": [_box_json(box) for box in found.boxes],
        }
    )


def _box_json(box: Box) -> dict[str, Any]:
    shown: dict[str, Any] = {**box.extra, "label": box.label, "x": box.x, "y": box.y, "w": box.w, "h": box.h}
    for name in ("score", "id", "polygon"):
        if getattr(box, name) is not None:
            shown[name] = getattr(box, name)
    return shown


@router.patch(
    IMAGE_PATH,
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
    linker: LinkerDep,
) -> JSONResponse:
    """`application/json`: top-level keys set (one level, as the legacy service merged), `$unset`
    removes keys. `application/merge-patch+json`: RFC 7396, objects merged at any depth and
    `null` removing a key: `{"camera": {"iso": 200}}` keeps `camera.make`."""
    return _document(await edits.update_data(scope, image_id, changes, revisions=if_match, deep=merge_patch), linker)


@router.put(
    IMAGE_PATH,
    response_model=ImageOut,
    responses=error_responses(400, 404, 409, 412, 503),
    summary="Replace an image's metadata",
)
async def put_image(
    image_id: ImageId, data: MetadataBody, edits: EditsDep, scope: ScopeDep, if_match: IfMatchDep, linker: LinkerDep
) -> JSONResponse:
    """The body, a JSON object, becomes the image's whole `data`; the file and the other fields
    stay. Answers the document with its new `ETag`; with `If-Match`, a 412 if the image has
    moved on from that revision."""
    return _document(await edits.replace_data(scope, image_id, data, revisions=if_match), linker)


@router.delete(
    IMAGE_PATH,
    response_model=DeletedOut,
    responses=error_responses(400, 404, 409, 412, 503),
    summary="Delete an image and its file",
)
async def delete_image(image_id: ImageId, edits: EditsDep, scope: ScopeDep, if_match: IfMatchDep) -> JSONResponse:
    """Answers `{"_id": id}`. With `If-Match`, only if the image is still at that revision, else
    a 412; an image that is not there (or is another user's) is a 404."""
    await edits.delete(scope, image_id, revisions=if_match)
    return JSONResponse({"_id": str(parse_object_id(image_id))})


def _document(image: Image, linker: Linker) -> JSONResponse:
    return JSONResponse(with_url(image_to_json(image), linker), headers={"ETag": etag(image.revision)})
