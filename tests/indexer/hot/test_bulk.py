"""The bulk fill of a generation, against real PostGIS and Redis: what it writes, and
that no write running meanwhile is lost."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import h3
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.rows import dict_row

from indexer.hot import encoding, layout
from indexer.hot import fill as bulk
from indexer.hot.index import (
    ENTITY_COLUMNS,
    Difference,
    HotIndex,
    RebuildSuperseded,
    connect_redis,
    upsert_record,
)
from indexer.hot.verify import verify_generation
from indexer.model import INDEX_RESOLUTIONS, Entity
from indexer.store import db, fresh, merge, writer
from indexer.store.writer import HotIndexUnavailable, write_entities
from indexer.text import entity_words, joined, words
from tests.factories import (
    dead_and_live_loads,
    delete_entities,
    fresh_fills,
    json_values,
    load_tables,
    moments,
    random_stores,
    scanned,
    store,
    texts,
)

from ...conftest import Index

#: A point whose res-11 cell lies in another hash-tag group than its coarser cells.
STRADDLING = (60.137023697443446, 24.88052576115534)


def varied_entities(count: int) -> list[Entity]:
    """Stores and bikes with every optional field, one of them straddling two groups."""
    entities: list[Entity] = random_stores(count)
    seen = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    entities += [
        Entity(
            id=f"t:bike{n}",
            kind="bike",
            lat=60.15 + n * 0.001,
            lng=24.9,
            name=f"Pyörä {n} \u2028",
            category="station",
            mini_app="citybikes",
            popularity=n + 0.5,
            available=n % 4,
            capacity=10,
            opening_hours="24/7" if n % 2 else None,
            attrs={"b": [1.5, None], "a": "é", "n": n},
            seen_at=seen + timedelta(seconds=n),
        )
        for n in range(20)
    ]
    entities.append(store(99_999, lat=STRADDLING[0], lng=STRADDLING[1], name="edge"))
    return entities


def contents(hot: HotIndex, gen: str) -> dict[str, Any]:
    """Every key of generation ``gen`` (named without the generation) and what it holds,
    but its usage bound factor (a generation's own: that of a day before it was made)."""
    held: dict[str, Any] = {}
    start = f"{hot.prefix}:{gen}:"
    for key in hot.raw.scan_iter(match=start + "*", count=1000):
        if key.decode() == start + layout.USAGE_BOUND:
            continue
        kind = hot.raw.type(key)
        if kind == b"hash":
            value: Any = hot.raw.hgetall(key)
        elif kind == b"zset":
            value = hot.raw.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            value = hot.raw.smembers(key)
        else:
            value = (kind, hot.raw.get(key))
        held[key.decode().removeprefix(start)] = value
    return held


def snapshot_entities(index: Index, names: bulk.FillNames) -> list[bulk.FillEntity]:
    """Every entity as the fill writes it, from one snapshot taken now."""
    return [bulk.fill_entity(row, names) for rows in bulk.snapshot_rows(index.conn) for row in rows]


def start_building(hot: HotIndex) -> str:
    """Mark a fresh generation as building, as a rebuild does before its snapshot."""
    gen = str(hot.client.incr(layout.counter_key(hot.prefix)))
    hot.client.set(layout.building_key(hot.prefix), gen)
    return gen


def entity_row(index: Index, entity_id: str) -> dict[str, Any]:
    with index.conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {ENTITY_COLUMNS} FROM entities WHERE id = %s", (entity_id,))
        row = cur.fetchone()
    index.conn.commit()
    assert row is not None
    return row


def verified(index: Index, gen: str) -> list[Difference]:
    """Every difference between PostGIS and generation ``gen``."""
    problems = verify_generation(index.hot, gen, index.conn)
    index.conn.commit()
    return problems


# -- what the fill writes ----------------------------------------------------------


@given(
    name=texts,
    lat=st.floats(-90, 90),
    lng=st.floats(-180, 180, exclude_max=True),
    popularity=st.floats(0, 1e300),
    available=st.none() | st.integers(0, 2**31 - 1),
    capacity=st.none() | st.integers(0, 2**31 - 1),
    hours=st.none() | texts,
    tz=st.none() | st.sampled_from(["Europe/Helsinki", "Asia/Seoul"]),
    attrs=st.dictionaries(texts, json_values, max_size=4),
    updated_at=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=9))])),
    seen_at=moments,
)
def test_a_fill_entity_is_the_apply_record_of_the_row(
    name: str,
    lat: float,
    lng: float,
    popularity: float,
    available: int | None,
    capacity: int | None,
    hours: str | None,
    tz: str | None,
    attrs: dict[str, object],
    updated_at: datetime,
    seen_at: datetime | None,
) -> None:
    printed = json.dumps(attrs, ensure_ascii=False)
    row = {
        "id": "src:1", "kind": "bike", "name": name, "category": "free\x1fbike",
        "mini_app": "app", "lat": lat, "lng": lng, "popularity": popularity,
        "available": available, "capacity": capacity, "opening_hours": hours, "tz": tz,
        "attrs": None, "attrs_json": printed, "source": "src", "rev": 12, "updated_at": updated_at,
        "seen_at": seen_at, "usage_mass": 0.0,
        "search_text": joined(entity_words(name, "free bike", "App")),
        "name_words": joined(words(name)), "category_words": joined(words("free\x1fbike")),
    }  # fmt: skip
    columns = [column.strip() for column in bulk.FILL_COLUMNS.split(",")]
    values = tuple(row["attrs_json" if column == "attrs::text" else column] for column in columns)
    names = bulk.FillNames("p", "7")
    entity = bulk.fill_entity(values, names)
    assert bulk.apply_record(entity) == upsert_record(row)
    cells = [h3.latlng_to_cell(lat, lng, res) for res in INDEX_RESOLUTIONS]
    assert tuple(names.set_key for names in entity.cells) == tuple(
        layout.cell_key("p", "7", cell) for cell in cells
    )
    assert tuple(names.tops_key for names in entity.cells) == tuple(
        layout.tops_key("p", "7", layout.tag_of(cell), res)
        for cell, res in zip(cells, INDEX_RESOLUTIONS, strict=True)
    )
    tags = dict.fromkeys(layout.tag_of(cell) for cell in cells)
    assert entity.groups == tuple(layout.group_base("p", "7", tag) for tag in tags)


