"""Which index cells a nearby query reads, and how near each cell can be.

A query picks one of the indexed resolutions by its radius, so that a 10 m and
a 50 km circle both need tens to a couple of hundred cells.  The covering
follows the safe rule over the rings of a disk around an anchor cell (ring j:
``grid_disk(j) - grid_disk(j-1)``; ``grid_ring`` can return wrong cells around
pentagons): with the origin cell (the one holding the point) in ring r0, the
first ring j > r0 whose cells all lie wholly beyond the radius (centre distance
minus circumradius exceeds it) closes the covering.  The cells meeting a circle
form a connected set around the origin, and a step to a neighbour changes the
ring by at most one, so no cell past such a ring can meet the circle either.

The anchor is the centre child, at the query's resolution, of the origin's
parent :data:`ANCHOR_UP` resolutions coarser (the origin itself at res 11):
the points of a whole neighbourhood share one disk, so that a point never seen
before still finds its disk made.  Everything per cell (centre, circumradius)
and per anchor (its disk, grown when a query needs more rings, never
recomputed) is cached; a new disk's geometry is computed in bulk on integer
ids, its cells past the first ring with a loose circumradius
(:data:`LOOSE_FACTOR`), so that a disk costs its centres and seven boundaries.
The per-cell distance here is only a lower bound with a safety margin, so it
may use numpy; exact distances are in :mod:`discovery.search.ranking`.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import h3
import h3.api.numpy_int as h3i
import numpy as np

from discovery.search.cell_geometry import centres, geometry, hex_ids, parents
from indexer.hot import layout
from indexer.model import INDEX_RESOLUTIONS, TAG_RES
from indexer.rules import EARTH_RADIUS_M

#: The finest indexed resolution whose cells suit a radius up to the given metres.
#: Res 11 (~25 m edges) up to 200 m, res 9 (~175 m) up to 1.5 km, res 7 (~1.2 km)
#: up to 10 km, res 5 beyond.
RESOLUTION_BY_RADIUS_M = ((200.0, 11), (1_500.0, 9), (10_000.0, 7), (math.inf, 5))


@dataclass(frozen=True, slots=True)
class CellCover:
    """One cell of a covering: its hex id, hash tag and a lower bound of its distance."""

    cell: str
    tag: str
    dmin_m: float


@dataclass(frozen=True, slots=True)
class Covering:
    """The cells (nearest first) whose sets hold every entity within the radius."""

    res: int
    radius_m: float
    #: The rings of the anchor's disk the covering reads (see :func:`anchor_of`).
    rings: int
    cells: tuple[CellCover, ...]


@dataclass(frozen=True, slots=True)
class DiskBlock:
    """The cells of ``grid_disk(anchor, k)`` with their ring and geometry, as arrays."""

    cells: tuple[str, ...]
    #: The same cells as integers (uint64).
    ids: np.ndarray
    tags: tuple[str, ...]
    #: The distinct tags of the block, in the order ``numbers`` counts them (from 1).
    tag_list: tuple[str, ...]
    #: Per cell the number of its tag in ``tag_list`` (the search script's argument).
    numbers: np.ndarray
    ring: np.ndarray
    #: Unit vectors of the cells' centres (one row each): distances as chords.
    xyz: np.ndarray
    circum_m: np.ndarray


def resolution_for(radius_m: float) -> int:
    """The index resolution a query of ``radius_m`` reads."""
    for limit_m, res in RESOLUTION_BY_RADIUS_M:
        if radius_m <= limit_m:
            assert res in INDEX_RESOLUTIONS
            return res
    raise ValueError(f"no resolution for radius {radius_m}")


def _rings_block(
    cells: np.ndarray, ring: np.ndarray, tag_list: tuple[str, ...], loose_m: float
) -> DiskBlock:
    """Cells (uint64) of the given rings, ring by ring, with their geometry; ``tag_list``
    the tags already numbered (a block joined to this one).  Cells of rings 0 and 1 have
    their own circumradii, the others ``loose_m`` (:data:`LOOSE_FACTOR`)."""
    first = int(np.searchsorted(ring, 2))
    lat, lng, circum = np.empty(len(cells)), np.empty(len(cells)), np.empty(len(cells))
    if first:
        lat[:first], lng[:first], circum[:first] = geometry(cells[:first])
    if first < len(cells):
        lat[first:], lng[first:] = centres(cells[first:])
        circum[first:] = loose_m
    lat_r = np.radians(lat)
    hexes, tags = hex_ids(cells), hex_ids(parents(cells, TAG_RES))
    numbers = {tag: n for n, tag in enumerate(tag_list, 1)}
    for tag in tags:
        numbers.setdefault(tag, len(numbers) + 1)
    # One byte each: a block spans a few resolution-3 cells, never 255.
    assert len(numbers) < 256
    return DiskBlock(
        cells=hexes,
        ids=cells,
        tags=tags,
        tag_list=tuple(numbers),
        numbers=np.array([numbers[tag] for tag in tags], dtype=np.uint8),
        ring=ring,
        xyz=unit_vectors(lat_r, np.radians(lng)),
        circum_m=circum,
    )


def _rings(origin: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The cells of rings ``lo..hi`` around ``origin`` and their rings, by ring then id.

    Ring j is ``grid_disk(j)`` less every ``grid_disk(i)``, i < j: each cell's
    ring is the first disk it appears in.
    """
    disks = [h3i.grid_disk(origin, j) for j in range(hi + 1)]
    labels = np.repeat(np.arange(hi + 1), [len(d) for d in disks])
    ids, first = np.unique(np.concatenate(disks), return_index=True)
    ring = labels[first]
    order = np.lexsort((ids, ring))
    order = order[ring[order] >= lo]
    return ids[order], ring[order]


