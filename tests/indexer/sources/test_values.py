"""Value coercion: points, times and the lenient numbers, counts, booleans and text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from indexer.sources.rejects import InvalidEntity
from indexer.sources.values import parse_point, parse_time, slug

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


def test_slug() -> None:
    assert slug("Shell Recharge") == "shell-recharge"
    assert slug("  ÄÖ & Co.  ") == "co"
    assert slug("") == ""
