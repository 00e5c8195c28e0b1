"""New usage masses patched into the members Redis holds (masses.lua), checked against
the rows PostGIS holds (``cache verify``: members bit for bit, scores, tops)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import h3
import pytest
from psycopg.rows import dict_row

from indexer.hot import encoding, layout
from indexer.hot.client import NoGeneration
from indexer.model import Entity
from indexer.settings import UsageSettings
from indexer.store.events import ROWS_SQL, check_events, masses_to_hot
from indexer.store.usage import MassChange
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import USAGE_AT, apply_usage, clear_catalog, random_events, seed_usage

USAGE = UsageSettings()


@pytest.fixture
def entities(index: Index) -> Iterator[list[Entity]]:
    clear_catalog(index)
    yield seed_usage(index, count=40)
    clear_catalog(index)


def stored(index: Index, events: list[dict[str, Any]]) -> list[MassChange]:
    """The events checked and stored in PostGIS; the mass changes, not yet sent to Redis."""
    batch = check_events(index.conn, events, USAGE, USAGE_AT)
    assert batch.errors == []
    changes = apply_usage(index.conn, batch.events, USAGE.half_life_s)
    assert changes, "the events name entities"
    return changes


def row(index: Index, entity_id: str) -> dict[str, Any]:
    with index.conn.cursor(row_factory=dict_row) as cur:
        cur.execute(ROWS_SQL, ([entity_id],))
        found = cur.fetchone()
    index.conn.commit()
    assert found is not None
    return found


def test_patched_members_are_those_of_the_rows(index: Index, entities: list[Entity]) -> None:
    for seed in range(4):
        changes = stored(index, random_events(seed, 150, entities))
        assert index.hot.apply_masses(changes) == []  # every one patched in place
        assert index.hot.verify(index.conn) == []
    for entity in entities:
        assert index.member(entity.id) == encoding.member_of(row(index, entity.id))
    assert any(row(index, e.id)["usage_mass"] > 0 for e in entities)


def test_a_raised_mass_raises_the_bound_in_the_names_sets(
    index: Index, entities: list[Entity]
) -> None:
    """A name's terms' posting sets are sorted by popularity bound: a patched mass moves
    the entity's bound there too (verify compares every id's bound with PostGIS's)."""
    named = [replace(e, name=f"Kahvila {n}") for n, e in enumerate(entities)]
    write_entities(index.conn, index.hot, "u", named)
    changes = stored(index, random_events(2, 150, named))
    assert index.hot.apply_masses(changes) == []
    assert index.hot.verify(index.conn) == []
    gen = index.hot.require_generation()
    raised = next(e for e in named if row(index, e.id)["usage_mass"] > 0)
    tag = layout.tag_of(h3.latlng_to_cell(raised.lat, raised.lng, 11))
    found = row(index, raised.id)
    bound = layout.bound_of(found["popularity"], found["usage_mass"], index.hot.bound_factor(gen))
    key = layout.posting_key(index.hot.prefix, gen, tag, "kah")
    assert index.hot.raw.zscore(key, raised.id) == bound > raised.popularity


def test_a_row_changed_since_redis_saw_it_is_sent_whole(
    index: Index, entities: list[Entity]
) -> None:
    # A write of u:0 that PostGIS committed and whose Redis write is still on its way.
    with index.conn.cursor() as cur:
        cur.execute(
            "UPDATE entities SET name = 'Renamed', lat = lat + 0.01, rev = nextval('entity_rev')"
            " WHERE id = 'u:0'"
        )
    index.conn.commit()
    events = [{"type": "order", "entity_id": e.id, "at": USAGE_AT - 60} for e in entities[:5]]
    changes = stored(index, events)
    assert index.hot.apply_masses(changes) == ["u:0"]  # the others patched
    assert masses_to_hot(index.conn, index.hot, changes)
    assert index.hot.verify(index.conn) == []
    assert index.member(entities[0].id) == encoding.member_of(row(index, entities[0].id))


def test_a_replayed_or_older_change_is_ignored(index: Index, entities: list[Entity]) -> None:
    first = stored(index, [{"type": "open", "entity_id": "u:1", "at": USAGE_AT - 10}])
    second = stored(index, [{"type": "open", "entity_id": "u:1", "at": USAGE_AT - 5}])
    assert second[0].old_rev == first[0].rev
    assert index.hot.apply_masses(first) == []
    assert index.hot.apply_masses(second) == []  # made on the revision the first made
    held = index.member("u:1")
    assert held == encoding.member_of(row(index, "u:1"))
    # Again, and the first one late: Redis holds a newer revision of both.
    assert index.hot.apply_masses(second) == []
    assert index.hot.apply_masses(first) == []
    assert index.member("u:1") == held
    assert index.hot.verify(index.conn) == []


def test_no_generation_writes_nothing(index: Index, entities: list[Entity]) -> None:
    changes = stored(index, [{"type": "open", "entity_id": "u:2", "at": USAGE_AT - 10}])
    index.hot.drop_all()
    with pytest.raises(NoGeneration):
        index.hot.apply_masses(changes)
    assert masses_to_hot(index.conn, index.hot, changes) is False
