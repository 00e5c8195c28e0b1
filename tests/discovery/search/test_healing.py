"""The API heals the hot index by itself: a Redis that restarts empty under traffic, many
processes noticing at once, a write that died before Redis had it (real servers)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from discovery.api.app import create_app
from discovery.search.healing import Healer
from discovery.search.query import NearbyQuery
from discovery.search.ranking import brute_force
from discovery.settings import ApiSettings
from indexer.hot import layout
from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.store.writer import write_entities
from tests.conftest import API_KEY, Index
from tests.discovery.serving import serving
from tests.factories import (
    HEADER,
    SHOPS,
    bike,
    candidate_of,
    fetch,
    killed_import,
    pending_marks,
    random_stores,
    write_lines,
)
from tests.redis_server import redis_server

#: Query points of the traffic (the entities of random_stores lie around them).
POINTS = ((60.2, 24.95), (60.15, 24.85), (60.25, 25.05), (60.12, 25.0))
#: Requests after Redis came back at most before it must serve again (a bound on
#: the loop, not a measure of time).
RECOVERY_REQUESTS = 5000


def wait_for_line(log: Path, line: str) -> str:
    """The log once it holds ``line`` (a healing rebuild logs its finish as its process
    exits, which may be after Redis serves again)."""
    for _ in range(600):
        text = log.read_text()
        if line in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{line!r} never came:\n{text}")


def expected_page(entities: list[Entity], lat: float, lng: float) -> list[tuple[str, float, float]]:
    """The brute force's top 10 within 3 km of (lat, lng)."""
    query = NearbyQuery(lat=lat, lng=lng, radius_m=3000.0, scale_m=1500.0, limit=10)
    hits, _ = brute_force(query, map(candidate_of, entities))
    return [(hit.id, hit.distance_m, hit.score) for hit in hits]


@dataclass
class Traffic:
    """Nearby requests in a loop from a few threads; what each got."""

    base: str
    expected: dict[tuple[float, float], list[tuple[str, float, float]]]
    sources: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wrong: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self, offset: int) -> None:
        """Ask the points in turn until stopped; a failure is any answer but a right 200."""
        n = offset
        while not self.stop.is_set():
            lat, lng = POINTS[n % len(POINTS)]
            n += 1
            url = f"{self.base}/v1/nearby?lat={lat}&lng={lng}&radius=3000&limit=10"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    status, body = response.status, json.loads(response.read())
            except Exception as exc:  # a refused, broken or failed request
                self.failures.append(repr(exc))
                continue
            if status != 200:
                self.failures.append(f"{status}: {body}")
                continue
            page = [(r["id"], r["distance_m"], r["score"]) for r in body["results"]]
            if page != self.expected[(lat, lng)]:
                self.wrong.append((lat, lng))
            self.sources.append(body["source"])

    def wait_for(self, source: str, count: int, limit: int = RECOVERY_REQUESTS) -> None:
        """Wait until ``count`` answers in a row came from ``source`` (within ``limit`` more)."""
        start = len(self.sources)
        while len(self.sources) < start + limit:
            recent = self.sources[-count:]
            if len(self.sources) - start >= count and recent == [source] * count:
                return
            time.sleep(0.01)
        raise AssertionError(f"no {count} answers in a row from {source}: {self.sources[-20:]}")


def test_a_redis_that_restarts_empty_under_traffic_heals_without_a_failed_request(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    entities = random_stores(400)
    with redis_server(tmp_path) as own:
        hot = HotIndex(connect_redis(own.url), index.settings.redis_prefix)
        hot.rebuild(index.conn)
        write_entities(index.conn, hot, "t", entities)
        env = {**cli_env, "REDIS_URL": own.url, "NEARBY_HEAL_CHECK_S": "1"}
        expected = {point: expected_page(entities, *point) for point in POINTS}
        assert all(len(page) == 10 for page in expected.values())
        with serving(env, tmp_path / "serve.log", "--workers", "2") as served:
            base = served.base
            traffic = Traffic(base, expected)
            senders = [threading.Thread(target=traffic.send, args=(n,)) for n in range(3)]
            for sender in senders:
                sender.start()
            try:
                traffic.wait_for("redis", 20)
                own.kill()
                # Long enough for each worker to fail more connections than its
                # Redis pool counts (100): they must still come back to Redis.
                traffic.wait_for("postgis", 300)
                own.start()  # empty: no persistence
                traffic.wait_for("redis", 50)
            finally:
                traffic.stop.set()
                for sender in senders:
                    sender.join()
            log = wait_for_line(tmp_path / "serve.log", "healing rebuild finished")
        healed = HotIndex(connect_redis(own.url), index.settings.redis_prefix)
        # One rebuild between the two workers: the only generation marked since the restart.
        assert healed.client.get(layout.counter_key(healed.prefix)) == "1"
        assert healed.verify(index.conn) == []
        healed.close()
        hot.close()
    assert traffic.failures == []
    assert traffic.wrong == []
    assert "postgis" in traffic.sources
    assert log.count("healing rebuild started") == 1, log
    assert "rebuilt 400 entities from PostGIS" in log, log


CHECKER = """
import sys, threading
from discovery.search.healing import Healer
from discovery.settings import ApiSettings
from indexer.store import db
from indexer.hot.heal import ensure_index
from indexer.hot.index import HotIndex, connect_redis

settings = ApiSettings.from_env()
hot = HotIndex(connect_redis(settings.index.redis_url), settings.index.redis_prefix)
conn = db.connect(settings.index.database_url)
hot.generation()  # connected: start together
print("ready", flush=True)
sys.stdin.readline()
if sys.argv[1] == "api":
    started = Healer(settings.index, hot, settings.heal_check_s).notice_missing()
    print("started" if started else "left", flush=True)
    for thread in threading.enumerate():
        if thread.name == "healing":
            thread.join()
else:  # what a write or a feed sync does first
    print("built" if ensure_index(conn, hot) else "left", flush=True)
"""


def test_processes_that_find_the_index_missing_at_once_build_it_once(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    write_entities(index.conn, index.hot, "t", random_stores(300))
    index.hot.drop_all()  # Redis came back empty
    script = tmp_path / "checker.py"
    script.write_text(CHECKER)
    env = {**cli_env, "NEARBY_HEAL_CHECK_S": "5"}
    kinds = ["api"] * 8 + ["inline"] * 2
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), kind],
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        for kind in kinds
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    said = [process.communicate(timeout=120)[0].strip() for process in processes]
    assert all(process.returncode == 0 for process in processes), said
    api, inline = said[:8], said[8:]
    # At most one API process started a rebuild, at most one inline check built, and
    # of the processes between them one build was ever marked.
    assert api.count("started") <= 1 and inline.count("built") <= 1, said
    assert api.count("started") + inline.count("built") >= 1, said
    assert index.hot.client.get(layout.counter_key(index.hot.prefix)) == "1"
    assert index.hot.verify(index.conn) == []


