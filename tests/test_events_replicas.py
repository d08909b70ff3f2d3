"""Live events across replicas: two real service processes on one database and one storage.

A subscriber on one process sees every write made through the other, in the order the writes
completed, none twice; both see the same events in the same order; a process killed the moment
after it answered still has its event delivered; a subscriber resumes exactly after the last
event it saw, over GraphQL and Server-Sent Events alike.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from scripts.servers import REPO_ROOT, free_port
from tests.utils.events import EventStream, SentEvent, event_stream, subscriber
from tests.utils.images import make_image
from tests.utils.live import service_environment, start_service, wait_until_serving

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # events need no storage


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture
def replicas(settings: Settings, tmp_path: Path) -> Iterator[list[Replica]]:
    """Two service processes, A and B, on this test's database and uploads folder."""
    env = service_environment(settings, None) | {"APP_HOST": "127.0.0.1", "LOG_LEVEL": "INFO"}
    started: list[Replica] = []
    try:
        for name in "AB":
            port = free_port()
            log_path = tmp_path / f"replica-{name}.log"
            process = start_service(env | {"APP_PORT": str(port)}, cwd=REPO_ROOT, log_path=log_path)
            url = f"http://127.0.0.1:{port}"
            started.append(Replica(url, process))
            wait_until_serving(url, process, log_path)
        yield started
    finally:
        for replica in started:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in started:
            replica.process.wait(30)


async def upload(http: httpx.AsyncClient, file: str, data: dict[str, Any], content: bytes | None = None) -> str:
    response = await http.post(
        "/images", files={"image": (file, content or make_image())}, data={"file": file, "data": json.dumps(data)}
    )
    assert response.status_code == 200, response.text
    image_id: str = response.json()["_id"]
    return image_id


def shown(event: dict[str, Any]) -> tuple[str, str]:
    return event["kind"], event["image"]["file"]


def sent(event: SentEvent) -> tuple[str, str]:
    return event.kind.upper(), event.data["file"]


async def marker(http: httpx.AsyncClient, stream: EventStream) -> SentEvent:
    """Upload a marker image and wait for its event: the subscriptions opened before it are live."""
    await upload(http, "marker.png", {"marker": True})
    (event,) = await stream.events(1)
    assert sent(event) == ("CREATED", "marker.png")
    return event


