"""Nearby queries answered from PostGIS, when Redis is down or holds no index.

Same answers as the hot index, only slower.  SQL prefilters with the GiST
index (``ST_DWithin`` on the sphere, with a margin: PostGIS's sphere is 2.6e-7
larger than h3's), computes distance and score with :mod:`indexer.rules`' SQL
fragments, applies the filters SQL can (all but open_now), and returns the
best rows under a LIMIT.  Python then recomputes everything exactly and trusts
the LIMIT only when the page's last hit beats, with slack, the last row SQL
returned: rows left out could not rank; otherwise it asks for four times more.
With ``q``, SQL applies the text rule exactly over the stored words
(:func:`indexer.text.match_sql`, the trigram index finding them), so the
LIMIT holds as it does without it; Python checks the rule again.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

from discovery.search.hot import SearchResult
from discovery.search.query import NearbyQuery
from discovery.search.ranking import Hit, after, group_hits, hit_of, page, rank
from indexer import rules, text
from indexer.hot import encoding
from indexer.hot.index import ENTITY_COLUMNS
from indexer.rules import Candidate

#: Relative slack between SQL's doubles and Python's (they agree bit for bit
#: on one libm; the slack keeps answers exact should they not).
SLACK = 1e-9
#: Rows asked for first, at least.
FIRST_ROWS = 64

_E_COLUMNS = ", ".join(f"e.{name.strip()}" for name in ENTITY_COLUMNS.split(","))

CANDIDATES_SQL = f"""
SELECT * FROM (
    SELECT {_E_COLUMNS}{{text_column}}, x.d, {rules.POPULARITY_SQL} AS p,
           {rules.score_sql("x.d", rules.POPULARITY_SQL)} AS s
    FROM entities e
    {rules.DISTANCE_SQL}
    WHERE ST_DWithin(e.geog, ST_SetSRID(ST_MakePoint(%(lng)s::float8, %(lat)s::float8), 4326)
                     ::geography, %(reach)s::float8, false)
      {{filters}} {{text}}
) c
WHERE c.d <= %(radius_hi)s::float8 {{cursor}}
"""


def cursor_sql(query: NearbyQuery) -> str:
    """A loose cursor filter (Python applies the exact one)."""
    if query.after is None or query.group:
        return ""
    if query.sort == "distance":
        return "AND c.d >= %(cursor_d)s::float8"
    if query.sort == "popularity":
        return "AND c.p <= %(cursor_lead)s::float8"
    return "AND c.s <= %(cursor_lead)s::float8"


def text_sql(query: NearbyQuery) -> tuple[str, dict[str, str]]:
    """The query's text rule as ``AND`` clauses over the stored words, and their parameters.

    SQL applies the rule exactly (the trigram index finds the rows), so the
    LIMIT is as good as without ``q``; Python checks it again.
    """
    if query.text is None:
        return "", {}
    return text.match_sql(query.text, "e.search_text")


def params_of(query: NearbyQuery, limit: int | None) -> dict[str, Any]:
    """The statement's parameters."""
    params: dict[str, Any] = {
        "lat": query.lat,
        "lng": query.lng,
        **rules.point_params(query.lat, query.lng),
        **rules.score_params(query.scale_m, query.popularity_weight),
        **rules.filter_params(query),
        "reach": query.radius_m * (1 + 1e-6) + 1.0,
        "radius_hi": query.radius_m * (1 + SLACK),
        "limit": limit,
        "usage_factor": query.usage_factor,
        **text_sql(query)[1],
    }
    if query.after is not None:
        neg_lead, distance, _ = query.after
        params["cursor_lead"] = -neg_lead * (1 + SLACK) + 1e-300
        params["cursor_d"] = distance * (1 - SLACK)
    return params


def fetch(conn: psycopg.Connection, query: NearbyQuery, limit: int | None) -> list[dict[str, Any]]:
    """Rows within the radius (loosely) passing the SQL filters, best first, at most ``limit``."""
    sql = CANDIDATES_SQL.format(
        filters=rules.filters_sql(query),
        text=text_sql(query)[0],
        text_column="" if query.text is None else ", e.search_text",
        cursor=cursor_sql(query),
    )
    if limit is not None:
        sql += rules.ORDER_SQL[query.sort] + " LIMIT %(limit)s"
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params_of(query, limit))
        return cur.fetchall()


