"""The debug map: /debug/map, its tiles and query overlays; registered only with NEARBY_DEBUG=1.

- ``GET /debug/map``: a MapLibre GL JS page (the library comes from the
  project's ``node_modules``, never a CDN) that shows the index tiles and, on
  a click, runs ``GET /v1/nearby`` there and lists the ranked results.
- ``GET /debug/tiles/{z}/{x}/{y}.png``: the tile renderer of
  ``scripts/debug_tile.py`` on a transparent background (``?diff=1`` marks the
  cells where Redis and PostGIS disagree).
- ``GET /debug/query?lat&lng&radius&…``: the overlay of a query as GeoJSON: its
  circle, the cells the search covers, every candidate, the ranked results.
"""

from __future__ import annotations

from pathlib import Path

import mercantile
from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_from_directory

from discovery.debug.data import TileTooLarge, read_layers
from discovery.debug.overlay import query_overlay
from discovery.debug.render import TRANSPARENT, tile_png
from discovery.debug.tiles import query_to_geojson
from discovery.search.services import Services
from indexer.errors import BadInput, NotFound

bp = Blueprint("debug", __name__, url_prefix="/debug")

#: The page's own files, beside this module.
STATIC = Path(__file__).resolve().parent / "static"
#: The checkout this package lives in (discovery/debug/ is two levels below it).
CHECKOUT = Path(__file__).resolve().parents[2]
#: The files of maplibre-gl the page loads, by the names it asks for.
ASSETS = {"maplibre-gl.js": "maplibre-gl.js", "maplibre-gl.css": "maplibre-gl.css"}
MAX_ZOOM = 22


def services() -> Services:
    """The services of the app serving the request (the app factory puts them in its extensions)."""
    found: Services = current_app.extensions["nearby"]
    return found


def maplibre_dist() -> Path | None:
    """The ``dist`` folder of maplibre-gl in the project's node_modules, if installed."""
    for root in (CHECKOUT, Path.cwd()):
        dist = root / "node_modules" / "maplibre-gl" / "dist"
        if (dist / "maplibre-gl.js").is_file():
            return dist
    return None


@bp.get("/map")
def debug_map() -> Response:
    """The debug map page."""
    return send_from_directory(STATIC, "map.html", max_age=0)


@bp.get("/static/<name>")
def static_file(name: str) -> Response:
    """The page's own script and style."""
    return send_from_directory(STATIC, name, max_age=0)


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    """maplibre-gl's script and style, from node_modules."""
    dist = maplibre_dist()
    if name not in ASSETS:
        raise NotFound(f"no asset {name[:100]!r}")
    if dist is None:
        raise NotFound("maplibre-gl is not installed: run `make node` (npm ci)")
    return send_from_directory(dist, ASSETS[name], max_age=3600)


def parse_tile(z: int, x: int, y: int) -> mercantile.Tile:
    """The tile z/x/y; BadInput when it does not exist."""
    if not 0 <= z <= MAX_ZOOM:
        raise BadInput(f"zoom must be within [0, {MAX_ZOOM}]", "z")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise BadInput(f"no tile {z}/{x}/{y}", "x" if not 0 <= x < 2**z else "y")
    return mercantile.Tile(x=x, y=y, z=z)


@bp.get("/tiles/<int:z>/<int:x>/<int:y>.png")
def tile(z: int, x: int, y: int) -> Response:
    """One tile of the index as a transparent 512 px PNG."""
    wanted = parse_tile(z, x, y)
    svc = services()
    diff = request.args.get("diff") in ("1", "true")
    try:
        with svc.postgis() as conn:
            layers = read_layers(conn, svc.hot if diff else None, wanted)
    except TileTooLarge as exc:
        raise BadInput(str(exc), "z") from exc
    response = Response(tile_png(layers, legend=False, background=TRANSPARENT), 200)
    response.mimetype = "image/png"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/query")
def query() -> Response:
    """The overlay of one nearby query as a GeoJSON FeatureCollection."""
    svc = services()
    args = request.args.to_dict()
    with svc.postgis() as conn:
        overlay = query_overlay(conn, svc.hot, args, svc.settings.ranking, svc.stale)
    return jsonify(query_to_geojson(overlay))


def nearby_available(app: Flask) -> bool:
    """Whether the app serves GET /v1/nearby."""
    return any(rule.rule == "/v1/nearby" for rule in app.url_map.iter_rules())


@bp.get("/config.json")
def config() -> Response:
    """What the page needs to know about this server."""
    return jsonify({"nearby": nearby_available(current_app)})


def init_app(app: Flask) -> None:
    """Register the debug map when the settings turn it on (NEARBY_DEBUG=1)."""
    if app.config["NEARBY"].debug:
        app.register_blueprint(bp)
