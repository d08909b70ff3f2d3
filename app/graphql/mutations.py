"""Mutation resolvers: the same domain operations as the REST routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON

from app.domain.images.uploads import NewImage
from app.domain.query import ImageQuery
from app.errors import BadInput, ServiceError, Unavailable
from app.graphql.context import Info
from app.graphql.filters import compile_filter
from app.graphql.inputs import ImageFilter, SortInput
from app.graphql.types import DeleteResult, Image, Skipped, Snapshot, UpdateResult, UploadImagesResult, View
from app.models import Image as ImageDocument
from app.rest.forms import held_in_memory

MAX_FILES = 100

# Optimistic locking: the change is made only if the image is still at this revision.
RevisionArgument = Annotated[
    int | None,
    strawberry.argument(
        description="The image's revision as read; the change fails with STALE_REVISION if it moved on"
    ),
]
ImageId = Annotated[strawberry.ID, strawberry.argument(description="The image's id: 24 hexadecimal characters")]
SetArgument = Annotated[
    JSON | None,
    strawberry.argument(
        name="set", description="Metadata to merge, a JSON object: each top-level key given is set, its value whole"
    ),
]
UnsetArgument = Annotated[list[str] | None, strawberry.argument(description="Top-level metadata keys to remove")]
PatchArgument = Annotated[JSON, strawberry.argument(description="The merge patch, a JSON object")]
NAME_RULE = "1 to 100 characters, no '/', not '.' or '..', no control characters"
ViewName = Annotated[str, strawberry.argument(description="The view's name")]
SnapshotName = Annotated[str, strawberry.argument(description="The snapshot's name")]


def _image(stored: ImageDocument) -> Image:
    return Image.from_document(stored.model_dump(by_alias=True))


def _metadata(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput(f"{name} must be a JSON object.")
    return value


def _revisions(revision: int | None) -> frozenset[int] | None:
    return None if revision is None else frozenset({revision})


def _changes(set_: Any, unset: list[str] | None) -> dict[str, Any]:
    return {**_metadata(set_, "set"), "$unset": unset or []}


def _new_image(
    upload: Upload, *, path: str | None, data: dict[str, Any], time: datetime | None, refuse_duplicates: bool
) -> NewImage:
    return NewImage(
        source=upload.file,  # type: ignore[attr-defined]
        length=upload.size,  # type: ignore[attr-defined]
        filename=upload.filename,  # type: ignore[attr-defined]
        file=path,
        data=data,
        time=time,
        refuse_duplicates=refuse_duplicates,
        in_memory=held_in_memory(upload),  # type: ignore[arg-type]
    )


REFUSE_DUPLICATES = "True: refuse (an error, storing nothing) a file identical to one of your other images"


@strawberry.type(
    description="What can be changed: images and their metadata, saved views and snapshots, all within your scope."
)
class Mutation:
    @strawberry.mutation(description="Upload one image; an image at the same path is replaced.")
    async def upload_image(
        self,
        info: Info,
        file: Annotated[Upload, strawberry.argument(description="The image file, a part of the multipart request")],
        path: Annotated[
            str | None,
            strawberry.argument(
                description="Storage path, folders allowed; default the file's name. With per-user scope it is placed "
                "in your folder"
            ),
        ] = None,
        data: Annotated[JSON | None, strawberry.argument(description="Metadata, a JSON object; default none")] = None,
        time: Annotated[
            datetime | None,
            strawberry.argument(description="The image's time, such as when it was taken; default the upload's"),
        ] = None,
        refuse_duplicates: Annotated[bool, strawberry.argument(description=REFUSE_DUPLICATES)] = False,
    ) -> Image:
        new = _new_image(file, path=path, data=_metadata(data, "data"), time=time, refuse_duplicates=refuse_duplicates)
        return _image(await info.context.services.uploads.upload(info.context.scope, new))

    @strawberry.mutation(description="Upload several images, each at its file name, with the same metadata.")
    async def upload_images(
        self,
        info: Info,
        files: Annotated[
            list[Upload],
            strawberry.argument(description=f"The image files, at most {MAX_FILES}, parts of the multipart request"),
        ],
        data: Annotated[
            JSON | None, strawberry.argument(description="Metadata every image gets, a JSON object; default none")
        ] = None,
        refuse_duplicates: Annotated[bool, strawberry.argument(description=REFUSE_DUPLICATES)] = False,
    ) -> UploadImagesResult:
        if len(files) > MAX_FILES:
            raise BadInput(f"At most {MAX_FILES} files can be uploaded at once.")
        metadata = _metadata(data, "data")
        images: list[Image] = []
        skipped: list[Skipped] = []
        for upload in files:
            new = _new_image(upload, path=None, data=dict(metadata), time=None, refuse_duplicates=refuse_duplicates)
            try:
                images.append(_image(await info.context.services.uploads.upload(info.context.scope, new)))
            except Unavailable:
                raise  # the next file would fail the same way
            except ServiceError as error:
                skipped.append(Skipped(name=upload.filename or "", reason=error.detail))  # type: ignore[attr-defined]
        return UploadImagesResult(images=images, skipped=skipped)

    @strawberry.mutation(description="Merge `set` into an image's data and remove the `unset` keys.")
    async def update_image(
        self,
        info: Info,
        id: ImageId,
        set_: SetArgument = None,
        unset: UnsetArgument = None,
        revision: RevisionArgument = None,
    ) -> Image:
        stored = await info.context.services.edits.update_data(
            info.context.scope, str(id), _changes(set_, unset), revisions=_revisions(revision)
        )
        return _image(stored)

    @strawberry.mutation(
        description="Apply a JSON Merge Patch (RFC 7396) to an image's data: objects merged at any depth, "
        "null removes a key, anything else (an array too) replaces the value."
    )
    async def patch_image(
        self, info: Info, id: ImageId, patch: PatchArgument, revision: RevisionArgument = None
    ) -> Image:
        stored = await info.context.services.edits.update_data(
            info.context.scope, str(id), patch, revisions=_revisions(revision), deep=True
        )
        return _image(stored)

    @strawberry.mutation(description="Replace an image's data.")
    async def replace_image_data(
        self,
        info: Info,
        id: ImageId,
        data: Annotated[JSON, strawberry.argument(description="The image's new metadata, a JSON object")],
        revision: RevisionArgument = None,
    ) -> Image:
        stored = await info.context.services.edits.replace_data(
            info.context.scope, str(id), data, revisions=_revisions(revision)
        )
        return _image(stored)

    @strawberry.mutation(description="Merge `set` into the data of every matching image, remove the `unset` keys.")
    async def update_images(
        self,
        info: Info,
        filter: Annotated[ImageFilter, strawberry.argument(description="Which images")],
        set_: SetArgument = None,
        unset: UnsetArgument = None,
    ) -> UpdateResult:
        summary = await info.context.services.edits.update_many(
            info.context.scope, compile_filter(filter), _changes(set_, unset)
        )
        return UpdateResult(matched_count=summary.matched, modified_count=summary.modified)

    @strawberry.mutation(description="Apply a JSON Merge Patch (RFC 7396) to the data of every matching image.")
    async def patch_images(
        self,
        info: Info,
        filter: Annotated[ImageFilter, strawberry.argument(description="Which images")],
        patch: PatchArgument,
    ) -> UpdateResult:
        summary = await info.context.services.edits.update_many(
            info.context.scope, compile_filter(filter), patch, deep=True
        )
        return UpdateResult(matched_count=summary.matched, modified_count=summary.modified)

    @strawberry.mutation(description="Delete an image and its file; its id.")
    async def delete_image(self, info: Info, id: ImageId, revision: RevisionArgument = None) -> strawberry.ID:
        await info.context.services.edits.delete(info.context.scope, str(id), revisions=_revisions(revision))
        return id

    @strawberry.mutation(description="Save a view of yours: create it, or replace the one of that name.")
    async def save_view(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description=f"The view's name: {NAME_RULE}")],
        filter: Annotated[
            ImageFilter | None, strawberry.argument(description="The view's filter; without it, every image")
        ] = None,
        sort: Annotated[
            list[SortInput] | None,
            strawberry.argument(description="The view's sort keys, most significant first; without them, no sort"),
        ] = None,
    ) -> View:
        keys = [(key.field, key.direction.value) for key in sort or []]
        saved = await info.context.services.views.save(info.context.scope, name, compile_filter(filter), keys)
        return View.from_view(saved)

    @strawberry.mutation(
        description="Freeze the matching images (with `view`, its filter too) under a name: ids, files, checksums, "
        "times and data as they are now. Snapshots never change afterwards."
    )
    async def create_snapshot(
        self,
        info: Info,
        name: Annotated[
            str, strawberry.argument(description=f"The snapshot's name: {NAME_RULE}; unique among your snapshots")
        ],
        filter: Annotated[
            ImageFilter | None, strawberry.argument(description="Which images; without it (or `view`), all of yours")
        ] = None,
        view: Annotated[
            str | None, strawberry.argument(description="One of your saved views, its filter ANDed with `filter`")
        ] = None,
    ) -> Snapshot:
        services = info.context.services
        query = ImageQuery(filter=compile_filter(filter))
        if view is not None:
            query = await services.views.narrow(info.context.scope, query, view)
        return Snapshot.from_snapshot(await services.snapshots.create(info.context.scope, name, query.filter))

    @strawberry.mutation(description="Delete a snapshot of yours; its name.")
    async def delete_snapshot(self, info: Info, name: SnapshotName) -> str:
        await info.context.services.snapshots.delete(info.context.scope, name)
        return name

    @strawberry.mutation(description="Delete a view of yours; its name.")
    async def delete_view(self, info: Info, name: ViewName) -> str:
        await info.context.services.views.delete(info.context.scope, name)
        return name

    @strawberry.mutation(description="Delete every matching image and its file. Deleting all needs `all: true`.")
    async def delete_images(
        self,
        info: Info,
        filter: Annotated[
            ImageFilter | None,
            strawberry.argument(description="Which images; without one, nothing is deleted unless `all` is true"),
        ] = None,
        all: Annotated[
            bool, strawberry.argument(description="True: without a filter, or with an empty one, delete all of yours")
        ] = False,
    ) -> DeleteResult:
        condition = compile_filter(filter)
        if not condition and not all:
            raise BadInput("This would delete every image: give a filter that matches some, or all: true.")
        deleted = await info.context.services.edits.delete_many(info.context.scope, condition)
        return DeleteResult(deleted_count=deleted)
