"""Structured logs: one line per request, request ids, errors logged once, and no secret anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Message, Scope

from app.config import Settings
from app.domain.images.reading import ImageReader
from app.main import create_app
from app.storage.base import StoredFile
from scripts.servers import FerretDB, start_ferretdb
from tests.utils.graphql import gql
from tests.utils.images import make_image
from tests.utils.oidc import AUDIENCE, ISSUER, bearer, claims_for, jwks_server, rsa_key, sign
from tests.utils.service import LifespanClient, upload

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line the service wrote; each must be a JSON object."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "app.access"]


def http_scope(path: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


@pytest.fixture
def json_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(log_format="json")


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_json_access_lines_carry_the_request_fields(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with LifespanClient(create_app(json_settings)) as (client, _):
        created = (await upload(client, make_image())).json()
        capsys.readouterr()  # only the lines of the requests below
        response = await client.get(f"/images/{created['_id']}?select=file")
        await client.get("/images/0123456789abcdef01234567")

    lines = json_lines(capsys.readouterr().err)
    found, missing = access_lines(lines)
    assert found == {
        "time": found["time"],
        "level": "INFO",
        "logger": "app.access",
        "message": f"GET /images/{{image_id}} 200 {found['duration_ms']:.1f} ms",
        "method": "GET",
        "route": "/images/{image_id}",
        "status": 200,
        "duration_ms": found["duration_ms"],
        "bytes_sent": len(response.content),
        "request_id": response.headers["x-request-id"],
    }
    assert isinstance(found["duration_ms"], float) and found["duration_ms"] > 0
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", found["time"])
    assert (missing["status"], missing["route"]) == (404, "/images/{image_id}")
    assert missing["request_id"] != found["request_id"]
    assert created["_id"] not in json.dumps(lines)  # the template, never the raw path


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_text_lines_are_readable(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    async with LifespanClient(create_app(make_settings())) as (client, _):
        capsys.readouterr()
        response = await client.get("/images")

    [line] = [line for line in capsys.readouterr().err.splitlines() if "app.access" in line]
    request_id = response.headers["x-request-id"]
    assert re.match(rf"^\S+ \S+ INFO app\.access: GET /images 200 [\d.]+ ms \[request_id={request_id}\]$", line), line


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_request_id_is_taken_when_safe_and_generated_otherwise(
    json_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with LifespanClient(create_app(json_settings)) as (client, _):
        capsys.readouterr()
        given = await client.get("/healthz", headers={"X-Request-ID": "trace-42.abc:1_x"})
        unsafe = [
            await client.get("/healthz", headers={"X-Request-ID": value})
            for value in ("x" * 129, "<script>", "a b", "")
        ]
        absent = await client.get("/healthz")
        failing = await client.get("/images/not-an-id", headers={"X-Request-ID": "trace-43"})

    assert given.headers["x-request-id"] == "trace-42.abc:1_x"
    for response in [*unsafe, absent]:
        assert GENERATED_ID.match(response.headers["x-request-id"])
    assert len({response.headers["x-request-id"] for response in [*unsafe, absent]}) == 5
    assert (failing.status_code, failing.headers["x-request-id"]) == (400, "trace-43")
    # The probe lines are DEBUG (LOG_LEVEL is INFO here); the error's line is there with its id.
    lines = access_lines(json_lines(capsys.readouterr().err))
    assert [(line["route"], line["status"], line["request_id"]) for line in lines] == [
        ("/images/{image_id}", 400, "trace-43")
    ]


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_unexpected_error_is_logged_once_with_its_cause(
    json_settings: Settings,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(self: ImageReader, scope: object, image_id: str) -> None:
        raise RuntimeError("the cause, in the traceback")

    async with LifespanClient(create_app(json_settings)) as (client, _):
        monkeypatch.setattr(ImageReader, "get", broken)
        capsys.readouterr()
        response = await client.get("/images/0123456789abcdef01234567")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error.", "code": "internal"}
    request_id = response.headers["x-request-id"]
    lines = json_lines(capsys.readouterr().err)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == request_id
    assert "RuntimeError: the cause, in the traceback" in errors[0]["exception"]
    assert [(line["status"], line["request_id"]) for line in access_lines(lines)] == [(500, request_id)]
    assert len([record for record in caplog.records if record.exc_info]) == 1


@pytest.mark.parametrize("storage_kind", ["local"], indirect=True)
async def test_download_failing_half_way_is_logged_once(
    json_settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LifespanClient(create_app(json_settings)) as (client, app):
        created = (await upload(client, make_image())).json()
        size = created["size"]

        async def half_then_fail(key: str, **_: object) -> StoredFile:
            async def chunks() -> AsyncIterator[bytes]:
                yield b"half"
                raise OSError(5, "Input/output error")

            return StoredFile(size=size, chunks=chunks())

        monkeypatch.setattr(app.state.services.storage, "open", half_then_fail)
        capsys.readouterr()
        # Straight ASGI: an HTTP client (httpx's test transport too) cannot show a cut response.
        messages: list[Message] = []

        requested = False

        async def receive() -> Message:
            nonlocal requested
            if requested:  # then the client just waits, as a connected one would
                await asyncio.Event().wait()
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            messages.append(message)

        await app(http_scope(f"/images/{created['_id']}/image"), receive, send)

    # Cut short, never completed: a response that ended normally would pass for the whole file.
    assert [message.get("body") for message in messages[1:]] == [b"half"]
    assert messages[-1].get("more_body") is True
    lines = json_lines(capsys.readouterr().err)
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert "Input/output error" in errors[0]["exception"]
    [access] = access_lines(lines)
    assert (access["status"], access["bytes_sent"]) == (200, 4)


# -- no secrets -------------------------------------------------------------------------------

MONGODB_PASSWORD = "pa55word-Zq81"
QUERY_SECRET = "qs-secret-9f7Xb"
PATH_SECRET = "path-secret-4Kd2"


@pytest.fixture
def ferretdb_with_credentials(tmp_path: Path) -> Iterator[FerretDB]:
    # FerretDB (SQLite) accepts any credentials with the PLAIN mechanism, so a URI with a
    # password connects for real, as it would to a MongoDB with users.
    with start_ferretdb(tmp_path / "ferretdb") as server:
        yield server


@pytest.fixture
def secret_settings(
    make_settings: Callable[..., Settings], ferretdb_with_credentials: FerretDB
) -> Iterator[tuple[Settings, str, list[str]]]:
    """Settings full of secrets, a valid token, and every secret that must never be logged."""
    key = rsa_key("secret-test-key")
    with jwks_server([key]) as jwks:
        uri = (
            f"mongodb://admin:{MONGODB_PASSWORD}@127.0.0.1:{ferretdb_with_credentials.port}/secrets"
            "?authMechanism=PLAIN&authSource=$external"
        )
        settings = make_settings(
            mongodb_connection_string=uri,
            oidc_jwks_uri=jwks.uri,
            oidc_issuer=ISSUER,
            oidc_audience=AUDIENCE,
            log_format="json",
            log_level="DEBUG",
        )
        token = sign(claims_for("alice"), key)
        s3_secret = settings.s3_secret_access_key
        assert s3_secret is not None
        # The token's signature alone: a log line holding any of the token would hold it.
        secrets = [token, token.rsplit(".", 1)[1], s3_secret.get_secret_value(), MONGODB_PASSWORD]
        yield settings, token, secrets


async def send_traffic_with_secrets(client: httpx.AsyncClient, token: str) -> None:
    auth = bearer(token)
    created = await upload(client, make_image(), fields={"file": "s.png"})
    assert created.status_code == 401  # no token
    created = await client.post(
        "/images", files={"image": ("s.png", make_image(), "image/png")}, headers=auth, data={"label": "x"}
    )
    assert created.status_code == 200, created.text
    image_id = created.json()["_id"]
    assert (
        await client.get(f"/images?api_key={QUERY_SECRET}&password={QUERY_SECRET}", headers=auth)
    ).status_code == 200
    assert (await client.get(f"/images/{image_id}/image?token={QUERY_SECRET}", headers=auth)).status_code == 200
    assert (await client.get(f"/images/{PATH_SECRET}", headers=auth)).status_code == 400
    assert (await client.get(f"/nowhere/{PATH_SECRET}", headers=auth)).status_code == 404
    assert (await client.get("/images", headers=bearer(token + "tampered"))).status_code == 401
    assert (await client.get("/images", headers={"Authorization": f"Basic {token}"})).status_code == 401
    client.headers.update(auth)
    assert "errors" not in await gql(client, "query Mine { images { total } }")
    info = (await client.get("/")).json()
    assert info["mongodb"]["connected"] is True  # the credentials really were used
    assert info["mongodb"]["uri"].startswith("mongodb://admin:***@")


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
async def test_service_log_output_holds_no_secret(
    secret_settings: tuple[Settings, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    settings, token, secrets = secret_settings
    async with LifespanClient(create_app(settings)) as (client, _):
        await send_traffic_with_secrets(client, token)

    output = capsys.readouterr().err
    lines = json_lines(output)  # LOG_LEVEL=DEBUG: everything the service itself would write
    assert any("starting: database mongodb://admin:***@" in line["message"] for line in lines)
    assert len(access_lines(lines)) >= 10
    for secret in [*secrets, QUERY_SECRET, PATH_SECRET]:
        assert secret not in output


@pytest.mark.parametrize("storage_kind", ["s3"], indirect=True)
async def test_no_credential_in_any_library_log_even_at_debug(
    secret_settings: tuple[Settings, str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    settings, token, secrets = secret_settings
    app = create_app(settings)
    # Every logger at DEBUG, libraries included, past the service's own WARNING floor for them.
    # (Not the query-string values here: the database driver's DEBUG log records the commands
    # it sends, filters included, by design; which is why the service keeps libraries at WARNING.)
    caplog.set_level(logging.DEBUG)
    async with LifespanClient(app) as (client, _):
        await send_traffic_with_secrets(client, token)

    assert len(caplog.records) > 50
    everything = "\n".join(caplog.text.splitlines() + [repr(record.__dict__) for record in caplog.records])
    for secret in secrets:
        assert secret not in everything
