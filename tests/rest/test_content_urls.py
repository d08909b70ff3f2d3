"""Content addresses: an image's bytes at a URL that names them, cached by a browser for good, and
signed links that open them (and exports) under OIDC without a header."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from app.config import Settings
from app.domain.links import HOUR, KEY_ID, Signer, new_key
from app.domain.scope import Scope
from app.main import create_app
from tests.utils.graphql import gql_data
from tests.utils.images import make_image
from tests.utils.links import with_altered_mac
from tests.utils.oidc import AUDIENCE, ISSUER, JwksServer, bearer, claims_for, jwks_server, rsa_key, sign
from tests.utils.service import lifespan

IMMUTABLE = "private, max-age=31536000, immutable"
CONTENT_URL = re.compile(r"^/images/(?P<id>[0-9a-f]{24})/content/(?P<checksum>[0-9a-f]{64})-(?P<size>\d+)$")
KEY = rsa_key("links-1")


async def upload(client: httpx.AsyncClient, name: str, content: bytes, **headers: str) -> dict[str, Any]:
    response = await client.post("/images", files={"image": (name, content, "image/png")}, headers=headers)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def test_documents_give_the_content_address_that_serves_the_bytes_for_good(client: httpx.AsyncClient) -> None:
    content = make_image(color=(10, 200, 30))
    document = await upload(client, "a.png", content)
    url = document["url"]
    found = CONTENT_URL.match(url)
    assert found, url
    assert found["id"] == document["_id"]
    assert found["checksum"] == hashlib.sha256(content).hexdigest() == document["checksum"]
    assert int(found["size"]) == len(content)
    # Every REST document of the image names the same address.
    assert (await client.get(f"/images/{document['_id']}")).json()["url"] == url
    listed = (await client.get("/images")).json()["items"]
    assert [item["url"] for item in listed] == [url]

    response = await client.get(url)
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["cache-control"] == IMMUTABLE
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{document["checksum"]}"'

    thumbnail = await client.get(url, params={"width": 8})
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.headers["cache-control"] == IMMUTABLE
    ranged = await client.get(url, headers={"Range": "bytes=0-7"})
    assert ranged.status_code == 206 and ranged.content == content[:8]
    head = await client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(content))
    # The plain route keeps asking the browser to revalidate: it may mean other bytes tomorrow.
    assert (await client.get(f"/images/{document['_id']}/file")).headers["cache-control"] == "private, no-cache"


async def test_a_replaced_image_gets_a_new_address_and_the_old_one_answers_404(client: httpx.AsyncClient) -> None:
    first = await upload(client, "same.png", make_image(color=(200, 0, 0)))
    second = await upload(client, "same.png", make_image(color=(0, 0, 200)))
    assert second["_id"] == first["_id"]
    assert second["url"] != first["url"]

    for url, params in ((first["url"], {}), (first["url"], {"width": "8"})):
        old = await client.get(url, params=params)
        assert old.status_code == 404
        assert old.json()["detail"] == (
            f"Image {first['_id']} no longer holds the bytes this address names (it was replaced); "
            "ask for the image again for its current address."
        )
    assert (await client.get(second["url"])).content == make_image(color=(0, 0, 200))


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_a_content_address_that_is_not_one_is_a_4xx_with_a_sentence(client: httpx.AsyncClient) -> None:
    document = await upload(client, "b.png", make_image())
    base = f"/images/{document['_id']}/content"
    for bad in ("nothex", f"{'A' * 64}-12", f"{document['checksum']}-x", document["checksum"]):
        response = await client.get(f"{base}/{bad}")
        assert response.status_code in (400, 422), (bad, response.text)
        assert isinstance(response.json()["detail"], str)
    wrong_size = await client.get(f"{base}/{document['checksum']}-{document['size'] + 1}")
    assert wrong_size.status_code == 404
    other = await client.get(f"/images/{'0' * 24}/content/{document['checksum']}-{document['size']}")
    assert other.status_code == 404
    assert other.json()["detail"] == f"No image with id {'0' * 24}."


def test_a_signed_link_holds_within_its_hour_and_names_its_path_and_user() -> None:
    now = [1_800_000_000.0 + 10]  # ten seconds past an hour
    signer = Signer(b"k" * 32, lifetime=3600, clock=lambda: now[0])
    alice = Scope(owner="alice")
    link = signer.sign("/images/x/content/y", alice)
    now[0] += 3000
    assert signer.sign("/images/x/content/y", alice) == link  # the same URL all hour: caches hold
    assert signer.scope_of("/images/x/content/y", link) == alice
    assert signer.sign("/images/x/content/y", Scope()) != link
    with pytest.raises(Exception, match="does not match this address"):
        signer.scope_of("/images/x/content/z", link)
    expires, user, mac = link.split(".")
    for tampered in (
        f"{int(expires) + 3600}.{user}.{mac}",
        f"{expires}.Ym9i.{mac}",  # bob
        f"{expires}.*.{mac}",  # everyone
        with_altered_mac(link),
    ):
        with pytest.raises(Exception, match="does not match this address"):
            signer.scope_of("/images/x/content/y", tampered)
    with pytest.raises(Exception, match="malformed"):
        signer.scope_of("/images/x/content/y", "nonsense")
    # The last of the code's 22 characters carries two bits: the decoder ignores the other four,
    # so other spellings decode to the same bytes. Only the one the service wrote opens.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    for respelt in {alphabet[(last & ~0b1111) | spare] for spare in range(16)} - {mac[-1]}:
        with pytest.raises(Exception, match="malformed"):
            signer.scope_of("/images/x/content/y", f"{expires}.{user}.{mac[:-1]}{respelt}")
    now[0] = float(expires)
    with pytest.raises(Exception, match="expired at"):
        signer.scope_of("/images/x/content/y", link)


# -- under OIDC --------------------------------------------------------------------------------


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server([KEY]) as server:
        yield server


@pytest.fixture
async def oidc_client(make_settings: Callable[..., Settings], jwks: JwksServer) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        oidc_jwks_uri=jwks.uri,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        image_scope="user",
        oidc_jwks_refresh_seconds=0,
    )
    app = create_app(settings)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http,
    ):
        yield http


def token(user: str) -> dict[str, str]:
    return bearer(sign(claims_for(user), KEY))


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_under_oidc_signed_links_open_without_a_header_within_their_users_scope(
    oidc_client: httpx.AsyncClient,
) -> None:
    alice, bob = token("alice"), token("bob")
    content = make_image(color=(1, 2, 3))
    document = await upload(oidc_client, "mine.png", content, **alice)
    url = document["url"]
    path, query = urlsplit(url).path, parse_qs(urlsplit(url).query)
    assert CONTENT_URL.match(path) and list(query) == ["signature"]

    opened = await oidc_client.get(url)  # no Authorization header, as an <img> asks
    assert opened.status_code == 200 and opened.content == content
    assert opened.headers["cache-control"] == IMMUTABLE
    assert (await oidc_client.get(path)).status_code == 401  # the address alone is not enough
    # A thumbnail's query is not signed, but stays within alice's images.
    assert (await oidc_client.get(url + "&width=8")).status_code == 200
    # Within the hour alice gets the same link again (pages keep their cache).
    assert (await oidc_client.get(f"/images/{document['_id']}", headers=alice)).json()["url"] == url

    signature = query["signature"][0]
    expires, user, mac = signature.split(".")
    tampered = [
        f"{path}?signature={with_altered_mac(signature)}",
        f"{path}?signature={int(expires) + 3600}.{user}.{mac}",
        f"{path}?signature=*.{mac}",
        f"/images/{document['_id']}?signature={signature}",  # another path
    ]
    for link in tampered:
        refused = await oidc_client.get(link)
        assert refused.status_code == 403, (link, refused.text)
        assert refused.json()["detail"].endswith("ask for the link again.")

    # Only reads: a signed link never deletes.
    deleted = await oidc_client.delete(f"/images/{document['_id']}?signature={signature}")
    assert deleted.status_code == 401
    # Bob's link to alice's image: bob's scope, so the image is not there for him.
    bob_document = await upload(oidc_client, "bobs.png", make_image(), **bob)
    bob_signature = parse_qs(urlsplit(bob_document["url"]).query)["signature"][0]
    assert (await oidc_client.get(f"{path}?signature={bob_signature}")).status_code == 403


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_under_oidc_graphql_gives_signed_image_thumbnail_and_export_urls(
    oidc_client: httpx.AsyncClient,
) -> None:
    alice = token("alice")
    await upload(oidc_client, "cat.png", make_image(), **alice)
    query = "{ images { items { url thumbnailUrl(width: 8) downloadUrl } } exportUrl(format: COCO) }"
    answer = await oidc_client.post("/graphql", json={"query": query}, headers=alice)
    assert "errors" not in answer.json(), answer.text
    result = answer.json()["data"]
    item = result["images"]["items"][0]
    for url in (item["url"], item["thumbnailUrl"], item["downloadUrl"], result["exportUrl"]):
        assert url.startswith("http://testserver/") and "signature=" in url, url
        response = await oidc_client.get(url)
        assert response.status_code == 200, (url, response.text)
    assert item["downloadUrl"] == item["url"]  # local storage: nothing presigns


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_under_oidc_a_signed_export_link_holds_only_its_users_images(oidc_client: httpx.AsyncClient) -> None:
    # The query is not signed, so a filter added to alice's link may narrow her images but
    # never reach bob's; and her signature moved to bob's image does not match its address.
    alice, bob = token("alice"), token("bob")
    mine = await upload(oidc_client, "mine.png", make_image(color=(9, 9, 9)), **alice)
    bobs = [await upload(oidc_client, name, make_image(color=(7, 7, 7)), **bob) for name in ("b1.png", "mine.png")]
    answer = await oidc_client.post("/graphql", json={"query": "{ exportUrl }"}, headers=alice)
    export_url = answer.json()["data"]["exportUrl"]
    assert urlsplit(export_url).path == "/export" and "signature=" in export_url
    sneaky = json.dumps({"$or": [{"userId": "bob"}, {"userId": {"$ne": "alice"}}]})
    for url, expected in ((export_url, [mine["_id"]]), (f"{export_url}&filter={quote(sneaky)}", [])):
        response = await oidc_client.get(url)  # no Authorization header, as a browser's download
        assert response.status_code == 200, (url, response.text)
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        documents = json.loads(archive.read("mongodb_data.json"))
        assert [document["_id"] for document in documents] == expected, url
        assert make_image(color=(7, 7, 7)) not in [archive.read(name) for name in archive.namelist()]

    signature = parse_qs(urlsplit(mine["url"]).query)["signature"][0]
    for path in (f"/images/{bobs[0]['_id']}/file", urlsplit(bobs[0]["url"]).path):
        moved = await oidc_client.get(f"{path}?signature={signature}")
        assert moved.status_code == 403, (path, moved.text)


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_under_oidc_an_expired_signed_link_is_a_403_with_one_sentence(oidc_client: httpx.AsyncClient) -> None:
    # Signed with the service's own key by a signer whose clock is two hours behind: expired
    # (its expiry is rounded up to the hour), while the same signer's link for now opens.
    document = await upload(oidc_client, "old.png", make_image(), **token("alice"))
    path = urlsplit(document["url"]).path
    store = oidc_client._transport.app.state.services.store  # type: ignore[attr-defined]
    key = await store.secrets.shared(KEY_ID, new_key)
    now = time.time()
    alice = Scope(owner="alice")
    fresh = Signer(key, lifetime=60, clock=lambda: now).sign(path, alice)
    assert (await oidc_client.get(path, params={"signature": fresh})).status_code == 200
    stale = Signer(key, lifetime=60, clock=lambda: now - 2 * HOUR).sign(path, alice)
    expires = int(stale.split(".")[0])
    assert expires <= now
    for url in (path, f"{path}?width=8"):
        refused = await oidc_client.get(url, params={"signature": stale})
        assert refused.status_code == 403, refused.text
        moment = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert refused.json()["detail"] == f"The link expired at {moment}; ask for a new one."


async def test_without_oidc_urls_are_plain_content_addresses(client: httpx.AsyncClient) -> None:
    document = await upload(client, "p.png", make_image())
    result = await gql_data(client, "{ images { items { url thumbnailUrl(width: 16) } } }")
    item = result["images"]["items"][0]
    assert item["url"] == f"http://testserver{document['url']}"
    assert item["thumbnailUrl"] == f"http://testserver{document['url']}?width=16"
    assert "signature" not in document["url"]
    assert (await client.get(item["thumbnailUrl"])).headers["cache-control"] == IMMUTABLE
