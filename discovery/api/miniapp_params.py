"""The parameters of GET /v1/mini-apps/<slug>, parsed into the nearest-branches query.

Every problem is a BadInput naming the parameter, as /v1/nearby's
(:mod:`discovery.search.params`, whose rules and bounds these reuse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from discovery.api.current import services
from discovery.search import params
from discovery.search.query import NearbyQuery
from discovery.search.ranking import resume
from indexer.errors import BadInput

PARAMETERS = frozenset({"lat", "lng", "radius", "limit", "cursor"})
#: Parameters that only a request for branches (with lat and lng) takes.
BRANCH_ONLY = ("radius", "limit", "cursor")
#: A slug as a path segment: what the catalog's import lets in.
SLUG_PATTERN = r"^[^\x00-\x1f\x7f-\x9f,/]{1,200}$"
#: Branches are looked for within this radius unless asked otherwise (metres).
DEFAULT_RADIUS_M = 5000.0


def branches_query(
    args: Mapping[str, Sequence[str]], slug: str, now_s: float
) -> NearbyQuery | None:
    """The nearest-branches query the parameters ask; None without lat and lng."""
    unknown = sorted(set(args) - PARAMETERS)
    if unknown:
        raise BadInput(f"unknown parameter {unknown[0][:40]!r}", unknown[0])
    get = {name: params.single(args, name) for name in PARAMETERS}
    if get["lat"] is None and get["lng"] is None:
        given = next((name for name in BRANCH_ONLY if get[name] is not None), None)
        if given is not None:
            raise BadInput(f"{given} needs lat and lng (the branches' point)", given)
        return None
    svc = services()
    radius_m = params.number(get["radius"], "radius", params.RADIUS_M, DEFAULT_RADIUS_M)
    query = NearbyQuery(
        lat=params.number(get["lat"], "lat", (-90.0, 90.0), None),
        lng=params.number(get["lng"], "lng", (-180.0, 180.0), None),
        radius_m=radius_m,
        mini_apps=(slug,),
        sort="distance",
        scale_m=radius_m * svc.settings.ranking.scale_fraction,
        popularity_weight=svc.settings.ranking.popularity_weight,
        limit=params.integer(get["limit"], "limit", params.LIMIT, 20),
        now_s=now_s,
        stale=svc.stale,
        popularity_at_s=params.popularity_moment(now_s),
        half_life_s=svc.settings.index.usage.half_life_s,
    )
    cursor = get["cursor"]
    if cursor is None:
        return query
    try:
        return resume(query, cursor, svc.settings.cursor_key)
    except ValueError as exc:
        raise BadInput(str(exc), "cursor") from exc
