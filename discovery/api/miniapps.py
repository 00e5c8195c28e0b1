"""GET /v1/mini-apps/<slug>: a mini-app of the catalog, and with lat/lng its nearest branches.

The branches are the entities whose ``mini_app`` is the slug, by distance:
the nearby search itself (``sort=distance`` with the ``mini_app`` filter), so
they are exact and paged as /v1/nearby's results are, with the same signed
cursors.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from discovery.api.catalog_cache import catalog_of
from discovery.api.current import services
from discovery.api.miniapp_params import branches_query
from discovery.api.nearby import body_of, query_args
from discovery.search.finder import find_nearby
from indexer.errors import NotFound

bp = Blueprint("mini_apps", __name__, url_prefix="/v1")


@bp.get("/mini-apps/<slug>")
def mini_app(slug: str) -> Response:
    """A mini-app; with lat and lng, its nearest branches too."""
    query = branches_query(query_args(request.environ.get("QUERY_STRING", "")), slug, time.time())
    svc = services()
    entry = catalog_of(svc).current().apps.get(slug)
    if entry is None:
        raise NotFound(f"no mini-app {slug[:200]!r}", "slug")
    body: dict[str, Any] = {"app": entry}
    if query is not None:
        found = body_of(query, find_nearby(svc, query), svc.settings.cursor_key)
        body.update(branches=found["results"], next_cursor=found["next_cursor"],
                    source=found["source"])  # fmt: skip
    return jsonify(body)


def init_app(app: Flask) -> None:
    """Register the mini-app endpoint."""
    app.register_blueprint(bp)
