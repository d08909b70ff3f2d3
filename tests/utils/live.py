"""The service as a real process, for tests that need a TCP port (browsers, scripts, signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.config import Settings
from scripts.servers import REPO_ROOT, free_port
from tests.utils.s3 import S3Server


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log_path: Path, seconds: float = 120) -> None:
    """Return once `GET url/` answers 200; fail with the log's tail if the process dies or stalls."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"service exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"service did not answer in time:\n{log_path.read_text()[-3000:]}")


def s3_environment(*, endpoint: str, access_key: str, secret_key: str, bucket: str) -> dict[str, str]:
    """The service's S3 variables for a test bucket."""
    return {
        "S3_BUCKET": bucket,
        "S3_ENDPOINT": endpoint,
        "S3_ACCESS_KEY_ID": access_key,
        "S3_SECRET_ACCESS_KEY": secret_key,
    }


def service_environment(settings: Settings, s3: S3Server | None) -> dict[str, str]:
    """The environment of a service process on `settings`' database and storage: this process's
    own, less any MONGODB_* and S3_* variables the developer exported."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MONGODB_", "S3_"))}
    env["MONGODB_CONNECTION_STRING"] = settings.mongodb_uri
    if s3 is not None:
        assert settings.s3_bucket
        env |= s3_environment(
            endpoint=s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, bucket=settings.s3_bucket
        )
    else:
        env["UPLOADS_DIRECTORY"] = str(settings.uploads_directory)
    return env


def start_service(env: dict[str, str], *, cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m scripts.run_service` (what `make run` runs), its output going to `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "scripts.run_service"], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )


@contextmanager
def serving(
    settings: Settings,
    s3: S3Server | None,
    log_dir: Path,
    *,
    extra: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[tuple[str, int]]:
    """A service process on `settings`' database and storage, with `extra` variables (OIDC's,
    say), on `port` or a free loopback one: its URL and port while the block runs; stopped
    with SIGTERM after it."""
    port = port or free_port()
    env = service_environment(settings, s3) | dict(extra or {})
    env |= {"APP_HOST": "127.0.0.1", "APP_PORT": str(port), "LOG_LEVEL": "WARNING"}
    log_path = log_dir / "service.log"
    process = start_service(env, cwd=REPO_ROOT, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, log_path)
        yield url, port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
