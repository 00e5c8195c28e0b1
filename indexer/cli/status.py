"""``nearby status``: the index on one screen for an operator, or as JSON for scripts.

It shows whether PostGIS and Redis answer; the current generation, since when
it is current, and whether a build is running (its lease); entities per kind
and source in PostGIS and in the current generation of Redis, and how many of
them are stale (by the deployment's staleness limits, counted in PostGIS, the
truth; Redis hides the same ones from queries); each source's last import or
feed sync, its lag and failures; usage events waiting for a round; rebuild
counts; Redis memory per entity.

Redis keeps no running count of its entities: they are counted by a scan of
the generation (:mod:`indexer.hot.census`, 5,000 ids a script call), about a
second per million entities, which also refreshes the counts scrapes read.
Exit status 0; 1 when PostGIS or Redis does not answer (what does is shown).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
import psycopg
import redis

from indexer import telemetry
from indexer.cli.context import NOT_CLEAN, Context
from indexer.cli.status_text import render_text
from indexer.hot import census, layout
from indexer.hot.index import HotIndex, connect_redis
from indexer.model import KINDS
from indexer.settings import IndexSettings
from indexer.store import db

#: Entities and stale ones by kind and source, in one pass over the table.
COUNTS_SQL = """
WITH kind_limits AS (
    SELECT * FROM unnest(%(kinds)s::text[], %(kind_limits)s::int[]) AS k(kind, limit_s)
), source_limits AS (
    SELECT * FROM unnest(%(sources)s::text[], %(source_limits)s::int[]) AS s(source, limit_s)
)
SELECT e.kind, e.source, count(*),
       count(*) FILTER (
           WHERE e.seen_at < %(now)s - make_interval(secs => coalesce(s.limit_s, k.limit_s)))
FROM entities e
LEFT JOIN kind_limits k ON k.kind = e.kind
LEFT JOIN source_limits s ON s.source = e.source AND k.kind IS NOT NULL
GROUP BY e.kind, e.source
"""


#: Usage events stored and not yet counted by a round, the oldest's wait, the last round.
USAGE_SQL = """
SELECT coalesce(sum(events), 0), extract(epoch FROM now() - min(received)),
       (SELECT extract(epoch FROM now() - at) FROM usage_clocks
        WHERE name = 'round' AND at > '-infinity')
FROM usage_pending
"""


@dataclass(frozen=True)
class Waiting:
    """Usage events no round has counted yet (indexer/store/usage_rounds.py)."""

    events: int
    oldest_s: float | None
    last_round_s: float | None


@dataclass(frozen=True)
class Reach:
    """Whether a store answered, and if not, why."""

    reachable: bool
    error: str | None = None


@dataclass(frozen=True)
class HotState:
    """What Redis holds: the generation, a build under way, counts and telemetry."""

    gen: str | None
    building: str | None
    lease_s: float | None
    used_memory: int
    census: census.Census | None
    builds: telemetry.BuildStats
    sources: tuple[telemetry.SourceStats, ...] = ()

    @property
    def since(self) -> float | None:
        """When the current generation became current (None: not recorded)."""
        recorded = self.builds.current_gen is not None and self.builds.current_gen == self.gen
        return self.builds.current_since if recorded else None


@dataclass(frozen=True)
class Status:
    """Everything ``nearby status`` shows; None where a store did not answer."""

    checked_at: float
    postgis: Reach
    redis: Reach
    #: (kind, source) -> (entities, stale ones), from PostGIS.
    counts: Mapping[tuple[str, str], tuple[int, int]] | None = None
    hot: HotState | None = None
    usage: Waiting | None = None

    @property
    def ok(self) -> bool:
        """Both stores answered."""
        return self.postgis.reachable and self.redis.reachable


def postgis_counts(
    conn: psycopg.Connection, settings: IndexSettings, now: datetime
) -> dict[tuple[str, str], tuple[int, int]]:
    """(kind, source) -> (entities, stale ones) in PostGIS."""
    kinds, sources = sorted(settings.stale_s), sorted(settings.stale_sources)
    params = {
        "kinds": kinds,
        "kind_limits": [settings.stale_s[kind] for kind in kinds],
        "sources": sources,
        "source_limits": [settings.stale_sources[source] for source in sources],
        "now": now,
    }
    with conn.cursor() as cur:
        cur.execute(COUNTS_SQL, params)
        return {(kind, source): (int(n), int(stale)) for kind, source, n, stale in cur.fetchall()}


def usage_waiting(conn: psycopg.Connection) -> Waiting:
    """The usage events waiting for a round, and how long ago the last round began."""
    with conn.cursor() as cur:
        cur.execute(USAGE_SQL)
        row = cur.fetchone()
    events, oldest, last = row if row else (0, None, None)
    return Waiting(
        int(events),
        None if oldest is None else float(oldest),
        None if last is None else float(last),
    )


def hot_state(hot: HotIndex) -> HotState:
    """What the hot index holds now (its entities counted by a scan)."""
    gen = hot.generation()
    building_key = layout.building_key(hot.prefix)
    building = hot.client.get(building_key)
    lease_ms = int(hot.client.pttl(building_key)) if building is not None else -1
    memory = hot.client.info("memory")
    return HotState(
        gen=gen,
        building=None if building is None else str(building),
        lease_s=lease_ms / 1000 if lease_ms >= 0 else None,
        used_memory=int(memory["used_memory"]),
        census=census.take_census(hot, gen) if gen is not None else None,
        builds=telemetry.read_builds(hot.client, hot.prefix),
        sources=tuple(telemetry.read_sources(hot.client, hot.prefix)),
    )


def gather(settings: IndexSettings, now: float | None = None) -> Status:
    """Ask PostGIS and Redis; a store that does not answer is reported, not raised."""
    checked_at = time.time() if now is None else now
    counts, hot, usage = None, None, None
    try:
        with db.connect(settings.database_url) as conn:
            counts = postgis_counts(conn, settings, datetime.fromtimestamp(checked_at, UTC))
            usage = usage_waiting(conn)
        postgis = Reach(True)
    except psycopg.Error as exc:
        postgis = Reach(False, first_line(exc))
    client = connect_redis(settings.redis_url)
    try:
        hot = hot_state(HotIndex(client, settings.redis_prefix))
        reach = Reach(True)
    except redis.RedisError as exc:
        reach = Reach(False, first_line(exc))
    finally:
        client.close()
    return Status(checked_at, postgis, reach, counts, hot, usage)


def first_line(exc: Exception) -> str:
    """An error's first line (driver messages run on)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- the JSON shape ------------------------------------------------------------


