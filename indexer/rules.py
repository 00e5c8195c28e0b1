"""The rules every search path applies: distance, score, order, filters and staleness.

Each rule is defined here once.  The PostGIS path runs the SQL fragments below,
built from the same constants and spelt with the same operations in the same
order; ``discovery/search/nearby.lua`` repeats distance, score and filters in
Lua (a Redis script cannot import them).  Both copies give these functions'
doubles bit for bit (one libm: sin, cos, atan2, sqrt, pow and log), and
``tests/discovery/search/test_rules_agree.py`` holds them to it.

Distance is the haversine on h3's sphere.  The score is a Gaussian decay of
the distance (1 at the point, 0.5 at the scale) times a popularity boost.
Orders are total, so pages are stable: ``score`` sorts by score descending,
then distance ascending, then id; ``popularity`` by popularity descending, then
distance, then id; ``distance`` by distance, then id.  Ids compare as UTF-8
bytes, never by a locale's collation.  What an order ranks by before the
distance is its lead (:func:`lead_of`): the score, the popularity, or nothing.

The popularity an entity ranks by at time ``t`` is its listed popularity plus
its usage: ``listed + mass · 2^(−(t − T0)/h)`` (:func:`popularity_now`), where
the mass sums its events' weights against the epoch ``T0``
(:mod:`indexer.store.usage`) and ``h`` is the half-life: each event of weight
``w`` at time ``at`` counts ``w · 2^(−(t − at)/h)``.  A query computes the factor
``2^(−(t − T0)/h)`` once (:func:`usage_factor`) for the time it states.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import opening_hours

from indexer.model import LIVE_KINDS

#: Mean earth radius that h3.great_circle_distance uses, in kilometres.
EARTH_RADIUS_KM = 6371.007180918475
#: The same in metres: every distance in the service is measured on this sphere.
EARTH_RADIUS_M = EARTH_RADIUS_KM * 1000.0
#: The exponent from which 0.5 ** q is 0.0: 2 ** -1075 is half the least
#: subnormal double, and rounds to 0.  PostgreSQL's power() raises instead of
#: underflowing, so the SQL decay says 0 itself from there on.
DECAY_ZERO_AT = 1075.0

SORTS = ("score", "distance", "popularity")
#: The epoch ``T0`` of the usage masses: 2026-01-01T00:00:00Z, in POSIX seconds.
USAGE_EPOCH_S = 1_767_225_600.0
#: How a hit sorts: best first, ascending.  (0 or -lead, distance, id bytes.)
SortKey = tuple[float, float, bytes]

#: The score as the API explains it.
SCORE_FORMULA = (
    "0.5 ** ((distance_m / scale_m) ** 2) * (1 + popularity_weight * ln(1 + popularity))"
)


# -- distance and score -------------------------------------------------------


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres; bit-identical to h3.great_circle_distance(unit='m')."""
    lat1r, lat2r = math.radians(lat1), math.radians(lat2)
    sl = math.sin((lat2r - lat1r) * 0.5)
    sg = math.sin((math.radians(lng2) - math.radians(lng1)) * 0.5)
    a = sl * sl + math.cos(lat1r) * math.cos(lat2r) * sg * sg
    return 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a)) * EARTH_RADIUS_KM * 1000


def distance_term(distance: float, scale_m: float) -> float:
    """The Gaussian decay: 1 at the point, 0.5 at ``scale_m``."""
    return 0.5 ** ((distance / scale_m) ** 2)


def popularity_term(popularity: float, weight: float) -> float:
    """The popularity boost: 1 + w ln(1 + popularity)."""
    return 1 + weight * math.log(1 + popularity)


def score_of(distance: float, popularity: float, scale_m: float, weight: float) -> float:
    """The score: decay times boost."""
    return distance_term(distance, scale_m) * popularity_term(popularity, weight)


def usage_factor(t_s: float, half_life_s: float) -> float:
    """``2^(−(t − T0)/h)``: what a usage mass is multiplied by to give its usage at ``t_s``."""
    return math.pow(2.0, -(t_s - USAGE_EPOCH_S) / half_life_s)


def popularity_now(listed: float, mass: float, factor: float) -> float:
    """The popularity ranked by: the listed one plus the usage ``mass · factor``
    (:func:`usage_factor`); exactly the listed one without usage."""
    return listed + mass * factor if mass else listed


