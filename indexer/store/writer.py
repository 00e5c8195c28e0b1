"""Every bulk write to the index: PostGIS first, in one transaction, then Redis.

Rows are COPYed, chunk by chunk in a thread of their own while the next chunk is
read, into a staging table (ids of other sources and rows the index holds as
given left out) and merged with set-based statements; the ids that changed are
kept aside so that exactly those are applied to Redis once PostGIS has
committed.  When they are many beside what the index will hold, a fresh
generation is filled from PostGIS instead and made current
(:meth:`indexer.hot.index.HotIndex.rebuild_alone`), which costs far less per entity.
Into an index that holds nothing yet, the two run at once: a second connection
fills the generation from the committed load table while the first inserts it
(:class:`FreshLoad`).  A write first makes sure that Redis holds a generation
to write to (:func:`indexer.hot.heal.ensure_index`: a deployment's first write, a
Redis that came back empty), and leaves a mark in the transaction that commits
it, deleted once Redis holds the write (:mod:`indexer.hot.pending`): a process that
dies between the two leaves the mark, and the next one rebuilds the hot index.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from dataclasses import replace as replace_field
from functools import lru_cache

import h3.api.basic_int as h3i
import psycopg
import redis
import tzfpy

from indexer.hot.fill import fill_generation, quick_handoffs, snapshot_rows
from indexer.hot.heal import ensure_index
from indexer.hot.index import HotIndex, chunked, stream_entities
from indexer.hot.pending import Mark, marked
from indexer.model import BASE_RES, Entity
from indexer.progress import ProgressBar

STAGE_COLUMNS = (
    "id",
    "kind",
    "name",
    "category",
    "mini_app",
    "lat",
    "lng",
    "h3",
    "popularity",
    "available",
    "capacity",
    "opening_hours",
    "tz",
    "attrs",
    "seen_at",
)
_COLUMNS = ", ".join(STAGE_COLUMNS)
_CHANGE_SET = ", ".join(f"{name} = EXCLUDED.{name}" for name in STAGE_COLUMNS[1:])
_OLD = ", ".join(f"e.{name}" for name in STAGE_COLUMNS[1:])
_NEW = ", ".join(f"EXCLUDED.{name}" for name in STAGE_COLUMNS[1:])

_STAGE_TYPES = """
    kind text, name text, category text, mini_app text,
    lat double precision, lng double precision, h3 bigint, popularity double precision,
    available integer, capacity integer, opening_hours text, tz text, attrs jsonb,
    seen_at timestamptz
