"""Charger feeds to entities: OCPI 2.2.1 ``locations`` and Open Charge Map POIs.

An OCPI location becomes one ``charger`` entity: ``capacity`` is its EVSEs
(those not REMOVED), ``available`` those with status AVAILABLE. An Open Charge
Map POI has no live status per point: ``capacity`` is its ``NumberOfPoints``
(else the sum of its connections' quantities), ``available`` that number when
the POI is operational, 0 when it is not, empty when its status is unknown.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from indexer.model import Entity, normalize_lng
from indexer.sources.gbfs import Parsed, Rejected, as_bool, as_count, as_float, parse_time

FORMATS = ("ocpi", "ocm")
#: OCPI EVSE statuses (2.2.1 §8.4.22); REMOVED EVSEs no longer count as points.
EVSE_STATUSES = (
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
)


class ChargerFeedError(ValueError):
    """The document is not a feed of the format asked for."""


def slug(text: str) -> str:
    """Lowercase ASCII slug of a network name: "Shell Recharge" -> "shell-recharge"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def lat_lng(lat: Any, lng: Any) -> tuple[float, float] | None:
    """(lat, lng) from numbers or numeric strings, or None when out of range."""
    lat_f, lng_f = as_float(lat), as_float(lng)
    if lat_f is None or lng_f is None:
        return None
    if not -90.0 <= lat_f <= 90.0 or not -180.0 <= lng_f <= 180.0:
        return None
    return lat_f, normalize_lng(lng_f)


def objects(value: Any) -> Iterator[Mapping[str, Any]]:
    """The objects of a JSON list (anything else yields nothing)."""
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            yield item


# --- OCPI 2.2.1 -------------------------------------------------------------


def ocpi_locations(document: Any) -> list[Mapping[str, Any]]:
    """The locations of a module response ``{data: [...]}`` or of a bare list."""
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        return list(objects(document["data"]))
    if isinstance(document, dict) and isinstance(document.get("data"), dict):
        return [document["data"]]
    if isinstance(document, list):
        return list(objects(document))
    raise ChargerFeedError("not an OCPI locations response: expected {data: [...]} or a list")


def ocpi_party(location: Mapping[str, Any]) -> str:
    """``{country_code}-{party_id}`` lowercased ("us-nrl"), or "" when unknown."""
    country, party = location.get("country_code"), location.get("party_id")
    return slug(f"{country}-{party}") if country and party else ""


def ocpi_default_source(locations: list[Mapping[str, Any]]) -> str:
    """The party of the locations when they share one ("ocpi-us-nrl"), else "ocpi"."""
    parties = {ocpi_party(location) for location in locations}
    party = parties.pop() if len(parties) == 1 else ""
    return f"ocpi-{party}" if party else "ocpi"


