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

The order is that of each completion's best carrier under ``sort=popularity``:
the highest popularity among the entities within the radius that carry it (the
listed one plus the usage at the query's popularity time,
:func:`indexer.rules.popularity_now`), then the nearest of those, then its id in
byte order; then mini-app before category before name (one entity carries one
completion of each kind).  The first :data:`MOST` are answered, each with its
best carrier's id, distance and popularity.

The hot index answers (discovery/search/nearby_text.lua, completing), in one
call, or in two whose best completions merge when the names must be read from
the cells.  Names: the entities under the rarest term
of ``q`` among their names' index terms when they are few, else the cells read
as a top by popularity reads them, each part of an entity's text matched on its
own, the best of each name kept, until no entity left can carry a better one.
Categories and mini-apps: each group's carriers hash names those its entities
carry, with their words; of those that match ``q``, the ones few entities carry
are read whole (their sets), the others found through the cells by popularity,
and the read ends as soon as each has a carrier that nothing left can beat.
PostGIS answers when Redis cannot: SQL reads the entities in the radius that
match (the trigram index finds them) and Python measures them with
:mod:`indexer.rules`' distance and picks each completion's best carrier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import psycopg
from psycopg.rows import dict_row

from discovery.search import coverage
from discovery.search.hot import RedisSearch, Stats, stages
from discovery.search.nearby_script import Split, results_of, script_args
from discovery.search.query import NearbyQuery
from indexer import rules, text
from indexer.text import TextQuery

#: Completions answered at most.
MOST = 10
#: Completions are looked for within this radius unless asked otherwise (metres).
DEFAULT_RADIUS_M = 5000.0
#: The kinds of completion, in the order that breaks the last ties.
KINDS = ("mini_app", "category", "name")
#: Each kind's place in that order, by its key's letter (:class:`Completion`).
KEY_RANKS = {"a": 0, "c": 1, "n": 2}
#: What a call of the hot index completes: every kind (names, then the others) ...
EVERY_PART = "nca"
#: ... or, when the names must be read from the cells, names, then the others apart.
PARTS = ("n", "ca")

