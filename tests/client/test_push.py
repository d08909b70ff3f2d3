"""`imagestore push`: a folder's images stored with their metadata, resumable, read once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.client.conftest import COMMAND, command_environment, run, write_images


def stored(url: str) -> dict[str, dict[str, Any]]:
    """Every image the service holds, by path, read straight off REST, with its revision (which
    listings do not show; POST /images/check does)."""
    found: dict[str, dict[str, Any]] = {}
    after = ""
    while True:
        params = {"limit": "1000", "after": after}
        page = httpx.get(f"{url}/images", params=params, timeout=30).raise_for_status().json()
        found |= {item["file"]: item for item in page["items"]}
        if not page["nextCursor"]:
            break
        after = page["nextCursor"]
    files = list(found)
    for start in range(0, len(files), 1000):
        body = {"files": [{"file": file} for file in files[start : start + 1000]]}
        checked = httpx.post(f"{url}/images/check", json=body, timeout=30).raise_for_status().json()["files"]
        for entry in checked:
            found[entry["file"]]["revision"] = entry["revision"]
    return found


def test_push_stores_every_image_once_with_its_metadata_and_a_rerun_sends_nothing(
    service_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "camera"
    written = write_images(root, 1000)
    (root / "notes.txt").write_text("not an image")
    (root / "line0" / "orphan.json").write_text("{}")  # beside no image: not a sidecar

    first = run(service_url, "push", str(root), "--prefix", "plant-7", "--meta", "shift=2", "--meta", "source=line")
    assert first.status == 0, first.err
    assert "1000 images" in first.out and "sent 1000" in first.out and "not images 2" in first.out, first.out
    images = stored(service_url)
    assert set(images) == {f"plant-7/{relative}" for relative in written}
    sample = images["plant-7/line0/day0/img00000.png"]
    # --meta values that parse as JSON are JSON; the sidecar's keys win over --meta.
    assert sample["data"] == {"shift": 2, "source": "sidecar", "index": 0, "label": "cat"}
    assert images["plant-7/line1/day1/img00001.png"]["data"] == {"shift": 2, "source": "line"}
    downloaded = httpx.get(f"{service_url}/images/{sample['_id']}/file", timeout=30).content
    assert downloaded == written["line0/day0/img00000.png"]

    again = run(service_url, "push", str(root), "--prefix", "plant-7", "--meta", "shift=2", "--meta", "source=line")
    assert again.status == 0, again.err
    assert "sent 0" in again.out and "already stored 1000" in again.out, again.out
    after = stored(service_url)
    assert {file: (doc["revision"], doc["time"]) for file, doc in after.items()} == {
        file: (doc["revision"], doc["time"]) for file, doc in images.items()
    }


def test_a_changed_file_is_sent_again_and_a_dry_run_sends_nothing(service_url: str, tmp_path: Path) -> None:
    root = tmp_path / "set"
    write_images(root, 6)
    assert run(service_url, "push", str(root)).status == 0
    before = stored(service_url)
    changed = root / "line1/day1/img00001.png"
    same_size = bytearray(changed.read_bytes())
    same_size[-20] ^= 0xFF  # same size, other bytes: only the checksum tells
    changed.write_bytes(bytes(same_size))
    write_images(root, 1, start=6)  # and one new

    dry = run(service_url, "push", str(root), "--dry-run")
    assert dry.status == 0, dry.err
    assert "would send line1/day1/img00001.png (changed)" in dry.out
    assert "would send line0/day6/img00006.png (new)" in dry.out
    assert "would send 2" in dry.out and "already stored 5" in dry.out, dry.out
    assert stored(service_url) == before

    pushed = run(service_url, "push", str(root))
    assert pushed.status == 0 and "sent 2" in pushed.out, pushed.out + pushed.err
    after = stored(service_url)
    assert after["line1/day1/img00001.png"]["revision"] > before["line1/day1/img00001.png"]["revision"]
    assert httpx.get(f"{service_url}/images/{after['line1/day1/img00001.png']['_id']}/file").content == bytes(same_size)
    assert {file: doc["revision"] for file, doc in after.items() if file != "line1/day1/img00001.png"} == {
        file: doc["revision"] for file, doc in before.items() if file != "line1/day1/img00001.png"
    } | {"line0/day6/img00006.png": after["line0/day6/img00006.png"]["revision"]}


def test_a_push_killed_half_way_resumes_storing_every_file_once(service_url: str, tmp_path: Path) -> None:
    root = tmp_path / "day"
    written = write_images(root, 400, size=64)
    pushing = subprocess.Popen(
        [str(COMMAND), "push", str(root), "--jobs", "2"],
        env=command_environment(service_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    count = 0
    while count < 40 and time.monotonic() < deadline and pushing.poll() is None:
        count = httpx.get(f"{service_url}/images", params={"limit": "1"}, timeout=10).json()["total"]
        time.sleep(0.02)
    pushing.send_signal(signal.SIGKILL)
    pushing.wait(30)
    before = stored(service_url)
    assert 0 < len(before) < len(written), "the push was to be killed half-way"

    resumed = run(service_url, "push", str(root))
    assert resumed.status == 0, resumed.err
    assert f"already stored {len(before)}" in resumed.out and f"sent {len(written) - len(before)}" in resumed.out
    after = stored(service_url)
    assert set(after) == set(written)
    # What the first push stored was not sent again: same revision, same time.
    assert {file: (after[file]["revision"], after[file]["time"]) for file in before} == {
        file: (doc["revision"], doc["time"]) for file, doc in before.items()
    }
    for file in list(written)[::37]:
        assert httpx.get(f"{service_url}/images/{after[file]['_id']}/file").content == written[file]


def test_files_the_service_refuses_are_listed_and_the_exit_status_says_so(service_url: str, tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    write_images(root, 3)
    (root / "fake.jpg").write_bytes(b"this is text, not a JPEG")
    (root / "line0" / "day0" / "img00000.png.json").write_text("[1, 2]")  # a sidecar but no object
    result = run(service_url, "push", str(root))
    assert result.status == 1
    assert "sent 2" in result.out and "failed 2" in result.out, result.out
    assert "imagestore: 2 failed:" in result.err
    assert "fake.jpg: The file is not a supported image" in result.err
    assert "line0/day0/img00000.png: its sidecar img00000.png.json holds list, not a JSON object." in result.err
    assert "Traceback" not in result.err
    assert set(stored(service_url)) == {"line1/day1/img00001.png", "line2/day2/img00002.png"}


def test_a_duplicate_refused_is_listed_as_final(service_url: str, tmp_path: Path) -> None:
    root = tmp_path / "twins"
    write_images(root, 1)
    twin = root / "copy" / "same.png"
    twin.parent.mkdir()
    twin.write_bytes((root / "line0/day0/img00000.png").read_bytes())
    result = run(service_url, "push", str(root), "--jobs", "1", "--refuse-duplicates")
    assert result.status == 1
    # copy/ comes first: the second path is the duplicate.
    assert "sent 1" in result.out and "failed 1" in result.out, result.out
    assert "line0/day0/img00000.png: The file is identical to that of image" in result.err, result.err
    assert set(stored(service_url)) == {"copy/same.png"}


def test_a_resumed_push_trusts_kept_checksums_only_of_settled_unchanged_files(service_url: str, tmp_path: Path) -> None:
    """A file stored with the same size is hashed again unless the checksum cache holds its
    checksum for the same size, time and inode, taken well after its last change (rsync's and
    git's quick check); --no-cache always hashes."""
    root = tmp_path / "cached"
    write_images(root, 2)
    settled, fresh = root / "line0/day0/img00000.png", root / "line1/day1/img00001.png"
    an_hour_ago = time.time() - 3600
    os.utime(settled, (an_hour_ago, an_hour_ago))
    assert run(service_url, "push", str(root)).status == 0

    def rewrite_keeping_size_and_time(path: Path) -> None:
        before = path.stat()
        changed = bytearray(path.read_bytes())
        changed[-20] ^= 0xFF
        path.write_bytes(bytes(changed))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    rewrite_keeping_size_and_time(settled)
    rewrite_keeping_size_and_time(fresh)
    trusted = run(service_url, "push", str(root), "--dry-run")
    # The settled file's kept checksum is trusted (its change is invisible to a quick check);
    # the fresh one was hashed within the same moment as its last change, so it is read again.
    assert "would send line1/day1/img00001.png (changed)" in trusted.out, trusted.out
    assert "would send 1," in trusted.out and "already stored 1" in trusted.out, trusted.out
    hashed = run(service_url, "push", str(root), "--dry-run", "--no-cache")
    assert "would send 2," in hashed.out, hashed.out


def test_a_file_whose_name_is_not_utf8_is_listed_and_the_rest_is_sent(service_url: str, tmp_path: Path) -> None:
    root = tmp_path / "names"
    written = write_images(root, 2)
    with open(os.fsencode(root) + b"/caf\xe9.png", "wb") as latin1:
        latin1.write(written["line0/day0/img00000.png"][:-1] + b"\x00")
    result = run(service_url, "push", str(root))
    assert result.status == 1
    assert "sent 2" in result.out and "failed 1" in result.out, result.out
    assert "caf\\udce9.png: its name is not UTF-8, which a path on the service must be." in result.err, result.err
    assert set(stored(service_url)) == set(written)
