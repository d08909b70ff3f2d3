"""File storage: one interface (`Storage`), a local-directory and an S3 backend."""

from __future__ import annotations

from app.config import Settings
from app.metrics import Metrics
from app.storage.base import Storage
from app.storage.keys import normalise_key
from app.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage", "build_storage", "normalise_key"]


def build_storage(settings: Settings, metrics: Metrics) -> Storage:
    """The backend the settings ask for: S3 when `S3_BUCKET` is set, else the local directory."""
    if settings.s3_bucket:
        # Imported only for S3: minio and its dependencies hold 7 MB a process on local storage
        # would carry for nothing.
        from app.storage.s3 import S3Storage  # noqa: PLC0415

        endpoint, secure = settings.s3_location
        secret = settings.s3_secret_access_key
        return S3Storage(
            endpoint=endpoint,
            secure=secure,
            bucket=settings.s3_bucket,
            access_key=settings.s3_access_key_id,
            secret_key=secret.get_secret_value() if secret else None,
            region=settings.s3_region,
            connect_timeout=settings.s3_connect_timeout,
            metrics=metrics,
        )
    return LocalStorage(root=settings.uploads_directory, metrics=metrics)
