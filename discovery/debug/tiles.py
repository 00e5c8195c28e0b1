"""Web Mercator tiles over the index: which cells a tile shows, where things fall in it.

Pure geometry and value types for the map-tile debugging tools (the script
``scripts/debug_tile.py`` and the API's debug map): no database, no Redis.
:mod:`discovery.debug.data` fills :class:`TileLayers` from PostGIS and Redis,
:mod:`discovery.debug.render` draws them, :func:`layers_to_geojson` writes them.

A tile shows the cells of ``BASE_RES`` that touch it.  At low zooms that would
be too many to draw, so a tile whose area holds more than ``MAX_CELLS`` base
cells shows coarser cells instead (the display resolution), each counting the
entities whose base cell descends from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import h3
import mercantile
from shapely.geometry import Polygon, box

from indexer.model import BASE_RES
from indexer.rules import EARTH_RADIUS_M

#: Width and height of a rendered tile, in pixels.
TILE_PX = 512
#: Most cells a tile shows; beyond it the tile shows a coarser resolution.
MAX_CELLS = 3000
#: Web Mercator stops at this latitude (the square world of the tiles).
MAX_MERCATOR_LAT = 85.0511287798066
#: Bits of the resolution field of an H3 index, and the width of one digit.
_RES_SHIFT = 52
_DIGIT_BITS = 3


@dataclass(frozen=True, slots=True)
class Dot:
    """An entity as the map shows it."""

    id: str
    kind: str
    lat: float
    lng: float


@dataclass(frozen=True, slots=True)
class QueryOverlay:
    """What one nearby query did: its circle, the cells it read, its candidates and results.

    ``results`` are in rank order (rank 1 first).  ``engine`` says what answered
    it (the service's search, and whether from Redis or PostGIS); the
    candidates are the brute-force reference's (:mod:`discovery.debug.reference`).
    """

    lat: float
    lng: float
    radius_m: float
    covered: tuple[str, ...] = ()
    candidates: tuple[Dot, ...] = ()
    results: tuple[Dot, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    engine: str = ""


@dataclass(frozen=True)
class TileLayers:
    """Everything a debug tile shows.

    ``counts`` maps every cell (hex, at resolution ``res``) that touches the tile
    to its number of entities; ``dots`` are the entities inside the tile (at
    most a cap, the most popular first; ``dots_total`` counts them all);
    ``differences`` maps cells to the ways Redis disagrees with PostGIS there.
    """

    tile: mercantile.Tile
    res: int
    counts: Mapping[str, int]
    dots: tuple[Dot, ...] = ()
    dots_total: int = 0
    differences: Mapping[str, tuple[str, ...]] | None = None
    query: QueryOverlay | None = None


# -- tiles and pixels -------------------------------------------------------


def tile_at(lat: float, lng: float, zoom: int) -> mercantile.Tile:
    """The tile of ``zoom`` that contains (lat, lng)."""
    return mercantile.tile(lng=lng, lat=clamp_lat(lat), zoom=zoom)


def clamp_lat(lat: float) -> float:
    """``lat`` limited to the latitudes Web Mercator can show."""
    return max(-MAX_MERCATOR_LAT, min(MAX_MERCATOR_LAT, lat))


def unwrap_lng(lng: float, near_lng: float) -> float:
    """``lng`` plus a multiple of 360 that brings it within 180 of ``near_lng``.

    Cells that cross the antimeridian have vertices on both sides; unwrapped
    towards the tile they draw as one polygon instead of a band across the map.
    """
    return lng + 360.0 * round((near_lng - lng) / 360.0)


def tile_centre_lng(tile: mercantile.Tile) -> float:
    """The longitude of the middle of a tile."""
    bounds = mercantile.bounds(tile)
    return (bounds.west + bounds.east) / 2.0


def lat_lng_to_pixel(
    tile: mercantile.Tile, lat: float, lng: float, size: int = TILE_PX
) -> tuple[float, float]:
    """Pixel (x right, y down) of (lat, lng) in ``tile`` drawn ``size`` pixels wide.

    Points outside the tile get coordinates outside [0, size).
    """
    left, bottom, right, top = mercantile.xy_bounds(tile)
    x, y = mercantile.xy(lng=unwrap_lng(lng, tile_centre_lng(tile)), lat=clamp_lat(lat))
    return (x - left) / (right - left) * size, (top - y) / (top - bottom) * size


def cell_pixels(tile: mercantile.Tile, cell: str, size: int = TILE_PX) -> list[tuple[float, float]]:
    """The outline of ``cell`` (hex) in pixels of ``tile``, vertices in H3's order."""
    return [lat_lng_to_pixel(tile, lat, lng, size) for lat, lng in h3.cell_to_boundary(cell)]


# -- which cells a tile shows ----------------------------------------------


def tile_area_m2(tile: mercantile.Tile) -> float:
    """Area of the tile on the sphere, in square metres."""
    b = mercantile.bounds(tile)
    sin_band = math.sin(math.radians(b.north)) - math.sin(math.radians(b.south))
    return EARTH_RADIUS_M**2 * math.radians(b.east - b.west) * abs(sin_band)


def display_res(tile: mercantile.Tile, max_cells: int = MAX_CELLS) -> int:
    """The finest resolution, at most ``BASE_RES``, whose cells over the tile number ``max_cells``.

    Counted as the tile's area over the average cell area, twice for the cells
    cut by the edges; it picks the resolution, the drawing does not depend on it.
    """
    area_m2 = tile_area_m2(tile)
    for res in range(BASE_RES, -1, -1):
        if 2.0 * area_m2 / h3.average_hexagon_area(res, unit="m^2") <= max_cells:
            return res
    return 0


def tile_cells(tile: mercantile.Tile, res: int, size: int = TILE_PX) -> list[str]:
    """The cells of ``res`` whose outline, drawn in the tile, overlaps it; sorted.

    H3's ``bbox_overlap`` fill gives every cell whose bounding box meets the
    tile: a superset, since projecting to Mercator keeps each axis's order.  The
    exact test is then made on the projected outline, as the picture draws it.
    """
    b = mercantile.bounds(tile)
    south, north = clamp_lat(b.south), clamp_lat(b.north)
    shape = h3.LatLngPoly([(south, b.west), (south, b.east), (north, b.east), (north, b.west)])
    square = box(0.0, 0.0, float(size), float(size))
    found = []
    for cell in h3.h3shape_to_cells_experimental(shape, res, contain="bbox_overlap"):
        outline = Polygon(cell_pixels(tile, cell, size))
        if outline.intersects(square) and not outline.touches(square):
            found.append(cell)
    return sorted(found)


def descendant_range(cell: int, res: int = BASE_RES) -> tuple[int, int]:
    """The smallest and largest possible descendant of ``cell`` (int) at ``res``.

    An H3 index holds its resolution in bits 52-55 and one 3-bit digit per
    resolution below that, unused digits set to 7.  Descendants at ``res`` share
    the parent's digits and differ only in digits parent_res+1 … res, so every
    one of them lies in [digits all 0, digits all 7] and every valid index in
    that interval is one: ``h3 BETWEEN lo AND hi`` selects them on a B-tree.
    """
    parent_res = (cell >> _RES_SHIFT) & 0xF
    if parent_res > res:
        raise ValueError(f"cell of resolution {parent_res} has no descendants at {res}")
    at_res = (cell & ~(0xF << _RES_SHIFT)) | (res << _RES_SHIFT)
    width = _DIGIT_BITS * (res - parent_res)
    mask = ((1 << width) - 1) << (_DIGIT_BITS * (15 - res))
    return at_res & ~mask, at_res | mask


# -- GeoJSON ----------------------------------------------------------------


def cell_ring(cell: str, near_lng: float) -> list[list[float]]:
    """A cell's closed outline as GeoJSON [lng, lat] positions, unwrapped near ``near_lng``."""
    ring = [[unwrap_lng(lng, near_lng), lat] for lat, lng in h3.cell_to_boundary(cell)]
    return [*ring, ring[0]]


def circle_ring(lat: float, lng: float, radius_m: float, steps: int = 96) -> list[list[float]]:
    """A circle of ``radius_m`` on the service's sphere as a closed [lng, lat] ring."""
    ring = []
    for step in range(steps):
        dest_lat, dest_lng = destination(lat, lng, 360.0 * step / steps, radius_m)
        ring.append([unwrap_lng(dest_lng, lng), dest_lat])
    return [*ring, ring[0]]


def destination(
    lat: float, lng: float, bearing_deg: float, distance_m: float
) -> tuple[float, float]:
    """The point ``distance_m`` from (lat, lng) along ``bearing_deg``, on the sphere."""
    phi, lam = math.radians(lat), math.radians(lng)
    theta, delta = math.radians(bearing_deg), distance_m / EARTH_RADIUS_M
    sin_phi2 = math.sin(phi) * math.cos(delta) + math.cos(phi) * math.sin(delta) * math.cos(theta)
    phi2 = math.asin(max(-1.0, min(1.0, sin_phi2)))
    lam2 = lam + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi),
        math.cos(delta) - math.sin(phi) * math.sin(phi2),
    )
    return math.degrees(phi2), (math.degrees(lam2) + 540.0) % 360.0 - 180.0


