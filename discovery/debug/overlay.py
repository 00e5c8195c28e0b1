"""What one nearby query did, as a query overlay shows it.

The covering and the ranked results are the service's own (the search, from
Redis or else PostGIS, exactly as ``GET /v1/nearby`` answers); the candidates
(every entity within the radius that the filters admit) come from
the brute-force reference (:mod:`discovery.debug.reference`), which is also
what the results must be the top of.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import psycopg
import redis

from discovery.debug.reference import dot_of, reference_answer
from discovery.debug.tiles import QueryOverlay
from discovery.search import coverage
from discovery.search.hot import RedisSearch
from discovery.search.params import parse_nearby
from discovery.search.postgis import postgis_search
from discovery.search.query import NearbyQuery
from discovery.search.result import SearchResult
from discovery.settings import RankingSettings
from indexer.hot.client import NoGeneration
from indexer.hot.index import HotIndex
from indexer.rules import StaleLimits

#: Parameters that place the query; the overlay lists the others.
PLACE = ("lat", "lng", "radius")


def search(conn: psycopg.Connection, hot: HotIndex, query: NearbyQuery) -> SearchResult:
    """The service's answer: the hot index, else PostGIS (as GET /v1/nearby answers)."""
    try:
        return RedisSearch(hot).search(query)
    except (NoGeneration, redis.RedisError):
        return postgis_search(conn, query)


def query_overlay(
    conn: psycopg.Connection,
    hot: HotIndex,
    args: Mapping[str, str],
    ranking: RankingSettings,
    stale: StaleLimits,
) -> QueryOverlay:
    """What a query with the parameters of GET /v1/nearby (``args``, as text) did.

    BadInput when ``args`` are not a valid query, as the API says it.
    """
    # The overlay shows a query's first page: a cursor is left out (no key to check it).
    query = parse_nearby(
        {name: [value] for name, value in args.items() if name != "cursor"},
        ranking,
        stale,
        time.time(),
        b"",
        hot.half_life_s,
    )
    params = {name: value for name, value in args.items() if name not in PLACE}
    reference = reference_answer(conn, query)
    answer = search(conn, hot, query)
    covering = coverage.cover(
        query.lat, query.lng, query.radius_m, coverage.resolution_for(query.radius_m)
    )
    return QueryOverlay(
        query.lat,
        query.lng,
        query.radius_m,
        tuple(cell.cell for cell in covering.cells),
        tuple(dot_of(hit) for hit in reference.candidates),
        tuple(dot_of(hit) for hit in answer.hits),
        params,
        f"search ({answer.source})",
    )
