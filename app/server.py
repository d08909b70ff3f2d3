"""How the service is served: uvicorn, configured here once.

`make run` (scripts/run_service.py) and the container image (`python -m app.server`) both call
`serve`, so the two cannot drift apart.
"""

from __future__ import annotations

import os
import sys

import uvicorn

from app.config import ConfigError, Settings, load_settings


def serve(settings: Settings) -> None:
    """Run the service in this process until SIGINT or SIGTERM."""
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        # Loopback only in tests and benches; every interface otherwise (the container).
        host=os.environ.get("APP_HOST", "0.0.0.0"),
        port=settings.app_port,
        # The service logs one line per request itself (app/rest/access.py).
        access_log=False,
        # In-flight downloads, exports and imports get this long after SIGTERM; then the
        # lifespan closes the database and storage.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 1
    serve(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
