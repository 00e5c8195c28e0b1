"""The push endpoints: API keys, per-item errors, and the moves they make."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from indexer.model import Entity
from indexer.store.writer import write_entities
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


def seed_bikes(index: Index, count: int, name: str = "") -> None:
    bikes = [
        Entity(
            id=f"t:{n:03d}",
            kind="bike",
            lat=60.17,
            lng=24.94,
            name=name if n == count - 1 else "",
            available=1,
            capacity=1,
            seen_at=SEEN,
        )
        for n in range(count)
    ]
    write_entities(index.conn, index.hot, "t", bikes)


def moved_ids(index: Index) -> list[str]:
    with index.conn.cursor() as cur:
        cur.execute("SELECT id FROM entities WHERE lat = 60.18 ORDER BY id")
        found = [row[0] for row in cur.fetchall()]
    index.conn.commit()
    return found


def test_text_postgresql_cannot_hold_is_an_item_error_and_nothing_else_fails(
    client: FlaskClient, index: Index
) -> None:
    # 300 items are two chunks; the bad ids sort into the second one, after the
    # first has been written: every item is checked before anything is.
    seed_bikes(index, 300)
    items = [{"id": f"t:{n:03d}", "lat": 60.18, "lng": 24.94} for n in range(300)]
    items[7:7] = [{"id": "t:z\x00", "lat": 60.18, "lng": 24.94}]
    items[9:9] = [{"id": "t:z\ud800", "lat": 60.18, "lng": 24.94}]
    # The standard encoder writes the lone surrogate as the escape "\ud800".
    body = json.dumps(items).encode()
    response = client.post(
        "/v1/positions", data=body, content_type="application/json", headers=AUTH
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "received": 302,
        "applied": 300,
        "moved": 300,
        "errors": [
            {
                "index": 7,
                "id": "t:z\x00",
                "reason": "id must not contain NUL (U+0000)",
                "param": "id",
            },
            {
                "index": 9,
                "id": "t:z\ufffd",
                "reason": "id must not contain a lone surrogate",
                "param": "id",
            },
        ],
    }
    assert moved_ids(index) == [f"t:{n:03d}" for n in range(300)]


def test_availability_refuses_such_ids_too(client: FlaskClient, index: Index) -> None:
    seed(index)
    body = (
        b'[{"id": "citybikes:c1\\u0000", "available": 1}, {"id": "citybikes:c1", "available": 1}]'
    )
    response = client.post(
        "/v1/availability", data=body, content_type="application/json", headers=AUTH
    )
    assert response.get_json() == {
        "received": 2,
        "applied": 1,
        "moved": 0,
        "errors": [
            {
                "index": 0,
                "id": "citybikes:c1\x00",
                "reason": "id must not contain NUL (U+0000)",
                "param": "id",
            }
        ],
    }


def test_an_entity_id_postgresql_cannot_hold_is_400(client: FlaskClient, index: Index) -> None:
    response = client.get("/v1/entities/a%00b")
    assert response.status_code == 400
    assert response.get_json() == {
        "error": {
            "code": "bad_parameter",
            "message": "id must not contain NUL (U+0000)",
            "param": "id",
        }
    }


def test_times_and_numbers_beyond_range_are_item_errors(client: FlaskClient, index: Index) -> None:
    seed(index)
    body = (
        b'[{"id": "citybikes:b1", "lat": 60.1, "lng": 24.9, "seen_at": 1e300},'
        b' {"id": "citybikes:b1", "lat": 60.1, "lng": 24.9, "seen_at": "99999999999999999999"},'
        b' {"id": "citybikes:b1", "lat": 60.1, "lng": 24.9, "seen_at": "0001-01-01T00:00+01:00"},'
        b' {"id": "citybikes:b1", "lat": 1' + b"0" * 400 + b', "lng": 24.9}]'
    )
    response = client.post(
        "/v1/positions", data=body, content_type="application/json", headers=AUTH
    )
    assert response.status_code == 200
    time_error = "seen_at must be an RFC 3339 time or POSIX seconds"
    assert [(e["index"], e["reason"]) for e in response.get_json()["errors"]] == [
        (0, time_error),
        (1, time_error),
        (2, time_error),
        (3, "lat must be within [-90, 90]"),
    ]


def test_a_chunk_the_database_fails_on_is_reported_item_by_item(
    client: FlaskClient, index: Index
) -> None:
    # The first chunk (250 items) commits; PostgreSQL refuses the second, which
    # holds t:299: its 50 items are reported as not applied, one by one.
    seed_bikes(index, 300, name="refuse-me")
    items = [{"id": f"t:{n:03d}", "lat": 60.18, "lng": 24.94} for n in range(300)]
    with index.refusing("refuse-me"):
        response = client.post("/v1/positions", json=items, headers=AUTH)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["received"], body["applied"], body["moved"]) == (300, 250, 250)
    assert body["errors"] == [
        {
            "index": n,
            "id": f"t:{n:03d}",
            "reason": "not applied: the database failed on this part of the batch",
            "param": None,
        }
        for n in range(250, 300)
    ]
    assert moved_ids(index) == [f"t:{n:03d}" for n in range(250)]


def test_a_chunked_body_over_the_limit_is_413(client: FlaskClient, index: Index) -> None:
    # No Content-Length: the limit holds for the bytes read.
    seed(index)
    # One item, which would move the bike, padded beyond the limit.
    body = b'[{"id": "citybikes:b1", "lat": 60.18, "lng": 24.94, "pad": "%s"}]' % (b"a" * 2**22)
    response = client.post(
        "/v1/positions",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={**AUTH, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json() == {
        "error": {
            "code": "too_large",
            "message": "the body is larger than 4194304 bytes",
            "param": None,
        }
    }
    assert stored(index, "citybikes:b1") == (60.169, 24.933, 1, 1)


def test_a_body_nested_too_deeply_is_400(client: FlaskClient, index: Index) -> None:
    nested = b"[" * 100_000 + b"]" * 100_000
    # With a lone surrogate, the body is read by the standard parser.
    nested_surrogate = b'["\\ud800", ' + b"[" * 5_000 + b"]" * 5_000 + b"]"
    for body in (nested, nested_surrogate):
        response = client.post(
            "/v1/positions", data=body, content_type="application/json", headers=AUTH
        )
        assert response.status_code == 400
        assert response.get_json() == {
            "error": {
                "code": "bad_parameter",
                "message": "the body is nested deeper than 1024 levels",
                "param": "body",
            }
        }
