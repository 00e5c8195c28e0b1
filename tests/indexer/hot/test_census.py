"""Counting the hot index's entities by kind and source, and the counts scrapes read."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from indexer.hot import census, layout
from indexer.hot.census import cached_census, count_hot, read_census, take_census
from indexer.hot.encoding import place_of
from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.conftest import Index

#: A point whose coarse cells are in one hash-tag group and whose fine ones in another.
STRADDLING = (60.156067, 24.851475)


def seed(index: Index) -> None:
    now = datetime.now(UTC)
    stores = [Entity(id=f"s:{n}", kind="store", lat=60.17, lng=24.94 + n * 1e-4) for n in range(4)]
    stores.append(Entity(id="s:edge", kind="store", lat=STRADDLING[0], lng=STRADDLING[1]))
    write_entities(index.conn, index.hot, "s", stores)
    bikes = [
        Entity(id=f"b:{n}", kind="bike", lat=60.171, lng=24.941, available=1, seen_at=now)
        for n in range(3)
    ]
    write_entities(index.conn, index.hot, "b", bikes)
    write_entities(index.conn, index.hot, "b", bikes[:2], replace=True)  # b:2 leaves a tombstone


def test_each_entity_counts_once_by_kind_and_source(index: Index) -> None:
    seed(index)
    gen = index.hot.require_generation()
    loc = layout.loc_key(index.hot.prefix, gen)
    assert index.hot.client.hget(loc, "b:2") is not None  # the tombstone is in loc
    tags = set(place_of(*STRADDLING).split()[0::2])
    assert len(tags) == 2  # the edge store's member is kept in both groups
    for tag in tags:
        assert index.hot.raw.hexists(layout.member_key(index.hot.prefix, gen, tag), "s:edge")
    assert count_hot(index.hot, gen) == {("store", "s"): 5, ("bike", "b"): 2}


def test_batches_add_up(index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(index)
    monkeypatch.setattr(census, "BATCH", 2)
    gen = index.hot.require_generation()
    assert count_hot(index.hot, gen) == {("store", "s"): 5, ("bike", "b"): 2}


def test_scrapes_count_again_once_the_counts_are_old(index: Index) -> None:
    seed(index)
    gen = index.hot.require_generation()
    first = cached_census(index.hot, gen)
    assert first is not None and first.counts == {("store", "s"): 5, ("bike", "b"): 2}
    assert read_census(index.hot) == first
    write_entities(index.conn, index.hot, "s", [Entity(id="s:new", kind="store", lat=1, lng=2)])
    assert cached_census(index.hot, gen) == first  # fresh enough: not counted again
    recounted = cached_census(index.hot, gen, max_age_s=0.0)
    assert recounted is not None and recounted.counts[("store", "s")] == 6
    assert recounted.total == 8 and recounted.counted_at >= first.counted_at
    # While another process counts, the counts it replaces are served.
    index.hot.client.set(census.census_key(index.hot.prefix) + ":lock", "1", ex=60)
    assert cached_census(index.hot, gen, max_age_s=0.0) == recounted
    # Counts of another generation are never served.
    assert cached_census(index.hot, "999", max_age_s=0.0) is None


def test_take_census_keeps_what_it_counted(index: Index) -> None:
    seed(index)
    gen = index.hot.require_generation()
    before = time.time()
    taken = take_census(index.hot, gen)
    assert read_census(index.hot) == taken and taken.gen == gen and taken.counted_at >= before
