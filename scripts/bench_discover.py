"""Benchmark GET /v1/discover (the pull-down screen) on the synthetic city.

    python -m scripts.bench_discover                    # the standard city's 1,000,000 stores
    python -m scripts.bench_discover --stores 100000

The city is :mod:`scripts.gen_city`'s, with a catalog of its 200 chains; a user
has 5 favourites and 10 recents among them (through POST /v1/events). A
database and a Redis prefix of its own (``nearby_bench_discover``), loaded once
and reused while the city's size matches.

Every figure is measured in the same run, in-process (parse, the searches, the
JSON body) on seeded query points where people are, each asked once: the screen
with the user and without, each of its searches alone (the nearby list, the
popular list, the nearest branches of the user's mini-apps, and those read
from the cells as without the branches sets), the nearby list
with the groups' counts (what /v1/nearby's group=mini_app reads), and PostgreSQL
alone answering the popular list (the best branch of each mini-app in the
radius by popularity, ``DISTINCT ON`` then ``ORDER BY``, ``LIMIT``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson
import psycopg

from discovery.api.app import create_app
from discovery.api.current import services
from discovery.api.discover import discover_body, listed_apps, nearest_of
from discovery.api.discover_params import DEFAULT_RADIUS_M, parse_discover
from discovery.search import branches
from discovery.settings import ApiSettings
from indexer.settings import IndexSettings
from indexer.store import db
from indexer.store.catalog import MiniApp
from indexer.store.users import add_favorite
from scripts.benchkit import ensure_database, ensure_stores, log, scratch_settings, summary, timed
from scripts.gen_city import BRANDS, city_stores, query_points

SEED = 1
USER = "bench-user"
KEY = "bench-key"
FAVORITES = BRANDS[:5]
RECENTS = BRANDS[3:13]

POPULAR_SQL = """
SELECT mini_app FROM (
    SELECT DISTINCT ON (mini_app) mini_app, popularity, d, id FROM (
        SELECT mini_app, popularity, ST_Distance(geog, p.g, false) AS d, id FROM entities,
            (SELECT ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)::geography AS g) p
        WHERE ST_DWithin(geog, p.g, %(r)s, false) AND mini_app <> ''
    ) c ORDER BY mini_app, popularity DESC, d, id
) best ORDER BY popularity DESC, d, id LIMIT 10
"""


def ensure_loaded(settings: IndexSettings, stores: int, reload: bool) -> None:
    """The city and its chains' catalog, loaded unless there; the user's favourites."""
    apps = [MiniApp(brand, f"Chain {brand[5:]}") for brand in BRANDS]
    ensure_stores(settings, stores, reload, apps, lambda: city_stores(SEED, stores))
    with db.connect(settings.database_url) as conn:
        for slug in FAVORITES:
            add_favorite(conn, USER, slug)
        conn.commit()


def args_of(lat: float, lng: float, user: bool) -> dict[str, list[str]]:
    """The parameters of a request for the screen at a point."""
    args = {"lat": [repr(lat)], "lng": [repr(lng)]}
    return {**args, "user": [USER]} if user else args


def screen(user: bool) -> Callable[[float, float], Any]:
    """GET /v1/discover in-process: parse, the searches, the JSON body."""

    def run(lat: float, lng: float) -> Any:
        svc = services()
        query, who = parse_discover(args_of(lat, lng, user), svc)
        return orjson.dumps(discover_body(svc, query, who))

    return run


def part(name: str) -> Callable[[float, float], Any]:
    """One of the screen's searches alone."""

    def run(lat: float, lng: float) -> Any:
        svc = services()
        query, _ = parse_discover(args_of(lat, lng, False), svc)
        if name == "nearest":
            return nearest_of(svc, query, [*FAVORITES, *RECENTS])
        if name == "nearest-cells":
            branches.READ_BRANCHES = False
            try:
                return nearest_of(svc, query, [*FAVORITES, *RECENTS])
            finally:
                branches.READ_BRANCHES = True
        if name == "counted":
            return listed_apps(svc, replace(query, counts=True), {})
        sorted_query = replace(query, sort="popularity") if name == "popular" else query
        return listed_apps(svc, sorted_query, {})

    return run


def raw_popular(conn: psycopg.Connection) -> Callable[[float, float], Any]:
    """PostgreSQL alone: the popular list's statement."""

    def run(lat: float, lng: float) -> Any:
        return conn.execute(POPULAR_SQL, {"lat": lat, "lng": lng, "r": DEFAULT_RADIUS_M}).fetchall()

    return run


def measure(settings: IndexSettings, unique: int, baseline: int) -> list[str]:
    """The table's rows, each on points of its own."""
    app = create_app(ApiSettings(index=settings, api_keys=frozenset({KEY})))
    client = app.test_client()
    events = [{"type": "open", "mini_app": slug, "user": USER, "at": time.time() - 60 + i}
              for i, slug in enumerate(RECENTS)]  # fmt: skip
    client.post("/v1/events", json=events, headers={"X-API-Key": KEY})
    conn = psycopg.connect(settings.database_url, autocommit=True)
    rows = []
    scenarios: tuple[tuple[str, Callable[[float, float], Any], int], ...] = (
        ("screen, with the user (5 favourites, 10 recents)", screen(True), unique),
        ("screen, no user", screen(False), unique),
        ("its nearby list (group=mini_app, by score)", part("nearby"), unique),
        ("its popular list (group=mini_app, sort=popularity)", part("popular"), unique),
        ("its nearest branches of the user's 12 mini-apps", part("nearest"), unique),
        ("baseline: the same, reading the cells (no branches sets)", part("nearest-cells"), unique),
        ("the nearby list with counts (as /v1/nearby?group=mini_app)", part("counted"), unique),
        ("PostgreSQL alone: the popular list", raw_popular(conn), baseline),
    )
    with app.app_context(), app.test_request_context(headers={"X-API-Key": KEY}):
        for name, run, count in scenarios:
            points = query_points(SEED, f"discover-{name}", count)
            rows.append(f"| {name} | {summary(timed(run, points))} | {count:,} |")
            log(rows[-1])
    conn.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300, help="unique points per row")
    parser.add_argument("--baseline-queries", type=int, default=50)
    parser.add_argument("--reload", action="store_true")
    options = parser.parse_args(argv)
    settings = scratch_settings("discover")
    ensure_database(settings)
    ensure_loaded(settings, options.stores, options.reload)
    rows = measure(settings, options.queries, options.baseline_queries)
    print(f"GET /v1/discover, {options.stores:,} stores, radius {DEFAULT_RADIUS_M:g} m,"
          " in-process, each point asked once (ms):\n")  # fmt: skip
    print("| request | p50 / p99 | points |\n|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
