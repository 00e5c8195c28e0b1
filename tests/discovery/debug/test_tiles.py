"""Tile geometry and the GeoJSON layers (through scripts/debug_tile.py).

Expected cells, counts and pixels are worked out with h3 and the Web Mercator
formulas directly (tests/factories.py), not with the module under test.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import h3
import mercantile
import pytest
from click.testing import Result
from hypothesis import example, given
from hypothesis import strategies as st

from discovery.debug.tiles import (
    descendant_range,
    display_res,
    lat_lng_to_pixel,
    tile_at,
    tile_cells,
)
from indexer.model import Entity
from tests.factories import SIZE, TILE, expected_cells, inside, pixel_of, planted_cells, zxy


# -- geometry ---------------------------------------------------------------
def test_tile_cells_are_the_cells_overlapping_the_tile() -> None:
    assert set(tile_cells(TILE, 9)) == expected_cells()
    assert tile_cells(TILE, 9) == sorted(expected_cells())


def test_display_res_is_the_base_resolution_when_zoomed_in_and_coarser_when_not() -> None:
    assert display_res(TILE) == 9
    assert display_res(mercantile.Tile(x=0, y=0, z=0)) == 1  # 842 cells; res 2 has 5,882
    wide = mercantile.Tile(x=582, y=296, z=10)
    assert display_res(wide) < 9
    assert len(tile_cells(wide, display_res(wide))) <= 3000


@given(
    lat=st.floats(-85.0, 85.0),
    lng=st.floats(-180.0, 179.999),
    zoom=st.integers(0, 22),
)
@example(lat=0.0, lng=-180.0, zoom=3)
@example(lat=85.0, lng=179.999, zoom=18)
@example(lat=-85.0, lng=0.0, zoom=1)
def test_a_point_falls_in_the_pixels_of_its_own_tile(lat: float, lng: float, zoom: int) -> None:
    tile = tile_at(lat, lng, zoom)
    x, y = lat_lng_to_pixel(tile, lat, lng)
    want_x, want_y = pixel_of(lat, lng, tile)
    assert x == pytest.approx(want_x, abs=1e-4)  # float rounding at 2e9 px
    assert y == pytest.approx(want_y, abs=1e-4)
    assert -1e-6 <= x < SIZE + 1e-6 and -1e-6 <= y < SIZE + 1e-6


@given(lat=st.floats(-89.0, 89.0), lng=st.floats(-180.0, 179.999), res=st.integers(0, 7))
@example(lat=64.7, lng=10.5, res=2)  # base cell 14's pentagon neighbourhood
@example(lat=0.0, lng=-179.99, res=5)  # on the antimeridian
@example(lat=89.9, lng=0.0, res=1)  # at the pole
def test_descendant_range_holds_exactly_the_base_descendants(
    lat: float, lng: float, res: int
) -> None:
    parent = h3.latlng_to_cell(lat, lng, res)
    lo, hi = descendant_range(h3.str_to_int(parent), 9)
    assert lo == h3.str_to_int(h3.cell_to_center_child(parent, 9))
    if res >= 5:  # small enough to list every descendant
        children = [h3.str_to_int(c) for c in h3.cell_to_children(parent, 9)]
        assert lo <= min(children) and max(children) <= hi
    # A neighbour's descendants are outside the range.
    for neighbour in h3.grid_ring(parent, 1):
        child = h3.str_to_int(h3.cell_to_center_child(neighbour, 9))
        assert not lo <= child <= hi


def test_descendant_range_of_a_pentagon() -> None:
    pentagon = h3.get_pentagons(6)[3]
    lo, hi = descendant_range(h3.str_to_int(pentagon), 9)
    children = [h3.str_to_int(c) for c in h3.cell_to_children(pentagon, 9)]
    assert len(children) == h3.cell_to_children_size(pentagon, 9)
    assert all(lo <= c <= hi for c in children)


def test_descendant_range_refuses_a_finer_cell() -> None:
    with pytest.raises(ValueError, match="no descendants"):
        descendant_range(h3.str_to_int(h3.latlng_to_cell(0.0, 0.0, 10)), 9)


# -- GeoJSON ------------------------------------------------------------------


def test_geojson_has_exactly_the_expected_cells_and_entities(
    planted: list[Entity], render: Callable[..., tuple[Result, bytes]]
) -> None:
    result, data = render(*zxy(), "--format", "geojson")
    assert result.exit_code == 0, result.output
    doc = json.loads(data)
    by_layer: dict[str, list[dict]] = {}
    for item in doc["features"]:
        by_layer.setdefault(item["properties"]["layer"], []).append(item)
    assert set(by_layer) == {"cells", "entities"}
    counts = Counter(h3.latlng_to_cell(e.lat, e.lng, 9) for e in planted)
    cells = {f["properties"]["cell"]: f["properties"]["count"] for f in by_layer["cells"]}
    assert cells == {cell: counts[cell] for cell in expected_cells()}
    ring = by_layer["cells"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 7
    entities = {f["properties"]["id"]: f["geometry"]["coordinates"] for f in by_layer["entities"]}
    assert entities == {e.id: [e.lng, e.lat] for e in planted if inside(e.lat, e.lng)}
    assert doc["tile"] == {"z": 14, "x": TILE.x, "y": TILE.y, "res": 9}


def test_geojson_of_a_query_ranks_the_results(
    planted: list[Entity], render: Callable[..., tuple[Result, bytes]]
) -> None:
    cell = planted_cells()[3]
    lat, lng = h3.cell_to_latlng(cell)
    result, data = render(*zxy(), "--format", "geojson", "--query", f"{lat},{lng},150,limit=4")
    assert result.exit_code == 0, result.output
    features = json.loads(data)["features"]
    results = [f["properties"] for f in features if f["properties"]["layer"] == "results"]
    candidates = {
        f["properties"]["id"] for f in features if f["properties"]["layer"] == "candidates"
    }
    within = {
        e.id
        for e in planted
        if h3.great_circle_distance((lat, lng), (e.lat, e.lng), unit="m") <= 150
    }
    assert candidates == within
    assert [r["rank"] for r in results] == [1, 2, 3, 4]
    # Equal distances from the centre in one cell: the most popular come first.
    assert results[0]["id"] == f"t:{cell}:11"
    (circle,) = [f for f in features if f["properties"]["layer"] == "query"]
    assert circle["properties"]["radius_m"] == 150
