"""The PNG of a tile (through scripts/debug_tile.py): size, fills by count, a query drawn.

Expected cells and pixels are worked out with h3 and the Web Mercator formulas
directly (tests/factories.py), not with the module under test.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable

import h3
from click.testing import Result
from PIL import Image

from discovery.debug.render import BACKGROUND, COUNT_COLOURS, legend_box
from discovery.debug.tiles import TileLayers
from indexer.model import Entity
from tests.factories import PLANTED, SIZE, TILE, expected_cells, pixel_of, planted_cells, zxy


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
