"""Charger documents by format: the formats, each id once in feed order, what the table takes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.sources.chargers import chargers_to_entities
from indexer.sources.rejects import ChargerFeedError, Rejected
from tests.factories import LOCATION, POI, assert_table_accepts, evse


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ChargerFeedError, match="unknown format 'csv'"):
        chargers_to_entities([], "csv")


def test_a_duplicate_is_rejected_where_it_stands_in_the_feed() -> None:
    locations = [LOCATION, LOCATION, {**LOCATION, "id": ""}, {**LOCATION, "id": "loc2"}]
    parsed = chargers_to_entities(locations, "ocpi", source="v")
    assert [e.id for e in parsed.entities] == ["v:loc1", "v:loc2"]
    assert parsed.rejected == [
        Rejected("ocpi", "loc1", "duplicate id"),
        Rejected("ocpi", "", "no id"),
    ]


def test_a_duplicate_poi_is_rejected_by_its_id() -> None:
    parsed = chargers_to_entities([POI, {**POI, "UUID": "other"}, {**POI, "ID": 7}], "ocm")
    assert [e.id for e in parsed.entities] == ["ocm:12345", "ocm:7"]
    assert parsed.rejected == [Rejected("ocm", "12345", "duplicate id")]


_coordinates = st.none() | st.floats() | st.integers(-400, 400) | st.text(max_size=6)
_counts = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3)


@given(
    lat=_coordinates,
    lng=_coordinates,
    statuses=st.lists(st.sampled_from(["AVAILABLE", "CHARGING", "REMOVED", "bogus", ""])),
)
def test_a_location_is_rejected_or_makes_an_entity_the_table_accepts(
    lat: object, lng: object, statuses: list[str]
) -> None:
    location = {
        **LOCATION,
        "coordinates": {"latitude": lat, "longitude": lng},
        "evses": [evse(f"e{n}", status) for n, status in enumerate(statuses)],
    }
    parsed = chargers_to_entities([location], "ocpi")
    assert len(parsed.entities) + len(parsed.rejected) == 1
    for entity in parsed.entities:
        assert_table_accepts(entity)


@given(lat=_coordinates, lng=_coordinates, points=_counts, operational=_counts)
def test_a_poi_is_rejected_or_makes_an_entity_the_table_accepts(
    lat: object, lng: object, points: object, operational: object
) -> None:
    poi = {
        **POI,
        "AddressInfo": {"Latitude": lat, "Longitude": lng},
        "NumberOfPoints": points,
        "StatusType": {"IsOperational": operational},
    }
    parsed = chargers_to_entities([poi], "ocm")
    assert len(parsed.entities) + len(parsed.rejected) == 1
    for entity in parsed.entities:
        assert_table_accepts(entity)
