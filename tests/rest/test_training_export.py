"""`GET /export?format=yolo|imagefolder|hf|webdataset`, splits, and the report, each format read
back by its own ecosystem's reader: Hugging Face `datasets`, `webdataset`, PyYAML, and torchvision's
class-folder convention."""

from __future__ import annotations

import gc
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.utils.archives import import_zip, make_zip
from tests.utils.images import make_image
from tests.utils.service import upload

# The readers must never reach the Hub: everything they load is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

CAT = {"label": "cat", "x": 8, "y": 4, "w": 16, "h": 12}
DOG = {"label": "dog", "x": 0, "y": 0, "w": 64, "h": 48}


async def stored(client: httpx.AsyncClient, file: str, data: dict[str, Any], *, width: int = 64) -> str:
    response = await upload(client, make_image(width, 48), fields={"file": file, "data": json.dumps(data)})
    assert response.status_code == 200, response.text
    image_id: str = response.json()["_id"]
    return image_id


async def exported(client: httpx.AsyncClient, format: str, path: str = "/export", **params: str) -> zipfile.ZipFile:
    response = await client.get(path, params={"format": format, **params})
    assert response.status_code == 200, response.text
    return zipfile.ZipFile(io.BytesIO(response.content))


def report_of(archive: zipfile.ZipFile) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(archive.read("report.json"))
    return report


async def test_yolo_writes_normalised_boxes_segments_and_a_data_yaml(client: httpx.AsyncClient) -> None:
    triangle = {"label": "dog", "x": 16, "y": 12, "w": 32, "h": 24, "polygon": [16, 12, 48, 12, 48, 36]}
    await stored(client, "set/a.png", {"label": "indoor", "boxes": [CAT, {**CAT, "score": 0.5}], "iso": 200})
    await stored(client, "b.png", {"boxes": [triangle]})
    await stored(client, "c.png", {})
    archive = await exported(client, "yolo", sort="file")
    assert sorted(archive.namelist()) == [
        "data.yaml",
        "images/all/b.png",
        "images/all/c.png",
        "images/all/set/a.png",
        "labels/all/b.txt",
        "labels/all/c.txt",
        "labels/all/set/a.txt",
        "report.json",
    ]
    described = yaml.safe_load(archive.read("data.yaml"))
    assert described["names"] == {0: "cat", 1: "dog"}
    assert (described["train"], described["val"], described["nc"]) == ("images/all", "images/all", 2)
    lines = archive.read("labels/all/set/a.txt").decode().splitlines()
    assert [[float(value) for value in line.split()] for line in lines] == [[0, 0.25, 10 / 48, 0.25, 0.25]] * 2
    (segment,) = archive.read("labels/all/b.txt").decode().splitlines()
    assert [float(value) for value in segment.split()] == [1, 0.25, 0.25, 0.75, 0.25, 0.75, 0.75]
    assert archive.read("labels/all/c.txt") == b""
    report = report_of(archive)
    assert report["splits"] == {"all": {"images": 3}}
    assert {(entry["field"], entry["images"]) for entry in report["notCarried"]} == {
        ("data.label", 1),
        ("data.boxes[].score", 1),
        ("data.iso", 1),
    }


async def test_a_split_key_gives_one_split_per_value_and_reports_the_images_without_one(
    client: httpx.AsyncClient,
) -> None:
    await stored(client, "a.png", {"subset": "train", "boxes": [CAT]})
    await stored(client, "b.png", {"subset": "val", "boxes": [DOG]})
    await stored(client, "c.png", {"subset": "train"})
    await stored(client, "d.png", {})
    archive = await exported(client, "yolo", split="subset")
    names = set(archive.namelist())
    assert {"images/train/a.png", "images/train/c.png", "images/val/b.png", "labels/val/b.txt"} <= names
    assert not any("d.png" in name for name in names)
    described = yaml.safe_load(archive.read("data.yaml"))
    assert (described["train"], described["val"]) == ("images/train", "images/val")
    report = report_of(archive)
    assert report["splits"] == {"train": {"images": 2}, "val": {"images": 1}}
    assert report["notInAnySplit"] == 1


