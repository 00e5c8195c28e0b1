"""The top mini-apps without counts (group=mini_app as /v1/discover asks it): the hot
index's best-first search against the brute force, in every order, at the poles, the
antimeridian and next to pentagons, and the PostGIS path the same."""

from __future__ import annotations

import random
import time
from dataclasses import replace

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from discovery.search.finder import find_nearby
from discovery.search.postgis import postgis_search
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.ranking import brute_force
from discovery.search.services import Services
from discovery.settings import RankingSettings
from indexer.model import Entity
from indexer.settings import DEFAULT_STALE_S
from indexer.store.writer import write_entities
from tests.discovery.search.test_search import PLACES, RADII, data_set, destination
from tests.factories import Taken, candidate_of

#: Mini-apps of many sizes: a few big chains, many of one or two branches, and none.
APPS = ("", "", "kfc", "kfc", "kfc", "alko", "alko", "volt", *(f"solo{n}" for n in range(12)))
FILTERS = ({}, {}, {"kinds": ("store",)}, {"available": True}, {"mini_apps": ("kfc", "solo3")})


def entities_of(seed: int, place: str) -> list[Entity]:
    """test_search's data set around ``place``, its mini-apps drawn from APPS."""
    rnd = random.Random(seed)
    return [replace(e, mini_app=rnd.choice(APPS)) for e in data_set(seed, place, 300)]


def query_of(place: str, ask: dict) -> NearbyQuery:
    ranking = RankingSettings()
    lat, lng = destination(*PLACES[place], ask["bearing"], ask["offset_m"])
    return NearbyQuery(
        lat=lat, lng=lng, radius_m=ask["radius"], group="mini_app", counts=False,
        sort=ask["sort"], scale_m=ask["radius"] * ranking.scale_fraction,
        popularity_weight=ranking.popularity_weight, limit=ask["limit"], now_s=time.time(),
        stale=StaleLimits(by_kind=dict(DEFAULT_STALE_S)), **FILTERS[ask["filter"]],
    )  # fmt: skip


def figures(hits) -> list[tuple]:
    return [(h.id, h.distance_m, h.score, h.popularity, h.group_count) for h in hits]


asks = st.fixed_dictionaries(
    {
        "radius": st.sampled_from(RADII),
        "sort": st.sampled_from(("score", "distance", "popularity")),
        "limit": st.sampled_from((1, 2, 3, 5, 10, 30)),
        "offset_m": st.sampled_from((0.0, 25.0, 400.0, 5_000.0)),
        "bearing": st.floats(0, 6.283),
        "filter": st.integers(0, len(FILTERS) - 1),
    }
)
FIRST = {"radius": 50_000.0, "limit": 5, "offset_m": 0.0, "bearing": 0.0, "filter": 0}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    place=st.sampled_from(sorted(PLACES)),
    seed=st.integers(0, 10_000),
    asked=st.lists(asks, min_size=6, max_size=6),
)
@example(place="north_pole", seed=1, asked=[{**FIRST, "sort": "score"}] * 6)
@example(place="antimeridian", seed=2, asked=[{**FIRST, "sort": "popularity"}] * 6)
@example(place="pentagon", seed=3, asked=[{**FIRST, "sort": "distance", "filter": 4}] * 6)
@example(
    place="antimeridian",
    seed=4,
    asked=[{**FIRST, "sort": "distance", "radius": r, "limit": 2, "filter": 4} for r in RADII],
)
def test_top_mini_apps_match_the_brute_force(index, api_settings, place, seed, asked) -> None:
    entities = entities_of(seed, place)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    candidates = [candidate_of(e) for e in entities]
    notes = Taken()
    services = Services(api_settings, notes)
    try:
        for ask in asked:
            query = query_of(place, ask)
            want, more = brute_force(query, candidates)
            found = find_nearby(services, query)
            assert found.source == "redis"
            assert figures(found.hits) == figures(want), ask
            assert found.more == more, ask
            assert all(hit.group_count is None for hit in found.hits)
            fallback = postgis_search(index.conn, query)
            assert figures(fallback.hits) == figures(want), ask
    finally:
        services.close()
