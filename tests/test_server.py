"""Request lines and header fields are bounded by the server itself, against a real process.

The service runs as `make run` runs it (app/server.py); oversized heads go over raw sockets,
sent a piece at a time, so that the tests see whether the answer comes while they still send.
"""

from __future__ import annotations

import http.client
import json
import secrets
import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.server import MAX_FIELD_SECTION_BYTES, MAX_TARGET_BYTES
from tests.utils.images import make_image
from tests.utils.live import serving
from tests.utils.s3 import S3Server

# Far more than the bounds: what a client still sending gets through before the refusal
# reaches it is its own socket buffers, a few MB on loopback.
OVERSIZED = 16 * 1024 * 1024
PIECE = 64 * 1024


@dataclass
class Service:
    url: str
    port: int


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    detail: str
    code: str
    sent: int  # bytes of filler sent before the answer came or the connection closed
    closed: bool  # the service closed the connection after answering


@pytest.fixture
def service(settings: Settings, storage_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Service]:
    s3: S3Server | None = request.getfixturevalue("s3_server") if storage_kind == "s3" else None
    with serving(settings, s3, tmp_path) as (url, port):
        yield Service(url=url, port=port)


def send_until_answered(
    port: int, head: bytes, filler: bytes, *, meanwhile: Callable[[], None] = lambda: None
) -> Answer:
    """Send `head`, then `filler` over and over up to OVERSIZED bytes, until the service answers
    or closes the connection; call `meanwhile` once the first 32 KiB of filler are sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sent = 0
        try:
            sock.sendall(head)
            while sent < OVERSIZED and not select.select([sock], [], [], 0)[0]:
                sock.sendall(filler)
                sent += len(filler)
                if sent == 32 * 1024:
                    meanwhile()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service closed the connection: its answer is there to read
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
    answer = json.loads(body)
    return Answer(
        status=response.status,
        headers=response.msg,
        detail=answer["detail"],
        code=answer["code"],
        sent=sent,
        closed=closed,
    )


def test_a_request_line_over_the_bound_is_refused_while_it_is_being_sent(service: Service) -> None:
    served_meanwhile: list[int] = []

    def healthz() -> None:
        # Another connection, while the service holds half a request line of this one.
        served_meanwhile.append(httpx.get(f"{service.url}/healthz", timeout=10).status_code)

    answer = send_until_answered(service.port, b"GET /images?ids[]=", b"a" * 1024, meanwhile=healthz)
    assert (answer.status, answer.code) == (414, "bad_input")
    assert (
        answer.detail == f"The request target (path and query) is longer than the maximum of {MAX_TARGET_BYTES} bytes."
    )
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert answer.closed
    assert answer.sent < OVERSIZED  # answered while the client was still sending
    assert served_meanwhile == [200]
    assert httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "filler",
    [
        pytest.param(b"a" * PIECE, id="one huge header"),
        pytest.param(b"".join(b"x-filler-%04d: %s\r\n" % (n, b"v" * 40) for n in range(1000)), id="many headers"),
    ],
)
def test_header_fields_over_the_bound_are_refused_while_they_are_being_sent(service: Service, filler: bytes) -> None:
    answer = send_until_answered(service.port, b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Huge: ", filler)
    assert (answer.status, answer.code) == (431, "bad_input")
    assert answer.detail == (
        f"The request line and header fields are larger than the maximum of {MAX_FIELD_SECTION_BYTES} bytes."
    )
    assert answer.closed
    assert answer.sent < OVERSIZED
    assert httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200


def test_trailer_fields_over_the_bound_are_refused_while_they_are_being_sent(service: Service) -> None:
    # A chunked JSON body, then a trailer section that does not end: the route waits for the
    # whole body, so the refusal is this request's answer.
    head = (
        b"PATCH /images HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    body = b'{"checked": true}'
    answer = send_until_answered(service.port, head + b"%x\r\n%s\r\n0\r\nX-Huge: " % (len(body), body), b"a" * PIECE)
    assert answer.status == 431
    assert (
        answer.detail == f"The request's trailer fields are larger than the maximum of {MAX_FIELD_SECTION_BYTES} bytes."
    )
    assert answer.closed
    assert answer.sent < OVERSIZED


def test_the_bounds_are_exact_for_a_head_that_starts_a_connection(service: Service) -> None:
    def get(target: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        # http.client, as httpx refuses URLs of 64 KiB itself.
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response

    def target(length: int) -> str:
        return "/healthz?pad=" + "a" * (length - len("/healthz?pad="))

    assert get(target(MAX_TARGET_BYTES), {}).status == 200
    assert get(target(MAX_TARGET_BYTES + 1), {}).status == 414
    # "GET /healthz HTTP/1.1", "Host: 127.0.0.1:<port>", "Accept-Encoding: identity", "X-Pad: <pad>",
    # each with its CRLF, and the blank line.
    fixed = len(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\nAccept-Encoding: identity\r\n")
    room = MAX_FIELD_SECTION_BYTES - fixed - len("X-Pad: \r\n\r\n")
    assert get("/healthz", {"X-Pad": "a" * room}).status == 200
    assert get("/healthz", {"X-Pad": "a" * (room + 1)}).status == 431


def test_one_connection_carries_uploads_long_targets_and_large_headers_in_turn(service: Service) -> None:
    # Each request's head is counted afresh, whatever came before it on the connection.
    with httpx.Client(base_url=service.url, timeout=30, limits=httpx.Limits(max_connections=1)) as client:
        for round_ in range(2):
            uploaded = client.post(
                "/images", files={"image": ("a.png", make_image())}, data={"file": f"keep-alive/{round_}.png"}
            )
            assert uploaded.status_code == 200, uploaded.text
            image_id = uploaded.json()["_id"]
            # A body without Content-Length, in chunks.
            patched = client.patch(
                f"/images/{image_id}",
                content=iter([b'{"round": ', str(round_).encode(), b"}"]),
                headers={"content-type": "application/json", "x-pad": "a" * (MAX_FIELD_SECTION_BYTES // 2)},
            )
            assert patched.status_code == 200, patched.text
            # healthz ignores its query string.
            assert client.get("/healthz", params={"pad": "a" * (MAX_TARGET_BYTES - 100)}).status_code == 200
            assert client.get(f"/images/{image_id}").json()["data"] == {"round": round_}


def test_the_legacy_guis_bulk_requests_with_16_kb_of_ids_pass(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as client:
        stored = []
        for name in ("a", "b", "c"):
            uploaded = client.post(
                "/images", files={"image": (f"{name}.png", make_image())}, data={"file": f"{name}.png"}
            )
            assert uploaded.status_code == 200, uploaded.text
            stored.append(uploaded.json()["_id"])
        # As the GUI sends them: ids[]=…&ids[]=…, here with ids of images that do not exist to make
        # up the length (httpx encodes the brackets: 35 bytes an id).
        ids = stored + [secrets.token_hex(12) for _ in range(460)]
        params = [("ids[]", image_id) for image_id in ids]
        assert len(str(httpx.QueryParams(params))) > 16_000

        listed = client.get("/images", params=params + [("limit", "1000")])
        assert listed.status_code == 200, listed.text
        assert sorted(item["_id"] for item in listed.json()["items"]) == sorted(stored)
        patched = client.patch("/images", params=params, json={"checked": True})
        assert patched.status_code == 200, patched.text
        assert patched.json()["matchedCount"] == 3
        deleted = client.delete("/images", params=params)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deletedCount"] == 3
