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

A batch is applied in one transaction: COPY into a temporary table, then one
statement for each table (the events, the entities' masses, the mini-apps'
masses, the users' recents and their trim to :data:`RECENTS_KEPT`).  An entity's
mass is kept on its row (``entities.usage_mass``), where the search reads it
(:func:`indexer.rules.popularity_now`): a change of it is a new revision of the
entity, which the caller sends to the hot index (the mass and revisions only:
:func:`indexer.store.events.masses_to_hot`). Rows are
upserted in key order, so that two batches running at once take their row locks
in the same order; a deadlock that happens anyway is retried.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg
import psycopg.errors
from psycopg.rows import dict_row

from indexer.errors import Unavailable
from indexer.rules import USAGE_EPOCH_S as USAGE_EPOCH_S
from indexer.rules import usage_factor
from indexer.store.items import taking_turns

#: The highest exponent ``(at − T0)/h`` an event may have (see the module).
MAX_EXPONENT = 960.0
#: Distinct mini-apps a user's recents keep.
RECENTS_KEPT = 20
#: Attempts at a batch that meets a deadlock.
ATTEMPTS = 3


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


LOAD = """
CREATE TEMP TABLE IF NOT EXISTS usage_load (
    at_s double precision, type text, entity_id text, mini_app text, user_id text,
    mass double precision
) ON COMMIT DELETE ROWS
"""
BASIS = """
WITH ins AS (
    INSERT INTO usage_basis (epoch_s, half_life_s) VALUES (%s, %s)
    ON CONFLICT (one) DO NOTHING RETURNING epoch_s, half_life_s
)
SELECT epoch_s, half_life_s FROM ins UNION ALL SELECT epoch_s, half_life_s FROM usage_basis
"""
#: The entities' masses, each a new revision; returns each one's id, the revision
#: it had (read under the row lock, so no other write came between), the one it
#: got and its new mass, for the hot index (the rows locked in id order first, as
#: the other writers lock them).
ENTITY_MASSES = """
WITH added AS (
    SELECT entity_id, sum(mass) AS mass FROM usage_load WHERE entity_id IS NOT NULL
    GROUP BY entity_id
), locked AS (
    SELECT e.id, e.rev AS old_rev, a.mass FROM entities e JOIN added a ON a.entity_id = e.id
    ORDER BY e.id FOR NO KEY UPDATE OF e
)
UPDATE entities e SET usage_mass = e.usage_mass + l.mass, rev = nextval('entity_rev')
FROM locked l WHERE e.id = l.id
RETURNING e.id, l.old_rev, e.rev, e.usage_mass
"""
STATEMENTS = (
    """
    INSERT INTO usage_events (at, type, entity_id, mini_app, user_id)
    SELECT to_timestamp(at_s), type, entity_id, mini_app, user_id FROM usage_load
    """,
    """
    INSERT INTO usage_mini_app (slug, mass)
    SELECT mini_app, sum(mass) FROM usage_load WHERE mini_app <> ''
    GROUP BY mini_app ORDER BY mini_app
    ON CONFLICT (slug) DO UPDATE SET mass = usage_mini_app.mass + excluded.mass
    """,
    """
    INSERT INTO user_recents (user_id, slug, at)
    SELECT user_id, mini_app, to_timestamp(max(at_s)) FROM usage_load
    WHERE user_id IS NOT NULL AND mini_app <> ''
    GROUP BY user_id, mini_app ORDER BY user_id, mini_app
    ON CONFLICT (user_id, slug) DO UPDATE SET at = greatest(user_recents.at, excluded.at)
    """,
    f"""
    DELETE FROM user_recents r USING (
        SELECT user_id, slug,
               row_number() OVER (PARTITION BY user_id ORDER BY at DESC, slug) AS n
        FROM user_recents
        WHERE user_id IN (
            -- Only the batch's users that hold more than they keep: most hold fewer.
            SELECT user_id FROM user_recents
            WHERE user_id IN (SELECT user_id FROM usage_load WHERE user_id IS NOT NULL)
            GROUP BY user_id HAVING count(*) > {RECENTS_KEPT}
        )
    ) ranked
    WHERE ranked.n > {RECENTS_KEPT} AND r.user_id = ranked.user_id AND r.slug = ranked.slug
    """,
)


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


def apply_usage(
    conn: psycopg.Connection, events: Sequence[UsageEvent], half_life_s: float
) -> list[MassChange]:
    """Store checked events and add them to the masses and recents; return the
    entities whose mass changed (with their revisions, for the hot index).

    One transaction (see the module); on any error nothing is written.
    """
    if not events:
        return []
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _apply_once(conn, events, half_life_s)
        except psycopg.errors.DeadlockDetected:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _apply_once(
    conn: psycopg.Connection, events: Sequence[UsageEvent], half_life_s: float
) -> list[MassChange]:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(LOAD)
        check_basis(cur, half_life_s)
        columns = "at_s, type, entity_id, mini_app, user_id, mass"
        with cur.copy(f"COPY usage_load ({columns}) FROM STDIN") as copy:
            for event in taking_turns(events, 256):
                copy.write_row(
                    (event.at_s, event.type, event.entity_id, event.mini_app, event.user,
                     mass_of(event.weight, event.at_s, half_life_s))
                )  # fmt: skip
        for statement in STATEMENTS:
            cur.execute(statement)
        cur.execute(ENTITY_MASSES)
        return [
            MassChange(row["id"], row["old_rev"], row["rev"], row["usage_mass"])
            for row in cur.fetchall()
        ]
