"""A write merged into the index: rows staged, diffed with the entities, then sent to Redis.

Rows are COPYed, chunk by chunk in a thread of their own while the next chunk is
read, into a staging table (ids of other sources and rows the index holds as
given left out) and merged with set-based statements; the ids that changed are
kept aside so that exactly those are applied to Redis once PostGIS has
committed.  When they are many beside what the index will hold, a fresh
generation is filled from PostGIS instead and made current
(:meth:`indexer.hot.index.HotIndex.rebuild_alone`), which costs far less per entity.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field

import psycopg
import redis

from indexer.hot.client import NoGeneration
from indexer.hot.fill import quick_handoffs
from indexer.hot.index import HotIndex, chunked, stream_entities
from indexer.hot.pending import Mark
from indexer.progress import ProgressBar
from indexer.store.errors import HotIndexUnavailable
from indexer.store.rows import (
    CATALOG_WORDS_LOCK,
    COLUMNS,
    STAGE_COLUMNS,
    STAGE_TYPES,
    STORED_TEXT,
    copy_rows,
)

_CHANGE_SET = ", ".join(f"{name} = EXCLUDED.{name}" for name in STAGE_COLUMNS[1:])
_OLD = ", ".join(f"e.{name}" for name in STAGE_COLUMNS[1:])
_NEW = ", ".join(f"EXCLUDED.{name}" for name in STAGE_COLUMNS[1:])
_STAGED = ", ".join(f"s.{name}" for name in STAGE_COLUMNS[1:])

CREATE_STAGE = f"""
CREATE TEMP TABLE nearby_stage (id text PRIMARY KEY, {STAGE_TYPES}) ON COMMIT DROP;
CREATE TEMP TABLE nearby_chunk (id text, {STAGE_TYPES}) ON COMMIT DROP;
CREATE TEMP TABLE nearby_ids (id text) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS nearby_changed (
    id text, rev bigint, inserted boolean, deleted boolean
) ON COMMIT PRESERVE ROWS;
TRUNCATE nearby_changed;
"""
#: Rows COPYed into the stage's chunk table at a time: each chunk is compared with
#: the index while the next one is read.
STAGE_CHUNK = 20_000

# Two kinds of rows stay out of the stage, in one join. Ids held by another
# source are not ours to change: they are reported. Rows the index already holds
# exactly as given need nothing: left in, ON CONFLICT DO UPDATE would lock each
# of them (a WAL record and a dirtied page a row) even though its WHERE leaves
# them as they are, and a re-import would lock the whole source.
TAKE_CONFLICTS_AND_UNCHANGED = f"""
WITH taken AS (
    DELETE FROM {{table}} s USING entities e
    WHERE e.id = s.id
      AND (e.source <> %(source)s OR ({_OLD}) IS NOT DISTINCT FROM ({_STAGED}))
    RETURNING s.id, e.source <> %(source)s AS conflict
)
SELECT id FROM taken WHERE conflict
"""
STAGE_THE_REST = f"INSERT INTO nearby_stage ({COLUMNS}) SELECT {COLUMNS} FROM {{table}}"
KEEP_IDS = "INSERT INTO nearby_ids SELECT id FROM {table}"

UPSERT = f"""
WITH up AS (
    INSERT INTO entities AS e ({COLUMNS}, source, search_text)
    SELECT {COLUMNS}, %(source)s, {STORED_TEXT} FROM nearby_stage s
    ON CONFLICT (id) DO UPDATE SET {_CHANGE_SET}, search_text = EXCLUDED.search_text,
        rev = nextval('entity_rev'), updated_at = now()
    WHERE e.source = EXCLUDED.source AND ({_OLD}) IS DISTINCT FROM ({_NEW})
    RETURNING e.id, e.rev, (xmax = 0) AS inserted
)
INSERT INTO nearby_changed SELECT id, rev, inserted, false FROM up
"""

DELETE_MISSING = """
WITH gone AS (
    DELETE FROM entities e
    WHERE e.source = %(source)s
      AND NOT EXISTS (SELECT 1 FROM nearby_ids i WHERE i.id = e.id)
    RETURNING e.id
)
INSERT INTO nearby_changed SELECT id, nextval('entity_rev'), false, true FROM gone
"""

#: A write changing at least this many entities, and more than half of those the
#: index holds after it, fills a fresh generation instead of applying each change.
BULK_MIN_CHANGES = 10_000

COUNT_CHANGES = """
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted AND NOT deleted),
       count(*) FILTER (WHERE deleted)
