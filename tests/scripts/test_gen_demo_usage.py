"""scripts/gen_demo_usage.py: the simulated week (seeded, within its 7 days, by hour and place),
and its load through a Redis Stream with the demo users, once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import Result

from indexer.store import users
from scripts.gen_demo_catalog import main as gen_demo_catalog
from scripts.gen_demo_usage import (
    HELSINKI,
    USERS,
    Branch,
    place_weight,
    read_branches,
    simulate_week,
)
from tests.conftest import Index
from tests.factories import DEMO_SOURCE, clear_catalog, load_demo_shops, load_demo_usage

END = "2026-12-06T18:00:00+00:00"
END_S = datetime.fromisoformat(END).timestamp()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[Branch]]:
    out = tmp_path_factory.mktemp("demo")
    gen_demo_catalog(["--out", str(out)])
    apps = {}
    for line in (out / "mini_apps.ndjson").read_text().splitlines():
        app = json.loads(line)
        apps[app["slug"]] = app["category"]
    return apps, read_branches(out / "branches.ndjson", DEMO_SOURCE)


def test_the_same_seed_and_end_give_the_same_week(
    demo: tuple[dict[str, str], list[Branch]],
) -> None:
    apps, branches = demo
    week = simulate_week(16, apps, branches, END_S)
    assert week == simulate_week(16, apps, branches, END_S)
    assert week != simulate_week(17, apps, branches, END_S)
    assert 2500 <= len(week) <= 4000
    times = [float(event["at"]) for event in week]
    assert times == sorted(times) and times[0] >= END_S - 7 * 86400 and times[-1] < END_S
    known = {branch.entity_id for branch in branches}
    assert {event["entity_id"] for event in week} <= known
    assert {event["type"] for event in week} <= {"open", "order"}
    assert {event.get("user") for event in week} == {None, *USERS}


def test_coffee_is_a_morning_thing_food_noon_and_evening_kiosks_late(
    demo: tuple[dict[str, str], list[Branch]],
) -> None:
    apps, branches = demo
    slug_of = {branch.entity_id: branch.slug for branch in branches}
    by_hour: Counter[tuple[str, int]] = Counter()
    for event in simulate_week(16, apps, branches, END_S):
        hour = datetime.fromtimestamp(float(event["at"]), HELSINKI).hour
        by_hour[apps[slug_of[event["entity_id"]]], hour] += 1

    def during(category: str, hours: range) -> int:
        return sum(by_hour[category, hour] for hour in hours)

    assert during("cafe", range(7, 11)) > 3 * during("cafe", range(17, 21))
    assert during("fast_food", range(11, 14)) > 3 * during("fast_food", range(7, 10))
    assert during("fast_food", range(17, 20)) > 3 * during("fast_food", range(14, 16))
    assert during("kiosk", range(20, 24)) > 2 * during("kiosk", range(8, 12))
    assert during("cafe", range(1, 5)) == 0


def test_places_near_the_hotspots_are_busier() -> None:
    station, suburb = (60.1710, 24.9414), (60.1900, 24.9000)
    assert place_weight(*station) > 3 * place_weight(*suburb)
    assert place_weight(*suburb) == pytest.approx(0.3, abs=1e-6)


def test_the_week_loads_once_through_the_stream_with_the_users(
    index: Index,
    nearby: Callable[..., Result],
    cli_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_catalog(index)
    load_demo_shops(nearby, tmp_path)
    load_demo_usage(nearby, tmp_path, monkeypatch, cli_env, END)
    with index.conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM usage_events")
        loaded = cur.fetchone()
    index.conn.commit()
    assert loaded is not None and loaded[0] > 2000
    for user, (favourites, habits) in USERS.items():
        assert [f["slug"] for f in users.favorites(index.conn, user)] == list(favourites)[::-1]
        assert {r["slug"] for r in users.recents(index.conn, user)} <= {h.slug for h in habits}
        assert users.recents(index.conn, user)
    # Again: the favourites stay as they are, and no second week is sent.
    users.add_favorite(index.conn, "demo-ben", "subway")
    load_demo_usage(nearby, tmp_path, monkeypatch, cli_env, END)
    with index.conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM usage_events")
        assert cur.fetchone() == loaded
    index.conn.commit()
    ben = [f["slug"] for f in users.favorites(index.conn, "demo-ben")]
    assert ben == list(USERS["demo-ben"][0])[::-1]
    clear_catalog(index)