#: A disk's cells past its first ring take this many times the largest circumradius of
#: rings 0 and 1 as theirs, instead of their own: a cell's own needs its boundary, most
#: of a new disk's cost, for a bound that only has to be high enough.  H3 cells of one
#: resolution a disk's rings apart differ little in size (over 16 rings at most 2.1 %
#: larger than the first ring's, at res 5 beside pentagons; 0.3 % at res 7, under 0.1 %
#: at res 9 and 11: ``tests/discovery/search/test_coverage.py`` checks it around every
#: pentagon, at the poles, across the antimeridian and at random points), so the bound
#: holds every cell with room to spare, and lowers a cell's distance bound by a tenth of
#: a circumradius at most (a covering gains a few cells at its edge).
LOOSE_FACTOR = 1.1


class _Disk:
    """The rings computed so far around one anchor cell: grown when a query needs
    more rings, never recomputed."""

    def __init__(self, anchor: int, k: int) -> None:
        self.anchor = anchor
        self.lock = threading.Lock()
        cells, ring = _rings(anchor, 0, max(k, 1))
        first = cells[: int(np.searchsorted(ring, 2))]
        #: The circumradius of the cells past ring 1 (:data:`LOOSE_FACTOR`).
        self.loose_m = float(geometry(first)[2].max()) * LOOSE_FACTOR
        self.block = _rings_block(cells, ring, (), self.loose_m)

    def upto(self, k: int) -> DiskBlock:
        """The block of rings 0..k (at least; more when already computed)."""
        block = self.block
        if int(block.ring[-1]) >= k:
            return block
        with self.lock:
            block = self.block
            top = int(block.ring[-1])
            if top < k:
                more = _rings_block(*_rings(self.anchor, top + 1, k), block.tag_list, self.loose_m)
                block = _join(block, more)
                self.block = block
        return block


def _join(a: DiskBlock, b: DiskBlock) -> DiskBlock:
    """Block ``a`` followed by ``b`` (whose tag list extends a's)."""
    return DiskBlock(
        cells=a.cells + b.cells,
        ids=np.concatenate((a.ids, b.ids)),
        tags=a.tags + b.tags,
        tag_list=b.tag_list,
        numbers=np.concatenate((a.numbers, b.numbers)),
        ring=np.concatenate((a.ring, b.ring)),
        xyz=np.concatenate((a.xyz, b.xyz)),
        circum_m=np.concatenate((a.circum_m, b.circum_m)),
    )


#: Ordered, to drop the oldest in constant time (see :mod:`discovery.search.documents`).
#: The disks of anchors shared by a neighbourhood, and apart those of single origins (res
#: 11, where a disk seldom serves a second point): a stream of new points' own disks
#: would otherwise push out the shared ones that every query near them reads.
_disks: OrderedDict[int, _Disk] = OrderedDict()
_own_disks: OrderedDict[int, _Disk] = OrderedDict()
_disks_lock = threading.Lock()
#: Disks kept of each kind; past this the oldest are dropped.
MAX_DISKS = 2048


def disk_block(anchor: int, k: int, shared: bool = True) -> DiskBlock:
    """The geometry of every cell within ``k`` rings of ``anchor`` (or more), ready for numpy;
    ``shared``: whether the anchor serves a neighbourhood (else one origin)."""
    return _disk(anchor, k, shared).upto(k)


def _disk(anchor: int, k: int, shared: bool) -> _Disk:
    """The disk of ``anchor`` (made with ``k`` rings when new)."""
    kept = _disks if shared else _own_disks
    disk = kept.get(anchor)
    if disk is None:
        disk = _Disk(anchor, k)
        with _disks_lock:
            disk = kept.setdefault(anchor, disk)
            if len(kept) > MAX_DISKS:
                kept.popitem(last=False)
    return disk


def unit_vectors(lat_r: np.ndarray, lng_r: np.ndarray) -> np.ndarray:
    """Points (radians) as unit vectors on the sphere, one row each."""
    cos_lat = np.cos(lat_r)
    return np.stack((cos_lat * np.cos(lng_r), cos_lat * np.sin(lng_r), np.sin(lat_r)), axis=1)


