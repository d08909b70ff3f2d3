"""The service as a real process, for tests that need a TCP port (browsers, scripts, signals)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx


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


def start_service(env: dict[str, str], *, cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m scripts.run_service` (what `make run` runs), its output going to `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "scripts.run_service"], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
