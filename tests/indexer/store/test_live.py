"""Pushed positions and availability, staleness and the purge, against PostGIS and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import h3
import h3.api.basic_int as h3i
import pytest
import redis

from indexer.hot import encoding, layout
from indexer.hot.pending import dead_marks
from indexer.model import Entity
from indexer.store.errors import HotIndexUnavailable
from indexer.store.live import MAX_ITEMS, ItemError, push_availability, push_positions
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import LIVE_NOW, bike, charger, loc_of

NOW = LIVE_NOW
# Two points about 1.1 km apart in Helsinki: different res-9 and res-7 cells.
KAMPPI = (60.1690, 24.9330)
KALLIO = (60.1790, 24.9330)


def row(index: Index, entity_id: str) -> tuple[object, ...] | None:
    with index.conn.cursor() as cur:
        cur.execute(
            "SELECT lat, lng, h3, available, capacity, seen_at FROM entities WHERE id = %s",
            (entity_id,),
        )
        found = cur.fetchone()
    index.conn.commit()
    return found


def members(index: Index, cell: int) -> list[str]:
    """The ids in a cell's set."""
    gen = index.hot.require_generation()
    key = layout.cell_key(index.hot.prefix, gen, h3.int_to_str(cell))
    return sorted(encoding.member_id(member) for member in index.hot.raw.zrange(key, 0, -1))


# --- positions ---------------------------------------------------------------


def test_a_move_rebuckets_in_postgis_and_redis(index: Index) -> None:
    write_entities(index.conn, index.hot, "citybikes", [bike("b1", *KAMPPI)])
    old_cell = h3i.latlng_to_cell(*KAMPPI, 9)
    new_cell = h3i.latlng_to_cell(*KALLIO, 9)
    assert members(index, old_cell) == ["citybikes:b1"]

    result = push_positions(
        index.conn,
        index.hot,
        [{"id": "citybikes:b1", "lat": KALLIO[0], "lng": KALLIO[1], "available": 0}],
        now=NOW,
    )

    assert (result.received, result.applied, result.moved, result.errors) == (1, 1, 1, ())
    assert row(index, "citybikes:b1") == (KALLIO[0], KALLIO[1], new_cell, 0, 1, NOW)
    assert members(index, old_cell) == []
    assert members(index, new_cell) == ["citybikes:b1"]
    assert index.hot.verify(index.conn) == []


def test_a_move_within_a_cell_is_applied_but_not_counted_as_moved(index: Index) -> None:
    write_entities(index.conn, index.hot, "citybikes", [bike("b1", *KAMPPI)])
    result = push_positions(
        index.conn,
        index.hot,
        [{"id": "citybikes:b1", "lat": KAMPPI[0] + 1e-6, "lng": KAMPPI[1], "seen_at": 1740830370}],
        now=NOW,
    )
    assert (result.applied, result.moved) == (1, 0)
    found = row(index, "citybikes:b1")
    assert found is not None
    assert found[0] == KAMPPI[0] + 1e-6
    assert found[3] == 1  # available kept when not given
    assert found[5] == datetime.fromtimestamp(1740830370, tz=UTC)


