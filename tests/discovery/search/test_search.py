"""GET /v1/nearby against the brute force, over real PostGIS and Redis."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import orjson
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from discovery.api.app import create_app
from discovery.api.nearby import body_json, body_of
from discovery.search.finder import find_nearby
from discovery.search.params import parse_nearby
from discovery.search.query import NearbyQuery, StaleLimits
from discovery.search.ranking import brute_force
from discovery.settings import ApiSettings, RankingSettings
from indexer.model import Entity, normalize_lng
from indexer.settings import DEFAULT_STALE_S
from indexer.store.writer import write_entities
from tests.conftest import CURSOR_KEY
from tests.factories import candidate_of, point_at

PENTAGON = h3.cell_to_latlng(h3.get_pentagons(9)[3])
PLACES = {
    "seoul": (37.5665, 126.978),
    "north_pole": (89.9995, 0.0),
    "south_pole": (-89.9995, 45.0),
    "antimeridian": (-16.5, 179.9995),
    "pentagon": PENTAGON,
}
RADII = (10.0, 120.0, 1_000.0, 4_000.0, 20_000.0, 50_000.0)
HOURS = (None, "24/7", "off")


def destination(lat: float, lng: float, bearing: float, distance_m: float) -> tuple[float, float]:
    """``point_at``, clamped to a valid latitude and a longitude in [-180, 180)."""
    lat2, lng2 = point_at(lat, lng, bearing, distance_m)
    return max(-90.0, min(90.0, lat2)), normalize_lng(lng2)


def random_entity(rnd: random.Random, i: int, lat: float, lng: float, now: datetime) -> Entity:
    """One entity around (lat, lng): kinds, filters, ties and staleness all mixed."""
    spread = rnd.choice((30.0, 300.0, 3_000.0, 30_000.0))
    lat, lng = destination(lat, lng, rnd.uniform(0, 2 * math.pi), rnd.expovariate(1 / spread))
    kind = rnd.choice(("store", "store", "bike", "charger"))
    live = kind != "store"
    age = rnd.choice((10, 10, 10, 5_000)) if live else None
    return Entity(
        id=f"t:{rnd.choice('abAB')}{i}",
        kind=kind,
        lat=lat,
        lng=lng,
        name=f"e{i}",
        category=rnd.choice(("cafe", "mart", "")),
        mini_app=rnd.choice(("", "kfc", "divvy", "volt")),
        popularity=rnd.choice((0.0, 1.0, 5.0, 5.0, 120.0, rnd.expovariate(0.05))),
        available=rnd.choice((0, 1, 3)) if live else None,
        capacity=4 if live else None,
        opening_hours=rnd.choice(HOURS),
        seen_at=now - timedelta(seconds=age) if age is not None else None,
    )


def data_set(seed: int, place: str, size: int) -> list[Entity]:
    """A seeded data set around one of PLACES, with a few exact duplicates for ties."""
    rnd = random.Random(seed)
    lat, lng = PLACES[place]
    now = datetime.now(UTC)  # when the data is made: its ages hold however late a test runs
    entities = [random_entity(rnd, i, lat, lng, now) for i in range(size)]
    for i in range(0, size // 10):
        twin = entities[rnd.randrange(size)]
        entities.append(replace(twin, id=f"t:twin{i}"))
    return entities


def expected(args: dict[str, Any], entities: list[Entity]) -> tuple[list[tuple], bool]:
    """The brute force's page for the API arguments ``args``: (id, distance, score) and more."""
    query = reference_query(args)
    hits, more = brute_force(query, [candidate_of(e) for e in entities])
    return [(h.id, h.distance_m, h.score, h.group_count) for h in hits], more


def reference_query(args: dict[str, Any]) -> NearbyQuery:
    """The query the API builds from ``args``."""
    values = {name: [str(value)] for name, value in args.items()}
    stale = StaleLimits(by_kind=dict(DEFAULT_STALE_S))
    return parse_nearby(values, RankingSettings(), stale, time.time(), CURSOR_KEY)


def answer(client: FlaskClient, args: dict[str, Any]) -> dict[str, Any]:
    """The API's JSON answer (asserting 200)."""
    response = client.get("/v1/nearby", query_string=args)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def got(body: dict[str, Any]) -> list[tuple]:
    """(id, distance, score, count) of each result."""
    return [(r["id"], r["distance_m"], r["score"], r.get("count")) for r in body["results"]]


def check(client: FlaskClient, args: dict[str, Any], entities: list[Entity]) -> dict[str, Any]:
    """Assert that the API answers exactly as the brute force; return the body."""
    body = answer(client, args)
    want, more = expected(args, entities)
    assert got(body) == want, args
    assert (body["next_cursor"] is not None) == more, args
    return body


@pytest.fixture
def seoul(index, client) -> Iterator[list[Entity]]:
    """600-odd entities around Seoul, loaded."""
    entities = data_set(7, "seoul", 600)
    write_entities(index.conn, index.hot, "t", entities)
    yield entities


