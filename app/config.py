"""Every setting the service reads, from the environment, validated once at start-up.

The variable names are the legacy service's (see the README's configuration table), so
existing deployments keep working; the legacy MongoDB and S3 forms are resolved here into one
URI and one endpoint, and nowhere else.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.store.uri import uri_problem

DEFAULT_DATABASE = "image_storage"
# S3's bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ConfigError(Exception):
    """A setting is missing or unusable; the message is one sentence naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    # The interface to listen on: loopback unless told otherwise, since without OIDC anyone who
    # reaches the port may read and delete every image. The container image sets 0.0.0.0.
    app_host: str = "127.0.0.1"
    app_port: int = Field(default=3000, ge=1, le=65535)

    mongodb_connection_string: SecretStr | None = None
    mongodb_url: SecretStr | None = None
    mongodb_db: str = DEFAULT_DATABASE
    mongodb_options: str = ""
    mongodb_host: str | None = None
    mongodb_port: int | None = Field(default=None, ge=1, le=65535)
    mongodb_username: str | None = None
    mongodb_password: SecretStr | None = None
    mongodb_protocol: str = "mongodb"
    # How long a request waits for an unreachable database before it answers 503.
    mongodb_timeout_ms: int = Field(default=5000, ge=100)
    # Where a FerretDB with the SQLite backend on this machine keeps its files (`make run` sets
    # it for the FerretDB it starts): the service adds an index FerretDB 1.24 lacks, reads
    # totals, pages and /fields from the files (app/store/engines/ferretdb_sqlite/) and logs
    # when the collection has outgrown it.
    ferretdb_sqlite_directory: Path | None = None

    uploads_directory: Path = Path("uploads")

    s3_bucket: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str | None = None
    s3_endpoint: str | None = None
    s3_port: int | None = Field(default=None, ge=1, le=65535)
    s3_use_ssl: bool | None = None
    # Seconds to wait for the S3 endpoint to accept a connection before answering 503.
    s3_connect_timeout: float = Field(default=5.0, gt=0)
    # How long a presigned S3 download URL (`?redirect=true`, GraphQL `downloadUrl`) works by default.
    presigned_url_seconds: int = Field(default=300, ge=1, le=7 * 24 * 3600)
    # Resized copies (`?width=`) made at once, and the most pixels one may decode (about 4
    # bytes each): together the bound on the memory thumbnails take, whatever the burst.
    thumbnail_workers: int = Field(default=2, ge=1, le=64)
    thumbnail_max_pixels: int = Field(default=40_000_000, ge=1_000_000, le=1_000_000_000)

    # The least time a signed link (app/domain/links.py) works; its expiry is rounded up to the hour.
    signed_link_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # Live events (app/domain/datasets/events/): how often each process reads the journal while
    # it has subscribers, and rewrites its promise; a writer silent this long is given up; what
    # the journal keeps for subscribers that resume.
    events_poll_seconds: float = Field(default=0.25, ge=0.01, le=10)
    events_beat_seconds: float = Field(default=0.25, ge=0.01, le=10)
    events_writer_timeout_seconds: float = Field(default=5.0, ge=0.5, le=300)
    events_retention_seconds: int = Field(default=86400, ge=60, le=30 * 86400)
    events_retention_count: int = Field(default=100_000, ge=100, le=100_000_000)

    oidc_jwks_uri: str | None = None
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    # A public client (no secret) registered with the issuer, its redirect URI `<origin>/gallery`:
    # with it and OIDC_ISSUER the gallery logs people in (authorization code with PKCE).
    oidc_client_id: str | None = None
    oidc_scopes: str = "openid profile"
    # JWKS refetches for tokens naming an unknown key: a few at once, then one per this many
    # seconds (0: no limit).
    oidc_jwks_refresh_seconds: float = Field(default=30.0, ge=0)
    image_scope: Literal["user"] | None = None
    user_identifier: str = "preferred_username"

    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # Every body that is not a file upload or an archive: metadata, GraphQL requests.
    max_json_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # A request whose body stops arriving for this long is answered 408 and let go.
    request_body_timeout_seconds: float = Field(default=30.0, gt=0)
    # Imports: the archive upload, and what it may unpack to (zip bombs are refused up front).
    max_archive_bytes: int = Field(default=64 * 1024**3, ge=1)
    import_max_entries: int = Field(default=200_000, ge=1)
    import_max_uncompressed_bytes: int = Field(default=64 * 1024**3, ge=1)
    # The largest page `GET /images?limit=` may ask for; more is a 400, not a silent cut.
    query_max_limit: int = Field(default=10_000, ge=1)
    cors_origins: str = "*"

    # Operations: `text` for people at a terminal, `json` (one object per line) for collectors.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # How long in-flight requests (downloads, exports, imports) may run on after SIGTERM; passed
    # to uvicorn by app/server.py (`make run` and the container image).
    shutdown_grace_seconds: int = Field(default=30, ge=0, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, values: object) -> object:
        # Deployments often template every variable and leave the unused ones empty.
        if isinstance(values, dict):
            return {key: value for key, value in values.items() if value != ""}
        return values

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @model_validator(mode="after")
    def _check_resolvable(self) -> Settings:
        self.mongodb_uri  # noqa: B018 - raises ConfigError when the MongoDB settings are unusable
        if self.image_scope == "user" and not self.oidc_jwks_uri:
            raise ConfigError("IMAGE_SCOPE=user needs OIDC_JWKS_URI: users are told apart by their tokens.")
        if self.oidc_jwks_uri and not self.oidc_jwks_uri.startswith(("http://", "https://")):
            raise ConfigError("OIDC_JWKS_URI must be an http(s) URL.")
        if self.oidc_issuer and self.oidc_client_id and not self.oidc_issuer.startswith(("http://", "https://")):
            raise ConfigError("OIDC_ISSUER must be an http(s) URL for the gallery's login (OIDC_CLIENT_ID).")
        if self.s3_bucket:
            if not BUCKET_NAME.match(self.s3_bucket):
                raise ConfigError(
                    f"S3_BUCKET {self.s3_bucket!r} is not a valid bucket name "
                    "(3-63 lowercase letters, digits, '.', '-')."
                )
            self.s3_location  # noqa: B018
        return self

    # -- MongoDB -----------------------------------------------------------------------------

    @property
    def mongodb_uri(self) -> str:
        """The one URI to connect with, built from whichever form the deployment uses."""
        if self.mongodb_connection_string is not None:
            uri, variable = self.mongodb_connection_string.get_secret_value(), "MONGODB_CONNECTION_STRING"
        elif self.mongodb_url is not None:
            base = self.mongodb_url.get_secret_value().rstrip("/")
            uri, variable = f"{base}/{self.mongodb_db}{self.mongodb_options}", "MONGODB_URL"
        elif self.mongodb_host is not None or self.mongodb_port is not None:
            uri, variable = self._uri_from_parts(), "MONGODB_HOST"
        else:
            raise ConfigError(
                "No database configured: set MONGODB_CONNECTION_STRING "
                "(or the legacy MONGODB_URL, or MONGODB_HOST and MONGODB_PORT)."
            )
        _check_mongodb_uri(uri, variable)
        return uri

    def _uri_from_parts(self) -> str:
        credentials = ""
        if self.mongodb_username:
            password = self.mongodb_password.get_secret_value() if self.mongodb_password else ""
            credentials = f"{quote(self.mongodb_username, safe='')}:{quote(password, safe='')}@"
        port = f":{self.mongodb_port}" if self.mongodb_port else ""
        host = self.mongodb_host or "localhost"
        return f"{self.mongodb_protocol}://{credentials}{host}{port}/{self.mongodb_db}{self.mongodb_options}"

    @property
    def mongodb_database(self) -> str:
        """The database name: the URI's path, else the default."""
        path = urlsplit(self.mongodb_uri).path.strip("/")
        return path or DEFAULT_DATABASE

    @property
    def mongodb_uri_redacted(self) -> str:
        """The URI without its password, for `GET /` and logs."""
        parts = urlsplit(self.mongodb_uri)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hosts = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hosts}"
        return parts._replace(netloc=netloc, query="").geturl()

    # -- Storage -----------------------------------------------------------------------------

    @property
    def storage_kind(self) -> Literal["local", "s3"]:
        return "s3" if self.s3_bucket else "local"

    @property
    def s3_location(self) -> tuple[str, bool]:
        """`(host[:port], secure)` for the minio client, from the endpoint in any legacy form."""
        endpoint = (self.s3_endpoint or "s3.amazonaws.com").strip()
        secure = True if self.s3_use_ssl is None else self.s3_use_ssl
        if "://" in endpoint:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"S3_ENDPOINT {endpoint!r} is not a host, host:port or http(s) URL.")
            if parts.path.strip("/"):
                raise ConfigError("S3_ENDPOINT must not contain a path: give the bucket in S3_BUCKET.")
            secure = parts.scheme == "https"
            endpoint = parts.netloc
        host, _, port = endpoint.partition(":")
        if not host or "/" in endpoint or (port and not port.isdigit()):
            raise ConfigError(f"S3_ENDPOINT {endpoint!r} is not a host, host:port or http(s) URL.")
        if not port and self.s3_port:
            endpoint = f"{host}:{self.s3_port}"
        return endpoint, secure


