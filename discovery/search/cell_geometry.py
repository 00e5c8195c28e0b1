"""The geometry of H3 cells the coverings need: centres, circumradii and hash tags.

Per cell computed once (in bulk, on integer ids) and kept by id, since neighbouring
queries' disks share most of their cells (:mod:`discovery.search.coverage`).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain

import h3
import h3.api.numpy_int as h3i
import numpy as np

from indexer.model import TAG_RES
from indexer.rules import EARTH_RADIUS_M

#: Circumradii are widened by this factor and this many metres, so that float
#: rounding (numpy versus libm, vertex positions) never makes a bound too high.
CIRCUM_FACTOR = 1.0001
CIRCUM_SLACK_M = 0.5


#: Where an H3 index holds its resolution (4 bits); its 15 digits of 3 bits lie below.
_RES_SHIFT = 52
_RES_MASK = np.uint64(0xF << _RES_SHIFT)


def parents(cells: np.ndarray, res: int) -> np.ndarray:
    """The parents at ``res`` of H3 cells (uint64, all finer than ``res``), in bulk.

    As ``cellToParent``: the resolution field set to ``res`` and the digits past it set to 7.
    """
    unused = np.uint64((1 << (3 * (15 - res))) - 1)
    return (cells & ~_RES_MASK) | np.uint64(res << _RES_SHIFT) | unused


def hex_ids(cells: np.ndarray) -> tuple[str, ...]:
    """The hex ids of cells (uint64)."""
    return tuple(format(cell, "x") for cell in cells.tolist())


#: Centre (degrees) and widened circumradius (m) of every cell met so far, by id: neighbouring
#: origins share most of their disks.  Emptied when it reaches MAX_CELLS.
_cells: dict[int, tuple[float, float, float]] = {}
MAX_CELLS = 1 << 18


def geometry(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre latitudes and longitudes (degrees) and widened circumradii (m) of cells."""
    ids = cells.tolist()
    known = [_cells.get(cell) for cell in ids]
    missing = [cell for cell, geometry in zip(ids, known, strict=True) if geometry is None]
    if missing:
        if len(_cells) + len(missing) > MAX_CELLS:
            _cells.clear()
        new = dict(zip(missing, zip(*_new_geometry(missing), strict=True), strict=True))
        _cells.update(new)
        known = [
            new[cell] if geometry is None else geometry
            for cell, geometry in zip(ids, known, strict=True)
        ]
    table = np.array(known, dtype=np.float64).reshape(-1, 3)
    return table[:, 0], table[:, 1], table[:, 2]


def centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre latitudes and longitudes (degrees) of cells."""
    ids = cells.tolist()
    table = _floats([h3i.cell_to_latlng(cell) for cell in ids], len(ids) * 2).reshape(-1, 2)
    return table[:, 0], table[:, 1]


def _new_geometry(cells: list[int]) -> tuple[list[float], list[float], list[float]]:
    """Centre latitudes, longitudes and widened circumradii of cells, computed.

    The circumradius is the largest distance from the centre to a boundary
    vertex (distortion vertices of cells crossing an icosahedron edge
    included); cell edges are great-circle arcs, so the cell lies inside it.
    """
    n = len(cells)
    centres = _floats([h3i.cell_to_latlng(cell) for cell in cells], n * 2).reshape(n, 2)
    boundaries = [h3i.cell_to_boundary(cell) for cell in cells]
    width = max(map(len, boundaries))
    # Shorter boundaries repeat their first vertex: a repeated vertex changes no maximum.
    padded = [b if len(b) == width else b + b[:1] * (width - len(b)) for b in boundaries]
    verts = _floats(chain.from_iterable(padded), n * width * 2).reshape(n, width, 2)
    c_lat = np.radians(centres[:, 0])[:, None]
    c_lng = np.radians(centres[:, 1])[:, None]
    v_lat, v_lng = np.radians(verts[:, :, 0]), np.radians(verts[:, :, 1])
    sl = np.sin((v_lat - c_lat) * 0.5)
    sg = np.sin((v_lng - c_lng) * 0.5)
    a = np.clip(sl * sl + np.cos(c_lat) * np.cos(v_lat) * sg * sg, 0.0, 1.0)
    far = (2 * np.arctan2(np.sqrt(a), np.sqrt(1 - a)) * EARTH_RADIUS_M).max(axis=1)
    circum = far * CIRCUM_FACTOR + CIRCUM_SLACK_M
    return centres[:, 0].tolist(), centres[:, 1].tolist(), circum.tolist()


def _floats(pairs: Iterable[tuple[float, float]], count: int) -> np.ndarray:
    """The ``count`` numbers of ``pairs``, flat (numpy's fastest way from tuples)."""
    return np.fromiter(chain.from_iterable(pairs), np.float64, count)


def cell_geometry(cell: str) -> tuple[float, float, float, str]:
    """(centre lat, centre lng, widened circumradius in m, hash tag) of a cell."""
    cells = np.array([h3.str_to_int(cell)], dtype=np.uint64)
    lat, lng, circum = geometry(cells)
    return float(lat[0]), float(lng[0]), float(circum[0]), hex_ids(parents(cells, TAG_RES))[0]
