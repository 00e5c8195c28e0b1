"""Reading listings: format detection, CSV/GeoJSON/NDJSON records, validation."""

from __future__ import annotations

import gzip
import io
import json
import math
from pathlib import Path

import pytest
import shapely
from hypothesis import example, given
from hypothesis import strategies as st

from indexer.model import Entity, InvalidEntity, check_entity
from indexer.sources.listing_json import (
    feature_to_record,
    geometry_to_point,
    read_geojson,
    read_ndjson,
)
from indexer.sources.listings import (
    Record,
    UnreadableInput,
    detect_format,
    entity_id,
    match_columns,
    open_input,
    parse_column_map,
    parse_opening_hours,
    parse_point,
    parse_popularity,
    read_csv,
    record_to_entity,
)

#: An L-shaped ring, lng-lat: its centroid lies outside it.
L_SHAPE = [[0, 0], [4, 0], [4, 1], [1, 1], [1, 4], [0, 4], [0, 0]]


def stream(text: str) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(text.encode()))


# -- opening and detection --------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"id,name,lat,lng\n1,a,1,2\n", "csv"),
        (b"\xef\xbb\xbfid;lat;lng\n", "csv"),
        (b'{"type": "FeatureCollection", "features": []}', "geojson"),
        (b'{"type": "FeatureCollection", "features": []}\n', "geojson"),
        (b'{\n  "type": "FeatureCollection",\n  "features": [\n', "geojson"),
        (b'{"id": "1", "lat": 1, "lng": 2}\n{"id": "2"', "ndjson"),
        (b'  {"type": "Feature", "geometry": null, "properties": {}}\n', "ndjson"),
        (b"\x00\x00\x00\x0d\x0a\x09OSMHeader\x18", "osm"),
        (b"<?xml version='1.0'?>\n<osm version=\"0.6\">", "osm"),
    ],
)
def test_detect_format(head: bytes, expected: str) -> None:
    assert detect_format(head) == expected


def test_open_input_reads_gzip_transparently(tmp_path: Path) -> None:
    text = "id,lat,lng\n" + "".join(f"{n},1.5,2.5\n" for n in range(20000))
    path = tmp_path / "shops.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    opened = open_input(str(path))
    assert opened.compressed
    assert opened.head == text.encode()[: len(opened.head)]
    assert opened.stream.read() == text.encode()


def test_open_input_of_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(UnreadableInput, match="No such file"):
        open_input(str(tmp_path / "absent.csv"))


def test_open_input_of_a_broken_gzip_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(UnreadableInput):
        open_input(str(path))


# -- CSV --------------------------------------------------------------------------------


def test_parse_column_map() -> None:
    assert parse_column_map(["name=Station Name", "lat=Latitude"]) == {
        "name": "Station Name",
        "lat": "Latitude",
    }
    with pytest.raises(ValueError, match="expected FIELD=HEADER"):
        parse_column_map(["name"])
    with pytest.raises(ValueError, match="unknown field 'colour'"):
        parse_column_map(["colour=Colour"])


def test_match_columns_aliases_case_insensitively() -> None:
    headers = ["ID", "Name", "Latitude", "LON", "brand", "extra"]
    assert match_columns(headers, {}) == {"id": 0, "name": 1, "lat": 2, "lng": 3, "mini_app": 4}


def test_match_columns_prefers_the_mapping() -> None:
    headers = ["ID", "Station Name", "Latitude", "Longitude", "name"]
    positions = match_columns(headers, {"name": "Station Name"})
    assert positions == {"id": 0, "name": 1, "lat": 2, "lng": 3}


def test_match_columns_without_coordinates_is_unreadable() -> None:
    with pytest.raises(UnreadableInput, match="no column for lat, lng"):
        match_columns(["id", "name", "x", "y"], {})
    with pytest.raises(UnreadableInput, match="no column 'Y'"):
        match_columns(["id", "lat", "lng"], {"lat": "Y"})


def test_read_csv_positions_are_starting_lines() -> None:
    text = 'id,name,lat,lng,note\n1,a,1,2,\n\n2,"two\nlines",3,4,x\n3,c,5,6,y\n'
    records = list(read_csv(stream(text)))
    assert [r.position for r in records] == [2, 4, 6]
    assert records[1].fields == {"id": "2", "name": "two\nlines", "lat": "3", "lng": "4"}
    assert [r.attrs for r in records] == [{}, {"note": "x"}, {"note": "y"}]


def test_read_csv_semicolons_and_bom() -> None:
    text = "\ufeffid;lat;lng;popularity\n7;60,1;24,9;3\n"
    (record,) = read_csv(stream(text))
    assert record.fields == {"id": "7", "lat": "60,1", "lng": "24,9", "popularity": "3"}


