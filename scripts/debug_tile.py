"""Render one Web Mercator tile of the index: cells, entities, a query, differences.

Usage::

    python scripts/debug_tile.py 15 18654 9484 -o tile.png
    python scripts/debug_tile.py --lat 60.170 --lng 24.943 --zoom 15 --diff -o tile.png
    python scripts/debug_tile.py 15 18654 9484 --query 60.170,24.943,400,kinds=store,limit=10
    python scripts/debug_tile.py 15 18654 9484 --format geojson -o tile.geojson

Reads PostGIS and Redis with the service's settings (DATABASE_URL, REDIS_URL,
NEARBY_REDIS_PREFIX, NEARBY_SCALE_FRACTION, …).  ``--query
LAT,LNG,RADIUS_M[,name=value…]`` takes the other parameters of ``GET /v1/nearby``
and overlays what the service's search did; a value listing several items separates them
with ``+`` (``kinds=bike+charger``).  ``--diff`` lists the cells where Redis and
PostGIS disagree (on stderr when the tile goes to stdout) and exits with 1 when
there are any.
"""

from __future__ import annotations

import json
import sys
from typing import BinaryIO

import click
import mercantile
import psycopg

from discovery.debug.data import TileTooLarge, read_layers
from discovery.debug.overlay import query_overlay
from discovery.debug.render import tile_png
from discovery.debug.tiles import QueryOverlay, TileLayers, layers_to_geojson, tile_at
from discovery.settings import ApiSettings
from indexer.errors import BadInput
from indexer.hot.index import HotIndex, connect_redis
from indexer.settings import ConfigError
from indexer.store import db

QueryArgs = tuple[float, float, float, dict[str, str]]


def parse_query(text: str) -> QueryArgs:
    """``LAT,LNG,RADIUS_M[,name=value…]`` as (lat, lng, radius_m, params)."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) < 3:
        raise click.BadParameter("expected LAT,LNG,RADIUS_M[,name=value…]", param_hint="--query")
    try:
        lat, lng, radius_m = (float(part) for part in parts[:3])
    except ValueError as exc:
        raise click.BadParameter(f"not a number in {text!r}", param_hint="--query") from exc
    in_range = -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0
    if not in_range or radius_m <= 0:
        raise click.BadParameter("lat, lng or radius out of range", param_hint="--query")
    return lat, lng, radius_m, dict(parse_param(item) for item in parts[3:])


def parse_param(item: str) -> tuple[str, str]:
    """One ``name=value`` of ``--query`` (``+`` stands for a comma in the value)."""
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"expected name=value, got {item!r}", param_hint="--query")
    return name.strip(), value.strip().replace("+", ",")


def pick_tile(
    zxy: tuple[int, ...], lat: float | None, lng: float | None, zoom: int | None
) -> mercantile.Tile:
    """The tile named by ``Z X Y`` or by ``--lat --lng --zoom``."""
    if zxy and (lat, lng) != (None, None):
        raise click.UsageError("give either Z X Y or --lat --lng --zoom, not both")
    if len(zxy) == 3:
        return numbered_tile(*zxy)
    if zxy or lat is None or lng is None or zoom is None:
        raise click.UsageError("give Z X Y, or --lat, --lng and --zoom")
    return tile_at(lat, lng, zoom)


def numbered_tile(z: int, x: int, y: int) -> mercantile.Tile:
    """Tile ``z/x/y``, when there is one."""
    if not (0 <= z <= 28 and 0 <= x < 2**z and 0 <= y < 2**z):
        raise click.UsageError(f"no tile {z}/{x}/{y}")
    return mercantile.Tile(x=x, y=y, z=z)


def run_query(
    conn: psycopg.Connection, hot: HotIndex, settings: ApiSettings, query: QueryArgs
) -> QueryOverlay:
    """The query overlay: what the service's search did, and every candidate."""
    lat, lng, radius_m, params = query
    args = {"lat": repr(lat), "lng": repr(lng), "radius": repr(radius_m), **params}
    try:
        return query_overlay(conn, hot, args, settings.ranking, settings.index.stale_limits)
    except BadInput as exc:
        raise click.BadParameter(f"{exc.param}: {exc.message}", param_hint="--query") from exc


def write_output(layers: TileLayers, fmt: str, legend: bool, out: BinaryIO) -> None:
    """Write the tile as PNG or GeoJSON."""
    if fmt == "geojson":
        out.write(json.dumps(layers_to_geojson(layers), indent=1).encode() + b"\n")
    else:
        out.write(tile_png(layers, legend=legend))


def report_differences(layers: TileLayers, to_stdout: bool) -> None:
    """List the differing cells and their problems."""
    differences = layers.differences or {}
    lines = [f"{len(differences)} cells where Redis and PostGIS disagree"]
    for cell, problems in differences.items():
        lines.append(cell)
        lines.extend(f"  {problem}" for problem in problems)
    click.echo("\n".join(lines), err=not to_stdout)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("zxy", nargs=-1, type=int)
@click.option("--lat", type=click.FloatRange(-90, 90), help="latitude of a point in the tile")
@click.option("--lng", type=click.FloatRange(-180, 180), help="longitude of a point in the tile")
@click.option("--zoom", type=click.IntRange(0, 28), help="zoom level with --lat/--lng")
@click.option("--query", "query_text", metavar="LAT,LNG,RADIUS_M[,k=v…]", help="overlay a query")
@click.option("--diff", is_flag=True, help="mark and list cells where Redis and PostGIS disagree")
@click.option("--format", "fmt", type=click.Choice(["png", "geojson"]), default="png")
@click.option("--no-legend", is_flag=True, help="leave the legend out of the PNG")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="file (default: stdout)")
def main(
    zxy: tuple[int, ...],
    lat: float | None,
    lng: float | None,
    zoom: int | None,
    query_text: str | None,
    diff: bool,
    fmt: str,
    no_legend: bool,
    output: str | None,
) -> None:
    """Render tile Z X Y (or the tile at --lat --lng --zoom) of the index."""
    tile = pick_tile(zxy, lat, lng, zoom)
    query = parse_query(query_text) if query_text else None
    try:
        settings = ApiSettings.from_env()
    except ConfigError as exc:
        raise click.UsageError(f"bad configuration: {exc}") from exc
    client = connect_redis(settings.index.redis_url)
    hot = HotIndex(client, settings.index.redis_prefix)
    with db.connect(settings.index.database_url, autocommit=True) as conn:
        overlay = run_query(conn, hot, settings, query) if query else None
        try:
            layers = read_layers(conn, hot if diff else None, tile, query=overlay)
        except TileTooLarge as exc:
            raise click.UsageError(str(exc)) from exc
    client.close()
    if output:
        with open(output, "wb") as out:
            write_output(layers, fmt, not no_legend, out)
    else:
        write_output(layers, fmt, not no_legend, sys.stdout.buffer)
        sys.stdout.flush()
    if diff:
        report_differences(layers, to_stdout=output is not None)
        if layers.differences:
            sys.exit(1)


if __name__ == "__main__":
    main()
