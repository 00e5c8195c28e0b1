"""Open Charge Map POIs to charger entities.

A POI has no live status per point: ``capacity`` is its ``NumberOfPoints``
(else the sum of its connections' quantities), ``available`` that number when
the POI is operational, 0 when it is not, empty when its status is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from indexer.model import Entity
from indexer.sources.rejects import ChargerFeedError, InvalidEntity
from indexer.sources.values import as_bool, as_count, as_float, lat_lng, objects, parse_time, slug

#: ``AddressInfo`` fields kept in ``attrs``, and their names there.
ADDRESS_ATTRS = (("AddressLine1", "address"), ("Town", "city"), ("Postcode", "postal_code"))


def ocm_pois(document: Any) -> list[Mapping[str, Any]]:
    """The POIs of an Open Charge Map answer (a list; one POI object is accepted too).

    Raises
    ------
    ChargerFeedError
        The document is neither.
    """
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


def ocm_available(capacity: int | None, operational: bool | None) -> int | None:
    """Every point when operational, none when not, unknown when either is."""
    if operational is None or capacity is None:
        return None
    return capacity if operational else 0


def ocm_operator(poi: Mapping[str, Any]) -> str:
    """The operator's title, or "" when unknown."""
    operator = poi.get("OperatorInfo")
    return str(operator.get("Title") or "") if isinstance(operator, dict) else ""


def ocm_address(poi: Mapping[str, Any]) -> Mapping[str, Any]:
    """The POI's ``AddressInfo`` (empty when it has none)."""
    address = poi.get("AddressInfo")
    return address if isinstance(address, dict) else {}


def ocm_attrs(
    address: Mapping[str, Any],
    connections: list[dict[str, Any]],
    operational: bool | None,
    operator: str,
) -> dict[str, Any]:
    """A POI's connections, whether it is operational, its address and operator."""
    attrs: dict[str, Any] = {"connections": connections, "operational": operational}
    attrs.update((name, address[key]) for key, name in ADDRESS_ATTRS if address.get(key))
    if operator:
        attrs["operator"] = operator
    return attrs


def ocm_entity(poi: Mapping[str, Any], source: str) -> Entity:
    """One Open Charge Map POI as a charger.

    Raises
    ------
    InvalidEntity
        The POI has neither ``ID`` nor ``UUID``, or no valid latitude and longitude.
    """
    native = str(poi.get("ID") or poi.get("UUID") or "")
    address = ocm_address(poi)
    where = lat_lng(address.get("Latitude"), address.get("Longitude"))
    if not native:
        raise InvalidEntity("no ID")
    if where is None:
        raise InvalidEntity("no valid AddressInfo Latitude/Longitude")
    connections = [ocm_connection(c) for c in objects(poi.get("Connections"))]
    capacity = ocm_capacity(poi, connections)
    operational = ocm_operational(poi)
    operator = ocm_operator(poi)
    seen = poi.get("DateLastStatusUpdate") or poi.get("DateLastVerified") or poi.get("DateCreated")
    return Entity(
        id=f"{source}:{native}",
        kind="charger",
        lat=where[0],
        lng=where[1],
        name=str(address.get("Title") or ""),
        category="ev_charger",
        mini_app=slug(operator),
        available=ocm_available(capacity, operational),
        capacity=capacity,
        attrs=ocm_attrs(address, connections, operational, operator),
        seen_at=parse_time(seen),
    )


def ocm_makers(
    pois: list[Mapping[str, Any]], source: str
) -> Iterator[tuple[str, Callable[[], Entity]]]:
    """Each POI's ``ID`` and the call that makes its entity, in feed order."""
    for poi in pois:
        yield str(poi.get("ID") or ""), partial(ocm_entity, poi, source)
