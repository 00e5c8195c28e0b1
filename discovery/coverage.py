"""Which index cells a nearby query reads, and how near each cell can be.

A query picks one of the indexed resolutions by its radius, so that a 10 m and
a 50 km circle both need tens to a couple of hundred cells.  The covering
follows the safe rule: grow the disk of k rings around the origin cell until
every cell of ring k+1 lies wholly beyond the radius (its centre distance minus
its circumradius exceeds it).  Because the cells meeting a circle form a
connected set around the origin, no cell past such a ring can meet it either.
Rings are ``grid_disk(k+1) - grid_disk(k)``: ``grid_ring`` can return wrong
cells around pentagons.

Everything per cell (centre, circumradius, hash tag) and per disk is cached:
the same cells come back query after query, and DESIGN §7 shows the covering
dominating the cost when it is recomputed.  The per-cell distance here is only
a lower bound with a safety margin, so it may use numpy; exact distances are in
:mod:`discovery.ranking`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import h3
import numpy as np

from indexer.model import EARTH_RADIUS_M, INDEX_RESOLUTIONS, TAG_RES

#: The finest indexed resolution whose cells suit a radius up to the given metres.
#: Res 11 (~25 m edges) up to 200 m, res 9 (~175 m) up to 1.5 km, res 7 (~1.2 km)
#: up to 10 km, res 5 beyond.
RESOLUTION_BY_RADIUS_M = ((200.0, 11), (1_500.0, 9), (10_000.0, 7), (math.inf, 5))
#: Circumradii are widened by this factor and this many metres, so that float
#: rounding (numpy versus libm, vertex positions) never makes a bound too high.
CIRCUM_FACTOR = 1.0001
CIRCUM_SLACK_M = 0.5


@dataclass(frozen=True, slots=True)
class CellCover:
    """One cell of a covering: its hex id, hash tag, a lower bound of its distance, and
    its parent at the next coarser index resolution ('' at the coarsest)."""

    cell: str
    tag: str
    dmin_m: float
    parent: str = ""


@dataclass(frozen=True, slots=True)
class Covering:
    """The cells (nearest first) whose sets hold every entity within the radius."""

    res: int
    radius_m: float
    rings: int
    cells: tuple[CellCover, ...]


@dataclass(frozen=True, slots=True)
class DiskBlock:
    """The cells of ``grid_disk(origin, k)`` with their ring and geometry, as arrays."""

    cells: tuple[str, ...]
    tags: tuple[str, ...]
    parents: tuple[str, ...]
    ring: np.ndarray
    lat_r: np.ndarray
    lng_r: np.ndarray
    cos_lat: np.ndarray
    circum_m: np.ndarray


def resolution_for(radius_m: float) -> int:
    """The index resolution a query of ``radius_m`` reads."""
    for limit_m, res in RESOLUTION_BY_RADIUS_M:
        if radius_m <= limit_m:
            assert res in INDEX_RESOLUTIONS
            return res
    raise ValueError(f"no resolution for radius {radius_m}")


def _haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    lat1r, lat2r = math.radians(lat1), math.radians(lat2)
    sl = math.sin((lat2r - lat1r) * 0.5)
    sg = math.sin((math.radians(lng2) - math.radians(lng1)) * 0.5)
    a = sl * sl + math.cos(lat1r) * math.cos(lat2r) * sg * sg
    return 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a)) * EARTH_RADIUS_M


def coarser_resolution(res: int) -> int | None:
    """The next coarser index resolution (None for the coarsest)."""
    coarser = [r for r in INDEX_RESOLUTIONS if r < res]
    return max(coarser) if coarser else None


@lru_cache(maxsize=1 << 18)
def cell_geometry(cell: str) -> tuple[float, float, float, str, str]:
    """(centre lat, centre lng, widened circumradius in m, hash tag, parent) of a cell.

    The parent is the cell's parent at the next coarser index resolution ('' at
    the coarsest): its set's top popularity bounds every member of the cell.

    The circumradius is the largest distance from the centre to a boundary
    vertex (distortion vertices of cells crossing an icosahedron edge
    included); cell edges are great-circle arcs, so the cell lies inside it.
    """
    lat, lng = h3.cell_to_latlng(cell)
    far = max(_haversine_m(lat, lng, v_lat, v_lng) for v_lat, v_lng in h3.cell_to_boundary(cell))
    coarser = coarser_resolution(h3.get_resolution(cell))
    parent = "" if coarser is None else h3.cell_to_parent(cell, coarser)
    tag = h3.cell_to_parent(cell, TAG_RES)
    return lat, lng, far * CIRCUM_FACTOR + CIRCUM_SLACK_M, tag, parent


@lru_cache(maxsize=4096)
def disk_rings(origin: str, k: int) -> tuple[tuple[str, ...], ...]:
    """Rings 0..k around ``origin``, each as ``grid_disk(j) - grid_disk(j-1)`` (sorted)."""
    if k == 0:
        return ((origin,),)
    inner = disk_rings(origin, k - 1)
    seen = {cell for ring in inner for cell in ring}
    ring = tuple(sorted(set(h3.grid_disk(origin, k)) - seen))
    return (*inner, ring)


@lru_cache(maxsize=4096)
def disk_block(origin: str, k: int) -> DiskBlock:
    """The geometry of every cell within ``k`` rings of ``origin``, ready for numpy."""
    cells: list[str] = []
    rings: list[int] = []
    for j, ring in enumerate(disk_rings(origin, k)):
        cells.extend(ring)
        rings.extend([j] * len(ring))
    geometry = [cell_geometry(cell) for cell in cells]
    lat_r = np.radians(np.array([g[0] for g in geometry]))
    return DiskBlock(
        cells=tuple(cells),
        tags=tuple(g[3] for g in geometry),
        parents=tuple(g[4] for g in geometry),
        ring=np.array(rings),
        lat_r=lat_r,
        lng_r=np.radians(np.array([g[1] for g in geometry])),
        cos_lat=np.cos(lat_r),
        circum_m=np.array([g[2] for g in geometry]),
    )


def block_dmin_m(block: DiskBlock, lat: float, lng: float) -> np.ndarray:
    """Lower bounds of the distance from (lat, lng) to each cell of ``block``."""
    lat_r, lng_r = math.radians(lat), math.radians(lng)
    sl = np.sin((block.lat_r - lat_r) * 0.5)
    sg = np.sin((block.lng_r - lng_r) * 0.5)
    a = np.clip(sl * sl + math.cos(lat_r) * block.cos_lat * sg * sg, 0.0, 1.0)
    centre_m = 2 * np.arctan2(np.sqrt(a), np.sqrt(1 - a)) * EARTH_RADIUS_M
    return np.maximum(centre_m - block.circum_m, 0.0)


def first_ring_beyond(block: DiskBlock, dmin_m: np.ndarray, radius_m: float) -> int | None:
    """The first ring whose cells all lie wholly beyond ``radius_m`` (None: none in block)."""
    near_rings = block.ring[dmin_m <= radius_m]
    top = int(block.ring[-1])
    reached = set(near_rings.tolist())
    for j in range(1, top + 1):
        if j not in reached:
            return j
    return None


def initial_rings(radius_m: float, res: int) -> int:
    """A first guess of the rings needed; the safe rule grows it when short."""
    edge_m = h3.average_hexagon_edge_length(res, "m")
    return int(radius_m / (1.5 * edge_m)) + 2


def cover(lat: float, lng: float, radius_m: float, res: int | None = None) -> Covering:
    """Cover the circle of ``radius_m`` around (lat, lng) with cells, nearest first.

    Every cell that could hold a point within the radius is returned, with a
    lower bound ``dmin_m`` of its distance (0 for the cell holding the point).
    """
    res = resolution_for(radius_m) if res is None else res
    origin = h3.latlng_to_cell(lat, lng, res)
    k = initial_rings(radius_m, res)
    while True:
        block = disk_block(origin, k)
        dmin = block_dmin_m(block, lat, lng)
        beyond = first_ring_beyond(block, dmin, radius_m)
        if beyond is not None:
            break
        k += 2
    keep = np.flatnonzero((dmin <= radius_m) & (block.ring < beyond))
    order = keep[np.argsort(dmin[keep], kind="stable")]
    cells = tuple(
        CellCover(block.cells[i], block.tags[i], float(dmin[i]), block.parents[i])
        for i in order.tolist()
    )
    return Covering(res=res, radius_m=radius_m, rings=beyond - 1, cells=cells)
