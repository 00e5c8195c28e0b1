"""GET /v1/nearby with ``q`` against a brute force applying the text rule, over real PostGIS."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from discovery.search import nearby_script
from discovery.search.finder import find_nearby
from discovery.search.params import parse_nearby
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.services import Services
from discovery.settings import RankingSettings
from indexer.model import Entity
from indexer.settings import DEFAULT_STALE_S
from indexer.store.catalog import MiniApp
from indexer.store.writer import write_entities
from indexer.text import parse_query
from tests.conftest import CURSOR_KEY, Index
from tests.factories import (
    Taken,
    clear_catalog,
    random_text_query,
    store,
    text_brute_force,
    text_catalog,
    text_entities,
    write_apps,
)

SEOUL = (37.5665, 126.978)
RADII = (100.0, 1_000.0, 5_000.0, 50_000.0)


def reference_query(args: dict[str, Any]) -> NearbyQuery:
    """The query the API builds from ``args``, with no page size (every hit)."""
    values = {name: [str(value)] for name, value in args.items()}
    stale = StaleLimits(by_kind=dict(DEFAULT_STALE_S))
    query = parse_nearby(values, RankingSettings(), stale, time.time(), CURSOR_KEY)
    return replace(query, limit=10**9)


def pages(client: FlaskClient, args: dict[str, Any]) -> tuple[list[tuple], list[dict]]:
    """Every page of the API's answer, following its cursors: (id, distance, score,
    count) of each result, and the bodies."""
    found: list[tuple] = []
    bodies = []
    cursor: str | None = None
    while True:
        asked = {**args, "cursor": cursor} if cursor else args
        response = client.get("/v1/nearby", query_string=asked)
        assert response.status_code == 200, response.json
        body = response.json
        bodies.append(body)
        found += [(r["id"], r["distance_m"], r["score"], r.get("count")) for r in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return found, bodies


def expected(args: dict[str, Any], entities: list[Entity], apps: list[MiniApp]) -> list[tuple]:
    """The brute force's whole answer, as :func:`pages` gives the API's."""
    hits, _ = text_brute_force(reference_query(args), entities, apps)
    return [(h.id, h.distance_m, h.score, h.group_count) for h in hits]


@pytest.fixture
def city(index: Index) -> Iterator[tuple[list[Entity], list[MiniApp]]]:
    """Stores around Seoul with names in Latin, Hangul and Han, and their catalog."""
    clear_catalog(index)
    rng = random.Random(5)
    apps = text_catalog(rng)
    write_apps(index, apps, replace=True)
    entities = text_entities(rng, 500, *SEOUL)
    write_entities(index.conn, index.hot, "t", entities)
    yield entities, apps
    clear_catalog(index)


@pytest.mark.parametrize("route", ["", "ids", "cells"])
@pytest.mark.parametrize("seed", range(6))
def test_q_matches_brute_force(client, city, seed, route, monkeypatch) -> None:
    """Every way the hot index finds a q's candidates gives the brute force's pages."""
    monkeypatch.setattr(nearby_script, "TEXT_ROUTE", route)
    entities, apps = city
    rng = random.Random(seed)
    names = [e.name for e in entities] + [e.category for e in entities] + [a.name for a in apps]
    checked = 0
    for _ in range(12):
        q = random_text_query(rng, names)
        args: dict[str, Any] = {
            "lat": SEOUL[0],
            "lng": SEOUL[1],
            "q": q,
            "radius": rng.choice(RADII),
            "sort": rng.choice(("score", "distance", "popularity")),
            "limit": rng.choice((1, 3, 20)),
        }
        if rng.random() < 0.3:
            args["group"] = "mini_app"
        if rng.random() < 0.2:
            args["category"] = "cafe,편의점"
        want = expected(args, entities, apps)
        found, bodies = pages(client, args)
        assert found == want, args
        assert {body["source"] for body in bodies} == {"redis"}
        checked += len(want)
    assert checked > 0


@pytest.mark.parametrize(
    ("q", "ids"),
    [
        ("caf", ["t:1", "t:2"]),
        ("regatta CAF", ["t:1"]),
        ("kmarket", ["t:3"]),
        ("k-market kamppi", ["t:3"]),
        ("스타벅스", ["t:4"]),
        ("강남", ["t:4"]),
        ("强", ["t:5"]),
        ("apteekki", ["t:6"]),  # the mini-app's catalog name
        ("kahvi", ["t:2"]),
        ("mcdonalds", ["t:7"]),
        ("stockmann", []),
    ],
)
def test_pinned_examples(index, client, q, ids) -> None:
    clear_catalog(index)
    write_apps(index, [MiniApp("yliopiston", "Yliopiston Apteekki")], replace=True)
    write_entities(
        index.conn,
        index.hot,
        "t",
        [
            store(1, name="Café Regatta"),
            store(2, name="Kahvila Sävy", category="cafe"),
            store(3, name="K-Market Kamppi"),
            store(4, name="스타벅스 강남R점"),
            store(5, name="小强理发"),
            store(6, name="Yliopiston", mini_app="yliopiston"),
            store(7, name="McDonald's", lat=60.171),
        ],
    )
    found, _ = pages(client, {"lat": 60.17, "lng": 24.94, "q": q, "sort": "distance"})
    assert sorted(row[0] for row in found) == ids
    clear_catalog(index)


def test_search_text_follows_names_and_the_catalog(index, client) -> None:
    clear_catalog(index)

    def ids(q: str) -> list[str]:
        return sorted(row[0] for row in pages(client, {"lat": 60.17, "lng": 24.94, "q": q})[0])

    write_entities(index.conn, index.hot, "t", [store(1, name="Ruohonjuuri", mini_app="alpha")])
    assert ids("alphabet") == []  # no catalog entry yet
    write_apps(index, [MiniApp("alpha", "Alphabet Soup")], replace=True)
    assert ids("alphabet") == ["t:1"]
    assert ids("ruoho soup") == ["t:1"]
    write_apps(index, [MiniApp("alpha", "Beta Bakery")], replace=False)
    assert ids("alphabet") == []
    assert ids("bakery") == ["t:1"]
    write_entities(index.conn, index.hot, "t", [store(1, name="Juurikas", mini_app="alpha")])
    assert ids("ruoho") == []
    assert ids("juuri beta") == ["t:1"]
    write_apps(index, [MiniApp("other", "Other")], replace=True)  # alpha gone
    assert ids("beta") == []
    assert ids("juurikas") == ["t:1"]
    clear_catalog(index)


def test_bad_q_is_refused(client) -> None:
    for q in ("", "   ", "-!?", "a" * 101):
        response = client.get("/v1/nearby", query_string={"lat": 60.17, "lng": 24.94, "q": q})
        assert response.status_code == 400, q
        assert response.json["error"]["param"] == "q"
    ok = client.get("/v1/nearby", query_string={"lat": 60.17, "lng": 24.94, "q": "a" * 100})
    assert ok.status_code == 200


def test_explain_states_the_terms(index, client) -> None:
    write_entities(index.conn, index.hot, "t", [store(1, name="Café 小强")])
    body = client.get(
        "/v1/nearby", query_string={"lat": 60.17, "lng": 24.94, "q": "CAFÉ 小", "explain": "true"}
    ).json
    assert [r["id"] for r in body["results"]] == ["t:1"]
    assert body["explain"]["q"] == {"prefixes": ["cafe"], "substrings": ["小"]}


def test_a_cursor_belongs_to_its_q(index, client) -> None:
    write_entities(index.conn, index.hot, "t", [store(i, name="Kahvila") for i in range(3)])
    args = {"lat": 60.17, "lng": 24.94, "q": "kahvi", "limit": 1}
    cursor = client.get("/v1/nearby", query_string=args).json["next_cursor"]
    other = client.get("/v1/nearby", query_string={**args, "q": "kahvil", "cursor": cursor})
    assert other.status_code == 400
    assert other.json["error"]["param"] == "cursor"


def test_q_from_postgis_when_redis_is_down(city, redis_down_app) -> None:
    """With Redis down the same pages come from PostGIS."""
    entities, apps = city
    client = redis_down_app.test_client()
    rng = random.Random(3)
    names = [e.name for e in entities] + [a.name for a in apps]
    for _ in range(6):
        args = {"lat": SEOUL[0], "lng": SEOUL[1], "q": random_text_query(rng, names),
                "radius": rng.choice(RADII), "limit": 5}  # fmt: skip
        found, bodies = pages(client, args)
        assert found == expected(args, entities, apps), args
        assert {body["source"] for body in bodies} == {"postgis"}


def test_both_ways_of_the_hot_index_agree(index, api_settings) -> None:
    """A rare word is answered from the ids under it, a common one by reading the cells
    with each text checked (explain says which: members read); both exact."""
    rng = random.Random(11)
    common = [store(i, 37.5 + rng.random() * 0.1, 127.0 + rng.random() * 0.1,
                    name=f"Kahvila {i}") for i in range(3000)]  # fmt: skip
    rare = [store(5000 + i, 37.5 + rng.random() * 0.1, 127.0 + rng.random() * 0.1,
                  name="Heiskasen Leipomo") for i in range(7)]  # fmt: skip
    entities = common + rare
    write_entities(index.conn, index.hot, "t", entities)
    notes = Taken()
    services = Services(api_settings, notes)
    try:
        for q, most in (("heiskasen", 7), ("kahvila", None)):
            for sort in ("score", "distance", "popularity"):
                query = NearbyQuery(lat=37.55, lng=127.05, radius_m=20_000.0, limit=5,
                                    sort=sort, text=parse_query(q))  # fmt: skip
                found = find_nearby(services, query)
                assert found.source == "redis"
                want, _ = text_brute_force(replace(query, limit=5), entities, [])
                assert [h.id for h in found.hits] == [h.id for h in want]
                if most is not None:  # each call (a stage by distance) reads the ids alone
                    assert found.stats["members"] <= most * found.stats["calls"], found.stats
                else:
                    assert found.stats["members"] > 7, found.stats
    finally:
        services.close()


def test_a_top_by_popularity_reads_the_ids_best_first(index, api_settings, monkeypatch) -> None:
    """A name's term's ids are sorted by popularity: a top by popularity over them reads
    as far as its last place needs, not every id (explain's members), and is exact."""
    monkeypatch.setattr(nearby_script, "TEXT_ROUTE", "ids")
    rng = random.Random(3)
    entities = [store(i, 37.5 + rng.random() * 0.1, 127.0 + rng.random() * 0.1,
                      name=f"Kahvila {i}", popularity=float(rng.randint(0, 400)))
                for i in range(1500)]  # fmt: skip
    write_entities(index.conn, index.hot, "t", entities)
    services = Services(api_settings, Taken())
    try:
        for radius_m in (2_000.0, 20_000.0):
            query = NearbyQuery(lat=37.55, lng=127.05, radius_m=radius_m, limit=5,
                                sort="popularity", text=parse_query("kahvila"))  # fmt: skip
            found = find_nearby(services, query)
            want, _ = text_brute_force(query, entities, [])
            assert [h.id for h in found.hits] == [h.id for h in want]
            assert found.source == "redis" and found.stats["members"] < 500, found.stats
    finally:
        services.close()


def test_points_next_to_an_entity_by_a_hair(index, client) -> None:
    """PostgreSQL refuses the products that underflow here; the answer is still exact."""
    entities = [store(1, 0.0, 0.0, name="Kahvila"), store(2, 0.0, 0.001, name="Kahvila Kuu")]
    write_entities(index.conn, index.hot, "t", entities)
    for args in (
        {"q": "kahvi", "lat": -0.0001, "lng": 4.08e-301, "limit": 1},
        {"q": "kahvi", "lat": 1e-320, "lng": 0.0, "group": "mini_app"},
        {"q": "kahvi", "lat": 0.0, "lng": 5e-324, "sort": "distance"},
    ):
        found, _ = pages(client, args)
        assert found == expected(args, entities, []), args
