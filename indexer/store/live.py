"""Pushed positions and availability of live entities, applied to PostGIS then Redis.

An operator that pushes instead of publishing a feed sends batches of items.
Every item is checked, on its own, before anything is written
(:mod:`indexer.store.items`): the good ones
are then applied to PostGIS with one set-based statement per chunk of 250 (in
id order, returning the changed rows), each chunk then to Redis through the
hot index, whose script moves an entity between cells atomically, while the
next chunk's statement runs. Every item not applied comes back with its index
in the batch and why, those of a chunk PostgreSQL failed on included.

Durability: pushed state is ephemeral, so these commits do not wait for the
WAL flush (``synchronous_commit = off``). A PostgreSQL crash may lose the
batches acknowledged in its last ~0.6 s; run ``nearby cache rebuild`` after
one, since Redis may hold them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import h3.api.basic_int as h3i
import psycopg
import psycopg.errors
import redis
from psycopg.rows import dict_row

from indexer.hot.client import NoGeneration
from indexer.hot.index import HotIndex, chunked, row_columns
from indexer.hot.layout import SEP
from indexer.hot.pending import leave_mark
from indexer.model import BASE_RES, LIVE_KINDS
from indexer.store.db import retrying_deadlocks
from indexer.store.errors import HotIndexUnavailable
from indexer.store.items import (
    MAX_COUNT,
    MAX_ID_LENGTH,
    MAX_ITEMS,
    Availability,
    ItemError,
    Position,
    check_availability,
    check_items,
    check_position,
)

__all__ = [
    "MAX_COUNT",
    "MAX_ID_LENGTH",
    "MAX_ITEMS",
    "ItemError",
    "PushResult",
    "push_availability",
    "push_positions",
]

#: Items per UPDATE statement: a batch's chunks go to PostGIS one after another
#: while the previous chunk goes to Redis (see :func:`apply_in_chunks`).
CHUNK_ITEMS = 250
#: Why an item of a chunk that PostgreSQL failed on (after earlier chunks committed) is
#: not applied; sending it again is safe.
DATABASE_FAILED = "not applied: the database failed on this part of the batch"
#: Why an item changed nothing, when what PostGIS holds for it could not be read.
NOT_READ = "not applied (unknown id, not live, or older than the state held)"

log = logging.getLogger(__name__)

# What the hot index needs of each changed row (attrs as jsonb text: cheaper to
# read than to parse), and the base cell the row had before the change. A
# subquery in RETURNING reads the statement's snapshot, which does not see the
# statement's own changes: the old row. (Under a concurrent change of the same
# row it may be the version before that one; old_h3 only feeds the ``moved``
# count.)
_RETURNING = row_columns()
_OLD_H3 = "(SELECT o.h3 FROM entities o WHERE o.id = e.id) AS old_h3"

# The input columns travel as one text parameter each (ids joined by U+001F,
# which ids may not hold; numbers and times by commas, '' for NULL): far
# cheaper than psycopg's quoting of each array element.
_ids = "string_to_array(%(ids)s, E'\\x1f')"


def _array(name: str, sql_type: str) -> str:
    return f"string_to_array(%({name})s, ',', '')::{sql_type}[]"


# One UPDATE … FROM unnest(columns): each input row probes the primary key,
# and only rows that changed come back.
# Items that were refused are looked up afterwards (REFUSED_SQL), and only when
# there are some.
POSITIONS_SQL = f"""
UPDATE entities e
SET lat = i.lat, lng = i.lng, h3 = i.h3, available = coalesce(i.available, e.available),
    seen_at = i.seen_at, rev = nextval('entity_rev'), updated_at = now()
FROM unnest({_ids}, {_array("lats", "float8")}, {_array("lngs", "float8")},
            {_array("cells", "int8")}, {_array("available", "int4")},
            {_array("seen", "timestamptz")})
    AS i(id, lat, lng, h3, available, seen_at)
WHERE e.id = i.id AND e.kind IN ('bike', 'charger')
  AND (e.seen_at IS NULL OR e.seen_at <= i.seen_at)
  AND (i.available IS NULL OR e.capacity IS NULL OR i.available <= e.capacity)
RETURNING {_RETURNING}, {_OLD_H3}
"""

AVAILABILITY_SQL = f"""
UPDATE entities e
SET available = i.available, capacity = coalesce(i.capacity, e.capacity),
    seen_at = i.seen_at, rev = nextval('entity_rev'), updated_at = now()
FROM unnest({_ids}, {_array("available", "int4")}, {_array("capacity", "int4")},
            {_array("seen", "timestamptz")})
    AS i(id, available, capacity, seen_at)
