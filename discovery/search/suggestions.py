"""Completions for a search box: mini-app names, categories and entity names that match
what was typed, those with the most popular matches nearby first.

A completion is a text of one of three kinds: a mini-app's catalog name (kind
``mini_app``), an entity's category (``category``) or an entity's name
(``name``), each exactly as stored.  It is offered for ``q`` when that text
alone matches ``q`` by the text rule (:mod:`indexer.text`: every word of ``q``
starts one of its words, every CJK piece occurs in one), and at least one
entity within the radius carries it: the entity's mini-app, category or name
*is* that text.  Stale bikes and chargers, which no search shows, carry
nothing.

The order: by the highest popularity among the entities within the radius
that carry it (the listed one plus the usage at the query's popularity time,
:func:`indexer.rules.popularity_now`); then by how many they are; then by the text in code
point order; then mini-app before category before name.  The first
:data:`MOST` are answered.

PostGIS answers: an entity that carries a completion matching ``q`` matches
``q`` itself (its words include the completion's), so SQL reads only the
entities in the radius that match (the trigram index finds them), measures
them with :mod:`indexer.rules`' distance, groups them by what they carry and
applies the rule to each group's text over its stored words (Python checks it
again), best first, the first :data:`MOST`.  Should PostgreSQL's arithmetic
refuse an underflow (a point a hair from an entity), Python measures and
groups the matching rows itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from discovery.search.query import NearbyQuery
from indexer import rules, text
from indexer.text import TextQuery

#: Completions answered at most.
MOST = 10
#: Completions are looked for within this radius unless asked otherwise (metres).
DEFAULT_RADIUS_M = 5000.0
#: The kinds of completion, in the order that breaks the last ties.
KINDS = ("mini_app", "category", "name")

_NEAR = """
    FROM entities e
    WHERE ST_DWithin(e.geog, ST_SetSRID(ST_MakePoint(%(lng)s::float8, %(lat)s::float8), 4326)
                     ::geography, %(reach)s::float8, false)
      {filters} {text}
"""
#: The matching entities within the radius grouped by what they carry, each group's
#: text matched by the rule (``{app}``, ``{category}``, ``{name}``: its clauses over
#: the text's words), best first (:meth:`Suggestion.order`), the first MOST.
GROUPS_SQL = f"""
WITH near AS (
    SELECT e.name, e.name_words, e.category, e.category_words, e.mini_app,
           {rules.POPULARITY_SQL} AS popularity
    FROM (SELECT e.* {_NEAR}) e
    {rules.DISTANCE_SQL}
    WHERE x.d <= %(radius)s::float8
)
SELECT * FROM (
    SELECT 0 AS rank, 'mini_app' AS kind, m.name AS label, n.mini_app AS slug,
           max(n.popularity) AS best, count(*) AS count
    FROM near n JOIN mini_apps m ON m.slug = n.mini_app
    WHERE m.name <> '' {{app}}
    GROUP BY n.mini_app, m.name
    UNION ALL
    SELECT 1, 'category', n.category, NULL, max(n.popularity), count(*) FROM near n
    WHERE n.category <> '' {{category}}
    GROUP BY n.category
    UNION ALL
    SELECT 2, 'name', n.name, NULL, max(n.popularity), count(*) FROM near n
    WHERE n.name <> '' {{name}}
    GROUP BY n.name
) g
ORDER BY best DESC, count DESC, label COLLATE "C", rank
LIMIT {MOST}
"""
#: The same entities as rows, for Python to measure and group.
ROWS_SQL = f"""
SELECT e.name, e.category, e.mini_app, coalesce(m.name, '') AS app_name,
       {rules.POPULARITY_SQL} AS popularity, e.lat, e.lng
FROM (SELECT e.* {_NEAR}) e LEFT JOIN mini_apps m ON m.slug = e.mini_app
"""


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One completion: its text and kind, the mini-app's slug (kind ``mini_app``), how
    many entities within the radius carry it, and the highest popularity among them."""

    text: str
    kind: str
    slug: str | None
    count: int
    popularity: float

    def order(self) -> tuple[float, int, str, int]:
        """The key that puts the best completion first."""
        return (-self.popularity, -self.count, self.text, KINDS.index(self.kind))

    def as_json(self) -> dict[str, Any]:
        """The completion as the API shows it."""
        return {
            "text": self.text,
            "kind": self.kind,
            "slug": self.slug,
            "count": self.count,
            "popularity": self.popularity,
        }


def best(query: TextQuery, groups: Iterable[Suggestion], most: int = MOST) -> list[Suggestion]:
    """The best ``most`` of the groups (one per text and kind) whose text matches ``query``."""
    matched: dict[str, bool] = {}
    found = []
    for group in groups:
        if group.text not in matched:
            matched[group.text] = text.matches(query, text.words(group.text))
        if matched[group.text]:
            found.append(group)
    return sorted(found, key=Suggestion.order)[:most]


def grouped(rows: Iterable[dict[str, Any]]) -> list[Suggestion]:
    """Entities (within the radius) grouped by what they carry, as GROUPS_SQL does."""
    groups: dict[tuple[str, str, str | None], tuple[float, int]] = {}
    for row in rows:
        carried = (
            ("mini_app", row["app_name"], row["mini_app"]),
            ("category", row["category"], None),
            ("name", row["name"], None),
        )
        for key in carried:
            if key[1]:
                top, count = groups.get(key, (0.0, 0))
                groups[key] = (max(top, row["popularity"]), count + 1)
    return [
        Suggestion(label, kind, slug, count, top)
        for (kind, label, slug), (top, count) in groups.items()
    ]


def postgis_suggest(conn: psycopg.Connection, query: NearbyQuery) -> list[Suggestion]:
    """The completions of ``query.text`` around its point, from PostGIS."""
    if query.text is None:
        raise ValueError("a suggest query has a text")
    clauses, text_params = text.match_sql(query.text, "e.search_text")
    filters = rules.filters_sql(query)
    params = {
        "lat": query.lat,
        "lng": query.lng,
        "reach": query.radius_m * (1 + 1e-6) + 1.0,
        "radius": query.radius_m,
        "usage_factor": query.usage_factor,
        **rules.point_params(query.lat, query.lng),
        **rules.filter_params(query),
        **text_params,
    }
    sql = GROUPS_SQL.format(
        filters=filters,
        text=clauses,
        app=text.match_sql(query.text, "m.words")[0],
        category=text.match_sql(query.text, "n.category_words")[0],
        name=text.match_sql(query.text, "n.name_words")[0],
    )
    with conn.cursor(row_factory=dict_row) as cur:
        try:
            cur.execute(sql, params)
            groups = [Suggestion(r["label"], r["kind"], r["slug"], r["count"], r["best"])
                      for r in cur.fetchall()]  # fmt: skip
        except psycopg.errors.NumericValueOutOfRange:
            conn.rollback()
            cur.execute(ROWS_SQL.format(filters=filters, text=clauses), params)
            near = [
                row
                for row in cur.fetchall()
                if rules.distance_m(query.lat, query.lng, row["lat"], row["lng"]) <= query.radius_m
            ]
            groups = grouped(near)
    return best(query.text, groups)
