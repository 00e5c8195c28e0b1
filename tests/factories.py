"""Factories and checks that more than one test module uses."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import h3
import mercantile
import osmium
import psycopg
import pytest
from hypothesis import strategies as st
from osmium.osm.mutable import Node, Way
from psycopg import sql
from shapely.geometry import Polygon, box

from discovery.search.query import Candidate
from discovery.search.services import Notes
from indexer.hot import layout
from indexer.hot.index import HotIndex
from indexer.jobs.catalog import send_retexted
from indexer.model import KINDS, Entity
from indexer.sources.values import parse_time
from indexer.store import db, merge, writer
from indexer.store.catalog import MiniApp, publish_catalog, read_catalog, write_catalog
from indexer.store.rows import timezone_of
from indexer.store.usage import USAGE_EPOCH_S, MassChange, UsageEvent, store_usage
from indexer.store.usage_rounds import round_lock, take_round
from tests.conftest import Index


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


# -- Stores --------------------------------------------------------------------------


def store(number: int, lat: float = 60.17, lng: float = 24.94, **fields: object) -> Entity:
    return Entity(id=f"t:{number}", kind="store", lat=lat, lng=lng, **fields)  # type: ignore[arg-type]


def random_stores(count: int, seed: int = 1) -> list[Entity]:
    rng = random.Random(seed)
    return [
        store(
            n,
            lat=60.1 + rng.random() * 0.2,
            lng=24.8 + rng.random() * 0.3,
            name=f"shop {n}",
            popularity=float(rng.randint(0, 500)),
        )
        for n in range(count)
    ]


# -- Bikes ---------------------------------------------------------------------------

#: The fixed moment of the live-position tests.
LIVE_NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def bike(native: str, lat: float, lng: float, **fields: object) -> Entity:
    values: dict[str, object] = {
        "available": 1,
        "capacity": 1,
        "category": "free_bike",
        "mini_app": "citybikes",
        "seen_at": LIVE_NOW - timedelta(minutes=1),
    }
    values.update(fields)
    return Entity(id=f"citybikes:{native}", kind="bike", lat=lat, lng=lng, **values)  # type: ignore[arg-type]


# -- GBFS feed sets ------------------------------------------------------------------

#: A feed time long past every staleness limit.
OLD = int((datetime.now(UTC) - timedelta(hours=2)).timestamp())


def feed_now() -> datetime:
    """Now, to the second, as a feed states it (taken when the test runs, never stale)."""
    return datetime.now(UTC).replace(microsecond=0)


def fresh() -> int:
    """A feed time half a minute ago."""
    return int(feed_now().timestamp()) - 30


def gbfs_set(
    directory: Path, vehicles: list[str], *, at: int | None = None, vehicle_time: int | None = None
) -> Path:
    """A 2.3 feed set of one station (seen long ago) and the given vehicles, stated at ``at``
    (epoch seconds; default half a minute ago) unless ``vehicle_time`` says otherwise."""
    directory.mkdir(exist_ok=True)

    now = fresh() if at is None else at

    def write(name: str, data: dict[str, Any], updated: int = now) -> None:
        doc = {"last_updated": updated, "ttl": 30, "version": "2.3", "data": data}
        (directory / f"{name}.json").write_text(json.dumps(doc))

    write("system_information", {"system_id": "citybikes", "name": "City bikes"})
    write(
        "station_information",
        {"stations": [{"station_id": "s1", "name": "A", "lat": 60.17, "lon": 24.94}]},
    )
    write(
        "station_status",
        {"stations": [{"station_id": "s1", "num_bikes_available": 2, "last_reported": OLD}]},
    )
    bikes = [
        {"bike_id": v, "lat": 60.171, "lon": 24.941, "is_reserved": False, "is_disabled": False}
        for v in vehicles
    ]
    write("free_bike_status", {"bikes": bikes}, now if vehicle_time is None else vehicle_time)
    return directory


# -- Listings ------------------------------------------------------------------------

HEADER = "id,name,lat,lng,category,mini_app,popularity,opening_hours"
SHOPS = [
    "1,Kahvila,60.1699,24.9384,cafe,fazer,5,Mo-Fr 08:00-18:00",
    "2,Leipomo,60.1702,24.9410,bakery,,0,",
    "3,Kiosk,60.1710,24.9420,kiosk,r-kioski,12.5,24/7",
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- Killed writes -------------------------------------------------------------------

#: Runs the ``nearby`` command line, killing itself (SIGKILL) once the write has
#: committed to PostGIS and before Redis has it: ``merge`` just before the
#: changes go to Redis, ``load`` (an empty index loaded at once) just before the
#: filled generation is made current.
KILLER = """
import os, signal, sys
from indexer.store import fresh, merge

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv.pop(1) == "merge":
    merge.apply_changes = die
