"""GET /v1/suggest against a brute force of its definition, over real PostGIS."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from discovery.search import nearby_script
from indexer.model import Entity
from indexer.rules import distance_m, popularity_now, usage_factor
from indexer.settings import DEFAULT_HALF_LIFE_S
from indexer.store.catalog import MiniApp
from indexer.store.writer import write_entities
from indexer.text import matches, parse_query, query_problem, words
from tests.conftest import API_KEY
from tests.factories import (
    clear_catalog,
    random_text_query,
    store,
    text_catalog,
    text_entities,
    write_apps,
)

SEOUL = (37.5665, 126.978)


def brute_force(
    q: str, lat: float, lng: float, radius: float, entities: list[Entity], apps: list[MiniApp]
) -> list[dict[str, Any]]:
    """Every text of every kind that matches ``q`` and that entities within the radius
    carry, each with its best carrier (the most popular, then the nearest, then the
    first id in byte order), in its best carrier's order, then by kind; the first ten."""
    query = parse_query(q)
    names = {app.slug: app.name for app in apps}
    rank = {"mini_app": 0, "category": 1, "name": 2}
    best: dict[tuple[str, str, str | None], tuple] = {}
    for e in entities:
        d = distance_m(lat, lng, e.lat, e.lng)
        if d > radius:
            continue
        texts = [("mini_app", names.get(e.mini_app, ""), e.mini_app or None)]
        texts += [("category", e.category, None), ("name", e.name, None)]
        for kind, text, slug in texts:
            if text and matches(query, words(text)):
                order = (-e.popularity, d, e.id.encode(), rank[kind])
                if (kind, text, slug) not in best or order < best[(kind, text, slug)][0]:
                    best[(kind, text, slug)] = (order, e, d)
    ordered = sorted(best.items(), key=lambda item: item[1][0])
    return [
        {"text": t, "kind": k, "slug": s, "popularity": e.popularity, "distance_m": d, "id": e.id}
        for (k, t, s), (_, e, d) in ordered[:10]
    ]


@pytest.fixture
def city(index):
    clear_catalog(index)
    rng = random.Random(11)
    apps = text_catalog(rng)
    write_apps(index, apps, replace=True)
    entities = text_entities(rng, 500, *SEOUL)
    # Shared names, so that completions gather several entities.
    entities += [
        store(1000 + i, *SEOUL, name=rng.choice(("스타벅스", "Café Regatta", "小强理发")),
              popularity=rng.choice((0.0, 1.0, 7.5)), mini_app=rng.choice(("", "ramen")))
        for i in range(60)
    ]  # fmt: skip
    write_entities(index.conn, index.hot, "t", entities)
    yield entities, apps
    clear_catalog(index)


