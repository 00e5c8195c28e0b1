"""The copies of indexer.rules give its doubles and decisions, bit for bit.

The SQL fragments are evaluated in PostGIS, and nearby.lua's own functions in
Redis (the script up to its dispatch, then a few lines that call them), over
random inputs and the extremes: distance 0, antipodes, zero and huge
popularity, a decay that underflows, staleness at its cutoff.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from discovery.search.finder import HOT_SORTS
from discovery.search.nearby_script import nearby_source, script_args
from discovery.search.postgis import postgis_search
from discovery.search.query import NearbyQuery
from discovery.search.ranking import brute_force
from indexer import rules
from indexer.hot import encoding
from indexer.model import Entity, normalize_lng
from indexer.rules import Candidate, StaleLimits
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import candidate_of, point_at

QUERY_POINTS = [
    (37.5665, 126.978),
    (0.0, 0.0),
    (89.9995, 0.0),
    (-90.0, 45.0),
    (-16.5, 179.9995),
    (51.4779, -0.0015),
]
#: Scales and weights: the smallest the API takes makes the decay underflow.
RANKINGS = [(1.0, 0.0), (1.0, 10.0), (500.0, 1.0), (200_000.0, 2.5)]
POPULARITIES = (0.0, 1.0, 5e-324, 1e6, 1e300, math.e - 1)
NOW_S = 1_700_000_000.25
LIMITS = StaleLimits(by_kind={"bike": 300, "charger": 3600}, by_source={"slow": 7200})


def points_around(rnd: random.Random, lat: float, lng: float) -> list[tuple[float, float]]:
    """Random points near and far from (lat, lng), the point itself and its antipode."""
    points = [(lat, lng), (-lat, normalize_lng(((lng + 360.0) % 360.0) - 180.0))]
    for _ in range(60):
        far = 10 ** rnd.uniform(-3, 7.3)
        lat2, lng2 = point_at(lat, lng, rnd.uniform(0, 2 * math.pi), far)
        points.append((max(-90.0, min(90.0, lat2)), normalize_lng(lng2)))
    points += [(rnd.uniform(-90, 90), rnd.uniform(-180, 180)) for _ in range(20)]
    return points


def bits(value: float) -> bytes:
    """The double's bytes: equal bits, not merely equal values."""
    return struct.pack("<d", value)


# -- SQL ------------------------------------------------------------------------


def sql_figures(
    conn: Any, lat: float, lng: float, rows: list[tuple[float, float, float]], ranking
) -> list[tuple[float, float]]:
    """(distance, score) of each (lat, lng, popularity) row, as the fallback computes them."""
    sql = f"""
        SELECT x.d, {rules.score_sql("x.d", "e.popularity")}
        FROM unnest(%(lats)s::float8[], %(lngs)s::float8[], %(pops)s::float8[])
            WITH ORDINALITY AS e(lat, lng, popularity, i)
        {rules.DISTANCE_SQL}
        ORDER BY e.i
    """
    params = {
        "lats": [row[0] for row in rows],
        "lngs": [row[1] for row in rows],
        "pops": [row[2] for row in rows],
        **rules.point_params(lat, lng),
        **rules.score_params(*ranking),
    }
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


@pytest.mark.parametrize("lat, lng", QUERY_POINTS)
def test_sql_distance_and_score_are_the_rules(index: Index, lat: float, lng: float) -> None:
    rnd = random.Random(f"{lat},{lng}")
    rows = [(la, ln, rnd.choice(POPULARITIES)) for la, ln in points_around(rnd, lat, lng)]
    for ranking in RANKINGS:
        got = sql_figures(index.conn, lat, lng, rows, ranking)
        for (la, ln, popularity), (d, s) in zip(rows, got, strict=True):
            want_d = rules.distance_m(lat, lng, la, ln)
            assert bits(d) == bits(want_d), (lat, lng, la, ln)
            assert bits(s) == bits(rules.score_of(want_d, popularity, *ranking)), (la, ln, ranking)


