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
    kind: ImageEventKind = strawberry.field(description="What happened")
    image: Image = strawberry.field(description="As it now is; for a deleted image, as it was")


@strawberry.type(
    description="Live events, over a WebSocket (graphql-transport-ws at /graphql), of this service process only."
)
class Subscription:
    @strawberry.subscription(
        description="Images created, updated (metadata or file) and deleted from now on, by any write path, that "
        "match `filter` (and `view`) in your scope. Events of this service process only: see the README."
    )
    async def image_events(
        self,
        info: Info,
        filter: Annotated[
            ImageFilter | None, strawberry.argument(description="Which images; without it, all of yours")
        ] = None,
        view: Annotated[str | None, strawberry.argument(description="One of your saved views")] = None,
    ) -> AsyncGenerator[ImageEvent, None]:
        services, scope = info.context.services, info.context.scope
        query = ImageQuery(filter=compile_filter(filter))
        if view is not None:
            query = await services.views.narrow(scope, query, view)
        async for event in services.events.subscribe(scope, query.filter):
            yield ImageEvent(kind=ImageEventKind(event.kind), image=Image.from_document(event.document))
