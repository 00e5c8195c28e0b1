"""Every bulk write to the index: PostGIS first, in one transaction, then Redis.

Rows are COPYed into a staging table and merged with set-based statements; the
ids that changed are kept aside so that exactly those are applied to Redis once
PostGIS has committed.  When they are many beside what the index will hold (an
import into an empty index), a fresh generation is filled from PostGIS instead
and made current (:meth:`indexer.hot.HotIndex.rebuild_alone`), which costs far
less per entity.  A crash between the two leaves a difference that
``nearby cache verify`` reports and ``nearby cache rebuild`` mends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import h3.api.basic_int as h3i
import psycopg
import redis
import tzfpy

from indexer.hot import HotIndex, stream_entities
from indexer.model import BASE_RES, Entity

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

CREATE_STAGE = """
CREATE TEMP TABLE nearby_stage (
    id text PRIMARY KEY, kind text, name text, category text, mini_app text,
    lat double precision, lng double precision, h3 bigint, popularity double precision,
    available integer, capacity integer, opening_hours text, tz text, attrs jsonb,
    seen_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE IF NOT EXISTS nearby_changed (
    id text, rev bigint, inserted boolean, deleted boolean
) ON COMMIT PRESERVE ROWS;
TRUNCATE nearby_changed;
"""

_STAGED = ", ".join(f"s.{name}" for name in STAGE_COLUMNS[1:])

# Two kinds of rows leave the stage before the upsert, in one join. Ids held by
# another source are not ours to change: they are reported. Rows the index
# already holds exactly as given need nothing: left in, ON CONFLICT DO UPDATE
# would lock each of them (a WAL record and a dirtied page a row) even though
# its WHERE leaves them as they are, and a re-import would lock the whole source.
TAKE_CONFLICTS_AND_UNCHANGED = f"""
WITH taken AS (
    DELETE FROM nearby_stage s USING entities e
    WHERE e.id = s.id
      AND (e.source <> %(source)s OR ({_OLD}) IS NOT DISTINCT FROM ({_STAGED}))
    RETURNING s.id, e.source <> %(source)s AS conflict
)
SELECT id FROM taken WHERE conflict
"""

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
      AND NOT EXISTS (SELECT 1 FROM nearby_stage s WHERE s.id = e.id)
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


class HotIndexUnavailable(RuntimeError):
    """PostGIS committed but Redis could not be written: rebuild the hot index."""


@dataclass(frozen=True)
class WriteSummary:
    """What one write did.  ``conflicts`` are ids that another source owns."""

    received: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    conflicts: tuple[str, ...] = field(default=())
    #: False when Redis held no index generation: it needs a rebuild.
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


def copy_to_stage(
    cur: psycopg.Cursor, entities: Iterable[Entity], progress: Callable[[int], None] | None
) -> int:
    """COPY entities into the staging table; return how many."""
    count = 0
    with cur.copy(f"COPY nearby_stage ({_COLUMNS}) FROM STDIN") as copy:
        for entity in entities:
            copy.write_row(stage_row(entity))
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
) -> WriteSummary:
    """Upsert ``entities`` of ``source``; with ``replace``, delete the source's others.

    Ids must be unique within one call.  PostGIS changes in one transaction: on
    any error nothing is written.  Then exactly the changed entities go to Redis.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(CREATE_STAGE)
        received = copy_to_stage(cur, entities, progress)
        if replace:  # while the stage still lists every id of the input
            cur.execute(DELETE_MISSING, {"source": source})
        cur.execute(TAKE_CONFLICTS_AND_UNCHANGED, {"source": source})
        conflicts = tuple(sorted(row[0] for row in cur.fetchall()))
        cur.execute(UPSERT, {"source": source})
        cur.execute(COUNT_CHANGES)
        inserted, updated, deleted = cur.fetchone() or (0, 0, 0)
    hot_applied = apply_changes(conn, hot, inserted + updated + deleted)
    return WriteSummary(received, inserted, updated, deleted, conflicts, hot_applied)


def worth_refilling(conn: psycopg.Connection, hot: HotIndex, changes: int) -> bool:
    """Whether ``changes`` committed changes are better written by filling a generation.

    Only when Redis holds a generation (without one, the write reports that
    the index needs a rebuild, as always) and the changes are many: at least
    :data:`BULK_MIN_CHANGES` and more than half of the entities there now are.
    """
    if changes < BULK_MIN_CHANGES or hot.generation() is None:
        return False
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM entities")
        total = (cur.fetchone() or (0,))[0]
    return 2 * changes > total


def apply_changes(conn: psycopg.Connection, hot: HotIndex, changes: int = 0) -> bool:
    """Send the rows listed in ``nearby_changed`` to Redis; False if it holds no index.

    ``changes`` (how many rows are listed) large beside the index: a fresh
    generation is filled from PostGIS and made current instead, unless another
    rebuild is running (the changes are then applied one by one, as it expects).
    """
    answers = []
    try:
        refill = worth_refilling(conn, hot, changes)
        if refill and hot.rebuild_alone(conn, deleted=deleted_changes(conn)) is not None:
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
