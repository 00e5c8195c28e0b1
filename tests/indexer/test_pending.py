"""Marks of writes between PostGIS and Redis: a write killed in between is repaired by the
next process, without anyone running ``cache verify`` or ``cache rebuild``."""

from __future__ import annotations

import subprocess
import sys
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
from tests.indexer.test_feeds import gbfs_set
from tests.indexer.test_import_stores import HEADER, SHOPS, write
from tests.indexer.test_writer import random_stores, store

Nearby = Callable[..., Result]

#: Runs the ``nearby`` command line, killing itself (SIGKILL) once the write has
#: committed to PostGIS and before Redis has it: ``merge`` just before the
#: changes go to Redis, ``load`` (an empty index loaded at once) just before the
#: filled generation is made current.
KILLER = """
import os, signal, sys
from indexer.store import writer

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv.pop(1) == "merge":
    writer.apply_changes = die
else:
    writer.BULK_MIN_CHANGES = 100
    fill = writer.FreshLoad.fill

    def fill_then_die(load, gen):
        fill(load, gen)
        die()

    writer.FreshLoad.fill = fill_then_die

from discovery.cli import main
main()
"""


def killed_import(cli_env: dict[str, str], tmp_path: Path, point: str, csv: Path) -> None:
    """Run ``nearby import stores CSV`` in a process killed at ``point`` (see KILLER)."""
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    command = [sys.executable, str(script), point, "import", "stores", str(csv)]
    done = subprocess.run(command, env=cli_env, capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()


def marks(index: Index) -> int:
    found = index.conn.execute("SELECT count(*) FROM hot_pending").fetchone()
    index.conn.commit()
    return int(found[0]) if found else 0


def city_csv(path: Path, count: int) -> Path:
    rows = [
        f"{e.id[2:]},{e.name},{e.lat},{e.lng},shop,,{e.popularity}," for e in random_stores(count)
    ]
    return write(path, [HEADER, *rows])


def test_an_import_killed_before_redis_is_repaired_by_the_next_import(
    nearby: Nearby, index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert nearby("import", "stores", str(city_csv(tmp_path / "city.csv", 50))).exit_code == 0
    killed_import(cli_env, tmp_path, "merge", write(tmp_path / "shops.csv", [HEADER, *SHOPS]))
    assert index.count() == 50 + len(SHOPS)  # PostGIS committed them
    assert marks(index) == 1 and len(dead_marks(index.conn)) == 1
    assert len(index.hot.verify(index.conn)) == len(SHOPS)  # Redis never had them
    # The next process: another import, of anything.
    again = nearby("import", "stores", str(write(tmp_path / "more.csv", [HEADER, SHOPS[0]])))
    assert again.exit_code == 0, again.output
    assert again.output.startswith(
        "a write committed to PostGIS never reached Redis: rebuilt 53 entities from PostGIS"
    )
    assert marks(index) == 0
    assert nearby("cache", "verify").output.splitlines() == ["0 differences"]


def test_a_load_into_an_empty_index_killed_before_its_switch_is_repaired_by_a_feed_sync(
    nearby: Nearby, index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    killed_import(cli_env, tmp_path, "load", city_csv(tmp_path / "city.csv", 300))
    assert index.count() == 300 and marks(index) == 1
    assert len(index.hot.verify(index.conn)) == 300
    # Its build's mark is still leased (nobody renews it); the repair takes its place.
    assert index.hot.client.exists(f"{index.hot.prefix}:building")
    feeds = gbfs_set(tmp_path / "gbfs", ["v1"])
    synced = nearby("feeds", "watch", "--once", f"gbfs:{feeds}")
    assert synced.exit_code == 0, synced.output
    # The 300 and the feed's bike (its station, last seen long ago, purged as stale).
    assert marks(index) == 0 and index.count() == 301
    assert nearby("cache", "verify").output.splitlines() == ["0 differences"]


def test_an_import_killed_before_redis_is_repaired_by_the_healing_command(
    nearby: Nearby, index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    killed_import(cli_env, tmp_path, "merge", write(tmp_path / "shops.csv", [HEADER, *SHOPS]))
    assert nearby("cache", "verify").exit_code == 1
    result = nearby("cache", "rebuild", "--if-needed")
    assert result.output.startswith("a write committed to PostGIS never reached Redis: rebuilt 3")
    assert marks(index) == 0 and nearby("cache", "verify").exit_code == 0


def test_the_mark_of_a_running_write_is_alive_until_its_session_ends(index: Index) -> None:
    writer_conn = db.connect(index.settings.database_url)
    mark = Mark(writer_conn, "t")
    with writer_conn.transaction(), writer_conn.cursor() as cur:
        mark.take(cur)
    assert marks(index) == 1 and dead_marks(index.conn) == []
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
    assert marks(index) == 0


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
    assert summary.hot_applied and marks(index) == 0
    assert index.hot.verify(index.conn) == []


def test_a_write_that_changes_nothing_or_fails_in_postgis_leaves_no_mark(index: Index) -> None:
    writer.write_entities(index.conn, index.hot, "t", random_stores(5))
    writer.write_entities(index.conn, index.hot, "t", random_stores(5))  # unchanged
    entities = [*random_stores(3), store(3, name="poison")]
    with index.refusing("poison"), pytest.raises(Exception, match="refused by test"):
        writer.write_entities(index.conn, index.hot, "t", entities)
    assert marks(index) == 0
    held = index.conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid",
        (LOCK_CLASS,),
    ).fetchone()
    index.conn.commit()
    assert held == (0,)