"""
CREATE_STAGE = f"""
CREATE TEMP TABLE nearby_stage (id text PRIMARY KEY, {_STAGE_TYPES}) ON COMMIT DROP;
CREATE TEMP TABLE nearby_chunk (id text, {_STAGE_TYPES}) ON COMMIT DROP;
CREATE TEMP TABLE nearby_ids (id text) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS nearby_changed (
    id text, rev bigint, inserted boolean, deleted boolean
) ON COMMIT PRESERVE ROWS;
TRUNCATE nearby_changed;
"""
#: Rows COPYed into the stage's chunk table at a time: each chunk is compared with
#: the index while the next one is read.
STAGE_CHUNK = 20_000

_STAGED = ", ".join(f"s.{name}" for name in STAGE_COLUMNS[1:])

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
STAGE_THE_REST = f"INSERT INTO nearby_stage ({_COLUMNS}) SELECT {_COLUMNS} FROM {{table}}"
KEEP_IDS = "INSERT INTO nearby_ids SELECT id FROM {table}"

UPSERT = f"""
WITH up AS (
    INSERT INTO entities AS e ({_COLUMNS}, source)
    SELECT {_COLUMNS}, %(source)s FROM nearby_stage
    ON CONFLICT (id) DO UPDATE SET {_CHANGE_SET},
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


# A write into an index that holds nothing yet is COPYed into a table of its own,
# committed at once (unlogged: it lives for one write), so that a second
# connection can fill a fresh generation from it while the first inserts it into
# the entities.  Each row is numbered: its revision is the number past a base
# taken once the entities are locked against other writers.
LOAD_PREFIX = "nearby_load_"
CREATE_LOAD = f"CREATE UNLOGGED TABLE {{table}} (id text, {_STAGE_TYPES}, n bigint)"
INSERT_LOADED = f"""
INSERT INTO entities ({_COLUMNS}, source, rev, updated_at)
SELECT {_COLUMNS}, %(source)s, %(base)s + n, %(now)s FROM {{table}}
"""
#: The loaded rows as the entities will hold them (:data:`indexer.hot.fill.FILL_COLUMNS`).
LOADED_FILL_ROWS = """
SELECT id, kind, name, category, mini_app, lat, lng, popularity, available, capacity,
       opening_hours, tz, attrs::text, %(source)s::text, %(base)s::bigint + n,
       %(now)s::timestamptz, seen_at
FROM {table} ORDER BY h3
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


#: Given how many entities a fill will write, its progress bar: what a write
#: shows while it fills a generation.
Indexing = Callable[[int], ProgressBar]


def no_indexing_bar(_total: int) -> ProgressBar:
    """No progress shown while a generation is filled."""
    return nullcontext(lambda _n: None)


class NothingWritten(RuntimeError):
    """A write failed before PostGIS committed anything (Redis refused the fill)."""


class HotIndexUnavailable(RuntimeError):
    """PostGIS committed but Redis could not be written: the write's mark stays, and the
    next write, feed sync, server start or healing check rebuilds the hot index."""


@dataclass(frozen=True)
class WriteSummary:
    """What one write did.  ``conflicts`` are ids that another source owns."""

    received: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: tuple[str, ...] = field(default=())
    #: False when Redis lost its generation during the write and no rebuild has mended it
    #: yet (one that another process runs, or the next write's).
    hot_applied: bool = True

    @property
    def unchanged(self) -> int:
        """Rows that were already in the index exactly as given."""
        return self.received - len(self.conflicts) - self.inserted - self.updated


@lru_cache(maxsize=65536)
def _tz_of_cell(cell: int) -> str:
    lat, lng = h3i.cell_to_latlng(cell)
    return tzfpy.get_tz(lng, lat)


def timezone_of(lat: float, lng: float) -> str:
    """The IANA time zone at a point (looked up once per res-7 cell, ~5 km²)."""
    return _tz_of_cell(h3i.latlng_to_cell(lat, lng, 7)) or tzfpy.get_tz(lng, lat)


def stage_row(entity: Entity) -> tuple[object, ...]:
    """The staging-table row of an entity: its base cell and time zone computed."""
    return (
        entity.id,
        entity.kind,
        entity.name,
        entity.category,
        entity.mini_app,
        entity.lat,
        entity.lng,
        h3i.latlng_to_cell(entity.lat, entity.lng, BASE_RES),
        entity.popularity,
        entity.available,
        entity.capacity,
        entity.opening_hours,
        timezone_of(entity.lat, entity.lng) if entity.opening_hours else None,
        # Most listings carry no extra columns: skip the encoder for them.
        json.dumps(entity.attrs, ensure_ascii=False, default=str) if entity.attrs else "{}",
        entity.seen_at,
    )


def copy_rows(
    cur: psycopg.Cursor,
    table: str,
    columns: str,
    rows: Iterable[Sequence[object]],
    progress: Callable[[int], None] | None,
) -> int:
    """COPY rows into ``table``; return how many."""
    count = 0
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
            if progress and count % 5000 == 0:
                progress(5000)
    if progress and count % 5000:
        progress(count % 5000)
    return count


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
        if summary.hot_applied:
            mark.clear()
    if not summary.hot_applied and ensure_index(conn, hot) is not None:
        summary = replace_field(summary, hot_applied=True)
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
    return merge(
        conn,
        hot,
        source,
        lambda sift: stage_chunks(sift, rows, progress),
        mark,
        replace=replace,
        indexing=indexing,
    )


def merge(
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
    hot_applied = apply_changes(conn, hot, inserted + updated + deleted, indexing)
    conflicts = tuple(sorted(sifter.conflicts))
    return WriteSummary(received, inserted, updated, deleted, conflicts, hot_applied)


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
        copy_rows(self.cur, "nearby_chunk", _COLUMNS, rows, None)
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


# -- a write into an empty index -----------------------------------------------------


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
    """:func:`write_entities` into an index that holds nothing.

    The rows go to a load table first.  If they are :data:`BULK_MIN_CHANGES` or
    more and the entities are still empty once locked, a fresh generation is
    filled from the load table while the same rows are inserted, and made
    current once they are committed.  Otherwise (few rows, a write came first,
    another build runs) the load table is merged as any write is.
    """
    drop_leftover_loads(conn)
    table = f"{LOAD_PREFIX}{conn.info.backend_pid}"
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(CREATE_LOAD.format(table=table))
            numbered = ((*stage_row(entity), n) for n, entity in enumerate(entities, start=1))
            received = copy_rows(cur, table, f"{_COLUMNS}, n", numbered, progress)
        if received >= BULK_MIN_CHANGES:
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

        return merge(conn, hot, source, sift_load, mark, replace=replace, indexing=indexing)
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
    """Send the rows listed in ``nearby_changed`` to Redis; False if it holds no index.

    ``changes`` (how many rows are listed) large beside the index: a fresh
    generation is filled from PostGIS and made current instead, unless another
    rebuild is running (the changes are then applied one by one, as it expects).
    """
    answers = []
    try:
        total = refill_size(conn, hot, changes)
        if total:
            with indexing(total) as advance:
                if hot.rebuild_alone(conn, advance, deleted_changes(conn)) is not None:
                    return True
        changed = stream_entities(
            conn, "JOIN nearby_changed c USING (id) WHERE NOT c.deleted ORDER BY entities.id"
        )
        answers.append(hot.apply_row_batches(changed))
        answers.extend(hot.apply_deletes(batch) for batch in deleted_changes(conn))
    except redis.RedisError as exc:
        raise HotIndexUnavailable(f"Redis could not be updated: {exc}") from exc
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS nearby_changed")
        conn.commit()
    return all(answer >= 0 for answer in answers)


def deleted_changes(conn: psycopg.Connection) -> Iterator[list[tuple[str, int]]]:
    """The (id, rev) of the rows that ``nearby_changed`` lists as deleted, in batches."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, rev FROM nearby_changed WHERE deleted ORDER BY id")
        while batch := cur.fetchmany(5000):
            yield batch


def delete_entities(conn: psycopg.Connection, hot: HotIndex, ids: Iterable[str]) -> int:
    """Delete entities by id from PostGIS, then from Redis; return how many existed."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM entities WHERE id = ANY(%s) RETURNING id, nextval('entity_rev')",
            (list(ids),),
        )
        deleted = cur.fetchall()
    try:
        hot.apply_deletes(deleted)
    except redis.RedisError as exc:
        raise HotIndexUnavailable(f"Redis could not be updated: {exc}") from exc
    return len(deleted)
