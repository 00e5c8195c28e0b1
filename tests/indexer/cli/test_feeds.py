"""`nearby import gbfs|chargers` and `nearby feeds watch` against PostGIS and Redis."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from indexer.cli.feeds import parse_feed_line
from indexer.jobs.feeds import FeedSpec
from tests.conftest import Index
from tests.factories import OLD, entity_ids, feed_now, fresh, gbfs_set

Nearby = Callable[..., Result]


def summary(result: Result) -> str:
    """The summary line with its duration masked."""
    return re.sub(r"in \d+\.\d s$", "in _ s", result.output.strip().splitlines()[-1])


def test_import_gbfs_is_a_snapshot_of_its_source(
    nearby: Nearby, index: Index, tmp_path: Path
) -> None:
    at = fresh()
    first = nearby("import", "gbfs", str(gbfs_set(tmp_path / "a", ["v1", "v2"], at=at)))
    assert first.exit_code == 0, first.output
    assert summary(first) == (
        "citybikes: imported 3 · updated 0 · unchanged 0 · removed 0 · rejected 0"
        " · already stale 1 in _ s"
    )
    assert entity_ids(index) == [
        "citybikes:station:s1",
        "citybikes:vehicle:v1",
        "citybikes:vehicle:v2",
    ]

    second = nearby("import", "gbfs", str(gbfs_set(tmp_path / "b", ["v2", "v3"], at=at)))
    assert summary(second) == (
        "citybikes: imported 1 · updated 0 · unchanged 2 · removed 1 · rejected 0"
        " · already stale 1 in _ s"
    )
    assert entity_ids(index) == [
        "citybikes:station:s1",
        "citybikes:vehicle:v2",
        "citybikes:vehicle:v3",
    ]
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
    assert "citybikes:vehicle:v1" in entity_ids(index)


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
    assert entity_ids(index) == []


def test_import_chargers_ocpi_and_ocm(nearby: Nearby, index: Index, tmp_path: Path) -> None:
    seen = feed_now().isoformat().replace("+00:00", "Z")
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
    assert entity_ids(index) == ["ocm:9", "ocpi-fi-vlt:L1"]
    with index.conn.cursor() as cur:
        cur.execute("SELECT available, capacity FROM entities WHERE id = 'ocpi-fi-vlt:L1'")
        assert cur.fetchone() == (1, 2)
    index.conn.commit()


# --- the watcher -------------------------------------------------------------


def test_feed_lines() -> None:
    assert parse_feed_line("# comment") is None
    assert parse_feed_line("   ") is None
    assert parse_feed_line("https://x/gbfs.json") == FeedSpec("gbfs", "https://x/gbfs.json")
    assert parse_feed_line("ocm:https://x/poi") == FeedSpec("ocm", "https://x/poi")
    assert parse_feed_line("gbfs https://x/gbfs.json cb fi") == FeedSpec(
        "gbfs", "https://x/gbfs.json", "cb", "fi"
    )
    assert parse_feed_line("ocpi /data/l.json  # nightly") == FeedSpec("ocpi", "/data/l.json")


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
    assert "citybikes:vehicle:v1" in entity_ids(index)
