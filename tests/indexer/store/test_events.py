"""Usage events checked one by one: every reason an event is refused, by index."""

from __future__ import annotations

from typing import Any

import pytest

from indexer.model import Entity
from indexer.settings import UsageSettings
from indexer.store.events import MAX_EVENTS, Malformed, check_events
from tests.conftest import Index
from tests.factories import USAGE_AT

USAGE = UsageSettings()
GOOD = {"type": "open", "entity_id": "u:0", "user": "ab-1", "at": USAGE_AT}


BAD: list[tuple[Any, str, str]] = [
    ([1], "event", "event must be an object"),
    (Malformed(), "event", "event is not JSON"),
    ({**GOOD, "type": "tap"}, "type", "type must be one of open, order, booking, unlock, charge"),
    ({**GOOD, "type": None}, "type", "type must be one of open, order, booking, unlock, charge"),
    ({"type": "open", "at": USAGE_AT}, "entity_id", "give one of entity_id and mini_app"),
    ({**GOOD, "mini_app": "kfc"}, "entity_id", "give one of entity_id and mini_app"),
    ({**GOOD, "entity_id": "u:nope"}, "entity_id", "unknown entity"),
    ({**GOOD, "entity_id": ""}, "entity_id", "entity_id must be a non-empty string"),
    ({**GOOD, "entity_id": 5}, "entity_id", "entity_id must be a non-empty string"),
    ({**GOOD, "entity_id": "a\x00b"}, "entity_id", "entity_id must not contain NUL (U+0000)"),
    ({**GOOD, "entity_id": "x" * 513}, "entity_id", "entity_id is longer than 512 characters"),
    ({"type": "open", "mini_app": "unlisted", "at": USAGE_AT}, "mini_app", "unknown mini-app"),
    ({**GOOD, "user": ""}, "user", "user must be 1-128 letters, digits or ._~:@+=-"),
    ({**GOOD, "user": "a b"}, "user", "user must be 1-128 letters, digits or ._~:@+=-"),
    ({**GOOD, "user": "u" * 129}, "user", "user must be 1-128 letters, digits or ._~:@+=-"),
    ({**GOOD, "at": USAGE_AT + 301}, "at", "at is in the future"),
    ({**GOOD, "at": "soon"}, "at", "at must be an RFC 3339 time or POSIX seconds"),
    ({**GOOD, "at": True}, "at", "at must be an RFC 3339 time or POSIX seconds"),
    ({**GOOD, "at": None}, "at", "at must be an RFC 3339 time or POSIX seconds"),
    ({**GOOD, "at": 1e300}, "at", "at must be an RFC 3339 time or POSIX seconds"),
]


def test_each_bad_event_is_refused_with_its_reason(index: Index, entities: list[Entity]) -> None:
    items = [item for pair in BAD for item in (GOOD, pair[0])]
    batch = check_events(index.conn, items, USAGE, USAGE_AT)
    assert batch.received == len(items)
    assert [(e.index, e.param, e.reason) for e in batch.errors] == [
        (2 * n + 1, param, reason) for n, (_, param, reason) in enumerate(BAD)
    ]
    assert [event.item for event in batch.events] == list(range(0, len(items), 2))


@pytest.mark.parametrize(
    "at",
    [USAGE_AT, int(USAGE_AT), str(int(USAGE_AT)), f"{USAGE_AT:.3f}", "2026-12-01T00:00:00Z",
     "2026-12-01T02:00:00+02:00", "2026-12-01T00:00:00"],
)  # fmt: skip
def test_times_in_every_form(index: Index, entities: list[Entity], at: Any) -> None:
    batch = check_events(index.conn, [{**GOOD, "at": at}], USAGE, USAGE_AT)
    assert batch.errors == [] and batch.events[0].at_s == USAGE_AT


def test_an_entity_event_names_its_mini_app(index: Index, entities: list[Entity]) -> None:
    items = [{**GOOD, "entity_id": f"u:{n}"} for n in range(4)]
    items.append({"type": "order", "mini_app": "alko", "at": USAGE_AT - 5})
    batch = check_events(index.conn, items, USAGE, USAGE_AT)
    assert [(e.entity_id, e.mini_app, e.weight) for e in batch.events] == [
        ("u:0", "kfc", 1.0), ("u:1", "alko", 1.0), ("u:2", "unlisted", 1.0), ("u:3", "", 1.0),
        (None, "alko", 5.0),
    ]  # fmt: skip


def test_the_weights_and_tolerance_are_the_settings(index: Index, entities: list[Entity]) -> None:
    usage = UsageSettings(weights={"open": 2.5}, future_s=0.0)
    batch = check_events(index.conn, [GOOD, {**GOOD, "at": USAGE_AT + 1}], usage, USAGE_AT)
    assert [e.weight for e in batch.events] == [2.5]
    assert [e.reason for e in batch.errors] == ["at is in the future"]


def test_a_batch_over_the_limit_is_refused(index: Index) -> None:
    with pytest.raises(ValueError, match="at most 10000 events"):
        check_events(index.conn, [GOOD] * (MAX_EVENTS + 1), USAGE, USAGE_AT)
