"""The readers of ``scripts/bench_events.py``: queries timed while events arrive, and the
prober that times how soon an event counts in the rankings."""

from __future__ import annotations

import bisect
import dataclasses
import http.client
import math
import multiprocessing
import random
import threading
import time
from typing import Any

import orjson

from scripts.benchkit import percentiles

API_KEY = "bench-key"
CENTER = (37.5665, 126.978)
#: The prober's entity: alone, 20 km north of the stores.
PROBE_ID, PROBE = "bench:probe", (CENTER[0] + 0.18, CENTER[1])
#: Seconds between two probes, and how often a probe asks whether its event counts.
PROBE_EVERY_S, PROBE_POLL_S = 0.5, 0.05
#: The queries: radius and limit of GET /v1/nearby, and how far from CENTER they are asked.
QUERY_RADIUS_M, QUERY_LIMIT, QUERY_SPREAD_M = 1000, 20, 3000.0
#: Seconds of queries before the idle phase, not counted (connection, first answers).
QUERY_WARM_S = 0.5
METRES_PER_DEGREE = 111_320.0


@dataclasses.dataclass
class Queries:
    """The nearby queries of one phase: each one's latency (ms), and how many were
    not answered 200 with ``"source": "redis"`` (or not answered at all)."""

    name: str
    latencies: list[float] = dataclasses.field(default_factory=list)
    wrong: int = 0


def query_path(rng: random.Random) -> str:
    """GET /v1/nearby at a point drawn uniformly within QUERY_SPREAD_M of CENTER."""
    distance = QUERY_SPREAD_M * math.sqrt(rng.random())
    bearing = rng.uniform(0.0, 2 * math.pi)
    lat = CENTER[0] + distance * math.cos(bearing) / METRES_PER_DEGREE
    lng = CENTER[1] + distance * math.sin(bearing) / (
        METRES_PER_DEGREE * math.cos(math.radians(CENTER[0]))
    )
    return f"/v1/nearby?lat={lat!r}&lng={lng!r}&radius={QUERY_RADIUS_M}&limit={QUERY_LIMIT}"


def from_redis(status: int, body: bytes) -> bool:
    """Whether an answer is a 200 whose JSON says ``"source": "redis"``."""
    if status != 200:
        return False
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and answer.get("source") == "redis"


def ask(conn: http.client.HTTPConnection, rng: random.Random) -> tuple[float | None, bool]:
    """One query at a new point of ``rng``: its latency in ms (None: no answer, and the
    connection is closed, to be opened again), and whether the answer was right."""
    path = query_path(rng)
    started = time.perf_counter()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        return None, False
    return (time.perf_counter() - started) * 1000, from_redis(response.status, body)


