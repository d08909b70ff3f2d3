"""Whose images a caller may touch, and where their files go.

Every query the domain runs is ANDed with `Scope.condition()`, and every path a caller gives is
placed by `Scope.file_path()`: with per-user scope, under the owner's folder. A caller's own
input can narrow that, never widen it.

The layout is the legacy service's, so that its database and its uploads folder or bucket work
in place: an image's `file` is `<owner>/<path>` (`alice/photo.jpg`), and the storage key of
every image, in both modes, is its `file`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.storage.keys import SYSTEM_FOLDER, normalise_key


@dataclass(frozen=True, kw_only=True)
class Scope:
    owner: str | None = None  # None: every image (no IMAGE_SCOPE, or no authentication)

    def condition(self) -> dict[str, Any]:
        return {} if self.owner is None else {"userId": self.owner}

    def allows(self, document: Mapping[str, Any]) -> bool:
        """Whether a document found without `condition()` is one the caller may touch."""
        return self.owner is None or document.get("userId") == self.owner

    def file_path(self, path: str) -> str:
        """The `file` of the image the caller means by `path`: canonical, and in per-user scope
        under the owner's folder (`photo.jpg` and `bob/x.jpg` from alice are `alice/photo.jpg`
        and `alice/bob/x.jpg`).

        A path that already starts with the caller's own folder is taken as it is, so that a
        `file` this service (or the legacy one) showed the caller, sent back in an upload or
        listed in an exported archive, names the same image again.
        """
        key = normalise_key(path)
        if self.owner is None:
            return key
        folder = owner_folder(self.owner)
        if key.startswith(f"{folder}/"):
            return key
        return normalise_key(f"{folder}/{key}")  # checks the length with the folder added


EVERYONE = Scope()


# What an owner folder must not contain: path separators, characters storage keys refuse
# (app/storage/keys.py), and `%`, which only encoded folders hold (so none equals a plain one).
_NOT_PLAIN = re.compile(r"[/\\%:\x00-\x1f\x7f]")


def owner_folder(owner: str) -> str:
    """The owner's folder name: the id itself, as the legacy service wrote it, when it is one
    safe path segment; else percent-encoded.

    Encoding keeps owners apart: user `a/b` must not share a folder with user `a`'s `b/`
    subfolder, a user called `..` must not climb out, nor one called `.imagestore` into the
    service's own folder. Encoded names always hold a `%`, which plain ones never do, so an
    encoded folder never equals another owner's plain one.
    """
    if owner.strip() == owner and owner not in ("", ".", "..", SYSTEM_FOLDER) and not _NOT_PLAIN.search(owner):
        return owner
    return quote(owner, safe="").replace(".", "%2E")
