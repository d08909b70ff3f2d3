"""/docs (Swagger UI) and /redoc render offline from the service's own files, and `/` sends a
browser to the gallery while API clients keep their JSON."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from app.config import Settings
from app.rest.docs import ASSETS, STATIC_DIR
from scripts.servers import REPO_ROOT
from tests.utils.browser import chromium, watch
from tests.utils.live import serving

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


@pytest.fixture
def service_url(settings: Settings, tmp_path: Path) -> Iterator[str]:
    with serving(settings, None, tmp_path) as (url, _):
        yield url


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_the_pages_name_only_files_the_service_serves(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc"):
        page = await client.get(path)
        assert page.status_code == 200
        head = await client.head(path)  # link checkers and monitors ask so
        assert head.status_code == 200 and head.headers["content-type"].startswith("text/html")
        assert "cdn.jsdelivr.net" not in page.text and "fonts.googleapis.com" not in page.text
        assert "fastapi.tiangolo.com" not in page.text
        linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert linked and all(url.startswith("/docs/static/") for url in linked), linked
        for url in linked:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.content == (STATIC_DIR / url.rsplit("/", 1)[-1]).read_bytes()
            # The version is in the name: a browser keeps it and never asks again.
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            if url.endswith((".js", ".css")):  # sent compressed (httpx asks for gzip, and undoes it)
                assert asset.headers["content-encoding"] == "gzip"
                assert asset.num_bytes_downloaded < len(asset.content) / 3


def test_the_committed_files_are_the_ones_pinned() -> None:
    """`make web-assets` has been run for the versions app/rest/docs.py and Strawberry name."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.web_assets", "--check"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert {asset.name for asset in ASSETS} <= {path.name for path in STATIC_DIR.iterdir()}


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
@pytest.mark.parametrize(
    ("accept", "json_answer"),
    [
        (BROWSER_ACCEPT, False),
        ("text/html", False),
        (None, True),  # curl, httpx
        ("*/*", True),  # fetch() in the legacy GUI
        ("application/json", True),
        ("application/json, text/plain, */*", True),  # axios
    ],
)
async def test_root_answers_api_clients_in_json_and_sends_browsers_to_the_pages(
    client: httpx.AsyncClient, accept: str | None, json_answer: bool
) -> None:
    headers = {"Accept": accept} if accept else {}
    if accept is None:
        client.headers.pop("Accept", None)
    response = await client.get("/", headers=headers)
    if json_answer:
        assert response.status_code == 200
        assert response.json()["name"] == "image-storage"
    else:
        assert response.status_code == 307
        assert response.headers["Location"] == "/gallery"


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
def test_swagger_ui_and_redoc_render_in_chromium_offline(service_url: str, tmp_path: Path) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        watched = watch(page)

        page.goto(f"{service_url}/docs", wait_until="networkidle")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Image storage", timeout=20_000)
        operations = page.locator(".opblock-summary-path")
        expect(operations.first).to_be_visible()
        paths = operations.all_inner_texts()
        assert len(paths) > 30 and "/images/{image_id}" in {path.replace("\u200b", "") for path in paths}
        page.screenshot(path=tmp_path / "docs.png")

        page.goto(f"{service_url}/redoc", wait_until="networkidle")
        expect(page.locator("h1")).to_contain_text("Image storage", timeout=20_000)
        expect(page.get_by_text("Upload an image").first).to_be_attached()
        page.screenshot(path=tmp_path / "redoc.png")

    assert watched.errors == []
    assert watched.outside(service_url) == []
    assert [url for url, _ in watched.failed] == watched.blocked()
    assert set(watched.blocked()) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}
    for name in ("docs.png", "redoc.png"):
        assert (tmp_path / name).stat().st_size > 20_000