def test_read_csv_row_of_the_wrong_width_has_a_problem() -> None:
    (record,) = read_csv(stream("id,lat,lng\n1,2\n"))
    assert record.problem == "2 fields, the header has 3"
    assert record.raw == ["1", "2"]


def test_read_csv_not_utf8_is_unreadable() -> None:
    rows = "".join(f"{n},1,2\n" for n in range(5000))
    with pytest.raises(UnreadableInput, match="can't decode byte 0xff"):
        list(read_csv(io.BufferedReader(io.BytesIO(b"id,lat,lng\n1,2,\xff\xfe\n"))))
    # Past the first buffer, the error comes while iterating.
    records = read_csv(stream("id,lat,lng\n" + rows + rows))
    assert sum(1 for _ in records) == 10000
    late = read_csv(io.BufferedReader(io.BytesIO(f"id,lat,lng\n{rows}".encode() + b"\xff\n")))
    with pytest.raises(UnreadableInput, match="can't decode byte 0xff"):
        list(late)


# -- GeoJSON and NDJSON -----------------------------------------------------------------


def test_geometry_to_point_of_a_point() -> None:
    assert geometry_to_point({"type": "Point", "coordinates": [24.9, 60.1]}) == (60.1, 24.9, False)


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Polygon", "coordinates": [L_SHAPE]},
        {"type": "LineString", "coordinates": [[10, 10], [10, 12], [14, 12]]},
        {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]},
    ],
)
def test_geometry_to_point_reduces_shapes_to_their_representative_point(geometry: dict) -> None:
    point = shapely.geometry.shape(geometry).representative_point()
    assert geometry_to_point(geometry) == (point.y, point.x, True)
    assert shapely.geometry.shape(geometry).intersects(point)


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        (None, "missing coordinates"),
        ({"type": "Point", "coordinates": []}, "missing coordinates"),
        ({"type": "Point", "coordinates": [1]}, "unparseable coordinates [1]"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1]]]}, "unparseable Polygon geometry"),
    ],
)
def test_geometry_to_point_refuses(geometry: object, reason: str) -> None:
    with pytest.raises(InvalidEntity, match=f"^{reason.replace('[', '.').replace(']', '.')}$"):
        geometry_to_point(geometry)


def test_feature_to_record() -> None:
    feature = {
        "type": "Feature",
        "id": "node/5",
        "geometry": {"type": "Point", "coordinates": [24.5, 60.25]},
        "properties": {"name": "Kahvila", "brand": "Fazer", "category": "cafe", "floor": 2},
    }
    record = feature_to_record(feature, 3)
    assert record.position == 3
    assert record.fields == {
        "id": "node/5",
        "name": "Kahvila",
        "category": "cafe",
        "mini_app": "Fazer",
        "lat": 60.25,
        "lng": 24.5,
    }
    assert record.attrs == {"floor": 2}
    assert not record.reduced


def test_read_geojson_streams_features() -> None:
    features = [
        {"type": "Feature", "id": n, "geometry": {"type": "Point", "coordinates": [n, n]}}
        for n in range(3)
    ]
    text = json.dumps({"type": "FeatureCollection", "bbox": [0, 0, 2, 2], "features": features})
    records = list(read_geojson(stream(text)))
    assert [(r.position, r.fields["id"], r.fields["lat"]) for r in records] == [
        (1, 0, 0.0),
        (2, 1, 1.0),
        (3, 2, 2.0),
    ]


def test_read_geojson_truncated_is_unreadable() -> None:
    text = '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
    with pytest.raises(UnreadableInput):
        list(read_geojson(stream(text)))


def test_read_ndjson_objects_features_and_bad_lines() -> None:
    feature = {"type": "Feature", "id": "f", "geometry": {"type": "Point", "coordinates": [2, 1]}}
    lines = [
        json.dumps({"id": "a", "latitude": 1.5, "longitude": 2.5, "colour": "red"}),
        "",
        json.dumps(feature),
        "{not json",
        "[1, 2]",
    ]
    records = list(read_ndjson(stream("\n".join(lines) + "\n")))
    assert [r.position for r in records] == [1, 3, 4, 5]
    assert records[0].fields == {"id": "a", "lat": 1.5, "lng": 2.5}
    assert records[0].attrs == {"colour": "red"}
    assert records[1].fields == {"id": "f", "lat": 1, "lng": 2}
    assert [r.problem for r in records] == [None, None, "unparseable JSON", "not a JSON object"]


# -- validation -------------------------------------------------------------------------


def test_entity_id() -> None:
    assert entity_id("shops", "42") == "shops:42"
    assert entity_id("shops", 42) == "shops:42"
    assert entity_id("shops", "osm:node/5") == "osm:node/5"
    assert entity_id("shops", "  ") == ""
    assert entity_id("shops", None) == ""


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
    check_entity(entity)