else:
    merge.BULK_MIN_CHANGES = 100
    fill = fresh.FreshLoad.fill

    def fill_then_die(load, gen):
        fill(load, gen)
        die()

    fresh.FreshLoad.fill = fill_then_die

from discovery.cli import main
main()
"""


def killed_import(cli_env: dict[str, str], tmp_path: Path, point: str, csv: Path) -> None:
    """Run ``nearby import stores CSV`` in a process killed at ``point`` (see KILLER)."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    command = [sys.executable, str(script), point, "import", "stores", str(csv)]
    with db.connect(cli_env["DATABASE_URL"], autocommit=True) as watcher:
        before = backends(watcher)
        done = subprocess.run(command, env=cli_env, capture_output=True, timeout=120)
        assert done.returncode == -9, done.stderr.decode()
        # The server notices the dead client a moment later; until then its backends (and
        # their session locks) live on.
        deadline = time.monotonic() + 30
        while backends(watcher) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not backends(watcher) - before, "the killed import's backends outlived it"


def backends(conn: Any) -> set[int]:
    """The other backends connected to this connection's database."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
    ).fetchall()
    return {int(row[0]) for row in rows}


def pending_marks(index: Index) -> int:
    found = index.conn.execute("SELECT count(*) FROM hot_pending").fetchone()
    index.conn.commit()
    return int(found[0]) if found else 0


# -- Tables and keys -----------------------------------------------------------------


def scanned(client: Any, pattern: str) -> list[Any]:
    """The keys matching ``pattern``, sorted, each once (SCAN may return a key twice)."""
    return sorted(set(client.scan_iter(match=pattern, count=1000)))


def load_tables(index: Index) -> list[str]:
    with index.conn.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE starts_with(relname, 'nearby_load_')")
        tables = sorted(row[0] for row in cur.fetchall())
    index.conn.commit()
    return tables


@contextlib.contextmanager
def dead_and_live_loads(index: Index) -> Iterator[str]:
    """A load table of a backend that is gone and one of a backend still connected
    (its name yielded); both dropped afterwards."""
    other = db.connect(index.settings.database_url, autocommit=True)
    alive = f"nearby_load_{other.info.backend_pid}"
    try:
        with index.conn.cursor() as cur:
            cur.execute("CREATE UNLOGGED TABLE nearby_load_999999999 (id text)")
            cur.execute(f"CREATE UNLOGGED TABLE {alive} (id text)")
        index.conn.commit()
        yield alive
    finally:
        other.execute(f"DROP TABLE IF EXISTS {alive}, nearby_load_999999999")
        other.close()


# -- Values for property tests -------------------------------------------------------

texts = st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
moments = st.none() | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=9))]))


# -- Geometry ------------------------------------------------------------------------


def point_at(lat: float, lng: float, bearing: float, meters: float) -> tuple[float, float]:
    """The point ``meters`` from (lat, lng) along ``bearing`` (radians)."""
    delta = meters / 6371007.180918475
    lat1, lng1 = math.radians(lat), math.radians(lng)
    lat2 = math.asin(
        math.sin(lat1) * math.cos(delta) + math.cos(lat1) * math.sin(delta) * math.cos(bearing)
    )
    lng2 = lng1 + math.atan2(
        math.sin(bearing) * math.sin(delta) * math.cos(lat1),
        math.cos(delta) - math.sin(lat1) * math.sin(lat2),
    )
    return math.degrees(lat2), (math.degrees(lng2) + 180.0) % 360.0 - 180.0


# -- The brute force -----------------------------------------------------------------


def candidate_of(entity: Entity) -> Candidate:
    """What the brute force sees of an entity."""
    tz = timezone_of(entity.lat, entity.lng) if entity.opening_hours else None
    doc = {
        "kind": entity.kind,
        "mini_app": entity.mini_app,
        "opening_hours": entity.opening_hours,
        "tz": tz,
    }
    seen = entity.seen_at.timestamp() if entity.seen_at else None
    return Candidate(
        id=entity.id,
        lat=entity.lat,
        lng=entity.lng,
        kind=entity.kind,
        popularity=entity.popularity,
        mini_app=entity.mini_app,
        category=entity.category,
        available=entity.available,
        source="t",
        seen_at_s=seen,
        doc=doc,
    )


# -- HTTP ----------------------------------------------------------------------------


def fetch(url: str, **options: Any) -> tuple[int, str, Any]:
    """(status, content type, parsed JSON body) of one request."""
    request = urllib.request.Request(url, **options)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], json.loads(error.read())


# -- store --


def delete_entities(conn: Any, hot: HotIndex, ids: list[str]) -> int:
    """Delete entities by id from PostGIS, then from Redis; return how many existed."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "DELETE FROM entities WHERE id = ANY(%s) RETURNING id, nextval('entity_rev')",
            (list(ids),),
        )
        deleted = cur.fetchall()
    hot.apply_deletes(deleted)
    return len(deleted)


