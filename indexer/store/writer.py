"""Every bulk write to the index: PostGIS first, in one transaction, then Redis.

A write is merged into the entities (:mod:`indexer.store.merge`), or, into an
index that holds nothing yet, loaded at once while a fresh generation is filled
from it (:mod:`indexer.store.fresh`).  A write first makes sure that Redis holds
a generation to write to (:func:`indexer.hot.heal.ensure_index`: a deployment's
first write, a Redis that came back empty), and leaves a mark in the transaction
that commits it, deleted once Redis holds the write (:mod:`indexer.hot.pending`):
a process that dies between the two leaves the mark, and the next one rebuilds
the hot index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace as replace_field

import psycopg

from indexer.hot.heal import ensure_index
from indexer.hot.index import HotIndex
from indexer.hot.pending import Mark, marked
from indexer.model import Entity
from indexer.store.errors import HotIndexUnavailable, NothingWritten
from indexer.store.fresh import FreshLoad, drop_leftover_loads, holds_nothing, write_fresh
from indexer.store.merge import (
    Indexing,
    WriteSummary,
    merge_staged,
    no_indexing_bar,
    stage_chunks,
)
from indexer.store.rows import stage_row, timezone_of

__all__ = [
    "FreshLoad",
    "HotIndexUnavailable",
    "Indexing",
    "NothingWritten",
    "WriteSummary",
    "drop_leftover_loads",
    "no_indexing_bar",
    "timezone_of",
    "write_entities",
]


def write_entities(
    conn: psycopg.Connection,
    hot: HotIndex,
    source: str,
    entities: Iterable[Entity],
    *,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
    indexing: Indexing = no_indexing_bar,
) -> WriteSummary:
    """Upsert ``entities`` of ``source``; with ``replace``, delete the source's others.

    Ids must be unique within one call.  PostGIS changes in one transaction: on
    any error nothing is written.  Then exactly the changed entities go to Redis.
    ``progress`` counts the rows read; ``indexing`` shows a generation's fill.
    Redis without a generation gets one first (filled from PostGIS); should
    Redis lose it during the write, the write's mark makes a rebuild mend it.
    """
    ensure_index(conn, hot)
    with marked(conn, source) as mark:
        summary = write_marked(
            conn, hot, source, entities, mark, replace=replace, progress=progress, indexing=indexing
        )
        if not summary.no_generation:
            mark.clear()
    if summary.no_generation and ensure_index(conn, hot) is not None:
        summary = replace_field(summary, no_generation=False)
    return summary


def write_marked(
    conn: psycopg.Connection,
    hot: HotIndex,
    source: str,
    entities: Iterable[Entity],
    mark: Mark,
    *,
    replace: bool,
    progress: Callable[[int], None] | None,
    indexing: Indexing,
) -> WriteSummary:
    """:func:`write_entities`' write itself, ``mark`` taken in the transaction that commits."""
    if holds_nothing(conn, hot):
        return write_fresh(
            conn, hot, source, entities, mark, replace=replace, progress=progress, indexing=indexing
        )
    rows = map(stage_row, entities)
    return merge_staged(
        conn,
        hot,
        source,
        lambda sift: stage_chunks(sift, rows, progress),
        mark,
        replace=replace,
        indexing=indexing,
    )