queries = st.fixed_dictionaries(
    {
        "radius": st.sampled_from(RADII),
        "sort": st.sampled_from(("score", "distance", "popularity")),
        "limit": st.integers(1, 30),
        "offset_m": st.sampled_from((0.0, 25.0, 400.0, 5_000.0)),
        "bearing": st.floats(0, 2 * math.pi),
    }
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    place=st.sampled_from(sorted(PLACES)),
    seed=st.integers(0, 10_000),
    asks=st.lists(queries, min_size=4, max_size=4),
)
@example(
    place="north_pole",
    seed=1,
    asks=[{"radius": 50_000.0, "sort": "score", "limit": 30, "offset_m": 0.0, "bearing": 0.0}] * 4,
)
@example(
    place="antimeridian",
    seed=2,
    asks=[{"radius": 1_000.0, "sort": "distance", "limit": 30, "offset_m": 25.0, "bearing": 1.0}]
    * 4,
)
@example(
    place="pentagon",
    seed=3,
    asks=[{"radius": 20_000.0, "sort": "score", "limit": 30, "offset_m": 400.0, "bearing": 2.0}]
    * 4,
)
# A res-11 cell whose member lies outside the cell's H3 parent (children overhang):
# the member's own res-9 set, not the parent's, bounds it.
@example(
    place="pentagon",
    seed=1313,
    asks=[{"radius": 120.0, "sort": "score", "limit": 1, "offset_m": 400.0, "bearing": 1.0}] * 4,
)
@example(
    place="antimeridian",
    seed=5,
    asks=[{"radius": 50_000.0, "sort": "popularity", "limit": 7, "offset_m": 0.0, "bearing": 0.0}]
    * 4,
)
@example(
    place="north_pole",
    seed=6,
    asks=[{"radius": 1_000.0, "sort": "popularity", "limit": 3, "offset_m": 25.0, "bearing": 2.0}]
    * 4,
)
@example(
    place="south_pole",
    seed=4,
    asks=[{"radius": 120.0, "sort": "distance", "limit": 5, "offset_m": 25.0, "bearing": 3.0}] * 4,
)
def test_matches_brute_force(index, client, place, seed, asks) -> None:
    entities = data_set(seed, place, 300)
    write_entities(index.conn, index.hot, "t", entities, replace=True)
    for ask in asks:
        lat, lng = destination(*PLACES[place], ask["bearing"], ask["offset_m"])
        args = {
            "lat": lat,
            "lng": lng,
            "radius": ask["radius"],
            "sort": ask["sort"],
            "limit": ask["limit"],
        }
        check(client, args, entities)


@pytest.mark.parametrize("radius", RADII)
@pytest.mark.parametrize("sort", ["score", "distance", "popularity"])
def test_every_radius_every_sort(seoul, client, radius, sort) -> None:
    check(client, {"lat": 37.5665, "lng": 126.978, "radius": radius, "sort": sort}, seoul)


@pytest.mark.parametrize(
    "extra",
    [
        {"kinds": "bike"},
        {"kinds": "bike,charger", "available": "true"},
        {"category": "cafe"},
        {"mini_app": "kfc,volt"},
        {"open_now": "true"},
        {"open_now": "true", "sort": "distance", "limit": 50},
        {"scale": 50, "popularity_weight": 3},
        {"popularity_weight": 0},
    ],
)
def test_filters(seoul, client, extra) -> None:
    check(client, {"lat": 37.5665, "lng": 126.978, "radius": 5_000, **extra}, seoul)


def test_stale_live_entities_are_never_returned(seoul, client) -> None:
    body = check(
        client,
        {"lat": 37.5665, "lng": 126.978, "radius": 50_000, "limit": 100, "kinds": "bike"},
        seoul,
    )
    cutoff = datetime.now(UTC) - timedelta(seconds=600)
    stale = {e.id for e in seoul if e.seen_at and e.seen_at < cutoff}
    assert stale and not stale & {r["id"] for r in body["results"]}


@pytest.mark.parametrize(
    "extra", [{}, {"sort": "distance"}, {"open_now": "true"}, {"kinds": "store"}]
)
def test_group_by_mini_app(seoul, client, extra) -> None:
    body = check(
        client,
        {"lat": 37.5665, "lng": 126.978, "radius": 50_000, "group": "mini_app", **extra},
        seoul,
    )
    assert body["results"] and all(r["mini_app"] and r["count"] >= 1 for r in body["results"])
    assert len({r["mini_app"] for r in body["results"]}) == len(body["results"])


@pytest.mark.parametrize(
    "args",
    [
        {"radius": 4_000, "sort": "score", "page": 7},
        {"radius": 50_000, "sort": "distance", "page": 9},
        {"radius": 50_000, "group": "mini_app", "page": 1},
        {"radius": 20_000, "open_now": "true", "page": 5},
    ],
)
def test_pages_concatenate_to_the_long_query(seoul, client, args) -> None:
    page_size = args.pop("page")
    base = {"lat": 37.5665, "lng": 126.978, **args}
    long_query = answer(client, {**base, "limit": 100})
    seen: list[tuple] = []
    cursor = None
    while True:
        body = answer(
            client, {**base, "limit": page_size, **({"cursor": cursor} if cursor else {})}
        )
        seen += got(body)
        cursor = body["next_cursor"]
        if cursor is None or len(seen) >= 100:
            break
    assert seen[:100] == got(long_query)
    assert len({item[0] for item in seen}) == len(seen)


