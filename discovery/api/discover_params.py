"""The parameters of GET /v1/discover, parsed into the screen's base query and its user.

Every problem is a BadInput naming the parameter, as /v1/nearby's
(:mod:`discovery.search.params`, whose rules and bounds these reuse).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from discovery.api.users import checked_user
from discovery.search import params
from discovery.search.query import NearbyQuery
from discovery.search.services import Services
from indexer.errors import BadInput

PARAMETERS = frozenset({"lat", "lng", "radius", "limit", "user", "q"})
#: The radius the lists look within unless asked otherwise (metres).
DEFAULT_RADIUS_M = 5000.0
#: Mini-apps in each of the nearby and popular lists unless asked otherwise.
DEFAULT_LIMIT = 10


def parse_discover(
    args: Mapping[str, Sequence[str]], svc: Services
) -> tuple[NearbyQuery, str | None]:
    """The base query (group=mini_app, by score, ``q`` if given) the parameters ask, and
    the user (or None)."""
    unknown = sorted(set(args) - PARAMETERS)
    if unknown:
        raise BadInput(f"unknown parameter {unknown[0][:40]!r}", unknown[0])
    get = {name: params.single(args, name) for name in PARAMETERS}
    radius_m = params.number(get["radius"], "radius", params.RADIUS_M, DEFAULT_RADIUS_M)
    ranking = svc.settings.ranking
    now_s = time.time()
    query = NearbyQuery(
        lat=params.number(get["lat"], "lat", (-90.0, 90.0), None),
        lng=params.number(get["lng"], "lng", (-180.0, 180.0), None),
        radius_m=radius_m,
        group="mini_app",
        counts=False,
        scale_m=radius_m * ranking.scale_fraction,
        popularity_weight=ranking.popularity_weight,
        limit=params.integer(get["limit"], "limit", params.LIMIT, DEFAULT_LIMIT),
        now_s=now_s,
        stale=svc.stale,
        text=params.text_query(get["q"]),
        popularity_at_s=params.popularity_moment(now_s),
        half_life_s=svc.settings.index.usage.half_life_s,
    )
    user = get["user"]
    return query, None if user is None else checked_user(user)
