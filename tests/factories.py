"""Factories and checks that more than one test module uses."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import osmium
from osmium.osm.mutable import Node, Way

from indexer.model import KINDS, Entity


def stream(text: str) -> io.BufferedReader:
    """A byte stream of ``text`` in UTF-8, as a listing reader is given."""
    return io.BufferedReader(io.BytesIO(text.encode()))


def assert_table_accepts(entity: Entity) -> None:
    """Assert that ``entity`` keeps every check constraint of the entities table.

    The rules of migrations/versions/0001_entities.py, so that a parser's
    output can be checked without a database.
    """
    assert entity.id, "empty id"
    assert entity.kind in KINDS, f"unknown kind {entity.kind!r}"
    for name, value in (("lat", entity.lat), ("lng", entity.lng)):
        assert isinstance(value, float | int), f"{name} is not a number"
        assert math.isfinite(value), f"{name} is not finite"
    assert -90.0 <= entity.lat <= 90.0, f"latitude {entity.lat} outside [-90, 90]"
    assert -180.0 <= entity.lng < 180.0, f"longitude {entity.lng} outside [-180, 180)"
    assert math.isfinite(entity.popularity), "popularity is not finite"
    assert entity.popularity >= 0, f"popularity {entity.popularity} is negative"
    for name, count in (("available", entity.available), ("capacity", entity.capacity)):
        assert count is None or count >= 0, f"{name} {count} is negative"
        assert count is None or entity.kind != "store", f"a store with {name}"


# -- OpenStreetMap ----------------------------------------------------------------------

#: Corners of a square block around (60.1700, 24.9400), lng-lat.
BLOCK = [(24.9400, 60.1700), (24.9410, 60.1700), (24.9410, 60.1705), (24.9400, 60.1705)]


def write_pbf(path: Path) -> None:
    """A small extract: shops on nodes, a closed way, an open way, a way cut by the border."""
    writer = osmium.SimpleWriter(str(path))
    try:
        for ref, (lng, lat) in enumerate(BLOCK, start=1):
            writer.add_node(Node(id=ref, location=(lng, lat), tags={}))
        writer.add_node(Node(id=5, location=(24.95, 60.18), tags={"highway": "crossing"}))
        writer.add_node(
            Node(
                id=10,
                location=(24.9451, 60.1711),
                tags={
                    "shop": "bakery",
                    "name": "Leipomo",
                    "brand": "Fazer",
                    "brand:wikidata": "Q1393402",
                    "opening_hours": "Mo-Fr 07:00-18:00",
                },
            )
        )
        writer.add_node(Node(id=11, location=(24.9452, 60.1712), tags={"shop": "yes"}))
        writer.add_node(
            Node(id=12, location=(24.9453, 60.1713), tags={"amenity": "cafe", "brand": "Robert's"})
        )
        writer.add_way(Way(id=100, nodes=[1, 2, 3, 4, 1], tags={"tourism": "museum", "name": "M"}))
        writer.add_way(Way(id=101, nodes=[1, 2, 3], tags={"leisure": "park"}))
        writer.add_way(Way(id=102, nodes=[3, 999], tags={"office": "company"}))
        writer.add_way(Way(id=103, nodes=[998, 999], tags={"craft": "tailor"}))
        writer.add_way(Way(id=104, nodes=[1, 2], tags={"highway": "service"}))
    finally:
        writer.close()


# -- chargers ---------------------------------------------------------------------------


def connector(standard: str, power_type: str, volts: int, amps: int, **extra: Any) -> dict:
    """An OCPI connector rated ``volts`` by ``amps``."""
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
    """An OCPI EVSE of ``status`` with ``connectors``."""
    return {
        "uid": uid,
        "status": status,
        "connectors": list(connectors),
        "last_updated": "2025-02-12T00:00:00Z",
    }


TYPE2 = connector("IEC_62196_T2", "AC_3_PHASE", 400, 32)
CCS = connector("IEC_62196_T2_COMBO", "DC", 500, 300, max_electric_power=150000)

#: An OCPI location of four EVSEs that count (one REMOVED), two of them AVAILABLE.
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

#: An Open Charge Map POI of three points, operational.
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
