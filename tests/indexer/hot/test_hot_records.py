"""apply.lua records: the encoder writes exactly what a plain json.dumps and h3 give."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import h3
from hypothesis import example, given
from hypothesis import strategies as st

from indexer.hot import encoding, layout
from indexer.hot.encoding import compact_json, place_of
from indexer.model import INDEX_RESOLUTIONS
from tests.factories import json_values, moments, texts


@given(lat=st.floats(-90, 90), lng=st.floats(-180, 180, exclude_max=True))
@example(lat=90.0, lng=0.0)
@example(lat=-90.0, lng=-180.0)
@example(lat=0.0, lng=179.999999)
@example(lat=64.7, lng=10.5)  # near the pentagon at res 0 cell 8009fffffffffff
def test_place_of_is_the_layout_placement(lat: float, lng: float) -> None:
    cells = [h3.latlng_to_cell(lat, lng, res) for res in INDEX_RESOLUTIONS]
    pairs = [item for cell in cells for item in (layout.tag_of(cell), cell)]
    assert place_of(lat, lng).split() == pairs


def reference_document(row: dict[str, object]) -> str:
    """The display document as a plain dict dumped by json.dumps."""
    doc = {name: row.get(name) for name in layout.DISPLAY_FIELDS}
    for name in ("lat", "lng", "popularity"):
        doc[name] = float(row[name])  # type: ignore[arg-type]
    for name in ("updated_at", "seen_at"):
        moment = row.get(name)
        doc[name] = None if moment is None else moment.isoformat()  # type: ignore[attr-defined]
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


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
def test_display_document_is_json_dumps_byte_for_byte(
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
    assert encoding.display_document(row) == reference_document(row)
    # jsonb as PostgreSQL prints it (spaces after separators) gives the same bytes.
    printed = json.dumps(attrs, ensure_ascii=False)
    as_text = {**row, "attrs": None, "attrs_json": printed}
    assert encoding.display_document(as_text) == reference_document(row)


def test_compact_json_rewrites_jsonb_text() -> None:
    assert compact_json('{"a": 1, "b": [1.0, null, "x"]}') == '{"a":1,"b":[1.0,null,"x"]}'
