"""The push endpoints: API keys, per-item errors, and the moves they make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from indexer.model import Entity
from indexer.writer import write_entities
from tests.conftest import API_KEY, Index

SEEN = datetime.now(UTC) - timedelta(minutes=1)
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def seed(index: Index) -> None:
    write_entities(
        index.conn,
        index.hot,
        "citybikes",
        [
            Entity(
                id="citybikes:b1",
                kind="bike",
                lat=60.169,
                lng=24.933,
                category="free_bike",
                available=1,
                capacity=1,
                seen_at=SEEN,
            ),
            Entity(
                id="citybikes:c1",
                kind="charger",
                lat=60.17,
                lng=24.94,
                category="ev_charger",
                available=0,
                capacity=2,
                seen_at=SEEN,
            ),
        ],
    )


def stored(index: Index, entity_id: str) -> tuple[object, ...] | None:
    with index.conn.cursor() as cur:
        cur.execute(
            "SELECT lat, lng, available, capacity FROM entities WHERE id = %s", (entity_id,)
        )
        found = cur.fetchone()
    index.conn.commit()
    return found


def test_positions_without_a_key_is_401(client: FlaskClient, index: Index) -> None:
    response = client.post("/v1/positions", json={"items": []})
    assert response.status_code == 401
    assert response.get_json() == {
        "error": {
            "code": "unauthorized",
            "message": "this write needs an API key (Authorization: Bearer KEY)",
            "param": None,
        }
    }


def test_positions_with_a_wrong_key_is_403(client: FlaskClient, index: Index) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"X-API-Key": "nope"}):
        response = client.post("/v1/positions", json={"items": []}, headers=headers)
        assert response.status_code == 403
        assert response.get_json() == {
            "error": {"code": "forbidden", "message": "this API key is not valid", "param": None}
        }


def test_availability_needs_a_key_too(client: FlaskClient, index: Index) -> None:
    assert client.post("/v1/availability", json=[]).status_code == 401
    assert client.post("/v1/availability", json=[], headers={"X-API-Key": "x"}).status_code == 403


def test_positions_applies_good_items_and_reports_bad_ones(
    client: FlaskClient, index: Index
) -> None:
    seed(index)
    response = client.post(
        "/v1/positions",
        json={
            "items": [
                {"id": "citybikes:b1", "lat": 60.179, "lng": 24.933, "available": 0},
                {"id": "citybikes:zz", "lat": 60.179, "lng": 24.933},
                {"id": "citybikes:c1", "lat": 100, "lng": 24.933},
            ]
        },
        headers={"X-API-Key": API_KEY},
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "received": 3,
        "applied": 1,
        "moved": 1,
        "errors": [
            {"index": 1, "id": "citybikes:zz", "reason": "unknown id", "param": "id"},
            {
                "index": 2,
                "id": "citybikes:c1",
                "reason": "lat must be within [-90, 90]",
                "param": "lat",
            },
        ],
    }
    assert stored(index, "citybikes:b1") == (60.179, 24.933, 0, 1)


def test_a_bare_list_is_accepted(client: FlaskClient, index: Index) -> None:
    seed(index)
    response = client.post(
        "/v1/positions", json=[{"id": "citybikes:b1", "lat": 60.17, "lng": 24.94}], headers=AUTH
    )
    assert response.get_json() == {"received": 1, "applied": 1, "moved": 1, "errors": []}


def test_availability_sets_points(client: FlaskClient, index: Index) -> None:
    seed(index)
    response = client.post(
        "/v1/availability",
        json={"items": [{"id": "citybikes:c1", "available": 3, "capacity": 4}]},
        headers=AUTH,
    )
    assert response.get_json() == {"received": 1, "applied": 1, "moved": 0, "errors": []}
    assert stored(index, "citybikes:c1") == (60.17, 24.94, 3, 4)


def test_bodies_that_are_not_item_lists_are_400(client: FlaskClient, index: Index) -> None:
    cases = [
        (b"not json", "the body must be JSON", "body"),
        (b'{"items": 3}', 'expected a list of items, or {"items": [...]}', "items"),
        (b'"text"', 'expected a list of items, or {"items": [...]}', "items"),
    ]
    for body, message, param in cases:
        response = client.post(
            "/v1/positions", data=body, content_type="application/json", headers=AUTH
        )
        assert response.status_code == 400
        assert response.get_json() == {
            "error": {"code": "bad_parameter", "message": message, "param": param}
        }


def test_more_than_10000_items_is_400(client: FlaskClient, index: Index) -> None:
    items = [{"id": "x", "lat": 0, "lng": 0}] * 10_001
    response = client.post("/v1/positions", json=items, headers=AUTH)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": {
            "code": "bad_parameter",
            "message": "at most 10000 items a request",
            "param": "items",
        }
    }


def test_a_body_too_large_is_413(client: FlaskClient, index: Index) -> None:
    body = b"[" + b" " * (4 * 1024 * 1024) + b"]"
    response = client.post(
        "/v1/positions", data=body, content_type="application/json", headers=AUTH
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
