#!/usr/bin/env python3
"""Live updates under load: position updates/s, and query latency beside idle.

    scripts/bench_live.py [--bikes 100000] [--batch 1000] [--seconds 10] [--senders 2]
                          [--workers 2] [--query redis|postgis] [--skip-http]

With ``--bikes`` bikes indexed (source ``bench``, around Seoul), it measures
the same nearby searches (discovery.search.hot, as GET /v1/nearby runs them),
sent by another process: with no updates, while the Python API
(:func:`indexer.store.live.push_positions`) moves random bikes in batches, and while
``POST /v1/positions`` does (a gunicorn server started for the run), each with
one sender and with ``--senders`` sender processes at once. It prints
updates/s and the queries' p50/p99, each beside the idle baseline of the same
run, and the CPU that Redis and PostgreSQL spent per 1,000 updates (the
queries' share included: the idle row shows it alone).

Two raw baselines move the same bikes the same way, queries running: a bare
``UPDATE … FROM unnest(…)`` of the positions in PostGIS (no revision, no
RETURNING, no Redis), and pipelined ``GEOADD`` into one Redis GEO set of the
bikes (what a raw ``GEOSEARCH`` reads).

Writes into a scratch index of its own: the database ``nearby_bench_live`` beside
the one DATABASE_URL names (made from its PostGIS template when missing) and
the Redis prefix ``nearby-bench-live`` (in the benches' Redis database); the demo's index is never
touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import http.client
import json
import multiprocessing as mp
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from discovery.search.hot import RedisSearch
from discovery.search.postgis import postgis_search
from discovery.search.query import NearbyQuery
from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.settings import IndexSettings
from indexer.store import db
from indexer.store.live import push_positions
from indexer.store.writer import write_entities
from scripts.benchkit import (
    ensure_database,
    free_port,
    percentiles,
    postgres_cpu,
    postgres_cpu_since,
    redis_cpu,
    scratch_settings,
    serve,
)
from scripts.live_baselines import (
    RAW_GEO_KEY,
    move_batch,
    random_point,
    raw_postgis_updates,
    raw_redis_updates,
    seed_raw_geo,
)

RADIUS_M = 500.0
API_KEY = "bench-live-key"


def seed_bikes(settings: IndexSettings, count: int) -> None:
    """Make the ``bench`` source exactly ``count`` bikes seen now."""
    rng = random.Random(1)
    now = datetime.now(UTC)
    bikes = (
        Entity(id=f"bench:{n}", kind="bike", lat=lat, lng=lng, category="free_bike",
               mini_app="bench", available=1, capacity=1, seen_at=now)
        for n, (lat, lng) in ((n, random_point(rng)) for n in range(count))
    )  # fmt: skip
    conn = db.connect(settings.database_url)
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    if hot.generation() is None:
        hot.rebuild(conn)
    write_entities(conn, hot, "bench", bikes, replace=True)
    conn.close()


# --- queries -----------------------------------------------------------------
# A query is the real nearby search (discovery.search.hot), the default page of
# GET /v1/nearby for a 500 m circle: from the hot index (``redis``, one
# nearby.lua call) or from PostGIS (``postgis``, the fallback path).


def nearby_query(settings: IndexSettings, lat: float, lng: float) -> NearbyQuery:
    """The default nearby query (top 20 by score) at (lat, lng), judged now."""
    stale = settings.stale_limits
    return NearbyQuery(
        lat=lat,
        lng=lng,
        radius_m=RADIUS_M,
        scale_m=RADIUS_M / 2,
        now_s=time.time(),
        stale=stale,
    )


def make_query(settings: IndexSettings, kind: str) -> Callable[[float, float], int]:
    """A function that runs one nearby search at (lat, lng) and returns its hit count."""
    if kind == "postgis":
        conn = psycopg.connect(settings.database_url, autocommit=True)
        return lambda lat, lng: len(postgis_search(conn, nearby_query(settings, lat, lng)).hits)
    search = RedisSearch(HotIndex(connect_redis(settings.redis_url), settings.redis_prefix))
    return lambda lat, lng: len(search.search(nearby_query(settings, lat, lng)).hits)


def query_loop(settings: IndexSettings, kind: str, seconds: float, out: Any) -> None:
    """Send queries back to back for ``seconds``; put the latencies (ms) on ``out``."""
    query = make_query(settings, kind)
    rng = random.Random(os.getpid())
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        lat, lng = random_point(rng)
        started = time.perf_counter()
        query(lat, lng)
        latencies.append((time.perf_counter() - started) * 1000.0)
    out.put(latencies)


# --- updates -----------------------------------------------------------------


def python_updates(
    settings: IndexSettings, bikes: int, batch: int, seconds: float, seed: int
) -> float:
    """Moves per second through push_positions for ``seconds``."""
    conn = db.connect(settings.database_url)
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    rng = random.Random(seed)
    applied = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        result = push_positions(conn, hot, move_batch(rng, bikes, batch))
        applied += result.applied
    rate = applied / (time.perf_counter() - started)
    conn.close()
    return rate


def http_updates(port: int, bikes: int, batch: int, seconds: float, seed: int) -> float:
    """Moves per second through POST /v1/positions (one keep-alive connection)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    rng = random.Random(seed)
    applied = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        conn.request("POST", "/v1/positions", json.dumps(move_batch(rng, bikes, batch)), headers)
        response = conn.getresponse()
        body = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"POST /v1/positions answered {response.status}: {body}")
        applied += body["applied"]
    return applied / (time.perf_counter() - started)


