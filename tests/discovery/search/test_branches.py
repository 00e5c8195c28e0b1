"""The nearest branches of the mini-apps a query names, read from their branches sets
(discovery/search/nearby_branches.lua), against the brute force: pages, one per
mini-app, filters and stale bikes, next to a GEO set's latitude limit and the
antimeridian (where the cells answer), and through moves and changes of mini-app;
``cache verify`` finds a branches set that disagrees, and a rebuild mends it."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from discovery.search.branches import branch_route
from discovery.search.finder import find_nearby
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.ranking import brute_force
from discovery.search.services import Services
from discovery.settings import RankingSettings
from indexer.hot import layout
from indexer.hot.verify import verify_generation
from indexer.hot.verify_branches import geo_score
from indexer.model import Entity
from indexer.settings import DEFAULT_STALE_S
from indexer.store.writer import write_entities
from tests.discovery.search.test_search import PENTAGON, RADII, destination, random_entity
from tests.factories import Taken, candidate_of

#: Where the branches are: a city, next to a pentagon, next to the latitudes a GEO set
#: holds (some of its entities beyond them), near the antimeridian, at a pole.
PLACES = {
    "seoul": (37.5665, 126.978),
    "pentagon": PENTAGON,
    "edge": (84.8, 30.0),
    "east": (-16.5, 179.7),
    "north_pole": (89.9995, 0.0),
}
#: Mini-apps of many sizes, and the sets of them queries name ("ghost" has no branch).
APPS = ("", "kfc", "kfc", "kfc", "alko", "alko", "volt", *(f"solo{n}" for n in range(8)))
NAMED = (
    ("kfc",),
    ("solo1",),
    ("ghost",),
    ("kfc", "solo2", "ghost"),
    ("alko", "volt", "solo3", "solo4", "solo5"),
    ("one3",),
    ("kfc", "one7", "one8", "one9", "one10"),
)


def app_of(rnd: random.Random) -> str:
    """A mini-app from APPS, or one of sixty with a store or two each (a group's hash
    keeps those)."""
    return f"one{rnd.randrange(60)}" if rnd.random() < 0.2 else rnd.choice(APPS)


FILTERS = ({}, {}, {"kinds": ("bike",)}, {"available": True}, {"categories": ("cafe",)})


def entities_of(seed: int, place: str, size: int = 300) -> list[Entity]:
    """Random entities around ``place`` (test_search's kinds, ties and staleness), their
    mini-apps drawn from APPS, and a crowd of two chains' branches within 60 m of it
    (more than a set's first count within its first circle; a few at one spot)."""
    rnd = random.Random(seed)
    lat, lng = PLACES[place]
    now = datetime.now(UTC)
    made = [random_entity(rnd, i, lat, lng, now) for i in range(size)]
    spread = [replace(e, mini_app=app_of(rnd)) for e in made]
    crowd = []
    for i in range(80):
        at = (
            destination(lat, lng, rnd.uniform(0, 6.283), rnd.uniform(0, 60))
            if i % 10
            else (lat, lng)
        )
        e = random_entity(rnd, size + i, lat, lng, now)
        crowd.append(replace(e, lat=at[0], lng=at[1], mini_app=rnd.choice(("kfc", "alko"))))
    return spread + crowd


def query_of(place: str, ask: dict) -> NearbyQuery:
    ranking = RankingSettings()
    lat, lng = destination(*PLACES[place], ask["bearing"], ask["offset_m"])
    return NearbyQuery(
        lat=lat, lng=lng, radius_m=ask["radius"], sort="distance",
        group="mini_app" if ask["distinct"] else None, counts=False,
        mini_apps=NAMED[ask["named"]], scale_m=ask["radius"] * ranking.scale_fraction,
        popularity_weight=ranking.popularity_weight, limit=ask["limit"], now_s=time.time(),
        stale=StaleLimits(by_kind=dict(DEFAULT_STALE_S)), **FILTERS[ask["filter"]],
    )  # fmt: skip


def figures(hits) -> list[tuple]:
    return [(h.id, h.distance_m, h.score, h.popularity) for h in hits]


asks = st.fixed_dictionaries(
    {
        "radius": st.sampled_from(RADII),
        "distinct": st.booleans(),
        "limit": st.sampled_from((1, 2, 3, 5, 20)),
        "named": st.integers(0, len(NAMED) - 1),
        "offset_m": st.sampled_from((0.0, 25.0, 400.0, 5_000.0)),
        "bearing": st.floats(0, 6.283),
        "filter": st.integers(0, len(FILTERS) - 1),
    }
)
FIRST = {"radius": 50_000.0, "distinct": True, "limit": 5, "named": 4, "offset_m": 0.0,
         "bearing": 0.0, "filter": 0}  # fmt: skip


def check(services: Services, place: str, ask: dict, candidates: list) -> None:
    query = query_of(place, ask)
    want, more = brute_force(query, candidates)
    found = find_nearby(services, query)
    assert found.source == "redis"
    assert figures(found.hits) == figures(want), ask
    assert found.more == more, ask


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    place=st.sampled_from(sorted(PLACES)),
    seed=st.integers(0, 10_000),
    asked=st.lists(asks, min_size=6, max_size=6),
)
@example(place="seoul", seed=1, asked=[{**FIRST, "radius": r} for r in RADII])
@example(place="edge", seed=2, asked=[{**FIRST, "radius": r, "distinct": False} for r in RADII])
@example(place="east", seed=3, asked=[{**FIRST, "radius": r, "named": 3} for r in RADII])
@example(place="pentagon", seed=4, asked=[{**FIRST, "limit": 20, "distinct": False}] * 6)
def test_nearest_branches_match_the_brute_force(index, api_settings, place, seed, asked) -> None:
    entities = entities_of(seed, place)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    candidates = [candidate_of(e) for e in entities]
    services = Services(api_settings, Taken())
    try:
        for ask in asked:
            check(services, place, ask, candidates)
    finally:
        services.close()


def test_the_branches_route_stays_where_geo_sets_reach() -> None:
    def route(lat: float, lng: float, radius_m: float, **more) -> bool:
        fields = {"mini_apps": ("kfc",), **more}
        return branch_route(NearbyQuery(lat=lat, lng=lng, radius_m=radius_m, **fields))

    assert route(37.5, 127.0, 50_000)
    assert not route(37.5, 127.0, 50_000, mini_apps=())
    assert route(84.9, 30.0, 10.0) and not route(84.9, 30.0, 20_000)
    assert not route(89.9, 0.0, 10.0) and not route(-85.1, 0.0, 10.0)
    assert route(-16.5, 179.7, 10_000) and not route(-16.5, 179.7, 50_000)
    assert not route(-16.5, -179.99, 10.0)


def test_the_scores_are_those_geoadd_gives(index) -> None:
    rnd = random.Random(7)
    points = [(rnd.uniform(-180, 180), rnd.uniform(-85.05, 85.05)) for _ in range(500)]
    points += [(-180.0, -layout.GEO_LAT_MAX), (180.0, layout.GEO_LAT_MAX), (0.0, 0.0)]
    key = "nearby-test-geo-scores"
    client = index.hot.client
    client.delete(key)
    for n, (lng, lat) in enumerate(points):
        client.geoadd(key, (repr(lng), repr(lat), f"p{n}"))
    held = dict(client.zrange(key, 0, -1, withscores=True))
    client.delete(key)
    assert [held[f"p{n}"] for n in range(len(points))] == [
        float(geo_score(lng, lat)) for lng, lat in points
    ]


def moved(rnd: random.Random, entity: Entity) -> Entity:
    lat, lng = destination(entity.lat, entity.lng, rnd.uniform(0, 6.283), rnd.choice((5, 800)))
    return replace(entity, lat=lat, lng=lng, mini_app=app_of(rnd))


def test_moves_and_changes_of_mini_app_keep_the_branches_exact(index, api_settings) -> None:
    rnd = random.Random(11)
    entities = entities_of(5, "seoul")
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    services = Services(api_settings, Taken())
    try:
        for _ in range(4):
            changed = [moved(rnd, e) for e in rnd.sample(entities, 60)]
            gone = rnd.sample([e for e in entities if e not in changed], 10)
            by_id = {e.id: e for e in entities} | {e.id: e for e in changed}
            for e in gone:
                del by_id[e.id]
            entities = list(by_id.values())
            write_entities(index.conn, index.hot, "t", entities, replace=True)
            candidates = [candidate_of(e) for e in entities]
            for named in range(len(NAMED)):
                ask = {**FIRST, "named": named, "radius": 4_000.0}
                check(services, "seoul", ask, candidates)
                check(services, "seoul", {**ask, "distinct": False, "limit": 20}, candidates)
        gen = index.hot.require_generation()
        assert verify_generation(index.hot, gen, index.conn) == []
    finally:
        services.close()


def test_verify_finds_a_branches_set_that_disagrees_and_a_rebuild_mends_it(
    index, api_settings
) -> None:
    entities = entities_of(9, "seoul")
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    gen = index.hot.require_generation()
    assert verify_generation(index.hot, gen, index.conn) == []
    kfc = sorted(e.id for e in entities if e.mini_app == "kfc")
    tags = {layout.tag_of(cell) for cell in index.hot.client.hget(
        layout.loc_key(index.hot.prefix, gen), kfc[0]).split()[2::2]}  # fmt: skip
    key = layout.branches_key(index.hot.prefix, gen, sorted(tags)[0], "kfc")
    client = index.hot.client
    client.zrem(key, kfc[0])
    client.geoadd(key, ("10.0", "10.0", "t:stray"))
    client.geoadd(key, ("0.0", "0.0", kfc[1]))
    problems = {
        (d.id, d.problem.split(" ")[0]) for d in verify_generation(index.hot, gen, index.conn)
    }
    assert {(kfc[0], "missing"), ("t:stray", "stray"), (kfc[1], "position")} <= problems
    services = Services(api_settings, Taken())
    try:
        ask = {**FIRST, "named": 0, "radius": 50_000.0, "distinct": False, "limit": 20}
        query = query_of("seoul", ask)
        found = {h.id for h in find_nearby(services, query).hits}
        assert kfc[0] not in found  # the answer comes from the branches sets
        index.hot.rebuild(index.conn)
        gen = index.hot.require_generation()
        assert verify_generation(index.hot, gen, index.conn) == []
        want, _ = brute_force(query, [candidate_of(e) for e in entities])
        assert figures(find_nearby(services, query).hits) == figures(want)
    finally:
        services.close()


def branches_of(index, slug: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Where a mini-app's branches are held: per group tag, the ids in its hash, and the
    ids in its GEO set."""
    gen = index.hot.require_generation()
    client = index.hot.client
    tags: set[str] = set()
    base = layout.generation_base(index.hot.prefix, gen)
    for key in client.scan_iter(match=f"{base}{{*}}:*"):
        tags.add(key.split("{")[1].split("}")[0])
    small, geo = {}, {}
    for tag in sorted(tags):
        held = client.hget(layout.branch_hash_key(index.hot.prefix, gen, tag), slug)
        if held:
            small[tag] = sorted(held.split(layout.SEP))
        members = client.zrange(layout.branches_key(index.hot.prefix, gen, tag, slug), 0, -1)
        if members:
            geo[tag] = sorted(members)
    return small, geo


def test_a_mini_app_moves_from_the_hash_to_a_geo_set_as_it_grows(index, api_settings) -> None:
    rnd = random.Random(13)
    lat, lng = PLACES["seoul"]
    now = datetime.now(UTC)

    def stores(count: int) -> list[Entity]:
        made = [random_entity(rnd, i, lat, lng, now) for i in range(count)]
        near = [replace(e, kind="store", seen_at=None, available=None, capacity=None) for e in made]
        return [replace(e, lat=lat + 0.001 * (i % 7), mini_app="grow") for i, e in enumerate(near)]

    services = Services(api_settings, Taken())
    try:
        crowd = stores(20)
        for count in (3, layout.SMALL_BRANCHES, layout.SMALL_BRANCHES + 4, 5, 0):
            entities = crowd[:count]
            write_entities(index.conn, index.hot, "t", entities, replace=True)
            small, geo = branches_of(index, "grow")
            held = sorted(i for ids in [*small.values(), *geo.values()] for i in ids)
            assert held == sorted(e.id for e in entities), count
            assert not (small.keys() & geo.keys())
            gen = index.hot.require_generation()
            assert verify_generation(index.hot, gen, index.conn) == []
            query = replace(query_of("seoul", {**FIRST, "distinct": False, "limit": 20}),
                            mini_apps=("grow",))  # fmt: skip
            want, _ = brute_force(query, [candidate_of(e) for e in entities])
            assert figures(find_nearby(services, query).hits) == figures(want), count
        # Grown past the hash, then shrunk, the app kept its GEO set until it emptied.
    finally:
        services.close()


def test_verify_finds_branches_held_wrong_in_a_hash(index) -> None:
    entities = [replace(e, mini_app=f"one{n}") for n, e in enumerate(entities_of(17, "seoul")[:30])]
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    gen = index.hot.require_generation()
    assert verify_generation(index.hot, gen, index.conn) == []
    small, _ = branches_of(index, "one0")
    tag = next(iter(small))
    hash_key = layout.branch_hash_key(index.hot.prefix, gen, tag)
    client = index.hot.client
    client.hset(hash_key, "one1", layout.SEP.join([*small[tag], "t:stray"]))
    too_many = [f"t:x{n}" for n in range(layout.SMALL_BRANCHES + 1)]
    client.hset(hash_key, "one2", layout.SEP.join(too_many))
    client.geoadd(layout.branches_key(index.hot.prefix, gen, tag, "one0"), ("1.0", "1.0", "t:y"))
    problems = [d.problem for d in verify_generation(index.hot, gen, index.conn)]
    assert any(p.startswith("stray id") and "one1" in p for p in problems)
    assert any("a GEO set's many" in p for p in problems)
    assert any(p.startswith("both in") for p in problems)