def charger(native: str, available: int, capacity: int) -> Entity:
    """A charger of source ``volt`` seen 5 minutes before :data:`LIVE_NOW`."""
    return Entity(
        id=f"volt:{native}",
        kind="charger",
        lat=60.17,
        lng=24.94,
        category="ev_charger",
        available=available,
        capacity=capacity,
        seen_at=LIVE_NOW - timedelta(minutes=5),
    )


def loc_of(index: Index, entity_id: str) -> str | None:
    """What the current generation's location hash holds for ``entity_id``."""
    gen = index.hot.require_generation()
    value = index.hot.client.hget(layout.loc_key(index.hot.prefix, gen), entity_id)
    return None if value is None else str(value)


def entity_ids(index: Index) -> list[str]:
    """The ids PostGIS holds, sorted."""
    with index.conn.cursor() as cur:
        cur.execute("SELECT id FROM entities ORDER BY id")
        found = [row[0] for row in cur.fetchall()]
    index.conn.commit()
    return found


def fresh_fills(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make a write of 100 changes or more fill a fresh generation; the list of
    generations filled so, appended to as they are."""
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    fills: list[str] = []
    fill = writer.FreshLoad.fill
    monkeypatch.setattr(
        writer.FreshLoad, "fill", lambda load, gen: fills.append(gen) or fill(load, gen)
    )
    return fills


# -- catalog --

#: The tables of the mini-app catalog, the users and the usage events.
CATALOG_TABLES = (
    "mini_apps",
    "user_favorites",
    "user_recents",
    "usage_events",
    "usage_pending",
    "usage_mini_app",
    "usage_basis",
)
CATALOG_HEADER = "slug,name,icon_url,description,category"


def clear_catalog(index: Index) -> None:
    """Empty the catalog, the users' tables and the usage (the entities' masses too), and
    the catalog's Redis key."""
    with index.conn.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(CATALOG_TABLES)}")
        cur.execute("UPDATE usage_clocks SET at = '-infinity'")
        cur.execute(
            "UPDATE entities SET usage_mass = 0, rev = nextval('entity_rev')"
            " WHERE usage_mass <> 0 RETURNING id"
        )
        used = cur.fetchall()
    index.conn.commit()
    if used:  # the hot index as PostGIS now is
        index.hot.rebuild(index.conn)
    index.hot.client.delete(layout.catalog_key(index.settings.redis_prefix))


def catalog_rows(index: Index) -> list[tuple[Any, ...]]:
    """Every catalog entry: slug, name, icon_url, description, category (by slug)."""
    with index.conn.cursor() as cur:
        cur.execute("SELECT slug, name, icon_url, description, category FROM mini_apps ORDER BY 1")
        rows = cur.fetchall()
    index.conn.commit()
    return rows


#: Stores for the usage tests: two mini-apps of the catalog, one slug it lacks, none.
USAGE_SLUGS = ("kfc", "alko", "unlisted", "")
USAGE_AT = datetime(2026, 12, 1, tzinfo=UTC).timestamp()


def seed_usage(index: Index, count: int = 12) -> list[Entity]:
    """Stores ``u:0`` … of USAGE_SLUGS in turn, and a catalog of kfc and alko."""
    entities = [
        Entity(id=f"u:{n}", kind="store", lat=60.17 + n * 1e-4, lng=24.94,
               mini_app=USAGE_SLUGS[n % len(USAGE_SLUGS)])
        for n in range(count)
    ]  # fmt: skip
    writer.write_entities(index.conn, index.hot, "u", entities)
    apps = [MiniApp("kfc", "KFC", "https://example.com/kfc.png"), MiniApp("alko", "Alko")]
    write_apps(index, apps, replace=True)
    return entities


