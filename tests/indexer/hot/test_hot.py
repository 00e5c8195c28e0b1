"""Verify finds every kind of disagreement; rebuild mends it, also while writes go on."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import h3
import pytest
from click.testing import Result

from indexer.hot import index as hot_module
from indexer.hot import layout
from indexer.hot.index import Difference, HotIndex
from indexer.model import INDEX_RESOLUTIONS
from indexer.store import db
from indexer.store.writer import write_entities
from tests.factories import dead_and_live_loads, load_tables, random_stores, scanned

from ...conftest import Index


def loaded(index: Index, count: int = 40):
    entities = random_stores(count)
    write_entities(index.conn, index.hot, "t", entities)
    return entities


def test_verify_finds_a_missing_member_and_rebuild_mends_it(index: Index) -> None:
    entities = loaded(index)
    gen = index.hot.require_generation()
    victim = entities[3]
    cell = h3.latlng_to_cell(victim.lat, victim.lng, 11)
    key = layout.cell_key(index.hot.prefix, gen, cell)
    assert index.hot.raw.zrem(key, index.member(victim.id)) == 1
    problems = index.hot.verify(index.conn)
    # The stores lie far apart: the set is now empty, and the top kept for it a stray.
    assert index.hot.raw.zcard(key) == 0
    tops = layout.tops_key(index.hot.prefix, gen, layout.tag_of(cell), 11)
    assert [(d.id, d.problem) for d in problems] == [
        (victim.id, "missing from a cell set"),
        (cell, f"top {victim.popularity} in {tops}, the set's is None"),
    ]
    index.hot.rebuild(index.conn)
    assert index.hot.verify(index.conn) == []


def test_verify_counts_a_key_that_scan_returns_twice_once(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SCAN may return a key more than once while Redis rehashes its keyspace.
    loaded(index)
    scan = index.hot.raw.scan_iter

    def twice(*args, **kwargs):
        for key in scan(*args, **kwargs):
            yield key
            yield key

    monkeypatch.setattr(index.hot.raw, "scan_iter", twice)
    assert index.hot.verify(index.conn) == []


def test_verify_finds_rows_missing_on_either_side(index: Index) -> None:
    entities = loaded(index)
    gen = index.hot.require_generation()
    index.hot.client.hdel(layout.loc_key(index.hot.prefix, gen), entities[0].id)
    with index.conn.transaction():
        index.conn.execute("DELETE FROM entities WHERE id = %s", (entities[1].id,))
    problems = {(d.id, d.problem) for d in index.hot.verify(index.conn)}
    assert (entities[0].id, "in PostGIS, not in Redis") in problems
    assert (entities[1].id, "in Redis, not in PostGIS") in problems
    index.hot.rebuild(index.conn)
    assert index.hot.verify(index.conn) == []


def test_verify_finds_a_stale_revision_and_a_stray_member(index: Index) -> None:
    entities = loaded(index)
    with index.conn.transaction():
        index.conn.execute(
            "UPDATE entities SET rev = nextval('entity_rev') WHERE id = %s", (entities[2].id,)
        )
    gen = index.hot.require_generation()
    far = h3.latlng_to_cell(-45.0, 100.0, 9)
    stray = index.member(entities[5].id)
    index.hot.raw.zadd(layout.cell_key(index.hot.prefix, gen, far), {stray: 1.0})
    problems = {(d.id, d.problem.split(" ")[0]) for d in index.hot.verify(index.conn)}
    assert (entities[2].id, "Redis") in problems
    assert (entities[5].id, "stray") in problems
    index.hot.rebuild(index.conn)
    assert index.hot.verify(index.conn) == []


def test_rebuild_keeps_writes_made_while_it_runs(index: Index) -> None:
    entities = loaded(index, 12000)
    late = random_stores(3, seed=99)
    late = (
        [type(e)(**{**e.__dict__, "id": f"late:{n}"}) for n, e in enumerate(late)]
        if False
        else [
            e.__class__(id=f"late:{n}", kind="store", lat=e.lat, lng=e.lng)
            for n, e in enumerate(late)
        ]
    )

    writer = db.connect(index.settings.database_url)
    calls = []

    def write_meanwhile(count: int) -> None:
        if not calls:
            write_entities(writer, index.hot, "late", late)
            calls.append(count)

    index.hot.rebuild(index.conn, write_meanwhile)
    writer.close()
    assert calls, "the rebuild made no progress callback"
    assert index.count() == len(entities) + 3
    assert index.hot.verify(index.conn) == []
    old_gens = list(index.hot.client.scan_iter(match=f"{index.hot.prefix}:1:*"))
    assert old_gens == []


def test_an_index_of_another_layout_is_invisible(index: Index) -> None:
    assert index.hot.prefix == f"{index.settings.redis_prefix}:{layout.LAYOUT}"
    assert "l7.r" + ".".join(map(str, INDEX_RESOLUTIONS)) == layout.LAYOUT
    index.hot.drop_all()
    # What an older layout left behind under the bare prefix is never taken for ours.
    index.hot.client.set(f"{index.settings.redis_prefix}:gen", "1")
    try:
        assert index.hot.generation() is None
        assert index.hot.verify(index.conn) == [Difference("*", "Redis holds no index generation")]
    finally:
        index.hot.client.delete(f"{index.settings.redis_prefix}:gen")


def test_prune_deletes_other_layouts_keys_and_nothing_else(
    index: Index, nearby: Callable[..., Result]
) -> None:
    loaded(index)
    base = index.settings.redis_prefix
    client = index.hot.client
    left_behind = [f"{base}:gen", f"{base}:3:loc", f"{base}:r5.7.9.11:gen",
                   f"{base}:r5.7.9.11:2:{{831126fffffffff}}:z:891126d3307ffff"]  # fmt: skip
    # Other deployments' keys, this one's catalog and a stream named under its prefix (no
    # layout's): all kept.
    neighbours = [f"{base}-other:r5.7.9.11:gen", f"{base}x:gen", f"{base}:apps",
                  f"{base}:events", f"{base}:general"]  # fmt: skip
    for key in left_behind + neighbours:
        client.set(key, "1")
    ours = scanned(client, f"{index.hot.prefix}:*")
    try:
        result = nearby("cache", "prune")
        assert result.output.splitlines()[0] == f"deleted {len(left_behind)} keys of other layouts"
        assert [key for key in left_behind + neighbours if client.exists(key)] == neighbours
        assert scanned(client, f"{index.hot.prefix}:*") == ours
        assert index.hot.verify(index.conn) == []
        assert nearby("cache", "prune").output.splitlines()[0] == "deleted 0 keys of other layouts"
    finally:
        client.delete(*left_behind, *neighbours)


def test_verify_finds_a_wrong_top_and_a_stale_member(index: Index) -> None:
    entities = loaded(index)
    gen = index.hot.require_generation()
    first = entities[0]
    cell = h3.latlng_to_cell(first.lat, first.lng, 7)
    tops = layout.tops_key(index.hot.prefix, gen, layout.tag_of(cell), 7)
    index.hot.client.hset(tops, cell, "0.25")
    second = entities[1]
    cell_11 = h3.latlng_to_cell(second.lat, second.lng, 11)
    key = layout.cell_key(index.hot.prefix, gen, cell_11)
    old = index.member(second.id)
    assert old is not None
    index.hot.raw.zrem(key, old)
    # The same member but for its category: what a write that was lost would leave.
    stale = old.replace(b"\x1ft\x1f\x1f", b"\x1ft\x1f\x1fcafe")
    assert stale != old
    index.hot.raw.zadd(key, {stale: second.popularity})
    problems = {(d.id, d.problem.split(" ")[0]) for d in index.hot.verify(index.conn)}
    assert (cell, "top") in problems
    assert (second.id, "stale") in problems
    index.hot.rebuild(index.conn)
    assert index.hot.verify(index.conn) == []


def test_a_build_renews_the_lease_of_its_mark(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lease long enough that a loaded machine still renews it in time.
    monkeypatch.setattr(hot_module, "BUILD_LEASE_MS", 1000)
    building = layout.building_key(index.hot.prefix)
    seen: list[tuple[str | None, int]] = []

    def slow_fill(gen: str) -> int:
        assert 0 < index.hot.client.pttl(building) <= 1000  # a mark that would expire alone
        time.sleep(3.0)  # three leases
        seen.append((index.hot.client.get(building), index.hot.client.pttl(building)))
        return 0

    before = index.hot.require_generation()
    assert index.hot.build(slow_fill, alone=True) == 0
    new = index.hot.require_generation()
    assert new != before and seen[0][0] == new and seen[0][1] > 0
    assert index.hot.client.get(building) is None


def test_a_build_whose_mark_lapsed_never_becomes_current(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hot_module, "BUILD_LEASE_MS", 200)
    monkeypatch.setattr(HotIndex, "_leased", lambda self, gen: contextlib.nullcontext())
    before = index.hot.require_generation()
    filled: list[str] = []

    def fill_then_stall(gen: str) -> int:
        index.hot.client.set(layout.loc_key(index.hot.prefix, gen), "x")
        filled.append(gen)
        time.sleep(0.5)  # the builder stops renewing (as one that died would)
        return 0

    assert index.hot.build(fill_then_stall, alone=True) is None
    assert index.hot.require_generation() == before
    assert index.hot.client.exists(layout.loc_key(index.hot.prefix, filled[0])) == 0


def test_prune_deletes_what_builds_that_died_left(
    index: Index, nearby: Callable[..., Result]
) -> None:
    loaded(index)
    client, prefix = index.hot.client, index.hot.prefix
    building = layout.building_key(prefix)
    # A build that died: its mark lapsed, its keys stayed; a rebuild came after it.
    dead = str(client.incr(layout.counter_key(prefix)))
    client.set(layout.loc_key(prefix, dead), "x")
    client.set(f"{prefix}:{dead}:{{831126fffffffff}}:z:891126d3307ffff", "x")
    index.hot.rebuild(index.conn)
    current = index.hot.require_generation()
    # A build running now, newer than the current generation.
    running = str(client.incr(layout.counter_key(prefix)))
    client.set(building, running)
    client.set(layout.loc_key(prefix, running), "x")
    ours = scanned(client, f"{prefix}:{current}:*")
    try:
        result = nearby("cache", "prune")
        assert result.output.splitlines()[1] == "deleted 2 keys of stale generations"
        assert list(client.scan_iter(match=f"{prefix}:{dead}:*")) == []
        assert scanned(client, f"{prefix}:{current}:*") == ours
        assert client.exists(layout.loc_key(prefix, running)) == 1
        assert index.hot.verify(index.conn) == []
    finally:
        client.delete(building)
        index.hot.drop_generation(running)


def test_prune_drops_the_load_tables_of_imports_that_died(
    index: Index, nearby: Callable[..., Result]
) -> None:
    with dead_and_live_loads(index) as alive:
        result = nearby("cache", "prune")
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[2] == "dropped 1 load tables of imports that died"
        assert load_tables(index) == [alive]
        assert nearby("cache", "prune").output.splitlines()[2].startswith("dropped 0 ")
