"""Checking a connection string the way the driver will read it, before anything connects."""

from __future__ import annotations

from pymongo.errors import ConfigurationError, InvalidURI
from pymongo.uri_parser import parse_uri


def uri_problem(uri: str) -> str | None:
    """Why the driver would refuse `uri` (its first sentence), or None."""
    if uri.startswith("mongodb+srv://"):
        return None  # parsing an SRV URI resolves DNS; left to the driver at connect time
    try:
        parse_uri(uri)
    except (InvalidURI, ConfigurationError, ValueError) as error:
        return str(error).split(". ")[0].rstrip(".")  # the driver appends hints after a first sentence
    return None
