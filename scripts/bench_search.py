"""Benchmark GET /v1/nearby on the dense synthetic city, beside raw PostGIS and Redis.

    python -m scripts.bench_search                       # the standard city
    python -m scripts.bench_search --stores 100000 --bikes 10000 --chargers 5000

Uses a database and a Redis prefix of its own (``nearby_bench_…``), loaded once
and reused while the city's size matches.  Every figure is measured in the same
run, on the same query points: our search in-process (parse, search, JSON body),
then PostGIS ``ST_DWithin`` + ``ORDER BY`` score, PostGIS ``<->`` KNN and Redis
``GEOSEARCH`` on a GEO set of the same entities; then requests per second over
HTTP against ``nearby serve`` (gunicorn, 2 workers) with wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import redis

from discovery.api.app import create_app
from discovery.api.current import services
from discovery.api.nearby import body_of
from discovery.search.finder import find_nearby
from discovery.search.params import parse_nearby
from discovery.settings import ApiSettings
from indexer.hot import layout
from indexer.hot.index import HotIndex, connect_redis
from indexer.model import INDEX_RESOLUTIONS
from indexer.settings import IndexSettings
from indexer.store import db
from indexer.store.writer import write_entities
from scripts.benchkit import ensure_database, log, scratch_settings, serve, summary
from scripts.gen_city import city_clusters, city_entities, city_points

SEED = 1
#: ``nearby serve`` as the HTTP figures run it, and wrk's threads and connections:
#: one wrk thread, so that the load generator leaves the cores to the server;
#: 16 connections, because gevent workers accept greedily: 8 keep-alive
#: connections often split 6/2 between the two workers, and one core then waits.
SERVE_ARGS = ("--workers", "2")
WRK_THREADS, WRK_CONNECTIONS = 1, 16
#: Live entities are loaded once and reused: keep them fresh for the benchmark.
MONTH_S = 30 * 86400
SCENARIOS = (
    ("1 km, score", 1_000, "score"),
    ("1 km, distance", 1_000, "distance"),
    ("10 km, score", 10_000, "score"),
    ("10 km, distance", 10_000, "distance"),
    ("50 km, score", 50_000, "score"),
    ("50 km, distance", 50_000, "distance"),
)

SCORE_SQL = """
SELECT id FROM (
    SELECT id, ST_Distance(geog, p.g, false) AS d, popularity FROM entities,
        (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)::geography AS g) p
    WHERE ST_DWithin(geog, p.g, %(r)s, false)
) c
ORDER BY power(0.5, power(d / %(scale)s, 2)) * (1 + ln(1 + popularity)) DESC, d, id
LIMIT 20
"""
KNN_SQL = """
SELECT id FROM entities,
    (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)::geography AS g) p
WHERE ST_DWithin(geog, p.g, %(r)s, false)
ORDER BY geog <-> p.g LIMIT 20
"""


@dataclass(frozen=True)
class City:
    """The size of the city to benchmark."""

    stores: int
    bikes: int
    chargers: int

    @property
    def total(self) -> int:
        """Entities in all."""
        return self.stores + self.bikes + self.chargers

    @property
    def name(self) -> str:
        """The suffix of the bench database and Redis prefix."""
        return f"{self.stores}_{self.bikes}_{self.chargers}"


def ensure_loaded(settings: IndexSettings, city: City, reload: bool) -> None:
    """Load the city into PostGIS and Redis unless it is there already; fill the GEO set."""
    conn = db.connect(settings.database_url)
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    found = conn.execute("SELECT count(*) FROM entities").fetchone()
    count = found[0] if found else 0
    if not reload and count == city.total and hot.generation() and not layout_matches(hot):
        log("the hot index has another layout: rebuilding it from PostGIS …")
        hot.rebuild(conn)
    if reload or count != city.total or hot.generation() is None:
        log(f"loading {city.total:,} entities …")
        started = time.perf_counter()
        conn.execute("TRUNCATE entities")
        conn.commit()
        hot.drop_all()
        hot.rebuild(conn)
        entities = city_entities(SEED, city.stores, city.bikes, city.chargers)
        write_entities(conn, hot, "city", entities)
        with psycopg.connect(settings.database_url, autocommit=True) as maintenance:
            maintenance.execute("VACUUM ANALYZE entities")
        load_geo_set(conn, hot)
        log(f"loaded in {time.perf_counter() - started:.0f} s")
    conn.close()
    hot.client.close()


def settle_redis(url: str) -> None:
    """Let Redis finish the snapshot its save policy would start in the middle of the timing.

    A snapshot forks the server and copies some 1.5 GB while queries run: after
    the load, take it now (BGSAVE, as the policy would) and wait for it to end.
    """
    client = connect_redis(url)
    try:
        if int(client.info("persistence")["rdb_changes_since_last_save"]) and client.config_get(
            "save"
        ).get("save"):
            log("letting Redis write its snapshot before timing …")
            with contextlib.suppress(redis.ResponseError):  # one is already running
                client.bgsave()
        while int(client.info("persistence")["rdb_bgsave_in_progress"]):
            time.sleep(0.5)
    finally:
        client.close()


def layout_matches(hot: HotIndex) -> bool:
    """True when an entity's placement in Redis has a cell per indexed resolution."""
    loc = layout.loc_key(hot.prefix, hot.require_generation())
    some = hot.client.hrandfield(loc, 1)
    if not some:
        return False
    return len(str(hot.client.hget(loc, some[0])).split()) == 1 + 2 * len(INDEX_RESOLUTIONS)


