"""`nearby import gbfs|chargers` and `nearby feeds watch` against PostGIS and Redis."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from indexer.cli.feeds import parse_feed_line
from indexer.hot.index import HotIndex
from indexer.jobs.feeds import FeedSpec
from indexer.jobs.watch import WatchBounds, Watcher, backoff, next_interval
from indexer.store import db
from tests.conftest import Index
from tests.factories import FEED_NOW, OLD, gbfs_set

Nearby = Callable[..., Result]


def ids(index: Index) -> list[str]:
    with index.conn.cursor() as cur:
        cur.execute("SELECT id FROM entities ORDER BY id")
        found = [row[0] for row in cur.fetchall()]
    index.conn.commit()
    return found


def summary(result: Result) -> str:
    """The summary line with its duration masked."""
    return re.sub(r"in \d+\.\d s$", "in _ s", result.output.strip().splitlines()[-1])


def test_import_gbfs_is_a_snapshot_of_its_source(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    first = nearby("import", "gbfs", str(gbfs_set(tmp_path / "a", ["v1", "v2"])))
    assert first.exit_code == 0, first.output
    assert summary(first) == (
        "citybikes: imported 3 · updated 0 · unchanged 0 · removed 0 · rejected 0"
        " · already stale 1 in _ s"
    )
    assert ids(index) == ["citybikes:station:s1", "citybikes:vehicle:v1", "citybikes:vehicle:v2"]

    second = nearby("import", "gbfs", str(gbfs_set(tmp_path / "b", ["v2", "v3"])))
    assert summary(second) == (
        "citybikes: imported 1 · updated 0 · unchanged 2 · removed 1 · rejected 0"
        " · already stale 1 in _ s"
    )
    assert ids(index) == ["citybikes:station:s1", "citybikes:vehicle:v2", "citybikes:vehicle:v3"]
    assert index.hot.verify(index.conn) == []


def test_an_old_snapshot_still_imports_and_says_it_is_stale(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    path = gbfs_set(tmp_path / "old", ["v1"], vehicle_time=OLD)
    result = nearby("import", "gbfs", str(path / "free_bike_status.json"), "--source", "cb")
    assert result.exit_code == 0
    assert summary(result) == (
        "cb: imported 1 · updated 0 · unchanged 0 · removed 0 · rejected 0 · already stale 1 in _ s"
    )


def test_rejected_records_exit_1_and_are_listed(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    path = gbfs_set(tmp_path / "a", ["v1"])
    doc = json.loads((path / "free_bike_status.json").read_text())
    doc["data"]["bikes"].append({"bike_id": "bad", "lat": 99, "lon": 0})
    (path / "free_bike_status.json").write_text(json.dumps(doc))
    result = nearby("import", "gbfs", str(path))
    assert result.exit_code == 1
    assert "rejected free_bike_status bad: no valid lat/lon" in result.output
    assert "citybikes:vehicle:v1" in ids(index)


def test_unreadable_input_exits_2_and_writes_nothing(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    (tmp_path / "broken.json").write_text("{")
    for args in (
        ("import", "gbfs", str(tmp_path / "nowhere.json")),
        ("import", "gbfs", str(tmp_path / "broken.json")),
        ("import", "chargers", str(tmp_path / "broken.json"), "--format", "ocpi"),
    ):
        result = nearby(*args)
        assert result.exit_code == 2, (args, result.output)
    (tmp_path / "list.json").write_text("[]")
    assert nearby("import", "chargers", str(tmp_path / "list.json")).exit_code == 2  # no --format
    assert ids(index) == []


def test_import_chargers_ocpi_and_ocm(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    seen = FEED_NOW.isoformat().replace("+00:00", "Z")
    location = {
        "country_code": "FI",
        "party_id": "VLT",
        "id": "L1",
        "coordinates": {"latitude": "60.17", "longitude": "24.94"},
        "evses": [{"uid": "1", "status": "AVAILABLE"}, {"uid": "2", "status": "CHARGING"}],
        "last_updated": seen,
    }
    (tmp_path / "ocpi.json").write_text(json.dumps({"data": [location]}))
    result = nearby("import", "chargers", str(tmp_path / "ocpi.json"), "--format", "ocpi")
    assert summary(result) == (
        "ocpi-fi-vlt: imported 1 · updated 0 · unchanged 0 · removed 0 · rejected 0"
        " · already stale 0 in _ s"
    )
    poi = {"ID": 9, "AddressInfo": {"Title": "T", "Latitude": 60.16, "Longitude": 24.95}}
    (tmp_path / "ocm.json").write_text(json.dumps([poi]))
    result = nearby("import", "chargers", str(tmp_path / "ocm.json"), "--format", "ocm")
    assert result.exit_code == 0
    assert ids(index) == ["ocm:9", "ocpi-fi-vlt:L1"]
    with index.conn.cursor() as cur:
        cur.execute("SELECT available, capacity FROM entities WHERE id = 'ocpi-fi-vlt:L1'")
        assert cur.fetchone() == (1, 2)
    index.conn.commit()


# --- the watcher -------------------------------------------------------------


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


def test_feed_lines() -> None:
    assert parse_feed_line("# comment") is None
    assert parse_feed_line("   ") is None
    assert parse_feed_line("https://x/gbfs.json") == FeedSpec("gbfs", "https://x/gbfs.json")
    assert parse_feed_line("ocm:https://x/poi") == FeedSpec("ocm", "https://x/poi")
    assert parse_feed_line("gbfs https://x/gbfs.json cb fi") == FeedSpec(
        "gbfs", "https://x/gbfs.json", "cb", "fi"
    )
    assert parse_feed_line("ocpi /data/l.json  # nightly") == FeedSpec("ocpi", "/data/l.json")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
    assert ids(index) == ["citybikes:station:s1", "citybikes:vehicle:v2"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_watch_stops_cleanly_on_sigterm(
    cli_env: dict[str, str], index: Index, tmp_path: Path
) -> None:
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(f"ocm {tmp_path / 'missing.json'}\ngbfs {gbfs_set(tmp_path / 'g', ['v1'])}\n")
    code = "from discovery.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "feeds", "watch", "--feeds", str(feeds)],
        env={**os.environ, **cli_env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        lines: list[str] = []
        assert process.stderr is not None
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "citybikes: imported 2" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    assert "missing.json failed (1 in a row)" in log
    assert "stopping on SIGTERM" in log
    assert "stopped; 1 of 2 feeds failing" in log
    assert "citybikes:vehicle:v1" in ids(index)
