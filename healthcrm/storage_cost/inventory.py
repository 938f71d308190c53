"""A clinic's stored objects side by side with the rows that name them, in one pass over each.

The store lists keys in UTF-8 byte order (S3's ListObjectsV2, and the local folder sorted alike); the
database is asked for the same order (binary collation: `COLLATE "C"` on PostgreSQL, SQLite's default), so
the two streams are merged like two sorted files: memory stays flat whether a clinic has a thousand objects
or a million, and neither side is held in a set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import ColumnElement

from ..extensions import db
from ..files.storage import ListedObject

# Rows streamed from the database at a time.
ROWS_PER_FETCH = 2000


class KeyOrderError(RuntimeError):
    """One of the streams is not in byte order (a database collation that is not binary): merging it
    would report objects as orphans or missing that are not."""


def in_key_order(column: ColumnElement) -> ColumnElement:
    """`column` for ORDER BY in the order the store lists keys (byte order)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return column.collate("C")
    return column  # SQLite compares text as bytes (BINARY) unless told otherwise


def _checked(items: Iterable, key_of, label: str) -> Iterator:
    previous = None
    for item in items:
        key = key_of(item)
        if previous is not None and key < previous:
            raise KeyOrderError(f"the {label} are not in key order: {key!r} after {previous!r}")
        previous = key
        yield item


def merge(
    listed: Iterable[ListedObject], rows: Iterable[tuple[str, Any]]
) -> Iterator[tuple[str, ListedObject | None, list[Any]]]:
    """Each key of either stream once, in order, with its stored object (None when not stored) and the
    values of the rows that name it ([] when none does). Both streams must be in byte order of the key;
    rows may name a key more than once (versions sharing a preview)."""
    objects = iter(_checked(listed, lambda o: o.key, "stored objects"))
    named = iter(_checked(rows, lambda r: r[0], "database keys"))
    obj = next(objects, None)
    row = next(named, None)
    while obj is not None or row is not None:
        if row is None or (obj is not None and obj.key < row[0]):
            yield obj.key, obj, []
            obj = next(objects, None)
            continue
        key = row[0]
        values = []
        while row is not None and row[0] == key:
            values.append(row[1])
            row = next(named, None)
        if obj is not None and obj.key == key:
            yield key, obj, values
            obj = next(objects, None)
        else:
            yield key, None, values


def stream(statement) -> Iterator[tuple[str, Any]]:
    """The rows of `statement` (key, value), fetched a batch at a time."""
    result = db.session.execute(statement.execution_options(yield_per=ROWS_PER_FETCH))
    yield from result