def test_bad_items_are_reported_by_index_and_good_ones_applied(index: Index) -> None:
    write_entities(
        index.conn,
        index.hot,
        "citybikes",
        [bike("b1", *KAMPPI), bike("b2", *KAMPPI), bike("dock", *KAMPPI, capacity=5)],
    )
    write_entities(
        index.conn, index.hot, "shops", [Entity(id="shops:1", kind="store", lat=60.17, lng=24.94)]
    )
    items = [
        {"id": "citybikes:b1", "lat": KALLIO[0], "lng": KALLIO[1]},
        {"id": "citybikes:b2", "lat": 91.0, "lng": 24.9},
        {"id": "citybikes:b2", "lat": "60.1", "lng": 24.9},
        {"id": "citybikes:b2", "lat": 60.1},
        {"lat": 60.1, "lng": 24.9},
        "not an object",
        {"id": "citybikes:b1", "lat": 60.1, "lng": 24.9},
        {"id": "citybikes:nope", "lat": 60.1, "lng": 24.9},
        {"id": "shops:1", "lat": 60.1, "lng": 24.9},
        {"id": "citybikes:b2", "lat": 60.1, "lng": 24.9, "seen_at": "2025-03-01T11:00:00Z"},
        {"id": "citybikes:dock", "lat": 60.1, "lng": 24.9, "available": 6},
        {"id": "citybikes:x", "lat": 60.1, "lng": 24.9, "seen_at": "2025-03-01T12:06:00Z"},
        {"id": "citybikes:x", "lat": 60.1, "lng": 24.9, "seen_at": "yesterday"},
        {"id": "citybikes:x", "lat": 60.1, "lng": 24.9, "available": -1},
        {"id": "citybikes:x", "lat": 60.1, "lng": True},
        {"id": "", "lat": 60.1, "lng": 24.9},
    ]
    result = push_positions(index.conn, index.hot, items, now=NOW)
    assert (result.received, result.applied, result.moved) == (16, 1, 1)
    assert result.errors == (
        ItemError(1, "citybikes:b2", "lat must be within [-90, 90]", "lat"),
        ItemError(2, "citybikes:b2", "lat must be a number", "lat"),
        ItemError(3, "citybikes:b2", "lng must be a number", "lng"),
        ItemError(4, None, "id must be a non-empty string", "id"),
        ItemError(5, None, "item must be an object", "item"),
        ItemError(6, "citybikes:b1", "id repeated in this batch", "id"),
        ItemError(7, "citybikes:nope", "unknown id", "id"),
        ItemError(8, "shops:1", "a store does not take pushes", "id"),
        ItemError(9, "citybikes:b2", "older than the state held (seen_at)", "seen_at"),
        ItemError(10, "citybikes:dock", "available exceeds capacity 5", "available"),
        ItemError(11, "citybikes:x", "seen_at is in the future", "seen_at"),
        ItemError(
            12, "citybikes:x", "seen_at must be an RFC 3339 time or POSIX seconds", "seen_at"
        ),
        ItemError(13, "citybikes:x", "available must be within [0, 100000]", "available"),
        ItemError(14, "citybikes:x", "lng must be a number", "lng"),
        ItemError(15, "", "id must be a non-empty string", "id"),
    )
    assert row(index, "citybikes:b2") == (
        KAMPPI[0],
        KAMPPI[1],
        h3i.latlng_to_cell(*KAMPPI, 9),
        1,
        1,
        NOW - timedelta(minutes=1),
    )
    assert index.hot.verify(index.conn) == []


def test_longitude_180_is_stored_as_minus_180(index: Index) -> None:
    write_entities(index.conn, index.hot, "citybikes", [bike("b1", 0.0, 179.9)])
    result = push_positions(
        index.conn, index.hot, [{"id": "citybikes:b1", "lat": 0.0, "lng": 180.0}], now=NOW
    )
    assert result.applied == 1
    found = row(index, "citybikes:b1")
    assert found is not None
    assert found[:2] == (0.0, -180.0)


def test_a_batch_above_the_limit_is_refused(index: Index) -> None:
    with pytest.raises(ValueError, match="at most 10000 items"):
        push_positions(index.conn, index.hot, [{}] * (MAX_ITEMS + 1), now=NOW)
    with pytest.raises(ValueError, match="at most 10000 items"):
        push_availability(index.conn, index.hot, [{}] * (MAX_ITEMS + 1), now=NOW)


def test_an_empty_batch_does_nothing(index: Index) -> None:
    result = push_positions(index.conn, index.hot, [], now=NOW)
    assert (result.received, result.applied, result.moved, result.errors) == (0, 0, 0, ())


# --- availability ------------------------------------------------------------


