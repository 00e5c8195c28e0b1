"""The bulk writer and the hot index it feeds, against real PostGIS and Redis."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

import h3
import pytest
from psycopg.rows import dict_row

from indexer.hot import encoding, layout
from indexer.hot.index import ENTITY_COLUMNS, Difference, delete_record, upsert_record
from indexer.model import INDEX_RESOLUTIONS, Entity
from indexer.store import merge
from indexer.store.writer import WriteSummary, write_entities
from tests.conftest import Index
from tests.factories import delete_entities, random_stores, store


def members(index: Index, entity: Entity) -> dict[str, float | None]:
    """The entity's score in each set of the cells at its (lat, lng), keyed by cell
    (None where its current member is not there, or it is not indexed)."""
    gen = index.hot.require_generation()
    member = index.member(entity.id)
    scores = {}
    for res in INDEX_RESOLUTIONS:
        cell = h3.latlng_to_cell(entity.lat, entity.lng, res)
        key = layout.cell_key(index.hot.prefix, gen, cell)
        scores[cell] = None if member is None else index.hot.raw.zscore(key, member)
    return scores


def test_first_write_inserts_everything_and_indexes_it(index: Index) -> None:
    entities = random_stores(300)
    summary = write_entities(index.conn, index.hot, "t", entities)
    assert summary == WriteSummary(received=300, inserted=300)
    assert index.count() == 300
    for entity in entities:
        assert set(members(index, entity).values()) == {entity.popularity}
    assert index.hot.verify(index.conn) == []


def test_a_member_reads_back_exactly(index: Index) -> None:
    entity = store(
        1,
        lat=-33.123456789012345,
        lng=151.98765432109876,
        category="cafe",
        mini_app="brew",
        popularity=12.5,
    )
    write_entities(index.conn, index.hot, "t", [entity])
    gen = index.hot.require_generation()
    cell = h3.latlng_to_cell(entity.lat, entity.lng, 9)
    [member] = index.hot.raw.zrange(layout.cell_key(index.hot.prefix, gen, cell), 0, -1)
    assert member == index.member(entity.id)
    parsed = encoding.parse_member(member)
    assert (parsed["lat"], parsed["lng"]) == (entity.lat, entity.lng)
    assert (parsed["id"], parsed["kind"], parsed["category"]) == ("t:1", "store", "cafe")
    assert (parsed["mini_app"], parsed["source"]) == ("brew", "t")
    assert (parsed["popularity"], parsed["available"], parsed["seen_at"]) == (12.5, None, None)
    assert encoding.member_id(member) == "t:1"


def test_same_write_again_changes_nothing(index: Index) -> None:
    entities = random_stores(50)
    write_entities(index.conn, index.hot, "t", entities)
    again = write_entities(index.conn, index.hot, "t", entities)
    assert again == WriteSummary(received=50)
    assert again.unchanged == 50


def test_changed_rows_are_updated_and_moved(index: Index) -> None:
    entities = random_stores(20)
    write_entities(index.conn, index.hot, "t", entities)
    moved = Entity(id=entities[0].id, kind="store", lat=-10.0, lng=-70.0, popularity=3.0)
    summary = write_entities(index.conn, index.hot, "t", [moved, *entities[1:]])
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 19)
    assert set(members(index, entities[0]).values()) == {None}
    assert set(members(index, moved).values()) == {3.0}
    assert index.hot.verify(index.conn) == []


@pytest.mark.parametrize(
    "change",
    [
        {"name": "renamed"},
        {"category": "bakery"},
        {"mini_app": "wx-app"},
        {"lat": 60.1700001},
        {"lng": 24.9400001},
        {"popularity": 7.5},
        {"opening_hours": "Mo-Fr 09:00-17:00"},
        {"attrs": {"floor": "2"}},
        {"attrs": {}},
        {"name": "", "category": ""},
    ],
)
def test_a_change_to_any_one_field_is_an_update(index: Index, change: dict[str, object]) -> None:
    base = store(999, name="shop", category="cafe", mini_app="app", popularity=1.0,
                 opening_hours="24/7", attrs={"floor": "1"})  # fmt: skip
    others = random_stores(4, seed=3)
    write_entities(index.conn, index.hot, "t", [base, *others])
    changed = dataclasses.replace(base, **change)  # type: ignore[arg-type]
    summary = write_entities(index.conn, index.hot, "t", [changed, *others])
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 4)
    row = index.conn.execute(
        "SELECT name, category, mini_app, lat, lng, popularity, opening_hours, attrs"
        " FROM entities WHERE id = 't:999'"
    ).fetchone()
    assert row == (changed.name, changed.category, changed.mini_app, changed.lat, changed.lng,
                   changed.popularity, changed.opening_hours, changed.attrs)  # fmt: skip
    assert index.hot.verify(index.conn) == []


def test_replace_deletes_what_the_source_no_longer_has(index: Index) -> None:
    entities = random_stores(30)
    write_entities(index.conn, index.hot, "t", entities)
    write_entities(index.conn, index.hot, "other", [store(999)])
    summary = write_entities(index.conn, index.hot, "t", entities[:10], replace=True)
    assert (summary.deleted, summary.unchanged) == (20, 10)
    assert index.count() == 11
    assert set(members(index, entities[15]).values()) == {None}
    assert index.hot.verify(index.conn) == []


def test_an_id_belongs_to_one_source(index: Index) -> None:
    write_entities(index.conn, index.hot, "a", [store(1, name="a's")])
    summary = write_entities(index.conn, index.hot, "b", [store(1, name="b's"), store(2)])
    assert summary.conflicts == ("t:1",)
    assert summary.inserted == 1
    name = index.conn.execute("SELECT name, source FROM entities WHERE id = 't:1'").fetchone()
    assert name == ("a's", "a")


def test_failed_write_leaves_previous_state(index: Index) -> None:
    entities = random_stores(10)
    write_entities(index.conn, index.hot, "t", entities)
    bad = [*random_stores(5, seed=2), store(77, popularity=-1.0)]
    with pytest.raises(Exception, match="entities_popularity_range"):
        write_entities(index.conn, index.hot, "t", bad, replace=True)
    index.conn.rollback()
    assert index.count() == 10
    assert index.hot.verify(index.conn) == []


def test_a_write_in_many_chunks_sifts_every_row(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "STAGE_CHUNK", 7)
    entities = random_stores(100)
    write_entities(index.conn, index.hot, "t", entities)
    write_entities(index.conn, index.hot, "other", [store(1000 + n) for n in range(5)])
    again = [
        *entities[:40],  # as they were
        *(dataclasses.replace(e, popularity=e.popularity + 1) for e in entities[40:70]),
        *(store(1000 + n) for n in range(5)),  # another source's
        *(store(2000 + n) for n in range(12)),  # new
    ]
    random.Random(3).shuffle(again)
    summary = write_entities(index.conn, index.hot, "t", again, replace=True)
    assert (summary.received, summary.inserted, summary.updated) == (len(again), 12, 30)
    assert (summary.unchanged, summary.deleted) == (40, 30)
    assert summary.conflicts == tuple(sorted(f"t:{1000 + n}" for n in range(5)))
    assert index.count() == 40 + 30 + 12 + 5
    assert index.hot.verify(index.conn) == []


def test_a_chunk_refused_or_an_input_broken_midway_writes_nothing(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge, "STAGE_CHUNK", 7)
    entities = random_stores(50)
    write_entities(index.conn, index.hot, "t", entities)
    before = index.conn.execute("SELECT id, rev FROM entities ORDER BY id").fetchall()
    index.conn.commit()
    # An id in two chunks: the stage refuses the second.
    twice = [dataclasses.replace(e, name="new") for e in entities[:30]] + [
        dataclasses.replace(entities[3], name="newer")
    ]
    with pytest.raises(Exception, match="nearby_stage_pkey"):
        write_entities(index.conn, index.hot, "t", twice)
    index.conn.rollback()

    def broken() -> Iterator[Entity]:
        yield from (dataclasses.replace(e, name="new") for e in entities[:30])
        raise OSError("input broken")

    with pytest.raises(OSError, match="input broken"):
        write_entities(index.conn, index.hot, "t", broken(), replace=True)
    index.conn.rollback()
    assert index.conn.execute("SELECT id, rev FROM entities ORDER BY id").fetchall() == before
    index.conn.commit()
    assert index.hot.verify(index.conn) == []


def test_delete_entities(index: Index) -> None:
    entities = random_stores(5)
    write_entities(index.conn, index.hot, "t", entities)
    assert delete_entities(index.conn, index.hot, [entities[0].id, "t:missing"]) == 1
    assert index.count() == 4
    assert set(members(index, entities[0]).values()) == {None}
    assert index.hot.verify(index.conn) == []


def test_older_revision_never_overwrites_newer(index: Index) -> None:
    write_entities(index.conn, index.hot, "t", [store(1, lat=10.0, lng=10.0)])
    with index.conn.cursor(row_factory=dict_row) as cur:
        old_row = cur.execute(f"SELECT {ENTITY_COLUMNS} FROM entities").fetchone()
    write_entities(index.conn, index.hot, "t", [store(1, lat=20.0, lng=20.0)])
    assert index.hot.apply([upsert_record(old_row)]) == 0
    assert index.hot.verify(index.conn) == []


def test_a_write_into_a_redis_without_a_generation_fills_one_first(index: Index) -> None:
    write_entities(index.conn, index.hot, "t", random_stores(3))
    index.hot.drop_all()  # Redis came back empty
    assert index.hot.verify(index.conn) == [Difference("*", "Redis holds no index generation")]
    summary = write_entities(index.conn, index.hot, "t", random_stores(5))
    assert (summary.inserted, summary.unchanged, summary.no_generation) == (2, 3, False)
    assert index.hot.verify(index.conn) == []


def test_a_generation_lost_during_a_write_is_rebuilt_by_it(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_entities(index.conn, index.hot, "t", random_stores(3))
    apply_changes = merge.apply_changes

    def flushed_first(*args: object, **kwargs: object) -> bool:
        index.hot.drop_all()  # between the commit and the Redis writes
        return apply_changes(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(merge, "apply_changes", flushed_first)
    summary = write_entities(index.conn, index.hot, "t", random_stores(5))
    assert (summary.inserted, summary.no_generation) == (2, False)
    assert index.hot.verify(index.conn) == []
    assert index.conn.execute("SELECT count(*) FROM hot_pending").fetchone() == (0,)


def test_an_id_twice_in_one_script_batch_ends_where_its_newest_record_says(index: Index) -> None:
    write_entities(index.conn, index.hot, "t", [store(1, lat=10.0, lng=10.0)])
    with index.conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {ENTITY_COLUMNS} FROM entities").fetchone()
    first = {**row, "rev": row["rev"] + 10, "lat": 20.0, "lng": 20.0}
    second = {**row, "rev": row["rev"] + 20, "lat": 30.0, "lng": 30.0}
    stale = {**row, "rev": row["rev"] + 15, "lat": 40.0, "lng": 40.0}
    records = [upsert_record(r) for r in (first, second, stale)]
    assert index.hot.apply([*records, delete_record("t:1", row["rev"] + 30)]) == 3
    gen = index.hot.require_generation()
    assert index.hot.client.hget(layout.loc_key(index.hot.prefix, gen), "t:1") == str(
        row["rev"] + 30
    )
    for lat in (10.0, 20.0, 30.0, 40.0):
        assert set(members(index, store(1, lat=lat, lng=lat)).values()) == {None}


def test_a_batch_moving_many_entities_within_shared_cells_matches_postgis(index: Index) -> None:
    entities = random_stores(400)
    write_entities(index.conn, index.hot, "t", entities)
    moved = [
        store(n, lat=e.lat + 0.001 * (n % 3), lng=e.lng, name=e.name, popularity=n * 1.5)
        for n, e in enumerate(entities)
    ]
    summary = write_entities(index.conn, index.hot, "t", moved[::2], replace=True)
    assert (summary.updated, summary.deleted) == (200, 200)
    for entity in moved[::2]:
        assert set(members(index, entity).values()) == {entity.popularity}
    assert index.hot.verify(index.conn) == []


def test_tops_stay_exact_through_rounds_of_random_changes(index: Index) -> None:
    """Popularity raised, lowered and tied, moves and deletions, many to a cell:
    after every round each set's top in its t hash is the set's true top (verify)."""
    rng = random.Random(7)

    # A few hundred metres square: entities share cells at every resolution.
    def spot() -> tuple[float, float]:
        return 60.17 + rng.random() * 0.004, 24.94 + rng.random() * 0.008

    held: dict[int, Entity] = {}
    for _ in range(12):
        changed = []
        for number in rng.sample(range(60), 25):
            lat, lng = (
                spot()
                if number not in held or rng.random() < 0.5
                else (held[number].lat, held[number].lng)
            )
            popularity = float(rng.choice([0, 0, 1, 5, 5, 40, rng.randint(0, 100)]))
            changed.append(store(number, lat=lat, lng=lng, popularity=popularity))
        write_entities(index.conn, index.hot, "t", changed)
        held.update({int(e.id.split(":")[1]): e for e in changed})
        gone = [number for number in list(held) if rng.random() < 0.15]
        delete_entities(index.conn, index.hot, [f"t:{number}" for number in gone])
        for number in gone:
            del held[number]
        assert index.hot.verify(index.conn) == []