async def test_views_name_the_splits_and_may_not_overlap(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"kind": "x", "boxes": [CAT]})
    await stored(client, "b.png", {"kind": "y", "boxes": [DOG]})
    for name, condition in (("xs", {"data.kind": "x"}), ("ys", {"data.kind": "y"}), ("all", {})):
        assert (await client.put(f"/views/{name}", json={"filter": condition})).status_code in (200, 201)
    archive = await exported(client, "coco", splits="train:xs,val:ys")
    train = json.loads(archive.read("annotations/instances_train.json"))
    val = json.loads(archive.read("annotations/instances_val.json"))
    assert [image["file_name"] for image in train["images"]] == ["a.png"]
    assert [image["file_name"] for image in val["images"]] == ["b.png"]
    assert {"images/train/a.png", "images/val/b.png"} <= set(archive.namelist())
    overlapping = await client.get("/export", params={"format": "coco", "splits": "train:xs,val:all"})
    assert overlapping.status_code == 400
    assert "is in more than one split (train, val)" in overlapping.json()["detail"]
    unknown = await client.get("/export", params={"format": "coco", "splits": "train:nope"})
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (
            {"format": "yolo", "split": "subset", "splits": "a:b"},
            "Give split (a metadata key) or splits (views), not both.",
        ),
        ({"split": "subset"}, "split, splits and shardSize apply to the training formats (format=coco, …) only."),
        ({"format": "coco", "shardSize": "5"}, "shardSize applies to format=webdataset only."),
        ({"format": "webdataset", "shardSize": "0"}, "shardSize must be between 1 and 100000."),
        ({"format": "hf", "splits": "train"}, "splits must be written split:view, comma-separated"),
    ],
)
async def test_bad_options_are_a_400_saying_why(client: httpx.AsyncClient, params: dict[str, str], detail: str) -> None:
    response = await client.get("/export", params=params)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)


async def test_a_split_value_that_cannot_be_a_folder_is_a_400(client: httpx.AsyncClient) -> None:
    image_id = await stored(client, "a.png", {"subset": ["train", "val"]})
    response = await client.get("/export", params={"format": "hf", "split": "subset"})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"Image {image_id} has data.subset that is not a string or a whole number, so it names no split."
    )
    await client.patch(f"/images/{image_id}", json={"subset": "../up"})
    response = await client.get("/export", params={"format": "hf", "split": "subset"})
    assert response.status_code == 400
    assert "cannot be a split's folder name" in response.json()["detail"]


async def test_class_folders_load_with_the_class_folder_convention(client: httpx.AsyncClient, tmp_path: Path) -> None:
    from datasets import load_dataset  # noqa: PLC0415  (heavy: only the tests that read with it)

    await stored(client, "a.png", {"label": "cat", "subset": "train"})
    await stored(client, "b.png", {"label": ["cat", "dog"], "subset": "train", "boxes": [CAT]})
    await stored(client, "c.png", {"label": "dog", "subset": "test"})
    await stored(client, "d.png", {"subset": "test"})
    archive = await exported(client, "imagefolder", split="subset")
    assert sorted(name for name in archive.namelist() if name != "report.json") == [
        "test/_unlabelled/d.png",
        "test/dog/c.png",
        "train/cat/a.png",
        "train/cat/b.png",
        "train/dog/b.png",
    ]
    assert archive.read("train/cat/b.png") == archive.read("train/dog/b.png")
    report = report_of(archive)
    # The split key is carried by the layout (the split's folder), so it is not listed.
    assert {(entry["field"], entry["images"]) for entry in report["notCarried"]} == {("data.boxes", 1)}
    archive.extractall(tmp_path / "data")
    (tmp_path / "data" / "report.json").unlink()
    loaded = load_dataset("imagefolder", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    classes = loaded["train"].features["label"].names
    assert sorted(classes) == ["_unlabelled", "cat", "dog"]
    assert sorted(classes[row["label"]] for row in loaded["train"]) == ["cat", "cat", "dog"]
    assert sorted(classes[row["label"]] for row in loaded["test"]) == ["_unlabelled", "dog"]


async def test_a_label_that_cannot_be_a_folder_is_a_400(client: httpx.AsyncClient) -> None:
    image_id = await stored(client, "a.png", {"label": "cats/dogs"})
    response = await client.get("/export", params={"format": "imagefolder"})
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == f"Image {image_id} has the label 'cats/dogs', which cannot be a class folder's name."
    )