def test_availability_sets_free_and_total_points(index: Index) -> None:
    write_entities(index.conn, index.hot, "volt", [charger("c1", 1, 4), charger("c2", 0, 2)])
    result = push_availability(
        index.conn,
        index.hot,
        [
            {"id": "volt:c1", "available": 3},
            {"id": "volt:c2", "available": 5, "capacity": 6},
            {"id": "volt:c1", "available": 1},
            {"id": "volt:c3", "available": 1},
            {"id": "volt:c4", "available": 3, "capacity": 2},
            {"id": "volt:c5"},
            {"id": "volt:c5", "available": 1.5},
        ],
        now=NOW,
    )
    assert (result.applied, result.moved) == (2, 0)
    assert result.errors == (
        ItemError(2, "volt:c1", "id repeated in this batch", "id"),
        ItemError(3, "volt:c3", "unknown id", "id"),
        ItemError(4, "volt:c4", "available 3 exceeds capacity 2", "available"),
        ItemError(5, "volt:c5", "available must be an integer", "available"),
        ItemError(6, "volt:c5", "available must be an integer", "available"),
    )
    assert row(index, "volt:c1") == (60.17, 24.94, h3i.latlng_to_cell(60.17, 24.94, 9), 3, 4, NOW)
    assert row(index, "volt:c2") == (60.17, 24.94, h3i.latlng_to_cell(60.17, 24.94, 9), 5, 6, NOW)
    member = index.member("volt:c1")
    assert member is not None and encoding.parse_member(member)["available"] == 3
    assert index.hot.verify(index.conn) == []


def test_availability_above_the_capacity_held_is_refused(index: Index) -> None:
    write_entities(index.conn, index.hot, "volt", [charger("c1", 1, 4)])
    result = push_availability(index.conn, index.hot, [{"id": "volt:c1", "available": 5}], now=NOW)
    assert result.errors == (ItemError(0, "volt:c1", "available exceeds capacity 4", "available"),)
    assert row(index, "volt:c1") == (
        60.17,
        24.94,
        h3i.latlng_to_cell(60.17, 24.94, 9),
        1,
        4,
        NOW - timedelta(minutes=5),
    )


# --- Redis failing or missing ------------------------------------------------


def test_a_push_that_redis_refuses_leaves_a_mark_the_next_write_repairs(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_entities(index.conn, index.hot, "citybikes", [bike("b1", *KAMPPI)])
    item = {"id": "citybikes:b1", "lat": KALLIO[0], "lng": KALLIO[1]}

    def refused(*args: object, **kwargs: object) -> int:
        raise redis.ConnectionError("Redis went away")

    with monkeypatch.context() as patch:
        patch.setattr(index.hot, "apply_rows", refused)
        with pytest.raises(HotIndexUnavailable):
            push_positions(index.conn, index.hot, [item], now=NOW)
    assert row(index, "citybikes:b1") is not None and loc_of(index, "citybikes:b1") is not None
    assert len(dead_marks(index.conn)) == 1
    assert {d.id for d in index.hot.verify(index.conn)} == {"citybikes:b1"}  # still at Kamppi
    store = Entity(id="other:x", kind="store", lat=KAMPPI[0], lng=KAMPPI[1])
    write_entities(index.conn, index.hot, "other", [store])  # the next write, of anything
    assert dead_marks(index.conn) == [] and index.hot.verify(index.conn) == []


def test_a_push_into_a_redis_without_a_generation_says_so(index: Index) -> None:
    write_entities(index.conn, index.hot, "citybikes", [bike("b1", *KAMPPI)])
    item = {"id": "citybikes:b1", "lat": KALLIO[0], "lng": KALLIO[1]}
    assert not push_positions(index.conn, index.hot, [item], now=NOW).hot_missing
    index.hot.drop_all()
    result = push_positions(index.conn, index.hot, [dict(item, lat=KAMPPI[0])], now=NOW)
    assert (result.applied, result.hot_missing) == (1, True)
