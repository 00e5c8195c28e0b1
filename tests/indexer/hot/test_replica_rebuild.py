"""A rebuild that scans a real streaming replica: it waits, once the generation is
marked, until the replica has replayed every write committed before, so the
index equals PostGIS (verify is clean) even with writes the replica had not
replayed and writes made while it runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from click.testing import Result

from indexer.hot import layout
from indexer.model import Entity
from indexer.store import db
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import random_stores
from tests.pg_replica import ReplicaServer


def renamed(entities: list[Entity], prefix: str) -> list[Entity]:
    return [
        Entity(id=f"{prefix}:{n}", kind="store", lat=e.lat, lng=e.lng)
        for n, e in enumerate(entities)
    ]


@pytest.fixture
def standby(index: Index, replica: ReplicaServer) -> Iterator[psycopg.Connection]:
    """A connection to the test database on the replica."""
    conn = db.connect(replica.url(index.settings.database_url))
    yield conn
    conn.close()


@contextmanager
def resumed_once_marked(index: Index, replica: ReplicaServer) -> Iterator[None]:
    """While inside, a thread resumes the replica's replay once a generation is marked
    building; on leaving, replay is resumed in any case."""
    building = layout.building_key(index.hot.prefix)
    stop = threading.Event()

    def resume() -> None:
        while not stop.is_set() and not index.hot.client.exists(building):
            stop.wait(0.005)
        if not stop.is_set():
            replica.resume_replay()

    thread = threading.Thread(target=resume, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        replica.resume_replay()


def test_a_rebuild_from_the_replica_waits_for_writes_it_had_not_replayed(
    index: Index,
    replica: ReplicaServer,
    standby: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_entities(index.conn, index.hot, "t", random_stores(3000))
    replica.catch_up(index.settings.database_url)
    replica.pause_replay()  # resumed on leaving resumed_once_marked
    # Committed before the rebuild marks its generation, not replayed: only the
    # wait brings these into the replica's snapshot.
    unreplayed = renamed(random_stores(20, seed=5), "unreplayed")
    write_entities(index.conn, index.hot, "late", unreplayed)
    writer = db.connect(index.settings.database_url)
    meanwhile = renamed(random_stores(20, seed=6), "meanwhile")

    def write_meanwhile(count: int, done: list[int] = []) -> None:  # noqa: B006
        if not done:
            write_entities(writer, index.hot, "meanwhile", meanwhile)
            done.append(count)

    with resumed_once_marked(index, replica), caplog.at_level(logging.INFO, "indexer.replica"):
        count = index.hot.rebuild(index.conn, write_meanwhile, standby, replica_wait_s=120)
    writer.close()
    assert "the rebuild scans the read replica" in caplog.text
    assert count >= 3000 + len(unreplayed)
    assert index.count() == 3000 + len(unreplayed) + len(meanwhile)
    assert index.hot.verify(index.conn) == []


def test_a_replica_that_does_not_catch_up_in_time_leaves_the_scan_to_the_primary(
    index: Index,
    replica: ReplicaServer,
    standby: psycopg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_entities(index.conn, index.hot, "t", random_stores(200))
    replica.pause_replay()
    try:
        write_entities(index.conn, index.hot, "late", renamed(random_stores(5, seed=7), "late"))
        with caplog.at_level(logging.INFO, logger="indexer.replica"):
            index.hot.rebuild(index.conn, None, standby, replica_wait_s=0.2)
    finally:
        replica.resume_replay()
    assert "the rebuild scans the primary" in caplog.text
    assert index.hot.verify(index.conn) == []


def test_cache_rebuild_scans_the_replica_named_by_database_read_url(
    index: Index,
    replica: ReplicaServer,
    cli_env: dict[str, str],
    nearby: Callable[..., Result],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_entities(index.conn, index.hot, "t", random_stores(500))
    monkeypatch.setitem(cli_env, "DATABASE_READ_URL", replica.url(index.settings.database_url))
    # A loaded machine may take seconds to replay the writes: wait as long as it needs.
    monkeypatch.setitem(cli_env, "NEARBY_REPLICA_MAX_LAG_S", "120")
    with caplog.at_level(logging.INFO, logger="indexer.replica"):
        result = nearby("cache", "rebuild")
    assert result.exit_code == 0, result.output
    assert "rebuilt 500 entities" in result.output
    assert "the rebuild scans the read replica" in caplog.text
    assert nearby("cache", "verify").exit_code == 0
