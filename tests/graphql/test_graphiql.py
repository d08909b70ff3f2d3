"""GraphiQL in a real browser, offline: Debian's headless Chromium, driven by Playwright, runs an
`images` query against the service over TCP. The page and every file it loads must come from
the service itself (app/graphql/ide.py), since CI has no route to unpkg.com.

The browser comes from tests/utils/browser.py (skipped where Chromium is not installed).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from scripts.servers import REPO_ROOT, free_port
from tests.utils.browser import chromium, watch
from tests.utils.images import make_image
from tests.utils.live import wait_until_serving

QUERY = "{ images { total items { file } } }"
SEEDED = ("graphiql-red.png", "graphiql-blue.png")


@pytest.fixture
def service_url(
    mongodb_server_uri: str, database_name: str, tmp_path: Path, external_environment: dict[str, str]
) -> Iterator[str]:
    """The service in a process of its own (a browser needs a real TCP port), on local storage,
    with the SEEDED images uploaded through REST."""
    port = free_port()
    env = os.environ | {
        "MONGODB_CONNECTION_STRING": f"{mongodb_server_uri.rstrip('/')}/{database_name}",
        "UPLOADS_DIRECTORY": str(tmp_path / "uploads"),
    }
    log_path = tmp_path / "service.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1"]
            + ["--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, log_path)
        for name, color, label in zip(SEEDED, [(200, 30, 30), (30, 30, 200)], ["cat", "dog"], strict=True):
            image = {"image": (name, make_image(color=color), "image/png")}
            upload = httpx.post(f"{url}/images", files=image, data={"label": label})
            assert upload.status_code == 200, upload.text
        yield url
    finally:
        process.terminate()
        process.wait(30)


def test_graphiql_page_loads_nothing_from_the_internet(service_url: str) -> None:
    """Without a browser: every script and stylesheet is local and passes its integrity check."""
    page = httpx.get(f"{service_url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "unpkg.com" not in page.text
    tags = re.findall(r'(?:src|href)="(/graphql/static/[^"]+)"\s+integrity="(sha\d+)-([^"]+)"', page.text)
    assert len(tags) == 7, "react, react-dom, js-cookie, graphiql js + css, explorer js + css"
    for path, algorithm, digest in tags:
        asset = httpx.get(f"{service_url}{path}")
        assert asset.status_code == 200, path
        assert base64.b64encode(hashlib.new(algorithm, asset.content).digest()).decode() == digest, path


def test_graphiql_runs_an_images_query_in_chromium(service_url: str, tmp_path: Path) -> None:
    screenshot = tmp_path / "graphiql.png"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        watched = watch(page)
        page.goto(f"{service_url}/graphql")
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        try:
            editor.wait_for(timeout=20_000)
        except PlaywrightError:
            raise AssertionError(f"GraphiQL did not start: {watched.errors}; {watched.requested}") from None
        # Through CodeMirror's own API: typing would fight GraphiQL's bracket closing and
        # autocompletion.
        editor.evaluate("(element, query) => element.CodeMirror.setValue(query)", QUERY)
        page.locator(".graphiql-execute-button").click()

        result = page.locator(".graphiql-response")
        for name in SEEDED:
            expect(result).to_contain_text(f'"file": "{name}"', timeout=20_000)
        expect(result).to_contain_text('"total": 2')
        page.screenshot(path=screenshot)

    assert watched.errors == []
    assert watched.requested and watched.outside(service_url) == []
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert screenshot.stat().st_size > 10_000


def test_graphiql_opens_with_an_example_of_this_service_that_runs(service_url: str) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        watched = watch(page)
        page.goto(f"{service_url}/graphql")
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        editor.wait_for(timeout=20_000)
        opened_with = editor.evaluate("element => element.CodeMirror.getValue()")
        page.locator(".graphiql-execute-button").click()
        result = page.locator(".graphiql-response")
        # Of the two seeded images, the one labelled cat, with its thumbnail's address.
        expect(result).to_contain_text('"file": "graphiql-red.png"', timeout=20_000)
        expect(result).to_contain_text('"total": 1')
        expect(result).to_contain_text('"thumbnailUrl":')
    assert 'filter: { data: [{ path: "label", eq: "cat" }] }' in opened_with
    assert "Welcome to GraphiQL" not in opened_with
    assert watched.errors == []
    assert watched.outside(service_url) == []


def test_graphiql_runs_a_subscription_in_chromium(service_url: str) -> None:
    """GraphiQL subscribes over its WebSocket (graphql-ws, bundled) and shows an upload's event."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        sockets: list[str] = []
        page.on("websocket", lambda socket: sockets.append(socket.url))
        page.goto(f"{service_url}/graphql")
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        editor.wait_for(timeout=20_000)
        subscription = "subscription { imageEvents { kind image { file } } }"
        editor.evaluate("(element, query) => element.CodeMirror.setValue(query)", subscription)
        # GraphiQL picks WebSocket or HTTP from the document it parsed, a moment after an
        # edit: a click before that posts the text over HTTP (a 400). Click until it subscribes.
        for _ in range(10):
            try:
                with page.expect_websocket(timeout=2_000):
                    page.locator(".graphiql-execute-button").click()
                break
            except PlaywrightError:
                continue
        result = page.locator(".graphiql-response")
        # Uploads until one arrives: the subscription starts a moment after the click.
        for attempt in range(40):
            name = f"live-{attempt}.png"
            upload = httpx.post(f"{service_url}/images", files={"image": (name, make_image(), "image/png")})
            assert upload.status_code == 200, upload.text
            try:
                expect(result).to_contain_text('"kind": "CREATED"', timeout=500)
                break
            except AssertionError:
                continue
        expect(result).to_contain_text('"file": "live-', timeout=5_000)
    assert errors == []
    assert sockets[-1] == service_url.replace("http://", "ws://") + "/graphql"
