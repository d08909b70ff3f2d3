"""A page of thumbnails in real Chromium, offline: content addresses load once and a repeat visit
asks the service for none of them; under OIDC, signed links load without a header and a
tampered one is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from app.config import Settings
from tests.utils.browser import chromium, watch
from tests.utils.images import make_image
from tests.utils.links import with_altered_mac
from tests.utils.live import serving
from tests.utils.loopback import loopback_server
from tests.utils.oidc import AUDIENCE, ISSUER, JwksServer, bearer, claims_for, jwks_server, rsa_key, sign

pytestmark = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)

THUMBNAILS = 60
WIDTH = 48
CONTENT_ROUTE = "/images/{image_id}/content/{content}"
FILE_ROUTE = "/images/{image_id}/file"
KEY = rsa_key("pages-1")


def content_requests(url: str, status: str = r"\d+", route: str = CONTENT_ROUTE) -> int:
    """How many requests for `route` the service has answered (its own /metrics)."""
    text = httpx.get(f"{url}/metrics").text
    labels = rf'[^}}]*route="{re.escape(route)}",status="{status}"'
    pattern = rf"^image_storage_http_requests_total\{{{labels}[^}}]*\}} (\S+)$"
    return int(sum(float(value) for value in re.findall(pattern, text, re.MULTILINE)))


def gallery(urls: list[str]) -> str:
    tags = "".join(f'<img src="{url}{"&" if "?" in url else "?"}width={WIDTH}" alt="">' for url in urls)
    return f"<!doctype html><html><head><title>thumbnails</title></head><body>{tags}</body></html>"


@contextmanager
def page_server(html: str) -> Iterator[str]:
    """`html` served at a loopback URL, as the gallery will be: the same site as the service's
    images, so the browser's cache is shared between visits and pages. (Not `page.route`, which
    turns the browser's HTTP cache off, nor `set_content`, whose opaque origin gives each page a
    cache of its own.)"""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with loopback_server(Handler) as base:
        yield f"{base}/"


def show(page: Page, url: str) -> None:
    """Open `url`, and wait until every image on it is loaded (or failed)."""
    page.goto(url)
    page.wait_for_function("() => [...document.images].every(image => image.complete)", timeout=30_000)


def loaded_widths(page: Page) -> list[int]:
    widths: list[int] = page.evaluate("() => [...document.images].map(image => image.naturalWidth)")
    return widths


@pytest.fixture
def plain_service(settings: Settings, tmp_path: Path) -> Iterator[str]:
    with serving(settings, None, tmp_path) as (url, _):
        yield url


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server([KEY]) as server:
        yield server


@pytest.fixture
def oidc_service(settings: Settings, tmp_path: Path, jwks: JwksServer) -> Iterator[str]:
    oidc = {"OIDC_JWKS_URI": jwks.uri, "OIDC_ISSUER": ISSUER, "OIDC_AUDIENCE": AUDIENCE, "IMAGE_SCOPE": "user"}
    with serving(settings, None, tmp_path, extra=oidc) as (url, _):
        yield url


def seed(url: str, count: int, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    documents = []
    with httpx.Client(base_url=url, headers=headers or {}, timeout=30) as http:
        for number in range(count):
            color = (number * 4 % 256, 255 - number * 4 % 256, 90)
            image = {"image": (f"page/{number:02d}.png", make_image(96, 64, color=color), "image/png")}
            response = http.post("/images", files=image)
            assert response.status_code == 200, response.text
            documents.append(response.json())
    return documents


def test_a_repeat_visit_to_a_page_of_60_thumbnails_asks_the_service_for_none(plain_service: str) -> None:
    documents = seed(plain_service, THUMBNAILS)
    html = gallery([f"{plain_service}{document['url']}" for document in documents])
    before = content_requests(plain_service)
    with page_server(html) as page_url, chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        watched = watch(page)
        show(page, page_url)
        assert loaded_widths(page) == [WIDTH] * THUMBNAILS
        first_visit = content_requests(plain_service) - before

        page.reload()
        page.wait_for_function("() => [...document.images].every(image => image.complete)")
        assert loaded_widths(page) == [WIDTH] * THUMBNAILS
        another = context.new_page()  # a visit in another tab
        show(another, page_url)
        assert loaded_widths(another) == [WIDTH] * THUMBNAILS
        repeat_visits = content_requests(plain_service) - before - first_visit

    assert first_visit == THUMBNAILS
    assert repeat_visits == 0
    assert watched.errors == []
    assert all(url.startswith("http://127.0.0.1:") for url in watched.requested)  # nothing left the machine


def test_the_plain_file_route_is_revalidated_on_every_visit(plain_service: str) -> None:
    """What content addresses spare: the same page built on `/images/{id}/file` asks again for
    every image on each visit (each answered 304)."""
    documents = seed(plain_service, THUMBNAILS)
    html = gallery([f"{plain_service}/images/{document['_id']}/file" for document in documents])
    with page_server(html) as page_url, chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        show(page, page_url)
        before = content_requests(plain_service, route=FILE_ROUTE)
        another = context.new_page()
        show(another, page_url)
        assert loaded_widths(another) == [WIDTH] * THUMBNAILS
        repeat_visit = content_requests(plain_service, route=FILE_ROUTE) - before
        revalidated = content_requests(plain_service, status="304", route=FILE_ROUTE)
    assert repeat_visit == THUMBNAILS
    assert revalidated == THUMBNAILS


def test_under_oidc_signed_thumbnails_load_without_a_header_and_a_tampered_one_is_refused(
    oidc_service: str,
) -> None:
    alice = bearer(sign(claims_for("alice"), KEY))
    documents = seed(oidc_service, 3, alice)
    urls = [f"{oidc_service}{document['url']}" for document in documents]
    assert all("signature=" in url for url in urls)
    tampered = re.sub(r"signature=([^&]+)", lambda found: f"signature={with_altered_mac(found[1])}", urls[2])
    assert tampered != urls[2]
    unsigned = urls[1].split("?")[0]
    with page_server(gallery([urls[0], urls[1], tampered, unsigned])) as page_url, chromium() as browser:
        page = browser.new_page()
        show(page, page_url)
        widths = loaded_widths(page)

    assert widths == [WIDTH, WIDTH, 0, 0]  # the browser sent no token for any of them
    # (The refusals' JSON never reaches the page: the browser blocks it for an <img>.)
    assert content_requests(oidc_service, "403") == 1
    assert content_requests(oidc_service, "401") == 1
