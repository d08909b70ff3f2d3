"""The in-process event hub: filtering and scope on the service side, and a slow subscriber ended
rather than left to hold memory."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.datasets.events import Events
from app.domain.scope import Scope
from app.errors import Conflict


async def test_a_subscriber_gets_what_its_filter_matches_in_its_scope() -> None:
    events = Events()
    stream = events.subscribe(Scope(owner="alice"), {"data.label": {"$in": ["cat", "lion"]}})
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # subscribed
    events.publish("created", [{"_id": 1, "userId": "bob", "data": {"label": "cat"}}])  # not alice's
    events.publish("created", [{"_id": 2, "userId": "alice", "data": {"label": "dog"}}])  # not a match
    events.publish("updated", [{"_id": 3, "userId": "alice", "data": {"label": ["lion"]}}])
    event = await asyncio.wait_for(first, 1)
    assert (event.kind, event.document["_id"]) == ("updated", 3)
    await stream.aclose()
    assert events.subscribers == 0


async def test_a_subscriber_that_falls_behind_is_ended() -> None:
    events = Events(queue_size=3)
    stream = events.subscribe(Scope(), {})
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    events.publish("created", [{"_id": index} for index in range(10)])
    received = [(await first).document["_id"]]
    with pytest.raises(Conflict, match="More than 3 events waited"):
        while True:  # each wait bounded: a stream that is not ended would wait for events forever
            received.append((await asyncio.wait_for(anext(stream), 5)).document["_id"])
    assert received == [0, 1, 2]  # the first ones, in order, then the end
    assert events.subscribers == 0


async def test_a_filter_that_cannot_be_evaluated_matches_nothing_and_breaks_no_write() -> None:
    events = Events()
    stream = events.subscribe(Scope(), {"data.x": {"$regex": "[unclosed"}})
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    events.publish("created", [{"_id": 1, "data": {"x": "a"}}])  # must not raise
    await asyncio.sleep(0.05)
    assert not first.done()
    first.cancel()
