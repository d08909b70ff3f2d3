"""Live events over a real WebSocket (graphql-transport-ws) from a real service process with
per-user scope: every write path emits, filters hold, and nobody sees another user's images."""

from __future__ import annotations

import io
import json
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from app.config import Settings
from scripts.servers import REPO_ROOT, free_port
from tests.utils.events import event_stream, subscriber
from tests.utils.images import make_image
from tests.utils.links import with_altered_mac
from tests.utils.live import service_environment, start_service, wait_until_serving
from tests.utils.oidc import AUDIENCE, ISSUER, JwksServer, bearer, claims_for, jwks_server, rsa_key, sign

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # events need no storage

KEY = rsa_key("events")


def token(user: str) -> str:
    return bearer(sign(claims_for(user), KEY))["Authorization"]


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server([KEY]) as server:
        yield server


@pytest.fixture
def service(settings: Settings, jwks: JwksServer, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = service_environment(settings, None) | {
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "OIDC_JWKS_URI": jwks.uri,
        "OIDC_ISSUER": ISSUER,
        "OIDC_AUDIENCE": AUDIENCE,
        "IMAGE_SCOPE": "user",
    }
    log_path = tmp_path / "service.log"
    process = start_service(env, cwd=REPO_ROOT, log_path=log_path)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(url, process, log_path)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def as_user(url: str, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, headers={"Authorization": token(user)}, timeout=30)


async def upload(http: httpx.AsyncClient, file: str, data: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(
        "/images", files={"image": (file, make_image())}, data={"file": file, "data": json.dumps(data)}
    )
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_subscriber_sees_every_write_path_and_only_its_own_images(service: str) -> None:
    async with subscriber(service, token("alice")) as alice_events:
        await alice_events.subscribe("all")
        await alice_events.subscribe("cats", {"f": {"data": [{"path": "label", "eq": "cat"}]}})
        async with as_user(service, "alice") as alice, as_user(service, "bob") as bob:
            # The subscriptions are live once the first event arrives.
            first = await upload(alice, "first.png", {"label": "cat"})
            seen = [await alice_events.next(), await alice_events.next()]
            assert sorted(message["id"] for message in seen) == ["all", "cats"]
            assert all(message["payload"]["data"]["imageEvents"]["kind"] == "CREATED" for message in seen)
            assert seen[0]["payload"]["data"]["imageEvents"]["image"]["file"] == "alice/first.png"

            await upload(bob, "bobs.png", {"label": "cat"})  # never seen by alice
            await alice.patch(f"/images/{first['_id']}", json={"label": "dog"})  # leaves "cats"
            archive = io.BytesIO()
            with zipfile.ZipFile(archive, "w") as zipped:
                zipped.writestr("imported/a.png", make_image())
                zipped.writestr("mongodb_data.json", json.dumps([{"file": "imported/a.png", "data": {"x": 1}}]))
            imported = await alice.post("/import", files={"archive": ("a.zip", archive.getvalue())})
            assert imported.status_code == 200, imported.text
            deleted = await alice.request("DELETE", "/images", params={"filter": json.dumps({"data.x": 1})})
            assert deleted.json()["deletedCount"] == 1
            bulk = (
                'mutation { updateImages(filter: {data: [{path: "label", eq: "dog"}]}, set: {z: 1}) { matchedCount } }'
            )
            mutation = {"query": bulk}
            assert (await alice.post("/graphql", json=mutation)).json()["data"]["updateImages"]["matchedCount"] == 1

            events = [await alice_events.next() for _ in range(4)]
            assert {message["id"] for message in events} == {"all"}
            shown = [
                (
                    event["payload"]["data"]["imageEvents"]["kind"],
                    event["payload"]["data"]["imageEvents"]["image"]["file"],
                )
                for event in events
            ]
            assert shown == [
                ("UPDATED", "alice/first.png"),
                ("CREATED", "alice/imported/a.png"),
                ("DELETED", "alice/imported/a.png"),
                ("UPDATED", "alice/first.png"),
            ]
            assert events[-1]["payload"]["data"]["imageEvents"]["image"]["data"] == {"label": "dog", "z": 1}
            assert await alice_events.quiet()  # nothing of bob's, nothing else


async def test_a_subscription_needs_a_valid_token(service: str) -> None:
    async with subscriber(service, None) as anonymous:
        await anonymous.subscribe("1")
        message = await anonymous.next()
        assert message["type"] == "next"  # an execution error, then the end of the subscription
        assert message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert await anonymous.next() == {"id": "1", "type": "complete"}
    async with subscriber(service, "Bearer not-a-token") as forged:
        await forged.subscribe("1")
        assert (await forged.next())["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_filter_with_a_lone_surrogate_is_bad_user_input(service: str) -> None:
    async with subscriber(service, token("alice")) as alice:
        # json.dumps escapes it as \ud800, as a client holding one sends it.
        await alice.subscribe("1", {"f": {"where": {"data.a": "\ud800"}}})
        message = await alice.next()
        assert message["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "surrogate" in message["payload"]["errors"][0]["message"]


async def test_a_subscription_over_plain_http_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": "subscription { imageEvents { kind } }"})
    assert response.status_code == 400
    assert "subscriptions are not allowed" in response.text


async def test_under_oidc_an_event_stream_opens_by_its_signed_link_within_its_users_scope(service: str) -> None:
    async with as_user(service, "alice") as alice, as_user(service, "bob") as bob:
        query = "query($f: ImageFilter) { eventsUrl(filter: $f) }"
        answer = await alice.post("/graphql", json={"query": query, "variables": {"f": {"where": {"data.k": 1}}}})
        link = answer.json()["data"]["eventsUrl"]
        assert link.startswith(f"{service}/events?") and "signature=" in link
        # An EventSource sends no header: the link alone says whose events these are.
        async with event_stream(link) as stream:
            await upload(bob, "bobs.png", {"k": 1})  # not alice's
            await upload(alice, "other.png", {"k": 2})  # not a match
            await upload(alice, "mine.png", {"k": 1})
            (event,) = await stream.events(1)
            assert (event.kind, event.data["file"]) == ("created", "alice/mine.png")
            assert "signature=" in event.data["url"]  # its image's address is signed for her too
            assert await stream.quiet()
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(link.split("?")[0])).status_code == 401
            address, _, signature = link.partition("signature=")
            tampered = await anonymous.get(address + "signature=" + with_altered_mac(unquote(signature)))
            assert tampered.status_code == 403
            assert "does not match" in tampered.json()["detail"]


async def test_resuming_after_something_that_is_no_event_id_is_bad_user_input(service: str) -> None:
    async with subscriber(service, token("alice")) as alice:
        await alice.subscribe("1", {"after": "not-an-event"})
        message = await alice.next()
        assert message["payload"]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "is not an event id" in message["payload"]["errors"][0]["message"]
        assert await alice.next() == {"id": "1", "type": "complete"}
