"""How the service is served: uvicorn, configured here once, with bounded request heads.

`make run` (scripts/run_service.py) and the container image (`python -m app.server`) both call
`serve`, so the two cannot drift apart.

Uvicorn's httptools protocol reads a request line and header fields without a bound: it grows
the target with `url += chunk` and httptools grows each field the same way, so a 60 MB request
line held the event loop for seconds (every other request waited) and took over 60 MB of memory
before uvicorn refused it (bench/bench_heads.py). `BoundedHttpToolsProtocol` counts them as they
arrive and answers 414 or 431 the moment they pass the bound, without reading the rest. h11,
uvicorn's other parser, has a bound of its own, but answers it with a bare 400, and parses in
Python where httptools runs llhttp in C.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.config import ConfigError, Settings, load_settings
from app.rest.events import DRAINING

# The request target (path and query string): the longest httptools' URL parser takes (its
# offsets are 16-bit; uvicorn answers a longer one 400, once it has read all of it). Four times
# the legacy GUI's longest, the ~16 KB of ids[] its bulk requests carry.
MAX_TARGET_BYTES = 64 * 1024 - 1
# A header section (request line and header fields), and a trailer section: room for the
# largest target beside 64 KiB of fields, which holds any bearer token and cookies a browser
# sends (browsers cap a cookie at 4 KiB; nginx and Node.js allow 8–16 KiB for all fields).
MAX_FIELD_SECTION_BYTES = 128 * 1024


@dataclass(frozen=True, kw_only=True)
class Refusal:
    status: int
    detail: str
    # The body's machine-readable code, as in every error answer (app/rest/errors.py): each
    # refusal here is a request too large to read, so the client's to fix.
    code: str = "bad_input"


TARGET_TOO_LONG = Refusal(
    status=414, detail=f"The request target (path and query) is longer than the maximum of {MAX_TARGET_BYTES} bytes."
)
HEADERS_TOO_LARGE = Refusal(
    status=431,
    detail=f"The request line and header fields are larger than the maximum of {MAX_FIELD_SECTION_BYTES} bytes.",
)
TRAILERS_TOO_LARGE = Refusal(
    status=431, detail=f"The request's trailer fields are larger than the maximum of {MAX_FIELD_SECTION_BYTES} bytes."
)


class HeadTooLarge(Exception):
    """Raised in a parser callback: llhttp stops at that byte and reads nothing further."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol, with the request target and field sections bounded.

    The target is counted exactly, as llhttp hands it over. A field section is counted by the
    bytes fed to the parser while it lasts, and the parser is never fed past the bound: the
    section starts at the connection's start, at the end of the previous request, or (trailers)
    at the last chunk. A section that starts in the middle of a read (pipelined requests,
    trailers) is counted from the next read on, so it may run past the bound by one read (at
    most 256 KiB) before it is refused.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._target_bytes = 0
        # Bytes of the field section being read; None while a body is, which the app's own
        # limits bound (app/rest/limits.py).
        self._section_bytes: int | None = 0
        self._section_refusal = HEADERS_TOO_LARGE
        # Bumped whenever a section or a body starts or ends: a feed during which it did not
        # change was all inside the section it started in.
        self._transitions = 0
        self._refusal: Refusal | None = None

    def shutdown(self) -> None:
        # Uvicorn waits for responses in flight before it stops; an endless one (GET /events)
        # would hold the stop for the whole grace period. Set, the app's streams end.
        draining = self.app_state.get(DRAINING)
        if draining is not None:
            draining.set()
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        # Within a field section, the parser is fed at most what the section may still take.
        while data:
            if self._section_bytes is None:
                super().data_received(data)
                return
            room = MAX_FIELD_SECTION_BYTES - self._section_bytes
            if room <= 0:
                self._refuse(self._section_refusal)
                return
            piece, data = data[:room], data[room:]
            transitions = self._transitions
            super().data_received(piece)
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                return  # refused, a parse error answered, or handed to the WebSocket protocol
            if self._transitions == transitions:
                self._section_bytes += len(piece)
            elif self.parser.should_upgrade():
                return  # what follows an Upgrade request's head in the same read: uvicorn drops it too

    def send_400_response(self, msg: str) -> None:
        # Uvicorn's answer to a parse error, which is how a refusal raised in a callback ends.
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(self._refusal)

    def _refuse(self, refusal: Refusal) -> None:
        self.logger.warning("Refused a request: %s", refusal.detail)
        if refusal is TRAILERS_TOO_LARGE:
            # The request being served: answered unless the app has begun its response.
            free = not self.cycle.response_started
        else:
            # A new request: answered unless the previous one's response is still being sent.
            free = self.cycle is None or self.cycle.response_complete
        if free:
            body = json.dumps({"detail": refusal.detail, "code": refusal.code}).encode()
            lines = [STATUS_LINE[refusal.status]]
            lines += [b"%s: %s\r\n" % header for header in self.server_state.default_headers]
            lines += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body)]
            lines += [b"connection: close\r\n\r\n", body]
            self.transport.write(b"".join(lines))
        # Otherwise the refusal would land in the middle of a response: the connection is only closed.
        self.transport.close()

    # -- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._target_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._target_bytes += len(url)
        if self._target_bytes > MAX_TARGET_BYTES:
            self._refusal = TARGET_TOO_LONG
            raise HeadTooLarge  # answered by send_400_response, above
        super().on_url(url)

    def on_headers_complete(self) -> None:
        self._enter_body()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._enter_body()
        super().on_body(body)

    def on_chunk_header(self) -> None:
        # Either a data chunk, whose body follows at once, or the last chunk and its trailers.
        self._enter_section(TRAILERS_TOO_LARGE)

    def on_chunk_complete(self) -> None:
        self._enter_body()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._enter_section(HEADERS_TOO_LARGE)

    def _enter_section(self, refusal: Refusal) -> None:
        self._section_bytes, self._section_refusal = 0, refusal
        self._transitions += 1

    def _enter_body(self) -> None:
        self._section_bytes = None
        self._transitions += 1


def serve(settings: Settings) -> None:
    """Run the service in this process until SIGINT or SIGTERM."""
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        http=BoundedHttpToolsProtocol,
        host=settings.app_host,
        port=settings.app_port,
        # The service logs one line per request itself (app/rest/access.py).
        access_log=False,
        # In-flight downloads, exports and imports get this long after SIGTERM; then the
        # lifespan closes the database and storage.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 1
    serve(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