def write_apps(index: Index, apps: list[MiniApp], *, replace: bool = False) -> None:
    """Write the catalog as an import does: PostGIS, its Redis key, and the entities whose
    search text it changed sent to the hot index."""
    written = write_catalog(index.conn, apps, replace=replace)
    send_retexted(index.conn, index.hot, written.retexted)
    publish_catalog(index.hot.client, index.settings.redis_prefix, read_catalog(index.conn))
    index.conn.commit()


def random_events(seed: int, count: int, entities: list[Entity], users: int = 5) -> list[dict]:
    """Valid events over the entities and the catalog, at random times of the past weeks."""
    rng = random.Random(seed)
    kinds = ("open", "order", "booking", "unlock", "charge")
    events: list[dict] = []
    for _ in range(count):
        event: dict[str, Any] = {"type": rng.choice(kinds)}
        if rng.random() < 0.8:
            event["entity_id"] = rng.choice(entities).id
        else:
            event["mini_app"] = rng.choice(("kfc", "alko"))
        if rng.random() < 0.7:
            event["user"] = f"user-{rng.randrange(users)}"
        at = USAGE_AT - rng.uniform(0, 30 * 86400)
        event["at"] = at if rng.random() < 0.5 else datetime.fromtimestamp(at, UTC).isoformat()
        events.append(event)
    return events


def apply_usage(
    conn: psycopg.Connection, events: list[UsageEvent], half_life_s: float
) -> list[MassChange]:
    """Store checked events and count them at once (with any others stored), Redis left
    as it was: the entities whose mass changed."""
    store_usage(conn, events, half_life_s)
    with round_lock(conn, wait=True):
        counted = take_round(conn)
    return [] if counted is None else counted.changes


def stored_usage(index: Index) -> dict[str, Any]:
    """What the usage tables hold: masses by entity and by mini-app, recents by user,
    and the stored events (type, entity, mini-app, user, at), sorted."""
    found: dict[str, Any] = {}
    with index.conn.cursor() as cur:
        cur.execute("SELECT id, usage_mass FROM entities WHERE usage_mass > 0 ORDER BY 1")
        found["entities"] = dict(cur.fetchall())
        cur.execute("SELECT slug, mass FROM usage_mini_app ORDER BY 1")
        found["mini_apps"] = dict(cur.fetchall())
        cur.execute("SELECT user_id, slug, at FROM user_recents ORDER BY 1, 3 DESC, 2")
        recents: dict[str, list[tuple[str, datetime]]] = {}
        for user, slug, at in cur.fetchall():
            recents.setdefault(user, []).append((slug, at))
        found["recents"] = recents
        cur.execute(
            "SELECT type, entity_id, mini_app, user_id, at FROM usage_events"
            " ORDER BY at, type, entity_id NULLS FIRST, mini_app, user_id NULLS FIRST"
        )
        found["events"] = cur.fetchall()
    index.conn.commit()
    return found


