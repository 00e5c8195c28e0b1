"""The debug map: its routes through the test client, and the page in headless Chromium.

The browser test serves the app with werkzeug on 127.0.0.1, drives Debian's
chromium over the DevTools protocol (a websocket), clicks the map and reads
the results list.  It skips only when chromium cannot be installed here.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import h3
import mercantile
import pytest
from flask.testing import FlaskClient
from PIL import Image

from discovery.api.app import create_app
from discovery.debug.views import maplibre_dist
from discovery.settings import ApiSettings
from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.browser import Browser, chromium
from tests.conftest import Index

CENTRE = (60.170, 24.943)
RADIUS_M = 500.0


def around(bearing_deg: float, distance_m: float) -> tuple[float, float]:
    """A point at a bearing and distance from CENTRE (small distances, flat-earth)."""
    lat, lng = CENTRE
    d_lat = distance_m * math.cos(math.radians(bearing_deg)) / 111_195.0
    d_lng = (
        distance_m * math.sin(math.radians(bearing_deg)) / (111_195.0 * math.cos(math.radians(lat)))
    )
    return lat + d_lat, lng + d_lng


def shops() -> list[Entity]:
    """Eight shops around the centre, nearer ones less popular, and one beyond the radius."""
    entities = []
    for n in range(8):
        lat, lng = around(45.0 * n, 40.0 + 45.0 * n)
        entities.append(
            Entity(
                id=f"t:shop{n}",
                kind="store",
                lat=lat,
                lng=lng,
                name=f"Shop {n}",
                popularity=3.0 * n,
            )
        )
    lat, lng = around(90.0, 900.0)
    entities.append(
        Entity(id="t:far", kind="store", lat=lat, lng=lng, name="Far", popularity=1000.0)
    )
    return entities


def expected_ranking(lat: float, lng: float, entities: list[Entity], limit: int) -> list[str]:
    """Ids in the service's order, computed here from the formula."""
    scale_m = RADIUS_M / 2.0
    keyed = []
    for e in entities:
        distance = h3.great_circle_distance((lat, lng), (e.lat, e.lng), unit="m")
        if distance <= RADIUS_M:
            score = 0.5 ** ((distance / scale_m) ** 2) * (1 + math.log(1 + e.popularity))
            keyed.append((-score, distance, e.id.encode(), e.id))
    return [item[3] for item in sorted(keyed)[:limit]]


@pytest.fixture
def planted_shops(index: Index) -> list[Entity]:
    entities = shops()
    write_entities(index.conn, index.hot, "t", entities)
    return entities


# -- routes -------------------------------------------------------------------


