"""GET /v1/discover: the pull-down screen in one call.

``GET /v1/discover?lat&lng[&radius][&limit][&user][&q]`` answers the four lists of
the screen a person sees on pulling down in the chat app:

- ``recent``: the user's recently used mini-apps (``/v1/users/<user>/recent``),
- ``favorites``: their mini-apps (the :data:`FAVORITES_SHOWN` last added),
- ``nearby``: the mini-apps around the point, by score (``group=mini_app``),
- ``popular``: the mini-apps around the point, by popularity
  (``group=mini_app&sort=popularity``).

Each recent and favourite carries ``nearest``, its nearest branch within the
radius (``{"id", "distance_m"}``) or null: one ``sort=distance&group=mini_app``
search over their slugs, whose best of each group is its nearest branch (read
from the mini-apps' branches, nearest first: discovery/search/branches.py). The
searches are /v1/nearby's own, so each list is exactly what that endpoint
answers for the same parameters, but for the counts of the groups: without
them, the hot index finds the top mini-apps reading only as far as the top
needs (counting would read every entity in the radius). Without ``user`` the
first two lists are empty; with it the request needs the API key (the platform
calls on its user's behalf), and the id is never logged. ``q`` (the search box
over the screen) keeps the entities that match it in ``nearby`` and ``popular``
(/v1/nearby's text rule); the user's own lists and their nearest branches stay
as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from discovery.api.catalog_cache import catalog_of
from discovery.api.current import services
from discovery.api.discover_params import parse_discover
from discovery.api.nearby import popularity_time, query_args, result_of
from discovery.search.finder import find_nearby
from discovery.search.query import NearbyQuery
from discovery.search.services import Services
from indexer.store.users import screen_lists

bp = Blueprint("discover", __name__, url_prefix="/v1")

#: The favourites the screen shows: the last added (recents keep 20 at most), so
#: that one search of at most :data:`params.LIMIT` groups finds all their nearest.
FAVORITES_SHOWN = 50


def nearest_of(
    svc: Services, base: NearbyQuery, slugs: Sequence[str]
) -> tuple[dict[str, Any], str | None]:
    """The nearest branch of each of ``slugs`` within the radius, by slug; and the source."""
    wanted = tuple(sorted(set(slugs)))
    if not wanted:
        return {}, None
    query = replace(
        base, sort="distance", mini_apps=wanted, limit=len(wanted), counts=False, text=None
    )
    found = find_nearby(svc, query)
    nearest: dict[str, Any] = {}
    for hit in found.hits:
        slug = hit.document().get("mini_app") or ""
        nearest[slug] = {"id": hit.id, "distance_m": hit.distance_m}
    return nearest, found.source


def listed_apps(
    svc: Services, query: NearbyQuery, apps: Mapping[str, Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], str]:
    """The results of one group=mini_app search, as /v1/nearby shows them; and the source."""
    found = find_nearby(svc, query)
    return [result_of(hit, query, apps) for hit in found.hits], found.source


def discover_body(svc: Services, query: NearbyQuery, user: str | None) -> dict[str, Any]:
    """The four lists for the point (and the user), with the sources that answered them."""
    mine: dict[str, list[dict[str, Any]]] = {"recent": [], "favorites": []}
    if user is not None:
        with svc.postgis() as conn:
            mine = screen_lists(conn, user, FAVORITES_SHOWN)
    slugs = [item["slug"] for items in mine.values() for item in items]
    nearest, nearest_source = nearest_of(svc, query, slugs)
    for items in mine.values():
        for item in items:
            item["nearest"] = nearest.get(item["slug"])
    apps = catalog_of(svc).entries()
    around, around_source = listed_apps(svc, query, apps)
    popular, popular_source = listed_apps(svc, replace(query, sort="popularity"), apps)
    sources = {"nearby": around_source, "popular": popular_source, "nearest": nearest_source}
    return {**mine, "nearby": around, "popular": popular, "sources": sources,
            "popularity_at": popularity_time(query)}  # fmt: skip


@bp.get("/discover")
def discover() -> Response:
    """The pull-down screen: recent, favourite, nearby and popular mini-apps."""
    svc = services()
    query, user = parse_discover(query_args(request.environ.get("QUERY_STRING", "")), svc)
    return jsonify(discover_body(svc, query, user))


def init_app(app: Flask) -> None:
    """Register the discover endpoint."""
    app.register_blueprint(bp)