def candidate_of(row: dict[str, Any], usage_factor: float) -> Candidate:
    """A candidate (with its display document) from an entity row, its popularity
    the one at the time whose usage factor is ``usage_factor``."""
    seen = row.get("seen_at")
    return Candidate(
        id=row["id"],
        lat=row["lat"],
        lng=row["lng"],
        kind=row["kind"],
        popularity=rules.popularity_now(row["popularity"], row["usage_mass"], usage_factor),
        mini_app=row["mini_app"],
        category=row["category"],
        available=row["available"],
        source=row["source"],
        seen_at_s=None if seen is None else seen.timestamp(),
        doc=json.loads(encoding.display_document(row)),
    )


def exact_hits(query: NearbyQuery, rows: list[dict[str, Any]]) -> list[Hit]:
    """Rows recomputed and filtered exactly, as the brute force does."""
    hits = []
    factor = query.usage_factor
    for row in rows:
        candidate = candidate_of(row, factor)
        if query.text is not None and not text.matches_text(query.text, row["search_text"]):
            continue
        hit = hit_of(query, candidate)
        if hit.distance_m <= query.radius_m and rules.admits(query, candidate):
            hits.append(hit)
    return hits


def settled(query: NearbyQuery, ranked: list[Hit], last_row: dict[str, Any]) -> bool:
    """True when no row beyond ``last_row`` (in SQL's order) can enter the page."""
    want = query.limit + 1
    if len(ranked) < want:
        return False
    edge = ranked[want - 1]
    if query.sort == "distance":
        return edge.distance_m < last_row["d"] * (1 - SLACK)
    if query.sort == "popularity":
        return popularity_settled(edge, last_row)
    return edge.score > last_row["s"] * (1 + SLACK)


def popularity_settled(edge: Hit, last_row: dict[str, Any]) -> bool:
    """:func:`settled` for sort=popularity, whose ties are common (every popularity 0).

    SQL's popularity (:data:`indexer.rules.POPULARITY_SQL`) is Python's, with no
    libm function in between, so the two are equal: a tie with the last row is
    settled by the distance, as SQL's order has it.
    """
    if edge.popularity != last_row["p"]:
        return edge.popularity > last_row["p"]
    return edge.distance_m < last_row["d"] * (1 - SLACK)


PLAIN_SQL = f"""
SELECT {_E_COLUMNS}{{text_column}}
FROM entities e
WHERE ST_DWithin(e.geog, ST_SetSRID(ST_MakePoint(%(lng)s::float8, %(lat)s::float8), 4326)
                 ::geography, %(reach)s::float8, false)
  {{filters}} {{text}}
"""


def postgis_search(conn: psycopg.Connection, query: NearbyQuery) -> SearchResult:
    """The exact page for ``query`` from PostGIS.

    PostgreSQL's arithmetic raises where a product, quotient or power of doubles
    underflows (a query point a few hundred orders of magnitude from an entity's
    coordinates) and IEEE doubles give 0: then SQL only finds the rows in the
    radius, and Python ranks them all.
    """
    try:
        return ranked_search(conn, query)
    except psycopg.errors.NumericValueOutOfRange:
        conn.rollback()
    sql = PLAIN_SQL.format(
        filters=rules.filters_sql(query),
        text=text_sql(query)[0],
        text_column="" if query.text is None else ", e.search_text",
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params_of(query, None))
        rows = cur.fetchall()
    hits = exact_hits(query, rows)
    ranked = group_hits(hits, query) if query.group else rank(hits, query.sort)
    found, more = page(ranked, query)
    return SearchResult(tuple(found), more, "postgis", {"rows": len(rows)})


def ranked_search(conn: psycopg.Connection, query: NearbyQuery) -> SearchResult:
    """:func:`postgis_search` with SQL ranking the rows and a LIMIT."""
    if query.group:
        rows = fetch(conn, query, None)
        hits, more = page(group_hits(exact_hits(query, rows), query), query)
        return SearchResult(tuple(hits), more, "postgis", {"rows": len(rows)})
    limit = max(FIRST_ROWS, 4 * (query.limit + 1))
    while True:
        rows = fetch(conn, query, limit)
        ranked = [
            h
            for h in rank(exact_hits(query, rows), query.sort)
            if after(h, query.after, query.sort)
        ]
        if len(rows) < limit or settled(query, ranked, rows[-1]):
            hits = ranked[: query.limit]
            return SearchResult(
                tuple(hits), len(ranked) > query.limit, "postgis", {"rows": len(rows)}
            )
        limit *= 4


def entity_document(conn: psycopg.Connection, entity_id: str) -> dict[str, Any] | None:
    """The display document of one entity, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {ENTITY_COLUMNS} FROM entities WHERE id = %s", (entity_id,))
        row = cur.fetchone()
    return None if row is None else json.loads(encoding.display_document(row))
