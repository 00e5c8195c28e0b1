"""CSV listings to records: column matching, delimiters, positions, unreadable input."""

from __future__ import annotations

import io

import pytest

from indexer.sources.csv import match_columns, parse_column_map, read_csv
from indexer.sources.rejects import UnreadableInput
from tests.factories import stream


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
