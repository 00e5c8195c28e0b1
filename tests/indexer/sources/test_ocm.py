"""Open Charge Map POIs to charger entities."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from indexer.model import Entity
from indexer.sources.chargers import chargers_to_entities
from indexer.sources.rejects import ChargerFeedError, Rejected
from tests.factories import POI


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
