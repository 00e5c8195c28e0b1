"""Live entities past their staleness limit: the test of one, and the purge of them all.

Search hides a stale entity as soon as it passes its limit; the purge only
reclaims the space.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import redis

from indexer.hot.index import HotIndex
from indexer.settings import IndexSettings
from indexer.store.errors import HotIndexUnavailable

PURGE_SQL = """
WITH kinds AS (
    SELECT * FROM unnest(%(kinds)s::text[], %(kind_limits)s::int[]) AS k(kind, limit_s)
), sources AS (
    SELECT * FROM unnest(%(sources)s::text[], %(source_limits)s::int[]) AS s(source, limit_s)
)
DELETE FROM entities e USING kinds k
WHERE e.kind = k.kind
  AND e.seen_at < %(now)s - make_interval(secs => %(grace_s)s + coalesce(
        (SELECT s.limit_s FROM sources s WHERE s.source = e.source), k.limit_s))
RETURNING e.id, nextval('entity_rev')
"""


def is_stale(
    settings: IndexSettings, source: str, kind: str, seen_at: datetime | None, now: datetime
) -> bool:
    """True when an entity of ``source`` and ``kind`` last seen at ``seen_at`` is stale."""
    limit_s = settings.stale_limit_s(source, kind)
    if limit_s is None or seen_at is None:
        return False
    return seen_at < now - timedelta(seconds=limit_s)


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
    kinds = sorted(settings.stale_s)
    sources = sorted(settings.stale_sources)
    params = {
        "kinds": kinds,
        "kind_limits": [settings.stale_s[kind] for kind in kinds],
        "sources": sources,
        "source_limits": [settings.stale_sources[source] for source in sources],
        "now": now or datetime.now(UTC),
        "grace_s": grace_s,
    }
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(PURGE_SQL, params)
        deleted = [(row[0], row[1]) for row in cur.fetchall()]
    try:
        hot.apply_deletes(deleted)
    except redis.RedisError as exc:
        raise HotIndexUnavailable(f"Redis could not be updated: {exc}") from exc
    return len(deleted)
