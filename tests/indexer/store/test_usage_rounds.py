"""Rounds: stored events count in the masses once a round takes them, each exactly once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from click.testing import Result

from indexer.hot.index import HotIndex, connect_redis
from indexer.jobs.rounds import RoundLoop
from indexer.model import Entity
from indexer.settings import UsageSettings
from indexer.store import db
from indexer.store.events import apply_round, take_events
from indexer.store.usage_rounds import round_lock
from indexer.store.users import forget_user, recents
from tests.conftest import Index
from tests.factories import (
    USAGE_AT,
    assert_usage_matches,
    expected_usage,
    pending_marks,
    random_events,
    stored_usage,
    user_traces,
)

USAGE = UsageSettings()


def waiting(index: Index) -> int:
    with index.conn.cursor() as cur:
        cur.execute("SELECT coalesce(sum(events), 0) FROM usage_pending")
        row = cur.fetchone()
    index.conn.commit()
    return int(row[0]) if row else 0


def expected(events: list[dict], entities: list[Entity]) -> dict:
    return expected_usage(events, entities, USAGE.half_life_s, dict(USAGE.weights))


def test_stored_events_count_once_a_round_takes_them(
    index: Index, entities: list[Entity], nearby: Callable[..., Result]
) -> None:
    events = random_events(1, 300, entities)
    batch = take_events(index.conn, events, USAGE, USAGE_AT)
    assert not batch.errors and len(batch.events) == 300
    # Stored: in the log and the recents at once, in no mass yet.
    assert waiting(index) == 300
    before = stored_usage(index)
    assert before["entities"] == {} and before["mini_apps"] == {}
    assert len(before["events"]) == 300
    recent = {user: [slug for slug, _ in held] for user, held in before["recents"].items()}
    assert recent == expected(events, entities)["recents"]
    counted = apply_round(index.conn, index.hot, wait=True)
    assert counted is not None and counted.events == 300
    assert {change.id for change in counted.changes} == {e["entity_id"] for e in events
                                                         if "entity_id" in e}  # fmt: skip
    assert waiting(index) == 0
    found = stored_usage(index)
    assert_usage_matches(found, expected(events, entities))
    assert len(found["events"]) == 300
    # Redis took each entity's new mass: the hot index agrees with PostGIS.
    assert nearby("cache", "verify").exit_code == 0
    # A round with nothing waiting counts nothing, and changes nothing.
    again = apply_round(index.conn, index.hot, wait=True)
    assert again is not None and again.events == 0 and again.changes == []
    assert stored_usage(index) == found


def test_a_background_round_skips_while_another_holds_the_lock(
    index: Index, entities: list[Entity]
) -> None:
    take_events(index.conn, random_events(2, 50, entities), USAGE, USAGE_AT)
    other = db.connect(index.settings.database_url)
    try:
        with round_lock(other, wait=True) as held:
            assert held
            assert apply_round(index.conn, index.hot, wait=False) is None
            assert waiting(index) == 50
    finally:
        other.close()
    counted = apply_round(index.conn, index.hot, wait=False)
    assert counted is not None and counted.events == 50


def test_rounds_begin_their_spacing_apart(index: Index, entities: list[Entity]) -> None:
    events = random_events(3, 40, entities)
    take_events(index.conn, events[:20], USAGE, USAGE_AT)
    assert apply_round(index.conn, index.hot, wait=False, spacing_s=60.0) is not None
    take_events(index.conn, events[20:], USAGE, USAGE_AT)
    # The last round began less than a minute ago: this one does not begin.
    assert apply_round(index.conn, index.hot, wait=False, spacing_s=60.0) is None
    assert waiting(index) == 20
    counted = apply_round(index.conn, index.hot, wait=False, spacing_s=0.0)
    assert counted is not None and counted.events == 20
    assert_usage_matches(stored_usage(index), expected(events, entities))


def test_rounds_of_many_processes_count_every_event_once(
    index: Index, entities: list[Entity], nearby: Callable[..., Result]
) -> None:
    batches = [random_events(10 + n, 200, entities, users=8) for n in range(12)]
    failures: list[BaseException] = []

    def sender(mine: list[list[dict]]) -> None:
        conn = db.connect(index.settings.database_url)
        try:
            for batch in mine:
                take_events(conn, batch, USAGE, USAGE_AT)
                apply_round(conn, index.hot, wait=False)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=sender, args=(batches[k::3],)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    apply_round(index.conn, index.hot, wait=True)
    assert waiting(index) == 0
    everything = [event for batch in batches for event in batch]
    found = stored_usage(index)
    assert_usage_matches(found, expected(everything, entities))
    assert len(found["events"]) == len(everything)
    assert nearby("cache", "verify").exit_code == 0


def test_forgetting_a_user_reaches_their_events_still_waiting(
    index: Index, entities: list[Entity]
) -> None:
    events = [
        {"type": "order", "entity_id": "u:1", "user": "who-1", "at": USAGE_AT - 60},
        {"type": "open", "mini_app": "alko", "user": "who-1", "at": USAGE_AT - 30},
        {"type": "open", "mini_app": "kfc", "user": "who-2", "at": USAGE_AT - 10},
    ]
    take_events(index.conn, events, USAGE, USAGE_AT)
    forgotten = forget_user(index.conn, "who-1")
    assert forgotten.events == 2
    apply_round(index.conn, index.hot, wait=True)
    # Their events still count for the places, never again for them.
    assert recents(index.conn, "who-1") == []
    assert [row["slug"] for row in recents(index.conn, "who-2")] == ["kfc"]
    assert user_traces(index, "who-1") == []
    anonymous = [{k: v for k, v in e.items() if e.get("user") != "who-1" or k != "user"}
                 for e in events]  # fmt: skip
    assert_usage_matches(stored_usage(index), expected(anonymous, entities))


def test_nearby_events_apply_counts_what_waits(
    index: Index, entities: list[Entity], nearby: Callable[..., Result]
) -> None:
    events = random_events(4, 30, entities)
    take_events(index.conn, events, USAGE, USAGE_AT)
    result = nearby("events", "apply")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("counted 30 usage events:")
    assert_usage_matches(stored_usage(index), expected(events, entities))
    result = nearby("events", "apply")
    assert result.exit_code == 0 and result.output == "no usage events were waiting\n"


def test_a_failed_background_round_is_logged_and_the_loop_goes_on(
    index: Index, entities: list[Entity], caplog: pytest.LogCaptureFixture
) -> None:
    events = random_events(6, 30, entities)
    take_events(index.conn, events, USAGE, USAGE_AT)

    @contextmanager
    def connect() -> Iterator[psycopg.Connection]:
        conn = db.connect(index.settings.database_url)
        try:
            yield conn
        finally:
            conn.close()

    down = HotIndex(connect_redis("redis://127.0.0.1:1/0"), index.settings.redis_prefix)
    # Redis down once PostgreSQL counted the round: logged, a mark left for a rebuild.
    assert RoundLoop(connect, down, 0.001).once() is None
    assert "a round of usage events failed" in caplog.text
    assert waiting(index) == 0 and pending_marks(index) == 1
    assert_usage_matches(stored_usage(index), expected(events, entities))
    # PostgreSQL down: the events stay stored for the next round, which counts them.
    more = random_events(7, 20, entities)
    take_events(index.conn, more, USAGE, USAGE_AT)

    @contextmanager
    def unreachable() -> Iterator[psycopg.Connection]:
        yield psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)

    assert RoundLoop(unreachable, index.hot, 0.001).once() is None
    assert waiting(index) == 20
    counted = RoundLoop(connect, index.hot, 0.001).once()
    assert counted is not None and counted.events == 20 and waiting(index) == 0
    assert_usage_matches(stored_usage(index), expected(events + more, entities))
