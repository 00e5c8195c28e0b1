"""Charger feeds to entities: OCPI 2.2.1 ``locations`` (:mod:`~indexer.sources.ocpi`)
and Open Charge Map POIs (:mod:`~indexer.sources.ocm`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from indexer.model import Entity
from indexer.sources.ocm import ocm_makers, ocm_pois
from indexer.sources.ocpi import ocpi_default_source, ocpi_locations, ocpi_makers
from indexer.sources.rejects import ChargerFeedError, InvalidEntity, Parsed

FORMATS = ("ocpi", "ocm")


def chargers_to_entities(document: Any, fmt: str, *, source: str | None = None) -> Parsed:
    """Entities and rejects of a decoded OCPI (``fmt="ocpi"``) or OCM (``"ocm"``) document.

    ``source`` defaults to the OCPI party ("ocpi-us-nrl") or "ocm". Each entity id
    is kept once: a later record of it is rejected as a duplicate.

    Raises
    ------
    ChargerFeedError
        An unknown format, or a document that is not a feed of the format.
    """
    if fmt == "ocpi":
        locations = ocpi_locations(document)
        makers = ocpi_makers(locations, source or ocpi_default_source(locations))
    elif fmt == "ocm":
        makers = ocm_makers(ocm_pois(document), source or "ocm")
    else:
        raise ChargerFeedError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    parsed = Parsed()
    seen: set[str] = set()
    for native, make in makers:
        parsed.add(fmt, native, first_of_its_id, make, seen)
    return parsed


def first_of_its_id(make: Callable[[], Entity], seen: set[str]) -> Entity:
    """The entity ``make()`` returns, its id added to ``seen``.

    Raises
    ------
    InvalidEntity
        ``make`` refuses the record, or its entity's id is in ``seen`` already.
    """
    entity = make()
    if entity.id in seen:
        raise InvalidEntity("duplicate id")
    seen.add(entity.id)
    return entity