def test_cursor_of_another_query_is_refused(seoul, client) -> None:
    body = answer(client, {"lat": 37.5665, "lng": 126.978, "limit": 2})
    response = client.get(
        "/v1/nearby", query_string={"lat": 37.5, "lng": 126.978, "cursor": body["next_cursor"]}
    )
    assert response.status_code == 400
    assert response.json["error"]["param"] == "cursor"


def test_only_cursors_of_this_deployment_are_taken(
    seoul, client, api_settings: ApiSettings
) -> None:
    # Another process of the deployment (same secret) takes the cursor; one
    # truncated, altered or signed without the secret is a 400 naming it.
    query = {"lat": 37.5665, "lng": 126.978, "limit": 3}
    cursor = answer(client, query)["next_cursor"]
    other = create_app(replace(api_settings, cursor_key=b"another deployment's secret"))
    twin = create_app(replace(api_settings))
    try:
        page = answer(twin.test_client(), {**query, "cursor": cursor})
        assert page == answer(client, {**query, "cursor": cursor})
        forged = other.test_client().get("/v1/nearby", query_string={**query, "limit": 3})
        flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
        for bad in (cursor[:-3], cursor[:20], flipped, forged.json["next_cursor"]):
            response = client.get("/v1/nearby", query_string={**query, "cursor": bad})
            assert response.status_code == 400, bad
            assert response.json["error"] == {
                "code": "bad_parameter",
                "message": "cursor is not valid",
                "param": "cursor",
            }
    finally:
        other.extensions["nearby"].close()
        twin.extensions["nearby"].close()


def test_explain(seoul, client) -> None:
    body = check(client, {"lat": 37.5665, "lng": 126.978, "explain": "true"}, seoul)
    assert body["explain"]["radius_m"] == 1000.0 and body["explain"]["scale_m"] == 500.0
    assert body["explain"]["read"]["calls"] == 1
    for result in body["results"]:
        terms = result["explain"]
        assert terms["distance_term"] * terms["popularity_term"] == result["score"]


def test_geojson(seoul, client) -> None:
    args = {"lat": 37.5665, "lng": 126.978}
    plain = answer(client, args)
    response = client.get(
        "/v1/nearby", query_string=args, headers={"Accept": "application/geo+json"}
    )
    assert response.status_code == 200 and response.mimetype == "application/geo+json"
    collection = response.json
    assert collection["type"] == "FeatureCollection" and collection["source"] == "redis"
    assert [f["properties"] for f in collection["features"]] == plain["results"]
    first = collection["features"][0]
    assert first["geometry"]["coordinates"] == [
        first["properties"]["lng"],
        first["properties"]["lat"],
    ]


@pytest.mark.parametrize(
    "extra", [{}, {"group": "mini_app"}, {"sort": "distance", "limit": 3}, {"kinds": "bike"}]
)
def test_the_body_written_piece_by_piece_is_the_answer(seoul, app, extra) -> None:
    query = reference_query({"lat": 37.5665, "lng": 126.978, **extra})
    found = find_nearby(app.extensions["nearby"], query)
    assert found.source == "redis" and found.hits
    assert json.loads(body_json(query, found, CURSOR_KEY)) == json.loads(
        orjson.dumps(body_of(query, found, CURSOR_KEY))
    )


def test_entities(seoul, client) -> None:
    entity = seoul[0]
    response = client.get(f"/v1/entities/{entity.id}")
    assert response.status_code == 200
    assert (response.json["id"], response.json["lat"], response.json["lng"]) == (
        entity.id,
        entity.lat,
        entity.lng,
    )
    missing = client.get("/v1/entities/t:nope")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_empty_redis_falls_back_to_postgis_and_recovers(seoul, index, client) -> None:
    args = {"lat": 37.5665, "lng": 126.978, "radius": 20_000, "limit": 30}
    assert check(client, args, seoul)["source"] == "redis"
    index.hot.client.rename(f"{index.hot.prefix}:gen", f"{index.hot.prefix}:gen-away")
    for extra in ({}, {"sort": "distance"}, {"group": "mini_app"}, {"open_now": "true"}):
        assert check(client, {**args, **extra}, seoul)["source"] == "postgis"
    assert client.get(f"/v1/entities/{seoul[0].id}").json["id"] == seoul[0].id
    index.hot.client.rename(f"{index.hot.prefix}:gen-away", f"{index.hot.prefix}:gen")
    assert check(client, args, seoul)["source"] == "redis"


def test_redis_down_answers_from_postgis(seoul, redis_down_app) -> None:
    client = redis_down_app.test_client()
    for sort in ("score", "distance", "popularity"):
        body = check(client, {"lat": 37.5665, "lng": 126.978, "radius": 4_000, "sort": sort}, seoul)
        assert body["source"] == "postgis"
    assert client.get(f"/v1/entities/{seoul[1].id}").status_code == 200
