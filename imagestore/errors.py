"""What went wrong, as the service said it: one class per `code` of its error bodies.

The service answers every REST error with `{"detail": "<one sentence>", "code": "<code>"}`; the
code, not the status, says whether trying again can help (`busy` and `unavailable` can, a
`conflict` or a `duplicate` never will).
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx


class ImageStoreError(Exception):
    """An answer the caller must act on: `detail` is the service's sentence."""

    code = "error"
    retryable = False

    def __init__(self, detail: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        if code is not None:
            self.code = code


class BadInput(ImageStoreError):
    code = "bad_input"


class Unauthenticated(ImageStoreError):
    code = "unauthenticated"


class Forbidden(ImageStoreError):
    code = "forbidden"


class NotFound(ImageStoreError):
    code = "not_found"


class Conflict(ImageStoreError):
    """The request clashes with what is stored, and will again: a taken path or id."""

    code = "conflict"


class Duplicate(Conflict):
    """Another image already holds identical bytes (an upload with `refuse_duplicates`)."""

    code = "duplicate"


class Busy(ImageStoreError):
    """Another request was changing the same image: the same request may pass in a moment."""

    code = "busy"
    retryable = True


class StaleRevision(ImageStoreError):
    code = "stale_revision"


class TooLarge(ImageStoreError):
    code = "too_large"


class NotAnImage(ImageStoreError):
    code = "not_an_image"


class Unavailable(ImageStoreError):
    """The service, its database or its storage cannot answer now."""

    code = "unavailable"
    retryable = True


class Timeout(ImageStoreError):
    """The service gave up waiting for the request's body (a 408), or the answer never came."""

    code = "timeout"
    retryable = True


class Unreachable(ImageStoreError):
    """No answer at all: the service is down, or the URL is wrong."""

    code = "unreachable"
    retryable = True


BY_CODE: dict[str, type[ImageStoreError]] = {
    kind.code: kind
    for kind in (
        BadInput,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        Duplicate,
        Busy,
        StaleRevision,
        TooLarge,
        NotAnImage,
        Unavailable,
        Timeout,
    )
}

# For an answer without a code (a proxy in between, or a service older than the codes).
BY_STATUS: dict[int, type[ImageStoreError]] = {
    400: BadInput,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    408: Timeout,
    409: Conflict,
    412: StaleRevision,
    413: TooLarge,
    415: NotAnImage,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}


def error_from(response: httpx.Response) -> ImageStoreError:
    """The error a service's answer (status ≥ 400, body read) stands for."""
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    detail = body.get("detail") if isinstance(body, dict) else None
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(detail, str) or not detail:
        detail = f"The service answered {response.status_code} {response.reason_phrase}."
    kind = BY_CODE.get(code) if isinstance(code, str) else None
    if kind is None:
        kind = BY_STATUS.get(response.status_code, Unavailable if response.status_code >= 500 else ImageStoreError)
    return kind(detail, status=response.status_code, code=code if isinstance(code, str) else None)


def unreachable(url: str, error: httpx.TransportError) -> ImageStoreError:
    """The transport's failure as one sentence."""
    if isinstance(error, httpx.TimeoutException):
        return Timeout(f"The service at {url} did not answer in time ({type(error).__name__}).")
    reason = str(error) or type(error).__name__
    return Unreachable(f"The service at {url} cannot be reached: {reason}.")


def sentence(error: BaseException) -> str:
    """What went wrong, as one sentence for a person."""
    text = error.detail if isinstance(error, ImageStoreError) else str(error) or type(error).__name__
    return text.rstrip(".") + "."