def test_debug_routes_are_absent_unless_debug_is_on(
    index: Index, api_settings: ApiSettings
) -> None:
    from dataclasses import replace

    app = create_app(replace(api_settings, debug=False))
    try:
        client = app.test_client()
        # Flask's own static route would serve the page's files without the map.
        for path in ("/debug/map", "/debug/static/map.js", "/static/debug/map.html"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.get_json()["error"]["code"] == "not_found", path
    finally:
        app.extensions["nearby"].close()


def test_map_page_and_maplibre_assets_are_served(client: FlaskClient) -> None:
    page = client.get("/debug/map")
    assert page.status_code == 200
    assert b'src="/debug/assets/maplibre-gl.js"' in page.data
    assert maplibre_dist() is not None, "maplibre-gl is missing: run `make node` (npm ci)"
    script = client.get("/debug/assets/maplibre-gl.js")
    assert script.status_code == 200 and len(script.data) > 100_000
    assert client.get("/debug/assets/package.json").status_code == 404
    assert client.get("/debug/static/map.js").status_code == 200


def test_tile_is_a_transparent_512_px_png(client: FlaskClient, planted_shops: list[Entity]) -> None:
    tile = mercantile.tile(lng=CENTRE[1], lat=CENTRE[0], zoom=16)
    response = client.get(f"/debug/tiles/16/{tile.x}/{tile.y}.png?diff=1")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    image = Image.open(io.BytesIO(response.data))
    assert image.size == (512, 512) and image.mode == "RGBA"
    # Far from the centre there is nothing: fully transparent.
    empty = mercantile.tile(lng=CENTRE[1] + 1.0, lat=CENTRE[0], zoom=16)
    blank = Image.open(io.BytesIO(client.get(f"/debug/tiles/16/{empty.x}/{empty.y}.png").data))
    assert blank.getpixel((256, 256))[3] == 0


@pytest.mark.parametrize(
    ("path", "param"), [("/debug/tiles/23/0/0.png", "z"), ("/debug/tiles/3/8/0.png", "x")]
)
def test_a_tile_that_does_not_exist_is_a_bad_parameter(
    client: FlaskClient, path: str, param: str
) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert response.json["error"]["param"] == param


def test_query_overlay_has_the_circle_candidates_and_ranked_results(
    client: FlaskClient, planted_shops: list[Entity]
) -> None:
    lat, lng = CENTRE
    response = client.get(f"/debug/query?lat={lat}&lng={lng}&radius={RADIUS_M:g}&limit=5")
    assert response.status_code == 200
    layers: dict[str, list[dict[str, Any]]] = {}
    for feature in response.json["features"]:
        layers.setdefault(feature["properties"]["layer"], []).append(feature["properties"])
    assert {p["id"] for p in layers["candidates"]} == {f"t:shop{n}" for n in range(8)}
    assert [p["id"] for p in layers["results"]] == expected_ranking(lat, lng, planted_shops, 5)
    assert [p["rank"] for p in layers["results"]] == [1, 2, 3, 4, 5]
    assert layers["covered"] and all(p["res"] == 9 for p in layers["covered"])
    assert layers["query"][0]["engine"] == "search (redis)"


def test_query_overlay_leaves_stale_bikes_out_of_the_candidates(
    index: Index, client: FlaskClient, planted_shops: list[Entity]
) -> None:
    now = datetime.now(UTC)
    bikes = []
    for name, seen_at in (("fresh", now), ("stale", now - timedelta(days=3))):
        lat, lng = around(200.0, 70.0)
        bikes.append(
            Entity(id=f"b:{name}", kind="bike", lat=lat, lng=lng, available=1, capacity=1,
                   popularity=50.0, seen_at=seen_at)
        )  # fmt: skip
    write_entities(index.conn, index.hot, "b", bikes)
    lat, lng = CENTRE
    response = client.get(f"/debug/query?lat={lat}&lng={lng}&radius={RADIUS_M:g}&limit=20")
    assert response.status_code == 200
    layers: dict[str, list[str]] = {}
    for feature in response.json["features"]:
        props = feature["properties"]
        if "id" in props:
            layers.setdefault(props["layer"], []).append(props["id"])
    assert set(layers["candidates"]) == {f"t:shop{n}" for n in range(8)} | {"b:fresh"}
    assert sorted(layers["results"]) == sorted(layers["candidates"])


def test_query_overlay_names_a_bad_parameter(client: FlaskClient) -> None:
    response = client.get("/debug/query?lat=100&lng=0")
    assert response.status_code == 400
    assert response.json["error"]["param"] == "lat"


# -- the page in Chromium -----------------------------------------------------------


@pytest.mark.browser
def test_a_click_on_the_map_lists_the_ranked_results(
    server: str, planted_shops: list[Entity]
) -> None:
    binary = chromium()
    lat, lng = CENTRE
    browser = Browser(binary, f"{server}/debug/map?lat={lat}&lng={lng}&zoom=16")
    try:
        browser.wait_for("document.body.dataset.state === 'ready'")
        assert browser.evaluate("window.debugMap.map.getSource('index').tiles[0]").startswith(
            server
        )
        browser.click(*browser.centre_of("#map"))
        browser.wait_for("['results', 'error'].includes(document.body.dataset.state)")
        status = browser.evaluate("document.getElementById('status').textContent")
        assert browser.evaluate("document.body.dataset.state") == "results", status
        query = parse_qs(browser.evaluate("document.body.dataset.query"))
        clicked = (float(query["lat"][0]), float(query["lng"][0]))
        # The click lands at the centre of the map, within a pixel (~2 m at zoom 16).
        assert h3.great_circle_distance(clicked, CENTRE, unit="m") < 3.0
        listed = browser.evaluate(
            "Array.from(document.querySelectorAll('#results li')).map(li => li.dataset.id)"
        )
        assert listed == expected_ranking(*clicked, planted_shops, 10)
        assert status == f"{len(listed)} results of 8 candidates (redis)"
        markers = browser.evaluate("document.querySelectorAll('.rank-marker').length")
        assert markers == len(listed)
    finally:
        browser.close()
