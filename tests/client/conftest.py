"""The `imagestore` command and the Python client against the service as a real process."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from tests.utils.images import make_image
from tests.utils.live import serving
from tests.utils.s3 import S3Server

COMMAND = Path(sys.executable).parent / "imagestore"
CACHE = Path(tempfile.mkdtemp(prefix="imagestore-test-cache-"))
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)


@pytest.fixture
def service_url(settings: Settings, storage_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    s3: S3Server | None = request.getfixturevalue("s3_server") if storage_kind == "s3" else None
    with serving(settings, s3, tmp_path) as (url, _):
        yield url


@dataclass(frozen=True)
class Ran:
    status: int
    out: str
    err: str


def command_environment(url: str, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("IMAGESTORE_")}
    # The checksum cache of this test run, not the developer's.
    return env | {"IMAGESTORE_URL": url, "COLUMNS": "200", "IMAGESTORE_CACHE_DIR": str(CACHE)} | extra


def run(url: str, *arguments: str, env: dict[str, str] | None = None, timeout: float = 240) -> Ran:
    """`imagestore` as a user runs it, installed in the virtual environment."""
    done = subprocess.run(
        [str(COMMAND), *arguments],
        env=env or command_environment(url),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def write_images(root: Path, count: int, *, start: int = 0, size: int = 24) -> dict[str, bytes]:
    """`count` distinct PNGs in nested folders, half of them with a sidecar; their bytes by
    relative path."""
    written: dict[str, bytes] = {}
    for index in range(start, start + count):
        relative = f"line{index % 3}/day{index % 7}/img{index:05d}.png"
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = make_image(size, size, color=(index % 256, (index // 256) % 256, 77))
        path.write_bytes(data)
        if index % 2 == 0:
            sidecar: dict[str, Any] = {"index": index, "label": "cat" if index % 4 == 0 else "dog", "source": "sidecar"}
            path.with_name(path.name + ".json").write_text(json.dumps(sidecar))
        written[relative] = data
    return written