_NEAR = """
    FROM entities e
    WHERE ST_DWithin(e.geog, ST_SetSRID(ST_MakePoint(%(lng)s::float8, %(lat)s::float8), 4326)
                     ::geography, %(reach)s::float8, false)
      {filters} {text}
"""
#: The entities near enough that match, with the words of each part of their text.
ROWS_SQL = f"""
SELECT e.id, e.name, e.name_words, e.category, e.category_words, e.mini_app,
       coalesce(m.name, '') AS app_name, coalesce(m.words, '') AS app_words,
       {rules.POPULARITY_SQL} AS popularity, e.lat, e.lng
FROM (SELECT e.* {_NEAR}) e LEFT JOIN mini_apps m ON m.slug = e.mini_app
"""


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One completion: its text and kind, the mini-app's slug (kind ``mini_app``), and
    its best carrier within the radius: its id, distance and popularity."""

    text: str
    kind: str
    slug: str | None
    popularity: float
    distance_m: float
    id: str

    def order(self) -> tuple[float, float, bytes, int]:
        """The key that puts the best completion first."""
        return (-self.popularity, self.distance_m, self.id.encode(), KINDS.index(self.kind))

    def as_json(self) -> dict[str, Any]:
        """The completion as the API shows it."""
        return {
            "text": self.text,
            "kind": self.kind,
            "slug": self.slug,
            "popularity": self.popularity,
            "distance_m": self.distance_m,
            "id": self.id,
        }


def carried(query: TextQuery, row: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """The completions an entity row carries that match ``query`` alone."""
    parts = (
        ("mini_app", row["app_name"], row["mini_app"] or None, row["app_words"]),
        ("category", row["category"], None, row["category_words"]),
        ("name", row["name"], None, row["name_words"]),
    )
    return [
        (kind, label, slug)
        for kind, label, slug, stored in parts
        if label and text.matches_text(query, stored)
    ]


def best(query: TextQuery, rows: Iterable[dict[str, Any]], most: int = MOST) -> list[Suggestion]:
    """The best ``most`` completions that the rows (entities within the radius, each
    with its ``distance_m``) carry."""
    found: dict[tuple[str, str, str | None], Suggestion] = {}
    for row in rows:
        for key in carried(query, row):
            kind, label, slug = key
            offer = Suggestion(label, kind, slug, row["popularity"], row["distance_m"], row["id"])
            held = found.get(key)
            if held is None or offer.order() < held.order():
                found[key] = offer
    return sorted(found.values(), key=Suggestion.order)[:most]


def postgis_suggest(conn: psycopg.Connection, query: NearbyQuery) -> list[Suggestion]:
    """The completions of ``query.text`` around its point, from PostGIS."""
    if query.text is None:
        raise ValueError("a suggest query has a text")
    clauses, text_params = text.match_sql(query.text, "e.search_text")
    params = {
        "lat": query.lat,
        "lng": query.lng,
        "reach": query.radius_m * (1 + 1e-6) + 1.0,
        "usage_factor": query.usage_factor,
        **rules.filter_params(query),
        **text_params,
    }
    sql = ROWS_SQL.format(filters=rules.filters_sql(query), text=clauses)
    near = []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        for row in cur:
            row["distance_m"] = rules.distance_m(query.lat, query.lng, row["lat"], row["lng"])
            if row["distance_m"] <= query.radius_m:
                near.append(row)
    return best(query.text, near)


@dataclass(frozen=True, slots=True)
class Completion:
    """A completion as the script finds it: its key (its kind's letter, n, c or a, then
    the name, the category or the mini-app's slug) and its best carrier's id, distance
    and popularity."""

    key: str
    id: str
    distance_m: float
    popularity: float

    def order(self) -> tuple[float, float, bytes, int]:
        """The key that puts the best completion first (as :meth:`Suggestion.order`)."""
        return (-self.popularity, self.distance_m, self.id.encode(), KEY_RANKS[self.key[0]])


def completions(search: RedisSearch, query: NearbyQuery) -> list[Completion]:
    """The best ``query.limit`` completions of ``query.text`` from the hot index (mode p
    completing, staged by distance where the radius holds no popularity, as the top
    mini-apps are): one call for every kind, or, when the names must be read from the
    cells, the best names and the best categories and mini-apps asked apart, merged."""
    stats = Stats()
    covered: dict[tuple[float, int], tuple[str, str, bytes, bytes, str]] = {}

    def staged(
        query: NearbyQuery, stats: Stats, mode: str, flat: str, parts: str
    ) -> tuple[list[Completion], bool]:
        # A stage answers once it holds a completion more than asked (each one's best
        # carrier within it is its best).
        for radius_m, res in stages(query, mode):
            cells = covered.get((radius_m, res))
            if cells is None:
                cells = covered[radius_m, res] = coverage.script_cells(
                    query.lat, query.lng, radius_m, res
                )
            args = script_args(
                search.hot.prefix, query, mode + "b", radius_m, query.limit + 1, cells, flat, parts
            )
            reply = search.reply(args, cells[1], res, stats)
            found = [
                Completion(key.decode(), eid, distance, popularity)
                for eid, distance, _, popularity, _, _, key in results_of(reply)
            ]
            if len(found) > query.limit or radius_m >= query.radius_m:
                return found[: query.limit], len(found) > query.limit
        raise AssertionError("the last stage covers the whole radius")

    try:
        return search.unflattened(query, stats, partial(staged, parts=EVERY_PART))[0]
    except Split:
        found = []
        for parts in PARTS:
            found += search.unflattened(query, stats, partial(staged, parts=parts))[0]
        return sorted(found, key=Completion.order)[: query.limit]


def redis_suggest(
    search: RedisSearch, query: NearbyQuery, app_names: Mapping[str, str]
) -> list[Suggestion]:
    """The completions of ``query.text`` from the hot index (``app_names``: the catalog's
    name of each slug)."""
    found = completions(search, replace(query, limit=MOST, sort="popularity"))
    kinds = {"a": "mini_app", "c": "category", "n": "name"}
    suggestions = []
    for completion in found:
        kind, value = kinds[completion.key[0]], completion.key[1:]
        label, slug = (app_names.get(value, value), value) if kind == "mini_app" else (value, None)
        suggestions.append(
            Suggestion(
                label, kind, slug, completion.popularity, completion.distance_m, completion.id
            )
        )
    return suggestions
