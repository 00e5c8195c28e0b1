"""GET /v1/nearby with sort=popularity against the brute force, over real PostGIS and Redis.

The hot index does not rank by popularity: PostGIS answers, and the finder
notes neither a Redis failure nor a missing index.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from discovery.search.finder import find_nearby
from discovery.search.params import parse_nearby
from discovery.search.postgis import postgis_search
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.ranking import brute_force
from discovery.search.services import Services
from discovery.settings import RankingSettings
from indexer.model import Entity
from indexer.rules import order_key
from indexer.settings import DEFAULT_STALE_S
from indexer.store.writer import write_entities
from tests.conftest import CURSOR_KEY, Index
from tests.factories import Taken, candidate_of, point_at, store

HELSINKI = (60.17, 24.94)
#: Popularity values with many ties (0 most of all, as listings without a figure have).
POPULARITIES = (0.0, 0.0, 0.0, 1.0, 1.0, 7.5, 250.0)
APPS = ("", "kfc", "alepa", "volt", "Ärrä")


def random_entities(rng: random.Random, count: int) -> list[Entity]:
    """Entities at every scale from 1 m to 60 km, with popularity and distance ties."""
    now = datetime.now(UTC)
    entities: list[Entity] = []
    for i in range(count):
        if entities and rng.random() < 0.1:  # the same place, often the same popularity
            twin = rng.choice(entities)
            entities.append(replace(twin, id=f"t:{rng.choice('aBé')}{i}"))
            continue
        spread = 10 ** rng.uniform(0, 4.8)
        lat, lng = point_at(*HELSINKI, rng.uniform(0, 2 * math.pi), rng.uniform(0, spread))
        kind = rng.choice(("store", "store", "bike"))
        entities.append(
            Entity(
                id=f"t:{rng.choice('aBé')}{i}",
                kind=kind,
                lat=lat,
                lng=lng,
                name=f"e{i}",
                category=rng.choice(("cafe", "mart")),
                mini_app=rng.choice(APPS),
                popularity=rng.choice(POPULARITIES) or rng.choice((0.0, rng.expovariate(0.1))),
                available=rng.choice((0, 2)) if kind == "bike" else None,
                capacity=4 if kind == "bike" else None,
                opening_hours=rng.choice((None, "24/7", "off")),
                seen_at=now - timedelta(seconds=10) if kind == "bike" else None,
            )
        )
    return entities


def reference_query(args: dict[str, Any]) -> NearbyQuery:
    """The query the API builds from ``args``, with no page size (every hit)."""
    values = {name: [str(value)] for name, value in args.items()}
    stale = StaleLimits(by_kind=dict(DEFAULT_STALE_S))
    query = parse_nearby(values, RankingSettings(), stale, time.time(), CURSOR_KEY)
    return replace(query, limit=10**9)


def walk(client: FlaskClient, args: dict[str, Any]) -> tuple[list[tuple], set[str]]:
    """Every page of the API's answer, following its cursors: (id, distance, score,
    popularity, count) of each result, and the sources that answered."""
    found: list[tuple] = []
    sources = set()
    cursor: str | None = None
    while True:
        asked = {**args, "cursor": cursor} if cursor else args
        response = client.get("/v1/nearby", query_string=asked)
        assert response.status_code == 200, response.json
        body = response.json
        sources.add(body["source"])
        found += [
            (r["id"], r["distance_m"], r["score"], r["popularity"], r.get("count"))
            for r in body["results"]
        ]
        cursor = body["next_cursor"]
        if cursor is None:
            return found, sources


def expected(args: dict[str, Any], entities: list[Entity]) -> list[tuple]:
    """The brute force's whole answer, as :func:`walk` gives the API's."""
    hits, _ = brute_force(reference_query(args), [candidate_of(e) for e in entities])
    return [(h.id, h.distance_m, h.score, h.popularity, h.group_count) for h in hits]


@pytest.mark.parametrize("seed", range(6))
def test_sort_popularity_matches_brute_force(index: Index, client: FlaskClient, seed: int) -> None:
    rng = random.Random(seed)
    entities = random_entities(rng, 400)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    checked = 0
    for _ in range(8):
        lat, lng = point_at(*HELSINKI, rng.uniform(0, 2 * math.pi), rng.choice((0, 5, 300, 3000)))
        args: dict[str, Any] = {
            "lat": lat,
            "lng": lng,
            "sort": "popularity",
            "radius": rng.choice((10.0, 10 ** rng.uniform(1, 4.7), 50_000.0)),
            "limit": rng.choice((1, 2, 7, 100)),
        }
        if rng.random() < 0.4:
            args["group"] = "mini_app"
        extra = rng.choice(({}, {}, {"kinds": "store"}, {"open_now": "true"}, {"mini_app": "kfc"}))
        args.update(extra)
        want = expected(args, entities)
        found, sources = walk(client, args)
        assert found == want, args
        assert sources == {"redis"}
        # The fallback path: PostGIS, as it answers when Redis is down.
        fallback = postgis_search(index.conn, reference_query(args))
        got = [(h.id, h.distance_m, h.score, h.popularity, h.group_count) for h in fallback.hits]
        assert got == want, args
        checked += len(want)
    assert checked > 0


def test_order_is_popularity_then_distance_then_id_bytes(index, client) -> None:
    """Ties in popularity go to the nearer, ties in both to the id's UTF-8 bytes."""
    lat, lng = HELSINKI
    far = point_at(lat, lng, 0.0, 400.0)
    entities = [
        store(1, *far, popularity=9.0),
        store(2, lat, lng, popularity=0.0),
        store(3, *far, popularity=0.0),
        store(4, lat, lng, popularity=9.0),
        replace(store(5, lat, lng, popularity=0.0), id="t:Z"),
        replace(store(6, lat, lng, popularity=0.0), id="t:é"),
    ]
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    found, _ = walk(client, {"lat": lat, "lng": lng, "sort": "popularity", "limit": 1})
    ids = [row[0] for row in found]
    assert ids == ["t:4", "t:1", "t:2", "t:Z", "t:é", "t:3"]
    keys = [order_key("popularity", row[3], row[1], row[0].encode()) for row in found]
    assert keys == sorted(keys)


