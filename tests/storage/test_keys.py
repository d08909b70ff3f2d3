"""Key normalisation: the one gate between user paths and the storage root."""

from __future__ import annotations

import pytest

from app.errors import BadInput
from app.storage.keys import MAX_KEY_LENGTH, normalise_key, storage_key, system_key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("cat.jpg", "cat.jpg"),
        ("myFolder/myImage.jpg", "myFolder/myImage.jpg"),
        ("./a//b/./c.jpg", "a/b/c.jpg"),
        ("a/b/", "a/b"),
        ("ünï cödé/ファイル.png", "ünï cödé/ファイル.png"),
        ("..hidden/x..y.jpg", "..hidden/x..y.jpg"),
    ],
)
def test_accepted_keys_are_normalised(raw: str, key: str) -> None:
    assert normalise_key(raw) == key


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("../x.jpg", "'..'"),
        ("a/../../x.jpg", "'..'"),
        ("a/..", "'..'"),
        ("/etc/passwd", "relative"),
        ("C:/Windows/x.jpg", "relative"),
        ("c:x.jpg", "relative"),
        ("a\\..\\x.jpg", "backslash"),
        ("a\x00.jpg", "control character"),
        ("a\nb.jpg", "control character"),
        (".", "names no file"),
        ("./", "names no file"),
        ("a" * (MAX_KEY_LENGTH + 1), "longer than"),
        (".imagestore/pending/x", "service's own"),
        ("./.imagestore", "service's own"),
    ],
)
def test_dangerous_keys_are_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(BadInput, match=reason):
        normalise_key(raw)


def test_the_service_folder_is_for_the_backends_only() -> None:
    key = system_key("pending", "abc")
    assert storage_key(key) == key
    with pytest.raises(BadInput, match="service's own"):
        normalise_key(key)
    assert normalise_key("a/.imagestore/x") == "a/.imagestore/x"  # only the top-level folder is reserved
