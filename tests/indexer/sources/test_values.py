"""Value coercion: points, times and the lenient numbers, counts, booleans and text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from indexer.sources.rejects import InvalidEntity
from indexer.sources.values import (
    as_bool,
    as_count,
    as_float,
    as_text,
    lat_lng,
    objects,
    parse_point,
    parse_time,
    slug,
)

T0 = 1738144000  # 2025-01-29T09:46:40Z
T0_DT = datetime(2025, 1, 29, 9, 46, 40, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lat", "lng", "reason"),
    [
        ("", "1", "missing coordinates"),
        (None, 1, "missing coordinates"),
        ("abc", "1", "unparseable latitude 'abc'"),
        ("1", "1,5", "unparseable longitude '1,5'"),
        ("nan", "1", "latitude is NaN or infinite"),
        ("1", "-inf", "longitude is NaN or infinite"),
        ("90.5", "1", "latitude 90.5 outside [-90, 90]"),
        ("1", "-180.01", "longitude -180.01 outside [-180, 180]"),
        (True, 1, "unparseable latitude True"),
    ],
)
def test_parse_point_refuses(lat: object, lng: object, reason: str) -> None:
    with pytest.raises(InvalidEntity) as caught:
        parse_point(lat, lng)
    assert str(caught.value) == reason


@given(
    lat=st.floats(min_value=-90, max_value=90),
    lng=st.floats(min_value=-180, max_value=180),
)
@example(lat=90.0, lng=180.0)
@example(lat=-90.0, lng=-180.0)
def test_parse_point_round_trips_text(lat: float, lng: float) -> None:
    expected_lng = -180.0 if lng == 180.0 else lng
    assert parse_point(repr(lat), repr(lng)) == (lat, expected_lng)


def test_parse_time_forms() -> None:
    assert parse_time(T0) == T0_DT
    assert parse_time(str(T0)) == T0_DT
    assert parse_time("2025-01-29T09:46:40Z") == T0_DT
    assert parse_time("2025-01-29T11:46:40+02:00") == T0_DT
    assert parse_time("2025-01-29T09:46:40") == T0_DT
    for bad in (None, True, "", "soon", float("nan"), [1]):
        assert parse_time(bad) is None


def test_parse_time_beyond_what_datetime_holds_is_none() -> None:
    # Years outside 1..9999, and digits that int() does not read: never an error.
    for bad in (1e300, -1e300, "99999999999999999999", "\u00b2", "0001-01-01T00:00+01:00"):
        assert parse_time(bad) is None


def test_slug() -> None:
    assert slug("Shell Recharge") == "shell-recharge"
    assert slug("  ÄÖ & Co.  ") == "co"
    assert slug("") == ""


def test_as_float() -> None:
    assert as_float(1) == 1.0
    assert as_float(" 2.5 ") == 2.5
    for bad in (None, True, "", "x", "nan", float("inf"), [1]):
        assert as_float(bad) is None


def test_as_count() -> None:
    assert as_count(3) == 3
    assert as_count("0") == 0
    assert as_count(2.9) == 2
    for bad in (None, False, -1, "-2", "1.5", "x", [1]):
        assert as_count(bad) is None


def test_as_bool() -> None:
    assert [as_bool(v) for v in (True, 1, "1", "true", " YES ", "True")] == [True] * 6
    assert [as_bool(v) for v in (False, 0, "0", "false", "no", "", None)] == [False] * 7


def test_as_text() -> None:
    assert as_text("  Mart ") == "Mart"
    assert as_text(7) == "7"
    assert as_text(None) == ""


def test_objects_of_a_list_skip_what_is_not_an_object() -> None:
    assert list(objects([{"a": 1}, 2, "x", None, {"b": 2}])) == [{"a": 1}, {"b": 2}]
    assert list(objects({"a": 1})) == []
    assert list(objects(None)) == []


@pytest.mark.parametrize(
    ("lat", "lng", "expected"),
    [
        (60.1, 24.9, (60.1, 24.9)),
        ("60.1", " 24.9", (60.1, 24.9)),
        (90, 180, (90.0, -180.0)),
        (-90, -180, (-90.0, -180.0)),
        (90.5, 0, None),
        (0, -180.5, None),
        (None, 1, None),
        ("x", 1, None),
        (float("nan"), 0, None),
        (True, 0, None),
    ],
)
def test_lat_lng(lat: object, lng: object, expected: tuple[float, float] | None) -> None:
    assert lat_lng(lat, lng) == expected


@given(lat=st.floats() | st.text(max_size=6) | st.none(), lng=st.floats() | st.integers())
def test_lat_lng_is_in_range_or_none(lat: object, lng: object) -> None:
    point = lat_lng(lat, lng)
    assert point is None or (-90.0 <= point[0] <= 90.0 and -180.0 <= point[1] < 180.0)
