"""The demo's pull-down screen: its routes through the test client, and the page in headless
Chromium over the demo city as scripts/load_demo.sh loads it.

The browser test's lists are checked against what GET /v1/discover answers for
the point the page asked about, never against names written here; so are its
favourite toggle (against GET /v1/users/<user>/favorites too) and its search box.
"""

from __future__ import annotations

import json
import math
import re
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import h3
import pytest
from click.testing import Result
from flask.testing import FlaskClient

from discovery.api.app import create_app
from discovery.debug.icons import icon_svg
from discovery.settings import ApiSettings
from tests.browser import Browser, chromium
from tests.conftest import API_KEY, Index
from tests.factories import clear_catalog, fetch, load_demo_shops, load_demo_usage

START = (60.1699, 24.9384)
LISTS = ("recent", "favorites", "nearby", "popular")


# -- routes -------------------------------------------------------------------


def test_demo_routes_are_absent_unless_debug_is_on(index: Index, api_settings: ApiSettings) -> None:
    app = create_app(replace(api_settings, debug=False))
    try:
        client = app.test_client()
        for path in ("/demo", "/demo/config.json", "/demo/icons/alko.svg", "/demo/static/demo.js"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.get_json()["error"]["code"] == "not_found", path
    finally:
        app.extensions["nearby"].close()


def test_the_page_and_its_files_are_served(client: FlaskClient) -> None:
    page = client.get("/demo")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert b'src="/debug/assets/maplibre-gl.js"' in page.data
    assert b'src="/demo/static/demo.js"' in page.data
    assert client.get("/demo/static/demo.js").status_code == 200
    assert client.get("/demo/static/demo.css").status_code == 200
    # Only the page's own files: not the debug map's, not beyond the folder.
    assert client.get("/demo/static/map.js").status_code == 404
    assert client.get("/demo/static/..%2Fviews.py").status_code == 404


def test_an_icon_is_the_slugs_svg(client: FlaskClient) -> None:
    response = client.get("/demo/icons/r-kioski.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert response.get_data(as_text=True) == icon_svg("r-kioski")
    bad = client.get("/demo/icons/R%20K.svg")
    assert bad.status_code == 404 and bad.json["error"]["code"] == "not_found"


def test_config_hands_the_page_a_key_and_the_demo_users(
    client: FlaskClient, index: Index, api_settings: ApiSettings
) -> None:
    assert client.get("/demo/config.json").json == {
        "api_key": API_KEY,
        "users": ["demo-anna", "demo-ben"],
    }
    app = create_app(replace(api_settings, api_keys=frozenset({"b-key", "a-key"})))
    try:
        assert app.test_client().get("/demo/config.json").json["api_key"] == "a-key"
    finally:
        app.extensions["nearby"].close()
    app = create_app(replace(api_settings, api_keys=frozenset()))
    try:
        assert app.test_client().get("/demo/config.json").json["api_key"] is None
    finally:
        app.extensions["nearby"].close()


# -- the page in Chromium ---------------------------------------------------------


@pytest.fixture
def demo_city(
    index: Index,
    server: str,
    nearby: Callable[..., Result],
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    """The demo's shops, catalog (its icons served by the test server), week and users."""
    clear_catalog(index)
    load_demo_shops(nearby, tmp_path, icon_base=f"{server}/demo/icons/")
    load_demo_usage(nearby, tmp_path, monkeypatch, cli_env, datetime.now(UTC).isoformat())
    yield
    clear_catalog(index)


def distance_text(metres: float | None) -> str:
    """The page's distance, as its script writes it."""
    if metres is None:
        return "not near"
    if metres < 1000:
        return f"{math.floor(metres + 0.5)} m"
    return f"{metres / 1000:.1f} km"


def usage_text(popularity: float) -> str:
    """The popularity a nearby or popular item ranked by, as the page writes it after its
    distance (nothing below 0.5)."""
    return f" · ↑{math.floor(popularity + 0.5)}" if popularity >= 0.5 else ""


def expected_lists(server: str, query: str) -> dict[str, list[list[str]]]:
    """Each list of /v1/discover for the page's query: [slug, name, distance] of every item."""
    status, _, body = fetch(f"{server}/v1/discover?{query}", headers={"X-API-Key": API_KEY})
    assert status == 200, body
    lists: dict[str, list[list[str]]] = {}
    for name in ("recent", "favorites"):
        lists[name] = [
            [item["slug"], item["name"] or item["slug"],
             distance_text(item["nearest"]["distance_m"] if item["nearest"] else None)]
            for item in body[name]
        ]  # fmt: skip
    for name in ("nearby", "popular"):
        lists[name] = [
            [item["mini_app"], (item["app"] or {}).get("name") or item["mini_app"],
             distance_text(item["distance_m"]) + usage_text(item["popularity_now"])]
            for item in body[name]
        ]  # fmt: skip
    return lists


def shown_lists(browser: Browser) -> dict[str, Any]:
    """Each list on the page: [slug, name, distance] of every item."""
    return {
        name: browser.evaluate(
            f"Array.from(document.querySelectorAll('#{name} li[data-slug]')).map(li => "
            "[li.dataset.slug, li.querySelector('.name').textContent,"
            " li.querySelector('.distance').textContent])"
        )
        for name in LISTS
    }


def put_favorite(server: str, user: str, slug: str) -> None:
    request = urllib.request.Request(
        f"{server}/v1/users/{user}/favorites/{slug}", method="PUT", headers={"X-API-Key": API_KEY}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204


def favorite_slugs(server: str, user: str) -> list[str]:
    """The user's favourites as GET /v1/users/<user>/favorites answers them."""
    status, _, body = fetch(f"{server}/v1/users/{user}/favorites", headers={"X-API-Key": API_KEY})
    assert status == 200, body
    return [item["slug"] for item in body["favorites"]]


def tap(browser: Browser, list_name: str, slug: str) -> None:
    """Tap an app of a list and wait for its panel."""
    browser.evaluate(f"document.querySelector('#{list_name} li[data-slug=\"{slug}\"]').click()")
    browser.wait_for("document.body.dataset.state === 'detail'")


TOGGLE = "document.getElementById('favorite')"


def press_toggle(browser: Browser, becomes: bool) -> None:
    """Press the panel's favourite toggle and wait for the reloaded screen."""
    browser.evaluate(f"{TOGGLE}.click()")
    browser.wait_for(
        f"{TOGGLE}.dataset.favorite === '{str(becomes).lower()}' && !{TOGGLE}.disabled"
        " && document.body.dataset.state === 'detail'"
    )


def check_the_favourite_toggle(browser: Browser, server: str, user: str) -> None:
    """The toggle of an app of "Around you" adds it to the user's favourites, then removes it."""
    query = browser.evaluate("document.body.dataset.query")
    shown = expected_lists(server, query)
    held = {item[0] for item in shown["favorites"]}
    slug = next(item[0] for item in shown["nearby"] if item[0] not in held)
    tap(browser, "nearby", slug)
    assert browser.evaluate(f"{TOGGLE}.hidden") is False
    assert browser.evaluate(f"{TOGGLE}.textContent") == "☆ Add to my mini-apps"

    press_toggle(browser, True)
    assert slug in favorite_slugs(server, user)
    assert browser.evaluate(f"{TOGGLE}.textContent") == "★ In my mini-apps"
    after = expected_lists(server, browser.evaluate("document.body.dataset.query"))
    assert after["favorites"][0][0] == slug
    assert shown_lists(browser) == after

    press_toggle(browser, False)
    assert slug not in favorite_slugs(server, user)
    assert browser.evaluate(f"{TOGGLE}.textContent") == "☆ Add to my mini-apps"
    after = expected_lists(server, browser.evaluate("document.body.dataset.query"))
    assert slug not in [item[0] for item in after["favorites"]]
    assert shown_lists(browser) == after
    browser.evaluate("document.getElementById('back').click()")


def set_value(browser: Browser, element_id: str, value: str, event: str) -> None:
    """Set a field of the page as a person would, with its event."""
    browser.evaluate(
        f"(field => {{ field.value = {json.dumps(value)};"
        f" field.dispatchEvent(new Event('{event}')) }})(document.getElementById('{element_id}'))"
    )


def search_for(browser: Browser, text: str, ready: str) -> dict[str, str]:
    """Type ``text`` into the emptied search box; wait for the screen it asks; the query."""
    browser.evaluate("document.getElementById('search').select()")
    if text:
        browser.call("Input.insertText", text=text)
    else:
        set_value(browser, "search", "", "input")
    sent = "new URLSearchParams(document.body.dataset.query).get('q')"
    browser.wait_for(f"{sent} === {json.dumps(text.strip() or None)} && {ready}")
    return dict(parse_qsl(browser.evaluate("document.body.dataset.query")))


def check_the_search_box(browser: Browser, server: str, ready: str) -> None:
    """A word of the first nearby result's name asks for q=<word>; no match; a 400; empty."""
    before = dict(parse_qsl(browser.evaluate("document.body.dataset.query")))
    status, _, body = fetch(
        f"{server}/v1/discover?{urlencode(before)}", headers={"X-API-Key": API_KEY}
    )
    assert status == 200 and body["nearby"], body
    word = re.findall(r"\w+", body["nearby"][0]["name"] or body["nearby"][0]["app"]["name"])[0]

    browser.evaluate("document.getElementById('search').focus()")
    asked = search_for(browser, word, ready)
    assert asked == {**before, "q": word}
    expected = expected_lists(server, urlencode(asked))
    assert expected["nearby"]
    shown = shown_lists(browser)
    assert [item[0] for item in shown["nearby"]] == [item[0] for item in expected["nearby"]]
    assert shown == expected

    nothing = "qqxzv"
    assert not expected_lists(server, urlencode({**before, "q": nothing}))["nearby"]
    search_for(browser, nothing, ready)
    assert browser.evaluate("document.querySelector('#nearby li.empty').textContent") == "no match"

    long = "a" * 101
    status, _, refused = fetch(
        f"{server}/v1/discover?{urlencode({**before, 'q': long})}", headers={"X-API-Key": API_KEY}
    )
    assert status == 400, refused
    search_for(browser, long, ready)
    assert browser.evaluate("document.body.dataset.state") == "error"
    error = refused["error"]
    status_line = "document.getElementById('status').textContent"
    assert browser.evaluate(status_line) == f"{error['param']}: {error['message']}"

    assert search_for(browser, "", ready) == before
    assert shown_lists(browser) == expected_lists(server, urlencode(before))


@pytest.mark.browser
def test_the_screen_lists_what_discover_answers_for_the_clicked_point(
    server: str, demo_city: None
) -> None:
    binary = chromium()
    lat, lng = START
    url = f"{server}/demo?" + urlencode({"lat": lat, "lng": lng, "zoom": 15, "user": "demo-anna"})
    browser = Browser(binary, url, window=(390, 800))
    ready = "['results', 'error'].includes(document.body.dataset.state)"
    try:
        browser.wait_for(ready)
        # A click on the map, off its centre, moves the point and asks again.
        x, y = browser.centre_of("#map")
        browser.click(x + 60, y + 40)
        browser.wait_for(f"document.body.dataset.query.indexOf('lat={lat:.7f}') < 0 && {ready}")
        assert browser.evaluate("document.body.dataset.state") == "results"
        query = browser.evaluate("document.body.dataset.query")
        asked = dict(parse_qsl(query))
        assert asked["user"] == "demo-anna"
        moved = h3.great_circle_distance(
            (float(asked["lat"]), float(asked["lng"])), START, unit="m"
        )
        assert 20 < moved < 200
        expected = expected_lists(server, query)
        assert all(expected[name] for name in LISTS), expected
        assert shown_lists(browser) == expected
        # The week of usage ranks "Popular nearby", and the page shows its figure.
        assert all("↑" in item[2] for item in expected["popular"]), expected["popular"]

        # A tap on an app lists its nearest branches from the point.
        slug = expected["nearby"][0][0]
        browser.evaluate(f"document.querySelector('#nearby li[data-slug=\"{slug}\"]').click()")
        browser.wait_for("document.body.dataset.state === 'detail'")
        params = urlencode({"lat": asked["lat"], "lng": asked["lng"], "radius": asked["radius"],
                            "limit": 5})  # fmt: skip
        status, _, app = fetch(f"{server}/v1/mini-apps/{slug}?{params}")
        assert status == 200
        branches = browser.evaluate(
            "Array.from(document.querySelectorAll('#branches li')).map(li => li.dataset.id)"
        )
        assert branches == [branch["id"] for branch in app["branches"]] and branches

        # A favourite added through the API is among "My mini-apps" after a reload.
        held = {item[0] for item in expected["favorites"]}
        added = next(item[0] for item in expected["nearby"] if item[0] not in held)
        put_favorite(server, "demo-anna", added)
        browser.evaluate("window.beforeReload = true")
        browser.call("Page.reload")
        browser.wait_for(f"window.beforeReload === undefined && {ready}")
        after = expected_lists(server, browser.evaluate("document.body.dataset.query"))
        assert after["favorites"][0][0] == added
        assert shown_lists(browser) == after

        check_the_favourite_toggle(browser, server, "demo-anna")
        check_the_search_box(browser, server, ready)

        # Without a user the panel has no toggle.
        set_value(browser, "user", "", "change")
        browser.wait_for(f"document.body.dataset.query.indexOf('user=') < 0 && {ready}")
        tap(browser, "nearby", shown_lists(browser)["nearby"][0][0])
        assert browser.evaluate(f"{TOGGLE}.hidden") is True
    finally:
        browser.close()
