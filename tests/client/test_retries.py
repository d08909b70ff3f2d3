"""Which answers the client tries again: `busy`, `unavailable`, a timeout, no answer; never a
final one (a conflict, a duplicate, bad input)."""

from __future__ import annotations

import httpx
import pytest

from imagestore import errors
from imagestore.retries import retried


def answer(status: int, body: object) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("POST", "http://service/images"))


@pytest.mark.parametrize(
    ("status", "code", "kind", "retryable"),
    [
        (409, "busy", errors.Busy, True),
        (409, "duplicate", errors.Duplicate, False),
        (409, "conflict", errors.Conflict, False),
        (503, "unavailable", errors.Unavailable, True),
        (408, "timeout", errors.Timeout, True),
        (400, "bad_input", errors.BadInput, False),
        (412, "stale_revision", errors.StaleRevision, False),
    ],
)
def test_each_code_is_its_error(status: int, code: str, kind: type[errors.ImageStoreError], retryable: bool) -> None:
    error = errors.error_from(answer(status, {"detail": "Said so.", "code": code}))
    assert type(error) is kind and error.retryable is retryable
    assert (error.detail, error.status, error.code) == ("Said so.", status, code)


def test_an_answer_without_a_code_goes_by_its_status() -> None:
    assert type(errors.error_from(answer(409, {"detail": "Taken."}))) is errors.Conflict
    bare = errors.error_from(
        httpx.Response(502, text="<html>bad gateway</html>", request=httpx.Request("GET", "http://s/"))
    )
    assert type(bare) is errors.Unavailable and bare.detail == "The service answered 502 Bad Gateway."


async def test_busy_is_tried_again_and_a_conflict_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("imagestore.retries.FIRST_DELAY", 0.001)
    tries: list[str] = []

    async def busy_twice() -> str:
        tries.append("busy")
        if len(tries) < 3:
            raise errors.Busy("Being changed by another request; try again.")
        return "stored"

    assert await retried(busy_twice) == "stored"
    assert len(tries) == 3

    finals: list[str] = []

    async def taken() -> str:
        finals.append("conflict")
        raise errors.Conflict("Taken.")

    with pytest.raises(errors.Conflict):
        await retried(taken)
    assert finals == ["conflict"]

    always: list[str] = []

    async def down() -> str:
        always.append("down")
        raise errors.Unreachable("Down.")

    with pytest.raises(errors.Unreachable):
        await retried(down, attempts=4)
    assert len(always) == 4