def load_geo_set(conn: psycopg.Connection, hot: HotIndex) -> None:
    """The GEOSEARCH baseline's GEO set: every entity by its point."""
    key = f"{hot.prefix}:geo"
    hot.client.delete(key)
    with conn.cursor(name="geo") as cur:
        cur.execute("SELECT id, lat, lng FROM entities")
        while rows := cur.fetchmany(10_000):
            pipe = hot.client.pipeline(transaction=False)
            for entity_id, lat, lng in rows:
                pipe.geoadd(key, (lng, lat, entity_id))
            pipe.execute()
    conn.commit()


def query_points(count: int) -> list[tuple[float, float]]:
    """Seeded query points, where people are: the city's own distribution."""
    points = city_points(random.Random(f"bench-queries-{SEED}"), city_clusters(SEED))
    return [next(points) for _ in range(count)]


def timed(run: Callable[[float, float], Any], points: list[tuple[float, float]]) -> list[float]:
    """Milliseconds of each call of ``run(lat, lng)``."""
    times = []
    for lat, lng in points:
        started = time.perf_counter()
        run(lat, lng)
        times.append((time.perf_counter() - started) * 1000)
    return times


def ours(app: Any, radius: int, sort: str) -> Callable[[float, float], Any]:
    """Our search, in-process: parse, search, build the JSON body."""

    def run(lat: float, lng: float) -> Any:
        args = {"lat": [repr(lat)], "lng": [repr(lng)], "radius": [str(radius)], "sort": [sort]}
        svc = services()
        key = svc.settings.cursor_key
        query = parse_nearby(args, svc.settings.ranking, svc.stale, time.time(), key)
        return body_of(query, find_nearby(svc, query), key)

    return run


def postgis(conn: psycopg.Connection, sql: str, radius: int) -> Callable[[float, float], Any]:
    """A raw PostGIS baseline."""

    def run(lat: float, lng: float) -> Any:
        params = {"lat": lat, "lng": lng, "r": radius, "scale": radius / 2}
        return conn.execute(sql, params).fetchall()

    return run


def geosearch(client: Any, key: str, radius: int) -> Callable[[float, float], Any]:
    """The raw Redis GEOSEARCH baseline (nearest 20 within the radius)."""

    def run(lat: float, lng: float) -> Any:
        return client.geosearch(
            key, longitude=lng, latitude=lat, radius=radius, unit="m", sort="ASC", count=20
        )

    return run


def in_process(settings: IndexSettings, points: list, baseline_points: list) -> list[list[str]]:
    """One row per scenario: ours, then the three baselines."""
    app = create_app(ApiSettings(index=settings))
    conn = psycopg.connect(settings.database_url, autocommit=True)
    rows = []
    with app.app_context():
        for name, radius, sort in SCENARIOS:
            # A server that has seen each query point once: coverings are cached.
            timed(ours(app, radius, sort), points)
            mine = timed(ours(app, radius, sort), points)
            sql = timed(postgis(conn, SCORE_SQL, radius), baseline_points)
            knn = timed(postgis(conn, KNN_SQL, radius), baseline_points)
            geo_key = f"{services().hot.prefix}:geo"  # where load_geo_set put it
            geo = timed(geosearch(services().redis, geo_key, radius), baseline_points)
            rows.append([name, summary(mine), summary(sql), summary(knn), summary(geo)])
            log(" | ".join(rows[-1]))
    conn.close()
    return rows