def iso(moment: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC."""
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


def age_s(moment: float | None, now: float) -> float | None:
    """Seconds from ``moment`` to ``now``."""
    return None if moment is None else round(now - moment, 3)


def entity_rows(status: Status) -> list[dict[str, Any]]:
    """One row per kind and source known to either store, kinds in their order."""
    pg = status.counts or {}
    hot = status.hot.census.counts if status.hot and status.hot.census else {}
    keys = sorted(set(pg) | set(hot), key=lambda key: (KINDS.index(key[0]), key[1]))
    redis_known = status.hot is not None
    return [
        {
            "kind": kind,
            "source": source,
            "postgis": pg.get((kind, source), (0, 0))[0] if status.counts is not None else None,
            "redis": hot.get((kind, source), 0) if redis_known else None,
            "stale": pg.get((kind, source), (0, 0))[1] if status.counts is not None else None,
        }
        for kind, source in keys
    ]


def totals_of(rows: list[dict[str, Any]]) -> dict[str, int | None]:
    """Column sums of :func:`entity_rows` (None for a store that did not answer)."""
    totals: dict[str, int | None] = {}
    for name in ("postgis", "redis", "stale"):
        known = all(row[name] is not None for row in rows)
        totals[name] = sum(row[name] for row in rows) if known else None
    return totals


def source_json(stats: telemetry.SourceStats, now: float) -> dict[str, Any]:
    """One source's imports."""
    return {
        "source": stats.source,
        "via": stats.via,
        "last_success": iso(stats.last_success),
        "last_success_age_s": age_s(stats.last_success, now),
        "lag_s": stats.lag_s,
        "last_failure": iso(stats.last_failure),
        "last_error": stats.last_error or None,
        "runs_ok": stats.runs_ok,
        "runs_failed": stats.runs_failed,
        "rows": dict(stats.rows),
    }


def generation_json(hot: HotState | None, now: float) -> dict[str, Any] | None:
    """The current generation and a build under way."""
    if hot is None:
        return None
    return {
        "current": hot.gen,
        "since": iso(hot.since),
        "age_s": age_s(hot.since, now),
        "building": hot.building,
        "building_lease_s": hot.lease_s,
    }


def redis_json(status: Status) -> dict[str, Any]:
    """Redis: reachable, and its memory per entity of the current generation."""
    hot = status.hot
    entities = hot.census.total if hot and hot.census else 0
    memory = hot.used_memory if hot else None
    return {
        "reachable": status.redis.reachable,
        "error": status.redis.error,
        "used_memory_bytes": memory,
        "bytes_per_entity": round(memory / entities, 1) if memory and entities else None,
    }


def status_json(status: Status) -> dict[str, Any]:
    """The documented shape of ``nearby status --json``."""
    rows = entity_rows(status)
    hot = status.hot
    builds = hot.builds if hot else None
    return {
        "ok": status.ok,
        "checked_at": iso(status.checked_at),
        "postgis": {"reachable": status.postgis.reachable, "error": status.postgis.error},
        "redis": redis_json(status),
        "generation": generation_json(hot, status.checked_at),
        "entities": rows,
        "totals": totals_of(rows),
        "sources": [source_json(s, status.checked_at) for s in hot.sources] if hot else None,
        "usage": None
        if status.usage is None
        else {
            "events_waiting": status.usage.events,
            "oldest_waiting_s": status.usage.oldest_s,
            "last_round_s": status.usage.last_round_s,
        },
        "rebuilds": None
        if builds is None
        else {
            "started": builds.started,
            "finished": dict(builds.finished),
            "last_seconds": builds.last_seconds,
            "last_outcome": builds.last_outcome,
        },
    }


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (a stable shape).")
@click.pass_obj
def status_command(context: Context, as_json: bool) -> None:
    """The index on one screen: generation, entities, staleness, feeds, memory."""
    status = gather(context.settings)
    shape = status_json(status)
    if as_json:
        click.echo(json.dumps(shape, indent=1, ensure_ascii=False))
    else:
        click.echo(render_text(shape))
    if not status.ok:
        raise click.exceptions.Exit(NOT_CLEAN)
