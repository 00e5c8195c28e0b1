"""Debug tiles: geometry, the PNG, the GeoJSON and the diff, over real PostGIS and Redis.

Expected cells, counts and pixels are worked out here with h3 and the Web
Mercator formulas directly, not with the module under test.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import h3
import mercantile
import pytest
from click.testing import CliRunner, Result
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image
from shapely.geometry import Polygon, box

from indexer import layout
from indexer.model import Entity
from indexer.tile_data import scan_query
from indexer.tile_render import BACKGROUND, COUNT_COLOURS, legend_box
from indexer.tiles import (
    TileLayers,
    descendant_range,
    display_res,
    lat_lng_to_pixel,
    tile_at,
    tile_cells,
)
from indexer.writer import write_entities
from scripts.debug_tile import main as debug_tile

from ..conftest import Index

# Central Helsinki at zoom 14: res-9 cells are ~145 px wide there, ids get written in.
TILE = mercantile.Tile(x=9327, y=4742, z=14)
SIZE = 512
# Entities per cell for some cells of the tile: one count in each of four colour buckets.
PLANTED = (1, 3, 6, 12)


def pixel_of(lat: float, lng: float, tile: mercantile.Tile = TILE) -> tuple[float, float]:
    """Web Mercator pixel of a point in a 512 px tile, from the spherical formulas."""
    scale = SIZE * 2**tile.z
    world_x = (lng + 180.0) / 360.0 * scale
    sin_lat = math.sin(math.radians(lat))
    world_y = (0.5 - math.log((1 + sin_lat) / (1 - sin_lat)) / (4 * math.pi)) * scale
    return world_x - tile.x * SIZE, world_y - tile.y * SIZE


def expected_cells(tile: mercantile.Tile = TILE) -> set[str]:
    """Res-9 cells whose outline overlaps the tile's lat/lng box (more than an edge)."""
    bounds = mercantile.bounds(tile)
    square = box(bounds.west, bounds.south, bounds.east, bounds.north)
    centre = h3.latlng_to_cell(
        (bounds.south + bounds.north) / 2, (bounds.west + bounds.east) / 2, 9
    )
    found = set()
    for cell in h3.grid_disk(centre, 8):
        outline = Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(cell)])
        if outline.intersects(square) and not outline.touches(square):
            found.add(cell)
    return found


def inside(lat: float, lng: float, tile: mercantile.Tile = TILE) -> bool:
    return mercantile.tile(lng=lng, lat=lat, zoom=tile.z) == tile


def towards_vertex(cell: str, vertex: int, fraction: float) -> tuple[float, float]:
    """A point ``fraction`` of the way from the cell's centre to one of its vertices."""
    lat, lng = h3.cell_to_latlng(cell)
    v_lat, v_lng = h3.cell_to_boundary(cell)[vertex % 6]
    return lat + (v_lat - lat) * fraction, lng + (v_lng - lng) * fraction


def planted_cells() -> list[str]:
    """Four cells whose centres are well inside the tile and clear of the legend's corner."""
    chosen = []
    for cell in sorted(expected_cells()):
        x, y = pixel_of(*h3.cell_to_latlng(cell))
        if 20 < x < SIZE - 20 and 20 < y < SIZE / 2:
            chosen.append(cell)
    assert len(chosen) >= len(PLANTED)
    return chosen[: len(PLANTED)]


