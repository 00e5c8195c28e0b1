"""Usage masses and recents as apply_usage stores them, against a brute-force computation."""

from __future__ import annotations

import math

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.model import Entity
from indexer.settings import UsageSettings
from indexer.store.events import apply_events
from indexer.store.usage import (
    MAX_EXPONENT,
    USAGE_EPOCH_S,
    BasisChanged,
    mass_of,
    usage_at,
)
from indexer.store.users import recents
from tests.conftest import Index
from tests.factories import (
    USAGE_AT,
    apply_usage,
    assert_usage_matches,
    expected_usage,
    random_events,
    stored_usage,
)

USAGE = UsageSettings()


@given(
    weight=st.floats(0.5, 1000),
    at=st.floats(USAGE_EPOCH_S - 2e8, USAGE_EPOCH_S + 4e8),
    t=st.floats(USAGE_EPOCH_S - 2e8, USAGE_EPOCH_S + 4e8),
)
def test_a_mass_stands_for_the_decayed_weight(weight: float, at: float, t: float) -> None:
    half_life = 7 * 86400.0
    direct = weight * 0.5 ** ((t - at) / half_life)
    assert math.isclose(usage_at(mass_of(weight, at, half_life), t, half_life), direct,
                        rel_tol=1e-12, abs_tol=1e-300)  # fmt: skip


def test_the_horizon_stays_within_a_double() -> None:
    at = USAGE_EPOCH_S + MAX_EXPONENT * 86400.0
    # 2^54 events of the highest weight at the horizon still sum below a double's maximum.
    assert math.isfinite(mass_of(1000.0, at, 86400.0) * 2.0**54)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_masses_and_recents_equal_a_brute_force(
    index: Index, entities: list[Entity], seed: int
) -> None:
    events = random_events(seed, 700, entities, users=3)
    for start in range(0, len(events), 250):  # several batches, as a stream gives them
        batch = apply_events(index.conn, index.hot, events[start : start + 250], USAGE, USAGE_AT)
        assert batch.errors == []
    expected = expected_usage(events, entities, USAGE.half_life_s, dict(USAGE.weights))
    found = stored_usage(index)
    assert_usage_matches(found, expected)
    assert len(found["events"]) == len(events)
    # Slugs without a catalog entry count too; entities without a mini-app add to none.
    assert "unlisted" in found["mini_apps"] and "" not in found["mini_apps"]


def test_recents_keep_twenty_newest_distinct(index: Index, entities: list[Entity]) -> None:
    slugs = [f"app-{n:02}" for n in range(30)]
    with index.conn.cursor() as cur:
        for slug in slugs:
            cur.execute("INSERT INTO mini_apps (slug, name) VALUES (%s, %s)", (slug, slug))
    index.conn.commit()
    events = [
        {"type": "open", "mini_app": slug, "user": "u1", "at": USAGE_AT - 1000 + n}
        for n, slug in enumerate(slugs)
    ]
    # An older event of a recent app does not move it back; a newer one moves it first.
    events += [{"type": "open", "mini_app": "app-29", "user": "u1", "at": USAGE_AT - 5000},
               {"type": "open", "mini_app": "app-12", "user": "u1", "at": USAGE_AT}]  # fmt: skip
    apply_events(index.conn, index.hot, events[:20], USAGE, USAGE_AT)
    apply_events(index.conn, index.hot, events[20:], USAGE, USAGE_AT)
    newest = ["app-12", *[slug for slug in reversed(slugs) if slug != "app-12"][:19]]
    # Read, a user's recents are the 20 newest, whether or not a round trimmed them yet.
    assert [row["slug"] for row in recents(index.conn, "u1")] == newest
    # The next round whose trim is due leaves those 20 alone in the table.
    with index.conn.cursor() as cur:
        cur.execute("UPDATE usage_clocks SET at = '-infinity' WHERE name = 'trim'")
    index.conn.commit()
    apply_events(index.conn, index.hot, [{**events[0], "at": USAGE_AT - 9000}], USAGE, USAGE_AT)
    assert [slug for slug, _ in stored_usage(index)["recents"]["u1"]] == newest


def test_a_changed_half_life_is_refused(index: Index, entities: list[Entity]) -> None:
    event = {"type": "open", "entity_id": "u:0", "at": USAGE_AT}
    apply_events(index.conn, index.hot, [event], USAGE, USAGE_AT)
    other = UsageSettings(half_life_s=86400.0)
    with pytest.raises(BasisChanged, match="half-life of 604800 s"):
        apply_events(index.conn, index.hot, [event], other, USAGE_AT)
    index.conn.rollback()
    assert len(stored_usage(index)["events"]) == 1


def test_nothing_is_written_when_a_statement_fails(index: Index, entities: list[Entity]) -> None:
    events = random_events(4, 50, entities)
    apply_events(index.conn, index.hot, events, USAGE, USAGE_AT)
    before = stored_usage(index)
    with index.conn.cursor() as cur:
        cur.execute(
            "ALTER TABLE user_recents ADD CONSTRAINT refuse CHECK (slug <> 'kfc') NOT VALID"
        )
    index.conn.commit()
    try:
        with pytest.raises(psycopg.errors.CheckViolation):
            apply_events(index.conn, index.hot, events, USAGE, USAGE_AT)
        index.conn.rollback()
        assert stored_usage(index) == before
    finally:
        with index.conn.cursor() as cur:
            cur.execute("ALTER TABLE user_recents DROP CONSTRAINT refuse")
        index.conn.commit()


def test_an_empty_batch_writes_nothing(index: Index, entities: list[Entity]) -> None:
    assert apply_usage(index.conn, [], USAGE.half_life_s) == []
    assert stored_usage(index)["events"] == []