def http_rates(settings: IndexSettings, points: list, seconds: int) -> dict[str, float]:
    """Requests per second over HTTP per scenario, with wrk against ``nearby serve``."""
    if not shutil.which("wrk"):
        log("wrk is not installed: skipping the HTTP figures (apt-get install wrk)")
        return {}
    port = 18765
    env = {
        "NEARBY_STALE_BIKE_S": str(MONTH_S),
        "NEARBY_STALE_CHARGER_S": str(MONTH_S),
    }
    server = serve(settings, port, SERVE_ARGS, env)
    try:
        rates = {}
        # A fresh server first settles (its imports, first allocations, Redis
        # connections): measured rates keep rising for some 20 s after a start.
        _, radius, sort = SCENARIOS[0]
        wrk(port, points, radius, sort, 2 * seconds)
        for name, radius, sort in SCENARIOS:
            wrk(port, points, radius, sort, seconds)  # the workers' caches, as in-process
            rates[name] = wrk(port, points, radius, sort, seconds)
        return rates
    finally:
        server.terminate()
        server.wait(timeout=10)


def wrk(port: int, points: list, radius: int, sort: str, seconds: int) -> float:
    """Requests per second of wrk cycling through the query points."""
    query = f"radius={radius}&sort={sort}"
    paths = [f"/v1/nearby?lat={lat!r}&lng={lng!r}&{query}" for lat, lng in points]
    script = "local paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
    script += "local i = 0\nrequest = function()\n  i = i % #paths + 1\n"
    script += "  return wrk.format('GET', paths[i])\nend\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    url = f"http://127.0.0.1:{port}"
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{seconds}s",
        "-s",
        handle.name,
    ]
    command.append(url)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return 0.0


def how_run(args: argparse.Namespace) -> str:
    """One line on how the figures were measured."""
    return (
        f"`python -m scripts.bench_search` on {os.cpu_count()} cores, PostgreSQL, Redis and the"
        f" load generator on the same machine: {args.queries:,} query points drawn from the"
        f" city's own distribution, each run once to warm the caches, then timed; the baselines"
        f" on the first {args.baseline_queries:,}. HTTP: `nearby serve {' '.join(SERVE_ARGS)}`"
        f" (no access log), wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} for {args.http_seconds} s"
        " per query (after as long a run to warm the workers, and twice as long on the first"
        " query to settle the fresh server), cycling through the points."
    )


def table(rows: list[list[str]], rates: dict[str, float], city: City) -> Iterator[str]:
    """The markdown table."""
    yield (
        f"City: {city.stores:,} stores, {city.bikes:,} bikes, {city.chargers:,} chargers; "
        "top 20; in-process p50 / p99 in ms."
    )
    yield ""
    yield (
        "| query | nearby (Redis, exact) | HTTP req/s | PostGIS DWithin + ORDER BY score"
        " | PostGIS `<->` KNN | Redis GEOSEARCH |"
    )
    yield "|---|---|---|---|---|---|"
    for name, mine, sql, knn, geo in rows:
        rate = f"{rates[name]:,.0f}" if name in rates else "–"
        yield f"| {name} | {mine} | {rate} | {sql} | {knn} | {geo} |"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=1_000_000)
    parser.add_argument("--bikes", type=int, default=100_000)
    parser.add_argument("--chargers", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=30)
    parser.add_argument("--http-seconds", type=int, default=10)
    parser.add_argument("--reload", action="store_true", help="load the city again")
    args = parser.parse_args(argv)
    city = City(args.stores, args.bikes, args.chargers)
    settings = scratch_settings(city.name, stale_s={"bike": MONTH_S, "charger": MONTH_S})
    ensure_database(settings)
    ensure_loaded(settings, city, args.reload)
    settle_redis(settings.redis_url)
    points = query_points(args.queries)
    rows = in_process(settings, points, points[: args.baseline_queries])
    rates = http_rates(settings, points, args.http_seconds) if args.http_seconds else {}
    print("\n".join(table(rows, rates, city)))
    print()
    print(how_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
