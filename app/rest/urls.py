"""The `url` of an image document as REST gives it: where a browser loads its bytes."""

from __future__ import annotations

from typing import Any

from app.domain.images.content import content_path
from app.domain.links import Linker


def with_url(rendered: dict[str, Any], linker: Linker) -> dict[str, Any]:
    """`rendered` (a document as clients see it) with its content address, signed under OIDC;
    a page without `_id` (`select` left it out) gets none."""
    if "_id" in rendered:
        rendered["url"] = linker(content_path(rendered))
    return rendered
