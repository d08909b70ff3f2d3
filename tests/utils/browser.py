"""Debian's headless Chromium, driven by Playwright, for the page tests, offline.

`make test` installs Chromium (scripts/ensure_chromium.sh); without /usr/bin/chromium the
browser tests skip. Playwright uses that browser: `playwright install` is never needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

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


@contextmanager
def chromium() -> Iterator[Browser]:
    """The browser, closed after the block; the test skips where Chromium is not installed.
    Sync tests only: Playwright's sync API cannot run inside the session's event loop."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/ensure_chromium.sh installs it (as root; `make test` runs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """What a page asked for and what went wrong in it."""

    requested: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, Chromium's reason)
    errors: list[str] = field(default_factory=list)

    def outside(self, origin: str) -> list[str]:
        """The requests that left `origin` (on a closed network: the ones that broke the page).
        One the page's Content-Security-Policy stopped in the browser never left."""
        own = (f"{origin}/", f"blob:{origin}/", "data:")
        return [url for url in self.requested if not url.startswith(own) and url not in self.blocked()]

    def blocked(self) -> list[str]:
        # Chromium says `csp` (older versions: net::ERR_BLOCKED_BY_CSP).
        return [url for url, reason in self.failed if reason in ("csp", "net::ERR_BLOCKED_BY_CSP")]


def watch(page: Page) -> Watched:
    watched = Watched()
    page.on("request", lambda request: watched.requested.append(request.url))
    page.on("requestfailed", lambda request: watched.failed.append((request.url, request.failure or "")))
    page.on("pageerror", lambda error: watched.errors.append(str(error)))
    return watched
