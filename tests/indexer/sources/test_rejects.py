"""The one reject model: a parser raises InvalidEntity, Parsed keeps the record as a Rejected."""

from __future__ import annotations

import pytest

from indexer.model import Entity
from indexer.sources.rejects import InvalidEntity, Parsed, Rejected


def store(native: str, lat: float) -> Entity:
    if lat > 90:
        raise InvalidEntity(f"latitude {lat} outside [-90, 90]")
    return Entity(id=f"s:{native}", kind="store", lat=lat, lng=0.0)


def test_parsed_keeps_entities_and_rejects_in_feed_order() -> None:
    parsed = Parsed()
    parsed.add("shops", "a", store, "a", 1.0)
    parsed.add("shops", "b", store, "b", 91.0)
    parsed.add("shops", "c", store, native="c", lat=2.0)
    assert parsed.entities == [
        Entity(id="s:a", kind="store", lat=1.0, lng=0.0),
        Entity(id="s:c", kind="store", lat=2.0, lng=0.0),
    ]
    assert parsed.rejected == [Rejected("shops", "b", "latitude 91.0 outside [-90, 90]")]


def test_parsed_lets_other_errors_through() -> None:
    parsed = Parsed()
    with pytest.raises(TypeError):
        parsed.add("shops", "a", store, "a", "north")
    assert parsed == Parsed()
