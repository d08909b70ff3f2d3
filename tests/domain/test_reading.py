"""Training-format archives read into a plan: the metadata each image gets, and the sentence for
each way an annotation file can be wrong. Archives are built in memory with real PNGs, so image
sizes come from their headers as they would from an upload."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from PIL import Image as PillowImage

from app.domain.archives.reading import FORMATS, Planned, plan, recognised
from app.errors import BadInput


def png(width: int = 100, height: int = 50, shade: int = 0) -> bytes:
    buffer = io.BytesIO()
    PillowImage.new("L", (width, height), shade).save(buffer, "PNG")
    return buffer.getvalue()


def opened(files: dict[str, bytes | str]) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in files.items():
            target.writestr(name, content)
    zip_file = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    return zip_file, {info.filename: info for info in zip_file.infolist() if not info.is_dir()}


def planned(files: dict[str, bytes | str], format: str, **fields: str) -> dict[str, Planned]:
    zip_file, entries = opened(files)
    result = plan(zip_file, entries, format, **fields)
    by_file = {item.file: item for item in result}
    assert len(by_file) == len(result)
    return by_file


def refused(files: dict[str, bytes | str], format: str) -> str:
    zip_file, entries = opened(files)
    with pytest.raises(BadInput) as caught:
        plan(zip_file, entries, format)
    return caught.value.detail


def coco_json(images: list[dict[str, Any]], annotations: list[dict[str, Any]] | None = None) -> str:
    categories = [{"id": 1, "name": "cat", "supercategory": "animal"}, {"id": 2, "name": "dog", "supercategory": ""}]
    return json.dumps({"images": images, "annotations": annotations or [], "categories": categories})


# -- recognising a format ---------------------------------------------------------------------


def test_the_legacy_archive_and_plain_folders_are_no_training_format() -> None:
    legacy: dict[str, bytes | str] = {"a.jpg": png(), "mongodb_data.json": "[]", "mongodb_data.xlsx": b"PK"}
    folders: dict[str, bytes | str] = {"train/cat/a.png": png(), "train/dog/b.png": png()}
    for files in (legacy, folders):
        assert recognised(opened(files)[1]) is None


def test_each_training_format_is_recognised_by_its_annotation_files() -> None:
    assert recognised(opened({"annotations/instances_all.json": "{}", "images/all/a.png": png()})[1]) == "coco"
    assert recognised(opened({"data.yaml": "names: [a]", "labels/train/a.txt": ""})[1]) == "yolo"
    assert recognised(opened({"data.yaml": "names: [a]", "images/train/a.png": png()})[1]) is None  # no labels
    assert recognised(opened({"train/metadata.jsonl": "", "train/a.png": png()})[1]) == "hf"
    assert recognised(opened({"metadata.jsonl": "", "a.png": png()})[1]) == "hf"
    assert recognised(opened({"__MACOSX/annotations/._x.json": "", "a.png": png()})[1]) is None
    assert "imagefolder" in FORMATS


def test_an_unknown_format_is_refused() -> None:
    assert refused({"a.png": png()}, "voc") == "The format 'voc' is not one of coco, yolo, hf, imagefolder."


# -- coco ---------------------------------------------------------------------------------------


def annotation(number: int, image_id: int, category_id: int, bbox: list[float], **keys: Any) -> dict[str, Any]:
    return {"id": number, "image_id": image_id, "category_id": category_id, "bbox": bbox, **keys}


def box(label: str, x: float, y: float, w: float, h: float, **keys: Any) -> dict[str, Any]:
    return {"label": label, "x": x, "y": y, "w": w, "h": h, **keys}


def test_coco_images_get_their_labels_boxes_polygons_and_split() -> None:
    rle = {"counts": "x", "size": [50, 100]}
    first = annotation(10, 1, 1, [10, 10, 20, 20], area=200.0, score=0.9, segmentation=[[10, 10, 30, 10, 20, 30]])
    first["attributes"] = {"id": "box-7", "colour": "red", "label": "not this"}
    two_polygons = [[0, 0, 10, 0, 10, 10], [50, 40, 60, 40, 60, 50]]
    train = coco_json(
        [
            {"id": 1, "file_name": "a/b/c.png", "width": 100, "height": 50, "labels": ["indoor", "night"]},
            {"id": 2, "file_name": "d.png", "width": 100, "height": 50, "license": 3, "metadata": {"camera": "x"}},
        ],
        [
            first,
            annotation(11, 1, 2, [0, 0, 100, 50], iscrowd=1, segmentation=two_polygons),
            annotation(12, 2, 2, [1, 2, 3, 4], segmentation=rle),
        ],
    )
    val = coco_json([{"id": 1, "file_name": "e.png", "labels": ["outdoor"]}])
    images = planned(
        {
            "annotations/instances_train.json": train,
            "annotations/instances_val.json": val,
            "annotations/captions_train.json": json.dumps({"images": [{"id": 1, "file_name": "a/b/c.png"}]}),
            "images/train/a/b/c.png": png(),
            "images/train/d.png": png(),
            "images/val/e.png": png(),
            "images/val/unnamed.png": png(),
            "report.json": "{}",
            "images/train/.DS_Store": b"\0",
        },
        "coco",
    )

    assert set(images) == {"a/b/c.png", "d.png", "e.png", "unnamed.png"}
    assert images["a/b/c.png"].entry.filename == "images/train/a/b/c.png"
    cat = box("cat", 10, 10, 20, 20, area=200.0, iscrowd=0, score=0.9, supercategory="animal", id="box-7", colour="red")
    dog = box("dog", 0, 0, 100, 50, iscrowd=1, segmentations=[{"points": [50, 40, 60, 40, 60, 50]}])
    assert images["a/b/c.png"].data == {
        "label": ["indoor", "night"],
        "boxes": [{**cat, "polygon": [10, 10, 30, 10, 20, 30]}, {**dog, "polygon": [0, 0, 10, 0, 10, 10]}],
        "split": "train",
    }
    assert images["d.png"].data == {
        "license": 3,
        "camera": "x",
        "boxes": [box("dog", 1, 2, 3, 4, iscrowd=0, segmentation=rle)],
        "split": "train",
    }
    assert images["e.png"].data == {"label": "outdoor", "split": "val"}
    assert images["unnamed.png"].data == {"split": "val"}


def test_coco_with_the_one_split_all_adds_no_split_and_finds_images_elsewhere() -> None:
    document = coco_json(
        [
            {"id": "x", "file_name": "x.png", "width": 100, "height": 50, "split": "mine"},
            {"id": "y", "file_name": "y.png"},
        ],
        [{"id": 1, "image_id": "x", "category_id": 1, "bbox": [0, 0, 100.0000001, 50]}],
    )
    images = planned(
        {"annotations/instances_all.json": document, "images/x.png": png(), "y.png": png()},
        "coco",
        label_field="ann.label",
        boxes_field="ann.boxes",
    )
    # Float noise past the edge is clamped onto it; a split the metadata holds is kept.
    assert images["x.png"].data == {
        "split": "mine",
        "ann": {
            "boxes": [{"label": "cat", "x": 0, "y": 0, "w": 100, "h": 50, "iscrowd": 0, "supercategory": "animal"}]
        },
    }
    assert images["y.png"].data == {}
    assert images["y.png"].entry.filename == "y.png"


def one_annotation(**keys: Any) -> str:
    """A 100x50 image and one sound annotation of it, `keys` replacing its own."""
    image = {"id": 1, "file_name": "a.png", "width": 100, "height": 50}
    return coco_json([image], [{**annotation(17, 1, 1, [0, 0, 1, 1]), **keys}])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"images": [\n{"id": 1,\n "file_name" "a.png"}]}', "is not valid JSON: Expecting ':' delimiter at line 3"),
        (one_annotation(category_id=9), "annotation 17 names category 9, which is not among its categories."),
        (one_annotation(image_id=2), "annotation 17 names image 2, which is not among its images."),
        (one_annotation(bbox=[90, 0, 20, 10]), "annotation 17 lies outside the image: its right edge is at x 110,"),
        (one_annotation(bbox=[0, 0, -1, 1]), "annotation 17 has a negative size (w -1, h 1)."),
        (one_annotation(bbox=[0, 0, 1]), "annotation 17 needs bbox as four numbers [x, y, w, h], not a list of 3."),
        (one_annotation(bbox=[float("nan"), 0, 1, 1]), "annotation 17 needs x as a finite number, not nan."),
        (one_annotation(iscrowd=True), "annotation 17 needs iscrowd as 0 or 1, not a boolean."),
        (
            one_annotation(segmentation=[[0, 0, 10, 0, 0, 10], [0, 0, 10, 0, 0, 60]]),
            "annotation 17 lies outside the image: its polygon 1 point 2 is at y 60, not within 0 to 50.",
        ),
        (
            coco_json([{"id": 1, "file_name": "missing.png"}]),
            "image 1 names the file 'missing.png', which is not in the archive (looked for images/train/missing.png,",
        ),
        (coco_json([{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}]), "image id 1 is used twice"),
        (coco_json([{"id": 1, "file_name": "a.png", "width": -3}]), "image 1 needs width as a positive whole number"),
        (coco_json([{"id": 1, "file_name": "a.png", "metadata": {"x": float("nan")}}]), "image 1: data.x is nan"),
        (
            coco_json([{"id": 1, "file_name": "a.png", "crop": [[0, 0], [1, 1]]}]),
            "image 1: data.crop holds an array directly inside an array",
        ),
        (
            coco_json([{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "a.png"}]),
            "images/train/a.png (annotations/instances_train.json: image 2) is the image 'a.png' again",
        ),
    ],
)
def test_a_bad_coco_file_is_refused_naming_where(document: str, message: str) -> None:
    detail = refused({"annotations/instances_train.json": document, "images/train/a.png": png()}, "coco")
    assert detail.startswith("annotations/instances_train.json") or detail.startswith("images/train/a.png")
    assert message in detail


def test_the_same_coco_image_in_two_splits_is_refused_naming_both() -> None:
    detail = refused(
        {
            "annotations/instances_train.json": coco_json([{"id": 1, "file_name": "a.png"}]),
            "annotations/instances_val.json": coco_json([{"id": 1, "file_name": "a.png"}]),
            "images/train/a.png": png(),
            "images/val/a.png": png(shade=9),
        },
        "coco",
    )
    assert detail == (
        "The image 'a.png' is in two splits: 'train' as images/train/a.png (annotations/instances_train.json: image 1)"
        " and 'val' as images/val/a.png (annotations/instances_val.json: image 1)."
    )


def test_a_coco_archive_without_images_in_its_json_is_refused() -> None:
    assert refused({"annotations/notes.json": "[1, 2]", "a.png": png()}, "coco") == (
        "No annotations/*.json file in the archive holds COCO images."
    )


def test_a_damaged_entry_is_refused_naming_it() -> None:
    zip_file, entries = opened({"annotations/instances_all.json": coco_json([]) + " " * 2000, "a.png": png()})
    raw = bytearray(zip_file.fp.getvalue())  # type: ignore[union-attr]
    info = entries["annotations/instances_all.json"]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + 5 : start + 15] = b"\xff" * 10  # inside the deflate stream
    damaged = zipfile.ZipFile(io.BytesIO(bytes(raw)))
    with pytest.raises(BadInput) as caught:
        plan(damaged, {name: damaged.getinfo(name) for name in entries}, "coco")
    assert caught.value.detail.startswith(
        "The archive entry annotations/instances_all.json is damaged or unsupported ("
    )


# -- yolo ---------------------------------------------------------------------------------------

YAML = "path: .\ntrain: images/train\nnames: [cat, dog, 7]\n"


def test_yolo_boxes_and_segments_become_pixels() -> None:
    images = planned(
        {
            "data.yaml": YAML,
            "images/train/a/b/c.png": png(100, 50),
            "labels/train/a/b/c.txt": "0 0.5 0.5 0.2 0.4\n\n1 0.1 0.2 0.3 0.2 0.2 0.6\n2 0.5 0.5 1 1\n",
            "images/train/empty.png": png(),
            "labels/train/empty.txt": "\n",
            "images/val/d.jpg": b"not even read: it has no labels",
            "labels/train.cache": b"\0",
        },
        "yolo",
    )
    assert images["a/b/c.png"].data == {
        "boxes": [
            {"label": "cat", "x": 40.0, "y": 15.0, "w": 20.0, "h": 20.0},
            {
                "label": "dog",
                "x": 10.0,
                "y": 10.0,
                "w": 20.0,
                "h": 20.0,
                "polygon": [10.0, 10.0, 30.0, 10.0, 20.0, 30.0],
            },
            {"label": "7", "x": 0.0, "y": 0.0, "w": 100.0, "h": 50.0},
        ],
        "split": "train",
    }
    assert images["empty.png"].data == {"split": "train"}
    assert images["d.jpg"].data == {"split": "val"}
    assert images["d.jpg"].entry.filename == "images/val/d.jpg"


def test_yolo_names_may_be_a_mapping_and_one_split_all_adds_no_split() -> None:
    images = planned(
        {
            "data.yml": "names:\n  0: cat\n  4: dog\n",
            "images/all/a.png": png(10, 10),
            "labels/all/a.txt": "4 0.5 0.5 1 1",
        },
        "yolo",
        boxes_field="objects",
    )
    assert images["a.png"].data == {"objects": [{"label": "dog", "x": 0.0, "y": 0.0, "w": 10.0, "h": 10.0}]}


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (
            "0 0.5 0.5 0.1 0.1\n3 0.5 0.5 0.1 0.1",
            "labels/train/a.txt line 2 names class 3, which is not among the 3 names",
        ),
        ("x 0.5 0.5 0.1 0.1", "labels/train/a.txt line 1 starts with 'x', not a class index."),
        ("\n0 0.5 1.5 0.1 0.1", "labels/train/a.txt line 2: 1.5 is outside 0..1"),
        ("0 0.5 nan 0.1 0.1", "labels/train/a.txt line 1: nan is outside 0..1"),
        (
            "0 0.05 0.5 0.2 0.1",
            "labels/train/a.txt line 1 lies outside the image: its box spans x -0.05 to 0.15 of 0..1.",
        ),
        ("0 0.5 0.5 0.1", "labels/train/a.txt line 1 has 4 fields; a YOLO label line is"),
        ("0 0.1 0.1 0.2 0.2 0.3", "labels/train/a.txt line 1 has 6 fields"),
    ],
)
def test_a_bad_yolo_label_line_is_refused_naming_the_line(label: str, message: str) -> None:
    detail = refused({"data.yaml": YAML, "images/train/a.png": png(), "labels/train/a.txt": label}, "yolo")
    assert message in detail


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"data.yaml": YAML, "labels/val/a.txt": "0 0.5 0.5 0.1 0.1"},
            "labels/val/a.txt has no image: nothing named images/val/a.* is in the archive.",
        ),
        (
            {"images/train/a.png": png(), "labels/train/a.txt": ""},
            "The archive has no data.yaml, where a YOLO dataset names its classes.",
        ),
        ({"data.yaml": "nc: 3\n", "images/train/a.png": png()}, "data.yaml has no names"),
        ({"data.yaml": "names: [a, b\n", "images/train/a.png": png()}, "data.yaml is not valid YAML at line 2"),
        ({"data.yaml": "names: [a, no]\n", "images/train/a.png": png()}, "data.yaml: the name of class 1 is a boolean"),
        (
            {"data.yaml": YAML, "images/train/a.png": b"text", "labels/train/a.txt": "0 0.5 0.5 0.1 0.1"},
            "images/train/a.png is not a supported image (judged by its content), yet labels/train/a.txt gives it",
        ),
        (
            {"data.yaml": YAML, "images/train/a.png": png(), "images/train/a.jpg": png(), "labels/train/a.txt": ""},
            "labels/train/a.txt could belong to images/train/a.png and images/train/a.jpg",
        ),
        (
            {"data.yaml": YAML, "images/train/a.png": png(), "images/val/a.png": png()},
            "The image 'a.png' is in two splits: 'train' as images/train/a.png and 'val' as images/val/a.png.",
        ),
    ],
)
def test_a_bad_yolo_archive_is_refused_naming_the_entry(files: dict[str, bytes | str], message: str) -> None:
    assert message in refused(files, "yolo")


# -- hf -----------------------------------------------------------------------------------------


def jsonl(*lines: Any) -> str:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"


def test_hf_lines_become_metadata_and_objects_become_boxes() -> None:
    train = jsonl(
        {
            "file_name": "a/b/c.png",
            "label": ["indoor", "night"],
            "camera": {"iso": 100},
            "objects": {
                "bbox": [[10, 10, 20, 20], [0, 0, 5, 5]],
                "category": ["cat", "dog"],
                "id": [7, None],
                "polygon": [[[10, 10], [30, 10], [20, 30]], None],
            },
        },
        "",
        {"file_name": "own.png", "boxes": [{"label": "mine"}], "objects": {"bbox": [[0, 0, 1, 1]], "category": ["x"]}},
    )
    test = jsonl({"file_name": "d.png", "objects": {"bbox": [], "category": []}})
    images = planned(
        {
            "train/metadata.jsonl": train,
            "train/a/b/c.png": png(100, 50),
            "train/own.png": png(),
            "train/unnamed.png": png(),
            "test/metadata.jsonl": test,
            "test/d.png": png(),
        },
        "hf",
    )
    assert set(images) == {"a/b/c.png", "own.png", "d.png"}
    assert images["a/b/c.png"].data == {
        "label": ["indoor", "night"],
        "camera": {"iso": 100},
        "boxes": [
            {"label": "cat", "x": 10, "y": 10, "w": 20, "h": 20, "id": 7, "polygon": [10, 10, 30, 10, 20, 30]},
            {"label": "dog", "x": 0, "y": 0, "w": 5, "h": 5},
        ],
        "split": "train",
    }
    assert images["own.png"].data == {"boxes": [{"label": "mine"}], "split": "train"}
    assert images["d.png"].data == {"split": "test"}


def test_a_root_hf_metadata_file_is_the_split_all() -> None:
    images = planned({"metadata.jsonl": jsonl({"file_name": "x/a.png", "tag": 1}), "x/a.png": png()}, "hf")
    assert images["x/a.png"].data == {"tag": 1}
    assert images["x/a.png"].entry.filename == "x/a.png"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('{"file_name": "a.png"}\n[1, 2]\n', "train/metadata.jsonl line 2 is a list, not a JSON object."),
        ('{"file_name": "a.png",\n', "train/metadata.jsonl line 1 is not valid JSON: Expecting property name"),
        (jsonl({"file_name": "b.png"}), "train/metadata.jsonl line 1 names 'b.png', which is not in the archive"),
        (jsonl({"tag": 1}), "train/metadata.jsonl line 1 needs file_name as a path, not null."),
        (
            jsonl({"file_name": "a.png", "objects": {"bbox": [[0, 0, 1, 1]], "category": ["c"], "id": [1, 2]}}),
            "train/metadata.jsonl line 1: objects.id has 2 items where objects.bbox has 1.",
        ),
        (
            jsonl({"file_name": "a.png", "objects": {"bbox": [[0, 0, 1, 1]], "category": [3]}}),
            "train/metadata.jsonl line 1: box 0 needs its category as a string (the label), not the number 3.",
        ),
        (
            jsonl({"file_name": "a.png", "objects": {"bbox": [[0, 45, 10, 10]], "category": ["c"]}}),
            "train/metadata.jsonl line 1: box 0 lies outside the image: its bottom edge is at y 55, past its height",
        ),
        (
            jsonl({"file_name": "a.png", "objects": [{"bbox": [0, 0, 1, 1]}]}),
            "train/metadata.jsonl line 1: box 0 needs its category as a string (the label), not null.",
        ),
        (
            jsonl({"file_name": "a.png", "objects": ["cat"]}),
            "train/metadata.jsonl line 1: objects item 0 is a string, not an object with bbox and category.",
        ),
        (
            jsonl({"file_name": "a.png", "objects": "cat"}),
            "train/metadata.jsonl line 1: objects is a string, not a list of boxes or an object of lists.",
        ),
        (
            jsonl({"file_name": "a.png"}, {"file_name": "a.png"}),
            "train/a.png (train/metadata.jsonl line 2) is the image 'a.png' again",
        ),
    ],
)
def test_a_bad_hf_line_is_refused_naming_the_line(lines: str, message: str) -> None:
    assert message in refused({"train/metadata.jsonl": lines, "train/a.png": png(100, 50)}, "hf")


def test_the_same_hf_image_in_two_splits_is_refused_naming_both() -> None:
    files: dict[str, bytes | str] = {
        "train/metadata.jsonl": jsonl({"file_name": "a.png"}),
        "val/metadata.jsonl": jsonl({"file_name": "a.png"}),
        "train/a.png": png(),
        "val/a.png": png(),
    }
    assert refused(files, "hf") == (
        "The image 'a.png' is in two splits: 'train' as train/a.png (train/metadata.jsonl line 1)"
        " and 'val' as val/a.png (val/metadata.jsonl line 1)."
    )


# -- imagefolder --------------------------------------------------------------------------------


def test_imagefolder_labels_come_from_folders_and_one_file_may_have_several() -> None:
    images = planned(
        {
            "train/cat/a/b/c.png": png(),
            "train/dog/x.png": png(shade=3),
            "train/cat/x.png": png(shade=3),
            "train/_unlabelled/u.png": png(),
            "val/cat/v.png": png(),
            "README.md": "a dataset",
            "__MACOSX/train/cat/._x.png": b"\0",
        },
        "imagefolder",
        label_field="class",
    )
    assert {file: item.data for file, item in images.items()} == {
        "a/b/c.png": {"class": "cat", "split": "train"},
        "x.png": {"class": ["cat", "dog"], "split": "train"},
        "u.png": {"split": "train"},
        "v.png": {"class": "cat", "split": "val"},
    }
    assert images["x.png"].entry.filename == "train/cat/x.png"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"train/cat/a.png": png(), "train/x.png": png()}, "train/x.png is not <split>/<label>/<file>"),
        (
            {"train/cat/x.png": png(), "train/dog/x.png": png(shade=9)},
            "train/cat/x.png and train/dog/x.png are one image under two labels, but their bytes differ.",
        ),
        (
            {"train/cat/x.png": png(), "val/cat/x.png": png()},
            "The image 'x.png' is in two splits: 'train' as train/cat/x.png and 'val' as val/cat/x.png.",
        ),
    ],
)
def test_a_bad_imagefolder_archive_is_refused_naming_the_entries(files: dict[str, bytes | str], message: str) -> None:
    assert message in refused(files, "imagefolder")
