"""Marks of writes between PostGIS and Redis: a write killed in between is repaired by the
next process, without anyone running ``cache verify`` or ``cache rebuild``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from click.testing import Result

from indexer.hot.heal import ensure_index
from indexer.hot.pending import LOCK_CLASS, Mark, dead_marks
from indexer.store import db, writer
from tests.conftest import Index
from tests.factories import (
    HEADER,
    SHOPS,
    gbfs_set,
    killed_import,
    pending_marks,
    random_stores,
    store,
    write_lines,
)

Nearby = Callable[..., Result]


def city_csv(path: Path, count: int) -> Path:
    rows = [
        f"{e.id[2:]},{e.name},{e.lat},{e.lng},shop,,{e.popularity}," for e in random_stores(count)
    ]
    return write_lines(path, [HEADER, *rows])


def test_an_import_killed_before_redis_is_repaired_by_the_next_import(
    nearby: Nearby, index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert nearby("import", "stores", str(city_csv(tmp_path / "city.csv", 50))).exit_code == 0
    killed_import(cli_env, tmp_path, "merge", write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS]))
    assert index.count() == 50 + len(SHOPS)  # PostGIS committed them
    assert pending_marks(index) == 1 and len(dead_marks(index.conn)) == 1
    assert len(index.hot.verify(index.conn)) == len(SHOPS)  # Redis never had them
    # The next process: another import, of anything.
    again = nearby("import", "stores", str(write_lines(tmp_path / "more.csv", [HEADER, SHOPS[0]])))
    assert again.exit_code == 0, again.output
    assert again.output.startswith(
        "a write committed to PostGIS never reached Redis: rebuilt 53 entities from PostGIS"
    )
    assert pending_marks(index) == 0
    assert nearby("cache", "verify").output.splitlines() == ["0 differences"]


def test_a_load_into_an_empty_index_killed_before_its_switch_is_repaired_by_a_feed_sync(
    nearby: Nearby, index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    killed_import(cli_env, tmp_path, "load", city_csv(tmp_path / "city.csv", 300))
    assert index.count() == 300 and pending_marks(index) == 1
    assert len(index.hot.verify(index.conn)) == 300
    # Its build's mark is still leased (nobody renews it); the repair takes its place.
    assert index.hot.client.exists(f"{index.hot.prefix}:building")
    feeds = gbfs_set(tmp_path / "gbfs", ["v1"])
    synced = nearby("feeds", "watch", "--once", f"gbfs:{feeds}")
    assert synced.exit_code == 0, synced.output
    # The 300 and the feed's bike (its station, last seen long ago, purged as stale).
    assert pending_marks(index) == 0 and index.count() == 301
    assert nearby("cache", "verify").output.splitlines() == ["0 differences"]


def test_an_import_killed_before_redis_is_repaired_by_the_healing_command(
    nearby: Nearby, index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    killed_import(cli_env, tmp_path, "merge", write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS]))
    assert nearby("cache", "verify").exit_code == 1
    result = nearby("cache", "rebuild", "--if-needed")
    assert result.output.startswith("a write committed to PostGIS never reached Redis: rebuilt 3")
    assert pending_marks(index) == 0 and nearby("cache", "verify").exit_code == 0


def test_the_mark_of_a_running_write_is_alive_until_its_session_ends(index: Index) -> None:
    writer_conn = db.connect(index.settings.database_url)
    mark = Mark(writer_conn, "t")
    with writer_conn.transaction(), writer_conn.cursor() as cur:
        mark.take(cur)
    assert pending_marks(index) == 1 and dead_marks(index.conn) == []
    assert ensure_index(index.conn, index.hot) is None  # a running write is left alone
    writer_conn.close()  # its process died: PostgreSQL ends the session and frees the lock
    for _ in range(200):
        if dead_marks(index.conn):
            break
        time.sleep(0.05)
    assert dead_marks(index.conn) == mark.ids
    healed = ensure_index(index.conn, index.hot)
    assert (
        healed is not None and healed.reason == "a write committed to PostGIS never reached Redis"
    )
    assert pending_marks(index) == 0


def test_a_write_that_redis_refuses_after_its_commit_leaves_a_mark_the_next_write_repairs(
    index: Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer.write_entities(index.conn, index.hot, "t", random_stores(5))

    def refused(*args: object, **kwargs: object) -> int:
        raise redis.ConnectionError("Redis went away")

    with monkeypatch.context() as patch:
        patch.setattr(index.hot, "apply_row_batches", refused)
        with pytest.raises(writer.HotIndexUnavailable, match="went away"):
            writer.write_entities(index.conn, index.hot, "t", random_stores(8))
    assert len(dead_marks(index.conn)) == 1 and len(index.hot.verify(index.conn)) == 3
    summary = writer.write_entities(index.conn, index.hot, "t", [store(100)])
    assert not summary.no_generation and pending_marks(index) == 0
    assert index.hot.verify(index.conn) == []


def test_a_write_that_changes_nothing_or_fails_in_postgis_leaves_no_mark(index: Index) -> None:
    writer.write_entities(index.conn, index.hot, "t", random_stores(5))
    writer.write_entities(index.conn, index.hot, "t", random_stores(5))  # unchanged
    entities = [*random_stores(3), store(3, name="poison")]
    with index.refusing("poison"), pytest.raises(Exception, match="refused by test"):
        writer.write_entities(index.conn, index.hot, "t", entities)
    assert pending_marks(index) == 0
    held = index.conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (LOCK_CLASS,),
    ).fetchone()
    index.conn.commit()
    assert held == (0,)