def test_a_filled_generation_holds_what_applying_each_entity_holds(index: Index) -> None:
    entities = varied_entities(3000)
    summary = write_entities(index.conn, index.hot, "t", entities)
    assert summary.inserted == len(entities) and not summary.no_generation
    applied_gen = index.hot.require_generation()
    applied = contents(index.hot, applied_gen)
    assert index.hot.rebuild(index.conn) == len(entities)
    filled_gen = index.hot.require_generation()
    assert filled_gen != applied_gen
    assert contents(index.hot, filled_gen) == applied
    assert contents(index.hot, applied_gen) == {}
    assert index.hot.client.get(layout.building_key(index.hot.prefix)) is None
    assert index.hot.verify(index.conn) == []


# -- the import ---------------------------------------------------------------------


def test_a_large_import_fills_a_fresh_generation(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    first_gen = index.hot.require_generation()
    entities = varied_entities(400)
    summary = write_entities(index.conn, index.hot, "t", entities)
    assert (summary.inserted, summary.no_generation) == (len(entities), False)
    filled_gen = index.hot.require_generation()
    assert filled_gen != first_gen
    assert contents(index.hot, first_gen) == {}
    assert index.hot.verify(index.conn) == []
    # Fewer changes than half the index: applied one by one, in the same generation.
    moved = [store(n, lat=61.0, lng=25.0 + n * 0.01, popularity=7.0) for n in range(150)]
    summary = write_entities(index.conn, index.hot, "t", moved)
    assert summary.updated == 150
    assert index.hot.require_generation() == filled_gen
    assert index.hot.verify(index.conn) == []
    # Replacing most of the source fills a generation again, without the deleted ids.
    summary = write_entities(index.conn, index.hot, "t", moved, replace=True)
    assert summary.deleted == len(entities) - 150
    assert index.hot.require_generation() != filled_gen
    assert index.hot.verify(index.conn) == []
    # The deleted ids keep their tombstones, as applying each deletion leaves them.
    loc = index.hot.client.hgetall(layout.loc_key(index.hot.prefix, index.hot.require_generation()))
    placed = sorted(entity_id for entity_id, value in loc.items() if " " in value)
    assert placed == sorted(entity.id for entity in moved)
    assert sorted(set(loc) - set(placed)) == sorted(e.id for e in entities[150:])


def assert_still_empty(index: Index, gen: str, upcoming: str) -> None:
    """The index holds nothing, its generation is ``gen``, ``upcoming`` left nothing."""
    assert index.count() == 0
    assert index.hot.require_generation() == gen
    assert index.hot.client.get(layout.building_key(index.hot.prefix)) is None
    assert contents(index.hot, upcoming) == {}
    assert load_tables(index) == []
    assert index.hot.verify(index.conn) == []


def test_a_large_write_into_an_empty_index_is_inserted_and_filled_at_once(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    fills = fresh_fills(monkeypatch)
    with index.conn.cursor() as cur:
        cur.execute("SELECT nextval('entity_rev')")
        before = (cur.fetchone() or (0,))[0]
    index.conn.commit()
    first_gen = index.hot.require_generation()
    entities = varied_entities(400)
    summary = write_entities(index.conn, index.hot, "t", entities)
    assert (summary.received, summary.inserted, summary.no_generation) == (len(entities),) * 2 + (
        False,
    )
    assert fills == [index.hot.require_generation()] and fills[0] != first_gen
    assert contents(index.hot, first_gen) == {}
    assert load_tables(index) == []
    assert index.hot.verify(index.conn) == []
    # Each row has a revision of its own, above every earlier one, and the next
    # write's is above them all.
    with index.conn.cursor() as cur:
        cur.execute("SELECT count(DISTINCT rev), min(rev), max(rev) FROM entities")
        distinct, low, high = cur.fetchone() or (0, 0, 0)
        cur.execute("SELECT nextval('entity_rev')")
        after = (cur.fetchone() or (0,))[0]
    index.conn.commit()
    assert distinct == len(entities) and low > before and after > high
    # What it filled is what a rebuild from the committed rows fills.
    loaded = contents(index.hot, fills[0])
    index.hot.rebuild(index.conn)
    assert contents(index.hot, index.hot.require_generation()) == loaded


def test_a_row_refused_while_loading_an_empty_index_leaves_it_empty(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    gen = index.hot.require_generation()
    entities = random_stores(3000)
    entities[2500] = store(2500, name="poison")
    upcoming = str(int(index.hot.client.get(layout.counter_key(index.hot.prefix))) + 1)
    with (
        index.refusing("poison"),
        pytest.raises(psycopg.errors.RaiseException, match="refused by test"),
    ):
        write_entities(index.conn, index.hot, "t", entities)
    assert_still_empty(index, gen, upcoming)


def test_redis_failing_while_an_empty_index_loads_writes_nothing(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    gen = index.hot.require_generation()
    entities = random_stores(300)
    # The next generation's set of one cell is already a string: its ZADD fails.
    upcoming = str(int(index.hot.client.get(layout.counter_key(index.hot.prefix))) + 1)
    cell = h3.latlng_to_cell(entities[0].lat, entities[0].lng, 11)
    index.hot.client.set(layout.cell_key(index.hot.prefix, upcoming, cell), "in the way")
    with pytest.raises(writer.NothingWritten, match="WRONGTYPE"):
        write_entities(index.conn, index.hot, "t", entities)
    index.conn.rollback()
    assert_still_empty(index, gen, upcoming)


def before_the_load_fills(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], object]) -> None:
    """Run ``hook`` as a load into an empty index starts its fill (the entities locked)."""
    fill = fresh.fill_generation

    def hooked(*args: Any, **kwargs: Any) -> int:
        hook()
        return fill(*args, **kwargs)

    monkeypatch.setattr(fresh, "fill_generation", hooked)


def test_a_write_during_the_load_of_an_empty_index_waits_and_lands_in_it(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    entities = random_stores(2000)
    other_conn = db.connect(index.settings.database_url)
    other_hot = HotIndex(connect_redis(index.settings.redis_url), index.settings.redis_prefix)
    done: list[writer.WriteSummary] = []
    other = threading.Thread(
        target=lambda: done.append(
            write_entities(other_conn, other_hot, "other", [store(99_999, name="meanwhile")])
        )
    )

    def another_write_waits() -> None:
        # The other write starts once the entities are locked, and waits for the lock.
        other.start()
        with db.connect(index.settings.database_url, autocommit=True) as watcher:
            for _ in range(500):
                waiting = watcher.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                    (other_conn.info.backend_pid,),
                ).fetchone()
                if waiting and waiting[0] == "Lock":
                    break
                threading.Event().wait(0.01)
            else:
                raise AssertionError("the other write did not wait for the load")
        assert not done

    before_the_load_fills(monkeypatch, another_write_waits)
    try:
        summary = write_entities(index.conn, index.hot, "t", entities)
        other.join(timeout=30)
    finally:
        other_conn.close()
        other_hot.close()
    assert summary.inserted == len(entities)
    assert [s.inserted for s in done] == [1]
    assert index.count() == len(entities) + 1
    assert index.member("t:99999") is not None
    assert index.hot.verify(index.conn) == []


def test_a_rebuild_starting_while_an_empty_index_loads_gets_the_rows_one_by_one(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    gen = index.hot.require_generation()
    others: list[str] = []
    # A rebuild takes the building mark from the load.
    before_the_load_fills(monkeypatch, lambda: others.append(start_building(index.hot)))
    entities = varied_entities(300)
    try:
        summary = write_entities(index.conn, index.hot, "t", entities)
        assert summary.inserted == len(entities)
        # The load's generation gave way; the rows went to the current one and the rebuild's.
        assert index.hot.require_generation() == gen
        assert index.hot.client.get(layout.building_key(index.hot.prefix)) == others[0]
        assert index.hot.verify(index.conn) == []
        assert verified(index, others[0]) == []
        assert load_tables(index) == []
    finally:
        index.hot.client.delete(layout.building_key(index.hot.prefix))
        for other in others:
            index.hot.drop_generation(other)


def test_a_write_that_comes_first_makes_the_load_a_merge(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    write_entities(index.conn, index.hot, "other", [store(0, name="taken")])
    entities = random_stores(300)
    # As if the index was found empty just before another write landed.
    monkeypatch.setattr(writer, "holds_nothing", lambda conn, hot: True)
    summary = write_entities(index.conn, index.hot, "t", entities)
    assert (summary.inserted, summary.conflicts) == (len(entities) - 1, (entities[0].id,))
    assert index.count() == len(entities)
    assert load_tables(index) == []
    assert index.hot.verify(index.conn) == []


def test_a_load_table_whose_connection_is_gone_is_dropped(index: Index) -> None:
    with dead_and_live_loads(index) as alive:
        write_entities(index.conn, index.hot, "t", random_stores(10))
        assert load_tables(index) == [alive]


def test_a_fill_shows_its_progress(index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    shown: list[list[int]] = []

    @contextlib.contextmanager
    def indexing(total: int) -> Iterator[Callable[[int], None]]:
        shown.append([total, 0])
        yield lambda n: shown[-1].__setitem__(1, shown[-1][1] + n)

    entities = random_stores(300)
    write_entities(index.conn, index.hot, "t", entities, indexing=indexing)  # empty: the load
    assert shown == [[300, 300]]
    moved = [store(n, lat=61.0, lng=25.0 + n * 0.001) for n in range(250)]
    write_entities(index.conn, index.hot, "t", moved, indexing=indexing)  # most of it: a refill
    assert shown[1:] == [[300, 300]]
    write_entities(index.conn, index.hot, "t", moved[:10], indexing=indexing)  # a few: none
    assert len(shown) == 2
    assert index.hot.verify(index.conn) == []


def test_an_older_write_arriving_late_does_not_bring_back_what_a_large_import_deleted(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    entities = random_stores(300)
    write_entities(index.conn, index.hot, "t", entities)
    old_row = entity_row(index, entities[-1].id)
    gen = index.hot.require_generation()
    summary = write_entities(index.conn, index.hot, "t", entities[:100], replace=True)
    assert summary.deleted == 200
    assert index.hot.require_generation() != gen
    assert index.hot.apply([upsert_record(old_row)]) == 0
    assert index.hot.verify(index.conn) == []


def test_a_large_import_while_a_rebuild_runs_is_applied_one_by_one(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    gen = index.hot.require_generation()
    other = start_building(index.hot)
    try:
        summary = write_entities(index.conn, index.hot, "t", varied_entities(300))
        assert not summary.no_generation
        assert index.hot.require_generation() == gen
        assert index.hot.client.get(layout.building_key(index.hot.prefix)) == other
        assert index.hot.verify(index.conn) == []
        # The rebuild's generation got the writes too.
        assert verified(index, other) == []
    finally:
        index.hot.client.delete(layout.building_key(index.hot.prefix))
        index.hot.drop_generation(other)


def test_a_fill_that_fails_leaves_the_current_generation(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    entities = random_stores(200)
    write_entities(index.conn, index.hot, "t", entities)
    gen = index.hot.require_generation()
    before = contents(index.hot, gen)
    moved = [store(n, lat=e.lat + 0.01, lng=e.lng, popularity=2.0) for n, e in enumerate(entities)]
    # The next generation's set of one cell is already a string: its ZADD fails.
    upcoming = str(int(index.hot.client.get(layout.counter_key(index.hot.prefix))) + 1)
    cell = h3.latlng_to_cell(moved[0].lat, moved[0].lng, 11)
    index.hot.client.set(layout.cell_key(index.hot.prefix, upcoming, cell), "in the way")
    monkeypatch.setattr(merge, "BULK_MIN_CHANGES", 100)
    with pytest.raises(HotIndexUnavailable, match="WRONGTYPE"):
        write_entities(index.conn, index.hot, "t", moved)
    index.conn.rollback()
    assert index.hot.require_generation() == gen
    assert contents(index.hot, gen) == before
    assert index.hot.client.get(layout.building_key(index.hot.prefix)) is None
    assert contents(index.hot, upcoming) == {}
    # PostGIS has the write (it committed first); a rebuild mends Redis.
    assert {problem.id for problem in index.hot.verify(index.conn)} == {e.id for e in entities}
    index.hot.rebuild(index.conn)
    assert index.hot.verify(index.conn) == []


def test_a_rebuild_stopped_midway_drops_its_generation(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "FETCH_ROWS", 100)
    write_entities(index.conn, index.hot, "t", random_stores(500))
    gen = index.hot.require_generation()
    before = contents(index.hot, gen)

    def stop(count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index.hot.rebuild(index.conn, stop)
    assert index.hot.require_generation() == gen
    assert contents(index.hot, gen) == before
    assert index.hot.client.get(layout.building_key(index.hot.prefix)) is None
    assert scanned(index.hot.client, f"{index.hot.prefix}:*") == sorted(
        [f"{index.hot.prefix}:{gen}:{name}" for name in before]
        + [layout.gen_key(index.hot.prefix), layout.counter_key(index.hot.prefix)]
        + [layout.usage_bound_key(index.hot.prefix, gen)]
    )


def test_a_rebuild_that_another_replaces_changes_nothing(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "FETCH_ROWS", 100)
    write_entities(index.conn, index.hot, "t", random_stores(300))
    other = HotIndex(connect_redis(index.settings.redis_url), index.settings.redis_prefix)
    conn = db.connect(index.settings.database_url)
    gens: list[str] = []

    def rebuild_meanwhile(count: int) -> None:
        if not gens:
            other.rebuild(conn)
            gens.append(other.require_generation())

    try:
        with pytest.raises(RebuildSuperseded):
            index.hot.rebuild(index.conn, rebuild_meanwhile)
    finally:
        conn.close()
        other.client.close()
    assert index.hot.require_generation() == gens[0]
    assert index.hot.verify(index.conn) == []
    keys = scanned(index.hot.client, f"{index.hot.prefix}:*:loc")
    assert keys == [layout.loc_key(index.hot.prefix, gens[0])]


# -- writes while the fill runs -------------------------------------------------------


def test_a_live_write_before_the_fill_reaches_its_id_is_kept(index: Index) -> None:
    entities = random_stores(50)
    write_entities(index.conn, index.hot, "t", entities)
    gen = start_building(index.hot)
    names = bulk.FillNames(index.hot.prefix, gen)
    snapshot = snapshot_entities(index, names)
    # After the snapshot: one entity moves, one is deleted, through the usual writer
    # (apply.lua to the current and the building generation).
    write_entities(index.conn, index.hot, "t", [store(0, lat=61.5, lng=23.7, popularity=9.0)])
    delete_entities(index.conn, index.hot, [entities[1].id])
    # A late copy of an older write reaches the building generation too.
    stale = {**entity_row(index, entities[2].id), "rev": 1, "lat": 10.0, "lng": 10.0}
    assert index.hot.apply([upsert_record(stale)], target=gen) == 1
    sender = bulk.FillSender(index.hot, gen)
    sender.send(bulk.FillBatch.of(snapshot, sender.loc))
    index.hot.client.delete(layout.building_key(index.hot.prefix))
    assert verified(index, gen) == []
    moved = index.hot.client.hget(layout.loc_key(index.hot.prefix, gen), entities[0].id)
    assert moved is not None and moved.split()[1:] == encoding.placement_of(61.5, 23.7).pairs()
    index.hot.drop_generation(gen)


def test_a_live_write_between_the_check_and_the_transaction_makes_it_try_again(
    index: Index,
) -> None:
    entities = random_stores(50)
    write_entities(index.conn, index.hot, "t", entities)
    gen = start_building(index.hot)
    names = bulk.FillNames(index.hot.prefix, gen)
    batch = bulk.FillBatch.of(
        snapshot_entities(index, names), layout.loc_key(index.hot.prefix, gen)
    )
    sender = bulk.FillSender(index.hot, gen)
    with index.hot.client.pipeline(transaction=True) as pipe:
        assert sender.watch(pipe, [entity.id for entity in batch.entities]) == frozenset()
        write_entities(index.conn, index.hot, "t", [store(3, lat=62.0, lng=22.0)])
        assert not sender.commit(pipe, batch.packed)
    assert index.hot.client.hlen(layout.loc_key(index.hot.prefix, gen)) == 1
    sender.send(batch)
    index.hot.client.delete(layout.building_key(index.hot.prefix))
    assert verified(index, gen) == []
    index.hot.drop_generation(gen)


def test_writes_racing_a_rebuild_are_never_lost(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "FETCH_ROWS", 500)
    monkeypatch.setattr(bulk, "FILL_BATCH", 100)
    entities = random_stores(6000)
    write_entities(index.conn, index.hot, "t", entities)
    done = threading.Event()
    rounds: list[int] = []

    def write_until_done() -> None:
        conn = db.connect(index.settings.database_url)
        hot = HotIndex(connect_redis(index.settings.redis_url), index.settings.redis_prefix)
        try:
            step = 0
            while not done.is_set() or step < 3:
                picked = entities[(step * 97) % 5000 :][:40]
                moved = [
                    store(int(e.id.split(":")[1]), lat=e.lat + 0.002 * (step % 5), lng=e.lng,
                          popularity=float(step))
                    for e in picked
                ]  # fmt: skip
                write_entities(conn, hot, "t", moved)
                delete_entities(conn, hot, [entities[5000 + step % 1000].id])
                step += 1
            rounds.append(step)
        finally:
            conn.close()
            hot.client.close()

    thread = threading.Thread(target=write_until_done)
    thread.start()
    try:
        index.hot.rebuild(index.conn)
    finally:
        done.set()
        thread.join()
    assert rounds and rounds[0] >= 3
    assert index.hot.verify(index.conn) == []