def lead_of(sort: str, score: float, popularity: float) -> float:
    """What ``sort`` ranks by first, descending: the popularity for 'popularity', else the
    score (which 'distance' ignores)."""
    return popularity if sort == "popularity" else score


def order_key(sort: str, lead: float, distance: float, entity_id: bytes) -> SortKey:
    """The key that orders hits best first under ``sort`` (one of :data:`SORTS`), from
    its lead (:func:`lead_of`), distance and id."""
    if sort == "distance":
        return (0.0, distance, entity_id)
    return (-lead, distance, entity_id)


# -- what filters read --------------------------------------------------------


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
class Candidate:
    """What filtering and ranking read of an entity (the brute force and PostGIS build these)."""

    id: str
    lat: float
    lng: float
    kind: str
    #: What the score and sort=popularity rank by.
    popularity: float = 0.0
    mini_app: str = ""
    category: str = ""
    available: int | None = None
    source: str = ""
    #: Epoch seconds, or None when never confirmed by a feed.
    seen_at_s: float | None = None
    doc: dict[str, Any] = field(default_factory=dict, compare=False)


class Asks(Protocol):
    """What the filters read of a query (discovery.search.query.NearbyQuery is one)."""

    @property
    def kinds(self) -> tuple[str, ...]: ...
    @property
    def categories(self) -> tuple[str, ...]: ...
    @property
    def mini_apps(self) -> tuple[str, ...]: ...
    @property
    def available(self) -> bool: ...
    @property
    def open_now(self) -> bool: ...
    @property
    def now_s(self) -> float: ...
    @property
    def stale(self) -> StaleLimits: ...


# -- staleness ------------------------------------------------------------------


def is_stale(
    limits: StaleLimits, source: str, kind: str, seen_at_s: float | None, now_s: float
) -> bool:
    """True when a live entity was last seen before its cutoff (never seen: not stale)."""
    cutoff = limits.cutoff_s(source, kind, now_s)
    return cutoff is not None and seen_at_s is not None and seen_at_s < cutoff


# -- filters ------------------------------------------------------------------


def kind_admits(asks: Asks, candidate: Candidate) -> bool:
    """The kinds filter (none asked: any kind)."""
    return not asks.kinds or candidate.kind in asks.kinds


def category_admits(asks: Asks, candidate: Candidate) -> bool:
    """The categories filter (none asked: any category)."""
    return not asks.categories or candidate.category in asks.categories


def mini_app_admits(asks: Asks, candidate: Candidate) -> bool:
    """The mini-apps filter (none asked: any mini-app)."""
    return not asks.mini_apps or candidate.mini_app in asks.mini_apps


def available_admits(asks: Asks, candidate: Candidate) -> bool:
    """available=true keeps entities with at least one thing available."""
    return not asks.available or (candidate.available or 0) >= 1


def fresh(asks: Asks, candidate: Candidate) -> bool:
    """Whether a candidate is not stale at the query's time."""
    seen = candidate.seen_at_s
    return not is_stale(asks.stale, candidate.source, candidate.kind, seen, asks.now_s)


def open_admits(asks: Asks, candidate: Candidate) -> bool:
    """open_now=true keeps entities open at the query's time."""
    return not asks.open_now or is_open(candidate.doc, asks.now_s)


FILTERS = (kind_admits, category_admits, mini_app_admits, available_admits, fresh, open_admits)


def admits(asks: Asks, candidate: Candidate) -> bool:
    """Every filter of a query (staleness and open_now included) on one candidate."""
    return all(rule(asks, candidate) for rule in FILTERS)


# -- opening hours --------------------------------------------------------------


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


# -- the same rules in SQL ------------------------------------------------------
#
# Fragments over an entity row ``e`` (columns lat, lng, popularity, usage_mass,
# kind, category, mini_app, available, source, seen_at); their parameters come from
# the functions after them.

#: The distance from the query point to (e.lat, e.lng), as ``x.d``: lateral joins
#: spelling :func:`distance_m` (parameters of :func:`point_params`).
DISTANCE_SQL = f"""
CROSS JOIN LATERAL (SELECT sin((radians(e.lat) - %(latr)s::float8) * 0.5::float8) AS sl,
                           sin((radians(e.lng) - %(lngr)s::float8) * 0.5::float8) AS sg) t
CROSS JOIN LATERAL (SELECT t.sl * t.sl + %(qcos)s::float8 * cos(radians(e.lat)) * t.sg * t.sg
                           AS a) u
CROSS JOIN LATERAL (SELECT 2::float8 * atan2(sqrt(u.a), sqrt(1::float8 - u.a))
                           * {EARTH_RADIUS_KM!r}::float8 * 1000::float8 AS d) x
"""