def planted_entities() -> list[Entity]:
    """Entities in the planted cells, away from the centres (so that the fill shows there)."""
    entities = []
    for cell, count in zip(planted_cells(), PLANTED, strict=True):
        for n in range(count):
            lat, lng = towards_vertex(cell, n, 0.35 + 0.05 * (n // 6))
            assert h3.latlng_to_cell(lat, lng, 9) == cell
            kind = ("store", "bike", "charger")[n % 3]
            live = {"available": 1, "capacity": 2} if kind != "store" else {}
            entities.append(
                Entity(id=f"t:{cell}:{n}", kind=kind, lat=lat, lng=lng, popularity=n, **live)  # type: ignore[arg-type]
            )
    # Far away, in no cell of the tile.
    entities.append(Entity(id="t:far", kind="store", lat=60.30, lng=25.10))
    return entities


@pytest.fixture
def planted(index: Index) -> list[Entity]:
    entities = planted_entities()
    write_entities(index.conn, index.hot, "t", entities)
    return entities


@pytest.fixture
def render(cli_env: dict[str, str], tmp_path: Path) -> Callable[..., tuple[Result, bytes]]:
    """Run scripts/debug_tile.py with the test index's settings; return its result and file."""

    def run(*args: str) -> tuple[Result, bytes]:
        out = tmp_path / "tile.out"
        result = CliRunner().invoke(debug_tile, [*args, "-o", str(out)], env=cli_env)
        return result, out.read_bytes() if out.exists() else b""

    return run


def zxy(tile: mercantile.Tile = TILE) -> list[str]:
    return [str(tile.z), str(tile.x), str(tile.y)]


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


# -- the PNG ----------------------------------------------------------------


def test_png_is_512_px_and_fills_exactly_the_cells_that_hold_entities(
    planted: list[Entity], render: Callable[..., tuple[Result, bytes]]
) -> None:
    result, png = render(*zxy())
    assert result.exit_code == 0, result.output
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    assert image.size == (512, 512)
    counts = Counter(h3.latlng_to_cell(e.lat, e.lng, 9) for e in planted)
    layers = TileLayers(TILE, 9, dict.fromkeys(expected_cells(), 0))
    left, top, right, bottom = legend_box(layers)
    fills = dict(zip(PLANTED, [COUNT_COLOURS[i][1] for i in (0, 1, 2, 3)], strict=True))
    checked = Counter()
    for cell in expected_cells():
        x, y = pixel_of(*h3.cell_to_latlng(cell))
        if not (0 <= x < SIZE and 0 <= y < SIZE) or (left <= x <= right and top <= y <= bottom):
            continue
        want = fills[counts[cell]] if counts[cell] else BACKGROUND
        assert image.getpixel((int(x), int(y))) == want, cell
        checked[bool(counts[cell])] += 1
    assert checked[True] == len(PLANTED)
    assert checked[False] >= 1


def test_png_of_a_query_and_a_coordinate_tile(
    planted: list[Entity], render: Callable[..., tuple[Result, bytes]]
) -> None:
    lat, lng = h3.cell_to_latlng(planted_cells()[0])
    result, png = render(
        "--lat", str(lat), "--lng", str(lng), "--zoom", "14", "--query", f"{lat},{lng},300,limit=3"
    )
    assert result.exit_code == 0, result.output
    assert Image.open(io.BytesIO(png)).size == (512, 512)


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


def test_scan_query_filters_and_sorts_by_distance(index: Index, planted: list[Entity]) -> None:
    cell = planted_cells()[3]
    lat, lng = h3.cell_to_latlng(cell)
    query = scan_query(index.conn, lat, lng, 150, {"kinds": "bike", "sort": "distance"})
    assert {dot.kind for dot in query.candidates} == {"bike"}
    distances = [
        h3.great_circle_distance((lat, lng), (d.lat, d.lng), unit="m") for d in query.results
    ]
    assert distances == sorted(distances)
    assert len(query.results) == len(
        [e for e in planted_entities() if e.id.startswith(f"t:{cell}") and e.kind == "bike"]
    )


# -- the diff -------------------------------------------------------------------


def test_diff_of_an_index_in_agreement_is_empty(
    planted: list[Entity], render: Callable[..., tuple[Result, bytes]]
) -> None:
    result, _ = render(*zxy(), "--diff")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "0 cells where Redis and PostGIS disagree"


def test_diff_finds_a_member_deleted_from_redis(
    index: Index, planted: list[Entity], render: Callable[..., tuple[Result, bytes]]
) -> None:
    cell = planted_cells()[2]
    victim = f"t:{cell}:4"
    gen = index.hot.require_generation()
    key = layout.cell_key(index.hot.prefix, gen, cell)
    assert index.hot.raw.zrem(key, index.member(victim)) == 1
    result, data = render(*zxy(), "--diff", "--format", "geojson")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "1 cells where Redis and PostGIS disagree",
        cell,
        f"  {victim}: missing from the res-9 set of {cell}",
    ]
    features = json.loads(data)["features"]
    marked = [f["properties"] for f in features if f["properties"]["layer"] == "differences"]
    assert marked == [
        {
            "layer": "differences",
            "cell": cell,
            "problems": [f"{victim}: missing from the res-9 set of {cell}"],
        }
    ]


def test_diff_finds_a_stray_member_and_a_wrong_popularity(
    index: Index, planted: list[Entity], render: Callable[..., tuple[Result, bytes]]
) -> None:
    first, second = planted_cells()[:2]
    gen = index.hot.require_generation()
    raw, prefix = index.hot.raw, index.hot.prefix
    lat, lng = h3.cell_to_latlng(first)
    ghost = {"id": "t:ghost", "kind": "store", "lat": lat, "lng": lng, "popularity": 1.0, "rev": 1}
    raw.zadd(layout.cell_key(prefix, gen, first), {layout.member_of({**ghost, "source": "t"}): 1.0})
    raw.zadd(layout.cell_key(prefix, gen, second), {index.member(f"t:{second}:1"): 99.0})
    result, png = render(*zxy(), "--diff")
    assert result.exit_code == 1
    problems = {
        first: f"  t:ghost: in the res-9 set of {first}, not there in PostGIS",
        second: f"  t:{second}:1: popularity 99.0 in the res-9 set, 1.0 in PostGIS",
    }
    expected = ["2 cells where Redis and PostGIS disagree"]
    for cell in sorted(problems):
        expected += [cell, problems[cell]]
    assert result.output.splitlines() == expected
    assert Image.open(io.BytesIO(png)).size == (512, 512)


def test_diff_without_a_hot_index_marks_every_cell_with_entities(
    index: Index, planted: list[Entity], render: Callable[..., tuple[Result, bytes]]
) -> None:
    index.hot.drop_all()
    result, _ = render(*zxy(), "--diff")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == f"{len(PLANTED)} cells where Redis and PostGIS disagree"


# -- usage --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give Z X Y, or --lat, --lng and --zoom"),
        (["15", "99999999", "1"], "no tile 15/99999999/1"),
        (["15", "1", "1", "--lat", "1"], "not both"),
        (["15", "1", "1", "--query", "1,2"], "expected LAT,LNG,RADIUS_M"),
        (["15", "1", "1", "--query", "1,2,3,limit"], "expected name=value"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(
    args: list[str], message: str, render: Callable[..., tuple[Result, bytes]]
) -> None:
    result, data = render(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert data == b""
