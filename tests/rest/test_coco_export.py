"""`GET /export?format=coco`, read back by pycocotools, COCO's own reader."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from pycocotools.coco import COCO

from tests.utils.images import make_image
from tests.utils.service import upload

CAT = {"label": "cat", "x": 1, "y": 2, "w": 10, "h": 5}


async def stored(client: httpx.AsyncClient, file: str, data: dict[str, Any], *, width: int = 64) -> None:
    response = await upload(client, make_image(width, 48), fields={"file": file, "data": json.dumps(data)})
    assert response.status_code == 200, response.text


async def exported(client: httpx.AsyncClient, **params: str) -> zipfile.ZipFile:
    response = await client.get("/export", params={"format": "coco", **params})
    assert response.status_code == 200, response.text
    return zipfile.ZipFile(io.BytesIO(response.content))


async def test_pycocotools_loads_the_export_with_its_images_boxes_and_categories(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    polygon = {"label": "dog", "x": 20, "y": 10, "w": 20, "h": 20, "polygon": [20, 10, 40, 10, 40, 30]}
    await stored(client, "set/a.png", {"label": "indoor", "boxes": [CAT, {**CAT, "x": 30, "score": 0.8}]})
    await stored(client, "set/b.png", {"boxes": [{**polygon, "occluded": True, "iscrowd": 1, "id": "d1"}]})
    await stored(client, "c.png", {"label": "empty"})
    archive = await exported(client, sort="file")
    assert sorted(archive.namelist()) == [
        "annotations/instances_all.json",
        "images/all/c.png",
        "images/all/set/a.png",
        "images/all/set/b.png",
        "report.json",
    ]
    archive.extractall(tmp_path)
    coco = COCO(str(tmp_path / "annotations" / "instances_all.json"))
    assert [category["name"] for category in coco.loadCats(coco.getCatIds())] == ["cat", "dog"]
    images = {image["file_name"]: image for image in coco.loadImgs(coco.getImgIds())}
    assert sorted(images) == ["c.png", "set/a.png", "set/b.png"]
    assert all((tmp_path / "images" / "all" / name).is_file() for name in images)
    assert (images["set/a.png"]["width"], images["set/a.png"]["height"]) == (64, 48)
    a_boxes = coco.loadAnns(coco.getAnnIds(imgIds=[images["set/a.png"]["id"]]))
    assert [annotation["bbox"] for annotation in a_boxes] == [[1, 2, 10, 5], [30, 2, 10, 5]]
    assert [annotation.get("score") for annotation in a_boxes] == [None, 0.8]
    assert all(annotation["area"] == 50 and annotation["iscrowd"] == 0 for annotation in a_boxes)
    (dog,) = coco.loadAnns(coco.getAnnIds(imgIds=[images["set/b.png"]["id"]]))
    assert dog["category_id"] == coco.getCatIds(catNms=["dog"])[0]
    assert dog["segmentation"] == [[20, 10, 40, 10, 40, 30]]
    assert (dog["area"], dog["iscrowd"], dog["attributes"]) == (200, 1, {"occluded": True, "id": "d1"})
    assert coco.getAnnIds(imgIds=[images["c.png"]["id"]]) == []
    assert images["c.png"]["labels"] == ["empty"]
    report = json.loads(archive.read("report.json"))
    assert (report["images"], report["annotations"], report["missingFiles"]) == (3, 3, [])


async def test_ids_are_the_same_in_two_exports_of_the_same_data(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"boxes": [CAT]})
    await stored(client, "b.png", {"boxes": [{**CAT, "label": "dog"}, CAT]})
    first = (await exported(client, sort="file")).read("annotations/instances_all.json")
    again = (await exported(client, sort="file")).read("annotations/instances_all.json")
    assert json.loads(first) == json.loads(again)


async def test_a_bad_box_is_a_400_naming_the_image_and_the_box_before_any_byte(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"boxes": [CAT]})
    await stored(client, "b.png", {"boxes": [CAT, {**CAT, "x": 60}]})
    listed = (await client.get("/images", params={"file": "b.png"})).json()["items"][0]
    response = await client.get("/export", params={"format": "coco"})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"Image {listed['_id']}: box 1 of data.boxes lies outside the 64x48 image:"
        " its bottom-right corner is at (70, 7)."
    )


async def test_named_fields_and_a_filter_choose_what_is_exported(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"split": "train", "ann": {"objects": [CAT]}})
    await stored(client, "b.png", {"split": "val", "ann": {"objects": [CAT]}})
    archive = await exported(client, boxesField="ann.objects", filter=json.dumps({"data.split": "train"}))
    instances = json.loads(archive.read("annotations/instances_all.json"))
    assert [image["file_name"] for image in instances["images"]] == ["a.png"]
    assert [annotation["bbox"] for annotation in instances["annotations"]] == [[1, 2, 10, 5]]


async def test_format_is_a_metadata_match_everywhere_but_export(client: httpx.AsyncClient, app: FastAPI) -> None:
    await stored(client, "a.png", {"format": "coco"})
    await stored(client, "b.png", {"format": "yolo"})
    listed = (await client.get("/images", params={"format": "coco"})).json()
    assert [item["file"] for item in listed["items"]] == ["a.png"]
    unknown = await client.get("/export", params={"format": "tiff"})
    assert unknown.status_code == 400
    assert (
        unknown.json()["detail"]
        == "format must be legacy or one of coco, yolo, imagefolder, hf, webdataset, not 'tiff'."
    )


async def test_a_category_takes_the_supercategory_its_boxes_name(client: httpx.AsyncClient) -> None:
    await stored(client, "a.png", {"boxes": [CAT]})
    await stored(client, "b.png", {"boxes": [{**CAT, "supercategory": "animal"}, {**CAT, "label": "car"}]})
    instances = json.loads((await exported(client, sort="file")).read("annotations/instances_all.json"))
    assert instances["categories"] == [
        {"id": 1, "name": "car", "supercategory": ""},
        {"id": 2, "name": "cat", "supercategory": "animal"},
    ]
    assert all("attributes" not in annotation for annotation in instances["annotations"])
