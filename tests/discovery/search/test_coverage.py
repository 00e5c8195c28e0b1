"""The covering: every point within the radius lies in a covered cell, with a true bound."""

from __future__ import annotations

import math
import random
import struct

import h3
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from discovery.search import coverage
from discovery.search.cell_geometry import cell_geometry, geometry
from discovery.search.coverage import cover, resolution_for, script_cells
from indexer.hot import layout
from indexer.model import INDEX_RESOLUTIONS
from indexer.rules import distance_m
from tests.factories import point_at

PENTAGON_9 = h3.cell_to_latlng(h3.get_pentagons(9)[0])
PENTAGON_7 = h3.cell_to_latlng(h3.get_pentagons(7)[5])
PENTAGON_5 = h3.cell_to_latlng(h3.get_pentagons(5)[11])


@pytest.mark.parametrize(
    ("radius_m", "res"),
    [(10, 11), (200, 11), (201, 9), (1_000, 9), (1_500, 9), (1_501, 7), (10_000, 7), (50_000, 5)],
)
def test_resolution_by_radius(radius_m, res) -> None:
    assert resolution_for(radius_m) == res and res in INDEX_RESOLUTIONS


@pytest.mark.parametrize("radius_m", [10, 1_000, 10_000, 50_000])
def test_cell_counts_stay_small(radius_m) -> None:
    assert 1 <= len(cover(37.5665, 126.978, radius_m).cells) <= 250


lats = st.floats(-90, 90)
lngs = st.floats(-180, 180, exclude_max=True)


@settings(max_examples=150, deadline=None)
@given(
    lat=lats,
    lng=lngs,
    radius_m=st.sampled_from([10.0, 333.0, 1_500.0, 7_000.0, 50_000.0]),
    bearing=st.floats(0, 2 * math.pi),
    fraction=st.floats(0, 1),
)
@example(lat=90.0, lng=0.0, radius_m=50_000.0, bearing=1.0, fraction=1.0)
@example(lat=-89.99, lng=170.0, radius_m=1_500.0, bearing=2.0, fraction=0.99)
@example(lat=0.0, lng=179.9999, radius_m=7_000.0, bearing=math.pi / 2, fraction=1.0)
@example(lat=PENTAGON_9[0], lng=PENTAGON_9[1], radius_m=1_500.0, bearing=0.3, fraction=1.0)
@example(lat=PENTAGON_7[0], lng=PENTAGON_7[1], radius_m=7_000.0, bearing=4.0, fraction=0.999)
@example(lat=PENTAGON_5[0], lng=PENTAGON_5[1], radius_m=50_000.0, bearing=5.5, fraction=1.0)
def test_every_point_in_the_circle_is_covered(lat, lng, radius_m, bearing, fraction) -> None:
    covering = cover(lat, lng, radius_m)
    target = point_at(lat, lng, bearing, radius_m * fraction)
    if distance_m(lat, lng, *target) > radius_m:
        return
    cell = h3.latlng_to_cell(*target, covering.res)
    found = {c.cell: c for c in covering.cells}
    assert cell in found
    assert found[cell].dmin_m <= distance_m(lat, lng, *target)


@settings(max_examples=60, deadline=None)
@given(
    lat=lats, lng=lngs, res=st.sampled_from(INDEX_RESOLUTIONS), u=st.floats(0, 1), v=st.floats(0, 1)
)
@example(lat=PENTAGON_9[0], lng=PENTAGON_9[1], res=9, u=0.5, v=0.5)
def test_circumradius_holds_the_cell(lat, lng, res, u, v) -> None:
    cell = h3.latlng_to_cell(lat, lng, res)
    c_lat, c_lng, circum_m, tag = cell_geometry(cell)
    boundary = h3.cell_to_boundary(cell)
    a, b = boundary[int(u * len(boundary)) % len(boundary)], boundary[int(v * 3) % len(boundary)]
    # a point between the centre and the boundary stays within the circumradius
    point = ((a[0] + b[0] + c_lat) / 3, (a[1] + b[1] + c_lng) / 3)
    if h3.latlng_to_cell(*point, res) == cell:
        assert distance_m(c_lat, c_lng, *point) <= circum_m
    assert tag == h3.cell_to_parent(cell, 3)


def test_cells_come_nearest_first() -> None:
    covering = cover(PENTAGON_9[0], PENTAGON_9[1], 1_000)
    bounds = [c.dmin_m for c in covering.cells]
    assert bounds == sorted(bounds) and bounds[0] == 0.0


