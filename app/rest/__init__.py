"""The REST face: routes compatible with the legacy Node.js service, thin over `app.domain`."""
