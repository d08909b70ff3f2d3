"""Waiting for something to happen, never longer than a deadline: a test whose condition never
comes fails with a sentence saying what it waited for, instead of hanging."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable


async def eventually(
    check: Callable[[], object], *, seconds: float = 30, interval: float = 0.3, what: str = "the condition"
) -> None:
    """Poll `check` every `interval` seconds until it returns something true (an awaitable's
    result counts: `check` may be an async function); AssertionError naming `what` once
    `seconds` have passed without it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"still not the case after {seconds:g} s: {what}")
        await asyncio.sleep(interval)
