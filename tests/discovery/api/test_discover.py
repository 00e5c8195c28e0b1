"""GET /v1/discover: its four lists against a brute force over random entities, its
parameter errors, its key, and a forgotten user's empty screen."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from discovery.api.discover import FAVORITES_SHOWN
from discovery.api.discover_params import DEFAULT_LIMIT, DEFAULT_RADIUS_M
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.ranking import brute_force
from discovery.settings import RankingSettings
from indexer.model import Entity
from indexer.rules import distance_m
from indexer.settings import DEFAULT_STALE_S
from indexer.store.catalog import MiniApp, publish_catalog, read_catalog, write_catalog
from indexer.store.users import add_favorite
from indexer.store.writer import write_entities
from indexer.text import parse_query
from indexer.text import query_problem as text_problem
from tests.conftest import API_KEY, Index
from tests.factories import (
    candidate_of,
    clear_catalog,
    point_at,
    random_text_query,
    text_brute_force,
    text_catalog,
    text_entities,
)

AUTH = {"X-API-Key": API_KEY}
HELSINKI = (60.17, 24.94)
USER = "pat-7f3a"
CATALOG = [
    MiniApp("kfc", "KFC", "https://example.com/kfc.png"),
    MiniApp("alko", "Alko"),
    MiniApp("volt", "Volt", "https://example.com/volt.png"),
    MiniApp("far", "Far away"),
]
#: Slugs of branches: three of the catalog, one it lacks, and none.
BRANCH_APPS = ("kfc", "alko", "volt", "unlisted", "")


@pytest.fixture
def catalog(index: Index) -> Iterator[None]:
    clear_catalog(index)
    write_catalog(index.conn, CATALOG, replace=True)
    publish_catalog(index.hot.client, index.settings.redis_prefix, read_catalog(index.conn))
    index.conn.commit()
    yield
    clear_catalog(index)


def random_entities(rng: random.Random, count: int) -> list[Entity]:
    """Stores from 1 m to 9 km around Helsinki, with popularity and place ties, and one
    branch of ``far`` out of every radius asked."""
    entities = [Entity(id="t:far", kind="store", lat=61.5, lng=24.94, mini_app="far")]
    for i in range(count):
        if rng.random() < 0.1:
            twin = rng.choice(entities)
            entities.append(replace(twin, id=f"t:{rng.choice('aBé')}{i}"))
            continue
        spread = 10 ** rng.uniform(0, 3.95)
        lat, lng = point_at(*HELSINKI, rng.uniform(0, 2 * math.pi), rng.uniform(0, spread))
        entities.append(
            Entity(id=f"t:{rng.choice('aBé')}{i}", kind="store", lat=lat, lng=lng, name=f"e{i}",
                   mini_app=rng.choice(BRANCH_APPS),
                   popularity=rng.choice((0.0, 0.0, 1.0, 40.0, rng.expovariate(0.1))))
        )  # fmt: skip
    return entities


def reference(lat: float, lng: float, radius: float, limit: int, **extra: Any) -> NearbyQuery:
    """The search a list of the screen is, with every hit of it."""
    ranking = RankingSettings()
    return NearbyQuery(
        lat=lat, lng=lng, radius_m=radius, group="mini_app", counts=False,
        scale_m=radius * ranking.scale_fraction, popularity_weight=ranking.popularity_weight,
        limit=limit, now_s=time.time(),
        stale=StaleLimits(by_kind=dict(DEFAULT_STALE_S)), **extra,
    )  # fmt: skip


def ranked(query: NearbyQuery, entities: list[Entity]) -> list[tuple]:
    hits, _ = brute_force(query, [candidate_of(e) for e in entities])
    return [(h.id, h.distance_m, h.score, h.group_count) for h in hits]


def shown(results: list[dict[str, Any]]) -> list[tuple]:
    return [(r["id"], r["distance_m"], r["score"], r.get("count")) for r in results]


def nearest_branch(entities: list[Entity], slug: str, lat: float, lng: float, radius: float):
    """The nearest entity of ``slug`` within the radius (ties to the id's bytes), or None."""
    near = [(distance_m(lat, lng, e.lat, e.lng), e.id.encode(), e) for e in entities
            if e.mini_app == slug]  # fmt: skip
    near = [item for item in near if item[0] <= radius]
    if not near:
        return None
    dist, _, best = min(near, key=lambda item: item[:2])
    return {"id": best.id, "distance_m": dist}


def use(client: FlaskClient, user: str, slugs: list[str]) -> None:
    """Events of ``user`` naming the slugs, the last one the newest."""
    now = time.time()
    events = [{"type": "open", "mini_app": slug, "user": user, "at": now - 600 + i}
              for i, slug in enumerate(slugs)]  # fmt: skip
    response = client.post("/v1/events", json=events, headers=AUTH)
    assert response.json["applied"] == len(slugs), response.json


@pytest.mark.parametrize("seed", range(3))
def test_the_four_lists_match_the_brute_force(
    index: Index, client: FlaskClient, catalog: None, seed: int
) -> None:
    rng = random.Random(seed)
    entities = random_entities(rng, 300)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    favourites = rng.sample(["kfc", "alko", "volt", "far"], 3)
    for slug in favourites:
        assert client.put(f"/v1/users/{USER}/favorites/{slug}", headers=AUTH).status_code == 204
    used = rng.sample(["kfc", "alko", "volt", "far"], 3)
    use(client, USER, used)
    for _ in range(4):
        lat, lng = point_at(*HELSINKI, rng.uniform(0, 2 * math.pi), rng.choice((0, 40, 900)))
        radius = rng.choice((50.0, 800.0, DEFAULT_RADIUS_M, 20_000.0))
        args: dict[str, Any] = {"lat": lat, "lng": lng, "user": USER}
        limit = rng.choice((None, 1, 3))
        if radius != DEFAULT_RADIUS_M:
            args["radius"] = radius
        if limit is not None:
            args["limit"] = limit
        response = client.get("/v1/discover", query_string=args, headers=AUTH)
        assert response.status_code == 200, response.json
        body = response.json
        size = limit or DEFAULT_LIMIT
        assert shown(body["nearby"]) == ranked(reference(lat, lng, radius, size), entities)
        popular = reference(lat, lng, radius, size, sort="popularity")
        assert shown(body["popular"]) == ranked(popular, entities)
        assert [item["slug"] for item in body["favorites"]] == favourites[::-1]
        assert [item["slug"] for item in body["recent"]] == used[::-1]
        for item in body["favorites"] + body["recent"]:
            assert item["nearest"] == nearest_branch(entities, item["slug"], lat, lng, radius)
            assert item["name"] == next(app.name for app in CATALOG if app.slug == item["slug"])
        for result in body["nearby"] + body["popular"]:
            app = next((a for a in CATALOG if a.slug == result["mini_app"]), None)
            want = None if app is None else {"slug": app.slug, "name": app.name,
                                             "icon_url": app.icon_url}  # fmt: skip
            assert result["app"] == want
        assert body["sources"]["nearby"] == "redis"
        # The screen's own lists are the user endpoints', each item with its nearest.
        for name, path in (("favorites", "favorites"), ("recent", "recent")):
            listed = client.get(f"/v1/users/{USER}/{path}", headers=AUTH).json[name]
            assert [{k: v for k, v in i.items() if k != "nearest"} for i in body[name]] == listed


def test_without_a_user_the_screen_has_no_recent_or_favourites(
    index: Index, client: FlaskClient, catalog: None
) -> None:
    entities = random_entities(random.Random(7), 60)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    body = client.get("/v1/discover", query_string={"lat": 60.17, "lng": 24.94}).json
    assert body["recent"] == [] and body["favorites"] == []
    assert body["sources"]["nearest"] is None
    want = ranked(reference(60.17, 24.94, DEFAULT_RADIUS_M, DEFAULT_LIMIT), entities)
    assert shown(body["nearby"]) == want and want


def test_a_user_needs_the_key_and_a_valid_id(index: Index, client: FlaskClient) -> None:
    point = {"lat": 60.17, "lng": 24.94}
    assert client.get("/v1/discover", query_string={**point, "user": USER}).status_code == 401
    bad_key = client.get("/v1/discover", query_string={**point, "user": USER},
                         headers={"X-API-Key": "nope"})  # fmt: skip
    assert bad_key.status_code == 403
    bad = client.get("/v1/discover", query_string={**point, "user": "a b"}, headers=AUTH)
    assert bad.status_code == 400 and bad.json["error"]["param"] == "user"
    assert "a b" not in bad.get_data(as_text=True)


@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        ({"lng": "24.94"}, "lat"),
        ({"lat": "60.17"}, "lng"),
        ({"lat": "91", "lng": "24.94"}, "lat"),
        ({"lat": "60.17", "lng": "24.94", "radius": "5"}, "radius"),
        ({"lat": "60.17", "lng": "24.94", "radius": "nan"}, "radius"),
        ({"lat": "60.17", "lng": "24.94", "limit": "0"}, "limit"),
        ({"lat": "60.17", "lng": "24.94", "limit": "101"}, "limit"),
        ({"lat": "60.17", "lng": "24.94", "sort": "distance"}, "sort"),
        ({"lat": "60.17", "lng": "24.94", "user": ""}, "user"),
    ],
)
def test_a_bad_parameter_is_named(
    index: Index, client: FlaskClient, args: dict[str, str], parameter: str
) -> None:
    response = client.get("/v1/discover", query_string=args, headers=AUTH)
    assert response.status_code == 400, response.json
    assert response.json["error"]["param"] == parameter


