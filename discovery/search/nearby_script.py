"""The search script (``nearby.lua``): its source, the arguments of a call, its replies.

:mod:`discovery.search.hot` makes the calls; what a call is sent and what its reply
says (the results' packed figures, or a refusal: no generation, too early, flat or no
longer flat groups, completions to ask apart) are read and written here.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from discovery.search import coverage
from discovery.search.branches import branch_route
from discovery.search.query import NearbyQuery
from indexer.hot import layout, lua
from indexer.hot.client import NoGeneration
from indexer.text import lookup_terms

#: The distance, score, popularity and revision of a result, and its tag's number,
#: as the script packs them.
_FIGURES = struct.Struct("<ddddH")
#: What nearby.lua is loaded with: helpers.lua before it, its modes (the searches
#: over what it sets up, which answer) after it, and the formats of its arguments
#: and replies.
NEARBY_HELPERS = ("helpers.lua",)
NEARBY_MODES = ("nearby_text.lua", "nearby_branches.lua", "nearby_modes.lua")
NEARBY_CONSTANTS = (("FIGURES", _FIGURES.format), ("CELL_HEX", coverage.CELL_HEX))
#: What a search script answers first when Redis holds no generation.
_NO_GENERATION = layout.NO_GENERATION.encode()
_EARLY = layout.EARLY.encode()
_FLAT = layout.FLAT.encode()
_NOT_FLAT = layout.NOT_FLAT.encode()
_SPLIT = layout.SPLIT.encode()


class Flat(Exception):
    """No member of a top's groups has any popularity: the top by distance is its
    top (nearby_modes.lua); ``tags`` are the groups' hash tags."""

    def __init__(self, tags: str) -> None:
        super().__init__("no popularity in the radius")
        self.tags = tags


class NotFlat(Exception):
    """A top by distance standing for a flat one found popularity in the groups."""


class Split(Exception):
    """Completions of every kind asked in one call need the names read from the cells:
    each kind is asked apart (nearby_modes.lua)."""


class NotAnswered(Exception):
    """The hot index holds a generation but cannot answer this query now: the query's
    popularity time is before what the generation's bounds hold for
    (indexer/hot/layout.py), or the results kept changing before their documents
    could be read.  PostGIS answers it; nothing needs mending."""


def nearby_source() -> str:
    """nearby.lua as it is loaded: the layout's header, its constants and helpers first,
    its modes after."""
    return lua.source(
        "discovery.search", "nearby.lua", NEARBY_HELPERS, NEARBY_CONSTANTS, NEARBY_MODES
    )


def stale_args(query: NearbyQuery) -> tuple[str, str]:
    """The script's cutoff arguments: per live kind, and per-source overrides."""
    kinds, sources = [], []
    for kind, limit_s in sorted(query.stale.by_kind.items()):
        kinds += [kind, repr(query.now_s - limit_s)]
    for source, limit_s in sorted(query.stale.by_source.items()):
        sources += [source, repr(query.now_s - limit_s)]
    return layout.SEP.join(kinds), layout.SEP.join(sources)


def script_args(
    prefix: str,
    query: NearbyQuery,
    mode: str,
    radius_m: float,
    want: int,
    cells: tuple[str, str, bytes, bytes, str],
    flat: str = "",
    completing: str = "",
) -> list[Any]:
    """Every ARGV of one nearby.lua call (see the script's header); ``cells`` as
    :func:`discovery.search.coverage.script_cells` writes them."""
    kind_cuts, source_cuts = stale_args(query)
    cursor: list[Any] = ["", "", ""]
    if query.after is not None:
        neg_score, distance, id_bytes = query.after
        cursor = [repr(-neg_score), repr(distance), id_bytes]
    args: list[Any] = [
        prefix,
        mode,
        query.sort,
        repr(query.lat),
        repr(query.lng),
        repr(radius_m),
        repr(query.scale_m),
        repr(query.popularity_weight),
        want,
        layout.SEP.join(query.kinds),
        layout.SEP.join(query.categories),
        layout.SEP.join(query.mini_apps),
        "1" if query.available else "",
        kind_cuts,
        source_cuts,
        *cursor,
        *cells,
        repr(query.usage_factor),
        flat,
        *text_args(query),
        completing,
        "1" if branch_route(query) else "",
    ]
    return args


#: How a query with ``q`` finds its candidates (nearby_modes.lua): "" as the script
#: judges (the ids under the rarest term when they are few), "ids" whenever q has a
#: lookup term, "cells" never (what the tests and benchmarks compare).
TEXT_ROUTE = ""


def text_args(query: NearbyQuery) -> tuple[str, str, str]:
    """The script's arguments of ``q``: its words as a text entry is searched for (a
    prefix term after a space: a word's start), its lookup terms, the route."""
    if query.text is None:
        return "", "", ""
    words = [" " + prefix for prefix in query.text.prefixes] + list(query.text.substrings)
    terms = layout.SEP.join(sorted(lookup_terms(query.text)))
    return layout.SEP.join(words), terms, TEXT_ROUTE


def refused(reply: Sequence[Any], tags: str) -> None:
    """Raise what a search script's reply says instead of answering, if it does
    (``tags``: its call's, for :class:`Flat`)."""
    if not reply or reply[0] == _NO_GENERATION:
        raise NoGeneration("Redis holds no index generation")
    if reply[0] == _EARLY:
        raise NotAnswered("the query's time is before the index's popularity bounds")
    if reply[0] == _FLAT:
        raise Flat(tags)
    if reply[0] == _NOT_FLAT:
        raise NotFlat()
    if reply[0] == _SPLIT:
        raise Split()


def results_of(reply: Sequence[Any]) -> list[tuple[str, float, float, float, int, int, Any]]:
    """The script's results (replies as bytes): (id, distance, score, popularity,
    revision, tag number, count) each.

    The script computes distance and score with the operations of
    :mod:`discovery.search.ranking` in the same order, so its doubles are the
    reference's (the search tests compare them with the brute force's, bit for
    bit).
    """
    unpack = _FIGURES.unpack
    results = []
    for i in range(4, len(reply), 3):
        distance, score, popularity, rev, tag = unpack(reply[i + 1])
        results.append(
            (reply[i].decode(), distance, score, popularity, int(rev), tag, reply[i + 2])
        )
    return results
