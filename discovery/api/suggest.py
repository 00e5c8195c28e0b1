"""GET /v1/suggest: completions for a search box around a point (discovery/search/suggestions.py).

Every problem is a BadInput naming the parameter, as /v1/nearby's
(:mod:`discovery.search.params`, whose rules and bounds these reuse).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from flask import Blueprint, Flask, Response, jsonify, request

from discovery.api.catalog_cache import catalog_of
from discovery.api.current import services
from discovery.api.nearby import popularity_time, query_args
from discovery.search import params
from discovery.search.finder import from_hot_index
from discovery.search.query import NearbyQuery
from discovery.search.services import Services
from discovery.search.suggestions import (
    DEFAULT_RADIUS_M,
    Suggestion,
    postgis_suggest,
    redis_suggest,
)
from indexer.errors import BadInput

bp = Blueprint("suggest", __name__, url_prefix="/v1")

PARAMETERS = frozenset({"q", "lat", "lng", "radius"})


def suggest_query(args: Mapping[str, Sequence[str]], svc: Services, now_s: float) -> NearbyQuery:
    """The query the parameters ask: its point, radius and text (``q`` is required)."""
    unknown = sorted(set(args) - PARAMETERS)
    if unknown:
        raise BadInput(f"unknown parameter {unknown[0][:40]!r}", unknown[0])
    get = {name: params.single(args, name) for name in PARAMETERS}
    lat = params.number(get["lat"], "lat", (-90.0, 90.0), None)
    lng = params.number(get["lng"], "lng", (-180.0, 180.0), None)
    radius_m = params.number(get["radius"], "radius", params.RADIUS_M, DEFAULT_RADIUS_M)
    if get["q"] is None:
        raise BadInput("q is required", "q")
    return NearbyQuery(
        lat=lat,
        lng=lng,
        radius_m=radius_m,
        text=params.text_query(get["q"]),
        now_s=now_s,
        stale=svc.stale,
        popularity_at_s=params.popularity_moment(now_s),
        half_life_s=svc.settings.index.usage.half_life_s,
    )


def suggestions_of(svc: Services, query: NearbyQuery) -> tuple[list[Suggestion], str]:
    """The completions of ``query`` and their source: the hot index ("redis"), else PostGIS."""
    names = {slug: entry["name"] for slug, entry in catalog_of(svc).current().apps.items()}
    found = from_hot_index(svc, lambda: redis_suggest(svc.search, query, names))
    if found is not None:
        return found, "redis"
    return svc.read(lambda conn: postgis_suggest(conn, query)), "postgis"


@bp.get("/suggest")
def suggest() -> Response:
    """Up to ten completions of ``q``, those with the most popular matches nearby first."""
    svc = services()
    query = suggest_query(query_args(request.environ.get("QUERY_STRING", "")), svc, time.time())
    found, source = suggestions_of(svc, query)
    svc.notes.source(source)
    body = {"suggestions": [s.as_json() for s in found], "source": source,
            "popularity_at": popularity_time(query)}  # fmt: skip
    return jsonify(body)


def init_app(app: Flask) -> None:
    """Register the suggest endpoint."""
    app.register_blueprint(bp)
