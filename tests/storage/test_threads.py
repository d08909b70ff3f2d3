"""What a backend opens in a worker thread is closed when the caller stops waiting for it."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from app.metrics import Metrics
from app.storage import LocalStorage
from app.storage.threads import open_in_thread


async def test_what_the_thread_opens_after_the_caller_left_is_closed() -> None:
    release = threading.Event()
    closed: list[str] = []

    def opener() -> str:
        release.wait(10)
        return "handle"

    waiting = asyncio.create_task(open_in_thread(opener, closed.append))
    await asyncio.sleep(0.05)  # the thread is in `opener`
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert closed == []  # still opening
    release.set()
    for _ in range(100):
        if closed:
            break
        await asyncio.sleep(0.01)
    assert closed == ["handle"]


async def test_what_the_thread_opened_is_the_callers_when_it_waits() -> None:
    closed: list[str] = []
    assert await open_in_thread(lambda: "handle", closed.append) == "handle"
    assert closed == []


def descriptors_on(path: Path) -> list[str]:
    """This process's open file descriptors on `path`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found.append(fd)
        except OSError:
            continue  # closed meanwhile
    return found


async def open_for_writing(fifo: Path) -> int:
    """A writer's end of `fifo`, once a reader waits on the other: non-blocking, so that a test
    whose reader never came fails instead of hanging."""
    for _ in range(100):
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            await asyncio.sleep(0.01)
    raise AssertionError("nothing opened the FIFO for reading")


async def test_a_local_file_opened_for_a_cancelled_read_is_closed(tmp_path: Path) -> None:
    # A FIFO: opening it for reading blocks until a writer comes, so the read is cancelled
    # while the thread opens it, as a shutdown mid-backfill did.
    storage = LocalStorage(root=tmp_path, metrics=Metrics())
    fifo = tmp_path / "slow.png"
    os.mkfifo(fifo)
    reading = asyncio.create_task(storage.open("slow.png"))
    await asyncio.sleep(0.05)
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    writer = await open_for_writing(fifo)  # lets the thread's open finish
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if descriptors_on(fifo) == [str(writer)]:
                break
        assert descriptors_on(fifo) == [str(writer)]  # the reader's end is closed
    finally:
        os.close(writer)
