"""GBFS feeds (bike shares) to entities: versions 1.x, 2.x and 3.0.

A feed set is read from a ``gbfs.json`` discovery file (local or a URL; its
feeds are followed), a directory of feed files, or one feed file. Stations
(``station_information`` + ``station_status``) and free-floating vehicles
(``free_bike_status`` in 1.x/2.x, ``vehicle_status`` in 3.0) both become
``bike`` entities. Fields that no version of the spec names are ignored.

Times: 1.x/2.x give POSIX seconds, 3.0 gives RFC 3339 strings; both come back
as aware UTC datetimes. An entity's ``seen_at`` is its own ``last_reported``,
else the ``last_updated`` of the feed that carried it.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from indexer.model import Entity, normalize_lng

#: Feeds that carry what the index needs; the rest of a feed set is skipped.
WANTED_FEEDS = (
    "system_information",
    "station_information",
    "station_status",
    "free_bike_status",
    "vehicle_status",
    "vehicle_types",
)
#: Bounds on a fetched document: large systems publish a few MB; more is a mistake.
MAX_FEED_BYTES = 64 * 1024 * 1024
FETCH_TIMEOUT_S = 20.0

Reader = Callable[[str], bytes]


class GbfsError(ValueError):
    """A feed cannot be read or understood; the message names the feed."""


@dataclass(frozen=True, slots=True)
class Feed:
    """One GBFS document: its name, version, times and ``data`` object."""

    name: str
    version: str
    last_updated: datetime | None
    ttl_s: int | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class FeedSet:
    """The feeds of one system that an import reads, by name."""

    feeds: Mapping[str, Feed]
    lang: str | None = None

    @property
    def system_id(self) -> str | None:
        """The system id from ``system_information``, if the set has one."""
        info = self.feeds.get("system_information")
        value = info.data.get("system_id") if info else None
        return str(value) if value not in (None, "") else None

    @property
    def ttl_s(self) -> int | None:
        """The shortest ``ttl`` of the feeds that carry entities (None when none says)."""
        ttls = [feed.ttl_s for name, feed in self.feeds.items() if feed.ttl_s is not None]
        return min(ttls) if ttls else None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that could not become an entity, with why."""

    feed: str
    native_id: str
    reason: str


@dataclass(frozen=True)
class Parsed:
    """Entities of a feed set and the records that were left out."""

    entities: list[Entity] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


# --- reading -----------------------------------------------------------------


def is_url(location: str) -> bool:
    """True when ``location`` is an http(s) URL rather than a path."""
    return urlsplit(location).scheme in ("http", "https")


