"""ETags of image documents: the document's revision, quoted (`"3"`), and `If-Match` read back.

Strong validators: a revision names one exact state of the document, since every write raises
it (app/domain/writes/rewrite.py). `If-Match` takes `*` or a list of such tags; weak tags (`W/"3"`)
never match, as RFC 9110 wants for If-Match.
"""

from __future__ import annotations

import re

from app.errors import BadInput

# What `if_match_revisions` accepts, for the OpenAPI document: * or entity tags separated by
# commas (a trailing one passes), with the spaces and tabs a header may hold around them.
IF_MATCH_PATTERN = r'^[ \t]*(?:\*|(?:W/)?"[!#-~]*"[ \t]*(?:,[ \t]*(?:W/)?"[!#-~]*"[ \t]*)*,?)[ \t]*$'
_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e]*)"\s*(?:,|$)')
_REVISION = re.compile(r"[0-9]{1,18}")


def etag(revision: int) -> str:
    return f'"{revision}"'


def if_match_revisions(header: str | None) -> frozenset[int] | None:
    """The revisions an `If-Match` header accepts; None when any will do (no header, or `*`)."""
    if header is None or header.strip() == "*":
        return None
    revisions: set[int] = set()
    position, text = 0, header.strip()
    if not text:
        raise BadInput('The If-Match header is empty; give * or an entity tag such as "3".')
    while position < len(text):
        match = _TAG.match(text, position)
        if match is None or match.end() == position:
            raise BadInput('The If-Match header must be * or a list of entity tags such as "3", quotes included.')
        weak, value = match.group(1), match.group(2)
        if not weak and _REVISION.fullmatch(value):
            revisions.add(int(value))
        position = match.end()
    return frozenset(revisions)
