"""cache verify finds each way a generation can differ from PostGIS; a rebuild mends it."""

from __future__ import annotations

from dataclasses import replace

import h3
import pytest

from indexer.hot import encoding, layout
from indexer.store.writer import write_entities
from tests.factories import random_stores

from ...conftest import Index


def loaded(index: Index, count: int = 30):
    entities = random_stores(count)
    write_entities(index.conn, index.hot, "t", entities)
    return entities


def placed(index: Index, entity) -> tuple[str, str, str]:
    """The generation, the entity's resolution-11 cell and its set's key."""
    gen = index.hot.require_generation()
    cell = h3.latlng_to_cell(entity.lat, entity.lng, 11)
    return gen, cell, layout.cell_key(index.hot.prefix, gen, cell)


def found_then_mended(index: Index, entity_id: str, word: str) -> None:
    problems = [d for d in index.hot.verify(index.conn) if d.id == entity_id]
    assert any(word in d.problem for d in problems), problems
    index.hot.rebuild(index.conn)
    assert index.hot.verify(index.conn) == []


def altered(index: Index, entity, key_of, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` once in what the entity's group holds for it under the
    key ``key_of(prefix, gen, tag)`` names."""
    gen, cell, _ = placed(index, entity)
    key = key_of(index.hot.prefix, gen, layout.tag_of(cell))
    held = index.hot.raw.hget(key, entity.id)
    assert held is not None and old in held
    index.hot.raw.hset(key, entity.id, held.replace(old, new, 1))


def test_a_document_differing_by_one_byte_is_found_and_mended(index: Index) -> None:
    victim = loaded(index)[5]
    altered(index, victim, layout.display_key, b'"kind":"store"', b'"kind":"stort"')
    found_then_mended(index, victim.id, "document")


def test_a_missing_member_is_found_and_mended(index: Index) -> None:
    entities = loaded(index)
    victim = entities[2]
    _, _, key = placed(index, victim)
    assert index.hot.raw.zrem(key, index.member(victim.id)) == 1
    found_then_mended(index, victim.id, "missing from a cell set")


def test_an_extra_member_is_found_and_mended(index: Index) -> None:
    entities = loaded(index)
    _, _, key = placed(index, entities[0])
    row = {
        "id": "t:ghost", "kind": "store", "lat": entities[0].lat, "lng": entities[0].lng,
        "popularity": 1.0, "rev": 1, "source": "t", "mini_app": None, "category": "cafe",
    }  # fmt: skip
    index.hot.raw.zadd(key, {encoding.member_of(row): 1.0})
    found_then_mended(index, "t:ghost", "stray member")


def test_a_wrong_score_is_found_and_mended(index: Index) -> None:
    entities = loaded(index)
    victim = entities[7]
    _, _, key = placed(index, victim)
    member = index.member(victim.id)
    score = index.hot.raw.zscore(key, member)
    assert score is not None
    index.hot.raw.zadd(key, {member: score + 1.5})
    found_then_mended(index, victim.id, "popularity")


def test_an_altered_text_entry_is_found_and_mended(index: Index) -> None:
    victim = loaded(index)[3]
    end = layout.TEXT_END.encode()
    altered(index, victim, layout.text_key, end, b" x" + end)
    found_then_mended(index, victim.id, "text")


def postings_of(index: Index, entity) -> list[str]:
    """The posting sets' keys of the entity's terms in its resolution-11 cell's group."""
    gen, cell, _ = placed(index, entity)
    entry = index.hot.raw.hget(
        layout.text_key(index.hot.prefix, gen, layout.tag_of(cell)), entity.id
    )
    assert entry is not None
    terms = encoding.text_terms(entry.decode())
    assert terms
    return [layout.posting_key(index.hot.prefix, gen, layout.tag_of(cell), t) for t in terms]


def test_an_id_missing_from_a_posting_set_is_found_and_mended(index: Index) -> None:
    entities = loaded(index)
    victim = entities[4]
    key = postings_of(index, victim)[-1]
    assert index.hot.raw.zrem(key, victim.id) == 1
    found_then_mended(index, victim.id, "missing from")


def test_a_wrong_bound_in_a_name_s_posting_set_is_found_and_mended(index: Index) -> None:
    entities = loaded(index)
    victim = entities[6]
    key = postings_of(index, victim)[0]
    assert index.hot.raw.zadd(key, {victim.id: victim.popularity + 1.0}, xx=True, ch=True) == 1
    found_then_mended(index, victim.id, "bound")


def test_an_id_missing_from_a_carrier_s_set_is_found_and_mended(index: Index) -> None:
    entities = [replace(e, category="Hair Salon") for e in loaded(index, 8)]
    write_entities(index.conn, index.hot, "t", entities)
    victim = entities[3]
    key = postings_of(index, victim)[0]
    assert key.endswith(layout.CARRIER + "cHair Salon")
    assert index.hot.raw.srem(key, victim.id) == 1
    found_then_mended(index, victim.id, "missing from")


def test_a_stray_id_in_a_posting_set_is_found_and_mended(index: Index) -> None:
    entities = loaded(index)
    key = postings_of(index, entities[1])[0]
    assert index.hot.raw.zadd(key, {"t:ghost": 1.0}) == 1
    found_then_mended(index, "t:ghost", "stray id")


def test_renamed_and_moved_entities_keep_the_text_index_exact(index: Index) -> None:
    entities = loaded(index)
    before = {e.id: postings_of(index, e) for e in entities[:20]}
    far = [
        replace(e, name=f"Renamed {n}", lat=-e.lat, lng=(e.lng + 180.0) % 360.0 - 180.0)
        for n, e in enumerate(entities[:10])
    ]
    renamed = [replace(e, name="Kahvila") for e in entities[10:20]]
    write_entities(index.conn, index.hot, "t", far + renamed)
    assert index.hot.verify(index.conn) == []
    for entity_id, keys in before.items():
        after = {k for e in far + renamed if e.id == entity_id for k in postings_of(index, e)}
        for key in set(keys) - after:
            assert index.hot.raw.zscore(key, entity_id) is None, (entity_id, key)
    # A listing's new popularity is its names' terms' new bound.
    raised = [replace(e, popularity=e.popularity + 7.0) for e in entities[20:25]]
    write_entities(index.conn, index.hot, "t", raised)
    for entity in raised:
        for key in postings_of(index, entity):
            assert index.hot.raw.zscore(key, entity.id) == entity.popularity
    assert index.hot.verify(index.conn) == []


def carriers_held(index: Index, entity) -> dict[bytes, bytes]:
    """The carriers hash of the entity's group (its resolution-11 cell's)."""
    gen, cell, _ = placed(index, entity)
    return index.hot.raw.hgetall(layout.carriers_key(index.hot.prefix, gen, layout.tag_of(cell)))


def test_the_carriers_hash_follows_the_categories_entities_carry(index: Index) -> None:
    entities = [replace(e, category="Hair Salon") for e in loaded(index, 12)]
    write_entities(index.conn, index.hot, "t", entities)
    assert carriers_held(index, entities[0])[b"cHair Salon"] == b" hair salon "
    assert index.hot.verify(index.conn) == []
    # Every carrier leaves the category: its set and its field go with the last one.
    moved = [replace(e, category="Barber") for e in entities[:6]]
    write_entities(index.conn, index.hot, "t", moved)
    gone_ids = [e.id for e in entities[6:]]
    with index.conn.transaction():
        index.conn.execute("DELETE FROM entities WHERE id = ANY(%s)", (gone_ids,))
    index.hot.apply_deletes((entity_id, 10**9) for entity_id in gone_ids)
    held = carriers_held(index, entities[0])
    assert b"cHair Salon" not in held and held[b"cBarber"] == b" barber "
    gen, cell, _ = placed(index, entities[0])
    tag = layout.tag_of(cell)
    gone = layout.posting_key(index.hot.prefix, gen, tag, layout.CARRIER + "cHair Salon")
    assert not index.hot.raw.exists(gone)
    assert index.hot.verify(index.conn) == []


@pytest.mark.parametrize("change", ["missing", "altered", "stray"])
def test_a_wrong_carriers_hash_is_found_and_mended(index: Index, change: str) -> None:
    entities = [replace(e, category="Hair Salon") for e in loaded(index, 6)]
    write_entities(index.conn, index.hot, "t", entities)
    gen, cell, _ = placed(index, entities[0])
    key = layout.carriers_key(index.hot.prefix, gen, layout.tag_of(cell))
    field = {"missing": "cHair Salon", "altered": "cHair Salon", "stray": "cNail Salon"}[change]
    if change == "missing":
        index.hot.raw.hdel(key, field)
    else:
        index.hot.raw.hset(key, field, " nail salon ")
    found_then_mended(index, field, key)