def expected_usage(events: list[dict], entities: list[Entity], half_life_s: float,
                   weights: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    """Brute force: each entity's and mini-app's mass (math.fsum of every term), and each
    user's last 20 distinct mini-apps, newest first."""
    apps = {entity.id: entity.mini_app for entity in entities}
    terms: dict[str, dict[str, list[float]]] = {"entities": {}, "mini_apps": {}}
    latest: dict[str, dict[str, float]] = {}
    for event in events:
        at_given = event["at"]
        if isinstance(at_given, str) and at_given.replace(".", "", 1).isdigit():
            at_given = float(at_given)  # POSIX seconds as text
        moment = parse_time(at_given)
        assert moment is not None
        at = moment.timestamp()
        term = weights[event["type"]] * 2.0 ** ((at - USAGE_EPOCH_S) / half_life_s)
        slug = apps[event["entity_id"]] if "entity_id" in event else event["mini_app"]
        if "entity_id" in event:
            terms["entities"].setdefault(event["entity_id"], []).append(term)
        if slug:
            terms["mini_apps"].setdefault(slug, []).append(term)
            if "user" in event:
                held = latest.setdefault(event["user"], {})
                held[slug] = max(held.get(slug, at), at)
    masses = {
        table: {key: math.fsum(values) for key, values in by_key.items()}
        for table, by_key in terms.items()
    }
    recents = {
        user: [slug for slug, _ in sorted(held.items(), key=lambda i: (-i[1], i[0]))[:20]]
        for user, held in latest.items()
    }
    return {**masses, "recents": recents}


def assert_usage_matches(found: dict[str, Any], expected: dict[str, Any]) -> None:
    """Stored masses equal the brute force's to 1e-12 relatively; recents exactly."""
    for table in ("entities", "mini_apps"):
        assert set(found[table]) == set(expected[table]), table
        for key, mass in expected[table].items():
            assert math.isclose(found[table][key], mass, rel_tol=1e-12), (table, key)
    assert {user: [slug for slug, _ in held] for user, held in found["recents"].items()} == (
        expected["recents"]
    )


def user_traces(index: Index, user: str) -> list[str]:
    """Every place PostGIS or Redis (every key of this run's prefix) still holds ``user``."""
    found = []
    with index.conn.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND data_type = 'text'"
        )
        for table, column in cur.fetchall():
            cur.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE strpos({}, %s) > 0").format(
                    sql.Identifier(table), sql.Identifier(column)
                ),
                (user,),
            )
            if (cur.fetchone() or (0,))[0]:
                found.append(f"postgis {table}.{column}")
    index.conn.commit()
    client = index.hot.raw
    for key in client.scan_iter(match=f"{index.settings.redis_prefix}:*", count=1000):
        if user.encode() in key or user.encode() in dump(client, key):
            found.append(f"redis {key!r}")
    return sorted(set(found))


def dump(client: Any, key: bytes) -> bytes:
    """A key's value as bytes, whatever its type."""
    kind = client.type(key)
    if kind == b"stream":
        return repr(client.xrange(key)).encode()
    value = client.dump(key)
    return value or b""


# -- text --

#: Letters random names are made of: Latin with accents (composed and not), Hangul, Han.
LATIN_LETTERS = "abcdeklmnorstuzéèëöüåäñçAÉÖÅ"
HANGUL_LETTERS = "스타벅스강남점편의약국카페"
HAN_LETTERS = "小强理发咖啡店面馆药"
TEXT_SCRIPTS = (LATIN_LETTERS, HANGUL_LETTERS, HAN_LETTERS)
#: What random names put between their words.
TEXT_SEPARATORS = (" ", " ", "-", "'", " & ", ". ")


def random_word(rng: random.Random) -> str:
    """A word of 1 to 5 letters of one script (sometimes two, run together)."""
    letters = rng.choice(TEXT_SCRIPTS)
    word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 5)))
    if rng.random() < 0.15:
        word += "".join(rng.choice(rng.choice(TEXT_SCRIPTS)) for _ in range(rng.randint(1, 3)))
    return word


def random_name(rng: random.Random, most: int = 3) -> str:
    """A name of 1 to ``most`` random words, with separators between them."""
    parts = [random_word(rng) for _ in range(rng.randint(1, most))]
    name = parts[0]
    for part in parts[1:]:
        name += rng.choice(TEXT_SEPARATORS) + part
    return name


def random_text_query(rng: random.Random, names: list[str]) -> str:
    """A ``q``: mostly the start of a word of one of ``names`` (or a CJK piece of one),
    sometimes two such, sometimes a random word."""
    from indexer.text import is_cjk, words

    def part() -> str:
        found = words(rng.choice(names)) if names else []
        if not found or rng.random() < 0.2:
            return random_word(rng)
        word = rng.choice(found)
        if is_cjk(word[0]):
            start = rng.randrange(len(word))
            return word[start : rng.randint(start + 1, len(word))]
        piece = word[: rng.randint(1, len(word))]
        return piece.upper() if rng.random() < 0.2 else piece

    return " ".join(part() for _ in range(rng.choice((1, 1, 1, 2))))


#: Mini-app slugs of the text tests' entities ("" is none; "ghost" not in the catalog).
TEXT_SLUGS = ("", "", "kmarket", "starbucks", "ramen", "ghost")


def text_catalog(rng: random.Random) -> list[MiniApp]:
    """The text tests' catalog: each slug (but ``ghost``) with a random name."""
    return [MiniApp(slug, random_name(rng, 2)) for slug in TEXT_SLUGS if slug not in ("", "ghost")]