@pytest.mark.parametrize(
    ("lat", "lng", "radius_m"),
    [
        (37.5665, 126.978, 1_000.0),
        (*PENTAGON_9, 150.0),
        (*PENTAGON_7, 7_000.0),
        (89.9, 10.0, 50_000.0),
    ],
)
def test_script_cells_write_the_covering(lat, lng, radius_m) -> None:
    res = resolution_for(radius_m)
    covering = cover(lat, lng, radius_m, res)
    tops, tags, numbers, bounds, packed = script_cells(lat, lng, radius_m, res)
    cells = [packed[at : at + 15] for at in range(0, len(packed), 15)]
    assert tops == layout.tops_field(res)
    numbered = tags.split("\x1f")
    assert len(set(numbered)) == len(numbered)
    dmins = struct.unpack(f"<{len(cells)}d", bounds)
    triples = zip(numbers, cells, dmins, strict=True)
    written = [(numbered[n - 1], hex_id, d) for n, hex_id, d in triples]
    assert written == [(c.tag, c.cell, c.dmin_m) for c in covering.cells]


@pytest.mark.parametrize("radius_m", [150.0, 1_000.0])
@pytest.mark.parametrize("parent", [h3.latlng_to_cell(60.17, 24.94, 7), h3.get_pentagons(7)[3]])
def test_every_origin_of_an_anchor_gets_its_whole_circle(parent, radius_m) -> None:
    """The children of one parent share a disk: a point in each still gets every cell
    its circle can meet, with a true bound, however far it lies from the anchor."""
    for child in h3.cell_to_children(parent, 9):
        lat, lng = h3.cell_to_latlng(child)
        covering = cover(lat, lng, radius_m, 9)
        found = {c.cell: c.dmin_m for c in covering.cells}
        near = [
            c
            for c in h3.grid_disk(child, 9)
            if distance_m(lat, lng, *h3.cell_to_latlng(c)) <= radius_m
        ]
        assert near and all(
            c in found and found[c] <= distance_m(lat, lng, *h3.cell_to_latlng(c)) for c in near
        )


def test_the_points_of_a_neighbourhood_share_one_disk() -> None:
    """A point in each of the 49 res-9 cells of one res-7 parent: one disk made, not 49."""
    parent = h3.latlng_to_cell(37.5665, 126.978, 7)
    coverage._disks.clear()  # a cache: emptied, only the disks made here are left
    for child in h3.cell_to_children(parent, 9):
        cover(*h3.cell_to_latlng(child), 1_000.0, 9)
    assert len(coverage._disks) == 1


def test_single_points_disks_do_not_push_out_the_shared_ones(monkeypatch) -> None:
    """Res-11 disks (each its own origin's) are kept apart: however many new points ask,
    the disks that neighbourhoods share stay."""
    monkeypatch.setattr(coverage, "MAX_DISKS", 8)
    coverage._disks.clear()
    coverage._own_disks.clear()
    lat, lng = 37.5665, 126.978
    cover(lat, lng, 1_000.0, 9)
    shared = list(coverage._disks)
    for step in range(20):
        cover(*point_at(lat, lng, 0.3 * step, 40.0 * step), 150.0, 11)
    assert list(coverage._disks) == shared and len(coverage._own_disks) == 8


#: Rings of the disks the loose bound is checked on: more than any search grows (a 50 km
#: query's disk at res 5 has 10, a 200 m one's at res 11 8, each grown by 2 when short).
LOOSE_RINGS = 16


def loose_anchors(res: int) -> list[int]:
    """Every pentagon of ``res``, cells beside the poles and the antimeridian, and random ones."""
    rng = random.Random(res)
    points = [(89.99, 0.0), (-89.99, 45.0), (0.0, 179.99), (65.0, -179.99)]
    points += [(math.degrees(math.asin(rng.uniform(-1, 1))), rng.uniform(-180, 180))
               for _ in range(12)]  # fmt: skip
    pentagons = [h3.str_to_int(cell) for cell in h3.get_pentagons(res)]
    return pentagons + [h3.str_to_int(h3.latlng_to_cell(lat, lng, res)) for lat, lng in points]


@pytest.mark.parametrize("res", INDEX_RESOLUTIONS)
def test_the_loose_circumradius_holds_every_cell_of_a_disk(res) -> None:
    """A disk's cells past ring 1 take a loose circumradius (coverage.LOOSE_FACTOR): it is at
    least each one's own, around pentagons, at the poles and across the antimeridian, with
    room to spare (the largest own seen is within a twentieth of the loose one's base)."""
    for anchor in loose_anchors(res):
        disk = coverage._Disk(anchor, LOOSE_RINGS)
        block = disk.block
        far = block.ring > 1
        assert far.any() and (block.circum_m[far] == disk.loose_m).all()
        own = geometry(block.ids[far])[2]
        assert own.max() * coverage.LOOSE_FACTOR / 1.05 <= disk.loose_m
        # The first rings keep their own, which the covering's bounds of them use.
        assert (block.circum_m[~far] == geometry(block.ids[~far])[2]).all()
