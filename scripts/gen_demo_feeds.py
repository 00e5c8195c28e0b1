#!/usr/bin/env python3
"""Generate the demo's bikes and chargers as real feed files: GBFS 2.3 and OCPI 2.2.1.

    scripts/gen_demo_feeds.py [--out data/demo] [--seed 7] [--time 2025-06-01T12:00:00Z]

Writes ``{out}/gbfs/`` (gbfs.json and its feeds) and ``{out}/ocpi_locations.json``
with docking stations, free-floating bikes and scooters, and charging locations
placed in central Helsinki among the shops of the demo extract. The same seed
gives the same places and states; the feeds' times are ``--time`` (default:
now), so run it right before importing (``nearby import gbfs {out}/gbfs``,
``nearby import chargers {out}/ocpi_locations.json --format ocpi``) or the
entities are already stale.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Bounding box of the demo extract: (min_lat, min_lng, max_lat, max_lng).
BBOX = (60.16416, 24.93518, 60.17911, 24.95341)
SYSTEM_ID = "kaupunkipyorat-demo"
STREETS = (
    "Mannerheimintie",
    "Aleksanterinkatu",
    "Esplanadi",
    "Bulevardi",
    "Fredrikinkatu",
    "Annankatu",
    "Kaivokatu",
    "Simonkatu",
    "Yrjönkatu",
    "Lönnrotinkatu",
)
OPERATORS = ("Helen", "Virta", "K-Lataus", "Plugit")
VEHICLE_TYPES = [
    {"vehicle_type_id": "bike", "form_factor": "bicycle", "propulsion_type": "human",
     "name": "City bike"},
    {"vehicle_type_id": "ebike", "form_factor": "bicycle", "propulsion_type": "electric_assist",
     "name": "E-bike", "max_range_meters": 60000},
    {"vehicle_type_id": "scooter", "form_factor": "scooter_standing",
     "propulsion_type": "electric", "name": "E-scooter", "max_range_meters": 40000},
]  # fmt: skip


def random_point(rng: random.Random) -> tuple[float, float]:
    """A (lat, lng) inside the demo box, rounded to about a metre."""
    lat = rng.uniform(BBOX[0], BBOX[2])
    lng = rng.uniform(BBOX[1], BBOX[3])
    return round(lat, 6), round(lng, 6)


def envelope(data: dict[str, Any], now: int) -> dict[str, Any]:
    """A GBFS 2.3 document."""
    return {"last_updated": now, "ttl": 60, "version": "2.3", "data": data}


def stations(rng: random.Random, count: int, now: int) -> tuple[list[dict], list[dict]]:
    """station_information and station_status records; one in ten is not renting."""
    info, status = [], []
    for n in range(count):
        lat, lng = random_point(rng)
        capacity = rng.choice((10, 12, 16, 20, 24))
        bikes = rng.randint(0, capacity)
        ebikes = rng.randint(0, bikes)
        station_id = f"{n + 1:03d}"
        street = rng.choice(STREETS)
        info.append({"station_id": station_id, "name": f"{street} {n + 1}", "lat": lat,
                     "lon": lng, "capacity": capacity})  # fmt: skip
        status.append(
            {
                "station_id": station_id,
                "num_bikes_available": bikes,
                "num_docks_available": capacity - bikes,
                "vehicle_types_available": [
                    {"vehicle_type_id": "bike", "count": bikes - ebikes},
                    {"vehicle_type_id": "ebike", "count": ebikes},
                ],
                "is_installed": True,
                "is_renting": rng.random() >= 0.1,
                "is_returning": True,
                "last_reported": now - rng.randint(0, 120),
            }
        )
    return info, status


def vehicles(rng: random.Random, count: int, now: int) -> list[dict]:
    """free_bike_status records: a few reserved or disabled."""
    out = []
    for _ in range(count):
        lat, lng = random_point(rng)
        vehicle_type = rng.choices(("bike", "ebike", "scooter"), weights=(2, 3, 5))[0]
        vehicle: dict[str, Any] = {
            "bike_id": f"{rng.getrandbits(64):016x}",
            "lat": lat,
            "lon": lng,
            "is_reserved": rng.random() < 0.05,
            "is_disabled": rng.random() < 0.03,
            "vehicle_type_id": vehicle_type,
            "last_reported": now - rng.randint(0, 90),
        }
        if vehicle_type != "bike":
            vehicle["current_range_meters"] = round(rng.uniform(2000, 40000), 1)
        out.append(vehicle)
    return out


def evses(rng: random.Random, location_id: str, updated: str) -> list[dict]:
    """One to six EVSEs with OCPI statuses and connectors."""
    statuses = ("AVAILABLE", "AVAILABLE", "AVAILABLE", "CHARGING", "CHARGING", "OUTOFORDER")
    fast = rng.random() < 0.3
    connector = {
        "id": "1",
        "standard": "IEC_62196_T2_COMBO" if fast else "IEC_62196_T2",
        "format": "CABLE" if fast else "SOCKET",
        "power_type": "DC" if fast else "AC_3_PHASE",
        "max_voltage": 500 if fast else 400,
        "max_amperage": 200 if fast else 32,
        "last_updated": updated,
    }
    return [
        {"uid": f"{location_id}-{n}", "evse_id": f"FI*DEM*E{location_id}*{n}",
         "status": rng.choice(statuses), "connectors": [connector], "last_updated": updated}
        for n in range(1, rng.randint(1, 6) + 1)
    ]  # fmt: skip


def locations(rng: random.Random, count: int, updated: str) -> list[dict]:
    """OCPI 2.2.1 Location objects with string coordinates, as the spec has them."""
    out = []
    for n in range(count):
        lat, lng = random_point(rng)
        location_id = f"HEL{n + 1:03d}"
        out.append(
            {
                "country_code": "FI",
                "party_id": "DEM",
                "id": location_id,
                "publish": True,
                "name": f"{rng.choice(STREETS)} charging {n + 1}",
                "address": f"{rng.choice(STREETS)} {rng.randint(1, 60)}",
                "city": "Helsinki",
                "country": "FIN",
                "coordinates": {"latitude": f"{lat:.6f}", "longitude": f"{lng:.6f}"},
                "operator": {"name": rng.choice(OPERATORS)},
                "evses": evses(rng, location_id, updated),
                "time_zone": "Europe/Helsinki",
                "last_updated": updated,
            }
        )
    return out


def write_json(path: Path, document: Any) -> None:
    """Write a JSON file, making its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n")


