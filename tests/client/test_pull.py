"""`imagestore pull`: the files at their paths (resumable, checked), or a training format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.config import Settings
from tests.client.conftest import run, write_images


def files_under(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_pull_writes_the_source_bytes_and_a_rerun_fetches_only_what_differs(service_url: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    written = write_images(source, 40)
    assert run(service_url, "push", str(source), "--prefix", "set").status == 0

    dest = tmp_path / "copy"
    pulled = run(service_url, "pull", str(dest))
    assert pulled.status == 0, pulled.err
    assert "40 images: received 40" in pulled.out, pulled.out
    assert files_under(dest) == {f"set/{relative}": data for relative, data in written.items()}

    (dest / "set/line0/day0/img00000.png").write_bytes(b"scribbled over")
    (dest / "set/line1/day1/img00001.png").unlink()
    again = run(service_url, "pull", str(dest))
    assert again.status == 0, again.err
    assert "received 2" in again.out and "already there 38" in again.out, again.out
    assert files_under(dest) == {f"set/{relative}": data for relative, data in written.items()}


def test_pull_a_filter_a_view_and_a_snapshot(service_url: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    written = write_images(source, 12)
    assert run(service_url, "push", str(source)).status == 0
    cats = {relative for relative in written if int(relative[-9:-4]) % 4 == 0}

    by_filter = tmp_path / "cats"
    result = run(service_url, "pull", str(by_filter), "--filter", json.dumps({"data.label": "cat"}))
    assert result.status == 0, result.err
    assert set(files_under(by_filter)) == cats

    assert run(service_url, "views", "save", "dogs", "--filter", '{"data.label": "dog"}').status == 0
    by_view = tmp_path / "dogs"
    assert run(service_url, "pull", str(by_view), "--view", "dogs").status == 0
    assert set(files_under(by_view)) == {r for r in written if int(r[-9:-4]) % 4 == 2}

    assert run(service_url, "snapshots", "create", "v1", "--filter", '{"data.label": "cat"}').status == 0
    changed = sorted(cats)[0]
    (source / changed).write_bytes(write_images(tmp_path / "other", 12, size=30)[changed])  # other bytes
    assert run(service_url, "push", str(source)).status == 0  # replaces it: its frozen bytes are kept
    by_snapshot = tmp_path / "v1"
    result = run(service_url, "pull", str(by_snapshot), "--snapshot", "v1")
    assert result.status == 0, result.err
    assert files_under(by_snapshot) == {relative: written[relative] for relative in cats}
    listed = run(service_url, "snapshots", "ls")
    name, count, _, version, kept = listed.out.strip().split("\t")
    assert (name, count, len(version), kept) == ("v1", str(len(cats)), 64, str(len(written[changed])))


def test_pull_a_training_format_unpacks_its_layout(service_url: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    written = write_images(source, 8)
    assert run(service_url, "push", str(source)).status == 0
    dest = tmp_path / "coco"
    result = run(service_url, "pull", str(dest), "--format", "coco")
    assert result.status == 0, result.err
    annotations = json.loads((dest / "annotations/instances_all.json").read_text())
    assert sorted(image["file_name"] for image in annotations["images"]) == sorted(written)
    for relative, data in written.items():
        assert (dest / "images/all" / relative).read_bytes() == data
    assert not list(dest.glob(".imagestore-*")), "the downloaded archive is removed once unpacked"


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_an_image_the_service_has_no_file_for_is_listed_as_failed(
    service_url: str, settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    written = write_images(source, 5)
    assert run(service_url, "push", str(source)).status == 0
    (settings.uploads_directory / "line2/day2/img00002.png").unlink()
    dest = tmp_path / "copy"
    result = run(service_url, "pull", str(dest))
    assert result.status == 1
    assert "received 4" in result.out and "failed 1" in result.out, result.out
    assert "line2/day2/img00002.png: the service has no file for it" in result.err, result.err
    assert files_under(dest) == {relative: data for relative, data in written.items() if "img00002" not in relative}
