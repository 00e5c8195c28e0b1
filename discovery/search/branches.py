"""Where a top by distance over a few named mini-apps reads their branches.

Each group of the hot index keeps the ids of each mini-app's entities there: a
few in a field of the group's branches hash, more in a GEO set of the mini-app's
own (indexer/hot/layout.py); nearby_branches.lua reads the few whole and the GEO
sets nearest first instead of reading the cells, exactly as the cells would
answer.  A GEO set holds no latitude beyond :data:`indexer.hot.layout.GEO_LAT_MAX`,
and its circles are not trusted across the antimeridian: a query whose circle
comes near either reads the cells.
"""

from __future__ import annotations

import math

from discovery.search.query import NearbyQuery
from indexer import rules
from indexer.hot import layout

#: Metres of a degree of latitude (of the sphere distances are measured on).
_DEGREE_M = rules.EARTH_RADIUS_M * math.pi / 180
#: How far from a GEO set's latitude limit and from the antimeridian a circle that
#: reads the branches sets stays (degrees).
_GEO_MARGIN = 0.05
#: Whether the branches sets are read at all (False: the cells always; what the
#: benchmark compares them with).
READ_BRANCHES = True


def branch_route(query: NearbyQuery) -> bool:
    """Whether a top by distance may find the mini-apps it names in their branches sets
    (nearby_branches.lua): without ``q``, and when its circle stays within the latitudes
    a GEO set holds and off the antimeridian (else the cells are read)."""
    if not (READ_BRANCHES and query.mini_apps) or query.text is not None:
        return False
    span = query.radius_m / _DEGREE_M + _GEO_MARGIN
    farthest = abs(query.lat) + span
    if farthest >= layout.GEO_LAT_MAX:
        return False
    return abs(query.lng) + span / math.cos(math.radians(farthest)) < 180.0