def _check_mongodb_uri(uri: str, variable: str) -> None:
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigError(f"{variable} must be a mongodb:// or mongodb+srv:// URI.")
    reason = uri_problem(uri)
    if reason is not None:
        raise ConfigError(f"{variable} is not a valid MongoDB URI: {reason}.")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (plus overrides), or ConfigError with one sentence."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ConfigError:
        raise
    except ValidationError as error:
        first = error.errors()[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):
            raise cause from None
        variable = "_".join(str(part) for part in first["loc"]).upper() or "configuration"
        raise ConfigError(f"{variable} is invalid: {str(first['msg']).rstrip('.')}.") from None


# -- The embedded database `make run` starts ----------------------------------------------------
#
# Its FerretDB listens on a free port chosen at start, so nothing else could know where it is.
# While it runs, `${DATA_DIRECTORY:-data}/ferretdb/address.json` holds its URI and its SQLite
# directory, for the tools beside it (`make fsck`); the file goes when it stops. A `kill -9` of
# `make run` leaves it behind, pointing at a port nothing answers: a tool then says it cannot
# reach the database, and the next `make run` writes it anew.

# Any of these set means a database is configured and nothing is embedded.
MONGODB_VARIABLES = ("MONGODB_CONNECTION_STRING", "MONGODB_URL", "MONGODB_HOST", "MONGODB_PORT")
ADDRESS_FILE = "address.json"


