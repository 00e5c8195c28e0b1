"""The feed watcher: intervals within bounds, back-off, and a feed down among others."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from indexer.hot.index import HotIndex
from indexer.jobs.feeds import FeedSpec
from indexer.jobs.watch import WatchBounds, Watcher, backoff, next_interval
from indexer.store import db
from tests.conftest import Index
from tests.factories import entity_ids, gbfs_set


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_intervals_are_the_ttl_within_bounds() -> None:
    bounds = WatchBounds(min_s=10, max_s=300, default_s=60, max_backoff_s=900)
    assert next_interval(bounds, 30) == 30
    assert next_interval(bounds, 0) == 10
    assert next_interval(bounds, 86400) == 300
    assert next_interval(bounds, None) == 60
    rng = random.Random(1)
    delays = [backoff(bounds, failures, rng) for failures in (1, 2, 3, 10)]
    assert 8 <= delays[0] <= 10
    assert 16 <= delays[1] <= 20
    assert 32 <= delays[2] <= 40
    assert 720 <= delays[3] <= 900


def test_the_watcher_keeps_polling_while_a_feed_is_down(index: Index, tmp_path: Path) -> None:
    good = FeedSpec("gbfs", str(gbfs_set(tmp_path / "good", ["v1"])))
    down = FeedSpec("ocpi", str(tmp_path / "down.json"))
    clock = Clock()

    def connect() -> tuple[Any, HotIndex]:
        return db.connect(index.settings.database_url), index.hot

    bounds = WatchBounds(min_s=10, max_s=300, default_s=60, max_backoff_s=900)
    watcher = Watcher([good, down], connect, index.settings, bounds, clock=clock)
    reports = watcher.run_once()
    assert [r.source for r in reports] == ["citybikes"]
    assert watcher.feeds[0].due == 1030.0  # the feed's ttl
    assert watcher.feeds[1].failures == 1
    assert 1008.0 <= watcher.feeds[1].due <= 1010.0
    assert "down.json" in watcher.feeds[1].last_error

    clock.now = 1031.0
    gbfs_set(tmp_path / "good", ["v2"])
    (tmp_path / "down.json").write_text(json.dumps({"data": []}))
    reports = watcher.run_once()
    # The station, seen two hours ago, was purged after the first cycle and
    # comes back with the snapshot: 2 imported (it and v2), 1 removed (v1).
    assert [(r.source, r.written.inserted, r.written.deleted) for r in reports] == [
        ("citybikes", 2, 1),
        ("ocpi", 0, 0),
    ]
    assert watcher.feeds[1].failures == 0
    assert watcher.feeds[1].due == 1031.0 + 60
    assert entity_ids(index) == ["citybikes:station:s1", "citybikes:vehicle:v2"]
