"""Entities per kind and source in the hot index: counted by a scan, cached for scrapes.

Nothing keeps these counts while writes happen (that would cost every write).
Every entity of a generation is in exactly one cell set of the coarsest indexed
resolution (its member is kept in each group its cells are in, so counting
member hashes would count some twice): :func:`count_hot` finds those sets
with one SCAN (their names: ``…:z:85…``, a resolution-5 cell) and
``census.lua`` counts :data:`BATCH` members of one a call, their kinds and
sources read from the members, only the counts coming back: a call takes a
few milliseconds of Redis time, so a query waits behind little. About 2.5 s
for a million entities (the SCAN's share grows with every key of the
server). Exact on an index at rest; a write that moves members meanwhile can
make a count off by the members it moved.

A scrape reads the counts from a cache that one process at a time refreshes
once it is :data:`CACHE_MAX_AGE_S` old::

    {base}:telemetry:hot-counts        HASH  gen, counted_at, "{kind}\\x1f{source}" -> count
    {base}:telemetry:hot-counts:lock   STRING  held while one process counts
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from indexer.hot import layout
from indexer.hot.client import HotClient
from indexer.model import INDEX_RESOLUTIONS
from indexer.telemetry import telemetry_prefix

#: Members of a cell set counted by one script call.
BATCH = 5000
#: Keys one SCAN call looks at.
SCAN_COUNT = 10_000

#: A scrape counts again once the cached counts are this old.
CACHE_MAX_AGE_S = 60.0
#: A counter that died frees the lock after this long.
LOCK_S = 120


def census_key(hot_prefix: str) -> str:
    """The cache of the last count."""
    return telemetry_prefix(hot_prefix) + ":hot-counts"


@dataclass(frozen=True)
class Census:
    """Entities of generation ``gen`` by (kind, source), counted at ``counted_at`` (epoch s)."""

    gen: str
    counted_at: float
    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Entities of every kind and source."""
        return sum(self.counts.values())


def coarse_sets(hot: HotClient, gen: str) -> list[str]:
    """The cell sets of generation ``gen`` at the coarsest indexed resolution."""
    pattern = layout.set_pattern(hot.prefix, gen, INDEX_RESOLUTIONS[0])
    return sorted(set(hot.client.scan_iter(match=pattern, count=SCAN_COUNT)))


def count_hot(hot: HotClient, gen: str) -> dict[tuple[str, str], int]:
    """Entities of generation ``gen`` by (kind, source), counted now."""
    script = hot.script("census.lua", raw=True)
    counts: Counter[tuple[str, str]] = Counter()
    for key in coarse_sets(hot, gen):
        first = 0
        while True:
            reply = script(keys=[key], args=[first, first + BATCH - 1])
            for name, count in zip(reply[1::2], reply[2::2], strict=True):
                code, _, source = bytes(name).partition(layout.SEP.encode())
                counts[(layout.KIND_OF_CODE[code[0]], source.decode())] += int(count)
            if int(reply[0]) < BATCH:
                break
            first += BATCH
    return dict(counts)


def take_census(hot: HotClient, gen: str) -> Census:
    """Count generation ``gen`` now and keep the counts for scrapes."""
    census = Census(gen, time.time(), count_hot(hot, gen))
    store_census(hot, census)
    return census


def store_census(hot: HotClient, census: Census) -> None:
    """Replace the cached counts with ``census``."""
    mapping: dict[str | bytes, str | float | int | bytes] = {
        "gen": census.gen,
        "counted_at": census.counted_at,
    }
    for (kind, source), count in census.counts.items():
        mapping[f"{kind}{layout.SEP}{source}"] = count
    key = census_key(hot.prefix)
    pipe = hot.client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping=mapping)
    pipe.execute()


def read_census(hot: HotClient) -> Census | None:
    """The cached counts, if any."""
    held: dict[str, str] = hot.client.hgetall(census_key(hot.prefix))
    if "gen" not in held or "counted_at" not in held:
        return None
    counts = {}
    for name, count in held.items():
        kind, sep, source = name.partition(layout.SEP)
        if sep:
            counts[(kind, source)] = int(count)
    return Census(held["gen"], float(held["counted_at"]), counts)


def cached_census(hot: HotClient, gen: str, max_age_s: float = CACHE_MAX_AGE_S) -> Census | None:
    """Counts of generation ``gen`` at most ``max_age_s`` old, counted now if need be.

    While another process counts, its predecessor's counts of ``gen`` are
    returned (None if there are none).
    """
    held = read_census(hot)
    usable = held if held is not None and held.gen == gen else None
    if usable is not None and time.time() - usable.counted_at < max_age_s:
        return usable
    lock = census_key(hot.prefix) + ":lock"
    if not hot.client.set(lock, "1", nx=True, ex=LOCK_S):
        return usable
    try:
        return take_census(hot, gen)
    finally:
        hot.client.delete(lock)
