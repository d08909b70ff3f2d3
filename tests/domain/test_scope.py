"""Owner folders and file paths: the legacy service's layout, with owners kept apart."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.scope import Scope, owner_folder
from app.errors import BadInput
from app.storage.keys import MAX_KEY_LENGTH, normalise_key


@pytest.mark.parametrize(
    ("owner", "folder"),
    [
        ("alice", "alice"),
        ("alice@example.org", "alice@example.org"),
        ("a.b-c_d+e", "a.b-c_d+e"),
        ("with space", "with space"),  # one safe segment: kept, as the legacy service wrote it
        ("josé", "josé"),
        (".hidden", ".hidden"),
        ("a/b", "a%2Fb"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("a%2Fb", "a%252Fb"),
        ("back\\slash", "back%5Cslash"),
        ("C:", "C%3A"),
        (" padded ", "%20padded%20"),
        ("tab\there", "tab%09here"),
        (".imagestore", "%2Eimagestore"),  # the service's own folder is no owner's
    ],
)
def test_owner_folder(owner: str, folder: str) -> None:
    assert owner_folder(owner) == folder
    assert normalise_key(f"{owner_folder(owner)}/x.png") == f"{folder}/x.png"  # always one safe segment


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_different_owners_never_share_a_folder(first: str, second: str) -> None:
    if first != second:
        assert owner_folder(first) != owner_folder(second)
    assert "/" not in owner_folder(first)


@pytest.mark.parametrize(
    ("path", "file"),
    [
        ("photo.jpg", "alice/photo.jpg"),
        ("folder/x.jpg", "alice/folder/x.jpg"),
        ("./folder//x.jpg", "alice/folder/x.jpg"),
        ("bob/x.jpg", "alice/bob/x.jpg"),  # another user's folder name is just a folder of Alice's
        ("alice/photo.jpg", "alice/photo.jpg"),  # already under her folder: the same image
        ("alice/alice/photo.jpg", "alice/alice/photo.jpg"),
        ("alicex/photo.jpg", "alice/alicex/photo.jpg"),
    ],
)
def test_file_path_is_under_the_owners_folder(path: str, file: str) -> None:
    assert Scope(owner="alice").file_path(path) == file


def test_file_path_without_scope_is_the_canonical_path() -> None:
    assert Scope().file_path("./a//b.jpg") == "a/b.jpg"
    assert Scope().file_path("alice/photo.jpg") == "alice/photo.jpg"


def test_encoded_owners_are_placed_under_their_encoded_folder() -> None:
    assert Scope(owner="a/b").file_path("c.png") == "a%2Fb/c.png"
    assert Scope(owner="a").file_path("b/c.png") == "a/b/c.png"  # not user a/b's file
    assert Scope(owner="..").file_path("x.png") == "%2E%2E/x.png"


@pytest.mark.parametrize("path", ["", "../x.png", "/etc/passwd", "a\\b.png", "x" * MAX_KEY_LENGTH])
def test_file_path_refuses_what_storage_keys_refuse(path: str) -> None:
    with pytest.raises(BadInput):
        Scope(owner="alice").file_path(path)


def test_condition_and_allows() -> None:
    assert Scope(owner="alice").condition() == {"userId": "alice"}
    assert Scope().condition() == {}
    assert Scope(owner="alice").allows({"userId": "alice"})
    assert not Scope(owner="alice").allows({"userId": None})
    assert not Scope(owner="alice").allows({})
    assert Scope().allows({"userId": "bob"})
