"""The demo's app icons: a mini-app's initials on a colour of its own, as SVG; pure.

The demo catalog (``scripts/gen_demo_catalog.py``) names ``/demo/icons/<slug>.svg``
for every app, so that the demo page needs no network for its icons.
"""

from __future__ import annotations

import re
import zlib

#: What an icon's slug may be: the ASCII words that ``gen_demo_catalog.slugify`` makes.
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_SLUG_CHARS = 64


def initials(slug: str) -> str:
    """The first letters of the slug's first two words, upper case (``r-kioski``: ``RK``);
    the first two letters of a one-word slug (``alko``: ``AL``)."""
    words = slug.split("-")
    if len(words) == 1:
        return words[0][:2].upper()
    return (words[0][0] + words[1][0]).upper()


def slug_colour(slug: str) -> str:
    """A stable colour of the slug as CSS ``hsl()``: the hue from its CRC-32, saturated and
    dark enough for white text."""
    hue = zlib.crc32(slug.encode("ascii")) % 360
    return f"hsl({hue}, 62%, 38%)"


def icon_svg(slug: str) -> str:
    """A 64 × 64 SVG of the slug's initials, white on its colour, in a rounded square.

    Raises
    ------
    ValueError
        The slug is not lower-case ASCII words joined by ``-``, or is too long.
    """
    if len(slug) > MAX_SLUG_CHARS or not SLUG.fullmatch(slug):
        raise ValueError(f"no icon for {slug[:MAX_SLUG_CHARS]!r}")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" rx="14" fill="{slug_colour(slug)}"/>'
        '<text x="32" y="33" text-anchor="middle" dominant-baseline="central" '
        'font-family="DejaVu Sans, Arial, sans-serif" font-size="26" font-weight="bold" '
        f'fill="#fff">{initials(slug)}</text></svg>'
    )
