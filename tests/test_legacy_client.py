"""A legacy user's script, against the real service process over TCP.

The local-storage run starts the service the way `make run` does (`scripts/run_service.py`,
which starts its own FerretDB when no database is configured); the S3 run starts it with
`MONGODB_CONNECTION_STRING` and `S3_*` set, the way a deployment does.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from scripts.servers import REPO_ROOT, free_port
from tests.utils.images import make_image
from tests.utils.live import s3_environment, start_service, wait_until_serving
from tests.utils.s3 import S3Server


@dataclass
class LiveService:
    url: str
    process: subprocess.Popen[bytes]
    output: Path
    uploads: Path | None


@pytest.fixture
def live_service(
    storage_kind: str,
    tmp_path: Path,
    external_environment: dict[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[LiveService]:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MONGODB_", "S3_"))}
    # No APP_HOST: `make run` listens on loopback by default.
    env |= {"APP_PORT": str(port), "DATA_DIRECTORY": str(tmp_path / "data")}
    uploads: Path | None = None
    if storage_kind == "local":
        uploads = tmp_path / "uploads"
        env["UPLOADS_DIRECTORY"] = str(uploads)
        if "MONGODB_CONNECTION_STRING" in external_environment:
            # This test's own database on the external server (dropped after it), not the default one.
            mongodb_server_uri: str = request.getfixturevalue("mongodb_server_uri")
            database = request.getfixturevalue("database_name")
            env["MONGODB_CONNECTION_STRING"] = urlsplit(mongodb_server_uri)._replace(path=f"/{database}").geturl()
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        mongodb_server_uri = request.getfixturevalue("mongodb_server_uri")
        env |= {
            "MONGODB_CONNECTION_STRING": urlsplit(mongodb_server_uri)
            ._replace(path=f"/{request.getfixturevalue('database_name')}")
            .geturl(),
            **s3_environment(
                endpoint=s3.endpoint,
                access_key=s3.access_key,
                secret_key=s3.secret_key,
                bucket=request.getfixturevalue("bucket"),
            ),
        }
    output = tmp_path / "service.log"
    process = start_service(env, cwd=REPO_ROOT, log_path=output)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, output)
        yield LiveService(url=url, process=process, output=output, uploads=uploads)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def port_accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_legacy_script_session(live_service: LiveService, cat_jpeg: bytes) -> None:
    with httpx.Client(base_url=live_service.url, timeout=30) as http:
        # upload with plain fields, as `requests.post(url, files=..., data={...})` sends them
        plain = http.post(
            "/images", files={"image": ("cat.jpg", cat_jpeg, "image/jpeg")}, data={"label": "cat", "count": "2"}
        )
        assert plain.status_code == 200, plain.text
        assert plain.json()["data"] == {"label": "cat", "count": "2"}

        # upload with nested metadata as a JSON string
        nested_data = {"part": {"number": "200-004", "rev": 3}, "checked": False}
        nested = http.post(
            "/images", files={"image": ("part.jpg", cat_jpeg, "image/jpeg")}, data={"data": json.dumps(nested_data)}
        )
        assert nested.status_code == 200, nested.text
        assert nested.json()["data"] == nested_data

        # upload into a folder
        foldered = http.post(
            "/images",
            files={"image": ("whatever.jpg", cat_jpeg, "image/jpeg")},
            data={"file": "myFolder/myImage.jpg", "data": "null"},
        )
        assert foldered.status_code == 200, foldered.text
        image = foldered.json()
        assert image["file"] == "myFolder/myImage.jpg"
        if live_service.uploads is not None:
            assert (live_service.uploads / "myFolder" / "myImage.jpg").read_bytes() == cat_jpeg

        # read back
        for created in (plain.json(), nested.json(), image):
            assert http.get(f"/images/{created['_id']}").json() == created

        # patch: merge and unset
        patched = http.patch(f"/images/{image['_id']}", json={"label": "dog", "extra": {"a": 1}})
        assert patched.json()["data"] == {"label": "dog", "extra": {"a": 1}}
        patched = http.patch(f"/images/{image['_id']}", json={"$unset": {"extra": ""}})
        assert patched.json()["data"] == {"label": "dog"}

        # put: the whole new data, unwrapped
        put = http.put(f"/images/{image['_id']}", json={"label": "cat", "reviewed": True})
        assert put.json()["data"] == {"label": "cat", "reviewed": True}

        # download, as an <img> tag would: byte-identical, typed, named
        with http.stream("GET", f"/images/{image['_id']}/image") as download:
            assert download.status_code == 200
            assert download.headers["content-type"] == "image/jpeg"
            assert 'filename="myImage.jpg"' in download.headers["content-disposition"]
            received = b"".join(download.iter_bytes())
        assert received == cat_jpeg

        # delete
        assert http.delete(f"/images/{image['_id']}").json() == {"_id": image["_id"]}
        assert http.get(f"/images/{image['_id']}").status_code == 404
        assert http.get(f"/images/{image['_id']}/file").status_code == 404
        if live_service.uploads is not None:
            assert not (live_service.uploads / "myFolder" / "myImage.jpg").exists()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_run_service_stops_its_ferretdb_on_sigterm(
    live_service: LiveService, external_environment: dict[str, str]
) -> None:
    if "MONGODB_CONNECTION_STRING" in external_environment:
        pytest.skip("an external database is configured, so no FerretDB is started")
    started = re.search(rb"started FerretDB at mongodb://127\.0\.0\.1:(\d+)/", live_service.output.read_bytes())
    assert started, live_service.output.read_text()
    ferretdb_port = int(started.group(1))
    assert port_accepts_connections(ferretdb_port)
    assert httpx.get(f"{live_service.url}/").json()["mongodb"]["connected"] is True

    live_service.process.send_signal(signal.SIGTERM)
    live_service.process.wait(30)

    assert not port_accepts_connections(ferretdb_port)


def listening_addresses(port: int) -> set[str]:
    """The IPv4 and IPv6 addresses a socket listens on at `port` (Linux: /proc/net/tcp*)."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_make_run_listens_on_loopback_only_unless_told(live_service: LiveService) -> None:
    port = int(live_service.url.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, in the kernel's byte order


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_fsck_beside_make_run_finds_its_embedded_database(
    live_service: LiveService, external_environment: dict[str, str], tmp_path: Path
) -> None:
    if "MONGODB_CONNECTION_STRING" in external_environment:
        pytest.skip("an external database is configured, so no FerretDB is started")
    assert live_service.uploads is not None
    upload = httpx.post(f"{live_service.url}/images", files={"image": ("a.png", make_image(), "image/png")})
    assert upload.status_code == 200, upload.text
    (live_service.uploads / "orphan.png").write_bytes(make_image())
    note = tmp_path / "data" / "ferretdb" / "address.json"
    # As `make fsck` runs: no database variable, the same data and uploads directories.
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MONGODB_", "S3_"))}
    env |= {"DATA_DIRECTORY": str(tmp_path / "data"), "UPLOADS_DIRECTORY": str(live_service.uploads)}
    fsck = [sys.executable, "-m", "app.fsck", "--grace-seconds", "0"]

    beside = subprocess.run(fsck, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert json.loads(note.read_text())["uri"] in live_service.output.read_text()
    assert "orphan.png" in beside.stdout, beside.stderr  # it read the service's database: a.png is no orphan
    assert "a.png" not in beside.stdout
    assert beside.returncode == 1  # a finding left unrepaired

    live_service.process.send_signal(signal.SIGTERM)
    live_service.process.wait(30)
    assert not note.exists()
    alone = subprocess.run(fsck, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert alone.returncode == 2
    assert "No database configured" in alone.stderr and "beside `make run`" in alone.stderr
    assert "Traceback" not in alone.stderr


def test_bad_configuration_stops_start_up_with_one_sentence(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MONGODB_", "S3_", "IMAGE_"))}
    env |= {
        "MONGODB_CONNECTION_STRING": "mongodb://127.0.0.1:1/x",
        "IMAGE_SCOPE": "everyone",
        "APP_PORT": str(free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", env["APP_PORT"]],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Configuration error: IMAGE_SCOPE" in result.stderr
    assert "Traceback" not in result.stderr
