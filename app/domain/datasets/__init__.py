"""Tools over a set of images: facets (value counts), cursors (signed keyset paging), saved
views, frozen snapshots, and live events of writes."""