def read_location(location: str) -> bytes:
    """Read a local file or fetch an http(s) URL, bounded in size and time."""
    if not is_url(location):
        try:
            return Path(location).read_bytes()
        except OSError as exc:
            raise GbfsError(f"{location}: {exc.strerror or exc}") from exc
    request = urllib.request.Request(location, headers={"User-Agent": "nearby-indexer"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
            body: bytes = response.read(MAX_FEED_BYTES + 1)
    except OSError as exc:
        raise GbfsError(f"{location}: {exc}") from exc
    if len(body) > MAX_FEED_BYTES:
        raise GbfsError(f"{location}: larger than {MAX_FEED_BYTES} bytes")
    return body


def parse_json(body: bytes, where: str) -> Any:
    """Decode a JSON document, naming ``where`` on failure."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GbfsError(f"{where}: not JSON ({exc})") from exc


# --- values ------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """POSIX seconds (1.x/2.x) or an RFC 3339 string (3.0) as an aware UTC datetime."""
    if value is None or isinstance(value, bool):
        return None
    # A time beyond what datetime holds (years 1 to 9999) is None too, not an error.
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC) if math.isfinite(value) else None
        if isinstance(value, str) and value:
            return parse_time_text(value.strip())
    except (OverflowError, OSError, ValueError):
        return None
    return None


def parse_time_text(text: str) -> datetime:
    """POSIX seconds or RFC 3339 as text; ValueError or OverflowError when neither."""
    if text.isascii() and text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    # fromisoformat reads "Z" and offsets from Python 3.11 on.
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def as_bool(value: Any) -> bool:
    """GBFS booleans: true/false in 2.x+, 0/1 (and sometimes "0"/"1") in 1.x."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def as_count(value: Any) -> int | None:
    """A non-negative integer count, or None when missing or malformed."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def as_float(value: Any) -> float | None:
    """A finite float (numbers or numeric strings), or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


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
    lat, lng = as_float(record.get("lat")), as_float(record.get("lon"))
    if lat is None or lng is None or not -90.0 <= lat <= 90.0 or not -180.0 <= lng <= 180.0:
        return None
    return lat, normalize_lng(lng)


# --- documents ---------------------------------------------------------------


def feed_from_document(name: str, document: Any) -> Feed:
    """Wrap one decoded GBFS document; 1.x documents carry no version (read as "1.0")."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise GbfsError(f"{name}: not a GBFS document (no data object)")
    ttl = as_count(document.get("ttl"))
    return Feed(
        name=name,
        version=str(document.get("version") or "1.0"),
        last_updated=parse_time(document.get("last_updated")),
        ttl_s=ttl,
        data=document["data"],
    )


def guess_feed_name(data: Mapping[str, Any]) -> str | None:
    """Which feed a document is, from its content (for files not named after their feed)."""
    if "vehicles" in data:
        return "vehicle_status"
    if "bikes" in data:
        return "free_bike_status"
    if "vehicle_types" in data:
        return "vehicle_types"
    if "system_id" in data:
        return "system_information"
    stations = data.get("stations")
    if isinstance(stations, list) and stations:
        first = stations[0] if isinstance(stations[0], dict) else {}
        if "lat" in first or "name" in first:
            return "station_information"
        return "station_status"
    if "feeds" in data or discovery_languages(data):
        return "gbfs"
    return None


def discovery_languages(data: Mapping[str, Any]) -> list[str]:
    """Languages of a 1.x/2.x ``gbfs.json`` (``data: {lang: {feeds}}``), in file order."""
    return [key for key, value in data.items() if isinstance(value, dict) and "feeds" in value]


def discovery_feed_urls(
    data: Mapping[str, Any], lang: str | None
) -> tuple[dict[str, str], str | None]:
    """Feed URLs by name from a ``gbfs.json`` ``data`` object, and the language picked.

    3.0 lists ``feeds`` directly; 1.x/2.x list them per language, and the
    language is ``lang`` when given, else English when offered, else the first.
    """
    if isinstance(data.get("feeds"), list):
        return _feed_urls(data["feeds"]), lang
    languages = discovery_languages(data)
    if not languages:
        raise GbfsError("gbfs: the discovery file lists no feeds")
    if lang is None:
        chosen = "en" if "en" in languages else languages[0]
    elif lang in languages:
        chosen = lang
    else:
        raise GbfsError(f"gbfs: no language {lang!r} (offered: {', '.join(languages)})")
    return _feed_urls(data[chosen]["feeds"]), chosen


def _feed_urls(feeds: Any) -> dict[str, str]:
    urls: dict[str, str] = {}
    for item in feeds if isinstance(feeds, list) else []:
        if isinstance(item, dict) and item.get("name") and item.get("url"):
            urls[str(item["name"])] = str(item["url"])
    return urls


def resolve_feed(base: str, name: str, url: str) -> str:
    """Where to read feed ``name`` listed by the discovery file at ``base``.

    A local discovery file prefers a sibling ``{name}.json`` (a saved feed set
    keeps the operator's URLs), and falls back to the URL; a remote one joins
    relative URLs to its own.
    """
    if is_url(base):
        return urljoin(base, url)
    sibling = Path(base).parent / f"{name}.json"
    if sibling.is_file():
        return str(sibling)
    return url if is_url(url) else str(Path(base).parent / url)


def load_feed_set(
    location: str, *, lang: str | None = None, read: Reader = read_location
) -> FeedSet:
    """Read a feed set from a discovery file or URL, a directory, or one feed file."""
    if not is_url(location) and Path(location).is_dir():
        return _load_directory(Path(location), lang, read)
    document = parse_json(read(location), location)
    data = document.get("data") if isinstance(document, dict) else None
    name = guess_feed_name(data) if isinstance(data, dict) else None
    if name == "gbfs":
        return _load_discovery(location, data or {}, lang, read)
    feed = feed_from_document(name or Path(urlsplit(location).path).stem, document)
    if feed.name not in WANTED_FEEDS:
        raise GbfsError(f"{location}: not a GBFS feed this importer reads")
    return FeedSet(feeds={feed.name: feed}, lang=lang)


def _load_discovery(
    location: str, data: Mapping[str, Any], lang: str | None, read: Reader
) -> FeedSet:
    urls, chosen = discovery_feed_urls(data, lang)
    feeds = {}
    for name in WANTED_FEEDS:
        if name in urls:
            where = resolve_feed(location, name, urls[name])
            feeds[name] = feed_from_document(name, parse_json(read(where), where))
    if not feeds:
        raise GbfsError(f"{location}: the discovery file lists none of {', '.join(WANTED_FEEDS)}")
    return FeedSet(feeds=feeds, lang=chosen)


def _load_directory(directory: Path, lang: str | None, read: Reader) -> FeedSet:
    discovery = directory / "gbfs.json"
    if discovery.is_file():
        return load_feed_set(str(discovery), lang=lang, read=read)
    feeds = {}
    for path in sorted(directory.glob("*.json")):
        document = parse_json(read(str(path)), str(path))
        data = document.get("data") if isinstance(document, dict) else None
        name = path.stem if path.stem in WANTED_FEEDS else None
        name = name or (guess_feed_name(data) if isinstance(data, dict) else None)
        if name in WANTED_FEEDS and name not in feeds:
            feeds[name] = feed_from_document(name, document)
    if not feeds:
        raise GbfsError(f"{directory}: no GBFS feed files")
    return FeedSet(feeds=feeds, lang=lang)


# --- entities ----------------------------------------------------------------


def records(feed: Feed | None, key: str) -> Iterator[Mapping[str, Any]]:
    """The objects in ``feed.data[key]``; anything that is not an object is skipped."""
    items = feed.data.get(key) if feed else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            yield item


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


def station_type_counts(
    status: Mapping[str, Any], types: Mapping[str, Mapping[str, Any]]
) -> dict[str, int]:
    """E-bikes and scooters available at a station.

    From ``vehicle_types_available`` and the vehicle types when the feed has
    them (the spec's way); else from the ``num_ebikes_available`` /
    ``num_scooters_available`` fields some operators add.
    """
    available = list(records_of(status.get("vehicle_types_available")))
    if available and types:
        ebikes = scooters = 0
        for item in available:
            vehicle_type = types.get(str(item.get("vehicle_type_id")), {})
            count = as_count(item.get("count")) or 0
            ebikes += count if is_ebike(vehicle_type) else 0
            scooters += count if is_scooter(vehicle_type) else 0
        return {"ebikes_available": ebikes, "scooters_available": scooters}
    counts = {}
    for key, name in (
        ("num_ebikes_available", "ebikes_available"),
        ("num_scooters_available", "scooters_available"),
    ):
        if as_count(status.get(key)) is not None:
            counts[name] = as_count(status.get(key)) or 0
    return counts


def records_of(value: Any) -> Iterator[Mapping[str, Any]]:
    """The objects of a JSON list (anything else yields nothing)."""
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            yield item


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
        result = station_entity(info, status, feed_set, types, source, mini_app)
        _collect(parsed, "station_information", native, result)
        seen.add(native)
    for native in sorted(statuses.keys() - seen):
        parsed.rejected.append(Rejected("station_status", native, "no station_information"))
    return parsed


def _collect(parsed: Parsed, feed: str, native: str, result: Entity | str) -> None:
    if isinstance(result, Entity):
        parsed.entities.append(result)
    else:
        parsed.rejected.append(Rejected(feed, native, result))


def station_entity(
    info: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    feed_set: FeedSet,
    types: Mapping[str, Mapping[str, Any]],
    source: str,
    mini_app: str,
) -> Entity | str:
    """One station as an entity, or the reason it cannot be one."""
    native = str(info.get("station_id", ""))
    where = point(info)
    if not native:
        return "no station_id"
    if where is None:
        return "no valid lat/lon"
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
    capacity = as_count(info.get("capacity"))
    return Entity(
        id=f"{source}:station:{native}",
        kind="bike",
        lat=where[0],
        lng=where[1],
        name=localized(info.get("name"), feed_set.lang),
        category="bike_station",
        mini_app=mini_app,
        available=available,
        capacity=capacity,
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
        result = vehicle_entity(vehicle, native, feed, types, feed_set.lang, source, mini_app)
        _collect(parsed, feed.name, native, result)
    return parsed


def vehicle_entity(
    vehicle: Mapping[str, Any],
    native: str,
    feed: Feed,
    types: Mapping[str, Mapping[str, Any]],
    lang: str | None,
    source: str,
    mini_app: str,
) -> Entity | str:
    """One free vehicle as an entity (available 1 unless reserved or disabled), or why not."""
    where = point(vehicle)
    if not native:
        return "no vehicle id"
    if where is None:
        return "no valid lat/lon"
    reserved, disabled = as_bool(vehicle.get("is_reserved")), as_bool(vehicle.get("is_disabled"))
    attrs: dict[str, Any] = {"is_reserved": reserved, "is_disabled": disabled}
    type_id = vehicle.get("vehicle_type_id")
    vehicle_type = types.get(str(type_id), {}) if type_id is not None else {}
    if type_id is not None:
        attrs["vehicle_type_id"] = str(type_id)
    for key in ("form_factor", "propulsion_type"):
        if vehicle_type.get(key):
            attrs[key] = vehicle_type[key]
    range_m = as_float(vehicle.get("current_range_meters"))
    if range_m is not None:
        attrs["current_range_m"] = range_m
    name = localized(vehicle_type.get("name"), lang) or vehicle_label(vehicle_type)
    return Entity(
        id=f"{source}:vehicle:{native}",
        kind="bike",
        lat=where[0],
        lng=where[1],
        name=name,
        category="free_bike",
        mini_app=mini_app,
        available=0 if reserved or disabled else 1,
        capacity=1,
        attrs=attrs,
        seen_at=parse_time(vehicle.get("last_reported")) or feed.last_updated,
    )


def feed_set_to_entities(feed_set: FeedSet, *, source: str | None = None) -> Parsed:
    """Every station and free vehicle of ``feed_set`` as entities of ``source``.

    ``source`` defaults to the system id; ``mini_app`` is always the system id
    (``source`` when the set has no ``system_information``).
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
