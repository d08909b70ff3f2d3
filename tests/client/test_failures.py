"""What goes wrong is said in one sentence on stderr, with a non-zero exit status and no
traceback: a service that cannot be reached, a refused token, a bad filter, a risky command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from scripts.servers import free_port
from tests.client.conftest import Ran, command_environment, run, write_images
from tests.utils.live import serving
from tests.utils.oidc import AUDIENCE, claims_for, issuer_server, rsa_key, sign

LOCAL = pytest.mark.parametrize("storage_kind", ["local"], indirect=True)


def one_sentence(result: Ran) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    assert lines[0].startswith("imagestore: ") and lines[0].endswith(".")
    return lines[0]


def test_a_service_that_cannot_be_reached(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    write_images(tmp_path, 1)
    for arguments in (("ls",), ("push", str(tmp_path)), ("pull", str(tmp_path / "out")), ("get", "0" * 24)):
        result = run(url, "--quiet", *arguments)
        assert result.status == 1
        assert f"The service at {url} cannot be reached" in one_sentence(result)


@LOCAL
def test_bad_filters_and_risky_commands(service_url: str, tmp_path: Path) -> None:
    refused = run(service_url, "ls", "--filter", json.dumps({"data.label": {"$where": "1"}}))
    assert refused.status == 1
    assert "$where" in one_sentence(refused)

    not_json = run(service_url, "ls", "--filter", "{label: cat}")
    assert not_json.status == 2
    assert "--filter is not JSON" in one_sentence(not_json)

    no_yes = run(service_url, "rm", "--filter", '{"data.label": "cat"}')
    assert no_yes.status == 2 and "add --yes" in one_sentence(no_yes)
    everything = run(service_url, "rm", "--yes")
    assert everything.status == 2 and "--all --yes" in one_sentence(everything)

    missing = run(service_url, "get", "0123456789abcdef01234567")
    assert missing.status == 1 and "imagestore: " in one_sentence(missing)
    conflict = run(service_url, "pull", str(tmp_path / "x"), "--view", "a", "--snapshot", "b")
    assert conflict.status == 2 and "give one of --filter, --view and --snapshot" in one_sentence(conflict)


@pytest.fixture
def oidc_service(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A service under OIDC whose issuer grants client credentials; its URL and issuer URL."""
    with issuer_server(
        rsa_key("pipeline"), client_id="pipeline", cors_origin="", user="pipeline", client_secret="s3cret"
    ) as issuer:
        extra = {"OIDC_JWKS_URI": f"{issuer.url}/jwks", "OIDC_ISSUER": issuer.url, "OIDC_AUDIENCE": AUDIENCE}
        with serving(settings, None, tmp_path, extra=extra) as (url, _):
            yield url, issuer.url


@LOCAL
def test_under_oidc_a_refused_token_and_client_credentials(oidc_service: tuple[str, str], tmp_path: Path) -> None:
    url, issuer = oidc_service
    no_token = run(url, "ls")
    assert no_token.status == 1 and "imagestore: " in one_sentence(no_token)

    forged = sign(claims_for("mallory", iss=issuer), rsa_key("not-the-issuers"))
    refused = run(url, "ls", env=command_environment(url, IMAGESTORE_TOKEN=forged))
    assert refused.status == 1
    one_sentence(refused)

    credentials = {"IMAGESTORE_OIDC_ISSUER": issuer, "IMAGESTORE_CLIENT_ID": "pipeline"}
    wrong = run(url, "ls", env=command_environment(url, **credentials, IMAGESTORE_CLIENT_SECRET="guess"))
    assert wrong.status == 1
    assert "The OIDC issuer refused the client credentials (Invalid client credentials)." in one_sentence(wrong)

    write_images(tmp_path / "set", 3)
    env = command_environment(url, **credentials, IMAGESTORE_CLIENT_SECRET="s3cret")
    pushed = run(url, "push", str(tmp_path / "set"), env=env)
    assert pushed.status == 0 and "sent 3" in pushed.out, pushed.out + pushed.err
    listed = run(url, "ls", "--json", env=env)
    assert listed.status == 0
    assert sorted(json.loads(line)["file"] for line in listed.out.splitlines()) == [
        "line0/day0/img00000.png",
        "line1/day1/img00001.png",
        "line2/day2/img00002.png",
    ]
