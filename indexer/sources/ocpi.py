"""OCPI 2.2.1 ``locations`` to charger entities.

A location becomes one ``charger`` entity: ``capacity`` is its EVSEs (those not
REMOVED), ``available`` those with status AVAILABLE; ``mini_app`` is the slug of
its operator's name, else its party (``{country_code}-{party_id}``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from indexer.model import Entity
from indexer.sources.rejects import ChargerFeedError, InvalidEntity
from indexer.sources.values import as_bool, as_float, lat_lng, objects, parse_time, slug

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
#: Location fields kept in ``attrs`` as they are.
LOCATION_ATTRS = ("address", "city", "postal_code", "country", "time_zone")


def ocpi_locations(document: Any) -> list[Mapping[str, Any]]:
    """The locations of a module response ``{data: [...]}`` or of a bare list.

    Raises
    ------
    ChargerFeedError
        The document is neither.
    """
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


def ocpi_operator(location: Mapping[str, Any]) -> str:
    """The operator's name, or "" when unknown."""
    operator = location.get("operator")
    return str(operator.get("name") or "") if isinstance(operator, dict) else ""


def ocpi_attrs(
    location: Mapping[str, Any],
    statuses: Counter[str],
    connectors: list[dict[str, Any]],
    operator: str,
) -> dict[str, Any]:
    """A location's EVSE statuses, connectors, address, time zone and operator."""
    attrs: dict[str, Any] = {"statuses": dict(sorted(statuses.items())), "connectors": connectors}
    attrs.update((key, location[key]) for key in LOCATION_ATTRS if location.get(key))
    if operator:
        attrs["operator"] = operator
    return attrs


def ocpi_point(location: Mapping[str, Any]) -> tuple[float, float]:
    """(lat, lng) of a location.

    Raises
    ------
    InvalidEntity
        The location has no valid coordinates.
    """
    coordinates = location.get("coordinates")
    where = None
    if isinstance(coordinates, dict):
        where = lat_lng(coordinates.get("latitude"), coordinates.get("longitude"))
    if where is None:
        raise InvalidEntity("no valid coordinates")
    return where


def ocpi_entity(location: Mapping[str, Any], source: str, *, with_party: bool) -> Entity:
    """One OCPI location as a charger.

    Location ids are unique per party: the id carries the party only when
    ``with_party`` (a feed that mixes parties, as a hub's does).

    Raises
    ------
    InvalidEntity
        The location has no id, no valid coordinates, or is not published.
    """
    native = str(location.get("id") or "")
    if not native:
        raise InvalidEntity("no id")
    lat, lng = ocpi_point(location)
    if "publish" in location and not as_bool(location["publish"]):
        raise InvalidEntity("not published")
    statuses, connectors = ocpi_evses(location)
    operator = ocpi_operator(location)
    party = ocpi_party(location)
    return Entity(
        id=f"{source}:{party}:{native}" if with_party else f"{source}:{native}",
        kind="charger",
        lat=lat,
        lng=lng,
        name=str(location.get("name") or ""),
        category="ev_charger",
        mini_app=slug(operator) or party,
        available=statuses["AVAILABLE"],
        capacity=sum(statuses.values()),
        attrs=ocpi_attrs(location, statuses, connectors, operator),
        seen_at=parse_time(location.get("last_updated")),
    )


def ocpi_makers(
    locations: list[Mapping[str, Any]], source: str
) -> Iterator[tuple[str, Callable[[], Entity]]]:
    """Each location's id and the call that makes its entity, in feed order.

    The ids carry the party when the locations are of more than one.
    """
    mixed = len({ocpi_party(location) for location in locations}) > 1
    for location in locations:
        yield (
            str(location.get("id") or ""),
            partial(ocpi_entity, location, source, with_party=mixed),
        )
