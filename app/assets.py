"""Third-party files the pages load (app/static/), served with their version in their name."""

from __future__ import annotations

from pathlib import Path

from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

IMMUTABLE = "public, max-age=31536000, immutable"


class VersionedFiles(StaticFiles):
    """StaticFiles whose versioned files (`react@18.2.0-react.production.min.js`) a browser keeps
    for good: an upgrade changes the name, so the same URL never means other bytes, and a
    repeat visit to /docs or /graphql asks for none of its 2 to 4 MB of scripts. Other files
    (LICENSES.txt) keep StaticFiles' revalidation."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if "@" in path and response.status_code in (200, 304):
            response.headers["Cache-Control"] = IMMUTABLE
        return response


def vendored_files(directory: Path) -> ASGIApp:
    """The files of `directory`, compressed for browsers that take gzip (Swagger UI's 1.9 MB are
    0.5 MB so), compressed only here: images and archives are compressed already. Without the
    directory nothing is served; the pages that load its files say so in the log."""
    return GZipMiddleware(VersionedFiles(directory=directory, check_dir=False), minimum_size=1024)
