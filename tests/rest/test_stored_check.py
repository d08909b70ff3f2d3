"""`POST /images/check`: which paths are stored, with which bytes; scoped like every read."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.utils.images import make_image
from tests.utils.oidc import AUDIENCE, ISSUER, bearer, claims_for, jwks_server, rsa_key, sign
from tests.utils.service import LifespanClient, upload

KEY = rsa_key("stored-check")
CAT = make_image(color=(10, 20, 30))
DOG = make_image(color=(40, 50, 60))


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def check(client: httpx.AsyncClient, files: list[Any], **kwargs: Any) -> httpx.Response:
    return await client.post("/images/check", json={"files": files}, **kwargs)


async def test_paths_are_answered_in_order_with_their_images(client: httpx.AsyncClient) -> None:
    uploaded = await upload(client, CAT, fields={"file": "pets/cat.png"})
    cat, revision = uploaded.json(), int(uploaded.headers["etag"].strip('"'))
    response = await check(
        client,
        [
            {"file": "pets/cat.png", "checksum": sha256(CAT)},
            {"file": "pets/dog.png", "checksum": sha256(DOG)},
            {"file": "pets/cat.png", "checksum": sha256(DOG).upper()},
            {"file": "pets/cat.png"},
            {"file": "./pets//cat.png", "checksum": None},  # as an upload would place it
            {"file": "pets/dog.png"},
        ],
    )
    assert response.status_code == 200, response.text
    stored = {
        "stored": True,
        "id": cat["_id"],
        "checksum": sha256(CAT),
        "size": len(CAT),
        "revision": revision,
    }
    missing = {"stored": False, "id": None, "checksum": None, "size": None, "revision": None, "same": None}
    assert response.json() == {
        "files": [
            {"file": "pets/cat.png", **stored, "same": True},
            {"file": "pets/dog.png", **missing},
            {"file": "pets/cat.png", **stored, "same": False},
            {"file": "pets/cat.png", **stored, "same": None},
            {"file": "./pets//cat.png", **stored, "same": None},
            {"file": "pets/dog.png", **missing},
        ]
    }


async def test_a_path_no_upload_could_store_is_not_stored(client: httpx.AsyncClient) -> None:
    response = await check(client, [{"file": "../escape.png"}, {"file": ""}, {"file": ".imagestore/x"}])
    assert response.status_code == 200, response.text
    assert [answer["stored"] for answer in response.json()["files"]] == [False, False, False]


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # no file is read
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"files": []}, "Give at least one file to check."),
        (
            {"files": [{"file": f"{n}.png"} for n in range(1001)]},
            "At most 1,000 files can be checked at once; got 1,001.",
        ),
        ({"files": [{"checksum": "0" * 64}]}, "The field 'files.0.file' is required."),
        ({"files": [{"file": 7}]}, "The field 'files.0.file' is invalid"),
        ({"files": ["a.png"]}, "The field 'files.0' is invalid"),
        ({"files": [{"file": "a.png", "checksum": "abc"}]}, "The checksum of file 0 is not a SHA-256"),
        ({"files": "a.png"}, "The field 'files' is invalid"),
        ({}, "The field 'files' is required."),
    ],
)
async def test_a_malformed_batch_is_a_400(client: httpx.AsyncClient, body: Any, detail: str) -> None:
    response = await client.post("/images/check", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_input"
    assert response.json()["detail"].startswith(detail), response.json()
    assert response.json()["detail"].endswith(".")


async def test_exactly_a_thousand_paths_are_answered(client: httpx.AsyncClient) -> None:
    await upload(client, CAT, fields={"file": "999.png"})
    response = await check(client, [{"file": f"{n}.png"} for n in range(1000)])
    assert response.status_code == 200, response.text
    answers = response.json()["files"]
    assert [answer["file"] for answer in answers] == [f"{n}.png" for n in range(1000)]
    assert [n for n, answer in enumerate(answers) if answer["stored"]] == [999]


async def test_another_users_image_reads_as_not_stored(make_settings: Callable[..., Settings]) -> None:
    with jwks_server([KEY]) as jwks:
        settings = make_settings(oidc_jwks_uri=jwks.uri, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, image_scope="user")
        async with LifespanClient(create_app(settings)) as (client, _):
            alice, bob = (bearer(sign(claims_for(name), KEY)) for name in ("alice", "bob"))
            uploaded = await client.post(
                "/images", files={"image": ("a.png", CAT)}, data={"file": "a.png"}, headers=alice
            )
            assert uploaded.json()["file"] == "alice/a.png"
            files = [{"file": "a.png", "checksum": sha256(CAT)}, {"file": "alice/a.png", "checksum": sha256(CAT)}]

            theirs = await check(client, files, headers=alice)
            assert [(answer["stored"], answer["same"]) for answer in theirs.json()["files"]] == [(True, True)] * 2
            others = await check(client, files, headers=bob)
            assert others.status_code == 200
            assert [answer["stored"] for answer in others.json()["files"]] == [False, False]
            assert all(answer["id"] is None and answer["checksum"] is None for answer in others.json()["files"])

            anonymous = await check(client, files)
            assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthenticated")


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_other_methods_on_the_check_are_405_not_taken_for_an_image_id(client: httpx.AsyncClient) -> None:
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        response = await client.request(method, "/images/check")
        assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed"), method
        assert response.headers["allow"] == "OPTIONS, POST"
    # Any other segment is still an id, checked by the domain.
    assert (await client.get("/images/checks")).json()["code"] == "bad_input"
    assert (await client.get("/images/check/image")).status_code == 400
