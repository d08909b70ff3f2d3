"""Concurrent writers never lose an acknowledged write, within one process and across two.

Real FerretDB and MinIO (or local storage); the cross-process tests run two service processes
on one database and one storage, as two replicas would.
"""

from __future__ import annotations

import asyncio
import io
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image as PillowImage
from pymongo import AsyncMongoClient

from app import services
from app.config import Settings
from app.domain.writes.leases import Leases, lease_document, path_key
from app.main import create_app
from app.store.engines.ferretdb_sqlite import shortcuts
from app.store.leases import COLLECTION as LEASES
from app.store.leases import LeaseStore
from scripts.servers import REPO_ROOT, free_port
from tests.utils.commands import recorded
from tests.utils.graphql import gql
from tests.utils.images import make_image
from tests.utils.live import service_environment, start_service, wait_until_serving
from tests.utils.s3 import S3Server
from tests.utils.service import LifespanClient, upload
from tests.utils.stored import leases_settled, stored_keys
from tests.utils.waiting import eventually

WRITERS = 50


async def raw_collection(settings: Settings, name: str = "images") -> tuple[AsyncMongoClient[dict[str, Any]], Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri, tz_aware=True)
    return client, client[settings.mongodb_database][name]


async def leases_left(settings: Settings) -> list[dict[str, Any]]:
    client, leases = await raw_collection(settings, LEASES)
    try:
        return await leases.find({}).to_list(None)
    finally:
        await client.close()


@pytest.fixture(params=["ferretdb", "sqlite"])
def found_by(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, ferretdb_sqlite_directory: Path | None
) -> Iterator[str]:
    """Who finds a bulk write's batches on the embedded default: FerretDB, or SQLite with lookups
    by id, as it does for large collections (app/store/engines/ferretdb_sqlite/shortcuts.py). The sqlite variant
    fails unless SQLite did find a page: else it silently repeats the ferretdb one."""
    if request.param == "ferretdb":
        yield "ferretdb"
        return
    if ferretdb_sqlite_directory is None:
        pytest.skip("an external database: no FerretDB SQLite files to find pages in")
    monkeypatch.setattr(shortcuts, "FERRETDB_READ_SECONDS", 1.0)
    plan_page = shortcuts.SQLiteShortcuts.plan_page
    plans: list[Any] = []

    async def spied(self: Any, *args: Any, **kwargs: Any) -> Any:
        plan = await plan_page(self, *args, **kwargs)
        plans.append(plan)
        return plan

    monkeypatch.setattr(shortcuts.SQLiteShortcuts, "plan_page", spied)
    yield "sqlite"
    # A plan with ids is a page SQLite found, then read by id. Not that: None (SQLite cannot say),
    # ids None (FerretDB finds the page), ids [] (no match left, which SQLite tells at any cost).
    found = [plan for plan in plans if plan is not None and plan.ids]
    assert found, f"SQLite found no page: {len(plans)} asked, answers {plans[:5]}"


# -- metadata, one process -------------------------------------------------------------------


@pytest.mark.parametrize("run", range(10))
async def test_concurrent_patches_of_distinct_keys_all_survive(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, run: int
) -> None:
    image = (await upload(client, make_image(), fields={"file": "one.png", "start": "yes"})).json()
    answers = await asyncio.gather(
        *(client.patch(f"/images/{image['_id']}", json={f"k{index}": index}) for index in range(WRITERS))
    )
    assert {answer.status_code for answer in answers} == {200}
    data = (await client.get(f"/images/{image['_id']}")).json()["data"]
    assert data == {"start": "yes", **{f"k{index}": index for index in range(WRITERS)}}
    await leases_settled(app)  # a write is answered before its lease's release reaches the database
    assert await leases_left(settings) == []


@pytest.mark.parametrize("run", range(10))
async def test_concurrent_graphql_updates_of_distinct_keys_all_survive(client: httpx.AsyncClient, run: int) -> None:
    image = (await upload(client, make_image(), fields={"file": "one.png"})).json()
    mutation = "mutation($id: ID!, $set: JSON) { updateImage(id: $id, set: $set) { id } }"
    answers = await asyncio.gather(
        *(gql(client, mutation, {"id": image["_id"], "set": {f"k{index}": index}}) for index in range(WRITERS))
    )
    assert all("errors" not in answer for answer in answers)
    data = (await client.get(f"/images/{image['_id']}")).json()["data"]
    assert data == {f"k{index}": index for index in range(WRITERS)}


