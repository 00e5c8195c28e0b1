"""POST /v1/events: keys, bodies (JSON array, NDJSON), refused events by index, limits."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient

from discovery.api.app import create_app
from discovery.settings import ApiSettings
from indexer.model import Entity
from indexer.settings import UsageSettings
from tests.conftest import API_KEY, Index
from tests.factories import (
    assert_usage_matches,
    expected_usage,
    random_events,
    stored_usage,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}
NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}


def test_a_key_is_needed(client: FlaskClient, entities: list[Entity]) -> None:
    assert client.post("/v1/events", json=[]).status_code == 401
    bad = client.post("/v1/events", json=[], headers={"X-API-Key": "nope"})
    assert bad.status_code == 403 and bad.json["error"]["code"] == "forbidden"


def test_events_are_applied_and_bad_ones_listed(
    client: FlaskClient, entities: list[Entity], index: Index
) -> None:
    now = time.time()
    events = [
        {"type": "order", "entity_id": "u:0", "user": "p1", "at": now - 60},
        {"type": "nope", "entity_id": "u:0", "at": now},
        {"type": "open", "mini_app": "alko", "user": "p1", "at": now - 30},
        {"type": "open", "entity_id": "u:404", "at": now},
        {"type": "open", "entity_id": "u:1", "at": now + 3600},
    ]
    response = client.post("/v1/events", json=events, headers=AUTH)
    assert response.status_code == 200
    assert response.json == {
        "received": 5,
        "applied": 2,
        "errors": [
            {"index": 1, "reason": "type must be one of open, order, booking, unlock, charge",
             "param": "type"},
            {"index": 3, "reason": "unknown entity", "param": "entity_id"},
            {"index": 4, "reason": "at is in the future", "param": "at"},
        ],
    }  # fmt: skip
    found = stored_usage(index)
    assert set(found["entities"]) == {"u:0"} and set(found["mini_apps"]) == {"kfc", "alko"}
    assert [slug for slug, _ in found["recents"]["p1"]] == ["alko", "kfc"]


def test_ndjson_and_json_give_the_same_figures(
    client: FlaskClient, entities: list[Entity], index: Index
) -> None:
    events = random_events(11, 400, entities)
    body = b"\n".join(orjson.dumps(e) for e in events[:200]) + b"\n\n"
    assert client.post("/v1/events", data=body, headers=NDJSON).json["applied"] == 200
    assert client.post("/v1/events", json=events[200:], headers=AUTH).json["applied"] == 200
    usage = UsageSettings()
    expected = expected_usage(events, entities, usage.half_life_s, dict(usage.weights))
    assert_usage_matches(stored_usage(index), expected)


def test_an_ndjson_line_that_is_not_json_is_refused_alone(
    client: FlaskClient, entities: list[Entity]
) -> None:
    good = orjson.dumps({"type": "open", "entity_id": "u:0", "at": time.time()})
    body = b"\n".join([good, b"{oops", good, b"[]"])
    assert client.post("/v1/events", data=body, headers=NDJSON).json == {
        "received": 4,
        "applied": 2,
        "errors": [
            {"index": 1, "reason": "event is not JSON", "param": "event"},
            {"index": 3, "reason": "event must be an object", "param": "event"},
        ],
    }


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{nope", {"Content-Type": "application/json"}, "the body must be JSON"),
        (
            b'{"events": []}',
            {"Content-Type": "application/json"},
            "expected a JSON array of events",
        ),
        (b"[]", {"Content-Type": "text/plain"}, "the body must be JSON (application/json) or"),
        (b"[" * 2000, {"Content-Type": "application/json"}, "the body is nested deeper than"),
    ],
)
def test_an_unusable_body_is_400(
    client: FlaskClient, entities: list[Entity], body: bytes, headers: dict, message: str
) -> None:
    response = client.post("/v1/events", data=body, headers={**AUTH, **headers})
    assert response.status_code == 400
    assert response.json["error"]["param"] == "body"
    assert response.json["error"]["message"].startswith(message)


def test_more_than_ten_thousand_events_is_413(
    client: FlaskClient, entities: list[Entity], index: Index
) -> None:
    event = {"type": "open", "entity_id": "u:0", "at": time.time()}
    response = client.post("/v1/events", json=[event] * 10_001, headers=AUTH)
    assert response.status_code == 413
    assert response.json["error"] == {
        "code": "too_large", "message": "at most 10000 events a request", "param": "body"
    }  # fmt: skip
    full = client.post("/v1/events", json=[event] * 10_000, headers=AUTH)
    assert full.json["applied"] == 10_000
    assert len(stored_usage(index)["events"]) == 10_000


def test_a_body_over_the_byte_limit_is_413(client: FlaskClient, entities: list[Entity]) -> None:
    body = b"[" + b'"' + b"x" * (4 * 1024 * 1024) + b'"]'
    response = client.post("/v1/events", data=body, headers={**AUTH,
                           "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413


@pytest.fixture
def rounds_app(index: Index, api_settings: ApiSettings) -> Iterator[Flask]:
    """The app as deployed: events stored by the request, counted by rounds (0.2 s)."""
    usage = dataclasses.replace(api_settings.index.usage, round_s=0.2)
    settings = dataclasses.replace(
        api_settings, index=dataclasses.replace(api_settings.index, usage=usage)
    )
    application = create_app(settings)
    yield application
    application.extensions["nearby"].close()


def test_with_rounds_on_events_count_within_seconds(
    rounds_app: Flask, entities: list[Entity], index: Index
) -> None:
    client = rounds_app.test_client()
    events = random_events(12, 500, entities)
    sent = time.monotonic()
    response = client.post("/v1/events", json=events, headers=AUTH)
    assert response.status_code == 200 and response.json["applied"] == 500
    expected = expected_usage(events, entities, UsageSettings().half_life_s,
                              dict(UsageSettings().weights))  # fmt: skip
    # A round of the app's own counts them, PostGIS and the hot index alike, in seconds.
    while time.monotonic() - sent < 5.0 and stored_usage(index)["entities"].keys() != (
        expected["entities"].keys()
    ):
        time.sleep(0.05)
    assert_usage_matches(stored_usage(index), expected)
    top = max(expected["entities"], key=expected["entities"].__getitem__)
    lat, lng = next((e.lat, e.lng) for e in entities if e.id == top)
    while time.monotonic() - sent < 5.0:
        answer = client.get(f"/v1/nearby?lat={lat}&lng={lng}&radius=10&sort=popularity").json
        if answer["results"] and answer["results"][0]["popularity_now"] > 0:
            break
        time.sleep(0.05)
    assert answer["source"] == "redis" and answer["results"][0]["id"] == top
    assert answer["results"][0]["popularity_now"] > 0
