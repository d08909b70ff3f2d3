"""SIGTERM in the middle of a large download, against the real service process.

Started as `make run` starts it (`python -m scripts.run_service`, uvicorn inside), with the
session's database and this test's storage, JSON logs and a grace period; the download is read
slowly, so it is still in flight when the signal arrives.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from scripts.servers import REPO_ROOT, free_port
from tests.utils.live import s3_environment, start_service, wait_until_serving
from tests.utils.s3 import S3Server

GRACE_SECONDS = 30


@dataclass
class Service:
    url: str
    process: subprocess.Popen[bytes]
    output: Path


@pytest.fixture
def service(
    storage_kind: str, tmp_path: Path, mongodb_server_uri: str, database_name: str, request: pytest.FixtureRequest
) -> Iterator[Service]:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MONGODB_", "S3_", "LOG_"))}
    env |= {
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "MONGODB_CONNECTION_STRING": f"{mongodb_server_uri.rstrip('/')}/{database_name}",
        "UPLOADS_DIRECTORY": str(tmp_path / "uploads"),
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "LOG_FORMAT": "json",
    }
    if storage_kind == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        env |= s3_environment(
            endpoint=s3.endpoint,
            access_key=s3.access_key,
            secret_key=s3.secret_key,
            bucket=request.getfixturevalue("bucket"),
        )
    output = tmp_path / "service.log"
    process = start_service(env, cwd=REPO_ROOT, log_path=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, output)
        yield Service(url=url, process=process, output=output)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def large_bmp(megabytes: int = 40) -> bytes:
    """Random pixels in an uncompressed BMP: large, quick to make, and a real image."""
    width = 4096
    height = megabytes * 1024 * 1024 // (width * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, format="BMP")
    return buffer.getvalue()


def accepts_connections(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
    except httpx.TransportError:
        return False
    return True


def test_sigterm_lets_an_inflight_download_finish(service: Service) -> None:
    content = large_bmp()
    with httpx.Client(base_url=service.url, timeout=60) as http:
        uploaded = http.post("/images", files={"image": ("big.bmp", content, "image/bmp")})
        assert uploaded.status_code == 200, uploaded.text
        image_id = uploaded.json()["_id"]

        digest = hashlib.sha256()
        received = 0
        with http.stream("GET", f"/images/{image_id}/image") as response:
            assert response.status_code == 200
            chunks = response.iter_bytes(64 * 1024)
            first = next(chunks)
            digest.update(first)
            received += len(first)

            service.process.send_signal(signal.SIGTERM)
            time.sleep(1)  # the server notices within 0.1 s, then closes its listening socket
            assert service.process.poll() is None  # still serving the download
            assert not accepts_connections(service.url)  # but accepting nothing new

            for chunk in chunks:  # slowly: the shutdown goes on meanwhile
                digest.update(chunk)
                received += len(chunk)
                time.sleep(0.001)

    assert received == len(content)
    assert digest.hexdigest() == hashlib.sha256(content).hexdigest()
    assert service.process.wait(GRACE_SECONDS) == 0

    lines = [json.loads(line) for line in service.output.read_text().splitlines() if line.strip()]
    messages = [line["message"] for line in lines]
    download = next(
        index
        for index, line in enumerate(lines)
        if line.get("route") == "/images/{image_id}/image" and line.get("bytes_sent") == len(content)
    )
    assert lines[download]["status"] == 200
    # The database and storage were closed only after the download had been sent whole.
    assert messages.index("closing the database and storage connections") > download
    assert "Finished server process" in messages[-1]
    assert not [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]
