"""Query resolvers: translate arguments, call the domain, wrap the result. Nothing else."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.domain.datasets.snapshots import IdList as FoundIds
from app.domain.query import ImageQuery
from app.graphql.context import Info
from app.graphql.exports import ExportFormat, ExportFormatArgument, ExportOptions, export_url
from app.graphql.filters import compile_filter, compile_query
from app.graphql.inputs import ImageFilter, SortInput, SystemField
from app.graphql.types import (
    DuplicateGroup,
    Facet,
    IdList,
    Image,
    ImageConnection,
    ImageEdge,
    ImagePage,
    PageInfo,
    Snapshot,
    SnapshotDiff,
    View,
)
from app.models import Image as ImageDocument

ViewArgument = Annotated[
    str | None,
    strawberry.argument(
        description="the name of one of your saved views: its filter is added, and its sort used unless `sort` is given"
    ),
]


async def _narrowed(info: Info, query: ImageQuery, view: str | None) -> ImageQuery:
    if view is None:
        return query
    return await info.context.services.views.narrow(info.context.scope, query, view)


async def _filter(info: Info, image_filter: ImageFilter | None, view: str | None) -> dict[str, Any]:
    return (await _narrowed(info, ImageQuery(filter=compile_filter(image_filter)), view)).filter


@strawberry.type
class Query:
    @strawberry.field(description="Matching images, a page at a time.")
    async def images(
        self,
        info: Info,
        filter: ImageFilter | None = None,
        sort: list[SortInput] | None = None,
        skip: int = 0,
        limit: int = 100,
        view: ViewArgument = None,
    ) -> ImagePage:
        services = info.context.services
        query = compile_query(filter, sort, skip, limit, max_limit=services.settings.query_max_limit)
        query = await _narrowed(info, query, view)
        page = await services.listing.find(info.context.scope, query)
        items = [Image.from_document(document) for document in page.items]
        return ImagePage(total=page.counted, skip=query.skip, limit=query.limit, items=items)

    @strawberry.field(
        description="Matching images as a Relay connection: the `first` after the cursor `after` (an edge's "
        "`cursor` or `pageInfo.endCursor`). Pages never shift however many images are added or deleted meanwhile; "
        "without `sort`, in `_id` order. A cursor works only with the filter and sort it came from, for its user."
    )
    async def images_connection(
        self,
        info: Info,
        filter: ImageFilter | None = None,
        sort: list[SortInput] | None = None,
        first: int = 100,
        after: str | None = None,
        view: ViewArgument = None,
    ) -> ImageConnection:
        services = info.context.services
        query = compile_query(filter, sort, 0, first, max_limit=services.settings.query_max_limit)
        query = replace(await _narrowed(info, query, view), after=after or "")
        page = await services.listing.find(info.context.scope, query, count=False)
        edges = [
            ImageEdge(node=Image.from_document(document), cursor=cursor)
            for document, cursor in zip(page.items, page.cursors or [], strict=True)
        ]
        info_ = PageInfo(
            has_next_page=page.next_cursor is not None,
            has_previous_page=bool(after),
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        )
        return ImageConnection(edges=edges, page_info=info_, query_filter=query.filter)

    @strawberry.field(
        description="The address of a .zip of the matches of `filter` and `view`, or of `snapshot` as it was frozen, "
        "in `format`: download it from REST (GraphQL carries no file)."
    )
    async def export_url(
        self,
        info: Info,
        format: ExportFormatArgument = ExportFormat.LEGACY,
        filter: ImageFilter | None = None,
        view: ViewArgument = None,
        snapshot: str | None = None,
        options: ExportOptions | None = None,
    ) -> str:
        return await export_url(info, format, filter, view, snapshot, options)

    @strawberry.field(description="One image by id.")
    async def image(self, info: Info, id: strawberry.ID) -> Image:
        stored: ImageDocument = await info.context.services.images.get(info.context.scope, str(id))
        return Image.from_document(stored.model_dump(by_alias=True))

    @strawberry.field(description="The distinct top-level metadata keys of the matching images.")
    async def fields(self, info: Info, filter: ImageFilter | None = None, view: ViewArgument = None) -> list[str]:
        return await info.context.services.analytics.fields(info.context.scope, await _filter(info, filter, view))

    @strawberry.field(description="The distinct values of one metadata key (dotted for nested) over the matches.")
    async def field_values(
        self, info: Info, field: str, filter: ImageFilter | None = None, view: ViewArgument = None
    ) -> list[JSON | None]:
        condition = await _filter(info, filter, view)
        return await info.context.services.analytics.field_values(info.context.scope, field, condition)

    @strawberry.field(
        description="How many matching images take each value of one metadata key (dotted for nested), most "
        "frequent first, at most `limit` values; an array counts once for each distinct element."
    )
    async def facets(
        self, info: Info, field: str, filter: ImageFilter | None = None, limit: int = 20, view: ViewArgument = None
    ) -> list[Facet]:
        analytics = info.context.services.analytics
        found = await analytics.facets(info.context.scope, field, await _filter(info, filter, view), limit=limit)
        return [Facet(value=facet.value, count=facet.count) for facet in found]

    @strawberry.field(description="The same for a system field: the content type, or the owner (only yours, per user).")
    async def system_facets(
        self,
        info: Info,
        field: SystemField,
        filter: ImageFilter | None = None,
        limit: int = 20,
        view: ViewArgument = None,
    ) -> list[Facet]:
        analytics = info.context.services.analytics
        condition = await _filter(info, filter, view)
        found = await analytics.system_facets(info.context.scope, field.value, condition, limit=limit)
        return [Facet(value=facet.value, count=facet.count) for facet in found]

    @strawberry.field(description="Your saved views, by name.")
    async def views(self, info: Info) -> list[View]:
        return [View.from_view(view) for view in await info.context.services.views.list(info.context.scope)]

    @strawberry.field(description="One of your saved views.")
    async def view(self, info: Info, name: str) -> View:
        return View.from_view(await info.context.services.views.get(info.context.scope, name))

    @strawberry.field(description="Your snapshots, oldest first.")
    async def snapshots(self, info: Info) -> list[Snapshot]:
        found = await info.context.services.snapshots.list(info.context.scope)
        return [Snapshot.from_snapshot(snapshot) for snapshot in found]

    @strawberry.field(description="One of your snapshots.")
    async def snapshot(self, info: Info, name: str) -> Snapshot:
        found = await info.context.services.snapshots.get(info.context.scope, name, finished=False)
        return Snapshot.from_snapshot(found)

    @strawberry.field(description="What changed from snapshot `name` to `other`: ids added, removed and changed.")
    async def snapshot_diff(self, info: Info, name: str, other: str, limit: int = 1000) -> SnapshotDiff:
        diff = await info.context.services.snapshots.diff(info.context.scope, name, other, limit=limit)

        def ids(found: FoundIds) -> IdList:
            return IdList(count=found.count, ids=[strawberry.ID(i) for i in found.ids])

        return SnapshotDiff(added=ids(diff.added), removed=ids(diff.removed), changed=ids(diff.changed))

    @strawberry.field(description="Groups of images holding identical files (equal checksums), by checksum.")
    async def duplicates(self, info: Info, skip: int = 0, limit: int = 20) -> list[DuplicateGroup]:
        groups = await info.context.services.analytics.duplicates(info.context.scope, skip=skip, limit=limit)
        return [
            DuplicateGroup(checksum=group.checksum, count=group.count, ids=[strawberry.ID(i) for i in group.ids])
            for group in groups
        ]
