"""The demo's app icons: initials, a colour of each slug's own, and slugs refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from discovery.debug.icons import icon_svg, initials, slug_colour


@pytest.mark.parametrize(
    ("slug", "letters"),
    [("r-kioski", "RK"), ("espresso-house", "EH"), ("alko", "AL"), ("h-m", "HM"),
     ("manhattan-steak-house", "MS"), ("7-eleven", "7E"), ("x", "X")],
)  # fmt: skip
def test_initials(slug: str, letters: str) -> None:
    assert initials(slug) == letters


def test_an_icon_is_an_svg_of_the_initials_on_the_slugs_colour() -> None:
    root = ET.fromstring(icon_svg("r-kioski"))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and root.get("viewBox") == "0 0 64 64"
    assert root.find(f"{ns}rect").get("fill") == slug_colour("r-kioski")  # type: ignore[union-attr]
    assert root.find(f"{ns}text").text == "RK"  # type: ignore[union-attr]
    assert icon_svg("r-kioski") == icon_svg("r-kioski")
    assert slug_colour("r-kioski") != slug_colour("alko")


@pytest.mark.parametrize("slug", ["", "R-K", "a--b", "-a", "a-", "a b", "<svg>", "a" * 65, "é"])
def test_a_slug_that_is_not_ascii_words_has_no_icon(slug: str) -> None:
    with pytest.raises(ValueError, match="no icon"):
        icon_svg(slug)
