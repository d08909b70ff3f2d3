"""The event journal and its followers, in one process on a real database: filtering and scope
on the service side, a slow subscriber ended, a gap held while a writer may still fill it, a
silent writer given up, and resumption exact or refused when too old."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI

from app.config import Settings
from app.domain.datasets.events import EVENT_FIELD, Events, EventSettings
from app.domain.datasets.events.journal import Journal
from app.domain.datasets.events.keys import micros_of
from app.domain.scope import Scope
from app.errors import BadInput, Conflict, Gone
from app.metrics import Metrics
from app.services import Services, connect_store
from app.store import Store

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # events need no storage


def services_of(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture
async def other_store(settings: Settings) -> AsyncIterator[Store]:
    """A second connection to the test's database, as another process would have."""
    store = connect_store(settings, Metrics())
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def gate(other_store: Store, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncio.Event]:
    """Holds the other store's journal inserts until set (set at the end in any case)."""
    opened = asyncio.Event()
    append = other_store.events.append

    async def held(stored: list[dict[str, Any]]) -> None:
        await opened.wait()
        await append(stored)

    monkeypatch.setattr(other_store.events, "append", held)
    yield opened
    opened.set()


def journal_of(store: Store, **settings: Any) -> Journal:
    return Journal(
        store=store,
        metrics=Metrics(),
        beat_seconds=settings.get("beat_seconds", 0.05),
        writer_timeout=5.0,
        retention_seconds=86400,
        retention_count=100_000,
    )


async def test_a_subscriber_gets_what_its_filter_matches_in_its_scope(app: FastAPI) -> None:
    events = services_of(app).events
    subscription = await events.open(Scope(owner="alice"), {"data.label": {"$in": ["cat", "lion"]}})
    await events.record("created", [{"_id": 1, "userId": "bob", "data": {"label": "cat"}}])  # not alice's
    await events.record("created", [{"_id": 2, "userId": "alice", "data": {"label": "dog"}}])  # not a match
    await events.record("updated", [{"_id": 3, "userId": "alice", "data": {"label": ["lion"]}}])
    event = await subscription.next(timeout=5)
    assert event is not None
    assert (event.kind, event.document["_id"]) == ("updated", 3)
    assert await subscription.next(timeout=0.5) is None
    subscription.close()
    assert events.subscribers == 0


async def test_a_subscriber_that_falls_behind_is_ended(app: FastAPI) -> None:
    services = services_of(app)
    events = Events(store=services.store, metrics=Metrics(), settings=EventSettings(queue_size=3))
    await events.start()
    try:
        subscription = await events.open(Scope(), {})
        await events.record("created", [{"_id": index} for index in range(10)])
        received = []
        with pytest.raises(Conflict, match="More than 3 events waited"):
            while True:  # each wait bounded: a subscription that is not ended would wait forever
                event = await subscription.next(timeout=5)
                assert event is not None
                received.append(event.document["_id"])
        assert received == [0, 1, 2]  # the first ones, in order, then the end
    finally:
        await events.close()


async def test_a_filter_that_cannot_be_evaluated_matches_nothing_and_breaks_no_write(app: FastAPI) -> None:
    events = services_of(app).events
    subscription = await events.open(Scope(), {"data.x": {"$regex": "[unclosed"}})
    await events.record("created", [{"_id": 1, "data": {"x": "a"}}])  # must not raise
    assert await subscription.next(timeout=0.5) is None
    subscription.close()


async def test_an_event_stored_late_is_waited_for_not_skipped(
    app: FastAPI, other_store: Store, gate: asyncio.Event
) -> None:
    events = services_of(app).events
    slow = journal_of(other_store)  # a second writer, beating, whose insert takes its time
    await slow.start()
    try:
        subscription = await events.open(Scope(), {})
        late = asyncio.create_task(slow.record("created", [{"_id": "late"}]))  # its key is made now
        await asyncio.sleep(0.05)
        await events.record("created", [{"_id": "after"}])  # a later key, stored at once
        # The slow writer promised nothing below its key: the later event waits for the gap.
        assert await subscription.next(timeout=1.0) is None
        gate.set()
        await late
        received = [await subscription.next(timeout=5) for _ in range(2)]
        assert [event.document["_id"] for event in received if event is not None] == ["late", "after"]
        subscription.close()
    finally:
        gate.set()
        await slow.close()


async def test_a_writer_that_stops_beating_is_given_up_and_its_late_event_still_delivered(
    app: FastAPI, other_store: Store, gate: asyncio.Event
) -> None:
    services = services_of(app)
    metrics = Metrics()
    events = Events(
        store=services.store, metrics=metrics, settings=EventSettings(writer_timeout=0.5, poll_seconds=0.05)
    )
    await events.start()
    slow = journal_of(other_store)
    await slow.start()
    try:
        subscription = await events.open(Scope(), {})
        late = asyncio.create_task(slow.record("created", [{"_id": "late"}]))
        await asyncio.sleep(0.2)  # seen beating, with its promise below the next key
        assert slow._task is not None
        slow._task.cancel()  # it dies: no more beats
        await events.record("created", [{"_id": "after"}])
        event = await subscription.next(timeout=5)  # given up after 0.5 s: the gap is let go
        assert event is not None and event.document["_id"] == "after"
        gate.set()  # its insert lands after all, below the cursor
        await late
        event = await subscription.next(timeout=5)
        assert event is not None and event.document["_id"] == "late"
        assert 'image_storage_live_events_total{fate="late"} 1.0' in metrics.exposition().decode()
        assert await subscription.next(timeout=0.5) is None  # once
        subscription.close()
    finally:
        gate.set()
        await slow.close()
        await events.close()


