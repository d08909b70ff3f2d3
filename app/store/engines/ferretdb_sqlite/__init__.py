"""FerretDB's SQLite files, when the service knows where they are (`make run` starts it so).

What the wire protocol cannot do on the embedded FerretDB 1.24/SQLite, and this package does
from its files: index what FerretDB looks ids up by, and tell the operator when to move to
MongoDB (`tuning`); count matches, find pages, walk matches and list `/fields` in SQL instead of
having FerretDB decode every document (`shortcuts` and `walk`, with `sql` translating filters);
the engine the store uses (`engine`). All of it is best effort: without it the service is
correct, only slower or silent.
"""
