"""Bearer tokens against a real JWKS endpoint: what passes, what is refused and how."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from app.auth import REFETCH_BURST, user_id
from app.config import Settings
from app.errors import Unauthenticated
from app.main import create_app
from tests.utils.graphql import error_codes, gql
from tests.utils.images import make_image
from tests.utils.oidc import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    bearer,
    claims_for,
    ec_key,
    hmac_with_public_key,
    jwks_server,
    rsa_key,
    sign,
    unsigned,
)
from tests.utils.service import lifespan

RSA = rsa_key("rsa-1")
EC = ec_key("ec-1")
NEXT = rsa_key("rsa-2")  # published later: key rotation
ATTACKER = rsa_key("rsa-1")  # same kid as the real key, different key


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server([RSA, EC]) as server:
        yield server


@pytest.fixture
def auth_settings(make_settings: Callable[..., Settings], jwks: JwksServer) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values = {
            "oidc_jwks_uri": jwks.uri,
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            "image_scope": "user",
            "oidc_jwks_refresh_seconds": 0,
        }
        return make_settings(**(values | overrides))

    return make


@pytest.fixture
async def client(auth_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(auth_settings())
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http,
    ):
        yield http


async def status_with(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/images", headers=bearer(token))


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
class TestTokens:
    async def test_valid_rs256_and_es256_tokens_pass(self, client: httpx.AsyncClient) -> None:
        assert (await status_with(client, sign(claims_for("alice"), RSA))).status_code == 200
        assert (await status_with(client, sign(claims_for("alice"), EC, alg="ES256"))).status_code == 200

    @pytest.mark.parametrize(
        ("token", "message"),
        [
            (lambda: sign(claims_for("alice", exp=int(time.time()) - 3600), RSA), "expired"),
            (lambda: sign(claims_for("alice", nbf=int(time.time()) + 3600), RSA), "not valid here"),
            (lambda: sign(claims_for("alice"), ATTACKER), "signature does not verify"),
            (lambda: unsigned(claims_for("alice")), "not acceptable"),
            (lambda: hmac_with_public_key(claims_for("alice"), RSA), "not acceptable"),
            (lambda: sign(claims_for("alice", iss="https://evil.test"), RSA), "iss"),
            (lambda: sign(claims_for("alice", aud="another-app"), RSA), "aud"),
            (lambda: sign(claims_for("alice", iss=None), RSA), "iss"),
            (lambda: sign(claims_for("alice"), NEXT), "does not list"),
            (lambda: "not.a.jwt", "not a JWT"),
            (lambda: "garbage", "not a JWT"),
        ],
        ids=[
            "expired",
            "not-yet-valid",
            "wrong-key",
            "alg-none",
            "hmac-with-public-key",
            "wrong-issuer",
            "wrong-audience",
            "missing-issuer",
            "unknown-kid",
            "three-garbage-parts",
            "garbage",
        ],
    )
    async def test_bad_tokens_are_401_with_a_reason(
        self, client: httpx.AsyncClient, token: Callable[[], str], message: str
    ) -> None:
        response = await status_with(client, token())
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert message in response.json()["detail"]
        assert response.json()["detail"].endswith(".")
        assert response.json()["code"] == "unauthenticated"

    async def test_small_clock_skew_is_tolerated(self, client: httpx.AsyncClient) -> None:
        token = sign(claims_for("alice", exp=int(time.time()) - 20, nbf=int(time.time()) + 20), RSA)
        assert (await status_with(client, token)).status_code == 200

    @pytest.mark.parametrize(
        "header",
        [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
        ids=["missing", "empty", "no-token", "blank-token", "basic", "other-scheme", "lowercase-no-token"],
    )
    async def test_missing_or_malformed_header_is_401(self, client: httpx.AsyncClient, header: str | None) -> None:
        headers = {} if header is None else {"Authorization": header}
        response = await client.get("/images", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_rotated_key_is_fetched_when_a_token_names_it(
        self, client: httpx.AsyncClient, jwks: JwksServer
    ) -> None:
        token = sign(claims_for("alice"), NEXT)
        assert (await status_with(client, token)).status_code == 401
        jwks.keys.append(NEXT)  # the provider rotates in a new key
        assert (await status_with(client, token)).status_code == 200

    async def test_open_routes_need_no_token(self, client: httpx.AsyncClient) -> None:
        for path in ("/", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        info = (await client.get("/")).json()
        assert info["auth"]["oidc"] is True and info["imageScope"] == "user"

    async def test_every_data_route_needs_a_token(self, client: httpx.AsyncClient) -> None:
        some_id = "6385c4b3a1e2f0c9d8b7a615"
        calls = [
            ("GET", "/images"),
            ("PATCH", "/images"),
            ("DELETE", "/images"),
            ("POST", "/images"),
            ("GET", f"/images/{some_id}"),
            ("PATCH", f"/images/{some_id}"),
            ("PUT", f"/images/{some_id}"),
            ("DELETE", f"/images/{some_id}"),
            ("GET", f"/images/{some_id}/image"),
            ("GET", f"/images/{some_id}/file"),
            ("GET", "/fields"),
            ("GET", "/fields/label"),
            ("GET", "/export"),
            ("POST", "/import"),
        ]
        for method, path in calls:
            response = await client.request(method, path)
            assert response.status_code == 401, (method, path, response.text)

    async def test_graphql_without_token_answers_unauthenticated(self, client: httpx.AsyncClient) -> None:
        body = await gql(client, "{ images { total } }")
        assert error_codes(body) == ["UNAUTHENTICATED"]
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200  # GraphiQL itself loads; its queries need a token

    async def test_graphql_with_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/graphql", json={"query": "{ images { total } }"}, headers=bearer(sign(claims_for("alice"), RSA))
        )
        assert response.json() == {"data": {"images": {"total": 0}}}

    async def test_token_without_a_user_is_401(self, client: httpx.AsyncClient) -> None:
        claims = claims_for("alice", preferred_username=None, sub=None)
        response = await status_with(client, sign(claims, RSA))
        assert response.status_code == 401
        assert "names no user" in response.json()["detail"]

    async def test_realm_prefixed_user_id_and_storage_prefix(self, client: httpx.AsyncClient) -> None:
        token = sign(claims_for("x", preferred_username="realm:alice"), RSA)
        response = await client.post(
            "/images", files={"image": ("a.png", make_image())}, data={"file": "f/a.png"}, headers=bearer(token)
        )
        assert response.json()["userId"] == "alice"
        services = client._transport.app.state.services  # type: ignore[attr-defined]
        assert await services.storage.exists("alice/f/a.png")


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_jwks_endpoint_down_is_503_not_401(auth_settings: Callable[..., Settings], jwks: JwksServer) -> None:
    jwks.failing = True
    app = create_app(auth_settings())
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
    ):
        response = await status_with(client, sign(claims_for("alice"), RSA))
        assert response.status_code == 503
        assert "OIDC_JWKS_URI" in response.json()["detail"]
        jwks.failing = False
        assert (await status_with(client, sign(claims_for("alice"), RSA))).status_code == 200


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_a_rotated_key_is_accepted_on_its_first_use_right_after_a_fetch(
    auth_settings: Callable[..., Settings], jwks: JwksServer
) -> None:
    app = create_app(auth_settings(oidc_jwks_refresh_seconds=30))  # the default
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
    ):
        assert (await status_with(client, sign(claims_for("alice"), RSA))).status_code == 200  # fetched now
        fetched = jwks.fetches
        jwks.keys.append(NEXT)  # the provider rotates in a new key a moment later
        token = sign(claims_for("alice"), NEXT)
        # Its first users arrive at once: every one is accepted, for one fetch between them.
        answers = await asyncio.gather(*(status_with(client, token) for _ in range(10)))
        assert [answer.status_code for answer in answers] == [200] * 10
        assert jwks.fetches == fetched + 1


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_refetches_for_unknown_kids_are_rate_limited(
    auth_settings: Callable[..., Settings], jwks: JwksServer
) -> None:
    app = create_app(auth_settings(oidc_jwks_refresh_seconds=30))
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
    ):
        assert (await status_with(client, sign(claims_for("alice"), RSA))).status_code == 200
        fetched = jwks.fetches
        made_up = [sign(claims_for("alice"), RSA, kid=uuid.uuid4().hex) for _ in range(40)]
        answers = await asyncio.gather(*(status_with(client, token) for token in made_up))
        assert {answer.status_code for answer in answers} == {401}
        # A flood of unknown kids costs the provider the burst, not a fetch per token.
        assert jwks.fetches - fetched == REFETCH_BURST
        # Tokens signed with the known keys keep passing meanwhile, without a fetch.
        assert (await status_with(client, sign(claims_for("alice"), EC, alg="ES256"))).status_code == 200
        assert jwks.fetches - fetched == REFETCH_BURST


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_without_user_scope_a_valid_token_sees_everything(
    auth_settings: Callable[..., Settings],
) -> None:
    app = create_app(auth_settings(image_scope=None))
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
    ):
        for user in ("alice", "bob"):
            headers = bearer(sign(claims_for(user), RSA))
            await client.post("/images", files={"image": (f"{user}.png", make_image())}, headers=headers)
        listed = (await client.get("/images", headers=bearer(sign(claims_for("carol"), RSA)))).json()
        assert listed["total"] == 2
        assert "userId" not in listed["items"][0]


@pytest.mark.parametrize(
    ("claims", "identifier", "expected"),
    [
        ({"preferred_username": "alice", "sub": "123"}, "preferred_username", "alice"),
        ({"email": "a@x.org", "sub": "123"}, "email", "a@x.org"),
        ({"sub": "123"}, "email", "123"),
        ({"_id": "abc"}, "preferred_username", "abc"),
        ({"id": 42}, "preferred_username", "42"),
        ({"username": "u"}, "preferred_username", "u"),
        ({"preferred_username": "realm:alice"}, "preferred_username", "alice"),
        ({"preferred_username": "", "sub": "s"}, "preferred_username", "s"),
    ],
)
def test_user_id_from_claims(claims: dict[str, Any], identifier: str, expected: str) -> None:
    assert user_id(claims, identifier) == expected


def test_no_usable_claim_is_unauthenticated() -> None:
    with pytest.raises(Unauthenticated):
        user_id({"preferred_username": True, "email": None}, "preferred_username")