@pytest.mark.parametrize("run", range(3))
async def test_concurrent_bulk_patches_of_distinct_keys_all_survive(
    client: httpx.AsyncClient, run: int, found_by: str
) -> None:
    ids = [
        (await upload(client, make_image(), fields={"file": f"{name}.png", "label": "cat"})).json()["_id"]
        for name in ("a", "b")
    ]
    await upload(client, make_image(), fields={"file": "dog.png", "label": "dog"})
    answers = await asyncio.gather(
        *(client.patch("/images?label=cat", json={f"k{index}": index}) for index in range(WRITERS))
    )
    assert [answer.json()["matchedCount"] for answer in answers] == [2] * WRITERS
    for image_id in ids:
        data = (await client.get(f"/images/{image_id}")).json()["data"]
        assert data == {"label": "cat", **{f"k{index}": index for index in range(WRITERS)}}


async def test_single_and_bulk_patches_and_a_reupload_race_without_loss(
    client: httpx.AsyncClient, found_by: str
) -> None:
    image = (await upload(client, make_image(), fields={"file": "x.png", "label": "cat"})).json()
    singles = [client.patch(f"/images/{image['_id']}", json={f"one{index}": index}) for index in range(20)]
    bulks = [client.patch("/images?label=cat", json={f"many{index}": index}) for index in range(20)]
    answers = await asyncio.gather(*singles, *bulks)
    assert {answer.status_code for answer in answers} == {200}
    data = (await client.get(f"/images/{image['_id']}")).json()["data"]
    assert set(data) == {"label", *(f"one{index}" for index in range(20)), *(f"many{index}" for index in range(20))}


# -- uploads and deletes on one path -----------------------------------------------------------


def _described_by(document: dict[str, Any], content: bytes) -> bool:
    """Whether the document's facts are those of these bytes."""
    with PillowImage.open(io.BytesIO(content)) as picture:
        width, height = picture.size
    return (document["size"], document["width"], document["height"]) == (len(content), width, height)


async def test_concurrent_uploads_to_one_path_leave_matching_bytes_and_metadata(client: httpx.AsyncClient) -> None:
    contents = [make_image(10 + index, 10 + 2 * index) for index in range(20)]
    answers = await asyncio.gather(
        *(
            upload(client, content, fields={"file": "same.png", "writer": str(index)})
            for index, content in enumerate(contents)
        )
    )
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.json()["_id"] for answer in answers}) == 1
    listed = (await client.get("/images")).json()
    assert listed["total"] == 1
    document = listed["items"][0]
    stored = (await client.get(f"/images/{document['_id']}/image")).content
    assert _described_by(document, stored)
    assert stored == contents[int(document["data"]["writer"])]


async def test_deletes_racing_reuploads_never_leave_a_document_without_its_file(
    client: httpx.AsyncClient, app: FastAPI, found_by: str
) -> None:
    for round_ in range(15):
        # One image beside them, so that the closing bulk delete always has a page to find.
        await upload(client, make_image(), fields={"file": "beside.png"})
        created = (await upload(client, make_image(), fields={"file": "r.png"})).json()
        await asyncio.gather(
            client.delete(f"/images/{created['_id']}"),
            upload(client, make_image(12, 12), fields={"file": "r.png"}),
            client.delete("/images?file=r.png"),
        )
        listed = (await client.get("/images")).json()["items"]
        keys = await stored_keys(app)
        assert {item["file"] for item in listed} == keys, round_  # every document has its file; no file is orphaned
        await client.delete("/images")


# -- leases ----------------------------------------------------------------------------------


async def test_uploads_racing_for_one_id_leave_no_file_behind(client: httpx.AsyncClient, app: FastAPI) -> None:
    image_id = "5f0c6c3a9b1e8a0012345678"
    answers = await asyncio.gather(
        *(upload(client, make_image(), fields={"file": f"a{index}.png", "_id": image_id}) for index in range(10))
    )
    assert sorted(answer.status_code for answer in answers) == [200] + [409] * 9
    winner = next(answer.json() for answer in answers if answer.status_code == 200)
    assert await stored_keys(app) == {winner["file"]}


