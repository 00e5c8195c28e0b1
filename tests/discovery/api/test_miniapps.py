"""GET /v1/mini-apps/<slug>, and the catalog entries that group=mini_app results carry."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from discovery.api.catalog_cache import catalog_of
from indexer.hot.layout import catalog_key
from indexer.model import Entity
from indexer.rules import distance_m
from indexer.store.catalog import MiniApp, read_catalog
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import clear_catalog, write_apps

CENTER = (60.17, 24.94)
APPS = [
    MiniApp("kfc", "KFC", "https://example.com/kfc.png", "Fried chicken", "restaurant"),
    MiniApp("alko", "Alko", "https://example.com/alko.png", "", "shop"),
]


def random_entities(seed: int, count: int = 120) -> list[Entity]:
    """Stores around CENTER, of kfc, alko, a slug with no entry, or none."""
    rng = random.Random(seed)
    slugs = ["kfc", "alko", "unlisted", ""]
    return [
        Entity(
            id=f"t:{n}",
            kind="store",
            lat=CENTER[0] + rng.uniform(-0.03, 0.03),
            lng=CENTER[1] + rng.uniform(-0.06, 0.06),
            name=f"Shop {n}",
            mini_app=slugs[n % len(slugs)],
        )
        for n in range(count)
    ]


def publish(index: Index, apps: list[MiniApp], *, replace: bool = False) -> None:
    write_apps(index, apps, replace=replace)


@pytest.fixture
def stores(index: Index) -> Iterator[list[Entity]]:
    """The random stores written, and the catalog of APPS published."""
    clear_catalog(index)
    entities = random_entities(7)
    write_entities(index.conn, index.hot, "t", entities)
    publish(index, APPS)
    yield entities
    clear_catalog(index)


def nearest(entities: list[Entity], slug: str, lat: float, lng: float, radius_m: float) -> list:
    """Brute force: (id, distance) of the slug's entities within the radius, nearest first."""
    found = []
    for entity in entities:
        distance = distance_m(lat, lng, entity.lat, entity.lng)
        if entity.mini_app == slug and distance <= radius_m:
            found.append((distance, entity.id.encode(), entity.id))
    return [(entity_id, distance) for distance, _, entity_id in sorted(found)]


def test_unknown_slug_is_404(client: FlaskClient, stores: list[Entity]) -> None:
    for path in ("/v1/mini-apps/nope", "/v1/mini-apps/unlisted?lat=60.17&lng=24.94"):
        response = client.get(path)
        assert response.status_code == 404
        slug = path.split("/")[3].split("?")[0]
        assert response.json == {
            "error": {"code": "not_found", "message": f"no mini-app {slug!r}", "param": "slug"}
        }


def test_the_app_alone(client: FlaskClient, stores: list[Entity]) -> None:
    body = client.get("/v1/mini-apps/kfc").json
    assert list(body) == ["app"]
    app = body["app"]
    assert {k: app[k] for k in ("slug", "name", "icon_url", "description", "category")} == {
        "slug": "kfc",
        "name": "KFC",
        "icon_url": "https://example.com/kfc.png",
        "description": "Fried chicken",
        "category": "restaurant",
    }
    assert app["rev"] > 0 and app["updated_at"]