def ocpi_connector(connector: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a connector a person choosing a charger cares about."""
    out: dict[str, Any] = {}
    for key in ("standard", "format", "power_type"):
        if connector.get(key):
            out[key] = str(connector[key])
    power_w = as_float(connector.get("max_electric_power"))
    if power_w is None:
        volts, amps = (
            as_float(connector.get("max_voltage")),
            as_float(connector.get("max_amperage")),
        )
        power_w = volts * amps if volts is not None and amps is not None else None
    if power_w is not None:
        out["max_power_kw"] = round(power_w / 1000.0, 1)
    return out


def ocpi_evses(location: Mapping[str, Any]) -> tuple[Counter[str], list[dict[str, Any]]]:
    """EVSE status counts (REMOVED ones left out) and the distinct connectors."""
    statuses: Counter[str] = Counter()
    connectors: list[dict[str, Any]] = []
    for evse in objects(location.get("evses")):
        status = str(evse.get("status") or "UNKNOWN").upper()
        if status == "REMOVED":
            continue
        statuses[status if status in EVSE_STATUSES else "UNKNOWN"] += 1
        for connector in objects(evse.get("connectors")):
            described = ocpi_connector(connector)
            if described not in connectors:
                connectors.append(described)
    return statuses, connectors


def ocpi_entity(location: Mapping[str, Any], source: str, *, with_party: bool) -> Entity | str:
    """One OCPI location as a charger, or the reason it cannot be one.

    Location ids are unique per party: the id carries the party only when
    ``with_party`` (a feed that mixes parties, as a hub's does).
    """
    native = str(location.get("id") or "")
    coordinates = location.get("coordinates")
    where = None
    if isinstance(coordinates, dict):
        where = lat_lng(coordinates.get("latitude"), coordinates.get("longitude"))
    if not native:
        return "no id"
    if where is None:
        return "no valid coordinates"
    if "publish" in location and not as_bool(location["publish"]):
        return "not published"
    statuses, connectors = ocpi_evses(location)
    operator = location.get("operator")
    operator_name = str(operator.get("name") or "") if isinstance(operator, dict) else ""
    party = ocpi_party(location)
    attrs: dict[str, Any] = {"statuses": dict(sorted(statuses.items())), "connectors": connectors}
    for key in ("address", "city", "postal_code", "country", "time_zone"):
        if location.get(key):
            attrs[key] = location[key]
    if operator_name:
        attrs["operator"] = operator_name
    return Entity(
        id=f"{source}:{party}:{native}" if with_party else f"{source}:{native}",
        kind="charger",
        lat=where[0],
        lng=where[1],
        name=str(location.get("name") or ""),
        category="ev_charger",
        mini_app=slug(operator_name) or party,
        available=statuses["AVAILABLE"],
        capacity=sum(statuses.values()),
        attrs=attrs,
        seen_at=parse_time(location.get("last_updated")),
    )


# --- Open Charge Map --------------------------------------------------------


def ocm_pois(document: Any) -> list[Mapping[str, Any]]:
    """The POIs of an Open Charge Map answer (a list; one POI object is accepted too)."""
    if isinstance(document, list):
        return list(objects(document))
    if isinstance(document, dict) and "AddressInfo" in document:
        return [document]
    raise ChargerFeedError("not Open Charge Map POI JSON: expected a list of POIs")


def ocm_connection(connection: Mapping[str, Any]) -> dict[str, Any]:
    """Type, power, quantity and status of one OCM connection."""
    out: dict[str, Any] = {"quantity": as_count(connection.get("Quantity")) or 1}
    kind = connection.get("ConnectionType")
    if isinstance(kind, dict) and kind.get("Title"):
        out["type"] = str(kind["Title"])
    power_kw = as_float(connection.get("PowerKW"))
    if power_kw is not None:
        out["power_kw"] = power_kw
    status = connection.get("StatusType")
    if isinstance(status, dict) and status.get("Title"):
        out["status"] = str(status["Title"])
    return out


def ocm_operational(poi: Mapping[str, Any]) -> bool | None:
    """``StatusType.IsOperational`` of a POI (None when the POI does not say)."""
    status = poi.get("StatusType")
    if isinstance(status, dict) and status.get("IsOperational") is not None:
        return as_bool(status["IsOperational"])
    return None


def ocm_capacity(poi: Mapping[str, Any], connections: list[dict[str, Any]]) -> int | None:
    """``NumberOfPoints``, else the sum of the connections' quantities, else None."""
    points = as_count(poi.get("NumberOfPoints"))
    if points is not None:
        return points
    return sum(c["quantity"] for c in connections) if connections else None


def ocm_operator(poi: Mapping[str, Any]) -> str:
    """The operator's title, or "" when unknown."""
    operator = poi.get("OperatorInfo")
    return str(operator.get("Title") or "") if isinstance(operator, dict) else ""


def ocm_entity(poi: Mapping[str, Any], source: str) -> Entity | str:
    """One Open Charge Map POI as a charger, or the reason it cannot be one."""
    native = str(poi.get("ID") or poi.get("UUID") or "")
    address = poi.get("AddressInfo")
    address = address if isinstance(address, dict) else {}
    where = lat_lng(address.get("Latitude"), address.get("Longitude"))
    if not native:
        return "no ID"
    if where is None:
        return "no valid AddressInfo Latitude/Longitude"
    connections = [ocm_connection(c) for c in objects(poi.get("Connections"))]
    capacity = ocm_capacity(poi, connections)
    operational = ocm_operational(poi)
    available = None
    if operational is not None and capacity is not None:
        available = capacity if operational else 0
    operator = ocm_operator(poi)
    attrs: dict[str, Any] = {"connections": connections, "operational": operational}
    for key, name in (("AddressLine1", "address"), ("Town", "city"), ("Postcode", "postal_code")):
        if address.get(key):
            attrs[name] = address[key]
    if operator:
        attrs["operator"] = operator
    seen = poi.get("DateLastStatusUpdate") or poi.get("DateLastVerified") or poi.get("DateCreated")
    return Entity(
        id=f"{source}:{native}",
        kind="charger",
        lat=where[0],
        lng=where[1],
        name=str(address.get("Title") or ""),
        category="ev_charger",
        mini_app=slug(operator),
        available=available,
        capacity=capacity,
        attrs=attrs,
        seen_at=parse_time(seen),
    )


# --- both -------------------------------------------------------------------


def chargers_to_entities(document: Any, fmt: str, *, source: str | None = None) -> Parsed:
    """Entities and rejects of a decoded OCPI (``fmt="ocpi"``) or OCM (``"ocm"``) document.

    ``source`` defaults to the OCPI party ("ocpi-us-nrl") or "ocm".
    """
    if fmt == "ocpi":
        records = ocpi_locations(document)
        source = source or ocpi_default_source(records)
        mixed = len({ocpi_party(r) for r in records}) > 1
        results = [
            (str(r.get("id") or ""), ocpi_entity(r, source, with_party=mixed)) for r in records
        ]
    elif fmt == "ocm":
        records = ocm_pois(document)
        source = source or "ocm"
        results = [(str(r.get("ID") or ""), ocm_entity(r, source)) for r in records]
    else:
        raise ChargerFeedError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    parsed = Parsed()
    seen: set[str] = set()
    for native, result in results:
        if isinstance(result, Entity) and result.id in seen:
            result = "duplicate id"
        if isinstance(result, Entity):
            seen.add(result.id)
            parsed.entities.append(result)
        else:
            parsed.rejected.append(Rejected(fmt, native, result))
    return parsed
