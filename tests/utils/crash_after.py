"""A service process that kills itself (SIGKILL, as `kill -9`) right after one step of a write.

    CRASH_AFTER=copy python -m tests.utils.crash_after

runs the service as `make run` does (scripts/run_service.py), with the step named by
CRASH_AFTER wrapped so that the process dies the moment the step has returned: nothing after it
runs, no `finally`, no release of a lease. Only tests start it; the service has no such hook.

Steps: `copy` (a kept copy made), `hold` (holds inserted), `replace` (an image's document
replaced by an upload), `delete` (an image's document deleted), `move` (staged bytes moved onto
the image's path).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from app.storage.local import LocalStorage
from app.storage.s3 import S3Storage
from app.store.images import ImageStore
from app.store.kept import KeptStore
from scripts import run_service

STEPS: dict[str, list[tuple[type, str]]] = {
    "copy": [(LocalStorage, "copy"), (S3Storage, "copy")],
    "hold": [(KeptStore, "hold")],
    "replace": [(ImageStore, "replace")],
    "delete": [(ImageStore, "delete")],
    "move": [(LocalStorage, "move"), (S3Storage, "move")],
}


def dying_after(step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(step)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        await step(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    return wrapped


def main() -> int:
    for owner, name in STEPS[os.environ["CRASH_AFTER"]]:
        setattr(owner, name, dying_after(getattr(owner, name)))
    return run_service.main()


if __name__ == "__main__":
    sys.exit(main())
