"""Query resolvers: translate arguments, call the domain, wrap the result. Nothing else."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.domain.datasets.snapshots import MAX_DIFF_IDS
from app.domain.datasets.snapshots import IdList as FoundIds
from app.domain.images import stored
from app.domain.images.analytics import MAX_FACETS, MAX_GROUPS
from app.domain.query import MAX_SORT_KEYS, ImageQuery
from app.graphql.context import Info
from app.graphql.exports import ExportFormat, ExportFormatArgument, ExportOptions, events_url, export_url
from app.graphql.filters import compile_filter, compile_query
from app.graphql.inputs import FileCheckInput, ImageFilter, SortInput, SystemField
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
    StoredFile,
    View,
)
from app.models import Image as ImageDocument

ViewArgument = Annotated[
    str | None,
    strawberry.argument(
        description="The name of one of your saved views: its filter is added, and its sort used unless `sort` is given"
    ),
]
FilterArgument = Annotated[
    ImageFilter | None, strawberry.argument(description="Which images; without it, all of yours")
]
SortArgument = Annotated[
    list[SortInput] | None,
    strawberry.argument(description=f"Sort keys, most significant first (at most {MAX_SORT_KEYS}); `_id` breaks ties"),
]
PageSize = Annotated[int, strawberry.argument(description="Page size, 1 to QUERY_MAX_LIMIT (10,000 unless configured)")]
FieldArgument = Annotated[str, strawberry.argument(description="A metadata key, dotted for nested ones (camera.iso)")]
FacetLimit = Annotated[
    int, strawberry.argument(description=f"Values listed, the most frequent ones: 1 to {MAX_FACETS:,}")
]


async def _narrowed(info: Info, query: ImageQuery, view: str | None) -> ImageQuery:
    if view is None:
        return query
    return await info.context.services.views.narrow(info.context.scope, query, view)


async def _filter(info: Info, image_filter: ImageFilter | None, view: str | None) -> dict[str, Any]:
    return (await _narrowed(info, ImageQuery(filter=compile_filter(image_filter)), view)).filter


@strawberry.type(
    description="What can be read: images and what their metadata holds, saved views, snapshots, identical files "
    "and export addresses, all within your scope."
)
class Query:
    @strawberry.field(
        description="Matching images, a page at a time: in `sort` order, else the view's, else in the order they "
        "were added."
    )
    async def images(
        self,
        info: Info,
        filter: FilterArgument = None,
        sort: SortArgument = None,
        skip: Annotated[int, strawberry.argument(description="Matches to skip before the page")] = 0,
        limit: PageSize = 100,
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
        filter: FilterArgument = None,
        sort: SortArgument = None,
        first: PageSize = 100,
        after: Annotated[
            str | None,
            strawberry.argument(description="The cursor to continue after; without it, the first page"),
        ] = None,
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
        filter: Annotated[
            ImageFilter | None,
            strawberry.argument(description="Which images; without it (or `view`), all of yours; not with `snapshot`"),
        ] = None,
        view: ViewArgument = None,
        snapshot: Annotated[
            str | None,
            strawberry.argument(
                description="One of your snapshots, exported as it was frozen; not with `filter` or `view`"
            ),
        ] = None,
        options: Annotated[
            ExportOptions | None,
            strawberry.argument(description="How a training format is split and read; none for `LEGACY`"),
        ] = None,
    ) -> str:
        return await export_url(info, format, filter, view, snapshot, options)

    @strawberry.field(
        description="The address of GET /events for `filter` and `view`: the live events of `imageEvents` as "
        "Server-Sent Events, for a browser's EventSource (signed under OIDC, so it needs no header)."
    )
    async def events_url(self, info: Info, filter: FilterArgument = None, view: ViewArgument = None) -> str:
        return await events_url(info, filter, view)

    @strawberry.field(description="One image by id.")
    async def image(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The image's id: 24 hexadecimal characters")],
    ) -> Image:
        stored: ImageDocument = await info.context.services.images.get(info.context.scope, str(id))
        return Image.from_document(stored.model_dump(by_alias=True))

    @strawberry.field(description="The distinct top-level metadata keys of the matching images.")
    async def fields(self, info: Info, filter: FilterArgument = None, view: ViewArgument = None) -> list[str]:
        return await info.context.services.analytics.fields(info.context.scope, await _filter(info, filter, view))

    @strawberry.field(description="The distinct values of one metadata key (dotted for nested) over the matches.")
    async def field_values(
        self, info: Info, field: FieldArgument, filter: FilterArgument = None, view: ViewArgument = None
    ) -> list[JSON | None]:
        condition = await _filter(info, filter, view)
        return await info.context.services.analytics.field_values(info.context.scope, field, condition)

    @strawberry.field(
        description="How many matching images take each value of one metadata key (dotted for nested), most "
        "frequent first, at most `limit` values; an array counts once for each distinct element."
    )
    async def facets(
        self,
        info: Info,
        field: FieldArgument,
        filter: FilterArgument = None,
        limit: FacetLimit = 20,
        view: ViewArgument = None,
    ) -> list[Facet]:
        analytics = info.context.services.analytics
        found = await analytics.facets(info.context.scope, field, await _filter(info, filter, view), limit=limit)
        return [Facet(value=facet.value, count=facet.count) for facet in found]

    @strawberry.field(description="The same for a system field: the content type, or the owner (only yours, per user).")
    async def system_facets(
        self,
        info: Info,
        field: Annotated[SystemField, strawberry.argument(description="The system field whose values are counted")],
        filter: FilterArgument = None,
        limit: FacetLimit = 20,
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
    async def view(self, info: Info, name: Annotated[str, strawberry.argument(description="The view's name")]) -> View:
        return View.from_view(await info.context.services.views.get(info.context.scope, name))

    @strawberry.field(description="Your snapshots, oldest first.")
    async def snapshots(self, info: Info) -> list[Snapshot]:
        found = await info.context.services.snapshots.list(info.context.scope)
        return [Snapshot.from_snapshot(snapshot) for snapshot in found]

    @strawberry.field(description="One of your snapshots.")
    async def snapshot(
        self, info: Info, name: Annotated[str, strawberry.argument(description="The snapshot's name")]
    ) -> Snapshot:
        found = await info.context.services.snapshots.describe(info.context.scope, name)
        return Snapshot.from_snapshot(found)

    @strawberry.field(description="What changed from snapshot `name` to `other`: ids added, removed and changed.")
    async def snapshot_diff(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="The snapshot compared from")],
        other: Annotated[str, strawberry.argument(description="The snapshot compared to, usually a later one")],
        limit: Annotated[
            int, strawberry.argument(description=f"Ids listed per kind, 0 to {MAX_DIFF_IDS:,}; the counts are whole")
        ] = 1000,
    ) -> SnapshotDiff:
        diff = await info.context.services.snapshots.diff(info.context.scope, name, other, limit=limit)

        def ids(found: FoundIds) -> IdList:
            return IdList(count=found.count, ids=[strawberry.ID(i) for i in found.ids])

        return SnapshotDiff(added=ids(diff.added), removed=ids(diff.removed), changed=ids(diff.changed))

    @strawberry.field(
        description="Whether one of your images is stored at each path, which, and whether with the file whose "
        "checksum is given: one answer per path, in order (repeats each time). Only your images are reported; a "
        "path no upload could store is not stored."
    )
    async def stored_files(
        self,
        info: Info,
        files: Annotated[
            list[FileCheckInput], strawberry.argument(description=f"The paths to check, 1 to {stored.MAX_FILES:,}")
        ],
    ) -> list[StoredFile]:
        checks = [stored.FileCheck(file=entry.file, checksum=entry.checksum) for entry in files]
        answers = await info.context.services.images.stored(info.context.scope, checks)
        return [
            StoredFile(
                file=answer.file,
                stored=answer.stored,
                id=None if answer.id is None else strawberry.ID(str(answer.id)),
                checksum=answer.checksum,
                size=answer.size,
                revision=answer.revision,
                same=answer.same,
            )
            for answer in answers
        ]

    @strawberry.field(description="Groups of images holding identical files (equal checksums), by checksum.")
    async def duplicates(
        self,
        info: Info,
        skip: Annotated[int, strawberry.argument(description="Groups to skip")] = 0,
        limit: Annotated[int, strawberry.argument(description=f"Groups per page, 1 to {MAX_GROUPS:,}")] = 20,
    ) -> list[DuplicateGroup]:
        groups = await info.context.services.analytics.duplicates(info.context.scope, skip=skip, limit=limit)
        return [
            DuplicateGroup(checksum=group.checksum, count=group.count, ids=[strawberry.ID(i) for i in group.ids])
            for group in groups
        ]