def feature(geometry: dict[str, Any], **properties: Any) -> dict[str, Any]:
    """A GeoJSON Feature."""
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def polygon(ring: list[list[float]]) -> dict[str, Any]:
    """A GeoJSON Polygon of one ring."""
    return {"type": "Polygon", "coordinates": [ring]}


def geojson_point(lat: float, lng: float) -> dict[str, Any]:
    """A GeoJSON Point (lng first, as GeoJSON wants)."""
    return {"type": "Point", "coordinates": [lng, lat]}


def cell_features(layers: TileLayers) -> list[dict[str, Any]]:
    """The ``cells`` layer, plus the ``differences`` layer when the diff was asked for."""
    near = tile_centre_lng(layers.tile)
    features = [
        feature(polygon(cell_ring(cell, near)), layer="cells", cell=cell, res=layers.res, count=n)
        for cell, n in sorted(layers.counts.items())
    ]
    for cell, problems in sorted((layers.differences or {}).items()):
        features.append(
            feature(
                polygon(cell_ring(cell, near)),
                layer="differences",
                cell=cell,
                problems=list(problems),
            )
        )
    return features


def query_features(query: QueryOverlay) -> list[dict[str, Any]]:
    """The query's layers: ``query`` (its circle), ``covered``, ``candidates``, ``results``."""
    features = [
        feature(
            polygon(circle_ring(query.lat, query.lng, query.radius_m)),
            layer="query",
            lat=query.lat,
            lng=query.lng,
            radius_m=query.radius_m,
            params=dict(query.params),
            engine=query.engine,
        )
    ]
    features += [
        feature(
            polygon(cell_ring(cell, query.lng)),
            layer="covered",
            cell=cell,
            res=h3.get_resolution(cell),
        )
        for cell in query.covered
    ]
    features += [
        feature(geojson_point(dot.lat, dot.lng), layer="candidates", id=dot.id, kind=dot.kind)
        for dot in query.candidates
    ]
    features += [
        feature(
            geojson_point(dot.lat, dot.lng), layer="results", id=dot.id, kind=dot.kind, rank=rank
        )
        for rank, dot in enumerate(query.results, start=1)
    ]
    return features


def layers_to_geojson(layers: TileLayers) -> dict[str, Any]:
    """The tile's layers as one FeatureCollection; each feature names its ``layer``.

    Layers: ``cells`` (every cell touching the tile, with its count),
    ``entities`` (the dots), ``differences`` (with ``--diff``), and the query's
    ``query``, ``covered``, ``candidates`` and ``results`` (ranked).
    """
    features = cell_features(layers)
    features += [
        feature(geojson_point(dot.lat, dot.lng), layer="entities", id=dot.id, kind=dot.kind)
        for dot in layers.dots
    ]
    if layers.query is not None:
        features += query_features(layers.query)
    tile = layers.tile
    return {
        "type": "FeatureCollection",
        "tile": {"z": tile.z, "x": tile.x, "y": tile.y, "res": layers.res},
        "features": features,
    }


def query_to_geojson(query: QueryOverlay) -> dict[str, Any]:
    """A query's layers alone as a FeatureCollection (see :func:`layers_to_geojson`)."""
    return {"type": "FeatureCollection", "features": query_features(query)}