async def test_hugging_face_datasets_loads_the_hf_export_with_labels_and_objects(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    from datasets import load_dataset  # noqa: PLC0415

    await stored(client, "pets/a.png", {"label": "cat", "subset": "train", "boxes": [CAT, {**DOG, "score": 0.9}]})
    await stored(client, "b.png", {"label": "dog", "subset": "train"})
    await stored(client, "c.png", {"label": "cat", "subset": "validation", "boxes": [{**CAT, "score": 0.4}]})
    archive = await exported(client, "hf", split="subset", sort="file")
    assert sorted(archive.namelist()) == [
        "report.json",
        "train/b.png",
        "train/metadata.jsonl",
        "train/pets/a.png",
        "validation/c.png",
        "validation/metadata.jsonl",
    ]
    assert (report_of(archive)["notCarried"], report_of(archive)["nullThroughoutSplits"]) == ([], [])
    archive.extractall(tmp_path / "data")
    (tmp_path / "data" / "report.json").unlink()
    loaded = load_dataset("imagefolder", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded) == ["train", "validation"]
    train = sorted(loaded["train"], key=lambda row: row["label"])
    assert [row["label"] for row in train] == ["cat", "dog"]
    assert train[0]["image"].size == (64, 48)
    assert train[0]["objects"] == [
        {"bbox": [8, 4, 16, 12], "category": "cat", "score": None},
        {"bbox": [0, 0, 64, 48], "category": "dog", "score": 0.9},
    ]
    assert train[1]["objects"] == []
    assert [row["label"] for row in loaded["validation"]] == ["cat"]
    assert [box["score"] for box in loaded["validation"][0]["objects"]] == [0.4]


async def test_the_hf_report_names_a_column_null_throughout_a_split(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"subset": "train", "iso": 100, "boxes": [{**CAT, "score": 0.5}]})
    await stored(client, "b.png", {"subset": "test"})
    archive = await exported(client, "hf", split="subset")
    assert report_of(archive)["nullThroughoutSplits"] == [
        {"column": "iso", "splits": ["test"]},
        {"column": "objects.bbox", "splits": ["test"]},
        {"column": "objects.category", "splits": ["test"]},
        {"column": "objects.score", "splits": ["test"]},
    ]


# webdataset leaves its last shard's file for the garbage collector to close.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
async def test_webdataset_iterates_the_shards(client: httpx.AsyncClient, tmp_path: Path) -> None:
    import webdataset  # noqa: PLC0415

    ids = [await stored(client, f"n/{number}.v2.png", {"label": "cat", "n": number}) for number in range(5)]
    archive = await exported(client, "webdataset", sort="data.n", shardSize="2")
    shards = sorted(name for name in archive.namelist() if name.endswith(".tar"))
    assert shards == ["all/shard-000000.tar", "all/shard-000001.tar", "all/shard-000002.tar"]
    assert report_of(archive)["shards"] == 3
    archive.extractall(tmp_path)
    urls = [str(tmp_path / shard) for shard in shards]
    samples = list(webdataset.WebDataset(urls, shardshuffle=False, empty_check=False).decode("pil"))
    gc.collect()
    assert [sample["__key__"] for sample in samples] == ["000000", "000001", "000002", "000003", "000004"]
    assert [sample["json"]["file"] for sample in samples] == [f"n/{number}.v2.png" for number in range(5)]
    assert [sample["json"]["id"] for sample in samples] == ids
    assert [sample["json"]["data"] for sample in samples] == [{"label": "cat", "n": number} for number in range(5)]
    assert all(sample["png"].size == (64, 48) for sample in samples)


async def test_an_image_whose_file_is_gone_is_left_out_and_reported(client: httpx.AsyncClient, app: Any) -> None:
    await stored(client, "a.png", {"boxes": [CAT]})
    await stored(client, "b.png", {"boxes": [DOG]})
    await app.state.services.storage.delete("b.png")
    archive = await exported(client, "yolo")
    assert "images/all/b.png" not in archive.namelist()
    assert "labels/all/b.txt" not in archive.namelist()
    assert report_of(archive)["missingFiles"] == ["b.png"]


