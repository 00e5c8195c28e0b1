"""What a nearby query asks.

Pure: no Flask, Redis or SQL.  The filters, staleness and opening hours a
query applies are :mod:`indexer.rules`' (re-exported here for the search paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from indexer.rules import Candidate, SortKey, StaleLimits, is_open, usage_factor
from indexer.settings import DEFAULT_HALF_LIFE_S
from indexer.text import TextQuery

__all__ = ["Candidate", "NearbyQuery", "SortKey", "StaleLimits", "is_open"]


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
    #: ``q``: the words the entities must match (indexer/text.py); None: any entity.
    text: TextQuery | None = None
    #: With group: whether each mini-app's count is wanted (without it, the top
    #: mini-apps are found without reading every entity in the radius).
    counts: bool = True
    #: The time (epoch seconds) the popularity is computed at: the request's, or
    #: the first page's for a cursor's; 0: the listed popularity alone.
    popularity_at_s: float = 0.0
    #: The usage half-life (NEARBY_USAGE_HALF_LIFE_S).
    half_life_s: float = float(DEFAULT_HALF_LIFE_S)

    @property
    def usage_factor(self) -> float:
        """What a usage mass is multiplied by at :attr:`popularity_at_s`
        (:func:`indexer.rules.usage_factor`; 0 when it is 0)."""
        if not self.popularity_at_s:
            return 0.0
        return usage_factor(self.popularity_at_s, self.half_life_s)

    def identity(self) -> str:
        """What the query asks, as text (page size, cursor, explain and time left out)."""
        parts: tuple[str, ...] = (
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
        if self.text is not None:
            parts += (self.text.identity(),)
        if not self.counts:
            parts += ("no counts",)
        return "\x1f".join(parts)