def test_sql_decay_is_zero_exactly_where_pythons_underflows(index: Index) -> None:
    assert 0.5**rules.DECAY_ZERO_AT == 0.0
    assert 0.5 ** math.nextafter(rules.DECAY_ZERO_AT, 0.0) > 0.0
    scale = 3.0
    edge = scale * math.sqrt(rules.DECAY_ZERO_AT)
    # From 0 to half the earth's circumference: no distance the haversine gives is
    # nearer 0 than 1e-155 (the least subnormal's root), nor beyond 2.1e7.
    distances = [0.0, 1e-155, 1e-100, scale, edge, 2.1e7]
    for step in range(-4, 5):
        distances.append(edge + step * math.ulp(edge))
    sql = f"""
        SELECT {rules.score_sql("v.d", "v.p")}
        FROM unnest(%(d)s::float8[], %(p)s::float8[]) WITH ORDINALITY AS v(d, p, i) ORDER BY v.i
    """
    with index.conn.cursor() as cur:
        cur.execute(
            sql, {"d": distances, "p": [7.0] * len(distances), **rules.score_params(scale, 1.5)}
        )
        got = [row[0] for row in cur.fetchall()]
    want = [rules.score_of(d, 7.0, scale, 1.5) for d in distances]
    assert [bits(s) for s in got] == [bits(s) for s in want]
    assert 0.0 in want and min(s for s in want if s > 0) < 1e-300


def test_sql_popularity_is_pythons_bit_for_bit(index: Index) -> None:
    """listed + mass · factor (indexer.rules.popularity_now) in SQL and in Python, over
    listed popularities, masses (0 included) and factors of times around the epoch's."""
    rnd = random.Random(5)
    listed = [0.0, 1.0, 7.5, 1e12] + [rnd.expovariate(0.01) for _ in range(40)]
    masses = [0.0, 1e-300, 3.0, 2.0**500] + [rnd.choice((0.0, 10 ** rnd.uniform(-5, 200)))
                                             for _ in range(40)]  # fmt: skip
    sql = f"""
        SELECT {rules.POPULARITY_SQL}
        FROM unnest(%(p)s::float8[], %(m)s::float8[])
            WITH ORDINALITY AS e(popularity, usage_mass, i)
        ORDER BY e.i
    """
    for t_s in (rules.USAGE_EPOCH_S, NOW_S, NOW_S + 86400 * 365, NOW_S - 0.5):
        factor = rules.usage_factor(t_s, 7 * 86400.0)
        with index.conn.cursor() as cur:
            cur.execute(sql, {"p": listed, "m": masses, "usage_factor": factor})
            got = [row[0] for row in cur.fetchall()]
        want = [rules.popularity_now(p, m, factor) for p, m in zip(listed, masses, strict=True)]
        assert [bits(v) for v in got] == [bits(v) for v in want]
    assert rules.popularity_now(7.5, 0.0, math.inf) == 7.5  # no usage: the listed figure


def random_candidates(rnd: random.Random, count: int) -> list[Candidate]:
    """Candidates mixing every field a filter reads, staleness at and around its cutoffs."""
    seen_choices: list[float | None] = [None, NOW_S, NOW_S - 10, NOW_S - 5000, NOW_S - 9000]
    for limit in (300, 3600, 7200):
        seen_choices += [NOW_S - limit, NOW_S - limit - 1e-6, NOW_S - limit + 1e-6]
    candidates = []
    for i in range(count):
        kind = rnd.choice(("store", "bike", "charger"))
        seen = rnd.choice(seen_choices) if kind != "store" or rnd.random() < 0.1 else None
        if seen is not None:  # as PostgreSQL keeps it: whole microseconds
            seen = datetime.fromtimestamp(seen, UTC).timestamp()
        candidates.append(
            Candidate(
                id=f"c:{i}",
                lat=rnd.uniform(-1, 1),
                lng=rnd.uniform(-1, 1),
                kind=kind,
                popularity=rnd.choice(POPULARITIES),
                mini_app=rnd.choice(("", "kfc", "divvy")),
                category=rnd.choice(("", "cafe", "mart")),
                available=rnd.choice((None, 0, 1, 4)),
                source=rnd.choice(("t", "slow", "fast")),
                seen_at_s=seen,
            )
        )
    return candidates


def random_queries(rnd: random.Random, count: int) -> list[NearbyQuery]:
    """Queries asking for random filters: non-empty values, as the API parses them
    (open_now is Python's alone: never asked)."""

    def some(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v for v in values if rnd.random() < 0.4)

    return [
        NearbyQuery(
            lat=0.0,
            lng=0.0,
            kinds=some(("store", "bike", "charger")),
            categories=some(("cafe", "mart")),
            mini_apps=some(("kfc", "divvy")),
            available=rnd.random() < 0.3,
            now_s=NOW_S,
            stale=rnd.choice((LIMITS, StaleLimits(), StaleLimits(by_kind={"bike": 300}))),
        )
        for _ in range(count)
    ]