def in_senders(senders: int, work: Callable[..., float], *args: Any) -> float:
    """Run ``work(*args, seed)`` in ``senders`` processes at once; the sum of their rates."""
    if senders == 1:
        return work(*args, 1)
    with mp.get_context("spawn").Pool(senders) as pool:
        return sum(pool.starmap(work, [(*args, seed) for seed in range(1, senders + 1)]))


def with_queries(
    settings: IndexSettings, kind: str, seconds: float, work: Callable[[], float | None]
) -> tuple[float | None, list[float]]:
    """Run ``work`` while another process sends queries; its result and their latencies."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    process = ctx.Process(target=query_loop, args=(settings, kind, seconds, out))
    process.start()
    time.sleep(0.5)  # let the querier connect before the work starts
    result = work()
    latencies = out.get()
    process.join()
    return result, latencies


@dataclasses.dataclass(frozen=True)
class Row:
    """One phase of ``seconds``: updates/s (None: idle), the queries' latencies (ms),
    and the CPU seconds Redis and PostgreSQL used meanwhile (None: not readable here)."""

    name: str
    rate: float | None
    latencies: list[float]
    seconds: float
    redis_cpu_s: float | None
    postgres_cpu_s: float | None


def phase(
    settings: IndexSettings, name: str, kind: str, seconds: float, work: Callable[[], float | None]
) -> Row:
    """Run ``work`` (``seconds`` long) while another process sends queries, with the
    CPU the stores used."""
    client = connect_redis(settings.redis_url)
    redis_before, postgres_before = redis_cpu(client), postgres_cpu()
    rate, latencies = with_queries(settings, kind, seconds, work)
    time.sleep(0.2)  # the senders' backends have exited: let the postmaster reap them
    redis_used = redis_cpu(client) - redis_before
    client.close()
    return Row(name, rate, latencies, seconds, redis_used, postgres_cpu_since(postgres_before))


def pause(seconds: float) -> None:
    """The idle phase's work: nothing, for ``seconds``."""
    time.sleep(seconds)


def raw_phases(settings: IndexSettings, args: argparse.Namespace) -> list[Row]:
    """The baselines, one sender each, queries running: bare PostGIS UPDATEs, then GEOADDs."""
    seed_raw_geo(settings)
    rows = []
    for name, work in (
        ("raw PostGIS UPDATE", raw_postgis_updates),
        ("raw Redis GEOADD", raw_redis_updates),
    ):
        run = functools.partial(work, settings, args.bikes, args.batch, args.seconds, 1)
        rows.append(phase(settings, name, args.query, args.seconds, run))
    # The bare UPDATEs moved bikes behind the hot index's back: build it again.
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    hot.client.delete(RAW_GEO_KEY)
    conn = db.connect(settings.database_url)
    hot.rebuild(conn)
    conn.close()
    hot.close()
    return rows