def database_configured() -> bool:
    # An empty variable counts as unset, as in the service's own settings.
    return any(os.environ.get(name) for name in MONGODB_VARIABLES)


def embedded_directory() -> Path:
    return Path(os.environ.get("DATA_DIRECTORY") or "data") / "ferretdb"


def record_address(directory: Path, uri: str) -> None:
    """Written whole (a reader never sees half of it)."""
    note = directory / ADDRESS_FILE
    staged = note.with_suffix(f".{os.getpid()}.tmp")
    staged.write_text(json.dumps({"uri": uri, "sqliteDirectory": str(directory.resolve()), "pid": os.getpid()}))
    staged.replace(note)


def forget_address(directory: Path) -> None:
    (directory / ADDRESS_FILE).unlink(missing_ok=True)


def use_recorded_address() -> bool:
    """Point this process's settings at the embedded database `make run` recorded, when no
    database is configured; whether it did."""
    if database_configured():
        return False
    try:
        note = json.loads((embedded_directory() / ADDRESS_FILE).read_text())
        uri, sqlite_directory = note["uri"], note["sqliteDirectory"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(uri, str) or not isinstance(sqlite_directory, str):
        return False
    os.environ["MONGODB_CONNECTION_STRING"] = uri
    os.environ["FERRETDB_SQLITE_DIRECTORY"] = sqlite_directory
    return True
