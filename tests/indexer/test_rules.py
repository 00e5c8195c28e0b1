"""The rules: distance, score, order keys, filters and staleness."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import h3
from hypothesis import example, given
from hypothesis import strategies as st

from discovery.search.query import NearbyQuery
from indexer.rules import (
    SCORE_FORMULA,
    Candidate,
    StaleLimits,
    admits,
    distance_m,
    distance_term,
    is_stale,
    order_key,
    popularity_term,
    score_of,
)

PENTAGON = h3.cell_to_latlng(h3.get_pentagons(9)[7])
lats = st.floats(-90, 90)
lngs = st.floats(-180, 180, exclude_max=True)
NOW_S = 1_700_000_000.0


@given(lat1=lats, lng1=lngs, lat2=lats, lng2=lngs)
@example(lat1=90.0, lng1=0.0, lat2=89.9, lng2=179.0)
@example(lat1=0.0, lng1=179.9999, lat2=0.0, lng2=-179.9999)
@example(lat1=PENTAGON[0], lng1=PENTAGON[1], lat2=PENTAGON[0] + 0.01, lng2=PENTAGON[1])
@example(lat1=10.0, lng1=20.0, lat2=-10.0, lng2=-160.0)
def test_distance_is_h3s_bit_for_bit(lat1, lng1, lat2, lng2) -> None:
    assert distance_m(lat1, lng1, lat2, lng2) == h3.great_circle_distance(
        (lat1, lng1), (lat2, lng2), unit="m"
    )


def test_score_halves_at_the_scale() -> None:
    assert score_of(500.0, 0.0, 500.0, 1.0) == 0.5
    assert score_of(0.0, math.e - 1, 500.0, 2.0) == 3.0
    assert score_of(1e5, 1e300, 1.0, 10.0) == 0.0


@given(
    distance=st.floats(0, 2.1e7),
    popularity=st.floats(0, 1e12),
    scale=st.floats(1, 2e5),
    weight=st.floats(0, 10),
)
def test_the_formula_the_api_shows_is_the_score(distance, popularity, scale, weight) -> None:
    names = {
        "distance_m": distance,
        "scale_m": scale,
        "popularity_weight": weight,
        "popularity": popularity,
        "ln": math.log,
    }
    shown = eval(SCORE_FORMULA, {"__builtins__": {}}, names)  # noqa: S307 - our own constant
    assert shown == score_of(distance, popularity, scale, weight)
    assert distance_term(distance, scale) * popularity_term(popularity, weight) == shown


def test_order_keys_break_ties_by_distance_then_id_bytes() -> None:
    hits = [(1.0, 5.0, "b"), (1.0, 6.0, "a"), (1.0, 5.0, "Z"), (0.5, 1.0, "é")]

    def ordered(sort: str) -> list[str]:
        return [
            h[2] for h in sorted(hits, key=lambda h: order_key(sort, h[0], h[1], h[2].encode()))
        ]

    assert ordered("score") == ["Z", "b", "a", "é"]
    assert ordered("distance") == ["é", "Z", "b", "a"]


def test_is_stale_takes_the_source_limit_then_the_kind_limit() -> None:
    limits = StaleLimits(by_kind={"bike": 300}, by_source={"slow": 3600})
    assert is_stale(limits, "t", "bike", NOW_S - 301, NOW_S)
    assert not is_stale(limits, "t", "bike", NOW_S - 300, NOW_S)
    assert not is_stale(limits, "slow", "bike", NOW_S - 301, NOW_S)
    assert is_stale(limits, "slow", "bike", NOW_S - 3601, NOW_S)
    assert not is_stale(limits, "slow", "charger", NOW_S - 1e6, NOW_S)
    assert not is_stale(limits, "t", "store", NOW_S - 1e6, NOW_S)
    assert not is_stale(limits, "t", "bike", None, NOW_S)


def brute_admits(query: NearbyQuery, c: Candidate) -> bool:
    """Every filter spelt out at once (open_now not asked)."""
    limit = query.stale.by_source.get(c.source, query.stale.by_kind.get(c.kind))
    stale = (
        c.kind in query.stale.by_kind
        and c.seen_at_s is not None
        and c.seen_at_s < query.now_s - limit
    )
    return (
        (not query.kinds or c.kind in query.kinds)
        and (not query.categories or c.category in query.categories)
        and (not query.mini_apps or c.mini_app in query.mini_apps)
        and (not query.available or (c.available is not None and c.available >= 1))
        and not stale
    )


def test_admits_is_every_filter_at_once() -> None:
    rnd = random.Random(3)
    base = Candidate(id="x", lat=0.0, lng=0.0, kind="store")
    candidates = [
        replace(
            base,
            kind=rnd.choice(("store", "bike", "charger")),
            category=rnd.choice(("", "cafe")),
            mini_app=rnd.choice(("", "kfc")),
            available=rnd.choice((None, 0, 2)),
            source=rnd.choice(("t", "slow")),
            seen_at_s=rnd.choice((None, NOW_S, NOW_S - 1000, NOW_S - 5000)),
        )
        for _ in range(200)
    ]
    limits = StaleLimits(by_kind={"bike": 300, "charger": 3600}, by_source={"slow": 4000})
    for _ in range(100):
        query = NearbyQuery(
            lat=0.0,
            lng=0.0,
            kinds=tuple(k for k in ("store", "bike", "charger") if rnd.random() < 0.5),
            categories=("cafe",) if rnd.random() < 0.3 else (),
            mini_apps=("kfc",) if rnd.random() < 0.3 else (),
            available=rnd.random() < 0.3,
            now_s=NOW_S,
            stale=limits,
        )
        for c in candidates:
            assert admits(query, c) == brute_admits(query, c), (query, c)


def test_open_now_keeps_what_is_open() -> None:
    query = NearbyQuery(lat=0.0, lng=0.0, open_now=True, now_s=NOW_S)
    shop = Candidate(id="s", lat=0.0, lng=0.0, kind="store")
    assert admits(query, replace(shop, doc={"kind": "store", "opening_hours": "24/7"}))
    assert not admits(query, replace(shop, doc={"kind": "store", "opening_hours": "off"}))
    assert not admits(query, replace(shop, doc={"kind": "store"}))
    assert admits(query, replace(shop, kind="bike", doc={"kind": "bike"}))
