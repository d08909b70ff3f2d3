"""`POST /import` of training formats: COCO and YOLO round trips, Hugging Face and class folders,
and the refusals, each with nothing written."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from tests.utils.images import make_image
from tests.utils.stored import stored_keys

Entries = list[tuple[str, bytes]]


def make_zip(entries: Entries) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


async def imported(client: httpx.AsyncClient, entries: Entries, **params: str) -> httpx.Response:
    files = {"archive": ("dataset.zip", make_zip(entries), "application/zip")}
    return await client.post("/import", params=params, files=files)


async def exported(client: httpx.AsyncClient, **params: str) -> zipfile.ZipFile:
    response = await client.get("/export", params=params)
    assert response.status_code == 200, response.text
    return zipfile.ZipFile(io.BytesIO(response.content))


async def documents(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    listed = (await client.get("/images", params={"limit": 1000})).json()["items"]
    return {item["file"]: item for item in listed}


COCO_TRAIN = {
    "images": [
        {"id": 7, "file_name": "cats/a.png", "width": 64, "height": 48, "license": 2, "date_captured": "2024-01-02"},
        {"id": 9, "file_name": "b.png", "width": 64, "height": 48, "license": 1},
    ],
    "annotations": [
        {"id": 70, "image_id": 7, "category_id": 3, "bbox": [1.5, 2.25, 10.125, 5], "area": 40.5, "iscrowd": 0,
         "segmentation": [[1.5, 2.25, 11.625, 2.25, 11.625, 7.25]]},
        {"id": 71, "image_id": 7, "category_id": 1, "bbox": [0, 0, 64, 48], "area": 3072, "iscrowd": 1,
         "segmentation": []},
        {"id": 90, "image_id": 9, "category_id": 3, "bbox": [20, 10, 4, 4], "area": 16, "iscrowd": 0,
         "segmentation": [], "score": 0.75},
    ],
    "categories": [
        {"id": 1, "name": "crowd", "supercategory": "people"},
        {"id": 3, "name": "cat", "supercategory": "animal"},
    ],
}  # fmt: skip
COCO_VAL = {
    "images": [{"id": 1, "file_name": "c.png", "width": 64, "height": 48, "license": 1}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 3, "bbox": [3, 4, 5, 6], "area": 30, "iscrowd": 0, "segmentation": []}
    ],
    "categories": COCO_TRAIN["categories"],  # a dataset's splits share their categories
}


def coco_archive() -> Entries:
    image = make_image(64, 48)
    return [
        ("annotations/instances_train.json", json.dumps(COCO_TRAIN).encode()),
        ("annotations/instances_val.json", json.dumps(COCO_VAL).encode()),
        ("images/train/cats/a.png", image),
        ("images/train/b.png", image),
        ("images/val/c.png", image),
    ]


def comparable(instances: dict[str, Any]) -> dict[str, Any]:
    """The dataset apart from its ids: images by file, annotations by their image's file and
    category name, in order; categories by name."""
    files = {image["id"]: image["file_name"] for image in instances["images"]}
    names = {category["id"]: category["name"] for category in instances["categories"]}
    return {
        "images": sorted(
            ({key: value for key, value in image.items() if key != "id"} for image in instances["images"]),
            key=lambda image: image["file_name"],
        ),
        "annotations": sorted(
            (
                {
                    **{key: value for key, value in annotation.items() if key not in ("id", "image_id", "category_id")},
                    "file": files[annotation["image_id"]],
                    "category": names[annotation["category_id"]],
                }
                for annotation in instances["annotations"]
            ),
            key=lambda annotation: (annotation["file"], annotation["bbox"]),
        ),
        "categories": sorted(
            ({key: value for key, value in category.items() if key != "id"} for category in instances["categories"]),
            key=lambda category: category["name"],
        ),
    }


async def test_coco_in_and_out_again_is_the_same_dataset_apart_from_ids(client: httpx.AsyncClient) -> None:
    response = await imported(client, coco_archive())  # recognised from its contents
    assert response.status_code == 200, response.text
    assert (response.json()["imported"], response.json()["skipped"]) == (3, [])
    stored = await documents(client)
    assert stored["cats/a.png"]["data"]["split"] == "train"
    assert stored["b.png"]["data"]["boxes"] == [
        {"label": "cat", "x": 20, "y": 10, "w": 4, "h": 4, "area": 16, "iscrowd": 0, "score": 0.75,
         "supercategory": "animal"}
    ]  # fmt: skip
    archive = await exported(client, format="coco", split="split")
    for split, original in (("train", COCO_TRAIN), ("val", COCO_VAL)):
        again = json.loads(archive.read(f"annotations/instances_{split}.json"))
        assert _same(comparable(again), comparable(original))
        for image in original["images"]:
            assert archive.read(f"images/{split}/{image['file_name']}") == make_image(64, 48)


def _same(left: Any, right: Any) -> bool:
    """Equal, numbers to 1e-6 (pytest.approx does not reach into nested lists of dicts)."""
    if isinstance(left, dict) and isinstance(right, dict):
        assert left.keys() == right.keys(), (left, right)
        return all(_same(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        assert len(left) == len(right), (left, right)
        return all(_same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        assert abs(left - right) <= 1e-6, (left, right)
        return True
    assert left == right
    return True


YOLO_NAMES = {0: "dog", 1: "cat"}
YOLO_LABELS = {
    "train/a": "1 0.5 0.5 0.25 0.5\n0 0.1234567 0.2345678 0.05 0.0625\n",
    "train/deep/b": "0 0.25 0.25 0.5 0.25 0.5 0.5\n",
    "val/c": "",
}


def yolo_archive() -> Entries:
    image = make_image(64, 48)
    described = {"path": ".", "train": "images/train", "val": "images/val", "names": YOLO_NAMES}
    entries = [("data.yaml", yaml.safe_dump(described).encode())]
    for stem, lines in YOLO_LABELS.items():
        split, _, rest = stem.partition("/")
        entries += [(f"images/{split}/{rest}.png", image), (f"labels/{split}/{rest}.txt", lines.encode())]
    return entries


def by_name(lines: str, names: dict[int, str]) -> list[list[Any]]:
    rows = [line.split() for line in lines.splitlines() if line.strip()]
    return sorted([[names[int(row[0])], *(float(value) for value in row[1:])] for row in rows], key=str)


async def test_yolo_in_and_out_again_has_the_same_boxes_and_segments(client: httpx.AsyncClient) -> None:
    response = await imported(client, yolo_archive())
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 3
    stored = await documents(client)
    (segment,) = stored["deep/b.png"]["data"]["boxes"]
    assert segment["label"] == "dog" and segment["polygon"] == [16, 12, 32, 12, 32, 24]
    archive = await exported(client, format="yolo", split="split")
    names = {number: name for number, name in yaml.safe_load(archive.read("data.yaml"))["names"].items()}
    for stem, lines in YOLO_LABELS.items():
        split, _, rest = stem.partition("/")
        again = archive.read(f"labels/{split}/{rest}.txt").decode()
        assert _same(by_name(again, names), by_name(lines, YOLO_NAMES))


async def test_hf_and_class_folders_come_back_as_the_convention(client: httpx.AsyncClient, app: FastAPI) -> None:
    image = make_image(64, 48)
    line = {"file_name": "a.png", "label": "cat", "iso": 100, "objects": [{"bbox": [1, 2, 3, 4], "category": "cat"}]}
    response = await imported(client, [("train/metadata.jsonl", json.dumps(line).encode()), ("train/a.png", image)])
    assert response.status_code == 200, response.text
    stored = await documents(client)
    assert stored["a.png"]["data"] == {
        "label": "cat",
        "iso": 100,
        "split": "train",
        "boxes": [{"label": "cat", "x": 1, "y": 2, "w": 3, "h": 4}],
    }
    folders = [("train/cat/x.png", image), ("train/dog/x.png", image), ("test/_unlabelled/y.png", image)]
    response = await imported(client, folders, format="imagefolder")
    assert response.status_code == 200, response.text
    stored = await documents(client)
    assert stored["x.png"]["data"] == {"label": ["cat", "dog"], "split": "train"}
    assert stored["y.png"]["data"] == {"split": "test"}
    assert await stored_keys(app) == {"a.png", "x.png", "y.png"}


async def test_our_own_export_of_every_format_imports_back(client: httpx.AsyncClient) -> None:
    image = make_image(64, 48)
    response = await imported(client, [("train/metadata.jsonl", b'{"file_name": "a.png", "label": "cat"}\n'),
                                       ("train/a.png", image)])  # fmt: skip
    assert response.status_code == 200
    await client.patch(
        f"/images/{(await documents(client))['a.png']['_id']}",
        json={"boxes": [{"label": "cat", "x": 1, "y": 1, "w": 2, "h": 2}]},
    )
    for format in ("coco", "yolo", "hf"):
        archive = await exported(client, format=format, split="split")
        content = io.BytesIO()
        with zipfile.ZipFile(content, "w") as again:
            for name in archive.namelist():
                again.writestr(name, archive.read(name))
        assert (await client.delete("/images")).status_code == 200
        response = await client.post("/import", files={"archive": ("x.zip", content.getvalue(), "application/zip")})
        assert response.status_code == 200, (format, response.text)
        data = (await documents(client))["a.png"]["data"]
        assert data["split"] == "train" and data["boxes"][0]["label"] == "cat", (format, data)
        assert data["boxes"][0]["x"] == pytest.approx(1) and data["boxes"][0]["w"] == pytest.approx(2)


@pytest.mark.parametrize(
    ("entries", "params", "detail"),
    [
        (
            [("annotations/instances_train.json", b'{"images": [}')],
            {},
            "annotations/instances_train.json",
        ),
        (
            [
                ("annotations/instances_train.json", json.dumps({**COCO_TRAIN, "categories": []}).encode()),
                ("images/train/cats/a.png", make_image(64, 48)),
                ("images/train/b.png", make_image(64, 48)),
            ],
            {},
            "annotation 70",
        ),
        (
            [
                ("data.yaml", b"names: [a]\n"),
                ("images/train/a.png", make_image(64, 48)),
                ("labels/train/a.txt", b"4 0.5 0.5 0.1 0.1\n"),
            ],
            {},
            "labels/train/a.txt line 1",
        ),  # fmt: skip
        (
            [("train/metadata.jsonl", b'{"file_name": "../up.png"}\n'), ("up.png", make_image())],
            {},
            "train/metadata.jsonl line 1",
        ),
        ([("a.png", make_image()), ("b.png", make_image())], {"format": "imagefolder"}, "a.png"),
        ([("a.png", make_image())], {"format": "tiff"}, "format must be one of"),
    ],
)
async def test_a_bad_archive_is_a_400_naming_where_with_nothing_written(
    client: httpx.AsyncClient, app: FastAPI, entries: Entries, params: dict[str, str], detail: str
) -> None:
    response = await imported(client, entries, **params)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert await documents(client) == {}
    assert await stored_keys(app) == set()


async def test_a_legacy_archive_is_never_taken_for_class_folders(client: httpx.AsyncClient) -> None:
    image = make_image(64, 48)
    legacy = [("set/cat/a.png", image), ("mongodb_data.json", b"[]"), ("b.png", image)]
    response = await imported(client, legacy)
    assert response.status_code == 200, response.text
    assert sorted(await documents(client)) == ["b.png", "set/cat/a.png"]
    assert all("label" not in document["data"] for document in (await documents(client)).values())


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_a_storage_outage_part_way_reports_exactly_what_was_imported(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    root = app.state.services.storage.root
    (root / "blocked").symlink_to("blocked")  # a link loop: the disk cannot store anything there
    image = make_image(64, 48)
    coco = {
        "images": [
            {"id": number, "file_name": name, "width": 64, "height": 48}
            for number, name in enumerate(["a.png", "blocked/b.png", "c.png"], start=1)
        ],
        "annotations": [],
        "categories": [],
    }
    entries = [("annotations/instances_all.json", json.dumps(coco).encode())]
    entries += [(f"images/all/{image_entry['file_name']}", image) for image_entry in coco["images"]]
    response = await imported(client, entries)
    assert response.status_code == 503
    body = response.json()
    stored = await documents(client)
    assert "blocked/b.png" not in stored
    assert body["imported"] == len(stored) and f"stopped after {len(stored)} images" in body["detail"]
    for document in stored.values():
        assert (await client.get(f"/images/{document['_id']}/image")).status_code == 200
