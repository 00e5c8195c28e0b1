"""GBFS feed sets to entities: stations and free-floating vehicles, 1.x, 2.x and 3.0.

Stations (``station_information`` + ``station_status``) and free-floating
vehicles (``free_bike_status`` in 1.x/2.x, ``vehicle_status`` in 3.0) both
become ``bike`` entities. Fields that no version of the spec names are ignored.

Times: 1.x/2.x give POSIX seconds, 3.0 gives RFC 3339 strings; both come back
as aware UTC datetimes. An entity's ``seen_at`` is its own ``last_reported``,
else the ``last_updated`` of the feed that carried it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from indexer.model import Entity
from indexer.sources.gbfs.fetch import Feed, FeedSet
from indexer.sources.rejects import GbfsError, InvalidEntity, Parsed, Rejected
from indexer.sources.values import as_bool, as_count, as_float, lat_lng, objects, parse_time

VehicleTypes = Mapping[str, Mapping[str, Any]]


def localized(value: Any, lang: str | None) -> str:
    """A 3.0 localized string ``[{text, language}]`` in ``lang``; plain strings pass through."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return ""
    texts = [item for item in value if isinstance(item, dict) and "text" in item]
    for item in texts:
        if lang and str(item.get("language", "")).lower() == lang.lower():
            return str(item["text"])
    return str(texts[0]["text"]) if texts else ""


