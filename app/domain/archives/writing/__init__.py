"""The training formats' writers, one module each, driven by app/domain/archives/training.py."""

from __future__ import annotations

from app.domain.archives.training import DEFAULT_SHARD_SIZE, Format
from app.domain.archives.writing.coco import COCO
from app.domain.archives.writing.hf import HF
from app.domain.archives.writing.imagefolder import IMAGEFOLDER
from app.domain.archives.writing.webdataset import webdataset
from app.domain.archives.writing.yolo import YOLO
from app.errors import BadInput

FORMATS = ("coco", "yolo", "imagefolder", "hf", "webdataset")


def format_named(name: str, *, shard_size: int | None = None) -> Format:
    """The training format called `name`; `shard_size` is WebDataset's only."""
    if shard_size is not None and name != "webdataset":
        raise BadInput("shardSize applies to format=webdataset only.")
    if name == "webdataset":
        return webdataset(shard_size or DEFAULT_SHARD_SIZE)
    formats = {"coco": COCO, "yolo": YOLO, "imagefolder": IMAGEFOLDER, "hf": HF}
    if name not in formats:
        raise BadInput(f"format must be legacy or one of {', '.join(FORMATS)}, not {name!r}.")
    return formats[name]
