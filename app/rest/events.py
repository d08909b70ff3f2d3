"""`GET /events`: live events as Server-Sent Events, for clients without GraphQL (an `EventSource`).

The same events as the `imageEvents` subscription (app/domain/datasets/events/), filtered by the
listing's parameters and views, in the caller's scope; each carries its id, so a browser's
`EventSource` resumes by itself after a dropped connection (`Last-Event-ID`). Under OIDC an
`EventSource` cannot send a header: it opens a signed link (app/domain/links.py) instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.sse import EventSourceResponse, format_sse_event

from app.domain.datasets.events import Subscription
from app.domain.links import Linker
from app.domain.query import RESERVED_PARAMETERS, parse_query_params
from app.errors import ServiceError
from app.models import document_to_json
from app.rest.deps import (
    FileQuery,
    FilterQuery,
    FromQuery,
    IdsQuery,
    LinkerDep,
    RegexQuery,
    ScopeDep,
    ServicesDep,
    ToQuery,
    services_of,
)
from app.rest.schemas import documented, error_responses
from app.rest.urls import with_url

router = APIRouter(tags=["events"])

# An idle stream sends a comment this often: proxies keep it open, and a client gone is noticed.
KEEPALIVE_SECONDS = 15.0
# The lifespan state's event set when the server starts to stop (app/server.py, app/main.py).
DRAINING = "draining"
DRAIN_CHECK_SECONDS = 0.5
EVENT_ID = documented(type="string", pattern="^[0-9a-f]{22}$")
EVENTS_PARAMETERS = RESERVED_PARAMETERS | {"lastEventId", "signature"}


async def get_event_filter(
    request: Request,
    scope: ScopeDep,
    # Declared for the OpenAPI document: the query compiler reads the raw parameters, and any
    # other `key=value` is a metadata match, as on GET /images.
    from_: FromQuery = None,
    to: ToQuery = None,
    file: FileQuery = None,
    regex: RegexQuery = None,
    ids: IdsQuery = None,
    filter: FilterQuery = None,
    view: Annotated[
        str | None, Query(description="one of your saved views", json_schema_extra=documented(type="string"))
    ] = None,
) -> dict[str, object]:
    services = services_of(request)
    query = parse_query_params(
        request.query_params.multi_items(), max_limit=services.settings.query_max_limit, reserved=EVENTS_PARAMETERS
    )
    if view is not None:
        query = await services.views.narrow(scope, query, view)
    return dict(query.filter)


EventFilterDep = Annotated[dict[str, object], Depends(get_event_filter)]


@router.get(
    "/events",
    # Not EventSourceResponse here: FastAPI then expects a generator route, and this one opens
    # the subscription before the stream starts, so a bad id or filter is still a 4xx.
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless stream of `created`, `updated` and `deleted` events",
            "content": {"text/event-stream": {}},
        },
        **error_responses(400, 404, 410, 503),
    },
    summary="Follow images created, updated and deleted, as Server-Sent Events",
)
async def follow_events(
    request: Request,
    condition: EventFilterDep,
    services: ServicesDep,
    scope: ScopeDep,
    linker: LinkerDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="resume right after this event (an EventSource sends it by itself)",
            json_schema_extra=EVENT_ID,
        ),
    ] = None,
    last_event_id_parameter: Annotated[
        str | None,
        Query(
            alias="lastEventId",
            description="as the Last-Event-ID header, for a first connection",
            json_schema_extra=EVENT_ID,
        ),
    ] = None,
) -> EventSourceResponse:
    """Every write through any replica that the filter parameters (as on GET /images; paging and
    sort are ignored) match in your scope, from now on or right after `Last-Event-ID`: `event:`
    is `created`, `updated` or `deleted`, `id:` the event's id, `data:` the image as GET
    /images/{id} gives it (for a delete, as it was). An id older than what is kept is a 410:
    reload, then follow without it. A client that falls 1,000 events behind gets an `error`
    event and the end of the stream; it reconnects with the last id it received."""
    after = last_event_id or last_event_id_parameter
    subscription = await services.events.open(scope, condition, after=after)
    draining: asyncio.Event | None = getattr(request.state, DRAINING, None)
    return EventSourceResponse(_stream(subscription, linker, draining), headers={"Cache-Control": "no-cache"})


async def _stream(subscription: Subscription, linker: Linker, draining: asyncio.Event | None) -> AsyncIterator[bytes]:
    try:
        yield format_sse_event(comment="following", retry=2000)
        idle = 0.0
        while draining is None or not draining.is_set():
            try:
                event = await subscription.next(timeout=DRAIN_CHECK_SECONDS)
            except ServiceError as error:
                yield format_sse_event(event="error", data_str=json.dumps({"code": error.code, "detail": error.detail}))
                return
            if event is None:
                idle += DRAIN_CHECK_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    idle = 0.0
                    yield format_sse_event(comment="ping")
                continue
            idle = 0.0
            data = json.dumps(with_url(document_to_json(dict(event.document)), linker), ensure_ascii=False)
            yield format_sse_event(event=event.kind, id=event.id, data_str=data)
    finally:
        subscription.close()