async def test_an_expired_lease_of_a_dead_process_is_taken_over(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    image = (await upload(client, make_image(), fields={"file": "x.png"})).json()
    await leases_settled(app)  # the upload's own release, sent after its answer
    raw, leases = await raw_collection(settings, LEASES)
    try:
        expired = datetime.now(UTC) - timedelta(seconds=1)
        await leases.insert_one(lease_document(path_key("x.png"), "dead", expired))
        response = await client.patch(f"/images/{image['_id']}", json={"a": 1})
        assert response.status_code == 200
        await leases_settled(app)
        assert await leases.count_documents({}) == 0
    finally:
        await raw.close()


async def test_a_held_lease_makes_writers_wait_for_it(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    image = (await upload(client, make_image(), fields={"file": "x.png"})).json()
    await leases_settled(app)  # the upload's own release, sent after its answer
    raw, leases = await raw_collection(settings, LEASES)
    try:
        held = datetime.now(UTC) + timedelta(seconds=30)
        await leases.insert_one(lease_document(path_key("x.png"), "other-process", held))
        waiting = asyncio.create_task(client.patch(f"/images/{image['_id']}", json={"a": 1}))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        assert (await client.get(f"/images/{image['_id']}")).json()["data"] == {}  # readers do not wait
        await leases.delete_one({"key": path_key("x.png")})
        assert (await waiting).status_code == 200
        assert (await client.get(f"/images/{image['_id']}")).json()["data"] == {"a": 1}
    finally:
        await raw.close()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_a_lease_held_past_the_wait_is_a_retryable_busy_409(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waits of a fraction of a second instead of 30 s: the writer gives up once past its wait
    # and a lease's lifetime, as it does on a lease nobody renews that has not expired.
    monkeypatch.setattr(services, "Leases", partial(Leases, wait=0.2, ttl=0.3))
    settings = make_settings()
    async with LifespanClient(create_app(settings)) as (client, app):
        image = (await upload(client, make_image(), fields={"file": "x.png"})).json()
        await leases_settled(app)  # the upload's own release, sent after its answer
        raw, leases = await raw_collection(settings, LEASES)
        try:
            held = datetime.now(UTC) + timedelta(seconds=30)
            await leases.insert_one(lease_document(path_key("x.png"), "other-process", held))
            response = await client.patch(f"/images/{image['_id']}", json={"a": 1})
            assert response.status_code == 409
            assert response.json() == {
                "detail": "The image is being changed by another request; try again.",
                "code": "busy",
            }
            refused = await gql(client, f'mutation {{ updateImage(id: "{image["_id"]}", set: {{a: 1}}) {{ id }} }}')
            assert refused["errors"][0]["extensions"]["code"] == "BUSY"
        finally:
            await raw.close()


CONTENDERS = 8


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # leases only: no storage
async def test_contenders_taking_over_one_dead_lease_never_hold_it_together(settings: Settings) -> None:
    """Each contender is a process of its own as far as leases go: its own client and turns."""
    clients = [AsyncMongoClient(settings.mongodb_uri, tz_aware=True) for _ in range(CONTENDERS)]
    contenders = [Leases(store=LeaseStore(lambda c=c: c[settings.mongodb_database][LEASES])) for c in clients]
    leases = clients[0][settings.mongodb_database][LEASES]
    holding = 0
    most = 0

    async def contend(lease: Leases) -> None:
        nonlocal holding, most
        async with lease.hold(["file:dead.png"]):
            holding += 1
            most = max(most, holding)
            await asyncio.sleep(0.02)
            holding -= 1

    try:
        for _ in range(10):
            expired = datetime.now(UTC) - timedelta(seconds=1)
            await leases.insert_one(lease_document("file:dead.png", "dead", expired))
            await asyncio.gather(*(contend(lease) for lease in contenders))
            await asyncio.gather(*(lease.settled() for lease in contenders))
            assert await leases.count_documents({}) == 0
        assert most == 1
    finally:
        for client in clients:
            await client.close()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_writers_finishing_together_release_their_leases_in_one_delete(settings: Settings) -> None:
    client, leases = await raw_collection(settings, LEASES)
    holder = Leases(store=LeaseStore(lambda: leases))
    finish = asyncio.Event()

    async def write(path: str) -> None:
        async with holder.hold([path_key(path), path_key(f"{path}.json")]):
            await finish.wait()

    async def all_taken() -> bool:
        return await leases.count_documents({}) >= 16

    try:
        writers = [asyncio.create_task(write(f"{index}.png")) for index in range(8)]
        await eventually(all_taken, interval=0.01, what="8 writers holding their 16 leases")
        with recorded() as sent:
            finish.set()
            await asyncio.gather(*writers)
            await holder.settled()
        assert await leases.count_documents({}) == 0  # every lease released, nobody else's touched
        assert [command.name for command in sent if command.collection == LEASES] == ["delete"]
        # A path is free again once its writer is done.
        async with holder.hold([path_key("3.png")]):
            pass
        await holder.settled()
        assert await leases.count_documents({}) == 0
    finally:
        await client.close()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_writers_starting_together_take_their_leases_in_one_insert(settings: Settings) -> None:
    client, leases = await raw_collection(settings, LEASES)
    ours, theirs = Leases(store=LeaseStore(lambda: leases)), Leases(store=LeaseStore(lambda: leases), wait=5)
    holding: list[str] = []
    finish = asyncio.Event()

    async def write(path: str) -> None:
        async with ours.hold([path_key(path)]):
            holding.append(path)
            await finish.wait()

    try:
        await ours.prepare()
        async with theirs.hold([path_key("3.png")]):  # another process's writer holds one path
            with recorded() as sent:
                writers = [asyncio.create_task(write(f"{index}.png")) for index in range(8)]
                await eventually(lambda: len(holding) >= 7, interval=0.01, what="7 writers holding their leases")
            assert [command.name for command in sent if command.collection == LEASES][0] == "insert"
            assert [command.name for command in sent if command.collection == LEASES].count("insert") <= 2
            await asyncio.sleep(0.2)
            assert "3.png" not in holding  # it waits for the other writer, alone
        await eventually(lambda: len(holding) >= 8, interval=0.01, what="3.png's writer holding its lease")
        finish.set()
        await asyncio.gather(*writers)
        await asyncio.gather(ours.settled(), theirs.settled())
        assert await leases.count_documents({}) == 0
    finally:
        await client.close()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_a_writer_cancelled_while_taking_its_lease_leaves_none_behind(settings: Settings) -> None:
    client, leases = await raw_collection(settings, LEASES)
    holder = Leases(store=LeaseStore(lambda: leases), wait=2)

    async def write() -> None:
        async with holder.hold([path_key("a.png")]):
            await asyncio.sleep(10)

    try:
        for _ in range(5):
            writer = asyncio.create_task(write())
            await asyncio.sleep(0)  # its insert is on its way
            writer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await writer
            # The next writer of the path gets it at once, not when the lease would expire (30 s).
            async with holder.hold([path_key("a.png")]):
                pass
        await holder.settled()
        assert await leases.count_documents({}) == 0
    finally:
        await client.close()


class SlowRenewals:
    """The leases collection, with renewals that take a while and tell when they start and end."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.started = asyncio.Event()
        self.finished = 0
        self.cancelled = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def update_many(self, *args: Any, **kwargs: Any) -> Any:
        self.started.set()
        try:
            await asyncio.sleep(0.3)
            result = await self._collection.update_many(*args, **kwargs)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return result


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_a_release_lets_a_renewal_under_way_finish(settings: Settings) -> None:
    # A command cancelled under way closes its connection, and FerretDB drops the cursors opened
    # on it: a bulk delete whose batch outlasted a renewal failed half-way, "cursor not found".
    client, leases = await raw_collection(settings, LEASES)
    slow = SlowRenewals(leases)
    holder = Leases(store=LeaseStore(lambda: slow), ttl=0.3)  # renewed every 0.1 s
    try:
        async with holder.hold([path_key("a.png")]):
            await slow.started.wait()
        await holder.close()  # as the service stops: releases done, the renewal let finish
        assert (slow.finished, slow.cancelled) == (1, 0)
        assert await leases.count_documents({}) == 0
    finally:
        await client.close()


async def test_releasing_leases_never_removes_another_writers_lease(settings: Settings) -> None:
    client, leases = await raw_collection(settings, LEASES)
    ours, theirs = Leases(store=LeaseStore(lambda: leases)), Leases(store=LeaseStore(lambda: leases))
    try:
        async with theirs.hold([path_key("b.png")]):
            async with ours.hold([path_key("a.png")]):
                pass
            await ours.settled()
            assert [lease["key"] for lease in await leases.find().to_list(None)] == [path_key("b.png")]
        await theirs.settled()
        assert await leases.count_documents({}) == 0
    finally:
        await client.close()


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_leases_of_the_earlier_form_do_not_block_the_upgraded_service(settings: Settings) -> None:
    """Before, a lease's `_id` was its key; such a lease cannot be told apart from a live one of
    the new form, so the first writer of the upgraded service drops them all (they are seconds old)."""
    client, leases = await raw_collection(settings, LEASES)
    holder = Leases(store=LeaseStore(lambda: leases), wait=2)
    try:
        held = datetime.now(UTC) + timedelta(seconds=30)
        await leases.insert_one({"_id": path_key("old.png"), "owner": "before", "expires": held})
        async with holder.hold([path_key("old.png")]):
            assert [lease["owner"] for lease in await leases.find().to_list(None)] != ["before"]
        await holder.settled()
        assert await leases.count_documents({}) == 0
        assert "key_1" in await leases.index_information()
    finally:
        await client.close()


# -- two service processes -------------------------------------------------------------------


@dataclass
class Replicas:
    urls: list[str]
    settings: Settings


@pytest.fixture
def replicas(
    settings: Settings, storage_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Replicas]:
    """Two service processes on this test's database and storage."""
    s3: S3Server | None = request.getfixturevalue("s3_server") if storage_kind == "s3" else None
    env = service_environment(settings, s3)
    processes = []
    urls = []
    try:
        for number in range(2):
            port = free_port()
            log_path = tmp_path / f"replica{number}.log"
            process = start_service(
                env | {"APP_HOST": "127.0.0.1", "APP_PORT": str(port)}, cwd=REPO_ROOT, log_path=log_path
            )
            processes.append(process)
            url = f"http://127.0.0.1:{port}"
            wait_until_serving(url, process, log_path)
            urls.append(url)
        yield Replicas(urls=urls, settings=settings)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)


@pytest.fixture
async def clients(replicas: Replicas) -> AsyncIterator[list[httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=replicas.urls[0], timeout=60) as first,
        httpx.AsyncClient(base_url=replicas.urls[1], timeout=60) as second,
    ):
        yield [first, second]


async def test_two_processes_patching_one_image_lose_no_key(
    clients: list[httpx.AsyncClient], replicas: Replicas
) -> None:
    first, second = clients
    image = (await upload(first, make_image(), fields={"file": "shared.png"})).json()
    for run in range(3):
        answers = await asyncio.gather(
            *(
                clients[index % 2].patch(f"/images/{image['_id']}", json={f"r{run}k{index}": index})
                for index in range(WRITERS)
            )
        )
        assert {answer.status_code for answer in answers} == {200}
    data = (await second.get(f"/images/{image['_id']}")).json()["data"]
    assert data == {f"r{run}k{index}": index for run in range(3) for index in range(WRITERS)}
    bulk = await asyncio.gather(
        *(clients[index % 2].patch("/images", json={f"bulk{index}": index}) for index in range(20))
    )
    assert {answer.json()["matchedCount"] for answer in bulk} == {1}
    data = (await first.get(f"/images/{image['_id']}")).json()["data"]
    assert {f"bulk{index}" for index in range(20)} <= set(data)

    # A write is answered before its lease's release reaches the database: soon, not at once.
    async def no_lease_left() -> bool:
        return await leases_left(replicas.settings) == []

    await eventually(no_lease_left, seconds=10, what="every lease released")


async def test_two_processes_uploading_one_path_leave_matching_bytes_and_metadata(
    clients: list[httpx.AsyncClient],
) -> None:
    contents = [make_image(10 + index, 30 - index) for index in range(20)]
    answers = await asyncio.gather(
        *(
            upload(clients[index % 2], content, fields={"file": "same.png", "writer": str(index)})
            for index, content in enumerate(contents)
        )
    )
    assert {answer.status_code for answer in answers} == {200}
    listed = (await clients[0].get("/images")).json()
    assert listed["total"] == 1
    document = listed["items"][0]
    stored = (await clients[1].get(f"/images/{document['_id']}/image")).content
    assert _described_by(document, stored)
    assert stored == contents[int(document["data"]["writer"])]


async def test_two_processes_deleting_and_reuploading_never_leave_a_document_without_its_file(
    clients: list[httpx.AsyncClient], replicas: Replicas, storage_kind: str, request: pytest.FixtureRequest
) -> None:
    first, second = clients
    for round_ in range(10):
        created = (await upload(first, make_image(), fields={"file": "r.png"})).json()
        await asyncio.gather(
            second.delete(f"/images/{created['_id']}"),
            upload(first, make_image(12, 12), fields={"file": "r.png"}),
            second.delete("/images?file=r.png"),
            upload(second, make_image(14, 14), fields={"file": "r.png"}),
        )
        listed = (await first.get("/images")).json()["items"]
        for item in listed:
            download = await second.get(f"/images/{item['_id']}/image")
            assert download.status_code == 200, (round_, download.text)
            assert _described_by(item, download.content)
        # No file without its document either.
        assert keys_in_storage(replicas.settings, storage_kind, request) == {item["file"] for item in listed}, round_
        await first.delete("/images")


def keys_in_storage(settings: Settings, storage_kind: str, request: pytest.FixtureRequest) -> set[str]:
    if storage_kind == "local":
        root = Path(settings.uploads_directory)
        return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}
    s3: S3Server = request.getfixturevalue("s3_server")
    return {item.object_name for item in s3.client().list_objects(settings.s3_bucket, recursive=True)}