def test_a_parameter_given_twice_is_named(index: Index, client: FlaskClient) -> None:
    response = client.get("/v1/discover?lat=60.17&lat=60.18&lng=24.94")
    assert response.status_code == 400 and response.json["error"]["param"] == "lat"


def test_a_forgotten_user_has_an_empty_screen(
    index: Index, client: FlaskClient, catalog: None
) -> None:
    write_entities(index.conn, index.hot, "t", random_entities(random.Random(3), 40), replace=True)
    assert client.put(f"/v1/users/{USER}/favorites/kfc", headers=AUTH).status_code == 204
    use(client, USER, ["alko"])
    point = {"lat": 60.17, "lng": 24.94, "user": USER}
    before = client.get("/v1/discover", query_string=point, headers=AUTH).json
    assert [i["slug"] for i in before["favorites"]] == ["kfc"]
    assert [i["slug"] for i in before["recent"]] == ["alko"]
    assert client.delete(f"/v1/users/{USER}", headers=AUTH).status_code == 204
    after = client.get("/v1/discover", query_string=point, headers=AUTH).json
    assert after["favorites"] == [] and after["recent"] == []
    assert after["nearby"] == before["nearby"]


@pytest.mark.parametrize("seed", range(2))
def test_q_keeps_the_matching_mini_apps(index: Index, client: FlaskClient, seed: int) -> None:
    rng = random.Random(seed)
    apps = text_catalog(rng)
    clear_catalog(index)
    write_catalog(index.conn, apps, replace=True)
    publish_catalog(index.hot.client, index.settings.redis_prefix, read_catalog(index.conn))
    index.conn.commit()
    entities = text_entities(rng, 300, *HELSINKI)
    write_entities(index.conn, index.hot, "x", entities, replace=True)
    names = [e.name for e in entities] + [app.name for app in apps]
    checked = 0
    for _ in range(8):
        q = random_text_query(rng, names)
        if text_problem(q):
            continue
        args = {"lat": HELSINKI[0], "lng": HELSINKI[1], "q": q, "limit": 3}
        body = client.get("/v1/discover", query_string=args).json
        text = parse_query(q)
        for name, sort in (("nearby", "score"), ("popular", "popularity")):
            query = reference(*HELSINKI, DEFAULT_RADIUS_M, 3, sort=sort, text=text)
            want, _ = text_brute_force(query, entities, apps)
            assert shown(body[name]) == [(h.id, h.distance_m, h.score, None) for h in want], q
            checked += len(want)
        assert body["sources"]["nearby"] == "redis"
    assert checked > 0
    clear_catalog(index)


def test_a_bad_q_is_named(index: Index, client: FlaskClient) -> None:
    response = client.get("/v1/discover", query_string={"lat": 1, "lng": 1, "q": "x" * 101})
    assert response.status_code == 400 and response.json["error"]["param"] == "q"


def test_the_screen_shows_the_last_added_favourites(
    index: Index, client: FlaskClient, catalog: None
) -> None:
    slugs = [f"app{n:02d}" for n in range(FAVORITES_SHOWN + 5)]
    made = random_entities(random.Random(3), len(slugs))
    entities = [
        replace(e, mini_app=slug) for e, slug in zip(made[: len(slugs)], slugs, strict=True)
    ]
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    for slug in slugs:  # more than the catalog holds: straight into the store
        add_favorite(index.conn, USER, slug)
    index.conn.commit()
    args = {"lat": 60.17, "lng": 24.94, "user": USER}
    body = client.get("/v1/discover", query_string=args, headers=AUTH).json
    everything = client.get(f"/v1/users/{USER}/favorites", headers=AUTH).json["favorites"]
    assert len(everything) == len(slugs)
    shown_slugs = [item["slug"] for item in body["favorites"]]
    assert shown_slugs == [item["slug"] for item in everything][:FAVORITES_SHOWN]
