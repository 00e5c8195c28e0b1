"""Answer a nearby query: from the hot index in one Redis call, else from PostGIS.

Both paths give the brute-force answer (:func:`discovery.search.ranking.brute_force`).
The Redis path runs ``nearby.lua`` once per query (one round trip, all keys read
atomically); the script ranks with the same doubles as the reference functions
and returns each hit's distance and score as exact doubles.  The PostGIS path
asks SQL for the best rows under the same formula and checks, before trusting
a LIMIT, that no row it left out could rank in the page (else asks for more).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from discovery.search import coverage
from discovery.search.branches import branch_route
from discovery.search.caller import ScriptCaller
from discovery.search.documents import Changed, Documents
from discovery.search.nearby_script import (
    Flat,
    NotAnswered,
    NotFlat,
    nearby_source,
    refused,
    results_of,
    script_args,
)
from discovery.search.query import NearbyQuery, is_open
from discovery.search.ranking import Hit, group_hits, page
from discovery.search.result import SearchResult
from indexer.hot import layout, lua
from indexer.hot.index import HotIndex

log = logging.getLogger(__name__)

#: What a staged search finds: hits, or completions.
T = TypeVar("T")

#: For sort=distance, smaller circles (with their resolution) tried before the
#: query's own: a page usually fills within them, and reading a coarse cell
#: whole would cost far more.  Each stage is exact on its own: when it fills
#: the page, everything beyond its radius ranks after.  Within one stage cells
#: are read nearest first and reading stops past the page's last distance.
DISTANCE_STAGES = ((150.0, 11), (1_500.0, 9), (10_000.0, 7))
#: open_now is judged in Python: ask the script for this many times the page
#: first, and four times more on each retry, until enough are open.
OPEN_NOW_FACTOR = 2


#: Tops by score or popularity tried again when their groups' popularity changed
#: between the call that found none and the top by distance that stands for it.
FLAT_TRIES = 3


#: The script's mode of each order's top (see nearby_modes.lua).
TOP_MODES = {"score": "s", "distance": "d", "popularity": "p"}
#: Searches run again when a result changed before its document was read.
CHANGED_TRIES = 3


@dataclass
class Stats:
    """What a Redis answer cost: script calls, cells and members read."""

    calls: int = 0
    cells: int = 0
    members: int = 0
    res: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {"calls": self.calls, "cells": self.cells, "members": self.members, "res": self.res}


class RedisSearch:
    """Nearby queries over the hot index."""

    def __init__(self, hot: HotIndex) -> None:
        self.hot = hot
        # The script's replies are binary (packed doubles): read them as bytes.
        self.script = ScriptCaller(hot.raw, nearby_source())
        self.documents = Documents(hot)
        #: Hash tags of groups a search found without popularity (see :meth:`unflattened`).
        self.flat_groups: set[str] = set()
        self.entity_script = hot.client.register_script(
            lua.source("discovery.search", "entity.lua")
        )

    def close(self) -> None:
        """Close the scripts' connections."""
        self.script.close()
        self.documents.close()

    def entity(self, entity_id: str) -> list[Any]:
        """The entity script's reply: ['ok', display JSON], ['missing'] or
        [:data:`indexer.hot.layout.NO_GENERATION`]."""
        return list(self.entity_script(keys=[], args=[self.hot.prefix, entity_id]))

    def call(
        self,
        query: NearbyQuery,
        mode: str,
        radius_m: float,
        want: int,
        res: int,
        stats: Stats,
        flat: str = "",
    ) -> list[Hit]:
        """One script call over the covering of ``radius_m`` at ``res``, the results'
        documents attached (the call made again when one changed meanwhile); ``flat``:
        the tags whose groups must hold no popularity (see :class:`Flat`)."""
        cells = coverage.script_cells(query.lat, query.lng, radius_m, res)
        args = script_args(self.hot.prefix, query, mode, radius_m, want, cells, flat)
        tags = cells[1].split(layout.SEP)
        for _ in range(CHANGED_TRIES):
            reply = self.reply(args, cells[1], res, stats)
            results = results_of(reply)
            wanted = [(result[0], result[4], result[5]) for result in results]
            try:
                docs = self.documents.documents(reply[3].decode(), tags, wanted)
            except Changed:
                continue
            return [
                Hit(eid, distance, score, popularity, group_count=int(count) or None, raw=doc)
                for (eid, distance, score, popularity, _, _, count), doc in zip(
                    results, docs, strict=True
                )
            ]
        # The index changes faster than it can be read: PostGIS answers.
        raise NotAnswered("the index changed under every try")

    def reply(self, args: list[Any], tags: str, res: int, stats: Stats) -> list[Any]:
        """One script call's reply (what it refuses raised), its costs counted."""
        reply = self.script(args)
        refused(reply, tags)
        stats.calls += 1
        stats.cells += int(reply[1])
        stats.members += int(reply[2])
        stats.res.append(res)
        return reply

    def search(self, query: NearbyQuery) -> SearchResult:
        """The exact page for ``query``; NoGeneration when Redis holds no index."""
        stats = Stats()
        if query.group:
            ranked, more = self.grouped(query, stats)
        else:
            ranked, more = self.top(query, stats)
        return SearchResult(tuple(ranked), more, "redis", stats.as_dict())

    def grouped(self, query: NearbyQuery, stats: Stats) -> tuple[list[Hit], bool]:
        """One hit per mini-app (open_now: every candidate comes back and Python groups);
        without counts or a cursor, the top mini-apps read as the top of entities is."""
        res = coverage.resolution_for(query.radius_m)
        if not query.counts and query.after is None and not query.open_now:
            return self.top_apps(query, stats)
        if not query.open_now:
            hits = self.call(query, "g", query.radius_m, query.limit + 1, res, stats)
            return hits[: query.limit], len(hits) > query.limit
        everything = self.call(query, "a", query.radius_m, 0, res, stats)
        open_hits = [hit for hit in everything if is_open(hit.document(), query.now_s)]
        return page(group_hits(open_hits, query), query)

    def top_apps(self, query: NearbyQuery, stats: Stats) -> tuple[list[Hit], bool]:
        """The top mini-apps, without counts, staged for sort=distance as :meth:`top` is.

        A stage's answer is the whole one once it holds a mini-app more than the page
        (each one's nearest branch within the stage is its nearest of all), or every
        mini-app the query's filter names (no other can come).
        """
        return self.unflattened(query, stats, self.apps_staged)

    def apps_staged(
        self, query: NearbyQuery, stats: Stats, mode: str, flat: str
    ) -> tuple[list[Hit], bool]:
        """:meth:`top_apps` in mode ``mode`` (its stages those of ``mode``'s order)."""
        named = len(query.mini_apps)
        for radius_m, res in stages(query, mode):
            hits = self.call(query, mode + "b", radius_m, query.limit + 1, res, stats, flat)
            every_app = named > 0 and len(hits) == named
            if len(hits) > query.limit or every_app or radius_m >= query.radius_m:
                return hits[: query.limit], len(hits) > query.limit
        raise AssertionError("the last stage covers the whole radius")

    def top(self, query: NearbyQuery, stats: Stats) -> tuple[list[Hit], bool]:
        """The top ``limit`` (+1 to learn whether more follow), staged for sort=distance."""
        # The script returns hits in the documented order (its comparator is
        # ranking.sort_key's; the search tests compare pages with the brute force).
        return self.unflattened(query, stats, self.top_staged)

    def unflattened(
        self, query: NearbyQuery, stats: Stats, staged: Callable[..., tuple[list[T], bool]]
    ) -> tuple[list[T], bool]:
        """``staged`` in the query's own mode, or, where its groups hold no popularity,
        in mode d (the same order then: :class:`Flat`), tried again should that change.

        Groups once found flat are remembered: a query whose radius lies in them asks
        mode d at once (its call checks that they still are, else refuses and the
        query goes the long way), which spares the call that would find them flat.
        """
        known = self.flat_guess(query)
        if known:
            try:
                return staged(query, stats, "d", known)
            except NotFlat:
                self.flat_groups.difference_update(known.split(layout.SEP))
        for _ in range(FLAT_TRIES):
            try:
                return staged(query, stats, TOP_MODES[query.sort], "")
            except Flat as flat:
                self.flat_groups.update(flat.tags.split(layout.SEP))
                try:
                    return staged(query, stats, "d", flat.tags)
                except NotFlat:
                    continue
        raise NotAnswered("the popularity changed under every try")

    def flat_guess(self, query: NearbyQuery) -> str:
        """The hash tags of the query's radius when every one is a group found flat
        before ("" otherwise, or when its order is by distance anyway)."""
        if TOP_MODES[query.sort] == "d" or not self.flat_groups:
            return ""
        res = coverage.resolution_for(query.radius_m)
        tags = coverage.script_cells(query.lat, query.lng, query.radius_m, res)[1]
        flat = self.flat_groups
        return tags if all(tag in flat for tag in tags.split(layout.SEP)) else ""

    def top_staged(
        self, query: NearbyQuery, stats: Stats, mode: str, flat: str
    ) -> tuple[list[Hit], bool]:
        """:meth:`top` in mode ``mode`` (its stages those of ``mode``'s order)."""
        for radius_m, res in stages(query, mode):
            hits, complete = self.top_within(query, radius_m, res, stats, mode, flat)
            if complete or radius_m >= query.radius_m:
                return hits[: query.limit], len(hits) > query.limit
        raise AssertionError("the last stage covers the whole radius")

    def top_within(
        self, query: NearbyQuery, radius_m: float, res: int, stats: Stats, mode: str, flat: str
    ) -> tuple[list[Hit], bool]:
        """The best ``limit + 1`` within ``radius_m`` (open_now applied), and whether it is full."""
        want = query.limit + 1
        ask = want * OPEN_NOW_FACTOR if query.open_now else want
        while True:
            hits = self.call(query, mode, radius_m, ask, res, stats, flat)
            if not query.open_now:
                return hits, len(hits) >= want
            kept = [hit for hit in hits if is_open(hit.document(), query.now_s)]
            if len(kept) >= want or len(hits) < ask:
                return kept[:want], len(kept) >= want
            ask *= 4


def stages(query: NearbyQuery, mode: str) -> list[tuple[float, int]]:
    """Radii (with resolutions) to try in turn in ``mode`` (d: by distance, staged);
    the last is the query's own circle."""
    final = (query.radius_m, coverage.resolution_for(query.radius_m))
    if mode != "d" or branch_route(query):
        return [final]
    floor_m = query.after[1] if query.after is not None else 0.0
    tried = [
        (radius_m, res)
        for radius_m, res in DISTANCE_STAGES
        if floor_m < radius_m < query.radius_m and res >= final[1]
    ]
    return [*tried, final]
