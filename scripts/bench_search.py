"""Benchmark GET /v1/nearby on the dense synthetic city, beside raw PostGIS and Redis.

    python -m scripts.bench_search                       # the standard city
    python -m scripts.bench_search --stores 100000 --bikes 10000 --chargers 5000

Uses a database and a Redis prefix of its own (``nearby_bench_…``) per city and
popularity distribution (``--popularity``: zipf, flat, zero; default all),
loaded once and reused while the city's size matches.  Every figure is measured
in the same run: our search in-process (parse, search, JSON body) on query
points never asked before, each asked once (what users get), and on warm points
(asked once before); PostGIS ``ST_DWithin`` + ``ORDER BY`` score, PostGIS ``<->``
KNN and Redis ``GEOSEARCH`` on a GEO set of the same entities, on the same
unique points; then requests per second over HTTP against ``nearby serve``
(gunicorn, 2 workers) with wrk, on unique points, beside ``/healthz`` as the
server's ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from scripts.bench_http import Rate, have_wrk, how_wrk, wrk
from scripts.benchkit import (
    ensure_database,
    free_port,
    log,
    scratch_settings,
    serve,
    summary,
    timed,
)
from scripts.gen_city import POPULARITIES, city_entities, query_points

SEED = 1
#: ``nearby serve`` as the HTTP figures run it.
SERVE_ARGS = ("--workers", "2")
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
    popularity: str = "zipf"

    @property
    def total(self) -> int:
        """Entities in all."""
        return self.stores + self.bikes + self.chargers

    @property
    def name(self) -> str:
        """The suffix of the bench database and Redis prefix."""
        name = f"{self.stores}_{self.bikes}_{self.chargers}"
        return name if self.popularity == "zipf" else f"{name}_{self.popularity}"


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
        entities = city_entities(
            SEED, city.stores, city.bikes, city.chargers, popularity=city.popularity
        )
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


@dataclass
class Figures:
    """The in-process figures of one scenario, each ``p50 / p99`` in ms."""

    unique: str
    warm: str
    postgis: str
    knn: str
    geo: str


def in_process(settings: IndexSettings, label: str, counts: Counts) -> dict[str, Figures]:
    """Per scenario: ours on unique points and on warm ones, then the three baselines."""
    app = create_app(ApiSettings(index=settings))
    conn = psycopg.connect(settings.database_url, autocommit=True)
    warm_points = query_points(SEED, "warm", counts.warm)
    figures = {}
    with app.app_context():
        geo_key = f"{services().hot.prefix}:geo"  # where load_geo_set put it
        for name, radius, sort in SCENARIOS:
            # Points never asked before, each once: what users get.
            points = query_points(SEED, f"{label}-{name}", counts.unique)
            unique = timed(ours(app, radius, sort), points)
            # A server that has seen each of these points once: coverings are cached.
            timed(ours(app, radius, sort), warm_points)
            warm = timed(ours(app, radius, sort), warm_points)
            base = points[: counts.baseline]
            figures[name] = Figures(
                summary(unique),
                summary(warm),
                summary(timed(postgis(conn, SCORE_SQL, radius), base)),
                summary(timed(postgis(conn, KNN_SQL, radius), base)),
                summary(timed(geosearch(services().redis, geo_key, radius), base)),
            )
            log(f"{label} {name}: {figures[name]}")
    conn.close()
    return figures


@dataclass(frozen=True)
class Counts:
    """How many query points each figure is measured on."""

    unique: int
    warm: int
    baseline: int
    http_seconds: int


def nearby_paths(points: list[tuple[float, float]], radius: int, sort: str) -> list[str]:
    """The request paths of a scenario's points."""
    query = f"radius={radius}&sort={sort}"
    return [f"/v1/nearby?lat={lat!r}&lng={lng!r}&{query}" for lat, lng in points]


#: Unique points given to wrk a second of its run: more than the server can answer.
HTTP_POINTS_PER_S = 5000


def http_rates(settings: IndexSettings, label: str, counts: Counts, warm: bool) -> HttpFigures:
    """Requests per second over HTTP per scenario, with wrk against ``nearby serve``."""
    seconds = counts.http_seconds
    env = {"NEARBY_STALE_BIKE_S": str(MONTH_S), "NEARBY_STALE_CHARGER_S": str(MONTH_S)}
    port = free_port()
    server = serve(settings, port, SERVE_ARGS, env)
    figures = HttpFigures()
    try:
        # A fresh server first settles (its imports, first allocations, Redis
        # connections): measured rates keep rising for some 20 s after a start.
        settle = query_points(SEED, f"http-settle-{label}", HTTP_POINTS_PER_S * seconds)
        wrk(port, nearby_paths(settle, 1000, "score"), 2 * seconds)
        figures.healthz = wrk(port, ["/healthz"], seconds)
        warm_points = query_points(SEED, "warm", counts.warm)
        for name, radius, sort in SCENARIOS:
            points = query_points(SEED, f"http-{label}-{name}", HTTP_POINTS_PER_S * seconds)
            figures.unique[name] = wrk(port, nearby_paths(points, radius, sort), seconds)
            if warm:
                paths = nearby_paths(warm_points, radius, sort)
                wrk(port, paths, seconds)  # the workers' caches, as in-process
                figures.warm[name] = wrk(port, paths, seconds)
            log(f"{label} {name}: {figures.unique[name].per_s:,.0f} req/s on unique points")
        return figures
    finally:
        server.terminate()
        server.wait(timeout=10)


