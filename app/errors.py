"""Domain errors: what went wrong, in one sentence a user can act on.

    ServiceError
    ├── BadInput          the request is malformed or asks for something impossible   (400)
    ├── Unauthenticated   no usable credentials                                        (401)
    ├── Forbidden         credentials are fine, the action is not allowed              (403)
    ├── NotFound          no such image (in the caller's scope)                        (404)
    ├── Conflict          the request clashes with what is stored                      (409)
    │   ├── Busy          another request is changing the same image: retry            (409)
    │   └── Duplicate     the upload's file is identical to another image's            (409)
    ├── Gone              what the client resumes from is no longer kept: reload        (410)
    ├── StaleRevision     the image changed since the revision the client named        (412)
    ├── TooLarge          the upload or archive exceeds a configured limit             (413)
    ├── NotAnImage        the file's content is not a supported image                  (415)
    ├── Unprocessable     the request is sound, the stored image cannot serve it       (422)
    └── Unavailable       the database or the storage cannot be reached                (503)

The domain raises these and knows nothing of HTTP or GraphQL; `app/rest/errors.py` maps them to
status codes (the numbers above) in one place. Each class names a stable machine-readable `code`
that REST bodies carry beside the sentence, so clients can branch without parsing prose (a
subclass's code is more specific than its parent's: a `busy` conflict is worth retrying, a
`conflict` is not).
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "error"

    def __init__(self, detail: str) -> None:
        if not detail.isascii():
            # A sentence quoting the client's text must still be sendable: a lone surrogate
            # (JSON's \ud800) cannot be encoded as UTF-8, so it is shown escaped.
            detail = detail.encode("utf-8", "backslashreplace").decode("utf-8")
        super().__init__(detail)
        self.detail = detail


class BadInput(ServiceError):
    code = "bad_input"


class Unauthenticated(ServiceError):
    code = "unauthenticated"


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class Gone(ServiceError):
    """The client asks to go on from a point (an event) older than what is kept."""

    code = "gone"


class StaleRevision(ServiceError):
    code = "stale_revision"


class TooLarge(ServiceError):
    code = "too_large"


class NotAnImage(ServiceError):
    code = "not_an_image"


class Unprocessable(ServiceError):
    code = "unprocessable"


class Busy(Conflict):
    """Another request holds or keeps changing the same image; the same request may succeed later."""

    code = "busy"


class Duplicate(Conflict):
    """The upload asked to refuse duplicates and its file is identical to another image's."""

    code = "duplicate"


class Unavailable(ServiceError):
    code = "unavailable"

    def __init__(self, detail: str, *, cause: str = "Unavailable") -> None:
        super().__init__(detail)
        # What failed underneath (a driver's error class), for the operators' metrics.
        self.cause = cause
