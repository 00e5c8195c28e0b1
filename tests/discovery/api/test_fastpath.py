"""GET /v1/nearby answers byte for byte alike from the fast path and from the Flask view.

The fast path is called alone (in front of a WSGI app that fails the test if it
is reached: it never hands a plain nearby request over), the Flask view through
Flask's own WSGI callable (which the app's WSGI stack puts behind the fast path).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from discovery.api import nearby as nearby_api
from discovery.api.app import create_app
from discovery.api.fastpath import NearbyFastPath
from discovery.settings import ApiSettings
from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.discovery.serving import free_port

HELSINKI = {"lat": "60.17", "lng": "24.94"}
#: The headers the two paths must agree on (caching headers: neither sends any).
COMPARED = ("Content-Type", "Content-Length", "Cache-Control", "ETag", "Vary")

GOOD = [
    {},
    {"radius": "300"},
    {"radius": "50000"},
    {"kinds": "store"},
    {"kinds": "charger,bike"},
    {"category": "cafe"},
    {"category": "bar,cafe"},
    {"mini_app": "kfc"},
    {"mini_app": "kfc,divvy"},
    {"available": "true"},
    {"open_now": "1"},
    {"group": "mini_app"},
    {"sort": "distance"},
    {"scale": "250.5"},
    {"popularity_weight": "0"},
    {"popularity_weight": "2.5"},
    {"limit": "1"},
    {"limit": "100"},
    {"explain": "true"},
    {"explain": "1", "group": "mini_app", "sort": "distance"},
    {"kinds": "store", "category": "cafe", "sort": "distance", "limit": "2"},
]
#: Good queries spelt oddly: bytes that are not UTF-8, escapes, signs, exponents, blanks.
ODD = [
    "lat=60.17&lng=24.94&category=%ff",
    "lat=60.17&lng=24.94&category=caf%C3%A9",
    "lat=60.17&lng=24.94&mini_app=k%66c",
    "lat=%2B60.17&lng=24.94&radius=1e3",
    "lat=60.17&&lng=24.94&",
]
BAD = [
    "lng=24.94",
    "lat=60.17",
    "",
    "lat=north&lng=24.94",
    "lat=nan&lng=24.94",
    "lat=91&lng=24.94",
    "lat=60.17&lng=-180.5",
    "lat=60.17&lng=24.94&radius=5",
    "lat=60.17&lng=24.94&radius=",
    "lat=60.17&lat=60.18&lng=24.94",
    "lat=60.17&lng=24.94&colour=red",
    "lat=60.17&lng=24.94&kinds=boat",
    "lat=60.17&lng=24.94&category=a,,b",
    "lat=60.17&lng=24.94&category=%07",
    "lat=60.17&lng=24.94&available=maybe",
    "lat=60.17&lng=24.94&group=kind",
    "lat=60.17&lng=24.94&sort=price",
    "lat=60.17&lng=24.94&scale=0",
    "lat=60.17&lng=24.94&popularity_weight=11",
    "lat=60.17&lng=24.94&limit=0",
    "lat=60.17&lng=24.94&limit=1.5",
    "lat=60.17&lng=24.94&limit=101",
    "lat=60.17&lng=24.94&cursor=not+a+cursor",
    "lat=60.17&lng=24.94&cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
]


def planted() -> list[Entity]:
    """Stores, bikes and chargers of a few categories and mini-apps around central Helsinki."""
    now = datetime.now(UTC)
    entities = []
    for n in range(24):
        lat, lng = 60.17 + (n % 6) * 4e-4, 24.94 + (n // 6) * 6e-4
        entities += [
            Entity(id=f"t:store-{n}", kind="store", lat=lat, lng=lng, name=f"Shop {n}",
                   category=("cafe", "bar", "kiosk")[n % 3], mini_app=("kfc", "")[n % 2],
                   popularity=float(n % 7), opening_hours=("24/7", "Mo-Su 00:00-00:01")[n % 2]),
            Entity(id=f"t:bike-{n}", kind="bike", lat=lat + 1e-4, lng=lng, category="free_bike",
                   mini_app="divvy", available=n % 2, capacity=1, seen_at=now),
            Entity(id=f"t:charger-{n}", kind="charger", lat=lat, lng=lng + 1e-4, category="ac",
                   mini_app="chargers", available=n % 3, capacity=2, seen_at=now),
        ]  # fmt: skip
    return entities


def refuse(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    raise AssertionError(f"the fast path handed {environ['QUERY_STRING']!r} over to Flask")


def paths(app: Flask) -> tuple[Client, Client]:
    """(the fast path alone, Flask's own WSGI callable) of ``app``."""
    fast = NearbyFastPath(app, refuse)
    return Client(fast), Client(partial(Flask.wsgi_app, app))


def same_answer(app: Flask, query: str) -> TestResponse:
    """Ask both paths; assert their status, headers and body bytes are the same."""
    fast, view = paths(app)
    one, other = fast.get(f"/v1/nearby?{query}"), view.get(f"/v1/nearby?{query}")
    assert one.status == other.status, query
    assert [one.headers.get(h) for h in COMPARED] == [other.headers.get(h) for h in COMPARED]
    assert one.data == other.data, query
    return one


@pytest.fixture(autouse=True)
def one_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both paths answer at the same moment: an answer states its time (popularity_at),
    and its cursor carries it."""
    moment = time.time()
    monkeypatch.setattr(nearby_api, "time", SimpleNamespace(time=lambda: moment))


@pytest.fixture
def planted_app(index: Index, app: Flask) -> Flask:
    write_entities(index.conn, index.hot, "t", planted())
    return app


def test_good_queries_are_answered_alike(planted_app: Flask) -> None:
    for extra in GOOD:
        answer = same_answer(planted_app, urlencode({**HELSINKI, **extra}))
        assert answer.status_code == 200, extra
        assert answer.get_json()["source"] == "redis"
    assert any(same_answer(planted_app, urlencode(HELSINKI)).get_json()["results"])
    for query in ODD:
        assert same_answer(planted_app, query).status_code == 200, query


def test_each_page_of_a_cursor_walk_is_answered_alike(planted_app: Flask) -> None:
    query = {**HELSINKI, "radius": "2000", "limit": "7"}
    pages = 0
    while True:
        body = same_answer(planted_app, urlencode(query)).get_json()
        pages += 1
        if body["next_cursor"] is None:
            break
        query["cursor"] = body["next_cursor"]
    assert pages > 3
    other_query = {**query, "lat": "60.171"}
    assert same_answer(planted_app, urlencode(other_query)).status_code == 400


def test_bad_parameters_are_refused_alike(planted_app: Flask) -> None:
    for query in BAD:
        answer = same_answer(planted_app, query)
        assert answer.status_code == 400, query
        assert answer.get_json()["error"]["code"] == "bad_parameter", query


def test_a_cursor_signed_with_another_key_is_refused_alike(
    planted_app: Flask, api_settings: ApiSettings
) -> None:
    other = create_app(replace(api_settings, cursor_key=b"another deployment's key"))
    try:
        cursor = same_answer(other, "lat=60.17&lng=24.94&limit=2").get_json()["next_cursor"]
    finally:
        other.extensions["nearby"].close()
    answer = same_answer(planted_app, f"lat=60.17&lng=24.94&limit=2&cursor={cursor}")
    assert answer.get_json()["error"] == {
        "code": "bad_parameter", "message": "cursor is not valid", "param": "cursor"
    }  # fmt: skip


@pytest.fixture
def stores_down(index: Index, api_settings: ApiSettings) -> Iterator[tuple[Flask, Flask]]:
    """(an app whose Redis does not answer, one whose Redis and PostGIS both do not)."""
    write_entities(index.conn, index.hot, "t", planted())
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    no_redis = replace(api_settings.index, redis_url=nowhere)
    no_store = replace(no_redis, database_url=f"postgresql://x@127.0.0.1:{free_port()}/x")
    apps = (
        create_app(replace(api_settings, index=no_redis)),
        create_app(replace(api_settings, index=no_store)),
    )
    yield apps
    for app in apps:
        app.extensions["nearby"].close()


def test_a_store_down_is_answered_alike(stores_down: tuple[Flask, Flask]) -> None:
    no_redis, no_store = stores_down
    for extra in ({}, {"kinds": "store", "sort": "distance"}, {"explain": "true"}):
        answer = same_answer(no_redis, urlencode({**HELSINKI, **extra}))
        assert (answer.status_code, answer.get_json()["source"]) == (200, "postgis")
    answer = same_answer(no_store, urlencode(HELSINKI))
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "unavailable"
    assert same_answer(no_store, "lat=1").status_code == 400  # refused before any store is asked
