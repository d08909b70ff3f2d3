"""`storedFiles`: the GraphQL face of `POST /images/check`, with the same answers and limits."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.utils.graphql import error_codes, gql, gql_data
from tests.utils.images import make_image
from tests.utils.oidc import AUDIENCE, ISSUER, bearer, claims_for, jwks_server, rsa_key, sign
from tests.utils.service import LifespanClient, upload

KEY = rsa_key("stored-files")
CAT = make_image(color=(70, 80, 90))
DOG = make_image(color=(90, 80, 70))
STORED_FILES = (
    "query($files: [FileCheckInput!]!) { storedFiles(files: $files) { file stored id checksum size revision same } }"
)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def test_stored_files_answer_as_the_rest_check_does(client: httpx.AsyncClient) -> None:
    cat = (await upload(client, CAT, fields={"file": "cat.png"})).json()
    files: list[dict[str, Any]] = [
        {"file": "cat.png", "checksum": sha256(CAT)},
        {"file": "dog.png", "checksum": sha256(DOG)},
        {"file": "cat.png", "checksum": sha256(DOG)},
        {"file": "cat.png"},
    ]
    answers = (await gql_data(client, STORED_FILES, {"files": files}))["storedFiles"]
    assert [(a["file"], a["stored"], a["same"]) for a in answers] == [
        ("cat.png", True, True),
        ("dog.png", False, None),
        ("cat.png", True, False),
        ("cat.png", True, None),
    ]
    assert answers[0]["id"] == cat["_id"] and answers[0]["size"] == len(CAT) and answers[0]["checksum"] == sha256(CAT)
    assert answers[1] == {
        "file": "dog.png",
        "stored": False,
        "id": None,
        "checksum": None,
        "size": None,
        "revision": None,
        "same": None,
    }
    rest = (await client.post("/images/check", json={"files": files})).json()["files"]
    assert answers == rest


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)  # no file is read
async def test_stored_files_refuses_batches_the_rest_check_refuses(client: httpx.AsyncClient) -> None:
    for files, message in (
        ([], "Give at least one file to check."),
        ([{"file": f"{n}.png"} for n in range(1001)], "At most 1,000 files can be checked at once; got 1,001."),
        (
            [{"file": "a.png", "checksum": "xyz"}],
            "The checksum of file 0 is not a SHA-256 (64 hexadecimal characters).",
        ),
    ):
        body = await gql(client, STORED_FILES, {"files": files})
        assert error_codes(body) == ["BAD_USER_INPUT"]
        assert body["errors"][0]["message"].startswith(message), body
    malformed = await gql(client, STORED_FILES, {"files": [{"checksum": "0" * 64}]})
    assert error_codes(malformed) == ["GRAPHQL_VALIDATION_FAILED"], malformed  # GraphQL's own check of the input
    assert "file" in malformed["errors"][0]["message"]


async def test_stored_files_never_reveal_another_users_image(make_settings: Callable[..., Settings]) -> None:
    with jwks_server([KEY]) as jwks:
        settings = make_settings(oidc_jwks_uri=jwks.uri, oidc_issuer=ISSUER, oidc_audience=AUDIENCE, image_scope="user")
        async with LifespanClient(create_app(settings)) as (client, _):
            alice, bob = (bearer(sign(claims_for(name), KEY)) for name in ("alice", "bob"))
            await client.post("/images", files={"image": ("a.png", CAT)}, data={"file": "a.png"}, headers=alice)
            files = [{"file": "a.png"}, {"file": "alice/a.png"}]
            for headers, expected in ((alice, [True, True]), (bob, [False, False])):
                response = await client.post(
                    "/graphql", json={"query": STORED_FILES, "variables": {"files": files}}, headers=headers
                )
                assert [answer["stored"] for answer in response.json()["data"]["storedFiles"]] == expected
