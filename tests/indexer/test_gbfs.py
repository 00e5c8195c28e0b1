"""GBFS feed sets to entities: 1.x, 2.x and 3.0 fixtures written to the spec."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from indexer.gbfs import (
    GbfsError,
    Rejected,
    discovery_feed_urls,
    feed_set_to_entities,
    load_feed_set,
    localized,
    parse_time,
)
from indexer.model import Entity

T0 = 1738144000  # 2025-01-29T09:46:40Z
T0_DT = datetime(2025, 1, 29, 9, 46, 40, tzinfo=UTC)


def envelope(data: dict[str, Any], version: str | None = "2.3", last_updated: Any = T0) -> dict:
    doc: dict[str, Any] = {"last_updated": last_updated, "ttl": 60, "data": data}
    if version is not None:
        doc["version"] = version
    return doc


def write(directory: Path, name: str, document: Any) -> Path:
    path = directory / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


def feed_set_v2(directory: Path) -> Path:
    """A 2.3 set: two stations (one not renting), three vehicles, types, and a stray field."""
    write(directory, "system_information", envelope({"system_id": "citybikes", "name": "CB"}))
    write(
        directory,
        "vehicle_types",
        envelope(
            {
                "vehicle_types": [
                    {
                        "vehicle_type_id": "bike",
                        "form_factor": "bicycle",
                        "propulsion_type": "human",
                    },
                    {
                        "vehicle_type_id": "ebike",
                        "form_factor": "bicycle",
                        "propulsion_type": "electric_assist",
                        "name": "Boost",
                    },
                    {
                        "vehicle_type_id": "sc",
                        "form_factor": "scooter",
                        "propulsion_type": "electric",
                    },
                ]
            }
        ),
    )
    write(
        directory,
        "station_information",
        envelope(
            {
                "stations": [
                    {"station_id": "s1", "name": "Kamppi", "lat": 60.169, "lon": 24.933,
                     "capacity": 20, "short_name": "001", "unknown_thing": {"x": 1}},
                    {"station_id": "s2", "name": "Kallio", "lat": 60.179, "lon": 24.95,
                     "capacity": 10},
                ]
            }
        ),
    )  # fmt: skip
    write(
        directory,
        "station_status",
        envelope(
            {
                "stations": [
                    {
                        "station_id": "s1",
                        "num_bikes_available": 7,
                        "num_docks_available": 13,
                        "is_installed": True,
                        "is_renting": True,
                        "is_returning": True,
                        "last_reported": T0 - 100,
                        "vehicle_types_available": [
                            {"vehicle_type_id": "bike", "count": 3},
                            {"vehicle_type_id": "ebike", "count": 2},
                            {"vehicle_type_id": "sc", "count": 2},
                        ],
                    },
                    {
                        "station_id": "s2",
                        "num_bikes_available": 4,
                        "num_docks_available": 6,
                        "is_installed": True,
                        "is_renting": False,
                        "is_returning": True,
                        "last_reported": T0 - 50,
                    },
                    {"station_id": "ghost", "num_bikes_available": 1, "last_reported": T0},
                ]
            }
        ),
    )
    write(
        directory,
        "free_bike_status",
        envelope(
            {
                "bikes": [
                    {"bike_id": "v1", "lat": 60.17, "lon": 24.94, "is_reserved": False,
                     "is_disabled": False, "vehicle_type_id": "ebike",
                     "current_range_meters": 12000.5, "last_reported": T0 - 10},
                    {"bike_id": "v2", "lat": 60.171, "lon": 24.941, "is_reserved": True,
                     "is_disabled": False, "vehicle_type_id": "bike"},
                    {"bike_id": "v3", "lat": 60.172, "lon": 24.942, "is_reserved": False,
                     "is_disabled": True, "vehicle_type_id": "sc"},
                    {"bike_id": "docked", "station_id": "s1", "is_reserved": False,
                     "is_disabled": False},
                    {"bike_id": "v4", "lat": 95.0, "lon": 24.9, "is_reserved": False,
                     "is_disabled": False},
                ]
            }
        ),
    )  # fmt: skip
    discovery = {
        "en": {"feeds": [{"name": n, "url": f"https://example.com/en/{n}.json"} for n in NAMES]},
        "fi": {"feeds": [{"name": n, "url": f"https://example.com/fi/{n}.json"} for n in NAMES]},
    }
    return write(directory, "gbfs", envelope(discovery))


NAMES = (
    "system_information",
    "vehicle_types",
    "station_information",
    "station_status",
    "free_bike_status",
)

EXPECTED_V2 = [
    Entity(
        id="citybikes:station:s1",
        kind="bike",
        lat=60.169,
        lng=24.933,
        name="Kamppi",
        category="bike_station",
        mini_app="citybikes",
        available=7,
        capacity=20,
        attrs={
            "station_id": "s1",
            "is_renting": True,
            "is_installed": True,
            "is_returning": True,
            "bikes_available": 7,
            "docks_available": 13,
            "ebikes_available": 2,
            "scooters_available": 2,
            "short_name": "001",
        },
        seen_at=datetime.fromtimestamp(T0 - 100, tz=UTC),
    ),
    Entity(
        id="citybikes:station:s2",
        kind="bike",
        lat=60.179,
        lng=24.95,
        name="Kallio",
        category="bike_station",
        mini_app="citybikes",
        available=0,
        capacity=10,
        attrs={
            "station_id": "s2",
            "is_renting": False,
            "is_installed": True,
            "is_returning": True,
            "bikes_available": 4,
            "docks_available": 6,
        },
        seen_at=datetime.fromtimestamp(T0 - 50, tz=UTC),
    ),
    Entity(
        id="citybikes:vehicle:v1",
        kind="bike",
        lat=60.17,
        lng=24.94,
        name="Boost",
        category="free_bike",
        mini_app="citybikes",
        available=1,
        capacity=1,
        attrs={
            "is_reserved": False,
            "is_disabled": False,
            "vehicle_type_id": "ebike",
            "form_factor": "bicycle",
            "propulsion_type": "electric_assist",
            "current_range_m": 12000.5,
        },
        seen_at=datetime.fromtimestamp(T0 - 10, tz=UTC),
    ),
    Entity(
        id="citybikes:vehicle:v2",
        kind="bike",
        lat=60.171,
        lng=24.941,
        name="Bike",
        category="free_bike",
        mini_app="citybikes",
        available=0,
        capacity=1,
        attrs={
            "is_reserved": True,
            "is_disabled": False,
            "vehicle_type_id": "bike",
            "form_factor": "bicycle",
            "propulsion_type": "human",
        },
        seen_at=T0_DT,
    ),
    Entity(
        id="citybikes:vehicle:v3",
        kind="bike",
        lat=60.172,
        lng=24.942,
        name="Scooter",
        category="free_bike",
        mini_app="citybikes",
        available=0,
        capacity=1,
        attrs={
            "is_reserved": False,
            "is_disabled": True,
            "vehicle_type_id": "sc",
            "form_factor": "scooter",
            "propulsion_type": "electric",
        },
        seen_at=T0_DT,
    ),
]
REJECTED_V2 = [
    Rejected("station_status", "ghost", "no station_information"),
    Rejected("free_bike_status", "v4", "no valid lat/lon"),
]


def test_v2_discovery_file_gives_stations_and_vehicles(tmp_path: Path) -> None:
    feed_set = load_feed_set(str(feed_set_v2(tmp_path)))
    assert feed_set.lang == "en"
    assert feed_set.system_id == "citybikes"
    assert feed_set.ttl_s == 60
    parsed = feed_set_to_entities(feed_set)
    assert parsed.entities == EXPECTED_V2
    assert parsed.rejected == REJECTED_V2


def test_a_directory_of_feed_files_reads_the_same(tmp_path: Path) -> None:
    feed_set_v2(tmp_path)
    (tmp_path / "gbfs.json").unlink()
    (tmp_path / "station_status.json").rename(tmp_path / "status-copy.json")
    parsed = feed_set_to_entities(load_feed_set(str(tmp_path)))
    assert parsed.entities == EXPECTED_V2
    assert parsed.rejected == REJECTED_V2


def test_source_renames_ids_but_mini_app_stays_the_system_id(tmp_path: Path) -> None:
    parsed = feed_set_to_entities(load_feed_set(str(feed_set_v2(tmp_path))), source="cb")
    assert [e.id for e in parsed.entities] == [
        "cb:station:s1",
        "cb:station:s2",
        "cb:vehicle:v1",
        "cb:vehicle:v2",
        "cb:vehicle:v3",
    ]
    assert {e.mini_app for e in parsed.entities} == {"citybikes"}


def test_v1_feed_without_version_and_with_integer_booleans(tmp_path: Path) -> None:
    write(
        tmp_path,
        "free_bike_status",
        envelope(
            {
                "bikes": [
                    {"bike_id": "a", "lat": 40.0, "lon": -73.0, "is_reserved": 0,
                     "is_disabled": 0},
                    {"bike_id": "b", "lat": "40.1", "lon": "-73.1", "is_reserved": 1,
                     "is_disabled": 0},
                ]
            },
            version=None,
        ),
    )  # fmt: skip
    feed_set = load_feed_set(str(tmp_path / "free_bike_status.json"))
    assert feed_set.feeds["free_bike_status"].version == "1.0"
    parsed = feed_set_to_entities(feed_set, source="old")
    assert [(e.id, e.lat, e.lng, e.available, e.name) for e in parsed.entities] == [
        ("old:vehicle:a", 40.0, -73.0, 1, "Bike"),
        ("old:vehicle:b", 40.1, -73.1, 0, "Bike"),
    ]
    assert parsed.entities[0].mini_app == "old"
    assert parsed.entities[0].seen_at == T0_DT


def test_v1_station_status_with_integer_flags(tmp_path: Path) -> None:
    write(
        tmp_path,
        "station_information",
        envelope({"stations": [{"station_id": "1", "name": "A", "lat": 1.0, "lon": 2.0}]}, None),
    )
    write(
        tmp_path,
        "station_status",
        envelope(
            {"stations": [{"station_id": "1", "num_bikes_available": 5, "is_installed": 1,
                           "is_renting": 0, "is_returning": 1, "last_reported": T0}]},
            None,
        ),
    )  # fmt: skip
    parsed = feed_set_to_entities(load_feed_set(str(tmp_path)), source="v1")
    assert [(e.id, e.available, e.capacity, e.attrs["is_renting"]) for e in parsed.entities] == [
        ("v1:station:1", 0, None, False)
    ]


def test_v3_vehicle_status_station_names_and_rfc3339_times(tmp_path: Path) -> None:
    write(
        tmp_path,
        "system_information",
        envelope({"system_id": "kaupunkipyorat", "name": [{"text": "Pyörät", "language": "fi"}]},
                 "3.0", "2025-01-29T09:46:40Z"),
    )  # fmt: skip
    write(
        tmp_path,
        "station_information",
        envelope(
            {
                "stations": [
                    {
                        "station_id": "s1",
                        "name": [
                            {"text": "Rautatientori", "language": "fi"},
                            {"text": "Järnvägstorget", "language": "sv"},
                        ],
                        "lat": 60.171,
                        "lon": 24.943,
                        "capacity": 12,
                    }
                ]
            },
            "3.0",
            "2025-01-29T09:46:40Z",
        ),
    )
    write(
        tmp_path,
        "station_status",
        envelope(
            {"stations": [{"station_id": "s1", "num_vehicles_available": 5, "is_installed": True,
                           "is_renting": True, "is_returning": True,
                           "last_reported": "2025-01-29T11:45:00+02:00"}]},
            "3.0",
            "2025-01-29T09:46:40Z",
        ),
    )  # fmt: skip
    write(
        tmp_path,
        "vehicle_status",
        envelope(
            {"vehicles": [{"vehicle_id": "x", "lat": 60.17, "lon": 24.94, "is_reserved": False,
                           "is_disabled": False, "last_reported": "2025-01-29T09:40:00Z"}]},
            "3.0",
            "2025-01-29T09:46:40Z",
        ),
    )  # fmt: skip
    discovery = {
        "feeds": [
            {"name": n, "url": f"{n}.json"}
            for n in ("system_information", "station_information", "station_status")
        ]
        + [{"name": "vehicle_status", "url": "https://example.com/vehicle_status.json"}]
    }
    write(tmp_path, "gbfs", envelope(discovery, "3.0", "2025-01-29T09:46:40Z"))
    parsed = feed_set_to_entities(load_feed_set(str(tmp_path / "gbfs.json"), lang="sv"))
    station, vehicle = parsed.entities
    assert (station.id, station.name, station.available, station.capacity) == (
        "kaupunkipyorat:station:s1",
        "Järnvägstorget",
        5,
        12,
    )
    assert station.seen_at == datetime(2025, 1, 29, 9, 45, tzinfo=UTC)
    assert (vehicle.id, vehicle.available, vehicle.seen_at) == (
        "kaupunkipyorat:vehicle:x",
        1,
        datetime(2025, 1, 29, 9, 40, tzinfo=UTC),
    )
    assert parsed.rejected == []


def test_a_remote_discovery_file_is_followed_with_the_language_asked(tmp_path: Path) -> None:
    feed_set_v2(tmp_path)
    read: list[str] = []

    def fake_read(location: str) -> bytes:
        read.append(location)
        name = location.rsplit("/", 1)[1]
        return (tmp_path / name).read_bytes()

    feed_set = load_feed_set("https://example.com/gbfs.json", lang="fi", read=fake_read)
    assert read == ["https://example.com/gbfs.json"] + [
        f"https://example.com/fi/{n}.json"
        for n in (
            "system_information",
            "station_information",
            "station_status",
            "free_bike_status",
            "vehicle_types",
        )
    ]
    assert feed_set.lang == "fi"


def test_discovery_language_choice() -> None:
    data = {
        "fr": {"feeds": [{"name": "a", "url": "fr/a"}]},
        "en": {"feeds": [{"name": "a", "url": "en/a"}]},
    }
    assert discovery_feed_urls(data, None) == ({"a": "en/a"}, "en")
    assert discovery_feed_urls(data, "fr") == ({"a": "fr/a"}, "fr")
    assert discovery_feed_urls({"de": data["fr"]}, None) == ({"a": "fr/a"}, "de")
    with pytest.raises(GbfsError, match=r"no language 'sv' \(offered: fr, en\)"):
        discovery_feed_urls(data, "sv")
    with pytest.raises(GbfsError, match="lists no feeds"):
        discovery_feed_urls({}, None)


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    bikes = [
        {"bike_id": "a", "lat": 1.0, "lon": 2.0, "is_reserved": False, "is_disabled": False},
        {"bike_id": "a", "lat": 3.0, "lon": 4.0, "is_reserved": False, "is_disabled": False},
    ]
    write(tmp_path, "free_bike_status", envelope({"bikes": bikes}))
    parsed = feed_set_to_entities(load_feed_set(str(tmp_path)), source="s")
    assert [(e.id, e.lat) for e in parsed.entities] == [("s:vehicle:a", 1.0)]
    assert parsed.rejected == [Rejected("free_bike", "a", "duplicate id")]


def test_errors_name_the_input(tmp_path: Path) -> None:
    with pytest.raises(GbfsError, match="missing.json"):
        load_feed_set(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GbfsError, match="bad.json: not JSON"):
        load_feed_set(str(tmp_path / "bad.json"))
    (tmp_path / "nodata.json").write_text('{"last_updated": 1}')
    with pytest.raises(GbfsError, match="not a GBFS document"):
        load_feed_set(str(tmp_path / "nodata.json"))
    write(tmp_path, "system_alerts", envelope({"alerts": []}))
    with pytest.raises(GbfsError, match="not a GBFS feed this importer reads"):
        load_feed_set(str(tmp_path / "system_alerts.json"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GbfsError, match="no GBFS feed files"):
        load_feed_set(str(empty))
    write(tmp_path, "free_bike_status", envelope({"bikes": []}))
    with pytest.raises(GbfsError, match="name the source"):
        feed_set_to_entities(load_feed_set(str(tmp_path / "free_bike_status.json")))


def test_parse_time_forms() -> None:
    assert parse_time(T0) == T0_DT
    assert parse_time(str(T0)) == T0_DT
    assert parse_time("2025-01-29T09:46:40Z") == T0_DT
    assert parse_time("2025-01-29T11:46:40+02:00") == T0_DT
    assert parse_time("2025-01-29T09:46:40") == T0_DT
    for bad in (None, True, "", "soon", float("nan"), [1]):
        assert parse_time(bad) is None


def test_parse_time_beyond_what_datetime_holds_is_none() -> None:
    # Years outside 1..9999, and digits that int() does not read: never an error.
    for bad in (1e300, -1e300, "99999999999999999999", "\u00b2", "0001-01-01T00:00+01:00"):
        assert parse_time(bad) is None


def test_localized_strings() -> None:
    names = [{"text": "Asema", "language": "fi"}, {"text": "Station", "language": "en"}]
    assert localized(names, "en") == "Station"
    assert localized(names, "EN") == "Station"
    assert localized(names, "de") == "Asema"
    assert localized(names, None) == "Asema"
    assert localized("plain", "en") == "plain"
    assert localized(None, "en") == ""
    assert localized([], "en") == ""
