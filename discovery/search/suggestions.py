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

The order: by the sum of the listed popularity of the entities within the
radius that carry it, highest first; then by how many they are; then by the
text in code point order; then mini-app before category before name.  The
first :data:`MOST` are answered.

PostGIS answers: an entity that carries a completion matching ``q`` matches
``q`` itself (its words include the completion's), so SQL reads only the
entities in the radius that match (the trigram index finds them), and
Python measures each exactly and counts what it carries.
"""

from __future__ import annotations

import math
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

CARRIERS_SQL = """
SELECT e.name, e.category, e.mini_app, coalesce(m.name, '') AS app_name, e.popularity,
       e.lat, e.lng
FROM entities e LEFT JOIN mini_apps m ON m.slug = e.mini_app
WHERE ST_DWithin(e.geog, ST_SetSRID(ST_MakePoint(%(lng)s::float8, %(lat)s::float8), 4326)
                 ::geography, %(reach)s::float8, false)
  {filters} {text}
"""


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One completion: its text and kind, the mini-app's slug (kind ``mini_app``), and
    how many entities within the radius carry it, with their popularity summed."""

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


@dataclass(frozen=True, slots=True)
class Carrier:
    """What a completion reads of an entity within the radius."""

    name: str
    category: str
    mini_app: str
    #: The catalog's name of the mini-app ("" when it has none).
    app_name: str
    popularity: float


def carried(carrier: Carrier) -> Iterable[tuple[str, str, str | None]]:
    """The completions an entity carries: (kind, text, slug)."""
    if carrier.mini_app and carrier.app_name:
        yield "mini_app", carrier.app_name, carrier.mini_app
    if carrier.category:
        yield "category", carrier.category, None
    if carrier.name:
        yield "name", carrier.name, None


def suggest(query: TextQuery, carriers: Iterable[Carrier], most: int = MOST) -> list[Suggestion]:
    """The best ``most`` completions of ``query`` that ``carriers`` (the entities within
    the radius) carry.  This is the definition; the tests' brute force calls it too."""
    popularities: dict[tuple[str, str, str | None], list[float]] = {}
    matched: dict[str, bool] = {}
    for carrier in carriers:
        for key in carried(carrier):
            label = key[1]
            if label not in matched:
                matched[label] = text.matches(query, text.words(label))
            if matched[label]:
                popularities.setdefault(key, []).append(carrier.popularity)
    # fsum: the sum correctly rounded, whatever order the entities came in.
    found = [
        Suggestion(label, kind, slug, len(values), math.fsum(values))
        for (kind, label, slug), values in popularities.items()
    ]
    return sorted(found, key=Suggestion.order)[:most]


def postgis_suggest(conn: psycopg.Connection, query: NearbyQuery) -> list[Suggestion]:
    """The completions of ``query.text`` around its point, from PostGIS."""
    if query.text is None:
        raise ValueError("a suggest query has a text")
    clauses, text_params = text.match_sql(query.text, "e.search_text")
    sql = CARRIERS_SQL.format(filters=rules.filters_sql(query), text=clauses)
    params = {
        "lat": query.lat,
        "lng": query.lng,
        "reach": query.radius_m * (1 + 1e-6) + 1.0,
        **rules.filter_params(query),
        **text_params,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    carriers = (
        Carrier(row["name"], row["category"], row["mini_app"], row["app_name"], row["popularity"])
        for row in rows
        if rules.distance_m(query.lat, query.lng, row["lat"], row["lng"]) <= query.radius_m
    )
    return suggest(query.text, carriers)