FROM nearby_changed
"""
#: Deleted ids sent to Redis at a time.
DELETE_BATCH = 5000

#: Given how many entities a fill will write, its progress bar: what a write
#: shows while it fills a generation.
Indexing = Callable[[int], ProgressBar]


def no_indexing_bar(_total: int) -> ProgressBar:
    """No progress shown while a generation is filled."""
    return nullcontext(lambda _n: None)


@dataclass(frozen=True)
class WriteSummary:
    """What one write did.  ``conflicts`` are ids that another source owns."""

    received: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: tuple[str, ...] = field(default=())
    #: True when Redis held no generation to apply the write to, and no rebuild has
    #: mended that yet (one that another process runs, or the next write's).
    no_generation: bool = False

    @property
    def unchanged(self) -> int:
        """Rows that were already in the index exactly as given."""
        return self.received - len(self.conflicts) - self.inserted - self.updated


def merge_staged(
    conn: psycopg.Connection,
    hot: HotIndex,
    source: str,
    stage: Callable[[Sifter], int],
    mark: Mark,
    *,
    replace: bool,
    indexing: Indexing = no_indexing_bar,
) -> WriteSummary:
    """Merge the rows that ``stage`` sifts into the staging table (it returns how many);
    ``mark`` is taken in the transaction that commits them, if they change anything."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(CATALOG_WORDS_LOCK)
        cur.execute(CREATE_STAGE)
        sifter = Sifter(cur, source, replace)
        received = stage(sifter)
        if replace:
            cur.execute(DELETE_MISSING, {"source": source})
        cur.execute(UPSERT, {"source": source})
        cur.execute(COUNT_CHANGES)
        inserted, updated, deleted = cur.fetchone() or (0, 0, 0)
        if inserted or updated or deleted:
            mark.take(cur)
    no_generation = apply_changes(conn, hot, inserted + updated + deleted, indexing)
    conflicts = tuple(sorted(sifter.conflicts))
    return WriteSummary(received, inserted, updated, deleted, conflicts, no_generation)


@dataclass
class Sifter:
    """Moves rows of a table into the stage, but those of other sources' ids (kept
    as conflicts) and those the index holds as they are; with ``replace``, every
    id is kept aside first (the source's others are deleted)."""

    cur: psycopg.Cursor
    source: str
    replace: bool
    conflicts: list[str] = field(default_factory=list)

    def sift(self, table: str) -> None:
        """Move the rows of ``table`` (which keeps what is not staged)."""
        if self.replace:
            self.cur.execute(KEEP_IDS.format(table=table))
        self.cur.execute(TAKE_CONFLICTS_AND_UNCHANGED.format(table=table), {"source": self.source})
        self.conflicts += (row[0] for row in self.cur.fetchall())
        self.cur.execute(STAGE_THE_REST.format(table=table))

    def chunk(self, rows: list[tuple[object, ...]]) -> None:
        """COPY rows into the chunk table and sift them."""
        copy_rows(self.cur, "nearby_chunk", COLUMNS, rows, None)
        self.sift("nearby_chunk")
        self.cur.execute("TRUNCATE nearby_chunk")


def stage_chunks(
    sifter: Sifter,
    rows: Iterable[tuple[object, ...]],
    progress: Callable[[int], None] | None,
) -> int:
    """Sift ``rows`` in chunks of :data:`STAGE_CHUNK`; return how many.

    A thread of its own COPYs and sifts each chunk (PostgreSQL working on it)
    while this one reads the next; at most two wait between them.
    """
    waiting: queue.Queue[list[tuple[object, ...]] | None] = queue.Queue(maxsize=2)

    def consume() -> None:
        while (chunk := waiting.get()) is not None:
            sifter.chunk(chunk)

    def hand(chunk: list[tuple[object, ...]] | None) -> None:
        while True:
            try:
                waiting.put(chunk, timeout=0.05)
                return
            except queue.Full:
                if worker.done():
                    worker.result()  # its error
                    return

    count = 0
    with quick_handoffs(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage") as pool:
        worker = pool.submit(consume)
        try:
            for chunk in chunked(rows, STAGE_CHUNK):
                hand(chunk)
                count += len(chunk)
                if progress:
                    progress(len(chunk))
        finally:
            hand(None)
        worker.result()
    return count


def refill_size(conn: psycopg.Connection, hot: HotIndex, changes: int) -> int:
    """How many entities a fill would write, if ``changes`` committed changes are better
    written by filling a generation; 0 if not.

    Only when Redis holds a generation (without one, the write's mark makes a
    rebuild mend it afterwards) and the changes are many: at least
    :data:`BULK_MIN_CHANGES` and more than half of the entities there now are.
    """
    if changes < BULK_MIN_CHANGES or hot.generation() is None:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM entities")
        total = int((cur.fetchone() or (0,))[0])
    return total if 2 * changes > total else 0


def apply_changes(
    conn: psycopg.Connection,
    hot: HotIndex,
    changes: int = 0,
    indexing: Indexing = no_indexing_bar,
) -> bool:
    """Send the rows listed in ``nearby_changed`` to Redis; True if it holds no generation.

    ``changes`` (how many rows are listed) large beside the index: a fresh
    generation is filled from PostGIS and made current instead, unless another
    rebuild is running (the changes are then applied one by one, as it expects).
    """
    try:
        total = refill_size(conn, hot, changes)
        if total:
            with indexing(total) as advance:
                if hot.rebuild_alone(conn, advance, deleted_changes(conn)) is not None:
                    return False
        changed = stream_entities(
            conn, "JOIN nearby_changed c USING (id) WHERE NOT c.deleted ORDER BY entities.id"
        )
        hot.apply_row_batches(changed)
        for batch in deleted_changes(conn):
            hot.apply_deletes(batch)
    except NoGeneration:
        return True
    except redis.RedisError as exc:
        raise HotIndexUnavailable(f"Redis could not be updated: {exc}") from exc
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS nearby_changed")
        conn.commit()
    return False


def deleted_changes(conn: psycopg.Connection) -> Iterator[list[tuple[str, int]]]:
    """The (id, rev) of the rows that ``nearby_changed`` lists as deleted, in batches."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, rev FROM nearby_changed WHERE deleted ORDER BY id")
        while batch := cur.fetchmany(DELETE_BATCH):
            yield batch
