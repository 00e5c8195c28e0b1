"""OCPI 2.2.1 locations and Open Charge Map POIs to charger entities."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from indexer.model import Entity
from indexer.sources.chargers import ChargerFeedError, chargers_to_entities, slug
from indexer.sources.gbfs import Rejected


def connector(standard: str, power_type: str, volts: int, amps: int, **extra: Any) -> dict:
    return {
        "id": "1",
        "standard": standard,
        "format": "CABLE",
        "power_type": power_type,
        "max_voltage": volts,
        "max_amperage": amps,
        "last_updated": "2025-02-12T00:00:00Z",
        **extra,
    }


def evse(uid: str, status: str, *connectors: dict) -> dict:
    return {
        "uid": uid,
        "status": status,
        "connectors": list(connectors),
        "last_updated": "2025-02-12T00:00:00Z",
    }


TYPE2 = connector("IEC_62196_T2", "AC_3_PHASE", 400, 32)
CCS = connector("IEC_62196_T2_COMBO", "DC", 500, 300, max_electric_power=150000)

LOCATION = {
    "country_code": "FI",
    "party_id": "VLT",
    "id": "loc1",
    "publish": True,
    "name": "Kamppi garage",
    "address": "Urho Kekkosen katu 1",
    "city": "Helsinki",
    "country": "FIN",
    "coordinates": {"latitude": "60.168920", "longitude": "24.931840"},
    "operator": {"name": "Volt Charging Oy"},
    "evses": [
        evse("e1", "AVAILABLE", TYPE2),
        evse("e2", "CHARGING", TYPE2),
        evse("e3", "AVAILABLE", CCS, TYPE2),
        evse("e4", "REMOVED", CCS),
        evse("e5", "OUTOFORDER", CCS),
    ],
    "time_zone": "Europe/Helsinki",
    "last_updated": "2025-02-12T10:30:00Z",
    "some_vendor_field": [1, 2, 3],
}

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
    with pytest.raises(ChargerFeedError, match="unknown format 'csv'"):
        chargers_to_entities([], "csv")


POI = {
    "ID": 12345,
    "UUID": "B5D1C6A5-0000",
    "AddressInfo": {
        "Title": "Kauppatori",
        "AddressLine1": "Eteläranta",
        "Town": "Helsinki",
        "Postcode": "00170",
        "Latitude": 60.1675,
        "Longitude": 24.9525,
    },
    "Connections": [
        {
            "ConnectionTypeID": 25,
            "ConnectionType": {"Title": "Type 2 (Socket Only)"},
            "StatusType": {"IsOperational": True, "Title": "Operational"},
            "PowerKW": 22.0,
            "Quantity": 2,
        },
        {"ConnectionTypeID": 33, "ConnectionType": {"Title": "CCS (Type 2)"}, "PowerKW": 50},
    ],
    "NumberOfPoints": 3,
    "StatusType": {"IsOperational": True, "Title": "Operational", "ID": 50},
    "OperatorInfo": {"Title": "Helen Oy", "ID": 3388},
    "DateLastStatusUpdate": "2024-11-02T08:15:00Z",
    "DateCreated": "2019-05-01T00:00:00Z",
    "UsageType": {"Title": "Public"},
}


def test_ocm_poi() -> None:
    parsed = chargers_to_entities([POI], "ocm")
    assert parsed.entities == [
        Entity(
            id="ocm:12345",
            kind="charger",
            lat=60.1675,
            lng=24.9525,
            name="Kauppatori",
            category="ev_charger",
            mini_app="helen-oy",
            available=3,
            capacity=3,
            attrs={
                "connections": [
                    {
                        "quantity": 2,
                        "type": "Type 2 (Socket Only)",
                        "power_kw": 22.0,
                        "status": "Operational",
                    },
                    {"quantity": 1, "type": "CCS (Type 2)", "power_kw": 50.0},
                ],
                "operational": True,
                "address": "Eteläranta",
                "city": "Helsinki",
                "postal_code": "00170",
                "operator": "Helen Oy",
            },
            seen_at=datetime(2024, 11, 2, 8, 15, tzinfo=UTC),
        )
    ]


def test_ocm_capacity_and_status_fallbacks() -> None:
    no_points = {**POI, "ID": 1, "NumberOfPoints": None}
    broken = {**POI, "ID": 2, "StatusType": {"IsOperational": False, "Title": "Not Operational"}}
    unknown = {**POI, "ID": 3, "StatusType": None, "OperatorInfo": None}
    bare = {**POI, "ID": 4, "NumberOfPoints": None, "Connections": [], "DateLastStatusUpdate": None}
    parsed = chargers_to_entities([no_points, broken, unknown, bare], "ocm", source="o")
    assert [(e.id, e.available, e.capacity, e.mini_app) for e in parsed.entities] == [
        ("o:1", 3, 3, "helen-oy"),
        ("o:2", 0, 3, "helen-oy"),
        ("o:3", None, 3, ""),
        ("o:4", None, None, "helen-oy"),
    ]
    assert parsed.entities[3].seen_at == datetime(2019, 5, 1, tzinfo=UTC)


def test_ocm_rejects() -> None:
    pois = [
        {**POI, "ID": None, "UUID": None},
        {**POI, "ID": 7, "AddressInfo": {"Latitude": None, "Longitude": 1}},
        {**POI, "ID": 8, "AddressInfo": None},
    ]
    parsed = chargers_to_entities(pois, "ocm")
    assert parsed.entities == []
    assert parsed.rejected == [
        Rejected("ocm", "", "no ID"),
        Rejected("ocm", "7", "no valid AddressInfo Latitude/Longitude"),
        Rejected("ocm", "8", "no valid AddressInfo Latitude/Longitude"),
    ]
    with pytest.raises(ChargerFeedError, match="not Open Charge Map POI JSON"):
        chargers_to_entities({"data": []}, "ocm")


def test_slug() -> None:
    assert slug("Shell Recharge") == "shell-recharge"
    assert slug("  ÄÖ & Co.  ") == "co"
    assert slug("") == ""
