"""What a nearby query asks, and the filters every path applies the same way.

Pure: no Flask, Redis or SQL.  The search paths (Redis, PostGIS) and the
brute-force reference all filter through :func:`passes` or its Lua twin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import opening_hours

from indexer.model import LIVE_KINDS

SortKey = tuple[float, float, bytes]


@dataclass(frozen=True, slots=True)
class StaleLimits:
    """Staleness limits in seconds: per live kind, and per-source overrides."""

    by_kind: Mapping[str, int] = field(default_factory=dict)
    by_source: Mapping[str, int] = field(default_factory=dict)

    def cutoff_s(self, source: str, kind: str, now_s: float) -> float | None:
        """Epoch seconds before which an entity counts as stale (None: never stale)."""
        if kind not in self.by_kind:
            return None
        return now_s - self.by_source.get(source, self.by_kind[kind])


@dataclass(frozen=True, slots=True)
class NearbyQuery:
    """One nearby query, parsed and validated (see discovery.search.params)."""

    lat: float
    lng: float
    radius_m: float = 1000.0
    kinds: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    mini_apps: tuple[str, ...] = ()
    available: bool = False
    open_now: bool = False
    group: str | None = None
    sort: str = "score"
    scale_m: float = 500.0
    popularity_weight: float = 1.0
    limit: int = 20
    after: SortKey | None = None
    explain: bool = False
    #: Request time in epoch seconds: staleness and open_now are judged at it.
    now_s: float = 0.0
    stale: StaleLimits = field(default_factory=StaleLimits)

    def identity(self) -> str:
        """What the query asks, as text (page size, cursor, explain and time left out)."""
        parts = (
            repr(self.lat),
            repr(self.lng),
            repr(self.radius_m),
            ",".join(self.kinds),
            ",".join(self.categories),
            ",".join(self.mini_apps),
            str(self.available),
            str(self.open_now),
            str(self.group),
            self.sort,
            repr(self.scale_m),
            repr(self.popularity_weight),
        )
        return "\x1f".join(parts)


@dataclass(frozen=True, slots=True)
class Candidate:
    """What filtering and ranking read of an entity (the brute force and PostGIS build these)."""

    id: str
    lat: float
    lng: float
    kind: str
    popularity: float = 0.0
    mini_app: str = ""
    category: str = ""
    available: int | None = None
    source: str = ""
    #: Epoch seconds, or None when never confirmed by a feed.
    seen_at_s: float | None = None
    doc: dict[str, Any] = field(default_factory=dict, compare=False)


def is_stale(query: NearbyQuery, candidate: Candidate) -> bool:
    """True when a live entity was last seen before its staleness cutoff."""
    cutoff = query.stale.cutoff_s(candidate.source, candidate.kind, query.now_s)
    return cutoff is not None and candidate.seen_at_s is not None and candidate.seen_at_s < cutoff


def passes(query: NearbyQuery, candidate: Candidate) -> bool:
    """Every filter of ``query`` (open_now included) on one candidate."""
    if query.kinds and candidate.kind not in query.kinds:
        return False
    if query.categories and candidate.category not in query.categories:
        return False
    if query.mini_apps and candidate.mini_app not in query.mini_apps:
        return False
    if query.available and not (candidate.available or 0) >= 1:
        return False
    if is_stale(query, candidate):
        return False
    return not query.open_now or is_open(candidate.doc, query.now_s)


@lru_cache(maxsize=65536)
def _hours(expression: str) -> opening_hours.OpeningHours | None:
    try:
        return opening_hours.OpeningHours(expression)
    except (SyntaxError, ValueError):
        return None


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return None


def is_open(doc: Mapping[str, Any], now_s: float) -> bool:
    """Whether an entity (its display document) is open at ``now_s``, in its own time zone.

    Entities with opening hours are open when the hours say so (an unknown or
    unparsable state counts as closed).  Without hours, stores count as closed
    (we cannot claim they are open) and bikes and chargers as always open.
    """
    expression = doc.get("opening_hours")
    if not expression:
        return doc.get("kind") in LIVE_KINDS
    hours = _hours(expression)
    zone = _zone(doc.get("tz") or "UTC")
    if hours is None or zone is None:
        return False
    local = datetime.fromtimestamp(now_s, UTC).astimezone(zone).replace(tzinfo=None)
    try:
        return bool(hours.is_open(local))
    except (ValueError, OverflowError):
        return False