def seen_at_of(candidate: Candidate) -> datetime | None:
    """The candidate's seen_at as PostgreSQL holds it."""
    if candidate.seen_at_s is None:
        return None
    return datetime.fromtimestamp(candidate.seen_at_s, UTC)


def test_sql_filters_and_staleness_are_admits(index: Index) -> None:
    rnd = random.Random(7)
    candidates = random_candidates(rnd, 300)
    columns = {
        "kind": [c.kind for c in candidates],
        "category": [c.category for c in candidates],
        "mini_app": [c.mini_app for c in candidates],
        "available": [c.available for c in candidates],
        "source": [c.source for c in candidates],
        "seen_at": [seen_at_of(c) for c in candidates],
    }
    for query in random_queries(rnd, 40):
        sql = f"""
            SELECT e.i FROM unnest(%(kind)s::text[], %(category)s::text[], %(mini_app)s::text[],
                                   %(available)s::int[], %(source)s::text[],
                                   %(seen_at)s::timestamptz[])
                WITH ORDINALITY AS e(kind, category, mini_app, available, source, seen_at, i)
            WHERE true {rules.filters_sql(query)}
            ORDER BY e.i
        """
        with index.conn.cursor() as cur:
            cur.execute(sql, {**columns, **rules.filter_params(query)})
            got = [int(row[0]) - 1 for row in cur.fetchall()]
        want = [i for i, c in enumerate(candidates) if rules.admits(query, c)]
        assert got == want, query


def test_postgis_search_ranks_where_the_decay_underflows(index: Index) -> None:
    entities = [
        Entity(id=f"t:{i}", kind="store", lat=60.17 + i * 1e-3, lng=24.94, popularity=float(i))
        for i in range(40)
    ]
    write_entities(index.conn, index.hot, "t", entities)
    query = NearbyQuery(lat=60.17, lng=24.94, radius_m=5_000.0, scale_m=1.0, limit=30)
    hits, more = brute_force(query, [candidate_of(e) for e in entities])
    result = postgis_search(index.conn, query)

    def figures(page):
        return [(hit.id, hit.distance_m, hit.score) for hit in page]

    assert (figures(result.hits), result.more) == (figures(hits), more)
    assert hits[-1].score == 0.0


# -- nearby.lua -------------------------------------------------------------------
#
# The script runs as it is up to its dispatch (ARGV as the search sends them,
# no cells), then calls its own functions on what the ARGV after them (AT..) hold.

HARNESS = """
local what = ARGV[AT]
local out = {}
if what == 'evaluate' then
  local members = {}
  for i = AT + 1, #ARGV do members[#members + 1] = ARGV[i] end
  evaluate(1, members, function(id, d, s)
    out[#out + 1] = id
    out[#out + 1] = struct.pack('<dd', d, s)
  end)
elseif what == 'decay' then
  for i = AT + 1, #ARGV do out[#out + 1] = struct.pack('<d', decay(tonumber(ARGV[i]))) end
elseif what == 'order' then
  local hits = {}
  for i = AT + 1, #ARGV, 2 do
    local s, d = struct.unpack('<dd', ARGV[i])
    hits[#hits + 1] = {s = s, p = s, d = d, id = ARGV[i + 1]}
  end
  table.sort(hits, better)
  for _, hit in ipairs(hits) do out[#out + 1] = hit.id end
end
return out
"""


def harness() -> str:
    """nearby.lua up to its dispatch, then :data:`HARNESS`."""
    source = nearby_source()
    cut = source.index("\nif mode == 's' then")
    blank = NearbyQuery(lat=0.0, lng=0.0)
    at = len(script_args("p", blank, "a", 1.0, 0, ("t9", "", b"", b"", ""))) + 1
    return source[:cut] + f"\nlocal AT = {at}\n" + HARNESS


def run_lua(index: Index, query: NearbyQuery, radius_m: float, what: str, extra: list[Any]):
    """The harness's reply for ``query`` (ARGV as the search builds them)."""
    args = script_args(index.hot.prefix, query, "a", radius_m, 0, ("t9", "", b"", b"", ""))
    return index.hot.raw.eval(harness(), 0, *args, what, *extra)