@pytest.mark.parametrize(("lat", "lng", "radius"), [(60.17, 24.94, 1500), (60.16, 24.9, 5000)])
def test_branches_are_exact_and_paged(
    client: FlaskClient, stores: list[Entity], lat: float, lng: float, radius: float
) -> None:
    expected = nearest(stores, "kfc", lat, lng, radius)
    assert expected, "the test needs branches in reach"
    got: list[tuple[str, float]] = []
    url = f"/v1/mini-apps/kfc?lat={lat}&lng={lng}&radius={radius}&limit=4"
    cursor = None
    while True:
        body = client.get(url + (f"&cursor={cursor}" if cursor else "")).json
        assert body["app"]["name"] == "KFC" and body["source"] == "redis"
        got += [(item["id"], item["distance_m"]) for item in body["branches"]]
        assert all(item["mini_app"] == "kfc" for item in body["branches"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert got == expected


def test_branches_default_radius_and_limit(client: FlaskClient, stores: list[Entity]) -> None:
    body = client.get("/v1/mini-apps/alko?lat=60.17&lng=24.94").json
    expected = nearest(stores, "alko", 60.17, 24.94, 5000)
    assert [(i["id"], i["distance_m"]) for i in body["branches"]] == expected[:20]
    assert (body["next_cursor"] is None) == (len(expected) <= 20)


def test_branches_from_postgis_when_redis_has_no_index(
    client: FlaskClient, stores: list[Entity], index: Index
) -> None:
    redis_body = client.get("/v1/mini-apps/kfc?lat=60.17&lng=24.94&radius=3000").json
    index.hot.drop_all()
    body = client.get("/v1/mini-apps/kfc?lat=60.17&lng=24.94&radius=3000").json
    assert body["source"] == "postgis"
    ids = [(i["id"], i["distance_m"]) for i in body["branches"]]
    assert ids == [(i["id"], i["distance_m"]) for i in redis_body["branches"]]


@pytest.mark.parametrize(
    ("query", "param", "message"),
    [
        ("lat=60.17", "lng", "lng is required"),
        ("lng=24.94", "lat", "lat is required"),
        ("radius=100", "radius", "radius needs lat and lng (the branches' point)"),
        ("limit=5", "limit", "limit needs lat and lng (the branches' point)"),
        ("lat=60.17&lng=24.94&radius=5", "radius", "radius must be a number in [10, 50000]"),
        ("lat=60.17&lng=24.94&limit=0", "limit", "limit must be an integer in [1, 100]"),
        ("lat=91&lng=24.94", "lat", "lat must be a number in [-90, 90]"),
        ("lat=60.17&lng=24.94&cursor=abc", "cursor", "cursor is not valid"),
        ("lat=60.17&lng=24.94&sort=distance", "sort", "unknown parameter 'sort'"),
        ("lat=60.17&lat=60.1&lng=24.94", "lat", "lat is given more than once"),
        ("lat=&lng=24.94", "lat", "lat is empty (leave it out for its default)"),
    ],
)
def test_bad_parameters(
    client: FlaskClient, stores: list[Entity], query: str, param: str, message: str
) -> None:
    response = client.get(f"/v1/mini-apps/kfc?{query}")
    assert response.status_code == 400
    assert response.json["error"]["param"] == param
    assert response.json["error"]["message"].startswith(message)


def test_a_cursor_of_another_query_is_refused(client: FlaskClient, stores: list[Entity]) -> None:
    first = client.get("/v1/mini-apps/kfc?lat=60.17&lng=24.94&limit=1").json
    other = client.get(f"/v1/mini-apps/alko?lat=60.17&lng=24.94&cursor={first['next_cursor']}")
    assert other.status_code == 400
    assert other.json["error"]["message"] == "cursor belongs to another query"
    nearby = client.get(f"/v1/nearby?lat=60.17&lng=24.94&cursor={first['next_cursor']}")
    assert nearby.status_code == 400


def grouped(client: FlaskClient, headers: dict[str, str] | None = None) -> dict[str, object]:
    """The mini-app of each group=mini_app result, by slug (JSON or GeoJSON)."""
    body = client.get(
        "/v1/nearby?lat=60.17&lng=24.94&radius=5000&group=mini_app&limit=10", headers=headers
    ).json
    items = body.get("results") or [f["properties"] for f in body["features"]]
    return {item["mini_app"]: item["app"] for item in items}


def test_groups_carry_name_and_icon(app: Flask, client: FlaskClient, stores: list[Entity]) -> None:
    expected = {
        "kfc": {"slug": "kfc", "name": "KFC", "icon_url": "https://example.com/kfc.png"},
        "alko": {"slug": "alko", "name": "Alko", "icon_url": "https://example.com/alko.png"},
        "unlisted": None,
    }
    assert grouped(client) == expected
    assert grouped(client, {"Accept": "application/geo+json"}) == expected
    explained = client.get(
        "/v1/nearby?lat=60.17&lng=24.94&radius=5000&group=mini_app&explain=true"
    ).json
    assert {i["mini_app"]: i["app"] for i in explained["results"]} == expected
    ungrouped = client.get("/v1/nearby?lat=60.17&lng=24.94&radius=5000").json
    assert all("app" not in item for item in ungrouped["results"])


def test_a_new_catalog_shows_once_its_revision_is_seen(
    app: Flask, client: FlaskClient, stores: list[Entity], index: Index
) -> None:
    cache = catalog_of(app.extensions["nearby"])
    assert grouped(client)["kfc"]["name"] == "KFC"  # type: ignore[index]
    publish(index, [MiniApp("unlisted", "Listed now"), APPS[1]], replace=True)
    cache.check_every_s = 0.0
    cache._next_check = 0.0
    assert grouped(client) == {
        "kfc": None,
        "alko": {"slug": "alko", "name": "Alko", "icon_url": "https://example.com/alko.png"},
        "unlisted": {"slug": "unlisted", "name": "Listed now", "icon_url": ""},
    }


def test_a_missing_key_is_read_from_postgis_and_put_back(
    app: Flask, client: FlaskClient, stores: list[Entity], index: Index
) -> None:
    key = catalog_key(index.settings.redis_prefix)
    index.hot.client.delete(key)
    assert client.get("/v1/mini-apps/kfc").json["app"]["name"] == "KFC"
    assert index.hot.client.hget(key, "rev") is not None
    held = read_catalog(index.conn)
    index.conn.commit()
    assert int(index.hot.client.hget(key, "rev")) == held.rev