def generate(out: Path, seed: int, moment: datetime, sizes: tuple[int, int, int]) -> None:
    """Write the GBFS feed set and the OCPI file under ``out``."""
    rng = random.Random(seed)
    now = int(moment.timestamp())
    info, status = stations(rng, sizes[0], now)
    feeds: dict[str, dict[str, Any]] = {
        "system_information": {"system_id": SYSTEM_ID, "name": "Kaupunkipyörät (demo)",
                               "language": "en", "timezone": "Europe/Helsinki"},
        "vehicle_types": {"vehicle_types": VEHICLE_TYPES},
        "station_information": {"stations": info},
        "station_status": {"stations": status},
        "free_bike_status": {"bikes": vehicles(rng, sizes[1], now)},
    }  # fmt: skip
    for name, data in feeds.items():
        write_json(out / "gbfs" / f"{name}.json", envelope(data, now))
    listing = [{"name": name, "url": f"{name}.json"} for name in ("gbfs", *feeds)]
    write_json(out / "gbfs" / "gbfs.json", envelope({"en": {"feeds": listing}}, now))
    updated = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = {
        "data": locations(rng, sizes[2], updated),
        "status_code": 1000,
        "status_message": "Success",
        "timestamp": updated,
    }
    write_json(out / "ocpi_locations.json", response)


def main() -> None:
    """Parse the arguments and write the files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/demo", type=Path)
    parser.add_argument("--seed", default=7, type=int)
    parser.add_argument("--time", help="RFC 3339 time of the feeds (default: now)")
    parser.add_argument("--stations", default=40, type=int)
    parser.add_argument("--vehicles", default=160, type=int)
    parser.add_argument("--chargers", default=30, type=int)
    args = parser.parse_args()
    moment = datetime.fromisoformat(args.time) if args.time else datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    generate(args.out, args.seed, moment, (args.stations, args.vehicles, args.chargers))
    print(
        f"wrote {args.stations} stations, {args.vehicles} vehicles to {args.out / 'gbfs'} and "
        f"{args.chargers} charging locations to {args.out / 'ocpi_locations.json'}"
    )


if __name__ == "__main__":
    main()
