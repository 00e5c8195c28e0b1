"""OCPI 2.2.1 locations to charger entities."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from indexer.model import Entity
from indexer.sources.chargers import chargers_to_entities
from indexer.sources.rejects import ChargerFeedError, Rejected
from tests.factories import LOCATION

EXPECTED_LOCATION = Entity(
    id="ocpi-fi-vlt:loc1",
    kind="charger",
    lat=60.16892,
    lng=24.93184,
    name="Kamppi garage",
    category="ev_charger",
    mini_app="volt-charging-oy",
    available=2,
    capacity=4,
    attrs={
        "statuses": {"AVAILABLE": 2, "CHARGING": 1, "OUTOFORDER": 1},
        "connectors": [
            {
                "standard": "IEC_62196_T2",
                "format": "CABLE",
                "power_type": "AC_3_PHASE",
                "max_power_kw": 12.8,
            },
            {
                "standard": "IEC_62196_T2_COMBO",
                "format": "CABLE",
                "power_type": "DC",
                "max_power_kw": 150.0,
            },
        ],
        "address": "Urho Kekkosen katu 1",
        "city": "Helsinki",
        "country": "FIN",
        "time_zone": "Europe/Helsinki",
        "operator": "Volt Charging Oy",
    },
    seen_at=datetime(2025, 2, 12, 10, 30, tzinfo=UTC),
)


def test_ocpi_module_response() -> None:
    document = {"data": [LOCATION], "status_code": 1000, "timestamp": "2025-02-12T11:00:00Z"}
    parsed = chargers_to_entities(document, "ocpi")
    assert parsed.entities == [EXPECTED_LOCATION]
    assert parsed.rejected == []


def test_ocpi_bare_list_and_source() -> None:
    parsed = chargers_to_entities([LOCATION], "ocpi", source="volt")
    assert [e.id for e in parsed.entities] == ["volt:loc1"]


def test_ocpi_mini_app_falls_back_to_the_party() -> None:
    location = {**LOCATION, "operator": None}
    (entity,) = chargers_to_entities([location], "ocpi").entities
    assert entity.mini_app == "fi-vlt"
    assert "operator" not in entity.attrs


def test_ocpi_mixed_parties_keep_the_party_in_ids() -> None:
    other = {**LOCATION, "party_id": "ABC"}
    parsed = chargers_to_entities({"data": [LOCATION, other]}, "ocpi")
    assert [e.id for e in parsed.entities] == ["ocpi:fi-vlt:loc1", "ocpi:fi-abc:loc1"]


def test_ocpi_rejects() -> None:
    locations = [
        {**LOCATION, "id": "nocoords", "coordinates": {"latitude": "x", "longitude": "1"}},
        {**LOCATION, "id": "far", "coordinates": {"latitude": "91.0", "longitude": "1"}},
        {**LOCATION, "id": ""},
        {**LOCATION, "id": "hidden", "publish": False},
        LOCATION,
        LOCATION,
        {**LOCATION, "id": "bare", "evses": []},
    ]
    parsed = chargers_to_entities(locations, "ocpi")
    assert parsed.rejected == [
        Rejected("ocpi", "nocoords", "no valid coordinates"),
        Rejected("ocpi", "far", "no valid coordinates"),
        Rejected("ocpi", "", "no id"),
        Rejected("ocpi", "hidden", "not published"),
        Rejected("ocpi", "loc1", "duplicate id"),
    ]
    assert [(e.id, e.available, e.capacity) for e in parsed.entities] == [
        ("ocpi-fi-vlt:loc1", 2, 4),
        ("ocpi-fi-vlt:bare", 0, 0),
    ]


def test_ocpi_not_a_locations_response() -> None:
    with pytest.raises(ChargerFeedError, match="not an OCPI locations response"):
        chargers_to_entities({"status_code": 2000}, "ocpi")