async def test_a_snapshot_exports_in_a_training_format_as_it_was(client: httpx.AsyncClient) -> None:
    image_id = await stored(client, "a.png", {"label": "cat", "boxes": [CAT]})
    await stored(client, "b.png", {"label": "dog"})
    assert (await client.post("/snapshots", json={"name": "v1"})).status_code == 201
    await client.patch(f"/images/{image_id}", json={"label": "lion", "boxes": [DOG]})
    archive = await exported(client, "coco", path="/snapshots/v1/export", sort="file")
    instances = json.loads(archive.read("annotations/instances_all.json"))
    assert [category["name"] for category in instances["categories"]] == ["cat"]
    assert sorted(image["labels"][0] for image in instances["images"]) == ["cat", "dog"]


async def test_a_snapshot_image_whose_bytes_changed_since_has_its_frozen_bytes(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"boxes": [CAT]})
    await stored(client, "b.png", {"boxes": [DOG]})
    before = (await client.get("/images", params={"file": "b.png"})).json()["items"][0]
    frozen_bytes = (await client.get(f"/images/{before['_id']}/file")).content
    assert (await client.post("/snapshots", json={"name": "v1"})).status_code == 201
    await stored(client, "b.png", {"boxes": [DOG]}, width=60)  # new bytes at the same path
    archive = await exported(client, "yolo", path="/snapshots/v1/export")
    assert archive.read("images/all/b.png") == frozen_bytes
    report = report_of(archive)
    assert (report["fileChanged"], report["splits"]) == ([], {"all": {"images": 2}})


async def test_a_number_and_its_text_in_the_split_key_are_a_400(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"fold": 1})
    await stored(client, "b.png", {"fold": "1"})
    response = await client.get("/export", params={"format": "webdataset", "split": "fold", "sort": "file"})
    assert response.status_code == 400
    assert response.json()["detail"] == "data.fold holds both 1 and '1', which would name the same split."


async def test_webdataset_shards_each_hold_one_split(client: httpx.AsyncClient, tmp_path: Path) -> None:
    for number in range(6):
        await stored(client, f"{number}.png", {"fold": number % 2, "n": number})
    archive = await exported(client, "webdataset", split="fold", shardSize="2", sort="data.n")
    assert sorted(name for name in archive.namelist() if name.endswith(".tar")) == [
        "0/shard-000000.tar",
        "0/shard-000001.tar",
        "1/shard-000000.tar",
        "1/shard-000001.tar",
    ]
    for fold in ("0", "1"):
        files, keys = [], []
        for shard in ("shard-000000.tar", "shard-000001.tar"):
            with tarfile.open(fileobj=io.BytesIO(archive.read(f"{fold}/{shard}"))) as tar:
                keys += [member.name for member in tar]
                files += [json.load(tar.extractfile(member))["file"] for member in tar if member.name.endswith(".json")]  # type: ignore[arg-type]
        assert files == [f"{number}.png" for number in range(int(fold), 6, 2)]
        assert keys == ["000000.png", "000000.json", "000001.png", "000001.json", "000002.png", "000002.json"]


