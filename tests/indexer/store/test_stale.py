"""The staleness of live entities, and the purge of those past their limit."""

from __future__ import annotations

from datetime import timedelta

from indexer.model import Entity
from indexer.settings import IndexSettings
from indexer.store.stale import is_stale, purge_stale
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import LIVE_NOW, bike, charger, entity_ids, loc_of

NOW = LIVE_NOW
KAMPPI = (60.1690, 24.9330)


def test_is_stale_uses_the_source_limit_then_the_kind_limit() -> None:
    settings = IndexSettings(stale_sources={"slow": 3600})
    seen = NOW - timedelta(seconds=601)
    assert is_stale(settings, "citybikes", "bike", seen, NOW)
    at_the_limit = NOW - timedelta(minutes=10)
    assert not is_stale(settings, "citybikes", "bike", at_the_limit, NOW)
    assert not is_stale(settings, "slow", "bike", seen, NOW)
    assert not is_stale(settings, "citybikes", "charger", seen, NOW)
    assert not is_stale(settings, "shops", "store", NOW - timedelta(days=900), NOW)
    assert not is_stale(settings, "citybikes", "bike", None, NOW)


def test_purge_deletes_what_is_past_its_limit(index: Index) -> None:
    settings = IndexSettings(stale_sources={"slow": 3600})
    write_entities(
        index.conn,
        index.hot,
        "citybikes",
        [
            bike("old", *KAMPPI, seen_at=NOW - timedelta(seconds=601)),
            bike("fresh", *KAMPPI, seen_at=NOW - timedelta(seconds=599)),
            bike("never", *KAMPPI, seen_at=None),
        ],
    )
    write_entities(
        index.conn,
        index.hot,
        "slow",
        [
            Entity(
                id="slow:b",
                kind="bike",
                lat=60.17,
                lng=24.94,
                available=1,
                capacity=1,
                seen_at=NOW - timedelta(seconds=3599),
            )
        ],
    )
    write_entities(
        index.conn,
        index.hot,
        "volt",
        [charger("c1", 1, 2)],  # seen 5 min ago, limit 30 min
    )
    write_entities(
        index.conn, index.hot, "shops", [Entity(id="shops:1", kind="store", lat=60.17, lng=24.94)]
    )
    assert purge_stale(index.conn, index.hot, settings, now=NOW, grace_s=2) == 0
    assert purge_stale(index.conn, index.hot, settings, now=NOW) == 1
    assert "citybikes:old" not in entity_ids(index)
    assert loc_of(index, "citybikes:old") is not None
    assert len(str(loc_of(index, "citybikes:old")).split()) == 1  # a tombstone: rev only
    # 25 min on: the charger, seen 30 min before, is exactly at its limit and stays.
    assert purge_stale(index.conn, index.hot, settings, now=NOW + timedelta(minutes=25)) == 2
    assert entity_ids(index) == ["citybikes:never", "shops:1", "volt:c1"]
    assert index.hot.verify(index.conn) == []
