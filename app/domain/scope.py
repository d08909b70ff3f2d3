"""Whose images a caller may touch.

Every query the domain runs is ANDed with `Scope.condition()`, and every file the domain writes
goes under `Scope.key_prefix`; a caller's own input can narrow that, never widen it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Scope:
    owner: str | None = None  # None: every image (no IMAGE_SCOPE, or no authentication)

    def condition(self) -> dict[str, Any]:
        return {} if self.owner is None else {"userId": self.owner}


EVERYONE = Scope()


def storage_key(file: str, owner: str | None) -> str:
    """Where an image's bytes live: its `file` path, under its owner's folder when it has one."""
    return file if owner is None else f"{owner}/{file}"
