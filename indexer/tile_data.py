"""Read what a debug tile shows from PostGIS (the truth) and Redis (the hot index).

Counts and dots come from PostGIS; ``--diff`` compares, for every entity of the
tile's cells, what Redis holds with what PostGIS says (its location entry, its
place in each indexed cell set with its popularity, its payloads) and, at the
base resolution, the members of each cell's set with the entities of that cell.
The whole index is compared by ``nearby cache verify``; this looks at one tile.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import h3
import mercantile
import psycopg
import redis

from indexer import layout
from indexer.hot import HotIndex, chunked
from indexer.model import BASE_RES, INDEX_RESOLUTIONS
from indexer.tiles import Dot, QueryOverlay, TileLayers, descendant_range, display_res, tile_cells

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

TRUTH = f"""
SELECT r.cell, e.id, e.rev, e.lat, e.lng, e.popularity, e.kind, e.available, e.seen_at,
       e.source, e.mini_app, e.category FROM {RANGES}
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
    place: layout.Placement
    popularity: float
    #: Its member in the cell sets, as PostGIS says it should be.
    member: bytes


def read_truth(conn: psycopg.Connection, cells: Sequence[str]) -> list[Truth]:
    """Every entity counted in ``cells``; TileTooLarge past ``MAX_DIFF_ENTITIES``."""
    if not cells:
        return []
    with conn.cursor() as cur:
        cur.execute(TRUTH, {**range_params(cells), "limit": MAX_DIFF_ENTITIES + 1})
        rows = cur.fetchall()
    if len(rows) > MAX_DIFF_ENTITIES:
        raise TileTooLarge(f"more than {MAX_DIFF_ENTITIES} entities to compare: zoom in")
    names = ("id", "rev", "lat", "lng", "popularity", "kind", "available", "seen_at", "source",
             "mini_app", "category")  # fmt: skip
    truth = []
    for cell, *values in rows:
        row = dict(zip(names, values, strict=True))
        place = layout.placement_of(row["lat"], row["lng"])
        member = layout.member_of(row)
        truth.append(
            Truth(h3.int_to_str(cell), row["id"], row["rev"], place, row["popularity"], member)
        )
    return truth


def entity_problems(hot: HotIndex, gen: str, entity: Truth, answers: list[object]) -> list[str]:
    """What is wrong in Redis with one entity, given the answers of :func:`ask_entity`."""
    loc = answers[0]
    if not isinstance(loc, bytes) or len(loc.split()) < 2:
        return [f"{entity.id}: in PostGIS, not in Redis"]
    where = loc.decode().split()
    if int(where[0]) != entity.rev:
        return [f"{entity.id}: Redis has rev {where[0]}, PostGIS {entity.rev}"]
    if where[1:] != entity.place.pairs():
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
            for problem in entity_problems(hot, gen, entity, answers[start : start + size]):
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
            for member in sorted({layout.member_id(member) for member in members} - expected[cell]):
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


# -- a nearby query by brute force --------------------------------------------

SCAN = """
SELECT id, kind, lat, lng, popularity, mini_app, category, available FROM entities
WHERE ST_DWithin(geog, ST_SetSRID(ST_MakePoint(%(lng)s, %(lat)s), 4326)::geography,
                 %(reach_m)s, false)
"""


def passes(row: Sequence[object], params: Mapping[str, str]) -> bool:
    """Whether a scanned row passes the query's filters (kinds, category, mini_app, available)."""
    _, kind, _, _, _, mini_app, category, available = row
    checks = (
        ("kinds", kind),
        ("category", category),
        ("mini_app", mini_app),
    )
    for name, value in checks:
        wanted = params.get(name)
        if wanted and value not in wanted.split(","):
            return False
    return params.get("available") != "true" or bool(available)


def score(distance_m: float, popularity: float, scale_m: float, weight: float) -> float:
    """The service's score: a Gaussian decay halving at ``scale_m`` times a popularity boost."""
    return 0.5 ** ((distance_m / scale_m) ** 2) * (1.0 + weight * math.log1p(popularity))


def scan_query(
    conn: psycopg.Connection, lat: float, lng: float, radius_m: float, params: Mapping[str, str]
) -> QueryOverlay:
    """A nearby query answered by scanning PostGIS: every candidate, the top ``limit`` ranked.

    ``params`` are those of ``GET /v1/nearby`` (``kinds``, ``category``,
    ``mini_app``, ``available``, ``sort``, ``scale``, ``popularity_weight``,
    ``limit``), as text.
    The reference the search engine must agree with.  It reads no cells, so
    ``covered`` is empty; staleness and ``open_now`` are not applied.
    """
    with conn.cursor() as cur:
        cur.execute(SCAN, {"lat": lat, "lng": lng, "reach_m": radius_m * 1.001 + 1.0})
        rows = cur.fetchall()
    scale_m = float(params.get("scale", radius_m / 2.0))
    weight = float(params.get("popularity_weight", 1.0))
    by_distance = params.get("sort") == "distance"
    ranked = []
    for row in rows:
        distance_m = h3.great_circle_distance((lat, lng), (row[2], row[3]), unit="m")
        if distance_m <= radius_m and passes(row, params):
            rank_by = 0.0 if by_distance else -score(distance_m, row[4], scale_m, weight)
            key = (rank_by, distance_m, row[0].encode())
            ranked.append((key, Dot(id=row[0], kind=row[1], lat=row[2], lng=row[3])))
    ranked.sort(key=lambda item: item[0])
    dots = [dot for _, dot in ranked]
    limit = int(params.get("limit", 20))
    return QueryOverlay(
        lat, lng, radius_m, (), tuple(dots), tuple(dots[:limit]), dict(params), "PostGIS scan"
    )
