"""Owner folders: plain names stay readable; anything else is encoded so owners stay apart."""

from __future__ import annotations

import pytest

from app.domain.scope import Scope, owner_folder, storage_key
from app.storage.keys import normalise_key


@pytest.mark.parametrize(
    ("owner", "folder"),
    [
        ("alice", "alice"),
        ("alice@example.org", "alice@example.org"),
        ("a.b-c_d+e", "a.b-c_d+e"),
        ("a/b", "a%2Fb"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        (".hidden", "%2Ehidden"),
        ("a%2Fb", "a%252Fb"),
        ("with space", "with%20space"),
        ("back\\slash", "back%5Cslash"),
    ],
)
def test_owner_folder(owner: str, folder: str) -> None:
    assert owner_folder(owner) == folder
    assert normalise_key(f"{owner_folder(owner)}/x.png") == f"{folder}/x.png"  # always one safe segment


def test_owners_never_share_a_key() -> None:
    assert storage_key("b/c.png", "a") != storage_key("c.png", "a/b")
    assert storage_key("x.png", None) == "x.png"
    assert Scope(owner="alice").condition() == {"userId": "alice"}
    assert Scope().condition() == {}
