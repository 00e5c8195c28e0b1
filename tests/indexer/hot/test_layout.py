"""The Redis layout's readers, against what apply.lua writes in a real Redis."""

from __future__ import annotations

import struct

from indexer.hot import encoding, layout
from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.conftest import Index


def test_parse_loc_reads_a_placed_id_and_takes_a_tombstone_for_absent(index: Index) -> None:
    kept = Entity(id="t:kept", kind="store", lat=60.1701, lng=24.9402)
    gone = Entity(id="t:gone", kind="bike", lat=60.1711, lng=24.9452, available=1, capacity=1)
    write_entities(index.conn, index.hot, "t", [kept, gone])
    revs = dict(index.conn.execute("SELECT id, rev FROM entities").fetchall())
    index.hot.apply_deletes([("t:gone", revs["t:gone"] + 1)])
    key = layout.loc_key(index.hot.prefix, index.hot.require_generation())
    entry = encoding.parse_loc(index.hot.raw.hget(key, "t:kept"))
    assert entry == encoding.LocEntry(
        rev=revs["t:kept"], pairs=tuple(encoding.placement_of(kept.lat, kept.lng).pairs())
    )
    # The same entry read as text by the decoding client.
    assert encoding.parse_loc(index.hot.client.hget(key, "t:kept")) == entry
    tombstone = index.hot.raw.hget(key, "t:gone")
    assert tombstone == str(revs["t:gone"] + 1).encode()
    assert encoding.parse_loc(tombstone) is None
    assert encoding.parse_loc(index.hot.raw.hget(key, "t:never")) is None


def test_the_head_offsets_are_where_the_head_packs_its_fields() -> None:
    values = (1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 9, 11)
    head = layout.MEMBER_HEAD.pack(*values)
    double = layout.MEMBER_HEAD.format[1]
    unpacked = {
        at: struct.unpack_from(f"<{double}", head, at)[0]
        for at in (layout.POPULARITY_AT, layout.REV_AT, layout.USAGE_AT)
    }
    assert unpacked == {layout.POPULARITY_AT: 3.5, layout.REV_AT: 6.5, layout.USAGE_AT: 7.5}
    assert head[layout.KIND_AT] == 9
    assert int.from_bytes(head[layout.ID_LENGTH_AT : layout.ID_LENGTH_AT + 2], "little") == 11
    # masses.lua writes the revision and the mass as one pair of doubles.
    assert layout.USAGE_AT == layout.REV_AT + 8
