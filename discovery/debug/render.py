"""Draw :class:`~discovery.debug.tiles.TileLayers` as a PNG with Pillow.

Cells are filled by their number of entities with opaque colours from
:data:`COUNT_COLOURS`, so that a pixel says exactly which bucket its cell is in;
entities are dots coloured by kind; a query adds its circle, the cells it
covered, its candidates (rings) and its results (numbered by rank); cells where
Redis and PostGIS disagree get a thick magenta outline.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from PIL import Image, ImageDraw, ImageFont

from discovery.debug.tiles import (
    TILE_PX,
    Dot,
    QueryOverlay,
    TileLayers,
    cell_pixels,
    circle_ring,
    lat_lng_to_pixel,
)

RGBA = tuple[int, int, int, int]

#: Lower bound of each count bucket and its fill (a yellow-to-red ramp).
COUNT_COLOURS: tuple[tuple[int, RGBA], ...] = (
    (1, (255, 237, 160, 255)),
    (2, (254, 204, 92, 255)),
    (5, (253, 141, 60, 255)),
    (10, (240, 59, 32, 255)),
    (25, (189, 0, 38, 255)),
    (100, (110, 0, 40, 255)),
)
KIND_COLOURS: dict[str, RGBA] = {
    "store": (33, 102, 172, 255),
    "bike": (26, 152, 80, 255),
    "charger": (118, 42, 131, 255),
}
BACKGROUND: RGBA = (250, 250, 247, 255)
TRANSPARENT: RGBA = (0, 0, 0, 0)
OUTLINE: RGBA = (120, 120, 120, 255)
COVERED: RGBA = (0, 160, 200, 255)
CIRCLE: RGBA = (20, 20, 20, 255)
DIFFERENCE: RGBA = (230, 0, 200, 255)
TEXT: RGBA = (30, 30, 30, 255)
#: Cells at least this many pixels wide get their id written in.
LABEL_MIN_PX = 130
LINE_PX = 13
LEGEND_WIDTH = 170
#: Differing cells the legend lists by name (the script lists all of them).
LEGEND_DIFFERENCES = 4


def fill_for_count(count: int) -> RGBA | None:
    """The fill of a cell holding ``count`` entities; None for an empty cell."""
    fill = None
    for low, colour in COUNT_COLOURS:
        if count >= low:
            fill = colour
    return fill


def bucket_label(index: int) -> str:
    """The legend text of count bucket ``index``: '1', '2-4', ..., '100+'."""
    low = COUNT_COLOURS[index][0]
    if index + 1 == len(COUNT_COLOURS):
        return f"{low}+"
    high = COUNT_COLOURS[index + 1][0] - 1
    return str(low) if low == high else f"{low}-{high}"


def font(size: int = 11) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font, so that no system font is needed."""
    return ImageFont.load_default(size=size)


def draw_cells(draw: ImageDraw.ImageDraw, layers: TileLayers, size: int) -> None:
    """Fill each cell by its count, then outline all of them."""
    outlines = {cell: cell_pixels(layers.tile, cell, size) for cell in layers.counts}
    for cell, count in layers.counts.items():
        fill = fill_for_count(count)
        if fill is not None:
            draw.polygon(outlines[cell], fill=fill)
    for outline in outlines.values():
        draw.polygon(outline, outline=OUTLINE, width=1)
    for cell in layers.differences or {}:
        draw.polygon(cell_pixels(layers.tile, cell, size), outline=DIFFERENCE, width=4)


def draw_labels(draw: ImageDraw.ImageDraw, layers: TileLayers, size: int) -> None:
    """Write cell ids (and counts) into cells drawn wide enough to hold them.

    The text sits below the cell's centre, so that the centre pixel keeps the
    fill colour (tests read it).
    """
    text_font = font(11)
    for cell, count in layers.counts.items():
        outline = cell_pixels(layers.tile, cell, size)
        xs = [x for x, _ in outline]
        if max(xs) - min(xs) < LABEL_MIN_PX:
            continue
        centre_x = sum(xs) / len(xs)
        centre_y = sum(y for _, y in outline) / len(outline)
        text = f"{cell}\n{count} entit{'y' if count == 1 else 'ies'}"
        draw.multiline_text(
            (centre_x, centre_y + 10),
            text,
            fill=TEXT,
            font=text_font,
            anchor="ma",
            align="center",
            stroke_width=2,
            stroke_fill=(255, 255, 255, 255),
        )


def draw_dots(draw: ImageDraw.ImageDraw, layers: TileLayers, size: int) -> None:
    """Entities as dots coloured by kind; white-rimmed unless there are many."""
    # Smaller dots where there are many, so that the cells stay visible.
    radius = 3.5 if len(layers.dots) <= 400 else 2.0
    rim = (255, 255, 255, 255) if radius > 3 else None
    for dot in layers.dots:
        x, y = lat_lng_to_pixel(layers.tile, dot.lat, dot.lng, size)
        colour = KIND_COLOURS.get(dot.kind, TEXT)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour, outline=rim)