def member_of(candidate: Candidate, rev: int) -> bytes:
    """The candidate's member in a cell set."""
    fields = (
        candidate.available,
        seen_at_of(candidate),
        candidate.source,
        candidate.mini_app,
        candidate.category,
    )
    return encoding.member(
        candidate.id,
        candidate.kind,
        candidate.lat,
        candidate.lng,
        candidate.popularity,
        rev,
        fields,
    )


@pytest.mark.parametrize("lat, lng", QUERY_POINTS)
def test_lua_distance_and_score_are_the_rules(index: Index, lat: float, lng: float) -> None:
    rnd = random.Random(f"lua {lat},{lng}")
    candidates = [
        Candidate(id=f"p:{i}", lat=la, lng=ln, kind="store", popularity=rnd.choice(POPULARITIES))
        for i, (la, ln) in enumerate(points_around(rnd, lat, lng))
    ]
    members = [member_of(c, i + 1) for i, c in enumerate(candidates)]
    for scale, weight in RANKINGS:
        query = NearbyQuery(lat=lat, lng=lng, scale_m=scale, popularity_weight=weight)
        reply = run_lua(index, query, 2.1e7, "evaluate", members)
        got = {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}
        assert set(got) == {c.id for c in candidates}
        for c in candidates:
            d = rules.distance_m(lat, lng, c.lat, c.lng)
            want = struct.pack("<dd", d, rules.score_of(d, c.popularity, scale, weight))
            assert got[c.id] == want, (c, scale, weight)


def test_lua_decay_is_the_rules(index: Index) -> None:
    scale = 3.0
    edge = scale * math.sqrt(rules.DECAY_ZERO_AT)
    distances = [0.0, 1e-155, scale, edge, 2.1e7, *(edge + k * math.ulp(edge) for k in (-2, 2))]
    query = NearbyQuery(lat=0.0, lng=0.0, scale_m=scale)
    reply = run_lua(index, query, 1.0, "decay", [repr(d) for d in distances])
    assert reply == [bits(rules.distance_term(d, scale)) for d in distances]


def test_lua_admit_is_admits(index: Index) -> None:
    rnd = random.Random(11)
    candidates = random_candidates(rnd, 300)
    members = [member_of(c, i + 1) for i, c in enumerate(candidates)]
    for query in random_queries(rnd, 40):
        reply = run_lua(index, query, 2.1e7, "evaluate", members)
        got = [reply[i].decode() for i in range(0, len(reply), 2)]
        assert got == [c.id for c in candidates if rules.admits(query, c)], query


@pytest.mark.parametrize("sort", HOT_SORTS)
def test_lua_order_is_order_key(index: Index, sort: str) -> None:
    rnd = random.Random(sort)
    hits = [
        (
            rnd.choice((0.0, 0.5, 1.0)),
            rnd.choice((0.0, 2.0, 3.0)),
            rnd.choice(("a", "B", "é", "ab")),
        )
        for _ in range(60)
    ]
    hits = [(s, d, f"{name}{i}") for i, (s, d, name) in enumerate(hits)]
    extra: list[Any] = []
    for s, d, entity_id in hits:
        extra += [struct.pack("<dd", s, d), entity_id]
    query = NearbyQuery(lat=0.0, lng=0.0, sort=sort)
    reply = [item.decode() for item in run_lua(index, query, 1.0, "order", extra)]
    key = {entity_id: rules.order_key(sort, s, d, entity_id.encode()) for s, d, entity_id in hits}
    assert reply == sorted(key, key=key.__getitem__)


def test_staleness_cutoffs_are_exact_at_the_limit() -> None:
    query = NearbyQuery(lat=0.0, lng=0.0, now_s=NOW_S, stale=LIMITS)
    at = datetime.fromtimestamp(NOW_S - 300, UTC)
    assert at.timestamp() == NOW_S - 300
    before = (at - timedelta(microseconds=1)).timestamp()
    bike = Candidate(id="b", lat=0.0, lng=0.0, kind="bike", source="t")
    assert rules.admits(query, replace(bike, seen_at_s=at.timestamp()))
    assert not rules.admits(query, replace(bike, seen_at_s=before))
    assert rules.admits(query, replace(bike, seen_at_s=before, source="slow"))
