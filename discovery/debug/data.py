"""Read what a debug tile shows from PostGIS (the truth) and Redis (the hot index).

Counts and dots come from PostGIS; ``--diff`` compares, for every entity of the
tile's cells, what Redis holds with what PostGIS says (its location entry, its
place in each indexed cell set with its popularity, its payloads) and, at the
base resolution, the members of each cell's set with the entities of that cell.
The whole index is compared by ``nearby cache verify``; this looks at one tile.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import h3
import mercantile
import psycopg
import redis
from psycopg.rows import dict_row

from discovery.debug.tiles import (
    Dot,
    QueryOverlay,
    TileLayers,
    descendant_range,
    display_res,
    tile_cells,
)
from indexer.hot import encoding, layout
from indexer.hot.index import HotIndex, chunked
from indexer.model import BASE_RES, INDEX_RESOLUTIONS

#: Most dots a tile draws (the most popular first).
MAX_DOTS = 20_000
#: Most entities a tile's diff looks at; zoom in for more.
MAX_DIFF_ENTITIES = 200_000

# Each displayed cell as the interval of base-cell ids that descend from it.
RANGES = "unnest(%(cells)s::bigint[], %(lo)s::bigint[], %(hi)s::bigint[]) AS r(cell, lo, hi)"

COUNTS = f"""
SELECT r.cell, count(e.id) FROM {RANGES}
LEFT JOIN entities e ON e.h3 BETWEEN r.lo AND r.hi
GROUP BY r.cell
"""

# Inside the tile as mercantile.tile() decides it: west and north edges included.
IN_TILE = "e.lat > %(south)s AND e.lat <= %(north)s AND e.lng >= %(west)s AND e.lng < %(east)s"

DOTS = f"""
SELECT e.id, e.kind, e.lat, e.lng, count(*) OVER () FROM entities e
WHERE {IN_TILE} {{narrow}}
ORDER BY e.popularity DESC, e.id COLLATE "C"
LIMIT %(limit)s
"""

#: The columns a set member is made of (:func:`indexer.hot.encoding.member_of`).
MEMBER_COLUMNS = ("id", "rev", "kind", "lat", "lng", "popularity", *layout.MEMBER_FIELDS)

TRUTH = f"""
SELECT r.cell AS shown_in, {", ".join(f"e.{name}" for name in MEMBER_COLUMNS)} FROM {RANGES}
JOIN entities e ON e.h3 BETWEEN r.lo AND r.hi
ORDER BY e.id COLLATE "C"
LIMIT %(limit)s
"""


class TileTooLarge(ValueError):
    """The tile holds too much for what was asked; the message says to zoom in."""


def range_params(cells: Sequence[str]) -> dict[str, list[int]]:
    """SQL parameters naming each cell and its interval of base-cell descendants."""
    ints = [h3.str_to_int(cell) for cell in cells]
    bounds = [descendant_range(cell, BASE_RES) for cell in ints]
    return {"cells": ints, "lo": [lo for lo, _ in bounds], "hi": [hi for _, hi in bounds]}


def read_counts(conn: psycopg.Connection, cells: Sequence[str]) -> dict[str, int]:
    """Entities per cell (hex): those whose base cell descends from it."""
    if not cells:
        return {}
    with conn.cursor() as cur:
        cur.execute(COUNTS, range_params(cells))
        return {h3.int_to_str(cell): int(count) for cell, count in cur.fetchall()}


def read_dots(
    conn: psycopg.Connection, tile: mercantile.Tile, base_cells: Sequence[str] | None, limit: int
) -> tuple[list[Dot], int]:
    """Entities inside the tile, most popular first, at most ``limit``; and how many in all.

    ``base_cells`` (the base cells touching the tile, when the tile shows base
    cells) narrow the scan to the B-tree on ``h3``.
    """
    bounds = mercantile.bounds(tile)
    params: dict[str, object] = {
        "south": bounds.south,
        "north": bounds.north,
        "west": bounds.west,
        "east": bounds.east,
        "limit": limit,
    }
    narrow = ""
    if base_cells is not None:
        narrow = "AND e.h3 = ANY(%(base)s::bigint[])"
        params["base"] = [h3.str_to_int(cell) for cell in base_cells]
    with conn.cursor() as cur:
        cur.execute(DOTS.format(narrow=narrow), params)
        rows = cur.fetchall()
    dots = [Dot(id=row[0], kind=row[1], lat=row[2], lng=row[3]) for row in rows]
    return dots, int(rows[0][4]) if rows else 0


@dataclass(frozen=True, slots=True)
class Truth:
    """An entity as PostGIS has it, with the displayed cell it is counted in."""

    cell: str
    id: str
    rev: int
    place: encoding.Placement
    popularity: float
    #: Its member in the cell sets, as PostGIS says it should be.
    member: bytes


def read_truth(conn: psycopg.Connection, cells: Sequence[str]) -> list[Truth]:
    """Every entity counted in ``cells``; TileTooLarge past ``MAX_DIFF_ENTITIES``."""
    if not cells:
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(TRUTH, {**range_params(cells), "limit": MAX_DIFF_ENTITIES + 1})
        rows = cur.fetchall()
    if len(rows) > MAX_DIFF_ENTITIES:
        raise TileTooLarge(f"more than {MAX_DIFF_ENTITIES} entities to compare: zoom in")
    return [
        Truth(
            cell=h3.int_to_str(row["shown_in"]),
            id=row["id"],
            rev=row["rev"],
            place=encoding.placement_of(row["lat"], row["lng"]),
            popularity=row["popularity"],
            member=encoding.member_of(row),
        )
        for row in rows
    ]


def entity_problems(entity: Truth, answers: Sequence[object]) -> list[str]:
    """What is wrong in Redis with one entity, given the answers of :func:`ask_entity`."""
    held = encoding.parse_loc(answers[0] if isinstance(answers[0], bytes) else None)
    if held is None:
        return [f"{entity.id}: in PostGIS, not in Redis"]
    if held.rev != entity.rev:
        return [f"{entity.id}: Redis has rev {held.rev}, PostGIS {entity.rev}"]
    if list(held.pairs) != entity.place.pairs():
        return [f"{entity.id}: Redis places it in another cell"]
    problems = []
    scores = answers[1 : 1 + len(INDEX_RESOLUTIONS)]
    for res, cell, score in zip(INDEX_RESOLUTIONS, entity.place.cells, scores, strict=True):
        if score is None:
            problems.append(f"{entity.id}: missing from the res-{res} set of {cell}")
        elif float(str(score)) != entity.popularity:
            problems.append(
                f"{entity.id}: popularity {score} in the res-{res} set,"
                f" {entity.popularity} in PostGIS"
            )
    if not all(answers[1 + len(INDEX_RESOLUTIONS) :]):
        problems.append(f"{entity.id}: payload missing")
    return problems


def ask_entity(pipe: redis.client.Pipeline, hot: HotIndex, gen: str, entity: Truth) -> int:
    """Queue what :func:`entity_problems` needs on ``pipe``; return how many answers."""
    pipe.hget(layout.loc_key(hot.prefix, gen), entity.id)
    for cell in entity.place.cells:
        pipe.zscore(layout.cell_key(hot.prefix, gen, cell), entity.member)
    tags = sorted(set(entity.place.tags))
    for tag in tags:
        pipe.hexists(layout.member_key(hot.prefix, gen, tag), entity.id)
        pipe.hexists(layout.display_key(hot.prefix, gen, tag), entity.id)
    return 1 + len(entity.place.cells) + 2 * len(tags)


def check_entities(hot: HotIndex, gen: str, truth: Sequence[Truth]) -> Iterable[tuple[str, str]]:
    """(cell, problem) for every entity that Redis holds otherwise than PostGIS."""
    for batch in chunked(truth, 500):
        pipe = hot.raw.pipeline(transaction=False)
        sizes = [ask_entity(pipe, hot, gen, entity) for entity in batch]
        answers = pipe.execute()
        start = 0
        for entity, size in zip(batch, sizes, strict=True):
            for problem in entity_problems(entity, answers[start : start + size]):
                yield entity.cell, problem
            start += size


def check_strays(
    hot: HotIndex, gen: str, cells: Sequence[str], truth: Sequence[Truth]
) -> Iterable[tuple[str, str]]:
    """(cell, problem) for members of a base cell's set that PostGIS does not put there."""
    expected: dict[str, set[str]] = defaultdict(set)
    for entity in truth:
        expected[entity.cell].add(entity.id)
    for batch in chunked(cells, 200):
        pipe = hot.raw.pipeline(transaction=False)
        for cell in batch:
            pipe.zrange(layout.cell_key(hot.prefix, gen, cell), 0, -1)
        for cell, members in zip(batch, pipe.execute(), strict=True):
            for member in sorted(
                {encoding.member_id(member) for member in members} - expected[cell]
            ):
                yield cell, f"{member}: in the res-{BASE_RES} set of {cell}, not there in PostGIS"


