"""Live entities past their staleness limit: the test of one, and the purge of them all.

Search hides a stale entity as soon as it passes its limit; the purge only
reclaims the space.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import redis

from indexer import rules
from indexer.hot.client import NoGeneration
from indexer.hot.index import HotIndex
from indexer.settings import IndexSettings
from indexer.store.errors import HotIndexUnavailable

#: Deletes the rows :func:`indexer.rules.is_stale` finds stale (parameters of
#: :func:`indexer.rules.stale_params`), returning each id with its deletion's revision.
PURGE_SQL = f"DELETE FROM entities e WHERE {rules.STALE_SQL} RETURNING e.id, nextval('entity_rev')"


def is_stale(
    settings: IndexSettings, source: str, kind: str, seen_at: datetime | None, now: datetime
) -> bool:
    """True when an entity of ``source`` and ``kind`` last seen at ``seen_at`` is stale."""
    seen_at_s = None if seen_at is None else seen_at.timestamp()
    return rules.is_stale(settings.stale_limits, source, kind, seen_at_s, now.timestamp())


def purge_stale(
    conn: psycopg.Connection,
    hot: HotIndex,
    settings: IndexSettings,
    *,
    now: datetime | None = None,
    grace_s: int = 0,
) -> int:
    """Delete live entities not seen for longer than their limit plus ``grace_s``.

    Search hides them as soon as they pass the limit; the purge only reclaims
    the space. Returns how many were deleted (from PostGIS, then Redis).
    """
    now_s = (now or datetime.now(UTC)).timestamp()
    params = rules.stale_params(settings.stale_limits, now_s - grace_s)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(PURGE_SQL, params)
        deleted = [(row[0], row[1]) for row in cur.fetchall()]
    try:
        hot.apply_deletes(deleted)
    except NoGeneration:
        pass  # nothing to update: the next rebuild reads PostGIS
    except redis.RedisError as exc:
        raise HotIndexUnavailable(f"Redis could not be updated: {exc}") from exc
    return len(deleted)
