"""What builds, imports and feed syncs record in Redis for scrapes and ``nearby status``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from indexer import telemetry
from indexer.hot import layout
from indexer.hot.index import HotIndex, connect_redis
from indexer.jobs.feeds import FeedSpec, import_feed
from indexer.jobs.watch import Watcher
from indexer.model import Entity
from indexer.sources import gbfs
from indexer.store.writer import write_entities
from indexer.telemetry import read_builds, read_sources
from tests.conftest import Index
from tests.factories import gbfs_set

Nearby = Callable[..., Result]


def stores(count: int) -> list[Entity]:
    return [
        Entity(id=f"s:{n}", kind="store", lat=60.17, lng=24.94 + n * 1e-4) for n in range(count)
    ]


def test_every_build_is_counted_with_its_outcome(index: Index) -> None:
    before = time.time()
    assert read_builds(index.hot.client, index.hot.prefix).started == 1  # the fixture's
    write_entities(index.conn, index.hot, "s", stores(20))
    index.hot.rebuild(index.conn)

    def interrupt(_count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        index.hot.rebuild(index.conn, interrupt)
    building = layout.building_key(index.hot.prefix)

    def replaced(_gen: str) -> int:  # another build takes the mark meanwhile
        index.hot.client.set(building, "other")
        return 0

    assert index.hot.build(replaced, alone=False) is None
    index.hot.client.set(building, "running")
    assert index.hot.rebuild_alone(index.conn) is None  # never marked: not a build
    index.hot.client.delete(building)
    builds = read_builds(index.hot.client, index.hot.prefix)
    assert builds.started == 4
    assert builds.finished == {"ok": 2, "superseded": 1, "failed": 1}
    # The duration histogram was given one value per build that ended ok (counts only).
    done = builds.finished["ok"]
    assert observations(builds) == (done, done)
    assert builds.current_gen == index.hot.require_generation()
    assert builds.current_since is not None and before <= builds.current_since <= time.time()
    assert builds.last_outcome == "superseded"


def observations(builds: telemetry.BuildStats) -> tuple[int, int]:
    """How many values the builds' duration histogram was given: its count, and its last
    bucket's (+Inf, which holds every one); counts, never a time."""
    bound, held = builds.buckets[-1]
    assert bound == float("inf")
    return builds.seconds_count, held


def test_prune_keeps_the_telemetry(index: Index, nearby: Nearby) -> None:
    key = telemetry.builds_key(index.hot.prefix)
    assert index.hot.client.exists(key)
    assert nearby("cache", "prune").exit_code == 0
    assert read_builds(index.hot.client, index.hot.prefix).started == 1


def test_store_imports_record_their_rows(index: Index, nearby: Nearby, tmp_path: Path) -> None:
    shops = tmp_path / "shops.csv"
    shops.write_text("id,name,lat,lng\n1,A,60.17,24.94\n2,B,60.171,24.941\n3,C,95,24\n")
    assert nearby("import", "stores", str(shops)).exit_code == 1  # one rejected
    assert nearby("import", "stores", str(shops)).exit_code == 1
    [record] = read_sources(index.hot.client, index.hot.prefix)
    assert (record.source, record.via, record.runs_ok, record.runs_failed) == (
        "shops",
        "stores",
        2,
        0,
    )
    assert record.rows == {"inserted": 2, "updated": 0, "unchanged": 2, "deleted": 0, "rejected": 2}
    assert record.last_success is not None and record.last_failure is None and record.lag_s is None


def test_a_failed_feed_sync_is_recorded_without_its_credentials(index: Index) -> None:
    spec = FeedSpec("ocm", "http://127.0.0.1:1/v3/poi/?output=json&key=SECRETKEY", "ocm-fi")
    with pytest.raises(gbfs.GbfsError):
        import_feed(index.conn, index.hot, index.settings, spec)
    [record] = read_sources(index.hot.client, index.hot.prefix)
    assert (record.source, record.via, record.runs_ok, record.runs_failed) == (
        "ocm-fi",
        "ocm",
        0,
        1,
    )
    assert record.last_error.startswith("GbfsError: http://127.0.0.1:1/v3/poi/?output=json&key=")
    assert "SECRETKEY" not in record.last_error and "key=[redacted]" in record.last_error
    assert record.last_failure is not None and record.last_success is None


def test_the_watcher_records_a_failure_under_the_source_it_learnt(
    index: Index, tmp_path: Path
) -> None:
    feed = gbfs_set(tmp_path / "gbfs", ["v1"])
    watcher = Watcher(
        [FeedSpec("gbfs", str(feed))], lambda: (index.conn, index.hot), index.settings
    )
    assert len(watcher.run_once()) == 1
    for path in feed.iterdir():
        path.unlink()
    watcher.feeds[0].due = 0.0
    assert watcher.run_once() == []
    [record] = read_sources(index.hot.client, index.hot.prefix)
    assert (record.source, record.runs_ok, record.runs_failed) == ("citybikes", 1, 1)
    assert record.rows["inserted"] == 2 and record.lag_s is not None and record.lag_s >= 30


def test_recording_never_fails_what_it_records(caplog: pytest.LogCaptureFixture) -> None:
    client = connect_redis("redis://127.0.0.1:1/0")
    hot = HotIndex(client, "nowhere")
    with caplog.at_level(logging.WARNING):
        telemetry.record_import(client, hot.prefix, "s", "stores", {"inserted": 1})
        telemetry.record_failure(client, hot.prefix, "s", "stores", "boom")
    assert [r.getMessage() for r in caplog.records] == [
        "could not record an import of s: ConnectionError",
        "could not record a failed import of s: ConnectionError",
    ]
    client.close()


def test_telemetry_lives_beside_the_layout() -> None:
    assert telemetry.telemetry_prefix(layout.layout_prefix("nearby")) == "nearby:telemetry"
    assert telemetry.source_key("nearby:l2.r5.7.9.11", "divvy") == "nearby:telemetry:source:divvy"
