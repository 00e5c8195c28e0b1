"""A nearby query answered by brute force over PostGIS: the reference a query overlay shows.

Every entity near the point is read and ranked by the service's own reference
(:func:`discovery.search.ranking.brute_force`: the distance, score, filters, staleness
and order of ``GET /v1/nearby``), so that the figures shown here are the ones
the API gives, bit for bit, and a stale bike or charger is no candidate.  The
only SQL is a loose ``ST_DWithin`` prefilter; whether an entity is within the
radius is judged on h3's sphere in Python.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from discovery.debug.tiles import Dot
from discovery.search.postgis import candidate_of
from discovery.search.query import NearbyQuery
from discovery.search.ranking import Hit, brute_force
from indexer.hot.index import ENTITY_COLUMNS
from indexer.rules import Candidate

#: Relative margin of the prefilter: PostGIS's sphere is 2.6e-7 larger than h3's.
REACH_MARGIN = 1e-3

SCAN = f"""
SELECT {ENTITY_COLUMNS} FROM entities
WHERE ST_DWithin(geog, ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)::geography,
                 %(reach_m)s, false)
"""


@dataclass(frozen=True, slots=True)
class Reference:
    """The brute-force answer to one query.

    ``candidates``: every entity within the radius that the filters admit
    (staleness and open_now included), in the query's order, ungrouped and
    before any cursor; ``hits`` and ``more``: the page the API must give.
    """

    candidates: tuple[Hit, ...]
    hits: tuple[Hit, ...]
    more: bool


def scan_candidates(conn: psycopg.Connection, query: NearbyQuery) -> list[Candidate]:
    """Every entity that may lie within the query's radius (a superset), unfiltered."""
    reach_m = query.radius_m * (1.0 + REACH_MARGIN) + 1.0
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(SCAN, {"lat": query.lat, "lng": query.lng, "reach_m": reach_m})
        return [candidate_of(row, query.usage_factor) for row in cur.fetchall()]


def reference_answer(conn: psycopg.Connection, query: NearbyQuery) -> Reference:
    """The query answered by scanning PostGIS and ranking with :mod:`discovery.search.ranking`."""
    scanned = scan_candidates(conn, query)
    hits, more = brute_force(query, scanned)
    # Every candidate: the same query, ungrouped, from the start, on one page.
    everything = dataclasses.replace(query, group=None, after=None, limit=len(scanned))
    candidates, _ = brute_force(everything, scanned)
    return Reference(tuple(candidates), tuple(hits), more)


def dot_of(hit: Hit) -> Dot:
    """A hit as the map shows it (from its display document)."""
    doc = hit.document()
    return Dot(id=hit.id, kind=doc.get("kind", ""), lat=doc["lat"], lng=doc["lng"])
