"""Subscription resolvers: live events of images, filtered and scoped in the service."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import Enum
from typing import Annotated

import strawberry

from app.domain.query import ImageQuery
from app.graphql.context import Info
from app.graphql.filters import compile_filter
from app.graphql.inputs import ImageFilter
from app.graphql.types import Image


@strawberry.enum(description="What happened to the image.")
class ImageEventKind(Enum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@strawberry.type(description="An image created, updated or deleted.")
class ImageEvent:
    kind: ImageEventKind
    image: Image = strawberry.field(description="as it now is; for a deleted image, as it was")


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Images created, updated (metadata or file) and deleted from now on, by any write path, that "
        "match `filter` (and `view`) in your scope. Events of this service process only: see the README."
    )
    async def image_events(
        self,
        info: Info,
        filter: ImageFilter | None = None,
        view: Annotated[str | None, strawberry.argument(description="one of your saved views")] = None,
    ) -> AsyncGenerator[ImageEvent, None]:
        services, scope = info.context.services, info.context.scope
        query = ImageQuery(filter=compile_filter(filter))
        if view is not None:
            query = await services.views.narrow(scope, query, view)
        async for event in services.events.subscribe(scope, query.filter):
            yield ImageEvent(kind=ImageEventKind(event.kind), image=Image.from_document(event.document))