async def test_a_key_with_too_many_values_is_no_split_key(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.domain.archives import training  # noqa: PLC0415

    for number in range(4):
        await stored(client, f"{number}.png", {"n": number})
    monkeypatch.setattr(training, "MAX_SPLITS", 3)  # 100 in service; four images show it as well
    response = await client.get("/export", params={"format": "coco", "split": "n"})
    assert response.status_code == 400
    assert response.json()["detail"] == "data.n takes more than 3 values; a split key names a few splits."


# torchvision's IMG_EXTENSIONS: what its ImageFolder takes for an image.
TORCHVISION_IMAGES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def torchvision_image_folder(root: Path) -> list[tuple[str, str]]:
    """(path under the split, class) per sample, as torchvision's `find_classes` and
    `make_dataset` give them: the classes are the folders directly under the root, and every image
    found anywhere beneath a class folder takes that class (torchvision itself pulls torch)."""
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    samples = []
    for name in classes:
        for folder, _, files in sorted(os.walk(root / name, followlinks=True)):
            for file in sorted(files):
                if file.lower().endswith(TORCHVISION_IMAGES):
                    samples.append((Path(folder, file).relative_to(root).as_posix(), name))
    return samples


async def test_class_folders_put_the_class_first_under_the_split_whatever_folders_the_path_has(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    labels = {
        "a.png": ["cat"],
        "set/a.png": ["cat"],
        "set/b.png": ["dog"],
        "set/deep/c.png": ["cat", "dog"],
        "x/y/z/d.png": [],
        "cat/e.png": ["dog"],  # a folder named like another class: still the first folder decides
    }
    for file, label in labels.items():
        await stored(client, file, {"label": label, "subset": "train" if "/" in file else "val"})
    archive = await exported(client, "imagefolder", split="subset")
    assert "train/cat/set/a.png" in archive.namelist()
    archive.extractall(tmp_path)
    read = [(split, *sample) for split in ("train", "val") for sample in torchvision_image_folder(tmp_path / split)]
    classes: dict[str, set[str]] = {}
    for split, path, name in read:
        assert path.startswith(f"{name}/")
        classes.setdefault(path.removeprefix(f"{name}/"), set()).add(name)
        assert split == ("train" if path.count("/") > 1 else "val")
    assert classes == {file: set(label) or {"_unlabelled"} for file, label in labels.items()}


@pytest.mark.parametrize("format", ["coco", "yolo"])
async def test_a_view_exports_exactly_its_images(client: httpx.AsyncClient, format: str) -> None:
    await stored(client, "set/a.png", {"label": "cat", "boxes": [CAT]})
    await stored(client, "b.png", {"label": "dog", "boxes": [DOG]})
    await stored(client, "c.png", {"label": "cat"})
    await stored(client, "d.png", {})
    view = {"filter": {"data.label": "cat"}, "sort": "file"}
    assert (await client.put("/views/cats", json=view)).status_code == 200
    archive = await exported(client, format, view="cats")
    images = sorted(name.removeprefix("images/all/") for name in archive.namelist() if name.startswith("images/"))
    assert images == ["c.png", "set/a.png"]
    assert report_of(archive)["splits"] == {"all": {"images": 2}}
    if format == "coco":
        instances = json.loads(archive.read("annotations/instances_all.json"))
        assert [image["file_name"] for image in instances["images"]] == ["c.png", "set/a.png"]
        assert [category["name"] for category in instances["categories"]] == ["cat"]
    else:
        assert sorted(name for name in archive.namelist() if name.startswith("labels/")) == [
            "labels/all/c.txt",
            "labels/all/set/a.txt",
        ]


@pytest.mark.parametrize(
    ("key", "value", "other"),
    [
        ("split", "subset", "fold"),
        ("splits", "train:xs", "val:ys"),
        ("labelField", "kind", "label"),
        ("boxesField", "ann.objects", "boxes"),
        ("shardSize", 5, 6),
    ],
)
async def test_the_training_options_are_metadata_matches_on_the_image_list(
    client: httpx.AsyncClient, key: str, value: Any, other: Any
) -> None:
    await stored(client, "a.png", {key: value})
    await stored(client, "b.png", {key: other})
    await stored(client, "c.png", {})
    listed = (await client.get("/images", params={key: str(value)})).json()
    assert [item["file"] for item in listed["items"]] == ["a.png"]
    assert listed["total"] == 1


async def test_a_webdataset_shard_holds_1000_samples_unless_asked(client: httpx.AsyncClient) -> None:
    # One import of 1,001 tiny images seeds them in a few seconds (uploads one by one take far longer).
    png = make_image(2, 2)
    response = await import_zip(client, make_zip([(f"{number:04}.png", png) for number in range(1001)]))
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 1001
    archive = await exported(client, "webdataset", sort="file")
    shards = sorted(name for name in archive.namelist() if name.endswith(".tar"))
    assert shards == ["all/shard-000000.tar", "all/shard-000001.tar"]
    samples = []
    for shard in shards:
        with tarfile.open(fileobj=io.BytesIO(archive.read(shard))) as tar:
            samples.append(sum(member.name.endswith(".png") for member in tar))
    assert samples == [1000, 1]
    assert report_of(archive)["shards"] == 2