def test_a_page_of_ties_is_settled(index, client) -> None:
    """Every popularity 0: pages are by distance, the same as sort=distance's."""
    rng = random.Random(3)
    entities = [
        store(i, *point_at(*HELSINKI, rng.uniform(0, 6.3), rng.uniform(0, 900)), popularity=0.0)
        for i in range(300)
    ]
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    args = {"lat": HELSINKI[0], "lng": HELSINKI[1], "limit": 30}
    by_popularity, _ = walk(client, {**args, "sort": "popularity"})
    by_distance, _ = walk(client, {**args, "sort": "distance"})
    assert [r[0] for r in by_popularity] == [r[0] for r in by_distance]
    assert len(by_popularity) == 300


def test_a_cursor_belongs_to_its_sort(index, client) -> None:
    write_entities(index.conn, index.hot, "t", [store(i) for i in range(3)], replace=True)
    args = {"lat": 60.17, "lng": 24.94, "sort": "popularity", "limit": 1}
    cursor = client.get("/v1/nearby", query_string=args).json["next_cursor"]
    other = client.get("/v1/nearby", query_string={**args, "sort": "score", "cursor": cursor})
    assert other.status_code == 400
    assert other.json["error"]["param"] == "cursor"


@pytest.mark.parametrize("group", [None, "mini_app"])
def test_sort_popularity_is_answered_by_the_hot_index(index, api_settings, group) -> None:
    """The hot index answers sort=popularity (PostGIS only when it cannot)."""
    write_entities(index.conn, index.hot, "t", [store(1, mini_app="kfc")], replace=True)
    notes = Taken()
    services = Services(api_settings, notes)
    try:
        query = NearbyQuery(lat=60.17, lng=24.94, sort="popularity", group=group)
        found = find_nearby(services, query)
        assert [h.id for h in found.hits] == ["t:1"]
        assert found.source == "redis"
        assert notes.told == [("source", "redis")]
    finally:
        services.close()
