"""Store listings as records: what every listing reader yields, and a record's store.

A reader (:mod:`~indexer.sources.csv`, :mod:`~indexer.sources.geojson`,
:mod:`~indexer.sources.ndjson`, :mod:`~indexer.sources.osm`) yields one
:class:`Record` at a time, so memory does not grow with the file. A problem with
the input as a whole raises :class:`~indexer.sources.rejects.UnreadableInput`;
a problem with one record becomes a reason to reject that record alone
(:func:`record_to_entity`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import opening_hours

from indexer.model import Entity
from indexer.sources.rejects import InvalidEntity
from indexer.sources.values import as_text, parse_point

#: The fields of a listing and the names they go by, first match wins. Headers
#: and keys match case-insensitively; anything else goes to ``attrs``.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "id": ("id",),
    "name": ("name",),
    "lat": ("lat", "latitude"),
    "lng": ("lng", "lon", "long", "longitude"),
    "category": ("category",),
    "mini_app": ("mini_app", "brand:wikidata", "brand"),
    "popularity": ("popularity",),
    "opening_hours": ("opening_hours",),
}


# Not frozen: one is made per input row, and a frozen dataclass's __init__ costs
# three times as much. Nothing changes a record once read.
@dataclass(slots=True)
class Record:
    """One record of a listing as read, before validation.

    ``position`` is the line (CSV, NDJSON) or feature (GeoJSON) number, from 1;
    ``fields`` holds the known fields by their canonical name (raw values);
    ``reduced`` says a polygon or line was replaced by its representative point;
    ``problem`` is a reason to reject found while reading (e.g. a broken geometry);
    ``raw`` is what the input held, for the rejects file.
    """

    position: int
    fields: Mapping[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    reduced: bool = False
    problem: str | None = None
    raw: Any = None


def keyed_fields(
    values: Mapping[str, Any], columns: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split an object's keys into known fields (by the ``columns`` mapping, else alias) and attrs.

    A key whose value is None or empty gives no field; an empty value no attr either.
    """
    folded = {str(key).lower(): key for key in reversed(list(values))}
    fields: dict[str, Any] = {}
    used: set[str] = set()
    for name, aliases in ALIASES.items():
        candidates = [columns[name]] if name in columns else [folded.get(a) for a in aliases]
        key = _first_filled(values, candidates)
        if key is not None:
            fields[name] = values[key]
            used.add(key)
    attrs = {key: value for key, value in values.items() if key not in used and value != ""}
    return fields, attrs


def _first_filled(values: Mapping[str, Any], keys: list[Any]) -> Any:
    for key in keys:
        if key is not None and key in values and values[key] not in (None, ""):
            return key
    return None


def entity_id(source: str, native_id: Any) -> str:
    """The entity id of a listed id: ``{source}:{id}``, or the id itself if it has a namespace.

    An id that already holds a ``:`` (``osm:node/5``) is taken as a full id.
    """
    text = "" if native_id is None else str(native_id).strip()
    if not text or ":" in text:
        return text
    return f"{source}:{text}"


def parse_popularity(value: Any) -> float:
    """Parse a popularity: empty is 0; negative, NaN or infinite is refused."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        if value is None or (isinstance(value, str) and not value.strip()):
            return 0.0
        raise InvalidEntity(f"unparseable popularity {value!r}") from exc
    if not math.isfinite(number):
        raise InvalidEntity("popularity is NaN or infinite")
    if number < 0:
        raise InvalidEntity(f"negative popularity {number}")
    return number


@lru_cache(maxsize=65536)
def _valid_hours(text: str) -> bool:
    # Listings repeat a few hour strings many times; parsing costs ~20 µs each.
    return bool(opening_hours.validate(text))


def parse_opening_hours(value: Any) -> str | None:
    """Return OSM ``opening_hours`` text if it parses; empty is None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if not _valid_hours(text):
        raise InvalidEntity(f"unparseable opening_hours {text!r}")
    return text


def record_to_entity(record: Record, source: str) -> Entity:
    """Validate a record and make the store it lists.

    Raises
    ------
    InvalidEntity
        With the reason to reject it: an empty id, missing, unparseable or out-of-range
        coordinates, a negative popularity, unparseable opening hours, and the like.
    """
    fields = record.fields
    if record.problem:
        raise InvalidEntity(record.problem)
    identifier = entity_id(source, fields.get("id"))
    if not identifier:
        raise InvalidEntity("empty id")
    lat, lng = parse_point(fields.get("lat"), fields.get("lng"))
    # Every rule of the entities table holds by now (the id, parse_point's finite
    # and in-range point, parse_popularity's): an import checks each row only once.
    return Entity(
        id=identifier,
        kind="store",
        lat=lat,
        lng=lng,
        name=as_text(fields.get("name")),
        category=as_text(fields.get("category")),
        mini_app=as_text(fields.get("mini_app")),
        popularity=parse_popularity(fields.get("popularity")),
        opening_hours=parse_opening_hours(fields.get("opening_hours")),
        attrs=record.attrs,
    )