def point(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """(lat, lng) of a record (GBFS names them ``lat``/``lon``), or None when invalid."""
    return lat_lng(record.get("lat"), record.get("lon"))


def records(feed: Feed | None, key: str) -> Iterator[Mapping[str, Any]]:
    """The objects in ``feed.data[key]``; anything that is not an object is skipped."""
    return objects(feed.data.get(key) if feed else None)


def vehicle_types(feed_set: FeedSet) -> dict[str, Mapping[str, Any]]:
    """``vehicle_types`` by id (empty when the set has none)."""
    feed = feed_set.feeds.get("vehicle_types")
    return {
        str(t["vehicle_type_id"]): t
        for t in records(feed, "vehicle_types")
        if "vehicle_type_id" in t
    }


def is_scooter(vehicle_type: Mapping[str, Any]) -> bool:
    """Scooters by ``form_factor`` (``scooter``, ``scooter_standing``, ``scooter_seated``)."""
    return str(vehicle_type.get("form_factor", "")).startswith("scooter")


def is_ebike(vehicle_type: Mapping[str, Any]) -> bool:
    """Bicycles with a motor (``propulsion_type`` electric or electric_assist)."""
    return vehicle_type.get("form_factor") == "bicycle" and str(
        vehicle_type.get("propulsion_type", "")
    ).startswith("electric")


# --- stations ----------------------------------------------------------------


def stations_to_entities(feed_set: FeedSet, source: str, mini_app: str) -> Parsed:
    """Stations of ``station_information`` joined with ``station_status`` by ``station_id``.

    A station without status keeps ``available`` empty (unknown); a status
    without a station has no location and is rejected.
    """
    info_feed = feed_set.feeds.get("station_information")
    status_feed = feed_set.feeds.get("station_status")
    statuses = {
        str(s["station_id"]): s for s in records(status_feed, "stations") if "station_id" in s
    }
    types = vehicle_types(feed_set)
    parsed = Parsed()
    seen: set[str] = set()
    for info in records(info_feed, "stations"):
        native = str(info.get("station_id", ""))
        status = statuses.get(native)
        parsed.add(
            "station_information",
            native,
            station_entity,
            info,
            status,
            feed_set,
            types,
            source,
            mini_app,
        )
        seen.add(native)
    for native in sorted(statuses.keys() - seen):
        parsed.rejected.append(Rejected("station_status", native, "no station_information"))
    return parsed


def station_entity(
    info: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    feed_set: FeedSet,
    types: VehicleTypes,
    source: str,
    mini_app: str,
) -> Entity:
    """One station as an entity.

    Raises
    ------
    InvalidEntity
        The station has no ``station_id`` or no valid lat/lon.
    """
    native = str(info.get("station_id", ""))
    where = point(info)
    if not native:
        raise InvalidEntity("no station_id")
    if where is None:
        raise InvalidEntity("no valid lat/lon")
    attrs: dict[str, Any] = {"station_id": native}
    available = None
    seen_at = feed_set.feeds["station_information"].last_updated
    if status is not None:
        available, status_attrs = station_availability(status)
        attrs.update(status_attrs)
        attrs.update(station_type_counts(status, types))
        status_feed = feed_set.feeds["station_status"]
        seen_at = parse_time(status.get("last_reported")) or status_feed.last_updated
    for key in ("short_name", "address", "region_id"):
        if info.get(key) not in (None, ""):
            attrs[key] = info[key]
    return Entity(
        id=f"{source}:station:{native}",
        kind="bike",
        lat=where[0],
        lng=where[1],
        name=localized(info.get("name"), feed_set.lang),
        category="bike_station",
        mini_app=mini_app,
        available=available,
        capacity=as_count(info.get("capacity")),
        attrs=attrs,
        seen_at=seen_at,
    )


def station_availability(status: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """Bikes available (0 when not renting or not installed) and the status flags.

    3.0 renamed ``num_bikes_available`` to ``num_vehicles_available``.
    """
    bikes = as_count(status.get("num_vehicles_available", status.get("num_bikes_available"))) or 0
    renting = as_bool(status.get("is_renting", True))
    installed = as_bool(status.get("is_installed", True))
    attrs: dict[str, Any] = {
        "is_renting": renting,
        "is_installed": installed,
        "is_returning": as_bool(status.get("is_returning", True)),
        "bikes_available": bikes,
    }
    docks = as_count(status.get("num_docks_available"))
    if docks is not None:
        attrs["docks_available"] = docks
    return (bikes if renting and installed else 0), attrs


def station_type_counts(status: Mapping[str, Any], types: VehicleTypes) -> dict[str, int]:
    """E-bikes and scooters available at a station.

    From ``vehicle_types_available`` and the vehicle types when the feed has
    them (the spec's way); else from the ``num_ebikes_available`` /
    ``num_scooters_available`` fields some operators add.
    """
    available = list(objects(status.get("vehicle_types_available")))
    if available and types:
        return _typed_counts(available, types)
    counts = {}
    for key, name in (
        ("num_ebikes_available", "ebikes_available"),
        ("num_scooters_available", "scooters_available"),
    ):
        count = as_count(status.get(key))
        if count is not None:
            counts[name] = count
    return counts


def _typed_counts(available: list[Mapping[str, Any]], types: VehicleTypes) -> dict[str, int]:
    ebikes = scooters = 0
    for item in available:
        vehicle_type = types.get(str(item.get("vehicle_type_id")), {})
        count = as_count(item.get("count")) or 0
        ebikes += count if is_ebike(vehicle_type) else 0
        scooters += count if is_scooter(vehicle_type) else 0
    return {"ebikes_available": ebikes, "scooters_available": scooters}


# --- free-floating vehicles --------------------------------------------------


def vehicle_label(vehicle_type: Mapping[str, Any]) -> str:
    """A display name for a vehicle type without one: "E-bike", "Bike", "Scooter"…"""
    if is_ebike(vehicle_type):
        return "E-bike"
    form = str(vehicle_type.get("form_factor") or "bicycle")
    label = {"bicycle": "Bike", "cargo_bicycle": "Cargo bike", "moped": "Moped"}.get(form)
    return label or form.split("_")[0].capitalize()


def vehicles_to_entities(feed_set: FeedSet, source: str, mini_app: str) -> Parsed:
    """Free-floating vehicles of ``vehicle_status`` (3.0) or ``free_bike_status`` (1.x/2.x).

    Vehicles docked at a station without their own position are counted by
    the station, not indexed on their own.
    """
    if "vehicle_status" in feed_set.feeds:
        feed, key, id_key = feed_set.feeds["vehicle_status"], "vehicles", "vehicle_id"
    elif "free_bike_status" in feed_set.feeds:
        feed, key, id_key = feed_set.feeds["free_bike_status"], "bikes", "bike_id"
    else:
        return Parsed()
    types = vehicle_types(feed_set)
    parsed = Parsed()
    for vehicle in records(feed, key):
        native = str(vehicle.get(id_key, ""))
        if vehicle.get("station_id") and point(vehicle) is None:
            continue
        parsed.add(
            feed.name,
            native,
            vehicle_entity,
            vehicle,
            native,
            feed,
            types,
            feed_set.lang,
            source,
            mini_app,
        )
    return parsed


def vehicle_entity(
    vehicle: Mapping[str, Any],
    native: str,
    feed: Feed,
    types: VehicleTypes,
    lang: str | None,
    source: str,
    mini_app: str,
) -> Entity:
    """One free vehicle as an entity: available 1 unless reserved or disabled.

    Raises
    ------
    InvalidEntity
        The vehicle has no id or no valid lat/lon.
    """
    where = point(vehicle)
    if not native:
        raise InvalidEntity("no vehicle id")
    if where is None:
        raise InvalidEntity("no valid lat/lon")
    type_id = vehicle.get("vehicle_type_id")
    vehicle_type = types.get(str(type_id), {}) if type_id is not None else {}
    attrs = vehicle_attrs(vehicle, vehicle_type)
    return Entity(
        id=f"{source}:vehicle:{native}",
        kind="bike",
        lat=where[0],
        lng=where[1],
        name=localized(vehicle_type.get("name"), lang) or vehicle_label(vehicle_type),
        category="free_bike",
        mini_app=mini_app,
        available=0 if attrs["is_reserved"] or attrs["is_disabled"] else 1,
        capacity=1,
        attrs=attrs,
        seen_at=parse_time(vehicle.get("last_reported")) or feed.last_updated,
    )


def vehicle_attrs(vehicle: Mapping[str, Any], vehicle_type: Mapping[str, Any]) -> dict[str, Any]:
    """A vehicle's flags, its type (id, form factor, propulsion) and its range in metres."""
    attrs: dict[str, Any] = {
        "is_reserved": as_bool(vehicle.get("is_reserved")),
        "is_disabled": as_bool(vehicle.get("is_disabled")),
    }
    type_id = vehicle.get("vehicle_type_id")
    if type_id is not None:
        attrs["vehicle_type_id"] = str(type_id)
    for key in ("form_factor", "propulsion_type"):
        if vehicle_type.get(key):
            attrs[key] = vehicle_type[key]
    range_m = as_float(vehicle.get("current_range_meters"))
    if range_m is not None:
        attrs["current_range_m"] = range_m
    return attrs


# --- the feed set ------------------------------------------------------------


def feed_set_to_entities(feed_set: FeedSet, *, source: str | None = None) -> Parsed:
    """Every station and free vehicle of ``feed_set`` as entities of ``source``.

    ``source`` defaults to the system id; ``mini_app`` is always the system id
    (``source`` when the set has no ``system_information``).

    Raises
    ------
    GbfsError
        No ``source`` is given and the set has no system id.
    """
    system_id = feed_set.system_id
    source = source or system_id
    if not source:
        raise GbfsError("the feed set has no system_information: name the source")
    mini_app = system_id or source
    stations = stations_to_entities(feed_set, source, mini_app)
    vehicles = vehicles_to_entities(feed_set, source, mini_app)
    return drop_duplicates(
        stations.entities + vehicles.entities, stations.rejected + vehicles.rejected
    )


def drop_duplicates(entities: list[Entity], rejected: list[Rejected]) -> Parsed:
    """Keep the first entity of each id; later ones are rejected (a snapshot names each once)."""
    kept: dict[str, Entity] = {}
    rejected = list(rejected)
    for entity in entities:
        if entity.id in kept:
            native = entity.id.split(":", 2)[-1]
            rejected.append(Rejected(entity.category, native, "duplicate id"))
        else:
            kept[entity.id] = entity
    return Parsed(entities=list(kept.values()), rejected=rejected)
