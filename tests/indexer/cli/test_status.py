"""``nearby status``: a known index on one screen and as JSON, and with a store down."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from discovery.cli import cli
from indexer.hot import layout
from indexer.jobs.feeds import FeedSpec, import_feed
from indexer.model import Entity
from indexer.settings import UsageSettings
from indexer.store.events import apply_round, take_events
from indexer.store.writer import write_entities
from tests.conftest import Index
from tests.factories import USAGE_AT, gbfs_set, random_events

LAG_S = 12


def known_index(index: Index, cli_env: dict[str, str], tmp_path: Path) -> float:
    """3 stores imported from a CSV, a GBFS feed of a stale station and 2 free bikes, a
    charger; returns when the feed was synced."""
    shops = tmp_path / "shops.csv"
    shops.write_text("id,name,lat,lng\n1,A,60.17,24.94\n2,B,60.171,24.941\n3,C,60.172,24.942\n")
    assert run(cli_env, "import", "stores", str(shops)).exit_code == 0
    seen = int(time.time()) - 40
    synced = datetime.fromtimestamp(seen + LAG_S, UTC)
    feed = gbfs_set(tmp_path / "gbfs", ["v1", "v2"], vehicle_time=seen)
    import_feed(index.conn, index.hot, index.settings, FeedSpec("gbfs", str(feed)), now=synced)
    charger = Entity(id="volt:1", kind="charger", lat=60.17, lng=24.95, available=1,
                     capacity=2, seen_at=datetime.now(UTC))  # fmt: skip
    write_entities(index.conn, index.hot, "volt", [charger])
    return synced.timestamp()


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def status_json(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    result = run(env, "status", "--json")
    return result.exit_code, json.loads(result.output)


EXPECTED_ROWS = [
    {"kind": "store", "source": "shops", "postgis": 3, "redis": 3, "stale": 0},
    {"kind": "bike", "source": "citybikes", "postgis": 3, "redis": 3, "stale": 1},
    {"kind": "charger", "source": "volt", "postgis": 1, "redis": 1, "stale": 0},
]


def test_status_json_of_a_known_index(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    synced = known_index(index, cli_env, tmp_path)
    code, shape = status_json(cli_env)
    assert code == 0 and shape["ok"] is True
    assert shape["postgis"] == {"reachable": True, "error": None}
    assert shape["entities"] == EXPECTED_ROWS
    assert shape["totals"] == {"postgis": 7, "redis": 7, "stale": 1}
    gen = index.hot.require_generation()
    generation = shape["generation"]
    assert (generation["current"], generation["building"]) == (gen, None)
    assert generation["since"] is not None and generation["age_s"] >= 0
    memory = shape["redis"]
    assert memory["reachable"] and memory["used_memory_bytes"] > 0
    assert memory["bytes_per_entity"] == round(memory["used_memory_bytes"] / 7, 1)
    sources = {source["source"]: source for source in shape["sources"]}
    bikes = sources["citybikes"]
    assert (bikes["via"], bikes["lag_s"], bikes["runs_ok"], bikes["runs_failed"]) == (
        "gbfs", float(LAG_S), 1, 0
    )  # fmt: skip
    assert bikes["last_success"] == datetime.fromtimestamp(synced, UTC).isoformat()
    assert bikes["rows"] == {"inserted": 3, "updated": 0, "unchanged": 0, "deleted": 0,
                             "rejected": 0}  # fmt: skip
    shops = sources["shops"]
    assert (shops["via"], shops["lag_s"], shops["rows"]["inserted"]) == ("stores", None, 3)
    rebuilds = shape["rebuilds"]
    # No build ran alongside: each generation number went to a build that became current.
    assert rebuilds["started"] == rebuilds["finished"]["ok"] == int(gen)
    assert rebuilds["finished"]["failed"] == rebuilds["finished"]["superseded"] == 0


def test_status_on_one_screen(index: Index, cli_env: dict[str, str], tmp_path: Path) -> None:
    known_index(index, cli_env, tmp_path)
    result = run(cli_env, "status")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("nearby status at ")
    assert lines[1] == "PostGIS  reachable"
    assert lines[2].startswith("Redis    reachable · ") and lines[2].endswith(" per entity")
    gen = index.hot.require_generation()
    assert lines[3].startswith(f"generation {gen} · current since ")
    assert lines[3].endswith(" ago) · no build running")
    assert lines[5:10] == [
        "kind     source     PostGIS  Redis  stale",
        "store    shops            3      3      0",
        "bike     citybikes        3      3      1",
        "charger  volt             1      1      0",
        "all                       7      7      1",
    ]
    feeds = [line for line in lines if line.startswith("citybikes ")]
    assert len(feeds) == 1 and " 12 s " in feeds[0] and feeds[0].split()[-1] == "–"


def test_a_build_under_way_is_shown(index: Index, cli_env: dict[str, str]) -> None:
    building = layout.building_key(index.hot.prefix)
    index.hot.client.set(building, "99", px=20_000)
    try:
        _, shape = status_json(cli_env)
        line = run(cli_env, "status").output.splitlines()[3]
    finally:
        index.hot.client.delete(building)
    assert shape["generation"]["building"] == "99"
    assert 0 < shape["generation"]["building_lease_s"] <= 20
    assert re.search(r" · building generation 99 \(lease \d+(\.\d)? s left\)$", line), line


def test_status_when_redis_is_down(index: Index, cli_env: dict[str, str], tmp_path: Path) -> None:
    known_index(index, cli_env, tmp_path)
    down = {**cli_env, "REDIS_URL": "redis://127.0.0.1:1/0"}
    code, shape = status_json(down)
    assert code == 1 and shape["ok"] is False
    assert shape["postgis"]["reachable"] is True
    assert shape["redis"]["reachable"] is False and "Connection refused" in shape["redis"]["error"]
    assert shape["entities"] == [{**row, "redis": None} for row in EXPECTED_ROWS]
    assert shape["totals"] == {"postgis": 7, "redis": None, "stale": 1}
    assert (shape["generation"], shape["sources"], shape["rebuilds"]) == (None, None, None)
    result = run(down, "status")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[1:4] == [
        "PostGIS  reachable",
        f"Redis    NOT REACHABLE: {shape['redis']['error']}",
        "generation unknown (Redis is not reachable)",
    ]
    assert lines[6] == "store    shops            3      –      0"


def test_status_when_postgis_is_down(index: Index, cli_env: dict[str, str], tmp_path: Path) -> None:
    known_index(index, cli_env, tmp_path)
    down = {**cli_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    code, shape = status_json(down)
    assert code == 1 and shape["postgis"]["reachable"] is False
    assert shape["redis"]["reachable"] is True
    assert shape["entities"] == [{**row, "postgis": None, "stale": None} for row in EXPECTED_ROWS]
    assert run(down, "status").output.splitlines()[1].startswith("PostGIS  NOT REACHABLE: ")


def test_status_without_a_hot_index(index: Index, cli_env: dict[str, str], tmp_path: Path) -> None:
    known_index(index, cli_env, tmp_path)
    index.hot.client.delete(layout.gen_key(index.hot.prefix))
    code, shape = status_json(cli_env)
    assert code == 0 and shape["generation"]["current"] is None
    assert shape["entities"] == [{**row, "redis": 0} for row in EXPECTED_ROWS]
    assert shape["redis"]["bytes_per_entity"] is None
    line = run(cli_env, "status").output.splitlines()[3]
    assert (
        line
        == "no generation: Redis holds no index (queries answer from PostGIS) · no build running"
    )


def test_usage_events_waiting_for_a_round(
    index: Index, entities: list[Entity], cli_env: dict[str, str]
) -> None:
    events = random_events(5, 40, entities)
    take_events(index.conn, events, UsageSettings(), USAGE_AT)
    code, shape = status_json(cli_env)
    assert code == 0
    usage = shape["usage"]
    assert usage["events_waiting"] == 40 and usage["oldest_waiting_s"] >= 0
    assert usage["last_round_s"] is None  # no round since the catalog was cleared
    assert "usage events: 40 waiting (oldest " in run(cli_env, "status").output
    apply_round(index.conn, index.hot, wait=True)
    usage = status_json(cli_env)[1]["usage"]
    assert usage["events_waiting"] == 0 and usage["oldest_waiting_s"] is None
    assert 0 <= usage["last_round_s"] < 60
    assert re.search(
        r"usage events: 0 waiting · last round [0-9.]+ s ago", run(cli_env, "status").output
    )
