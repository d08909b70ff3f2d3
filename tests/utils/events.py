"""Clients of the live events for tests: a GraphQL subscriber over a real WebSocket
(graphql-transport-ws) and a Server-Sent Events reader of `GET /events`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect

EVENTS = (
    "subscription($f: ImageFilter, $after: String) "
    "{ imageEvents(filter: $f, after: $after) { id kind image { id file data revision } } }"
)


Item = TypeVar("Item")


async def within(next_one: Callable[[float], Awaitable[Item]], count: int, seconds: float) -> list[Item]:
    """`count` items from `next_one(seconds left)`, all within `seconds`; else a failure saying
    how many came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    found: list[Item] = []
    while len(found) < count:
        left = deadline - loop.time()
        try:
            if left <= 0:
                raise TimeoutError
            found.append(await next_one(left))
        except TimeoutError:
            raise AssertionError(f"{len(found)} of {count} events arrived within {seconds} s: {found[-3:]}") from None
    return found


class Subscriber:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket

    async def subscribe(self, number: str, variables: dict[str, Any] | None = None, query: str = EVENTS) -> None:
        message = {"id": number, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}}
        await self.socket.send(json.dumps(message))

    async def next(self, seconds: float = 10) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.socket.recv(), seconds))
        return message

    async def events(self, count: int, seconds: float = 10) -> list[dict[str, Any]]:
        """The next `count` events (`{id, kind, image}`), all within `seconds`."""

        async def event(left: float) -> dict[str, Any]:
            message = await self.next(left)
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message
            found: dict[str, Any] = message["payload"]["data"]["imageEvents"]
            return found

        return await within(event, count, seconds)

    async def quiet(self, seconds: float = 1.0) -> bool:
        """Whether nothing arrives for a while."""
        try:
            await asyncio.wait_for(self.socket.recv(), seconds)
        except TimeoutError:
            return True
        return False


@asynccontextmanager
async def subscriber(url: str, authorization: str | None = None) -> AsyncIterator[Subscriber]:
    async with connect(url.replace("http://", "ws://") + "/graphql", subprotocols=["graphql-transport-ws"]) as socket:  # type: ignore[list-item]
        payload = {"Authorization": authorization} if authorization else {}
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        assert json.loads(await socket.recv()) == {"type": "connection_ack"}
        yield Subscriber(socket)


@dataclass(frozen=True)
class SentEvent:
    id: str | None
    kind: str
    data: Any


class EventStream:
    """A `GET /events` stream being read: its events as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.received: asyncio.Queue[SentEvent] = asyncio.Queue()
        self.ended = asyncio.Event()

    async def read(self) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if "data" in fields or "event" in fields:
                        data = json.loads(fields["data"]) if "data" in fields else None
                        await self.received.put(SentEvent(fields.get("id"), fields.get("event", "message"), data))
                    fields = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        finally:
            self.ended.set()

    async def events(self, count: int, seconds: float = 10) -> list[SentEvent]:
        return await within(lambda left: asyncio.wait_for(self.received.get(), left), count, seconds)

    async def quiet(self, seconds: float = 1.0) -> bool:
        try:
            await asyncio.wait_for(self.received.get(), seconds)
        except TimeoutError:
            return True
        return False


@asynccontextmanager
async def event_stream(
    url: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
) -> AsyncIterator[EventStream]:
    """`GET url` read as Server-Sent Events in the background; it must answer 200."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as http,
        http.stream("GET", url, params=params, headers=headers) as response,
    ):
        if response.status_code != 200:
            await response.aread()
            raise AssertionError(f"GET {url}: {response.status_code} {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        reader = asyncio.create_task(stream.read())
        try:
            # The service has subscribed once the first comment is there; give it that moment.
            yield stream
        finally:
            reader.cancel()
            with suppress(asyncio.CancelledError, httpx.HTTPError):
                await reader
