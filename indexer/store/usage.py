"""Usage masses: what the events of each entity and each mini-app add up to, decayed.

An event of weight ``w`` at time ``at`` counts ``w · 2^(−(t − at)/h)`` at time
``t`` (``h`` the half-life, ``NEARBY_USAGE_HALF_LIFE_S``). Kept that way, every
stored figure would have to be rewritten as time passes. Instead each entity
and each mini-app keeps its *mass* against a fixed epoch ``T0``::

    M = Σ w · 2^((at − T0)/h)          usage(t) = M · 2^(−(t − T0)/h)

so that an event only adds its term to one row (``mass = mass + excluded.mass``,
whatever order events come in, late ones included), nothing changes while time
passes, and the usage at any time is one multiplication. Two masses compare as
their usages do at any one time, so ranking by usage needs only the masses.

Why a double holds it. A term's exponent grows by ``year / h`` a year after
``T0``: 52.2 with the default week, 365 with the shortest half-life allowed (a
day). A double reaches 2^1024, so events are taken while their exponent is at
most :data:`MAX_EXPONENT` (960: a mass may still add up 2^54 events of the
highest weight at that time before it could overflow): some 18 years after
``T0`` with a week's half-life, 2.6 years with a day's. Before then the epoch
must move forward (multiply every mass by ``2^(−Δ/h)`` and move ``T0`` by ``Δ``,
one UPDATE a table); events past it are refused, never stored as infinity.
Events long before ``T0`` give terms that underflow towards 0, as their usage
has. Precision does not depend on the magnitude: every term is positive, so a
sum of ``n`` terms is within ``n · 2^−53`` of exact, relatively (about 1e-10 after a
million events to one row, and in practice ``√n`` times better), and the
exponent ``(at − T0)/h``, at most 960, carries a relative error of 2^−53, which
changes a term by at most 960 · ln 2 · 2^−53 ≈ 7e-14 relatively. The basis
(``T0`` and ``h``) is kept in ``usage_basis`` beside the masses: masses of
another half-life cannot be added to, so a write under a changed
``NEARBY_USAGE_HALF_LIFE_S`` is refused (:class:`BasisChanged`).

A checked batch is stored in one transaction (:func:`store_usage`: the log and
the users' recents at once, and each entity's sum of the batch's terms into
``usage_pending``); a *round* (:mod:`indexer.store.usage_rounds`) then adds
every stored sum to the masses at once.
An entity's mass is kept on its row (``entities.usage_mass``), where the search
reads it (:func:`indexer.rules.popularity_now`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg.rows import dict_row

from indexer.errors import Unavailable
from indexer.rules import USAGE_EPOCH_S as USAGE_EPOCH_S
from indexer.rules import usage_factor
from indexer.store.db import retrying_deadlocks

#: The highest exponent ``(at − T0)/h`` an event may have (see the module).
MAX_EXPONENT = 960.0
#: Distinct mini-apps a user's recents keep.
RECENTS_KEPT = 20


class BasisChanged(Unavailable):
    """The stored masses are kept with another half-life than the settings say."""


class UsageEvent(NamedTuple):
    """A checked event: its place in its batch (``item``), its type, what it names (the
    entity's mini-app resolved), its user, time and weight."""

    item: int
    type: str
    entity_id: str | None
    mini_app: str
    user: str | None
    at_s: float
    weight: float


def exponent(at_s: float, half_life_s: float, epoch_s: float = USAGE_EPOCH_S) -> float:
    """``(at − T0)/h``: the power of 2 an event's weight is multiplied by in its mass."""
    return (at_s - epoch_s) / half_life_s


def mass_of(
    weight: float, at_s: float, half_life_s: float, epoch_s: float = USAGE_EPOCH_S
) -> float:
    """An event's term in a mass: ``w · 2^((at − T0)/h)``."""
    return weight * math.pow(2.0, exponent(at_s, half_life_s, epoch_s))


def usage_at(mass: float, t_s: float, half_life_s: float, epoch_s: float = USAGE_EPOCH_S) -> float:
    """The usage a mass stands for at time ``t_s``: ``M · 2^(−(t − T0)/h)``."""
    if epoch_s == USAGE_EPOCH_S:
        return mass * usage_factor(t_s, half_life_s)
    return mass * math.pow(2.0, -exponent(t_s, half_life_s, epoch_s))


BASIS = """
WITH ins AS (
    INSERT INTO usage_basis (epoch_s, half_life_s) VALUES (%s, %s)
    ON CONFLICT (one) DO NOTHING RETURNING epoch_s, half_life_s
)
SELECT epoch_s, half_life_s FROM ins UNION ALL SELECT epoch_s, half_life_s FROM usage_basis
"""
#: The columns a batch fills in ``usage_pending``: sums of its events by entity.
PENDING_COLUMNS = "entity_id, mini_app, mass, events"


def check_basis(cur: psycopg.Cursor[dict[str, Any]], half_life_s: float) -> None:
    """Record the basis on the first write; BasisChanged when the stored one differs."""
    cur.execute(BASIS, (USAGE_EPOCH_S, half_life_s))
    row = cur.fetchone()
    epoch_s, stored = (row["epoch_s"], row["half_life_s"]) if row else (USAGE_EPOCH_S, half_life_s)
    if epoch_s != USAGE_EPOCH_S or stored != half_life_s:
        raise BasisChanged(
            f"the usage masses are kept with a half-life of {stored:g} s from epoch {epoch_s:g},"
            f" not the {half_life_s:g} s of NEARBY_USAGE_HALF_LIFE_S"
        )


class MassChange(NamedTuple):
    """An entity's new mass, made as revision ``rev`` of a row that was at ``old_rev``."""

    id: str
    old_rev: int
    rev: int
    mass: float


#: Events made into JSON between two turns for the worker's other requests.
ROWS_SLICE = 1000
#: The events of a batch (one JSON array of rows: item, type, entity_id, mini_app,
#: user_id, at_s, mass), with what each names: ``app`` the entity's mini-app (''
#: for none), or the named mini-app; NULL when the entity or the mini-app is
#: unknown. One JSON text is read by PostgreSQL far faster than seven arrays are
#: written by the driver, element by element.
RESOLVED = """
WITH ev AS (
    SELECT (r->>0)::int AS item, r->>1 AS type, r->>2 AS entity_id, r->>3 AS mini_app,
           r->>4 AS user_id, (r->>5)::float8 AS at_s, (r->>6)::float8 AS mass
    FROM jsonb_array_elements(%s::jsonb) AS r
), resolved AS (
    SELECT ev.*, CASE WHEN ev.entity_id IS NULL THEN m.slug
                      WHEN e.id IS NOT NULL THEN e.mini_app END AS app
    FROM ev
    LEFT JOIN entities e ON e.id = ev.entity_id
    LEFT JOIN mini_apps m ON ev.entity_id IS NULL AND m.slug = ev.mini_app
)
"""
#: Store the events whose names resolve, at once: into the log, the users' recents,
#: and, summed by entity (and by mini-app for those that name one only), into
#: ``usage_pending`` for the next round to add to the masses; return the others
#: (item, whether it named an entity). Recents are upserted in key order, so that
#: two batches at once take their row locks in the same order.
STORE = f"""{RESOLVED}, logged AS (
    INSERT INTO usage_events (at, type, entity_id, mini_app, user_id)
    SELECT to_timestamp(at_s), type, entity_id, app, user_id FROM resolved WHERE app IS NOT NULL
), pending AS (
    INSERT INTO usage_pending ({PENDING_COLUMNS})
    SELECT entity_id, app, sum(mass), count(*) FROM resolved WHERE app IS NOT NULL
    GROUP BY entity_id, app
), recent AS (
    INSERT INTO user_recents (user_id, slug, at)
    SELECT user_id, app, to_timestamp(max(at_s)) FROM resolved
    WHERE user_id IS NOT NULL AND app IS NOT NULL AND app <> ''
    GROUP BY user_id, app ORDER BY user_id, app
    ON CONFLICT (user_id, slug) DO UPDATE SET at = excluded.at
    WHERE user_recents.at < excluded.at
)
SELECT item, entity_id IS NOT NULL FROM resolved WHERE app IS NULL
"""
#: Recents are trimmed to RECENTS_KEPT by a batch at most every TRIM_EVERY_S, for
#: that batch's users (reads take the newest RECENTS_KEPT anyway: a user's rows
#: beyond them only wait to go, and there are at most as many as mini-apps).
TRIM_EVERY_S = 10.0
TRIM_DUE = """
UPDATE usage_clocks SET at = clock_timestamp()
WHERE name = 'trim' AND at <= clock_timestamp() - make_interval(secs => %s) RETURNING at
"""
#: The given users' recents beyond the newest RECENTS_KEPT deleted.
TRIM = f"""
DELETE FROM user_recents r USING (
    SELECT user_id, slug,
           row_number() OVER (PARTITION BY user_id ORDER BY at DESC, slug) AS n
    FROM user_recents
    WHERE user_id IN (
        -- Only those that hold more than they keep: most hold fewer.
        SELECT user_id FROM user_recents WHERE user_id = ANY(%s)
        GROUP BY user_id HAVING count(*) > {RECENTS_KEPT}
    )
) ranked
WHERE ranked.n > {RECENTS_KEPT} AND r.user_id = ranked.user_id AND r.slug = ranked.slug
"""
#: What each event names (NULL: unknown), storing nothing.
LOOK_UP = f"{RESOLVED} SELECT item, app FROM resolved"


def event_rows(events: Sequence[UsageEvent], half_life_s: float | None) -> str:
    """The events as the JSON :data:`RESOLVED` reads (masses 0 without ``half_life_s``).
    A double goes through JSON unchanged: orjson writes the shortest text that reads
    back as the same double, and PostgreSQL's float8 input reads it exactly. Made a
    slice at a time, with a turn for the worker's other requests between two."""
    parts: list[bytes] = []
    for first in range(0, len(events), ROWS_SLICE):
        chunk = events[first : first + ROWS_SLICE]
        if half_life_s is None:
            rows = [(e.item, e.type, e.entity_id, e.mini_app, e.user, e.at_s, 0.0) for e in chunk]
        else:
            rows = [
                (e.item, e.type, e.entity_id, e.mini_app, e.user, e.at_s,
                 mass_of(e.weight, e.at_s, half_life_s))
                for e in chunk
            ]  # fmt: skip
        parts.append(orjson.dumps(rows)[1:-1])
        time.sleep(0)
    return "[" + b",".join(parts).decode() + "]"


def store_usage(
    conn: psycopg.Connection, events: Sequence[UsageEvent], half_life_s: float
) -> list[tuple[int, bool]]:
    """Store checked events whose entity or mini-app exists (:data:`STORE`: the log and
    the recents at once, the masses' sums for the next round,
    :mod:`indexer.store.usage_rounds`); the others' items, each with whether it named
    an entity. One transaction; one that meets a deadlock is tried again."""
    if not events:
        return []
    rows = event_rows(events, half_life_s)
    return retrying_deadlocks(lambda: _store_once(conn, events, rows, half_life_s))


def _store_once(
    conn: psycopg.Connection, events: Sequence[UsageEvent], rows: str, half_life_s: float
) -> list[tuple[int, bool]]:
    with conn.transaction():
        with conn.cursor(row_factory=dict_row) as cur:
            check_basis(cur, half_life_s)
        with conn.cursor() as cur:
            cur.execute(STORE, (rows,))
            refused = [(int(item), bool(by_entity)) for item, by_entity in cur.fetchall()]
            cur.execute(TRIM_DUE, (TRIM_EVERY_S,))
            if cur.fetchone() is not None:
                cur.execute(TRIM, (list({e.user for e in events if e.user is not None}),))
        return refused


def look_up_names(conn: psycopg.Connection, events: Sequence[UsageEvent]) -> dict[int, str | None]:
    """Each event's mini-app (its entity's, or the one it names); None when unknown."""
    if not events:
        return {}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(LOOK_UP, (event_rows(events, None),))
        return {int(item): app for item, app in cur.fetchall()}
