"""GraphiQL on GET /graphql that works without the internet.

Strawberry's GraphiQL page loads React, GraphiQL and its explorer plugin from unpkg.com, so on a
closed network (CI, many deployments) it never gets past "Loading...". The same files, byte for
byte, are committed in app/static/graphiql/ and served under /graphql/static/; the page is
Strawberry's own with those URLs swapped in. Its integrity hashes stay: the browser checks that
each local copy is exactly the file Strawberry pinned.

After a Strawberry upgrade changes the versions, `make web-assets` fetches the new files
from the npm registry (tests/graphql/test_graphiql.py fails until then).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from strawberry.fastapi import GraphQLRouter
from strawberry.http.ides import get_graphql_ide_html

from app.assets import vendored_files

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "graphiql"
# app/main.py includes the GraphQL router at /graphql; the router mounts the files at /static.
STATIC_URL = "/graphql/static"

# https://unpkg.com/<package>@<version>/<path>, the package maybe scoped (@graphiql/plugin-explorer).
UNPKG_URL = re.compile(
    r"https://unpkg\.com/(?:@(?P<scope>[^/@]+)/)?(?P<name>[^/@]+)@(?P<version>[^/]+)/(?P<path>[^\"'\s]+)"
)


def local_name(url: re.Match[str]) -> str:
    """The flat file name of an unpkg URL's copy. The version is part of it, so that a browser
    never uses a cached copy from before an upgrade (which the integrity check would refuse):
    `https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css` is
    `graphiql-plugin-explorer@1.0.2-style.css`."""
    package = f"{url['scope']}-{url['name']}" if url["scope"] else url["name"]
    return f"{package}@{url['version']}-{url['path'].rsplit('/', 1)[-1]}"


# What the editor opens with, instead of Strawberry's generic welcome text: a query of this
# service that runs as it stands (on an empty collection it answers `total: 0`). It has no
# operation name: GraphiQL sends the name it last parsed, so a query pasted over a named one and
# run at once would go out under the old name ("Unknown operation").
EXAMPLE_QUERY = """# Image storage: GraphQL. Run a query with Ctrl-Enter or the ▶ button; Ctrl-Space
# completes names, and the Docs panel on the left describes every type and field.
#
# The five newest images whose metadata has label "cat" (drop `filter` for all of them),
# each with its file's address and a 256-pixel thumbnail's. A filter's `where` also takes
# REST's MongoDB-style filter, as a variable: {"where": {"data.label": {"$in": ["cat"]}}}.
{
  images(
    filter: { data: [{ path: "label", eq: "cat" }] }
    sort: [{ field: "time", direction: DESC }]
    limit: 5
  ) {
    total
    items {
      id
      file
      time
      data
      width
      height
      url
      thumbnailUrl(width: 256)
    }
  }
}
"""
# Strawberry's page sets its own as a JavaScript template literal.
STRAWBERRY_EXAMPLE = re.compile(r"const EXAMPLE_QUERY = `.*?`;", re.DOTALL)


def offline_graphiql_html() -> str:
    html = with_example(get_graphql_ide_html("graphiql"))
    missing = [name for url in UNPKG_URL.finditer(html) if not (STATIC_DIR / (name := local_name(url))).is_file()]
    if missing:
        # Half a page of local files is no better than none: keep Strawberry's page, which
        # still works wherever unpkg.com is reachable.
        log.warning("GraphiQL loads from unpkg.com: %s missing; run `make web-assets`", ", ".join(missing))
        return html
    return UNPKG_URL.sub(lambda url: f"{STATIC_URL}/{local_name(url)}", html)


def with_example(html: str) -> str:
    if not STRAWBERRY_EXAMPLE.search(html):
        log.warning("GraphiQL opens with Strawberry's welcome text: its page no longer sets EXAMPLE_QUERY")
        return html
    literal = EXAMPLE_QUERY.replace("\\", "\\\\").replace("`", "\\`").replace("${", "\\${")
    return STRAWBERRY_EXAMPLE.sub(lambda _: f"const EXAMPLE_QUERY = `{literal}`;", html, count=1)


GRAPHIQL_HTML = offline_graphiql_html()


class OfflineGraphiQLRouter(GraphQLRouter[Any, Any]):
    """Strawberry's router, with GRAPHIQL_HTML as its GraphiQL page and the files it loads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Versioned names, cached for good: the 4 MB load once per browser.
        # check_dir=False: without the files the page above falls back to unpkg.com instead.
        self.mount("/static", vendored_files(STATIC_DIR), name="graphiql-static")

    @property
    def graphql_ide_html(self) -> str:
        return GRAPHIQL_HTML
