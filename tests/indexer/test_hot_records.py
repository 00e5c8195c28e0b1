"""apply.lua records: the fast builders write exactly what layout documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import example, given
from hypothesis import strategies as st

from indexer.hot import layout
from indexer.hot.index import compact_json, display_json, place_of
from tests.factories import json_values, moments, texts


@given(lat=st.floats(-90, 90), lng=st.floats(-180, 180, exclude_max=True))
@example(lat=90.0, lng=0.0)
@example(lat=-90.0, lng=-180.0)
@example(lat=0.0, lng=179.999999)
@example(lat=64.7, lng=10.5)  # near the pentagon at res 0 cell 8009fffffffffff
def test_place_of_is_the_layout_placement(lat: float, lng: float) -> None:
    assert place_of(lat, lng).split() == layout.placement_of(lat, lng).pairs()


@given(
    name=texts,
    lat=st.floats(-90, 90),
    lng=st.floats(-180, 180, exclude_max=True),
    popularity=st.floats(0, 1e12) | st.integers(0, 10**6),
    available=st.none() | st.integers(0, 100_000),
    hours=st.none() | texts,
    attrs=st.dictionaries(texts, json_values, max_size=4),
    seen_at=moments,
)
@example(
    name='Kahvila "Ö"\u2028\x1f', lat=60.1, lng=24.9, popularity=3, available=None,
    hours="Mo-Fr 08:00-18:00", attrs={"b": [1.5, None], "a": "\u00e9"}, seen_at=None,
)  # fmt: skip
def test_display_json_is_the_layout_document_byte_for_byte(
    name: str,
    lat: float,
    lng: float,
    popularity: float,
    available: int | None,
    hours: str | None,
    attrs: dict[str, object],
    seen_at: datetime | None,
) -> None:
    row = {
        "id": "src:1", "kind": "bike", "name": name, "mini_app": "app", "category": "free_bike",
        "lat": lat, "lng": lng, "popularity": popularity, "available": available,
        "capacity": 4, "opening_hours": hours, "tz": None, "source": "src", "attrs": attrs,
        "updated_at": datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), "seen_at": seen_at,
    }  # fmt: skip
    assert display_json(row) == layout.display_document(row)
    # jsonb as PostgreSQL prints it (spaces after separators) gives the same bytes.
    printed = json.dumps(attrs, ensure_ascii=False)
    as_text = {**row, "attrs": None, "attrs_json": printed}
    assert display_json(as_text) == layout.display_document(row)


def test_compact_json_rewrites_jsonb_text() -> None:
    assert compact_json('{"a": 1, "b": [1.0, null, "x"]}') == '{"a":1,"b":[1.0,null,"x"]}'
