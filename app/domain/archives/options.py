"""What an export is asked for, checked once for REST's `/export` and GraphQL's `exportUrl`."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.annotations import DEFAULT_BOXES_FIELD, DEFAULT_LABEL_FIELD, field_path
from app.domain.archives.training import MAX_SHARD_SIZE, Fields, Format, Splits, TrainingExport, named_splits
from app.domain.archives.writing import format_named
from app.domain.datasets.views import ViewService
from app.domain.scope import Scope
from app.errors import BadInput


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    format: Format | None  # None: the legacy archive
    fields: Fields
    split: str | None  # a metadata key, under `data`
    splits: list[tuple[str, str]]  # (split, view name)


def export_options(
    format: str | None,
    *,
    split: str | None = None,
    splits: str | None = None,
    shard_size: int | None = None,
    label_field: str | None = None,
    boxes_field: str | None = None,
) -> ExportOptions:
    """The options, or BadInput saying which is wrong; each is checked even where it is unused,
    so a mistyped one is never silently ignored."""
    fields = checked_fields(label_field, boxes_field)
    if format in (None, "legacy"):
        if split is not None or splits is not None or shard_size is not None:
            raise BadInput("split, splits and shardSize apply to the training formats (format=coco, …) only.")
        return ExportOptions(format=None, fields=fields, split=None, splits=[])
    if shard_size is not None and not 1 <= shard_size <= MAX_SHARD_SIZE:
        raise BadInput(f"shardSize must be between 1 and {MAX_SHARD_SIZE}.")
    chosen = format_named(format, shard_size=shard_size)
    if split is not None and splits is not None:
        raise BadInput("Give split (a metadata key) or splits (views), not both.")
    key = None if split is None else field_path(split, split, what="split")
    return ExportOptions(format=chosen, fields=fields, split=key, splits=[] if splits is None else named_splits(splits))


def checked_fields(label_field: str | None, boxes_field: str | None) -> Fields:
    """Where the labels and boxes are read (exports) or written (imports); defaults `label`, `boxes`."""
    return Fields(
        label=field_path(label_field, DEFAULT_LABEL_FIELD, what="labelField"),
        boxes=field_path(boxes_field, DEFAULT_BOXES_FIELD, what="boxesField"),
    )


async def training_export(options: ExportOptions, *, views: ViewService, scope: Scope) -> TrainingExport | None:
    """The training export the options ask for, its views read; None for the legacy archive."""
    if options.format is None:
        return None
    named = []
    for name, view_name in options.splits:
        view = await views.get(scope, view_name)
        if view.problem is not None:
            raise BadInput(f"The view {view_name!r} cannot be used: {view.problem}")
        named.append((name, view.filter))
    return TrainingExport(format=options.format, fields=options.fields, splits=Splits(key=options.split, views=named))
