"""GraphiQL in a real browser, offline: Debian's headless Chromium, driven by Playwright, runs an
`images` query against the service over TCP. The page and every file it loads must come from
the service itself (app/graphql/ide.py), since CI has no route to unpkg.com.

`make test` installs Chromium (scripts/ensure_chromium.sh); without /usr/bin/chromium the
browser test skips. Playwright uses that browser: `playwright install` is never needed.
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
from playwright.sync_api import expect, sync_playwright

from scripts.servers import REPO_ROOT, free_port
from tests.utils.images import make_image
from tests.utils.live import wait_until_serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--no-first-run",
    # Without these Chromium keeps calling Google's services, which on a closed network means
    # a stream of refused connections and slower start-up.
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
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
        for name, color in zip(SEEDED, [(200, 30, 30), (30, 30, 200)], strict=True):
            upload = httpx.post(f"{url}/images", files={"image": (name, make_image(color=color), "image/png")})
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
    # A sync test on purpose: Playwright's sync API cannot run inside the session's event loop.
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/ensure_chromium.sh installs it (as root; `make test` runs it)")
    screenshot = tmp_path / "graphiql.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            page.goto(f"{service_url}/graphql")
            editor = page.locator(".graphiql-query-editor .CodeMirror")
            try:
                editor.wait_for(timeout=20_000)
            except PlaywrightError:
                raise AssertionError(f"GraphiQL did not start; page errors: {errors}; requests: {requested}") from None
            # Through CodeMirror's own API: typing would fight GraphiQL's bracket closing and
            # autocompletion.
            editor.evaluate("(element, query) => element.CodeMirror.setValue(query)", QUERY)
            page.locator(".graphiql-execute-button").click()

            result = page.locator(".graphiql-response")
            for name in SEEDED:
                expect(result).to_contain_text(f'"file": "{name}"', timeout=20_000)
            expect(result).to_contain_text('"total": 2')
            page.screenshot(path=screenshot)
        finally:
            browser.close()

    assert errors == []
    assert requested and all(url.startswith(f"{service_url}/") for url in requested), requested
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert screenshot.stat().st_size > 10_000


def test_graphiql_runs_a_subscription_in_chromium(service_url: str) -> None:
    """GraphiQL subscribes over its WebSocket (graphql-ws, bundled) and shows an upload's event."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/ensure_chromium.sh installs it (as root; `make test` runs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
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
        finally:
            browser.close()
    assert errors == []
    assert sockets[-1] == service_url.replace("http://", "ws://") + "/graphql"