def tile_differences(
    conn: psycopg.Connection, hot: HotIndex, res: int, cells: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Cells (of ``res``) where Redis and PostGIS disagree, each with its problems."""
    truth = read_truth(conn, cells)
    gen = hot.generation()
    if gen is None:
        held = {entity.cell for entity in truth}
        return {cell: ("Redis holds no index generation",) for cell in sorted(held)}
    found: dict[str, list[str]] = defaultdict(list)
    for cell, problem in check_entities(hot, gen, truth):
        found[cell].append(problem)
    if res == BASE_RES:
        for cell, problem in check_strays(hot, gen, cells, truth):
            found[cell].append(problem)
    return {cell: tuple(found[cell]) for cell in sorted(found)}


def read_layers(
    conn: psycopg.Connection,
    hot: HotIndex | None,
    tile: mercantile.Tile,
    *,
    query: QueryOverlay | None = None,
    max_dots: int = MAX_DOTS,
) -> TileLayers:
    """Everything a tile shows; with ``hot``, the cells where Redis disagrees too."""
    res = display_res(tile)
    cells = tile_cells(tile, res)
    counts = read_counts(conn, cells)
    dots, total = read_dots(conn, tile, cells if res == BASE_RES else None, max_dots)
    differences = None if hot is None else tile_differences(conn, hot, res, cells)
    return TileLayers(tile, res, counts, tuple(dots), total, differences, query)
