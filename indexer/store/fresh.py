"""A write into an index that holds nothing yet: loaded once, filled into Redis meanwhile.

The rows are COPYed into a load table of their own first.  When they are many,
a second connection fills a fresh generation from the committed load table
while the first inserts it into the entities (:class:`FreshLoad`), and the
generation is made current once they are committed; otherwise the load table
is merged as any write is (:func:`indexer.store.merge.merge_staged`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass

import psycopg
import redis

from indexer.hot.fill import fill_generation, snapshot_rows
from indexer.hot.index import HotIndex, stream_entities
from indexer.hot.pending import Mark
from indexer.model import Entity
from indexer.store import merge
from indexer.store.errors import HotIndexUnavailable, NothingWritten
from indexer.store.merge import Indexing, Sifter, WriteSummary, merge_staged, no_indexing_bar
from indexer.store.rows import (
    CATALOG_WORDS_LOCK,
    COLUMNS,
    STAGE_TYPES,
    STORED_TEXT,
    copy_rows,
    stage_row,
)

# A write into an index that holds nothing yet is COPYed into a table of its own,
# committed at once (unlogged: it lives for one write), so that a second
# connection can fill a fresh generation from it while the first inserts it into
# the entities.  Each row is numbered: its revision is the number past a base
# taken once the entities are locked against other writers.
LOAD_PREFIX = "nearby_load_"
CREATE_LOAD = f"CREATE UNLOGGED TABLE {{table}} (id text, {STAGE_TYPES}, n bigint)"
INSERT_LOADED = f"""
INSERT INTO entities ({COLUMNS}, source, rev, updated_at, search_text)
SELECT {COLUMNS}, %(source)s, %(base)s + n, %(now)s, {STORED_TEXT} FROM {{table}} s
"""
#: The loaded rows as the entities will hold them (:data:`indexer.hot.fill.FILL_COLUMNS`).
LOADED_FILL_ROWS = f"""
SELECT id, kind, name, category, mini_app, lat, lng, popularity, available, capacity,
       opening_hours, tz, attrs::text, %(source)s::text, %(base)s::bigint + n,
       %(now)s::timestamptz, seen_at, 0::float8,
       {STORED_TEXT}, name_words, category_words
FROM {{table}} s ORDER BY h3
"""
#: Load tables whose connection is gone (a write that crashed).
LEFTOVER_LOADS = f"""
SELECT c.relname FROM pg_class c
WHERE starts_with(c.relname, '{LOAD_PREFIX}') AND c.relkind = 'r' AND pg_table_is_visible(c.oid)
  AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE c.relname = '{LOAD_PREFIX}' || a.pid)
"""


class IndexNotEmpty(Exception):
    """The entities were found not empty once locked: the load is merged instead."""


def holds_nothing(conn: psycopg.Connection, hot: HotIndex) -> bool:
    """Whether PostGIS holds no entity and Redis a generation (to be replaced)."""
    if hot.generation() is None:
        return False
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT NOT EXISTS (SELECT 1 FROM entities)")
        return bool((cur.fetchone() or (False,))[0])


def drop_leftover_loads(conn: psycopg.Connection) -> int:
    """Drop the load tables of writes whose connection is gone; return how many."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(LEFTOVER_LOADS)
        tables = [table for (table,) in cur.fetchall()]
        for table in tables:
            cur.execute(f'DROP TABLE IF EXISTS "{table}"')
    return len(tables)


def write_fresh(
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
    """:func:`~indexer.store.writer.write_entities` into an index that holds nothing.

    The rows go to a load table first.  If they are
    :data:`indexer.store.merge.BULK_MIN_CHANGES` or more and the entities are
    still empty once locked, a fresh generation is filled from the load table
    while the same rows are inserted, and made current once they are committed.
    Otherwise (few rows, a write came first, another build runs) the load table
    is merged as any write is.
    """
    drop_leftover_loads(conn)
    table = f"{LOAD_PREFIX}{conn.info.backend_pid}"
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(CREATE_LOAD.format(table=table))
            numbered = ((*stage_row(entity), n) for n, entity in enumerate(entities, start=1))
            received = copy_rows(cur, table, f"{COLUMNS}, n", numbered, progress)
        if received >= merge.BULK_MIN_CHANGES:
            load = FreshLoad(conn, hot, source, table, received, mark, indexing)
            with suppress(IndexNotEmpty):
                try:
                    filled = hot.build(load.fill, alone=True)
                except redis.RedisError as exc:
                    if load.committed:
                        raise HotIndexUnavailable(f"Redis could not be updated: {exc}") from exc
                    raise NothingWritten(f"Redis failed while the rows were loaded: {exc}") from exc
                if filled is None and load.committed:
                    # Another build took over once the rows were in: as any write would.
                    rows = stream_entities(conn, "WHERE source = %(s)s", {"s": source})
                    hot.apply_row_batches(rows)
            if load.committed:
                return WriteSummary(received, inserted=received)

        def sift_load(sifter: Sifter) -> int:
            sifter.sift(table)
            return received

        return merge_staged(conn, hot, source, sift_load, mark, replace=replace, indexing=indexing)
    finally:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")


@dataclass
class FreshLoad:
    """The rows of a load table, inserted into empty entities and filled into a generation."""

    conn: psycopg.Connection
    hot: HotIndex
    source: str
    table: str
    received: int
    #: Taken in the transaction that commits the rows: the generation becomes
    #: current only after it, and a process that dies in between leaves it.
    mark: Mark
    indexing: Indexing = no_indexing_bar
    #: Whether the entities hold the rows (the generation may still be dropped).
    committed: bool = False

    def fill(self, gen: str) -> int:
        """Insert the rows and fill ``gen`` with them at once, on two connections; commit.

        The entities are locked against other writers first (readers go on) and
        must still be empty (IndexNotEmpty otherwise): every revision handed out
        before is then smaller than the rows' own, and no write can reach Redis
        before the commit but the late copy of one that PostGIS has since undone.
        """
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(CATALOG_WORDS_LOCK)  # before the entities, as a catalog write does
            cur.execute("LOCK TABLE entities IN SHARE ROW EXCLUSIVE MODE")
            cur.execute("SELECT EXISTS (SELECT 1 FROM entities), nextval('entity_rev'), now()")
            taken, base, now = cur.fetchone() or (True, 0, None)
            if taken:
                raise IndexNotEmpty(self.source)
            cur.execute("SELECT setval('entity_rev', %s)", (base + self.received,))
            self.mark.take(cur)
            params = {"source": self.source, "base": base, "now": now}
            query = LOADED_FILL_ROWS.format(table=self.table)
            with (
                psycopg.connect(
                    self.conn.info.dsn, password=self.conn.info.password, connect_timeout=5
                ) as reader,
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-insert") as pool,
            ):
                reader.execute("SET work_mem = '256MB'")  # the sort by cell, in memory
                inserting = pool.submit(cur.execute, INSERT_LOADED.format(table=self.table), params)

                try:
                    with self.indexing(self.received) as advance:

                        def filled(rows: int) -> None:
                            if inserting.done() and inserting.exception():
                                inserting.result()  # the insert's error: stop filling
                            advance(rows)

                        chunks = snapshot_rows(reader, query, params)
                        count = fill_generation(self.hot, reader, gen, filled, chunks=chunks)
                except BaseException:
                    self.conn.cancel_safe()
                    wait([inserting])
                    raise
                inserting.result()
        self.committed = True
        return count