async def test_a_subscriber_resumes_right_after_the_event_it_names(app: FastAPI) -> None:
    events = services_of(app).events
    subscription = await events.open(Scope(), {"data.keep": True})
    await events.record("created", [{"_id": index, "data": {"keep": True}} for index in range(3)])
    seen = [await subscription.next(timeout=5) for _ in range(3)]
    subscription.close()
    ids = [event.id for event in seen if event is not None]
    await events.record("created", [{"_id": 99, "data": {"keep": False}}])  # not a match
    await events.record("updated", [{"_id": index, "data": {"keep": True}} for index in range(3, 6)])

    resumed = await events.open(Scope(), {"data.keep": True}, after=ids[1])
    again = [await resumed.next(timeout=5) for _ in range(4)]
    assert [(event.kind, event.document["_id"]) for event in again if event is not None] == [
        ("created", 2),
        ("updated", 3),
        ("updated", 4),
        ("updated", 5),
    ]
    assert again[0] is not None and again[0].id == ids[2]
    await events.record("deleted", [{"_id": 5, "data": {"keep": True}}])  # then the live ones
    live = await resumed.next(timeout=5)
    assert live is not None and (live.kind, live.document["_id"]) == ("deleted", 5)
    assert await resumed.next(timeout=0.5) is None
    resumed.close()


async def test_resuming_from_before_the_retention_is_gone_and_a_bad_id_is_bad_input(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    events = services_of(app).events
    subscription = await events.open(Scope(), {})
    await events.record("created", [{"_id": index} for index in range(6)])
    ids = [event.id for event in [await subscription.next(timeout=5) for _ in range(6)] if event is not None]
    subscription.close()
    events.journal.retention_count = 2
    await events.journal.sweep()  # keeps the newest two and one more

    with pytest.raises(Gone, match="older than the events kept; reload"):
        await events.open(Scope(), {}, after=ids[0])
    kept = await events.open(Scope(), {}, after=ids[3])
    received = [await kept.next(timeout=5) for _ in range(2)]
    assert [event.document["_id"] for event in received if event is not None] == [4, 5]
    kept.close()
    too_old = await client.get("/events", headers={"Last-Event-ID": ids[0]})
    assert too_old.status_code == 410
    assert too_old.json()["code"] == "gone"

    with pytest.raises(BadInput, match="is not an event id"):
        await events.open(Scope(), {}, after="not-an-event")
    for params, headers in [({"lastEventId": "x" * 22}, {}), ({}, {"Last-Event-ID": "0" * 21})]:
        refused = await client.get("/events", params=params, headers=headers)
        assert refused.status_code == 400
        assert "is not an event id" in refused.json()["detail"]


async def test_the_rest_stream_refuses_a_bad_filter_and_an_unknown_view(client: httpx.AsyncClient) -> None:
    forbidden = await client.get("/events", params={"filter": '{"$where": "1"}'})
    assert forbidden.status_code == 400
    assert "$where" in forbidden.json()["detail"]
    assert (await client.get("/events", params={"view": "nobody"})).status_code == 404


async def test_a_write_whose_process_died_before_journaling_its_event_is_recovered_from_its_stamp(
    app: FastAPI, other_store: Store, gate: asyncio.Event
) -> None:
    services = services_of(app)
    events = Events(
        store=services.store, metrics=Metrics(), settings=EventSettings(writer_timeout=0.5, poll_seconds=0.05)
    )
    await events.start()
    dying = journal_of(other_store)
    await dying.start()
    try:
        subscription = await events.open(Scope(), {})
        image = {"_id": ObjectId(), "file": "stamped.png", "data": {"k": 1}, "revision": 1}
        image[EVENT_FIELD] = dying.stamp("created")  # its journal insert will be held: it is killed first
        with other_store.errors():
            assert await other_store.images.insert(image)  # the write, answered with its stamp
        dying.written([image])
        await asyncio.sleep(0.2)  # seen beating, its promise below the stamp
        assert dying._task is not None
        dying._task.cancel()  # killed: no beat, no insert
        event = await subscription.next(timeout=5)  # given up: its stamps read, its event stored
        assert event is not None
        assert (event.kind, event.document["file"], event.id) == ("created", "stamped.png", image[EVENT_FIELD][:-1])
        assert await subscription.next(timeout=0.5) is None
        subscription.close()
    finally:
        await events.close()


async def test_a_sweep_recovers_the_stamps_of_a_writer_long_gone_and_forgets_it(app: FastAPI) -> None:
    services = services_of(app)
    journal = services.events.journal
    gone = journal_of(services.store)  # only its name and clock: it never beats
    image = {"_id": ObjectId(), "file": "left.png", "data": {}, "revision": 2, EVENT_FIELD: gone.stamp("updated")}
    with services.store.errors():
        assert await services.store.images.insert(image)
        await services.store.events.beat(
            gone.writer, promise=micros_of(image[EVENT_FIELD][:-1]), beat=1, at=datetime.now(UTC) - timedelta(hours=1)
        )
    await journal.sweep()
    with services.store.errors():
        stored = await services.store.events.through("", "f" * 22, limit=100)
        writers = [writer["_id"] for writer in await services.store.events.writers()]
    assert [(event["_id"], event["kind"], event["image"]["file"]) for event in stored] == [
        (image[EVENT_FIELD][:-1], "updated", "left.png")
    ]
    assert gone.writer not in writers and journal.writer in writers