def draw_query(
    draw: ImageDraw.ImageDraw, layers: TileLayers, query: QueryOverlay, size: int
) -> None:
    """The query's covered cells, circle, candidates (rings) and ranked results."""
    tile = layers.tile
    for cell in query.covered:
        draw.polygon(cell_pixels(tile, cell, size), outline=COVERED, width=2)
    ring = [
        lat_lng_to_pixel(tile, lat, lng, size)
        for lng, lat in circle_ring(query.lat, query.lng, query.radius_m)
    ]
    draw.line(ring, fill=CIRCLE, width=2)
    x, y = lat_lng_to_pixel(tile, query.lat, query.lng, size)
    draw.line((x - 6, y, x + 6, y), fill=CIRCLE, width=2)
    draw.line((x, y - 6, x, y + 6), fill=CIRCLE, width=2)
    for dot in query.candidates:
        x, y = lat_lng_to_pixel(tile, dot.lat, dot.lng, size)
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), outline=CIRCLE, width=1)


def draw_ranks(
    draw: ImageDraw.ImageDraw, layers: TileLayers, results: Iterable[Dot], size: int
) -> None:
    """Results as white discs numbered by rank."""
    rank_font = font(10)
    for rank, dot in enumerate(results, start=1):
        x, y = lat_lng_to_pixel(layers.tile, dot.lat, dot.lng, size)
        draw.ellipse(
            (x - 8, y - 8, x + 8, y + 8), fill=(255, 255, 255, 255), outline=CIRCLE, width=2
        )
        draw.text((x, y), str(rank), fill=CIRCLE, font=rank_font, anchor="mm")


def legend_lines(layers: TileLayers) -> list[tuple[RGBA | None, str]]:
    """The legend's rows: an optional swatch colour and a text."""
    tile = layers.tile
    total = sum(layers.counts.values())
    rows: list[tuple[RGBA | None, str]] = [
        (None, f"tile {tile.z}/{tile.x}/{tile.y}, res {layers.res}"),
        (None, f"{total} entities in {len(layers.counts)} cells"),
    ]
    rows += [(colour, f"{bucket_label(i)} per cell") for i, (_, colour) in enumerate(COUNT_COLOURS)]
    rows += [(colour, kind) for kind, colour in KIND_COLOURS.items()]
    if layers.dots_total > len(layers.dots):
        rows.append((None, f"dots: {len(layers.dots)} of {layers.dots_total}"))
    if layers.query is not None:
        query = layers.query
        rows.append((COVERED, f"{len(query.covered)} cells covered"))
        rows.append((CIRCLE, f"{len(query.candidates)} candidates, {len(query.results)} results"))
    if layers.differences is not None:
        rows.extend(difference_rows(layers))
    return rows


def difference_rows(layers: TileLayers) -> list[tuple[RGBA | None, str]]:
    """Legend rows of the diff: how many cells disagree and the first few of them."""
    cells = sorted((layers.differences or {}).keys())
    rows: list[tuple[RGBA | None, str]] = [(DIFFERENCE, f"{len(cells)} cells differ")]
    rows += [(None, f"  {cell}") for cell in cells[:LEGEND_DIFFERENCES]]
    if len(cells) > LEGEND_DIFFERENCES:
        rows.append((None, f"  and {len(cells) - LEGEND_DIFFERENCES} more"))
    return rows


def legend_box(layers: TileLayers, size: int = TILE_PX) -> tuple[int, int, int, int]:
    """Where the legend goes (left, top, right, bottom): the bottom-left corner."""
    height = 8 + LINE_PX * len(legend_lines(layers))
    return (4, size - 4 - height, 4 + LEGEND_WIDTH, size - 4)


def draw_legend(image: Image.Image, layers: TileLayers, size: int) -> None:
    """A translucent box listing the colours and what the tile holds."""
    left, top, right, bottom = legend_box(layers, size)
    panel = Image.new("RGBA", image.size, TRANSPARENT)
    draw = ImageDraw.Draw(panel)
    draw.rectangle((left, top, right, bottom), fill=(255, 255, 255, 225), outline=OUTLINE)
    text_font = font(10)
    y = top + 4
    for colour, text in legend_lines(layers):
        if colour is not None:
            draw.rectangle((left + 4, y + 2, left + 13, y + 10), fill=colour)
        draw.text((left + 18, y), text, fill=TEXT, font=text_font)
        y += LINE_PX
    image.alpha_composite(panel)


def render_tile(
    layers: TileLayers, *, size: int = TILE_PX, legend: bool = True, background: RGBA = BACKGROUND
) -> Image.Image:
    """Draw the tile as an RGBA image ``size`` pixels square."""
    image = Image.new("RGBA", (size, size), background)
    draw = ImageDraw.Draw(image)
    draw_cells(draw, layers, size)
    if layers.query is not None:
        draw_query(draw, layers, layers.query, size)
    draw_dots(draw, layers, size)
    if layers.query is not None:
        draw_ranks(draw, layers, layers.query.results, size)
    draw_labels(draw, layers, size)
    if legend:
        draw_legend(image, layers, size)
    return image


def tile_png(layers: TileLayers, *, legend: bool = True, background: RGBA = BACKGROUND) -> bytes:
    """The tile as PNG bytes, ``TILE_PX`` square (see :func:`render_tile`)."""
    buffer = io.BytesIO()
    render_tile(layers, legend=legend, background=background).save(buffer, format="PNG")
    return buffer.getvalue()
