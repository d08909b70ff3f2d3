"""Third-party files the pages load (app/static/), served with their version in their name."""

from __future__ import annotations

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

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
