"""The service as a real process, for tests that need a TCP port (browsers, scripts, signals)."""

from __future__ import annotations

import subprocess
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
