"""Factories and checks that more than one test module uses."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import h3
import mercantile
import osmium
from osmium.osm.mutable import Node, Way
from shapely.geometry import Polygon, box

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


# -- debug tiles ------------------------------------------------------------------------
# Expected cells, counts and pixels are worked out here with h3 and the Web
# Mercator formulas directly, not with the modules under test.

#: Central Helsinki at zoom 14: res-9 cells are ~145 px wide there, ids get written in.
TILE = mercantile.Tile(x=9327, y=4742, z=14)
SIZE = 512
#: Entities per cell for some cells of the tile: one count in each of four colour buckets.
PLANTED = (1, 3, 6, 12)


def pixel_of(lat: float, lng: float, tile: mercantile.Tile = TILE) -> tuple[float, float]:
    """Web Mercator pixel of a point in a 512 px tile, from the spherical formulas."""
    scale = SIZE * 2**tile.z
    world_x = (lng + 180.0) / 360.0 * scale
    sin_lat = math.sin(math.radians(lat))
    world_y = (0.5 - math.log((1 + sin_lat) / (1 - sin_lat)) / (4 * math.pi)) * scale
    return world_x - tile.x * SIZE, world_y - tile.y * SIZE


def expected_cells(tile: mercantile.Tile = TILE) -> set[str]:
    """Res-9 cells whose outline overlaps the tile's lat/lng box (more than an edge)."""
    bounds = mercantile.bounds(tile)
    square = box(bounds.west, bounds.south, bounds.east, bounds.north)
    centre = h3.latlng_to_cell(
        (bounds.south + bounds.north) / 2, (bounds.west + bounds.east) / 2, 9
    )
    found = set()
    for cell in h3.grid_disk(centre, 8):
        outline = Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])
        if outline.intersects(square) and not outline.touches(square):
            found.add(cell)
    return found


def inside(lat: float, lng: float, tile: mercantile.Tile = TILE) -> bool:
    """Whether (lat, lng) lies in ``tile``."""
    return mercantile.tile(lng=lng, lat=lat, zoom=tile.z) == tile


def towards_vertex(cell: str, vertex: int, fraction: float) -> tuple[float, float]:
    """A point ``fraction`` of the way from the cell's centre to one of its vertices."""
    lat, lng = h3.cell_to_latlng(cell)
    v_lat, v_lng = h3.cell_to_boundary(cell)[vertex % 6]
    return lat + (v_lat - lat) * fraction, lng + (v_lng - lng) * fraction


def planted_cells() -> list[str]:
    """Four cells whose centres are well inside the tile and clear of the legend's corner."""
    chosen = []
    for cell in sorted(expected_cells()):
        x, y = pixel_of(*h3.cell_to_latlng(cell))
        if 20 < x < SIZE - 20 and 20 < y < SIZE / 2:
            chosen.append(cell)
    assert len(chosen) >= len(PLANTED)
    return chosen[: len(PLANTED)]


def planted_entities() -> list[Entity]:
    """Entities in the planted cells, away from the centres (so that the fill shows there)."""
    entities = []
    for cell, count in zip(planted_cells(), PLANTED, strict=True):
        for n in range(count):
            lat, lng = towards_vertex(cell, n, 0.35 + 0.05 * (n // 6))
            assert h3.latlng_to_cell(lat, lng, 9) == cell
            kind = ("store", "bike", "charger")[n % 3]
            live = {"available": 1, "capacity": 2} if kind != "store" else {}
            entities.append(
                Entity(id=f"t:{cell}:{n}", kind=kind, lat=lat, lng=lng, popularity=n, **live)  # type: ignore[arg-type]
            )
    # Far away, in no cell of the tile.
    entities.append(Entity(id="t:far", kind="store", lat=60.30, lng=25.10))
    return entities


def zxy(tile: mercantile.Tile = TILE) -> list[str]:
    """A tile as the script's Z X Y arguments."""
    return [str(tile.z), str(tile.x), str(tile.y)]
