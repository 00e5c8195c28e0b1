"""Records to stores: ids, popularity, opening hours, and what the table accepts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.model import Entity
from indexer.sources.records import (
    Record,
    entity_id,
    parse_opening_hours,
    parse_popularity,
    record_to_entity,
)
from indexer.sources.rejects import InvalidEntity
from tests.factories import assert_table_accepts


def test_entity_id() -> None:
    assert entity_id("shops", "42") == "shops:42"
    assert entity_id("shops", 42) == "shops:42"
    assert entity_id("shops", "osm:node/5") == "osm:node/5"
    assert entity_id("shops", "  ") == ""
    assert entity_id("shops", None) == ""


def test_parse_popularity() -> None:
    assert parse_popularity("") == 0.0
    assert parse_popularity(None) == 0.0
    assert parse_popularity("2.5") == 2.5
    for value, reason in [
        ("-1", "negative popularity -1.0"),
        ("x", "unparseable popularity 'x'"),
        ("inf", "popularity is NaN or infinite"),
    ]:
        with pytest.raises(InvalidEntity) as caught:
            parse_popularity(value)
        assert str(caught.value) == reason


def test_parse_opening_hours() -> None:
    assert parse_opening_hours(" Mo-Fr 08:00-18:00 ") == "Mo-Fr 08:00-18:00"
    assert parse_opening_hours("") is None
    with pytest.raises(InvalidEntity, match="^unparseable opening_hours 'Mon - Fri 9am'$"):
        parse_opening_hours("Mon - Fri 9am")


def test_record_to_entity() -> None:
    record = Record(
        7,
        {
            "id": "12",
            "name": " Mart ",
            "lat": "60.5",
            "lng": "180",
            "category": "mart",
            "mini_app": "kmarket",
            "popularity": "3",
            "opening_hours": "24/7",
        },
        {"floor": "2"},
    )
    assert record_to_entity(record, "shops") == Entity(
        id="shops:12",
        kind="store",
        lat=60.5,
        lng=-180.0,
        name="Mart",
        category="mart",
        mini_app="kmarket",
        popularity=3.0,
        opening_hours="24/7",
        attrs={"floor": "2"},
    )


def test_record_to_entity_reports_a_reading_problem_before_the_fields() -> None:
    with pytest.raises(InvalidEntity, match="^2 fields, the header has 3$"):
        record_to_entity(Record(2, {"id": ""}, problem="2 fields, the header has 3"), "s")
    with pytest.raises(InvalidEntity, match="^empty id$"):
        record_to_entity(Record(2, {"id": " ", "lat": "x"}), "s")


def test_record_to_entity_keeps_nothing_not_finite() -> None:
    entity = record_to_entity(Record(1, {"id": "a", "lat": 1e-300, "lng": -0.0}), "s")
    assert math.isfinite(entity.lat) and entity.lng == 0.0


_odd_values = st.none() | st.booleans() | st.floats() | st.text(max_size=8)
_numbers = st.floats(-200, 200) | st.integers(-200, 200) | st.floats(-200, 200).map(str)
_record_fields = {
    "id": st.text(max_size=6) | st.integers() | _odd_values,
    "name": _odd_values,
    "lat": st.floats(-90, 90)
    | _numbers
    | st.sampled_from(["", "nan", "-inf", "1e308", "90", "-90.0"])
    | _odd_values,
    "lng": st.floats(-180, 180)
    | _numbers
    | st.sampled_from(["", "nan", "inf", "180", "-180"])
    | _odd_values,
    "popularity": _numbers | st.sampled_from(["", "-0", "nan", "1e400"]) | _odd_values,
    "opening_hours": st.sampled_from(["", " ", "24/7", "Mo-Fr 08:00-18:00", "never"]) | _odd_values,
}


@given(
    st.fixed_dictionaries(
        {name: _record_fields[name] for name in ("id", "lat", "lng", "popularity")},
        optional={name: _record_fields[name] for name in ("name", "opening_hours")},
    )
)
def test_a_record_either_is_rejected_or_makes_an_entity_the_table_accepts(
    fields: dict[str, object],
) -> None:
    try:
        entity = record_to_entity(Record(position=2, fields=fields), "s")
    except InvalidEntity:
        return
    assert_table_accepts(entity)
