"""Subscription resolvers: live events of images, filtered and scoped in the service."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import Enum
from typing import Annotated

import strawberry

from app.domain.query import ImageQuery
from app.graphql.context import Info
from app.graphql.enums import described
from app.graphql.filters import compile_filter
from app.graphql.inputs import ImageFilter
from app.graphql.types import Image


@strawberry.enum(description="What happened to the image.")
class ImageEventKind(Enum):
    CREATED = described("created", "Uploaded or imported at a path no image had")
    UPDATED = described("updated", "Its metadata changed, or its file was replaced")
    DELETED = described("deleted", "Deleted, with its file")


@strawberry.type(description="An image created, updated or deleted.")
class ImageEvent:
    id: str = strawberry.field(
        description="The event's place in the journal every replica follows: pass it as `after` to resume after it"
    )
    kind: ImageEventKind = strawberry.field(description="What happened")
    image: Image = strawberry.field(description="As it now is; for a deleted image, as it was")


@strawberry.type(
    description="Live events, over a WebSocket (graphql-transport-ws at /graphql), of writes through any replica."
)
class Subscription:
    @strawberry.subscription(
        description="Images created, updated (metadata or file) and deleted, by any write path through any "
        "replica, that match `filter` (and `view`) in your scope: from now on, or right after the event `after`. "
        "Every replica gives the same events in the same order; see the README for what is kept to resume from."
    )
    async def image_events(
        self,
        info: Info,
        filter: Annotated[
            ImageFilter | None, strawberry.argument(description="Which images; without it, all of yours")
        ] = None,
        view: Annotated[str | None, strawberry.argument(description="One of your saved views")] = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The id of the last event you received: resume right after it (an error with code GONE "
                "when it is older than what is kept: reload, then subscribe without it)"
            ),
        ] = None,
    ) -> AsyncGenerator[ImageEvent, None]:
        services, scope = info.context.services, info.context.scope
        query = ImageQuery(filter=compile_filter(filter))
        if view is not None:
            query = await services.views.narrow(scope, query, view)
        subscription = await services.events.open(scope, query.filter, after=after)
        try:
            async for event in subscription:
                yield ImageEvent(
                    id=event.id, kind=ImageEventKind(event.kind), image=Image.from_document(event.document)
                )
        finally:
            subscription.close()
