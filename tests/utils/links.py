"""Signed links (app/domain/links.py) as a test alters them."""

from __future__ import annotations


def with_altered_mac(signature: str) -> str:
    """`signature` (`<expires>.<user>.<mac>`) with a MAC that can never check: its first character
    changed. Not its last ones: the last base64 character of a 16-byte MAC carries 2 bits, and the
    decoder ignores the other 4, so a MAC ending in `xw` and one ending in `xx` are the same bytes."""
    expires, user, mac = signature.split(".")
    return f"{expires}.{user}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}"