@dataclass
class HttpFigures:
    """The HTTP rates of one city: per scenario on unique points, warm, and /healthz."""

    unique: dict[str, Rate] = field(default_factory=dict)
    warm: dict[str, Rate] = field(default_factory=dict)
    healthz: Rate | None = None


def how_run(counts: Counts) -> str:
    """One line on how the figures were measured."""
    return (
        f"`python -m scripts.bench_search` on {os.cpu_count()} cores, PostgreSQL, Redis and the"
        f" load generator on the same machine. Unique: {counts.unique:,} query points per query"
        " and city, drawn from the city's own distribution, each asked once (no point asked"
        f" before in the run). Warm: {counts.warm:,} points asked once untimed, then timed."
        f" Baselines on the first {counts.baseline:,} unique points. HTTP: `nearby serve"
        f" {' '.join(SERVE_ARGS)}` (no access log), {how_wrk(counts.http_seconds)} per query,"
        " each request for a point never asked before (warm: cycling through the warm points"
        " after as long a run); `/healthz` is the server's ceiling: what it answers for a"
        " request that does no work."
    )


def rate_text(rate: Rate | None) -> str:
    """A rate as the table prints it; marked when some points were asked twice."""
    if rate is None:
        return "–"
    return f"{rate.per_s:,.0f}" + (" (repeats)" if rate.repeated else "")


def table(label: str, figures: dict[str, Figures], http: HttpFigures, city: City) -> Iterator[str]:
    """The markdown table of one popularity distribution."""
    ceiling = f"; `/healthz` {http.healthz.per_s:,.0f} req/s" if http.healthz else ""
    yield (
        f"City: {city.stores:,} stores, {city.bikes:,} bikes, {city.chargers:,} chargers,"
        f" popularity {label}; top 20; in-process p50 / p99 in ms{ceiling}."
    )
    yield ""
    yield (
        "| query | nearby, unique points | nearby, warm | HTTP req/s, unique | HTTP req/s, warm"
        " | PostGIS DWithin + ORDER BY score | PostGIS `<->` KNN | Redis GEOSEARCH |"
    )
    yield "|---|---|---|---|---|---|---|---|"
    for name, mine in figures.items():
        rates = f"{rate_text(http.unique.get(name))} | {rate_text(http.warm.get(name))}"
        yield (
            f"| {name} | {mine.unique} | {mine.warm} | {rates} | {mine.postgis} | {mine.knn}"
            f" | {mine.geo} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table per popularity distribution."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=1_000_000)
    parser.add_argument("--bikes", type=int, default=100_000)
    parser.add_argument("--chargers", type=int, default=50_000)
    parser.add_argument("--popularity", choices=POPULARITIES, action="append",
                        help="the distributions to measure (repeatable; default: all)")  # fmt: skip
    parser.add_argument("--queries", type=int, default=1000, help="unique points per query")
    parser.add_argument("--warm-queries", type=int, default=1000)
    parser.add_argument("--baseline-queries", type=int, default=30)
    parser.add_argument("--http-seconds", type=int, default=10)
    parser.add_argument("--reload", action="store_true", help="load the city again")
    args = parser.parse_args(argv)
    counts = Counts(args.queries, args.warm_queries, args.baseline_queries, args.http_seconds)
    http = bool(args.http_seconds) and have_wrk()
    if args.http_seconds and not http:
        log("wrk is not installed: skipping the HTTP figures (apt-get install wrk)")
    for label in args.popularity or POPULARITIES:
        city = City(args.stores, args.bikes, args.chargers, label)
        stale = {"bike": MONTH_S, "charger": MONTH_S}
        settings = scratch_settings(city.name, stale_s=stale)
        ensure_database(settings)
        ensure_loaded(settings, city, args.reload)
        settle_redis(settings.redis_url)
        figures = in_process(settings, label, counts)
        # The warm HTTP figures only on the standard city: they change little with it.
        rates = http_rates(settings, label, counts, label == "zipf") if http else HttpFigures()
        print("\n".join(table(label, figures, rates, city)), flush=True)
        print()
    print(how_run(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