WHERE e.id = i.id AND e.kind IN ('bike', 'charger')
  AND (e.seen_at IS NULL OR e.seen_at <= i.seen_at)
  AND i.available <= coalesce(i.capacity, e.capacity, i.available)
RETURNING {_RETURNING}, e.h3 AS old_h3
"""

REFUSED_SQL = "SELECT id, kind, capacity FROM entities WHERE id = ANY(%(ids)s)"

# Pushed state is ephemeral (the next push replaces it), so its commits do not
# wait for the WAL flush. After a PostgreSQL crash the batches acknowledged in
# the last moment (up to 3 x wal_writer_delay, 0.6 s by default) may be lost,
# and Redis may hold them: `nearby cache rebuild` after such a crash.
ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"


@dataclass(frozen=True)
class PushResult:
    """What a batch did: how many applied, how many changed cell, and the errors."""

    received: int
    applied: int
    moved: int
    errors: tuple[ItemError, ...]
    #: Redis held no generation to write to: PostGIS has the items, and the hot
    #: index needs a rebuild (which the API's healing starts).
    hot_missing: bool = False


@dataclass(frozen=True)
class Applied:
    """What a batch's chunks did: the changed rows, the values a failed chunk left
    unapplied, and whether Redis held no generation for some rows."""

    rows: list[dict[str, Any]]
    unapplied: list[Any]
    hot_missing: bool = False


def refusal(
    index: int, entity_id: str, held: tuple[str, int | None] | None, available: int | None
) -> ItemError:
    """Why a checked item was not applied, from the (kind, capacity) held for its id."""
    if held is None:
        return ItemError(index, entity_id, "unknown id", "id")
    kind, capacity = held
    if kind not in LIVE_KINDS:
        return ItemError(index, entity_id, f"a {kind} does not take pushes", "id")
    if available is not None and capacity is not None and available > capacity:
        return ItemError(index, entity_id, f"available exceeds capacity {capacity}", "available")
    return ItemError(index, entity_id, "older than the state held (seen_at)", "seen_at")


def run_batch(
    conn: psycopg.Connection, sql: str, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Run one update in its own transaction (commit not waiting for the WAL flush).

    Rows are locked in the order of the input (callers sort by id, so that two
    batches sharing ids wait rather than deadlock); should PostgreSQL still
    report a deadlock (another writer's order), the chunk is tried again.
    """

    def once() -> list[dict[str, Any]]:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(ASYNC_COMMIT)
            cur.execute(sql, params)
            return cur.fetchall()

    return retrying_deadlocks(once)


def held_state(conn: psycopg.Connection, ids: list[str]) -> dict[str, tuple[str, int | None]]:
    """(kind, capacity) of each of ``ids`` that exists (to explain refusals)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(REFUSED_SQL, {"ids": ids})
        return {entity_id: (kind, capacity) for entity_id, kind, capacity in cur.fetchall()}


def apply_to_hot(hot: HotIndex, rows: Iterable[Mapping[str, Any]]) -> bool:
    """Send changed rows to Redis (each move is atomic in the script); False when Redis
    holds no generation to write to (a rebuild that starts afterwards has the rows)."""
    try:
        hot.apply_rows(rows)
    except NoGeneration:
        return False
    except redis.RedisError as exc:
        raise HotIndexUnavailable(f"Redis could not be updated: {exc}") from exc
    return True


def joined(values: Iterable[object]) -> str:
    """Numbers (or None) as one comma-joined text parameter ('' for None)."""
    return ",".join("" if value is None else repr(value) for value in values)


def joined_times(values: Iterable[datetime]) -> str:
    """Times as one comma-joined text parameter (each distinct time written once)."""
    written: dict[datetime, str] = {}
    return ",".join(
        written.get(value) or written.setdefault(value, value.isoformat()) for value in values
    )


def position_params(chunk: Sequence[Position]) -> dict[str, str]:
    """POSITIONS_SQL's parameters for ``chunk``; the base cell computed here."""
    return {
        "ids": SEP.join(p.id for p in chunk),
        "lats": joined(p.lat for p in chunk),
        "lngs": joined(p.lng for p in chunk),
        "cells": joined(h3i.latlng_to_cell(p.lat, p.lng, BASE_RES) for p in chunk),
        "available": joined(p.available for p in chunk),
        "seen": joined_times(p.seen_at for p in chunk),
    }


def availability_params(chunk: Sequence[Availability]) -> dict[str, str]:
    """AVAILABILITY_SQL's parameters for ``chunk``."""
    return {
        "ids": SEP.join(u.id for u in chunk),
        "available": joined(u.available for u in chunk),
        "capacity": joined(u.capacity for u in chunk),
        "seen": joined_times(u.seen_at for u in chunk),
    }


