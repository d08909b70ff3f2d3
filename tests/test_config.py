"""Settings: every legacy form resolves to one URI and endpoint; bad values stop start-up."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(external_environment: dict[str, str]) -> None:
    """The service's variables are cleared for the session; each test sets its own."""


def test_connection_string_gives_uri_and_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongodb://db.example:27017/datasets?retryWrites=true")
    settings = load_settings()
    assert settings.mongodb_uri == "mongodb://db.example:27017/datasets?retryWrites=true"
    assert settings.mongodb_database == "datasets"


def test_connection_string_without_path_uses_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongodb://db.example")
    assert load_settings().mongodb_database == "image_storage"


def test_legacy_url_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://user:pw@db.example:27017/")
    monkeypatch.setenv("MONGODB_DB", "legacy")
    monkeypatch.setenv("MONGODB_OPTIONS", "?authSource=admin")
    settings = load_settings()
    assert settings.mongodb_uri == "mongodb://user:pw@db.example:27017/legacy?authSource=admin"
    assert settings.mongodb_database == "legacy"
    assert settings.mongodb_uri_redacted == "mongodb://user:***@db.example:27017/legacy"


def test_legacy_url_alone_uses_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://host")
    assert load_settings().mongodb_uri == "mongodb://host/image_storage"


def test_legacy_parts_form_quotes_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_HOST", "db.example")
    monkeypatch.setenv("MONGODB_PORT", "27018")
    monkeypatch.setenv("MONGODB_USERNAME", "al ice")
    monkeypatch.setenv("MONGODB_PASSWORD", "p@ss:word/")
    settings = load_settings()
    assert settings.mongodb_uri == "mongodb://al%20ice:p%40ss%3Aword%2F@db.example:27018/image_storage"
    assert "p%40ss" not in settings.mongodb_uri_redacted


def test_connection_string_wins_over_legacy_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongodb://new/db1")
    monkeypatch.setenv("MONGODB_URL", "mongodb://old")
    assert load_settings().mongodb_uri == "mongodb://new/db1"


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongodb://host/x")
    monkeypatch.setenv("S3_BUCKET", "")
    monkeypatch.setenv("IMAGE_SCOPE", "")
    settings = load_settings()
    assert settings.storage_kind == "local"
    assert settings.image_scope is None


def test_operations_settings_defaults_and_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongodb://h/x")
    settings = load_settings()
    assert (settings.log_format, settings.log_level, settings.shutdown_grace_seconds) == ("text", "INFO", 30)
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_LEVEL", " debug ")
    monkeypatch.setenv("SHUTDOWN_GRACE_SECONDS", "120")
    settings = load_settings()
    assert (settings.log_format, settings.log_level, settings.shutdown_grace_seconds) == ("json", "DEBUG", 120)


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "MONGODB_CONNECTION_STRING"),
        ({"MONGODB_CONNECTION_STRING": "postgres://x"}, "MONGODB_CONNECTION_STRING"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://host:notaport/x"}, "MONGODB_CONNECTION_STRING"),
        ({"MONGODB_URL": "http://x"}, "MONGODB_URL"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "IMAGE_SCOPE": "everyone"}, "IMAGE_SCOPE"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "APP_PORT": "eighty"}, "APP_PORT"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "MONGODB_PORT": "99999"}, "MONGODB_PORT"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "S3_BUCKET": "Bad_Bucket"}, "S3_BUCKET"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "S3_BUCKET": "okay", "S3_ENDPOINT": "ftp://x"}, "S3_ENDPOINT"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "S3_BUCKET": "okay", "S3_USE_SSL": "maybe"}, "S3_USE_SSL"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "MAX_UPLOAD_BYTES": "0"}, "MAX_UPLOAD_BYTES"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "SHUTDOWN_GRACE_SECONDS": "-1"}, "SHUTDOWN_GRACE_SECONDS"),
        ({"MONGODB_CONNECTION_STRING": "mongodb://h/x", "SHUTDOWN_GRACE_SECONDS": "1.5"}, "SHUTDOWN_GRACE_SECONDS"),
    ],
)
def test_bad_values_stop_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert named in message
    assert message.endswith(".")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("variables", "endpoint", "secure"),
    [
        ({}, "s3.amazonaws.com", True),
        ({"S3_ENDPOINT": "minio.local"}, "minio.local", True),
        ({"S3_ENDPOINT": "minio.local", "S3_PORT": "9000", "S3_USE_SSL": "false"}, "minio.local:9000", False),
        ({"S3_ENDPOINT": "minio.local:9100", "S3_PORT": "9000"}, "minio.local:9100", True),
        ({"S3_ENDPOINT": "http://minio.local:9000"}, "minio.local:9000", False),
        ({"S3_ENDPOINT": "https://s3.eu-central-1.amazonaws.com/"}, "s3.eu-central-1.amazonaws.com", True),
    ],
)
def test_s3_endpoint_forms(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], endpoint: str, secure: bool
) -> None:
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongodb://h/x")
    monkeypatch.setenv("S3_BUCKET", "images")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.storage_kind == "s3"
    assert settings.s3_location == (endpoint, secure)
