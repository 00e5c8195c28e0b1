"""Value types and constants shared by every part of the index.

Coordinates are (lat, lng) everywhere in Python; lng comes first only inside
GeoJSON, WKT and PostGIS calls, and those crossings name their arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = ("store", "bike", "charger")
LIVE_KINDS = ("bike", "charger")

#: The resolution of the ``h3`` column: every coarser index cell derives from it.
BASE_RES = 9
#: Resolutions that the hot index keeps a popularity-ordered set for; a query
#: picks one of them by its radius (coarser for larger circles).  Res 11 (~25 m
#: edges) serves small circles and the first stage of sort=distance: in the
#: densest districts a res-9 cell holds thousands of entities, a res-11 cell
#: tens.  Changing this tuple changes the Redis layout: run `nearby cache
#: rebuild` after deploying such a change.
INDEX_RESOLUTIONS = (5, 7, 9, 11)
#: Redis keys are grouped under the hash tag of this coarse parent cell, so that
#: one group's keys live on one Redis Cluster slot.
TAG_RES = 3


# Not frozen: imports make one per row, and a frozen dataclass's __init__ costs
# far more. Nothing changes an entity once made.
@dataclass(slots=True)
class Entity:
    """One thing that can be found: a store, a bike (station or vehicle) or a charger.

    ``id`` is ``{source}:{native id}``; ``popularity`` is non-negative;
    ``available`` / ``capacity`` are set for bikes and chargers only;
    ``seen_at`` is the last time a live feed confirmed it (None for stores).
    """

    id: str
    kind: str
    lat: float
    lng: float
    name: str = ""
    category: str = ""
    mini_app: str = ""
    popularity: float = 0.0
    available: int | None = None
    capacity: int | None = None
    opening_hours: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    seen_at: datetime | None = None


def normalize_lng(lng: float) -> float:
    """Map a longitude in [-180, 180] to [-180, 180): 180 becomes -180."""
    return -180.0 if lng == 180.0 else lng


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as PostgreSQL text, or None when it can.

    PostgreSQL text holds no NUL, and UTF-8 has no lone surrogates (which a
    JSON ``\\ud800`` escape yields in Python).
    """
    if "\x00" in text:
        return "must not contain NUL (U+0000)"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "must not contain a lone surrogate"
    return None
