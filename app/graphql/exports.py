"""`exportUrl`: the REST address of a `.zip` of a filter's matches, a view or a snapshot, in a
format. GraphQL carries no file; a client downloads the archive from the address it gets.
`eventsUrl`: the REST address of the same live events as `imageEvents`, for an `EventSource`.
Under OIDC both are signed, so a browser opens them without a header."""

from __future__ import annotations

from enum import Enum
from typing import Annotated
from urllib.parse import quote

import strawberry

from app.domain.archives.options import export_options, training_export
from app.domain.datasets.saved_filters import filter_as_parameter
from app.errors import BadInput
from app.graphql.context import Info
from app.graphql.enums import described
from app.graphql.filters import compile_filter
from app.graphql.inputs import ImageFilter


@strawberry.enum(description="An archive's layout: the legacy service's, or a training format (see the README).")
class ExportFormat(Enum):
    LEGACY = described("legacy", "The legacy service's: files at their paths, mongodb_data.json and mongodb_data.xlsx")
    COCO = described("coco", "COCO: annotations/instances_<split>.json and images/<split>/…, for pycocotools")
    YOLO = described("yolo", "YOLO: images/<split>/…, labels/<split>/<stem>.txt and data.yaml, for Ultralytics")
    IMAGEFOLDER = described("imagefolder", "Class folders, <split>/<label>/…, for torchvision's ImageFolder")
    HF = described("hf", 'Hugging Face: <split>/… and <split>/metadata.jsonl, for load_dataset("imagefolder")')
    WEBDATASET = described("webdataset", "WebDataset: tar shards <split>/shard-000000.tar, … (see `shardSize`)")


@strawberry.input(description="How a training format is split and read; every field is optional.")
class ExportOptions:
    split: str | None = strawberry.field(default=None, description="A split per value of this metadata key")
    splits: str | None = strawberry.field(
        default=None, description="Splits from your saved views, `train:viewA,val:viewB`; they must not overlap"
    )
    label_field: str | None = strawberry.field(default=None, description="The labels' metadata key; default `label`")
    boxes_field: str | None = strawberry.field(default=None, description="The boxes' metadata key; default `boxes`")
    shard_size: int | None = strawberry.field(default=None, description="For webdataset: samples a shard (1000)")


async def export_url(
    info: Info,
    format: ExportFormat,
    filter: ImageFilter | None,
    view: str | None,
    snapshot: str | None,
    options: ExportOptions | None,
) -> str:
    """The address, once what it names is known to exist and its options are well formed."""
    services, scope = info.context.services, info.context.scope
    params: dict[str, str] = {}
    if format is not ExportFormat.LEGACY:
        params["format"] = format.value
    params.update(await _options(info, format, options or ExportOptions()))
    if snapshot is not None:
        if filter is not None or view is not None:
            raise BadInput("Give a snapshot, or a filter and view: a snapshot is exported as it was frozen.")
        await services.snapshots.get(scope, snapshot)
        return await info.context.link(f"/snapshots/{quote(snapshot, safe='')}/export", params)
    if condition := compile_filter(filter):
        params["filter"] = filter_as_parameter(condition)
    if view is not None:
        await services.views.get(scope, view)
        params["view"] = view
    return await info.context.link("/export", params)


async def events_url(info: Info, filter: ImageFilter | None, view: str | None) -> str:
    """The address of `GET /events` for the filter and view, once the view is known to exist."""
    params: dict[str, str] = {}
    if condition := compile_filter(filter):
        params["filter"] = filter_as_parameter(condition)
    if view is not None:
        await info.context.services.views.get(info.context.scope, view)
        params["view"] = view
    return await info.context.link("/events", params)


async def _options(info: Info, format: ExportFormat, options: ExportOptions) -> dict[str, str]:
    shard_size = None if options.shard_size is None else str(options.shard_size)
    given = {
        "split": options.split,
        "splits": options.splits,
        "labelField": options.label_field,
        "boxesField": options.boxes_field,
        "shardSize": shard_size,
    }
    checked = export_options(
        format.value,
        split=options.split,
        splits=options.splits,
        shard_size=options.shard_size,
        label_field=options.label_field,
        boxes_field=options.boxes_field,
    )
    await training_export(checked, views=info.context.services.views, scope=info.context.scope)  # views exist
    return {name: value for name, value in given.items() if value is not None}


ExportFormatArgument = Annotated[ExportFormat, strawberry.argument(description="The archive's layout")]
