"""How tests reach the S3 server of the session (ours or the developer's)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from minio import Minio


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://host:port
    access_key: str
    secret_key: str
    region: str | None = None

    def client(self) -> Minio:
        parts = urlsplit(self.endpoint)
        return Minio(
            parts.netloc,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=parts.scheme == "https",
            region=self.region,
        )