def block_dmin_m(block: DiskBlock, lat: float, lng: float) -> np.ndarray:
    """Lower bounds of the distance from (lat, lng) to each cell of ``block``.

    The centre distance comes from the chord between unit vectors (2 R asin(c / 2),
    the haversine's value to within rounding, in a third of numpy's calls); the
    circumradii's widening covers the rounding.
    """
    lat_r, lng_r = math.radians(lat), math.radians(lng)
    cos_lat = math.cos(lat_r)
    point = (cos_lat * math.cos(lng_r), cos_lat * math.sin(lng_r), math.sin(lat_r))
    apart = block.xyz - point
    half_chord = np.sqrt(np.einsum("ij,ij->i", apart, apart)) * 0.5
    centre_m = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(half_chord, 1.0))
    return np.maximum(centre_m - block.circum_m, 0.0)


def first_ring_beyond(
    block: DiskBlock, dmin_m: np.ndarray, radius_m: float, after: int
) -> int | None:
    """The first ring past ``after`` whose cells all lie wholly beyond ``radius_m``
    (None: none in the block)."""
    near_rings = block.ring[dmin_m <= radius_m]
    top = int(block.ring[-1])
    reached = set(near_rings.tolist())
    for j in range(after + 1, top + 1):
        if j not in reached:
            return j
    return None


#: How many resolutions above the query's the anchor's parent lies, by resolution
#: (49 cells a parent at 2).  Not at 11: the points of a res-9 neighbourhood
#: (0.1 km²) seldom come back, and a disk made for one point costs more than its own.
ANCHOR_UP = {5: 2, 7: 2, 9: 2, 11: 0}
#: Rings a disk has beyond :func:`initial_rings` when anchored: the origins of one
#: anchor lie within about three rings of it.
ANCHOR_RINGS = 4


def anchor_of(origin: int, res: int) -> int:
    """The cell whose disk serves queries from ``origin``: the centre child of its
    parent ``ANCHOR_UP[res]`` resolutions coarser (the origin itself at 0)."""
    up = ANCHOR_UP.get(res, 0)
    if up == 0:
        return origin
    parent = h3i.cell_to_parent(origin, max(res - up, 0))
    return int(h3i.cell_to_center_child(parent, res))


def initial_rings(radius_m: float, res: int) -> int:
    """A first guess of the rings needed; the safe rule grows it when short."""
    edge_m = h3.average_hexagon_edge_length(res, "m")
    return int(radius_m / (1.5 * edge_m) + 3.5)


def _covered(
    lat: float, lng: float, radius_m: float, res: int
) -> tuple[DiskBlock, np.ndarray, np.ndarray, int]:
    """The block, distance bounds, covering cells' positions (nearest first) and first ring
    beyond the circle."""
    origin = h3i.latlng_to_cell(lat, lng, res)
    anchor = anchor_of(origin, res)
    k = initial_rings(radius_m, res) + (ANCHOR_RINGS if anchor != origin else 0)
    while True:
        block = disk_block(anchor, k, anchor != origin)
        at = np.flatnonzero(block.ids == origin)
        if at.size:
            dmin = block_dmin_m(block, lat, lng)
            beyond = first_ring_beyond(block, dmin, radius_m, int(block.ring[at[0]]))
            if beyond is not None:
                break
        k = int(block.ring[-1]) + 2
    keep = np.flatnonzero((dmin <= radius_m) & (block.ring < beyond))
    return block, dmin, keep[np.argsort(dmin[keep], kind="stable")], beyond


def cover(lat: float, lng: float, radius_m: float, res: int | None = None) -> Covering:
    """Cover the circle of ``radius_m`` around (lat, lng) with cells, nearest first.

    Every cell that could hold a point within the radius is returned, with a
    lower bound ``dmin_m`` of its distance (0 for the cell holding the point).
    """
    res = resolution_for(radius_m) if res is None else res
    block, dmin, order, beyond = _covered(lat, lng, radius_m, res)
    cells = tuple(CellCover(block.cells[i], block.tags[i], float(dmin[i])) for i in order.tolist())
    return Covering(res=res, radius_m=radius_m, rings=beyond - 1, cells=cells)


#: The last coverings written for the script, kept: a query asks its own more than once
#: (its groups' flatness, then its call; a call asked again).
SCRIPT_CELLS_KEPT = 256
#: The script reads distance bounds as little-endian doubles.
_BOUNDS = np.dtype("<f8")
#: Characters of every H3 cell's hex id: the script reads the cells' ids unseparated.
CELL_HEX = 15


@lru_cache(maxsize=SCRIPT_CELLS_KEPT)
def script_cells(
    lat: float, lng: float, radius_m: float, res: int
) -> tuple[str, str, bytes, bytes, str]:
    """The covering as the search script reads it: the last word of the cells' t
    hash (:func:`indexer.hot.layout.tops_field`), the hash tags they are
    numbered by, each cell's tag number (a byte each), each cell's distance
    bound (packed doubles) and the cells' hex ids (:data:`CELL_HEX` characters
    each, unseparated).

    The same cells as :func:`cover`, nearest first, written straight from the
    cached block.
    """
    block, dmin, order, _ = _covered(lat, lng, radius_m, res)
    cells = block.cells
    return (
        layout.tops_field(res),
        layout.SEP.join(block.tag_list),
        block.numbers[order].tobytes(),
        dmin[order].astype(_BOUNDS).tobytes(),
        "".join([cells[i] for i in order.tolist()]),
    )