def apply_in_chunks(
    conn: psycopg.Connection,
    hot: HotIndex,
    sql: str,
    params_of: Callable[[Sequence[Any]], Mapping[str, Any]],
    values: Sequence[Any],
) -> Applied:
    """Update PostGIS chunk by chunk, each chunk's rows going to Redis meanwhile.

    While a thread applies chunk k to Redis, this one runs chunk k + 1's
    statement: the two stores work at once. Each chunk commits on its own
    (items are independent) before it reaches Redis. Returns every changed row;
    the values not applied: should PostgreSQL fail on a chunk once earlier ones
    have committed, that chunk and those after it (the caller reports them item
    by item; a failure on the first chunk, with nothing written, is raised); and
    whether Redis held no generation for some of the rows.
    """
    changed: list[dict[str, Any]] = []
    chunks = list(chunked(sorted(values, key=lambda value: value.id), CHUNK_ITEMS))
    with ThreadPoolExecutor(max_workers=1) as to_redis:
        sent: list[Future[bool]] = []
        unapplied: list[Any] = []
        for number, chunk in enumerate(chunks):
            try:
                rows = run_batch(conn, sql, params_of(chunk))
            except psycopg.Error:
                if number == 0:
                    raise
                log.exception("a pushed batch failed after %d of its chunks", number)
                unapplied = [value for rest in chunks[number:] for value in rest]
                break
            if rows:
                sent.append(to_redis.submit(apply_to_hot, hot, rows))
            changed.extend(rows)
        try:
            written = [future.result() for future in sent]
        except HotIndexUnavailable:
            # PostGIS has the items, Redis may not: the next import, feed sync or
            # server start rebuilds the hot index (indexer/hot/pending.py).
            leave_mark(conn, "push")
            raise
    return Applied(changed, unapplied, hot_missing=not all(written))


def refusals(
    conn: psycopg.Connection, refused: Sequence[Position | Availability]
) -> list[ItemError]:
    """Why each applied item that changed nothing was refused, from what PostGIS holds."""
    try:
        held = held_state(conn, [value.id for value in refused])
    except psycopg.Error:
        log.exception("the state of refused items could not be read")
        return [ItemError(value.index, value.id, NOT_READ) for value in refused]
    return [
        refusal(value.index, value.id, held.get(value.id), value.available) for value in refused
    ]


def tally(
    conn: psycopg.Connection,
    received: int,
    values: Sequence[Position] | Sequence[Availability],
    applied: Applied,
    errors: list[ItemError],
) -> PushResult:
    """Count the changed rows and the moves; explain every item that did not change."""
    rows, unapplied = applied.rows, applied.unapplied
    moved = sum(row["old_h3"] != row["h3"] for row in rows)
    errors.extend(ItemError(value.index, value.id, DATABASE_FAILED) for value in unapplied)
    if len(rows) + len(unapplied) < len(values):
        done = {row["id"] for row in rows} | {value.id for value in unapplied}
        errors.extend(refusals(conn, [value for value in values if value.id not in done]))
    errors.sort(key=lambda error: error.index)
    return PushResult(received, len(rows), moved, tuple(errors), applied.hot_missing)


def push_positions(
    conn: psycopg.Connection,
    hot: HotIndex,
    items: Sequence[Any],
    *,
    now: datetime | None = None,
) -> PushResult:
    """Move bikes (and chargers): items ``{id, lat, lng, available?, seen_at?}``.

    Applies every good item; an item is refused when its id is unknown or not
    a bike or charger, when it is older than what the index holds, or when
    ``available`` exceeds the capacity held. ``seen_at`` defaults to ``now``.
    """
    if len(items) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} items a batch")
    positions, errors = check_items(items, check_position, now or datetime.now(UTC))
    applied = apply_in_chunks(conn, hot, POSITIONS_SQL, position_params, positions)
    return tally(conn, len(items), positions, applied, errors)


def push_availability(
    conn: psycopg.Connection,
    hot: HotIndex,
    items: Sequence[Any],
    *,
    now: datetime | None = None,
) -> PushResult:
    """Set free and total points of chargers (or bike stations): ``{id, available, capacity?}``."""
    if len(items) > MAX_ITEMS:
        raise ValueError(f"at most {MAX_ITEMS} items a batch")
    updates, errors = check_items(items, check_availability, now or datetime.now(UTC))
    applied = apply_in_chunks(conn, hot, AVAILABILITY_SQL, availability_params, updates)
    return tally(conn, len(items), updates, applied, errors)