def python_phases(settings: IndexSettings, args: argparse.Namespace) -> list[Row]:
    """push_positions from one sender, then from ``--senders``, queries running."""
    rows: list[Row] = []
    for senders in sorted({1, args.senders}):
        work = functools.partial(
            in_senders, senders, python_updates, settings, args.bikes, args.batch, args.seconds
        )
        rows.append(phase(settings, f"Python API x{senders}", args.query, args.seconds, work))
    return rows


def http_phases(settings: IndexSettings, args: argparse.Namespace) -> list[Row]:
    """POST /v1/positions from one sender, then from ``--senders``, queries running."""
    rows: list[Row] = []
    port = free_port()
    server = serve(settings, port, ["--workers", str(args.workers)], {"NEARBY_API_KEYS": API_KEY})
    try:
        for senders in sorted({1, args.senders}):
            work = functools.partial(
                in_senders, senders, http_updates, port, args.bikes, args.batch, args.seconds
            )
            name = f"HTTP /v1/positions x{senders}"
            rows.append(phase(settings, name, args.query, args.seconds, work))
    finally:
        server.terminate()
        server.wait(10)
    return rows


def main() -> None:
    """Seed, measure idle, Python and HTTP phases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bikes", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--query", choices=("redis", "postgis"), default="redis")
    parser.add_argument("--workers", type=int, default=2, help="API server workers")
    parser.add_argument(
        "--senders", type=int, default=2, help="also measure this many concurrent senders"
    )
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-raw", action="store_true", help="leave out the raw baselines")
    args = parser.parse_args()
    settings = scratch_settings("live")
    ensure_database(settings)
    seed_bikes(settings, args.bikes)
    idle = functools.partial(pause, args.seconds)
    rows = [phase(settings, "idle (no updates)", args.query, args.seconds, idle)]
    if not args.skip_raw:
        rows += raw_phases(settings, args)
    rows += python_phases(settings, args)
    if not args.skip_http:
        rows += http_phases(settings, args)
    print_table(args, rows)


def cpu_per_thousand(used_s: float | None, row: Row) -> str:
    """CPU milliseconds per 1,000 updates (per second of the phase when idle)."""
    if used_s is None:
        return "-"
    if row.rate is None:
        return f"{used_s * 1000.0 / row.seconds:.0f}/s"
    return f"{used_s * 1000.0 / (row.rate * row.seconds / 1000.0):.0f}"


def print_table(args: argparse.Namespace, rows: list[Row]) -> None:
    """One line per phase: updates/s, query p50/p99, their ratio to idle, the stores' CPU."""
    idle_p50, idle_p99 = percentiles(rows[0].latencies)
    print(
        f"{args.bikes:,} bikes · batches of {args.batch:,} · {args.seconds:g} s a phase · "
        f"query: nearby search ({args.query}), top 20 by score in {RADIUS_M:g} m"
    )
    print(
        f"{'phase':<28}{'updates/s':>12}{'queries':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'p99/idle':>10}{'Redis ms':>10}{'PG ms':>8}"
    )
    for row in rows:
        p50, p99 = percentiles(row.latencies)
        shown = "-" if row.rate is None else f"{row.rate:,.0f}"
        print(
            f"{row.name:<28}{shown:>12}{len(row.latencies):>9,}{p50:>9.2f}{p99:>9.2f}"
            f"{p99 / idle_p99:>9.2f}x{cpu_per_thousand(row.redis_cpu_s, row):>10}"
            f"{cpu_per_thousand(row.postgres_cpu_s, row):>8}"
        )
    print(f"baseline: idle p50 {idle_p50:.2f} ms, p99 {idle_p99:.2f} ms (same run, same data)")
    print(
        "Redis ms, PG ms: CPU milliseconds per 1,000 updates, the queries' share included "
        "(idle: per second of queries alone)"
    )


if __name__ == "__main__":
    main()