async def test_a_subscriber_on_one_replica_sees_every_write_through_the_other_in_order(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    async with (
        subscriber(a.url) as graphql,
        event_stream(f"{a.url}/events") as sse,
        httpx.AsyncClient(base_url=b.url, timeout=60) as through_b,
    ):
        await graphql.subscribe("all")
        await asyncio.sleep(0.3)  # the subscription is taken before the first write
        mark = await marker(through_b, sse)
        first = await upload(through_b, "cat.png", {"label": "cat"})
        await upload(through_b, "dog.png", {"label": "dog"})
        await upload(through_b, "cat.png", {"label": "cat", "again": 1}, make_image(20, 20))  # a replacement
        assert (await through_b.patch(f"/images/{first}", json={"checked": True})).status_code == 200
        bulk = await through_b.patch("/images", params={"label": "dog"}, json={"z": 1})
        assert bulk.json()["matchedCount"] == 1
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("imported/a.png", make_image())
            zipped.writestr("imported/b.png", make_image(9, 9))
            zipped.writestr(
                "mongodb_data.json",
                json.dumps(
                    [{"file": "imported/a.png", "data": {"x": 1}}, {"file": "imported/b.png", "data": {"x": 1}}]
                ),
            )
        imported = await through_b.post("/import", files={"archive": ("a.zip", archive.getvalue())})
        assert imported.status_code == 200, imported.text
        assert (await through_b.delete(f"/images/{first}")).status_code == 200
        deleted = await through_b.request("DELETE", "/images", params={"filter": json.dumps({"data.x": 1})})
        assert deleted.json()["deletedCount"] == 2

        expected = [
            ("CREATED", "marker.png"),
            ("CREATED", "cat.png"),
            ("CREATED", "dog.png"),
            ("UPDATED", "cat.png"),
            ("UPDATED", "cat.png"),
            ("UPDATED", "dog.png"),
            ("CREATED", "imported/a.png"),
            ("CREATED", "imported/b.png"),
            ("DELETED", "cat.png"),
            ("DELETED", "imported/a.png"),
            ("DELETED", "imported/b.png"),
        ]
        over_graphql = await graphql.events(len(expected))
        assert [shown(event) for event in over_graphql] == expected
        assert over_graphql[4]["image"]["data"] == {"label": "cat", "again": 1, "checked": True}
        assert [event["image"]["revision"] for event in over_graphql if event["image"]["file"] == "cat.png"] == [
            1,
            2,
            3,
            3,  # the delete carries the image as it was
        ]
        over_sse = [mark, *await sse.events(len(expected) - 1)]
        assert [sent(event) for event in over_sse] == expected
        assert [event.id for event in over_sse] == [event["id"] for event in over_graphql]
        assert len({event["id"] for event in over_graphql}) == len(expected)
        assert await graphql.quiet() and await sse.quiet()  # none twice, nothing else


async def test_a_thousand_writes_over_both_replicas_reach_both_in_one_order(replicas: list[Replica]) -> None:
    a, b = replicas
    images, writes_each = 100, 10
    async with (
        event_stream(f"{a.url}/events") as on_a,
        event_stream(f"{b.url}/events") as on_b,
        httpx.AsyncClient(base_url=a.url, timeout=60) as through_a,
        httpx.AsyncClient(base_url=b.url, timeout=60) as through_b,
    ):
        clients = [through_a, through_b]
        turns = asyncio.Semaphore(16)
        rng = random.Random(29)

        async def write_one_image(number: int) -> None:
            # Each write of an image starts once the one before it was answered, through either
            # replica: the order its events must keep everywhere.
            async with turns:
                image = await upload(clients[rng.randrange(2)], f"many/{number}.png", {"n": 0})
                for step in range(1, writes_each):
                    answer = await clients[rng.randrange(2)].patch(f"/images/{image}", json={"n": step})
                    assert answer.status_code == 200, answer.text

        await asyncio.gather(*(write_one_image(number) for number in range(images)))
        total = images * writes_each
        seen_on_a, seen_on_b = await on_a.events(total, seconds=30), await on_b.events(total, seconds=30)
        assert [event.id for event in seen_on_a] == [event.id for event in seen_on_b]  # one order everywhere
        assert len({event.id for event in seen_on_a}) == total  # none twice
        steps: dict[str, list[tuple[str, int]]] = {}
        for event in seen_on_a:
            steps.setdefault(event.data["file"], []).append((event.kind, event.data["data"]["n"]))
        expected = [("created", 0)] + [("updated", step) for step in range(1, writes_each)]
        assert steps == {f"many/{number}.png": expected for number in range(images)}
        assert await on_a.quiet() and await on_b.quiet()


async def test_a_write_answered_just_before_its_replica_is_killed_still_reaches_the_other(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    async with (
        event_stream(f"{a.url}/events") as on_a,
        httpx.AsyncClient(base_url=a.url, timeout=60) as through_a,
        httpx.AsyncClient(base_url=b.url, timeout=60) as through_b,
    ):
        await marker(through_a, on_a)
        await upload(through_b, "last-words.png", {"from": "B"})
        b.process.send_signal(signal.SIGKILL)  # the moment it answered
        b.process.wait(10)
        (event,) = await on_a.events(1)
        assert sent(event) == ("CREATED", "last-words.png")
        # B's promise no longer holds anything back once it is given up (after a few seconds).
        await upload(through_a, "after.png", {"from": "A"})
        (event,) = await on_a.events(1)
        assert sent(event) == ("CREATED", "after.png")


async def test_a_subscriber_resumes_on_either_replica_right_after_its_last_event(replicas: list[Replica]) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=60) as through_a,
        httpx.AsyncClient(base_url=b.url, timeout=60) as through_b,
    ):
        async with event_stream(f"{a.url}/events") as first_visit:
            await marker(through_b, first_visit)
            for name in ("one", "two"):
                await upload(through_b, f"{name}.png", {})
            seen = await first_visit.events(2)
        # Away: writes go on through both replicas.
        missed = []
        for number, http in enumerate([through_a, through_b, through_a, through_b]):
            missed.append(await upload(http, f"missed-{number}.png", {}))
        assert (await through_b.delete(f"/images/{missed[0]}")).status_code == 200
        expected = [("CREATED", f"missed-{number}.png") for number in range(4)] + [("DELETED", "missed-0.png")]

        last = seen[-1].id
        assert last is not None
        async with subscriber(b.url) as graphql:
            await graphql.subscribe("again", {"after": last})
            replayed = await graphql.events(len(expected))
            assert [shown(event) for event in replayed] == expected
            assert await graphql.quiet()
        for url, params, headers in [
            (a.url, None, {"Last-Event-ID": last}),  # an EventSource reconnecting
            (b.url, {"lastEventId": last}, None),  # a first connection
        ]:
            async with event_stream(f"{url}/events", params, headers) as resumed:
                again = await resumed.events(len(expected))
                assert [sent(event) for event in again] == expected
                assert [event.id for event in again] == [event["id"] for event in replayed]
                assert await resumed.quiet(0.5)