def test_a_process_checks_at_most_once_a_period(index: Index) -> None:
    now = [100]
    started: list[str] = []
    healer = Healer(
        index.settings, index.hot, 5.0, starter=lambda _s, reason: started.append(reason),
        clock=lambda: float(now[0]),
    )  # fmt: skip

    def notice() -> bool:
        found = healer.notice_missing()
        for thread in threading.enumerate():
            if thread.name == "healing":
                thread.join()
        return found

    assert not notice() and started == []  # a generation is current
    now[0] += 5
    index.hot.drop_all()
    assert notice() and started == ["Redis holds no index generation"]
    assert 0 < index.hot.client.pttl(healer.key) <= 30_000  # others wait for it
    index.hot.client.delete(healer.key)
    now[0] += 4
    assert not notice()  # too soon for this process, whatever Redis holds
    now[0] += 1
    assert notice() and len(started) == 2
    now[0] += 5
    assert not notice()  # the lease of the one just started holds
    assert not Healer(index.settings, index.hot, 0.0).notice_missing()  # healing off


def test_a_server_start_repairs_a_write_that_died_before_redis(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    write_entities(index.conn, index.hot, "t", random_stores(30))
    killed_import(cli_env, tmp_path, "merge", write_lines(tmp_path / "shops.csv", [HEADER, *SHOPS]))
    assert pending_marks(index) == 1 and len(index.hot.verify(index.conn)) == len(SHOPS)
    env = {**cli_env, "NEARBY_HEAL_CHECK_S": "5"}
    with serving(env, tmp_path / "serve.log", "--workers", "2") as served:
        base = served.base
        for _ in range(600):
            if pending_marks(index) == 0:
                break
            time.sleep(0.05)
        status, _, body = fetch(f"{base}/v1/nearby?lat=60.17&lng=24.94&radius=300&limit=5")
    assert pending_marks(index) == 0, (tmp_path / "serve.log").read_text()
    assert index.hot.verify(index.conn) == []
    assert (status, body["source"]) == (200, "redis")
    assert {r["id"] for r in body["results"]} >= {"shops:1", "shops:2", "shops:3"}


def test_a_server_start_fills_a_missing_generation(
    index: Index, cli_env: dict[str, str], tmp_path: Path
) -> None:
    write_entities(index.conn, index.hot, "t", random_stores(30))
    index.hot.drop_all()  # Redis restarted empty while the server was down
    env = {**cli_env, "NEARBY_HEAL_CHECK_S": "5"}
    with serving(env, tmp_path / "serve.log", "--workers", "2"):
        log = wait_for_line(tmp_path / "serve.log", "healing rebuild finished")
    assert log.count("healing rebuild started") == 1, log  # one of the two workers
    assert index.hot.verify(index.conn) == []


def join_threads(name: str) -> None:
    for thread in threading.enumerate():
        if thread.name == name:
            thread.join()


def test_a_query_or_a_push_that_finds_no_generation_starts_a_healing(
    index: Index, api_settings: ApiSettings
) -> None:
    app = create_app(replace(api_settings, heal_check_s=5.0))
    svc = app.extensions["nearby"]
    join_threads("heal-start")  # the start's check: the index is current, nothing started
    started: list[str] = []
    svc.healer.starter = lambda _settings, reason: started.append(reason)
    client = app.test_client()
    write_entities(index.conn, index.hot, "citybikes", [bike("b1", 60.17, 24.94)])
    index.hot.drop_all()
    push = {"items": [{"id": "citybikes:b1", "lat": 60.171, "lng": 24.94}]}
    answer = client.post("/v1/positions", json=push, headers={"X-API-Key": API_KEY})
    assert (answer.status_code, answer.get_json()["applied"]) == (200, 1)
    join_threads("healing")
    assert started == ["Redis holds no index generation"]
    index.hot.client.delete(svc.healer.key)
    later = time.monotonic() + 5.0
    svc.healer.clock = lambda: later  # the period has passed
    body = client.get("/v1/nearby?lat=60.17&lng=24.94&radius=500").get_json()
    assert body["source"] == "postgis" and [r["id"] for r in body["results"]] == ["citybikes:b1"]
    join_threads("healing")
    assert len(started) == 2
    svc.close()