def run_queries(port: int, seed: int, stop: Any, out: Any) -> None:
    """The querier's process: query until ``stop`` is set, then send back each answer's
    (wall-clock time asked, latency in ms or None, whether it was right)."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples: list[tuple[float, float | None, bool]] = []
    while not stop.is_set():
        asked = time.time()
        latency, right = ask(conn, rng)
        samples.append((asked, latency, right))
    conn.close()
    out.send(samples)
    out.close()


class Querier:
    """A process of its own (so that the senders' threads never hold its interpreter lock)
    sending nearby queries, one at a time over one keep-alive connection, from its start
    until ``close``; each answer goes to the phase current when it was asked."""

    def __init__(self, port: int, seed: int) -> None:
        context = multiprocessing.get_context("fork")
        self.receive, send = context.Pipe(duplex=False)
        self.stop = context.Event()
        self.process = context.Process(target=run_queries, args=(port, seed, self.stop, send))
        self.process.start()
        self.phases: list[tuple[float, Queries]] = [(time.time(), Queries("warm"))]

    def record_as(self, name: str) -> Queries:
        """Start a new phase: what the queries asked from now on record (filled at close)."""
        phase = Queries(name)
        self.phases.append((time.time(), phase))
        return phase

    def idle(self, seconds: float) -> Queries:
        """The queries of ``seconds`` from now (after QUERY_WARM_S uncounted)."""
        time.sleep(QUERY_WARM_S)
        idle = self.record_as("idle")
        time.sleep(seconds)
        return idle

    def close(self) -> None:
        """Stop the process, once the query it is asking is answered, and file each answer
        under its phase (again: nothing)."""
        if self.stop.is_set():
            return
        self.stop.set()
        samples = self.receive.recv()
        self.process.join()
        starts = [started for started, _ in self.phases]
        for asked, latency, right in samples:
            phase = self.phases[max(0, bisect.bisect_right(starts, asked) - 1)][1]
            if latency is not None:
                phase.latencies.append(latency)
            phase.wrong += not right


class Prober:
    """One thread that, until closed, sends an event for PROBE_ID every PROBE_EVERY_S and
    asks GET /v1/nearby at it until its ``popularity_now`` grew: the seconds each took."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.delays: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def popularity(self, conn: http.client.HTTPConnection) -> float:
        """The probe's ``popularity_now`` as the API answers it."""
        conn.request("GET", f"/v1/nearby?lat={PROBE[0]}&lng={PROBE[1]}&radius=50&limit=1")
        answer = orjson.loads(conn.getresponse().read())
        return float(answer["results"][0]["popularity_now"])

    def probe(self, conn: http.client.HTTPConnection) -> None:
        """One event, and the seconds until it counts (not recorded when closed first)."""
        before = self.popularity(conn)
        event = {"type": "order", "entity_id": PROBE_ID, "at": time.time()}
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
        sent = time.perf_counter()
        conn.request("POST", "/v1/events", orjson.dumps([event]), headers)
        conn.getresponse().read()
        while self.popularity(conn) <= before:
            if self.stop.wait(PROBE_POLL_S):
                return
        self.delays.append(time.perf_counter() - sent)

    def run(self) -> None:
        """The thread: probe until closed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stop.wait(PROBE_EVERY_S):
            self.probe(conn)
        conn.close()

    def close(self) -> list[float]:
        """Stop probing; the delays measured."""
        self.stop.set()
        self.thread.join()
        return self.delays


def query_line(queries: Queries, idle_p99: float | None) -> str:
    """One row of the query table: count, p50 and p99 (ms), p99 over idle's, wrong answers."""
    if len(queries.latencies) < 2:
        return f"| {queries.name} | {len(queries.latencies):,} | – | – | – | {queries.wrong:,} |"
    p50, p99 = percentiles(queries.latencies)
    ratio = "–" if not idle_p99 else f"{p99 / idle_p99:.2f}×"
    return (
        f"| {queries.name} | {len(queries.latencies):,} | {p50:.2f} | {p99:.2f} | {ratio}"
        f" | {queries.wrong:,} |"
    )


def print_queries(phases: list[Queries]) -> None:
    """The query table (idle first), and whether every answer was a 200 from Redis."""
    idle = phases[0].latencies
    idle_p99 = percentiles(idle)[1] if len(idle) >= 2 else None
    print()
    print(f"GET /v1/nearby, radius {QUERY_RADIUS_M:,} m, limit {QUERY_LIMIT}, one keep-alive"
          f" connection, a new point within {QUERY_SPREAD_M / 1000:g} km each time")  # fmt: skip
    print("| queries | count | p50 ms | p99 ms | p99 / idle p99 | not 200 from Redis |")
    print("|---|---:|---:|---:|---:|---:|")
    for queries in phases:
        print(query_line(queries, idle_p99))
    wrong = sum(q.wrong for q in phases)
    asked = sum(len(q.latencies) + q.wrong for q in phases)
    if wrong:
        print(f'{wrong:,} of {asked:,} queries were not answered 200 with "source": "redis"')
    else:
        print(f'all {asked:,} queries answered 200 with "source": "redis"')
