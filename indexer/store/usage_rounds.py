"""Rounds: the stored usage events counted at once, each entity's mass changed once a round.

``POST /v1/events`` and the stream consumer check and store events
(:func:`indexer.store.usage.store_usage`): the log and the users' recents take
them at once, and each batch leaves its sums by entity and mini-app in
``usage_pending``. A round takes every sum stored since the last one and, in
one transaction, adds them to the mini-apps' masses and to each entity's mass,
a new revision of its row; the caller then sends those new masses to the hot
index (:func:`indexer.store.events.apply_round`). However many events an entity
gets between two rounds, its row and its members in Redis change once, which is
what lets events arrive faster than entities can be rewritten one event at a
time.

One round runs at a time across every process (:func:`round_lock`, held from
the round's transaction to the end of the hot index's patch, so that rounds
reach Redis in the order they were made): a background round skips when another
holds the lock, or when the last round began less than its interval ago
(``usage_clocks`` keeps when, for every process); a caller that must see its own
events counted waits for the lock. Rows stored while a round runs are left to
the next, since the round's DELETE sees only what was committed when it began.
Rows are upserted in key order, so that two writers take their row locks in the
same order; a deadlock that happens anyway is retried.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from indexer.store.db import retrying_deadlocks
from indexer.store.usage import PENDING_COLUMNS, MassChange

#: The advisory lock one round holds (any constant no other lock of ours uses).
ROUND_LOCK = 0x6E656172_62790001
#: Rows of a round's new masses read between two turns for the worker's other requests.
FETCH_SLICE = 1000

#: A round begins: when the last began ``spacing_s`` ago or more (no row otherwise).
BEGIN_ROUND = """
UPDATE usage_clocks SET at = clock_timestamp()
WHERE name = 'round' AND at <= clock_timestamp() - make_interval(secs => %s) RETURNING at
"""
TAKE_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS usage_take (
    entity_id text, mini_app text, mass double precision, events int, received timestamptz
) ON COMMIT DELETE ROWS
"""
TAKE = f"""
WITH taken AS (DELETE FROM usage_pending RETURNING {PENDING_COLUMNS}, received)
INSERT INTO usage_take ({PENDING_COLUMNS}, received) SELECT * FROM taken
"""
#: How many events the round took, and how long the oldest of them waited.
TAKEN = """
SELECT coalesce(sum(events), 0) AS events,
       coalesce(extract(epoch FROM now() - min(received)), 0) AS waited_s
FROM usage_take
"""
#: The mini-apps' masses (of every event: an entity's counts for its mini-app too).
MINI_APP_MASSES = """
INSERT INTO usage_mini_app (slug, mass)
SELECT mini_app, sum(mass) FROM usage_take WHERE mini_app <> ''
GROUP BY mini_app ORDER BY mini_app
ON CONFLICT (slug) DO UPDATE SET mass = usage_mini_app.mass + excluded.mass
"""
#: The entities' masses, each a new revision; returns each one's id, the revision
#: it had (read under the row lock, so no other write came between), the one it
#: got and its new mass, for the hot index (the rows locked in id order first, as
#: the other writers lock them).
ENTITY_MASSES = """
WITH added AS (
    SELECT entity_id, sum(mass) AS mass FROM usage_take WHERE entity_id IS NOT NULL
    GROUP BY entity_id
), locked AS (
    SELECT e.id, e.rev AS old_rev, a.mass FROM entities e JOIN added a ON a.entity_id = e.id
    ORDER BY e.id FOR NO KEY UPDATE OF e
)
UPDATE entities e SET usage_mass = e.usage_mass + l.mass, rev = nextval('entity_rev')
FROM locked l WHERE e.id = l.id
RETURNING e.id, l.old_rev, e.rev, e.usage_mass
"""


@dataclass(frozen=True)
class Round:
    """What a round counted: its events, the seconds the oldest of them waited, and the
    entities whose mass changed (with their revisions, for the hot index)."""

    events: int = 0
    waited_s: float = 0.0
    changes: list[MassChange] = field(default_factory=list)


@contextmanager
def round_lock(conn: psycopg.Connection, *, wait: bool) -> Iterator[bool]:
    """Hold the rounds' lock (a session-level advisory lock, so that it spans the round's
    transaction and the hot index's patch after it): whether it is held, False at
    once when another process holds it and ``wait`` is false."""
    if wait:
        conn.execute("SELECT pg_advisory_lock(%s)", (ROUND_LOCK,))
        held = True
    else:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (ROUND_LOCK,)).fetchone()
        held = bool(row and row[0])
    if not conn.autocommit:
        conn.commit()  # the lock outlives the statement's transaction
    try:
        yield held
    finally:
        if held and not conn.closed:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (ROUND_LOCK,))
            if not conn.autocommit:
                conn.commit()


def take_round(conn: psycopg.Connection, spacing_s: float = 0.0) -> Round | None:
    """Count every stored event (see the module), the rounds' lock held
    (:func:`round_lock`): the round, or None when the last one began less than
    ``spacing_s`` ago. On any error nothing is taken."""
    return retrying_deadlocks(lambda: _round_once(conn, spacing_s))


def _round_once(conn: psycopg.Connection, spacing_s: float) -> Round | None:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(BEGIN_ROUND, (spacing_s,))
        if cur.fetchone() is None:
            return None
        cur.execute(TAKE_TABLE)
        cur.execute(TAKE)
        cur.execute(TAKEN)
        taken = _first(cur)
        if not taken["events"]:
            return Round()
        cur.execute(MINI_APP_MASSES)
        cur.execute(ENTITY_MASSES)
        changes: list[MassChange] = []
        # A slice at a time, with a turn for the worker's other requests between two:
        # a round's tens of thousands of rows would hold them back for tens of ms.
        while rows := cur.fetchmany(FETCH_SLICE):
            changes += [MassChange(r["id"], r["old_rev"], r["rev"], r["usage_mass"]) for r in rows]
            time.sleep(0)
        return Round(int(taken["events"]), float(taken["waited_s"]), changes)


def _first(cur: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    row = cur.fetchone()
    if row is None:
        raise AssertionError("the statement returned no row")
    return row