def score_sql(distance: str, popularity: str) -> str:
    """:func:`score_of` of two SQL expressions (parameters of :func:`score_params`)."""
    q = f"power({distance} / %(scale)s::float8, 2::float8)"
    decay = (
        f"CASE WHEN {q} < {DECAY_ZERO_AT!r}::float8 THEN power(0.5::float8, {q}) ELSE 0::float8 END"
    )
    return f"({decay}) * (1::float8 + %(w)s::float8 * ln(1::float8 + {popularity}))"


#: The popularity an entity ranks by, of row ``e``: what :attr:`Candidate.popularity`
#: holds (:func:`popularity_now`, the factor given as ``%(usage_factor)s``).  The score
#: and sort=popularity both read this expression.
POPULARITY_SQL = (
    "(CASE WHEN e.usage_mass = 0::float8 THEN e.popularity"
    " ELSE e.popularity + e.usage_mass * %(usage_factor)s::float8 END)"
)

#: The order of :func:`order_key` over ``c.s`` (score), ``c.p`` (popularity,
#: :data:`POPULARITY_SQL`) and ``c.d`` (distance).
ORDER_SQL = {
    "score": ' ORDER BY c.s DESC, c.d, c.id COLLATE "C"',
    "distance": ' ORDER BY c.d, c.id COLLATE "C"',
    "popularity": ' ORDER BY c.p DESC, c.d, c.id COLLATE "C"',
}

#: :func:`is_stale` of row ``e`` (parameters of :func:`stale_params`): the kind's
#: cutoff, or its source's.  ``extract(epoch ...)::float8`` is the correctly
#: rounded double of the microseconds, as Python's ``datetime.timestamp()`` is.
STALE_SQL = """EXISTS (
    SELECT 1 FROM unnest(%(stale_kinds)s::text[], %(stale_kind_cutoffs)s::float8[])
        AS k(kind, cutoff_s)
    WHERE k.kind = e.kind
      AND extract(epoch FROM e.seen_at)::float8 < coalesce(
          (SELECT s.cutoff_s
           FROM unnest(%(stale_sources)s::text[], %(stale_source_cutoffs)s::float8[])
               AS s(source, cutoff_s)
           WHERE s.source = e.source),
          k.cutoff_s))"""


def point_params(lat: float, lng: float) -> dict[str, float]:
    """The parameters of :data:`DISTANCE_SQL` for the query point (lat, lng)."""
    latr = math.radians(lat)
    return {"latr": latr, "lngr": math.radians(lng), "qcos": math.cos(latr)}


def score_params(scale_m: float, weight: float) -> dict[str, float]:
    """The parameters of :func:`score_sql`."""
    return {"scale": scale_m, "w": weight}


def stale_params(limits: StaleLimits, now_s: float) -> dict[str, list[Any]]:
    """The parameters of :data:`STALE_SQL`: each cutoff as :meth:`StaleLimits.cutoff_s` makes it."""
    kinds = sorted(limits.by_kind)
    sources = sorted(limits.by_source)
    return {
        "stale_kinds": kinds,
        "stale_kind_cutoffs": [now_s - limits.by_kind[kind] for kind in kinds],
        "stale_sources": sources,
        "stale_source_cutoffs": [now_s - limits.by_source[source] for source in sources],
    }


def filters_sql(asks: Asks) -> str:
    """The filters of :func:`admits` SQL applies, as ``AND`` clauses (open_now is Python's)."""
    parts = []
    if asks.kinds:
        parts.append("AND e.kind = ANY(%(kinds)s)")
    if asks.categories:
        parts.append("AND e.category = ANY(%(categories)s)")
    if asks.mini_apps:
        parts.append("AND e.mini_app = ANY(%(mini_apps)s)")
    if asks.available:
        parts.append("AND e.available >= 1")
    if asks.stale.by_kind:
        parts.append(f"AND NOT {STALE_SQL}")
    return " ".join(parts)


def filter_params(asks: Asks) -> dict[str, Any]:
    """The parameters of :func:`filters_sql`."""
    return {
        "kinds": list(asks.kinds),
        "categories": list(asks.categories),
        "mini_apps": list(asks.mini_apps),
        **stale_params(asks.stale, asks.now_s),
    }
