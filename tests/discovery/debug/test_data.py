"""What a tile reads from PostGIS and Redis: the diff (through scripts/debug_tile.py)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import h3
from click.testing import Result
from PIL import Image

from indexer.hot import encoding, layout
from indexer.model import Entity
from tests.conftest import Index
from tests.factories import PLANTED, planted_cells, zxy


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
    raw.zadd(
        layout.cell_key(prefix, gen, first), {encoding.member_of({**ghost, "source": "t"}): 1.0}
    )
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
