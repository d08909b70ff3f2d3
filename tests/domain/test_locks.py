"""Writers of one key take turns within a process; locks do not pile up."""

from __future__ import annotations

import asyncio

from app.domain.writes.locks import KeyedLocks


async def test_holders_of_one_key_take_turns_and_others_do_not_wait() -> None:
    locks = KeyedLocks()
    inside: list[str] = []
    same_key_together = different_keys_together = 0

    async def hold(key: str) -> None:
        nonlocal same_key_together, different_keys_together
        async with locks.hold(key):
            same_key_together += inside.count(key)
            different_keys_together += len(inside) - inside.count(key)
            inside.append(key)
            await asyncio.sleep(0.01)
            inside.remove(key)

    await asyncio.gather(*(hold("a") for _ in range(10)), *(hold("b") for _ in range(10)))
    assert same_key_together == 0
    assert different_keys_together > 0  # "b" did not wait for "a"
    assert len(locks) == 0  # every lock dropped once nobody held or awaited it


async def test_several_keys_in_any_order_never_deadlock() -> None:
    locks = KeyedLocks()

    async def hold(keys: list[str]) -> None:
        async with locks.hold_all(keys):
            await asyncio.sleep(0.001)

    await asyncio.wait_for(
        asyncio.gather(*(hold(["x", "y", "z"] if index % 2 else ["z", "y", "x"]) for index in range(20))), timeout=5
    )
    assert len(locks) == 0