@pytest.mark.parametrize("route", ["", "ids", "cells"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force(client, city, seed, route, monkeypatch) -> None:
    # Each way the script finds names, categories and mini-apps gives the same answer.
    monkeypatch.setattr(nearby_script, "TEXT_ROUTE", route)
    entities, apps = city
    rng = random.Random(seed)
    names = [e.name for e in entities] + [e.category for e in entities] + [a.name for a in apps]
    seen = 0
    for _ in range(15):
        q = random_text_query(rng, names)
        if query_problem(q):
            continue
        radius = rng.choice((100.0, 1_000.0, 5_000.0, 50_000.0))
        args = {"q": q, "lat": SEOUL[0], "lng": SEOUL[1], "radius": radius}
        response = client.get("/v1/suggest", query_string=args)
        assert response.status_code == 200, response.json
        want = brute_force(q, *SEOUL, radius, entities, apps)
        body = response.json
        assert isinstance(body.pop("popularity_at"), str)
        assert body == {"suggestions": want, "source": "redis"}, args
        seen += len(want)
    assert seen > 0


def test_the_order(index, client) -> None:
    clear_catalog(index)
    write_apps(index, [MiniApp("sb", "Starbucks")], replace=True)
    now = datetime.now(UTC)
    write_entities(
        index.conn,
        index.hot,
        "t",
        [
            store(1, name="Starbucks Kamppi", category="cafe", mini_app="sb", popularity=10.0),
            store(2, name="Starbucks Forum", category="cafe", mini_app="sb", popularity=1.0),
            store(3, name="Stadin Kahvila", category="cafe", popularity=3.0),
            store(4, name="Stadin Kahvila", category="cafe", popularity=3.0, lat=60.171),
            store(5, name="Star Pizza", category="star", popularity=0.0),
            store(7, name="Stallari", popularity=3.0, lat=60.1705),
            store(6, name="Starbucks Far", mini_app="sb", popularity=50.0, lat=61.0),
            Entity(id="t:bike", kind="bike", lat=60.17, lng=24.94, name="Stale Star bike",
                   available=1, capacity=1, seen_at=now - timedelta(days=30)),
        ],
    )  # fmt: skip
    body = client.get("/v1/suggest", query_string={"q": "sta", "lat": 60.17, "lng": 24.94}).json
    assert [(s["kind"], s["text"], s["id"], s["popularity"]) for s in body["suggestions"]] == [
        ("mini_app", "Starbucks", "t:1", 10.0),  # its best carrier: Starbucks Far is too far
        ("name", "Starbucks Kamppi", "t:1", 10.0),
        ("name", "Stadin Kahvila", "t:3", 3.0),  # as popular as Stallari, and nearer
        ("name", "Stallari", "t:7", 3.0),
        ("name", "Starbucks Forum", "t:2", 1.0),
        ("category", "star", "t:5", 0.0),  # the same carrier: category before name
        ("name", "Star Pizza", "t:5", 0.0),
    ]
    assert body["suggestions"][0]["slug"] == "sb"
    # Usage counts as the ranking's popularity does: Stallari's orders lift it to the top.
    orders = [{"type": "order", "entity_id": "t:7", "at": time.time()}] * 3  # 3 × 5, barely decayed
    posted = client.post("/v1/events", json=orders, headers={"Authorization": f"Bearer {API_KEY}"})
    assert posted.status_code == 200 and posted.json["applied"] == 3
    body = client.get("/v1/suggest", query_string={"q": "sta", "lat": 60.17, "lng": 24.94}).json
    first = body["suggestions"][0]
    assert (first["kind"], first["text"]) == ("name", "Stallari")
    at = datetime.fromisoformat(body["popularity_at"]).timestamp()
    assert first["popularity"] == popularity_now(
        3.0, stored_mass(index, "t:7"), usage_factor(at, DEFAULT_HALF_LIFE_S)
    )
    clear_catalog(index)


def stored_mass(index, entity_id: str) -> float:
    with index.conn.cursor() as cur:
        cur.execute("SELECT usage_mass FROM entities WHERE id = %s", (entity_id,))
        (mass,) = cur.fetchone()
    index.conn.commit()
    return mass


def test_bad_parameters(client) -> None:
    point = {"lat": 60.17, "lng": 24.94}
    for args, param in [
        (point, "q"),
        ({**point, "q": "!!"}, "q"),
        ({**point, "q": "a" * 101}, "q"),
        ({"q": "caf", "lng": 24.94}, "lat"),
        ({**point, "q": "caf", "radius": "5"}, "radius"),
        ({**point, "q": "caf", "limit": "5"}, "limit"),
    ]:
        response = client.get("/v1/suggest", query_string=args)
        assert response.status_code == 400, args
        assert response.json["error"]["param"] == param, args


def test_a_point_next_to_an_entity_by_a_hair(index, client) -> None:
    """PostgreSQL refuses the products that underflow here; the answer is still exact."""
    entities = [store(1, 0.0, 0.0, name="Kahvila"), store(2, 0.0, 0.001, name="Kahvila Kuu")]
    write_entities(index.conn, index.hot, "t", entities)
    args = {"q": "kahvi", "lat": -0.0001, "lng": 4.08e-301}
    body = client.get("/v1/suggest", query_string=args).json
    assert body["suggestions"] == brute_force("kahvi", -0.0001, 4.08e-301, 5000.0, entities, [])


def test_from_postgis_when_redis_is_down(city, redis_down_app) -> None:
    entities, apps = city
    client = redis_down_app.test_client()
    rng = random.Random(4)
    names = [e.name for e in entities] + [a.name for a in apps]
    for _ in range(8):
        q = random_text_query(rng, names)
        if query_problem(q):
            continue
        radius = rng.choice((1_000.0, 50_000.0))
        args = {"q": q, "lat": SEOUL[0], "lng": SEOUL[1], "radius": radius}
        body = client.get("/v1/suggest", query_string=args).json
        assert body["source"] == "postgis"
        assert body["suggestions"] == brute_force(q, *SEOUL, radius, entities, apps), args


def test_where_nothing_has_popularity(index, client) -> None:
    """With every popularity 0 the order is the nearest carrier's (read by distance, in
    stages); each stage is exact."""
    rng = random.Random(9)
    entities = [
        store(i, 37.5 + rng.random() * 0.2, 127.0 + rng.random() * 0.2,
              name=rng.choice(("Kahvila Kuu", "Kahvila Sävy", "Kauppa", "카페 강남", "Kahvi")),
              category=rng.choice(("cafe", "kauppa", "")))
        for i in range(400)
    ]  # fmt: skip
    write_entities(index.conn, index.hot, "t", entities)
    for q in ("kah", "ka", "카페", "kauppa"):
        for radius in (150.0, 2_000.0, 30_000.0):
            args = {"q": q, "lat": 37.6, "lng": 127.1, "radius": radius}
            body = client.get("/v1/suggest", query_string=args).json
            assert body["source"] == "redis"
            assert body["suggestions"] == brute_force(q, 37.6, 127.1, radius, entities, []), args