def text_entities(rng: random.Random, count: int, lat: float, lng: float) -> list[Entity]:
    """Stores with random names and categories in several scripts, up to ~30 km around
    (lat, lng), a few of them twins but for their id (ties)."""
    entities = []
    for i in range(count):
        spread = rng.choice((100.0, 1_000.0, 10_000.0))
        at = point_at(lat, lng, rng.uniform(0, 2 * math.pi), min(rng.expovariate(1 / spread), 3e4))
        entities.append(
            Entity(
                id=f"x:{i}",
                kind="store",
                lat=at[0],
                lng=at[1],
                name=random_name(rng),
                category=rng.choice(("", "cafe", "편의점", "理发", random_word(rng))),
                mini_app=rng.choice(TEXT_SLUGS),
                popularity=rng.choice((0.0, 3.0, rng.expovariate(0.1))),
            )
        )
    for i in range(count // 20):
        twin = entities[rng.randrange(len(entities))]
        entities.append(dataclasses.replace(twin, id=f"x:twin{i}"))
    return entities


def text_brute_force(query: Any, entities: list[Entity], apps: list[MiniApp]) -> tuple[list, bool]:
    """The reference page for a query with ``q``: every entity whose words (with its
    mini-app's catalog name) match, then the ranking's brute force."""
    from discovery.search.ranking import brute_force
    from indexer.text import entity_words, matches

    names = {app.slug: app.name for app in apps}
    matching = [
        candidate_of(e)
        for e in entities
        if query.text is None
        or matches(query.text, entity_words(e.name, e.category, names.get(e.mini_app, "")))
    ]
    return brute_force(query, matching)


# -- notes --


class Taken(Notes):
    """Notes that keep what a search told them."""

    def __init__(self) -> None:
        self.told: list[tuple[str, object]] = []

    def source(self, source: str) -> None:
        self.told.append(("source", source))

    def no_generation(self) -> None:
        self.told.append(("no_generation", None))

    def redis_failed(self, exc: BaseException) -> None:
        self.told.append(("redis_failed", exc))

    def not_answered(self) -> None:
        self.told.append(("not_answered", None))


# -- the demo city --

#: The demo extract, and the source its import in scripts/load_demo.sh names.
DEMO_POIS = Path(__file__).resolve().parents[1] / "data" / "helsinki_center_pois.geojson"
DEMO_SOURCE = "osm-helsinki"


def load_demo_shops(
    nearby: Any, out: Path, icon_base: str = "http://demo.test/demo/icons/"
) -> None:
    """What scripts/load_demo.sh does for the shops and the catalog, into the test index:
    the extract, the derived catalog, and the branches again with their apps."""
    from scripts.gen_demo_catalog import main as gen_demo_catalog

    result = nearby("import", "stores", str(DEMO_POIS), "--source", DEMO_SOURCE, "--replace",
                    "--rejects", str(out / "shops.rejects.csv"))  # fmt: skip
    assert result.exit_code == 1, result.output  # the extract's unusable points are rejected
    gen_demo_catalog(["--pois", str(DEMO_POIS), "--out", str(out), "--icon-base", icon_base])
    result = nearby("import", "mini-apps", str(out / "mini_apps.ndjson"), "--replace")
    assert result.exit_code == 0, result.output
    result = nearby("import", "stores", str(out / "branches.ndjson"), "--source", DEMO_SOURCE,
                    "--rejects", str(out / "branches.rejects.csv"))  # fmt: skip
    assert result.exit_code == 0, result.output


def load_demo_usage(nearby: Any, out: Path, monkeypatch: pytest.MonkeyPatch,
                    env: dict[str, str], end: str) -> None:  # fmt: skip
    """The simulated week and the demo users, as scripts/load_demo.sh loads them."""
    from scripts.gen_demo_usage import main as gen_demo_usage

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stream = f"{env['NEARBY_REDIS_PREFIX']}:demo-events"
    gen_demo_usage(["--catalog", str(out / "mini_apps.ndjson"), "--stream", stream,
                    "--branches", str(out / "branches.ndjson"), "--end", end])  # fmt: skip
    result = nearby("events", "consume", stream, "--until-empty", "--block-ms", "100")
    assert result.exit_code == 0, result.output
    assert " · refused 0 " in result.output, result.output
