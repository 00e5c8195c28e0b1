"""The demo's pull-down screen: /demo; registered only with NEARBY_DEBUG=1, as the debug map.

- ``GET /demo``: a phone-sized page (MapLibre, served from node_modules as the
  debug map's) with a small map and, under it, the screen of ``GET
  /v1/discover``: a user picker, a search box (``q``) and the four lists; a click on
  the map moves the point, a tap on an app lists its nearest branches (``GET
  /v1/mini-apps/<slug>``) under a toggle of the user's favourite (``PUT``/``DELETE
  /v1/users/<user>/favorites/<slug>``).
- ``GET /demo/icons/<slug>.svg``: the demo catalog's icons (:mod:`discovery.debug.icons`).
- ``GET /demo/config.json``: what the page needs: an API key of the server's own
  (``NEARBY_API_KEYS``), for the user endpoints, and the demo users. It hands a
  key to whoever asks, which is why it exists only under NEARBY_DEBUG=1.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory

from discovery.debug.icons import icon_svg
from discovery.debug.views import STATIC
from indexer.errors import NotFound

bp = Blueprint("demo", __name__, url_prefix="/demo")

#: The users that ``scripts/gen_demo_usage.py`` gives favourites and a week of use.
DEMO_USERS = ("demo-anna", "demo-ben")
#: The page's own files under ``static/``.
FILES = frozenset({"demo.js", "demo.css"})


@bp.get("")
def demo_page() -> Response:
    """The pull-down screen."""
    return send_from_directory(STATIC, "demo.html", max_age=0)


@bp.get("/static/<name>")
def static_file(name: str) -> Response:
    """The page's script and style."""
    if name not in FILES:
        raise NotFound(f"no file {name[:100]!r}")
    return send_from_directory(STATIC, name, max_age=0)


@bp.get("/icons/<slug>.svg")
def icon(slug: str) -> Response:
    """A mini-app's icon: its initials on its colour."""
    try:
        svg = icon_svg(slug)
    except ValueError as exc:
        raise NotFound(str(exc)) from exc
    response = Response(svg, 200, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/config.json")
def config() -> Response:
    """The page's API key (the first of the server's, in byte order; null with none) and users."""
    keys = sorted(current_app.config["NEARBY"].api_keys)
    return jsonify({"api_key": keys[0] if keys else None, "users": list(DEMO_USERS)})


def init_app(app: Flask) -> None:
    """Register the demo page when the settings turn the debug tools on (NEARBY_DEBUG=1)."""
    if app.config["NEARBY"].debug:
        app.register_blueprint(bp)
