"""Whose images a caller may touch.

Every query the domain runs is ANDed with `Scope.condition()`, and every file the domain writes
goes under `Scope.key_prefix`; a caller's own input can narrow that, never widen it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True, kw_only=True)
class Scope:
    owner: str | None = None  # None: every image (no IMAGE_SCOPE, or no authentication)

    def condition(self) -> dict[str, Any]:
        return {} if self.owner is None else {"userId": self.owner}


EVERYONE = Scope()


def storage_key(file: str, owner: str | None) -> str:
    """Where an image's bytes live: its `file` path, under its owner's folder when it has one."""
    return file if owner is None else f"{owner_folder(owner)}/{file}"


_PLAIN_OWNER = re.compile(r"^[A-Za-z0-9@_+-][A-Za-z0-9@._+-]*$")


def owner_folder(owner: str) -> str:
    """The owner's folder name: the id itself when it is a plain name, else percent-encoded.

    Encoding keeps owners apart: user `a/b` must not share a folder with user `a`'s `b/`
    subfolder, and a user called `..` must not climb out.
    """
    if _PLAIN_OWNER.match(owner) and owner not in (".", ".."):
        return owner
    return quote(owner, safe="").replace(".", "%2E")
