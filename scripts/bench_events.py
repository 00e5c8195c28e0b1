"""Usage events accepted per second: POST /v1/events in batches, beside a raw Redis baseline.

Over a scratch index of its own (``nearby_bench_events``, prefix
``nearby-bench-events``): ``--stores`` stores of ``--apps`` mini-apps, all in the
catalog. The same events, made once, go

- through ``POST /v1/events`` of ``nearby serve`` (2 workers), in batches of
  ``--batch`` as JSON, from ``--senders`` keep-alive connections at once, at
  ``--rate`` events/s together (each sender's batches evenly spaced; 0: each
  sender as fast as it is answered): checked and stored in PostGIS;
- raw: XADD of each event to a stream, and HINCRBYFLOAT of its weight per entity,
  each pipelined in batches of the same size (what a Redis counter alone costs).

The endpoint stores each batch and answers; rounds of the server count what
was stored every ``--round-s`` (``NEARBY_EVENT_ROUND_S``). How long an event
takes to reach the rankings is measured as users would see it: a prober sends
one event for an entity of its own, away from the others, every half second
during the HTTP phase, and asks ``GET /v1/nearby`` at that entity until its
``popularity_now`` grew (the seconds from sending to seeing, p50 and most);
and once the senders stop, how long until nothing is left to count.

Queries (on unless ``--no-queries``): before the HTTP phase, for
``--idle-seconds``, one client thread sends ``GET /v1/nearby`` (radius 1,000 m,
limit 20) to the same server over one keep-alive connection, at points drawn at
random within 3 km of the stores' centre, a new point each time, and times each
answer ("idle", after half a second not counted); the same thread and connection
go on during the HTTP phase, beside the senders. An answer counts as right when
it is a 200 with ``"source": "redis"``.

Prints one table row per phase: events/s, and the CPU seconds PostgreSQL and
Redis used per 100,000 events (with queries on, the HTTP row's include what the
queries used). Then, with queries on, a second table: the queries' count, p50
and p99 in ms idle and during the HTTP phase, the ratio of p99 during to p99
idle, and how many answers were not right.

    python -m scripts.bench_events --seconds 20
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import itertools
import random
import statistics
import threading
import time
from datetime import UTC, datetime

import orjson

from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.settings import DEFAULT_EVENT_ROUND_S, DEFAULT_EVENT_WEIGHTS, IndexSettings
from indexer.store import db
from indexer.store.catalog import MiniApp, publish_catalog, read_catalog, write_catalog
from indexer.store.usage_rounds import round_lock
from indexer.store.writer import write_entities
from scripts.bench_events_readers import (
    API_KEY,
    CENTER,
    PROBE,
    PROBE_ID,
    PROBE_POLL_S,
    Prober,
    Querier,
    Queries,
    print_queries,
)
from scripts.benchkit import (
    ensure_database,
    free_port,
    log,
    postgres_cpu,
    postgres_cpu_since,
    redis_cpu,
    scratch_settings,
    serve,
)


def seed(settings: IndexSettings, stores: int, apps: int) -> None:
    """Stores around CENTER (each of one of the ``apps`` mini-apps), the catalog, no usage."""
    rng = random.Random(1)
    conn = db.connect(settings.database_url)
    client = connect_redis(settings.redis_url)
    hot = HotIndex(client, settings.redis_prefix)
    with conn.cursor() as cur:
        cur.execute(
            "TRUNCATE entities, hot_pending, mini_apps, usage_events, usage_pending,"
            " usage_mini_app, user_recents, user_favorites, usage_basis"
        )
    conn.commit()
    hot.drop_all()
    entities = (
        Entity(id=f"bench:{n}", kind="store", lat=CENTER[0] + rng.uniform(-0.05, 0.05),
               lng=CENTER[1] + rng.uniform(-0.05, 0.05), mini_app=f"app-{n % apps}")
        for n in range(stores)
    )  # fmt: skip
    probe = Entity(id=PROBE_ID, kind="store", lat=PROBE[0], lng=PROBE[1], mini_app="app-0")
    write_entities(conn, hot, "bench", itertools.chain(entities, [probe]))
    write_catalog(conn, [MiniApp(f"app-{n}", f"App {n}") for n in range(apps)], replace=True)
    publish_catalog(client, settings.redis_prefix, read_catalog(conn))
    conn.commit()
    conn.close()
    client.close()


def make_events(count: int, stores: int, users: int, seed_value: int) -> list[dict]:
    """Events of the last week: 90 % on an entity, a user on 70 % of them."""
    rng = random.Random(seed_value)
    now = datetime.now(UTC).timestamp()
    kinds = list(DEFAULT_EVENT_WEIGHTS)
    events: list[dict] = []
    for _ in range(count):
        event: dict = {"type": rng.choice(kinds), "at": round(now - rng.uniform(0, 7 * 86400), 3)}
        if rng.random() < 0.9:
            event["entity_id"] = f"bench:{rng.randrange(stores)}"
        else:
            event["mini_app"] = f"app-{rng.randrange(10)}"
        if rng.random() < 0.7:
            event["user"] = f"user-{rng.randrange(users)}"
        events.append(event)
    return events


@dataclasses.dataclass(frozen=True)
class Row:
    """One phase: events applied, seconds, CPU seconds of PostgreSQL and Redis."""

    name: str
    events: int
    seconds: float
    postgres_s: float | None
    redis_s: float

    def line(self) -> str:
        rate = self.events / self.seconds
        per = 100_000 / max(self.events, 1)
        pg = "–" if self.postgres_s is None else f"{self.postgres_s * per:.2f}"
        return f"| {self.name} | {rate:,.0f} | {pg} | {self.redis_s * per:.2f} |"


def http_sender(
    port: int, bodies: list[bytes], until: float, applied: list[int], every_s: float = 0.0
) -> None:
    """POST the bodies in turn (one at least) until ``until``, one every ``every_s`` at
    most (0: as fast as answered), adding what each applied."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    n, due = 0, time.perf_counter()
    while n == 0 or time.perf_counter() < until:
        if every_s:
            time.sleep(max(0.0, due - time.perf_counter()))
            due += every_s
        conn.request("POST", "/v1/events", bodies[n % len(bodies)], headers)
        response = conn.getresponse()
        body = orjson.loads(response.read())
        if response.status != 200 or body["errors"]:
            raise RuntimeError(f"POST /v1/events answered {response.status}: {str(body)[:300]}")
        applied.append(body["applied"])
        n += 1


def waiting(settings: IndexSettings) -> int:
    """How many stored events no round has counted yet."""
    with db.connect(settings.database_url) as conn:
        row = conn.execute("SELECT coalesce(sum(events), 0) FROM usage_pending").fetchone()
    return int(row[0]) if row else 0


def drained(settings: IndexSettings, limit_s: float = 60.0) -> float:
    """Seconds until every stored event was counted (polled every PROBE_POLL_S) and the
    last round's patch of the hot index is done (its lock free)."""
    started = time.perf_counter()
    while waiting(settings) and time.perf_counter() - started < limit_s:
        time.sleep(PROBE_POLL_S)
    with db.connect(settings.database_url) as conn, round_lock(conn, wait=True):
        pass
    return time.perf_counter() - started


def send_events(
    port: int, bodies: list[bytes], args: argparse.Namespace
) -> tuple[list[int], float]:
    """Run the senders for ``args.seconds``: what each batch applied, and the seconds taken."""
    applied: list[int] = []
    started = time.perf_counter()
    until = started + args.seconds
    # Each sender's share of the offered rate, its batches evenly spaced (and the
    # senders' interleaved).
    every_s = args.senders * args.batch / args.rate if args.rate else 0.0
    senders = [threading.Thread(target=http_sender,
                                args=(port, bodies[k:], until, applied, every_s))
               for k in range(args.senders)]  # fmt: skip
    for sender in senders:
        sender.start()
        time.sleep(every_s / args.senders)
    for sender in senders:
        sender.join()
    return applied, time.perf_counter() - started


def http_phase(
    settings: IndexSettings, bodies: list[bytes], args: argparse.Namespace
) -> tuple[Row, list[Queries], tuple[list[float], float]]:
    """Events/s through POST /v1/events of ``nearby serve``, the probes' delays and the
    seconds until all was counted after the senders stopped, and the queries idle and
    during it (none with ``--no-queries``)."""
    port = free_port()
    env = {"NEARBY_API_KEYS": API_KEY, "NEARBY_HEAL_CHECK_S": "0",
           "NEARBY_EVENT_ROUND_S": repr(args.round_s)}  # fmt: skip
    server = serve(settings, port, ["--workers", "2"], env)
    client = connect_redis(settings.redis_url)
    querier = None
    try:
        http_sender(port, bodies[:1], 0.0, [])  # warm: one batch, not counted
        drained(settings)
        querier = Querier(port, 2) if args.queries else None
        phases = [] if querier is None else [querier.idle(args.idle_seconds)]
        pg, rd = postgres_cpu(), redis_cpu(client)
        if querier is not None:
            phases.append(querier.record_as("during HTTP events"))
        prober = Prober(port)
        applied, seconds = send_events(port, bodies, args)
        delays = prober.close()
        if querier is not None:
            querier.close()  # no query counted after the last batch
        row = Row(f"HTTP, {args.senders} senders", sum(applied), seconds,
                  postgres_cpu_since(pg), redis_cpu(client) - rd)  # fmt: skip
        return row, phases, (delays, drained(settings))
    finally:
        if querier is not None:
            querier.close()
        server.terminate()
        server.wait()
        client.close()


def print_counting(delays: list[float], drain_s: float) -> None:
    """How soon an event counted: the probes' p50 and most, and the drain after the senders."""
    print()
    if delays:
        print(f"an event counted in the rankings {statistics.median(delays):.2f} s after it was"
            f" sent (p50 of {len(delays)} probes), {max(delays):.2f} s at most;"
            f" all counted {drain_s:.2f} s after the last batch returned")  # fmt: skip
    else:
        print(f"no probe was seen counted; all counted {drain_s:.2f} s after the last batch")


def raw_phase(settings: IndexSettings, batches: list[list[dict]], seconds: float) -> Row:
    """Events/s of XADD to a stream and HINCRBYFLOAT per entity, pipelined a batch at a time."""
    client = connect_redis(settings.redis_url)
    stream = f"{settings.redis_prefix}:bench-stream"
    counts = f"{settings.redis_prefix}:bench-counts"
    client.delete(stream, counts)
    rd = redis_cpu(client)
    started, done, n = time.perf_counter(), 0, 0
    while time.perf_counter() - started < seconds:
        batch = batches[n % len(batches)]
        pipe = client.pipeline(transaction=False)
        for event in batch:
            pipe.xadd(stream, {k: str(v) for k, v in event.items()})
            target = event.get("entity_id") or event["mini_app"]
            pipe.hincrbyfloat(counts, target, DEFAULT_EVENT_WEIGHTS[event["type"]])
        pipe.execute()
        client.xtrim(stream, maxlen=0)
        done += len(batch)
        n += 1
    elapsed = time.perf_counter() - started
    row = Row("raw: XADD + HINCRBYFLOAT", done, elapsed, None, redis_cpu(client) - rd)
    client.delete(stream, counts)
    client.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=20_000)
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=8, help="Distinct batches made.")
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--round-s", type=float, default=DEFAULT_EVENT_ROUND_S,
                        help="NEARBY_EVENT_ROUND_S of the server (0: each request).")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50_000.0,
                        help="Events/s the senders offer together (0: all they can).")  # fmt: skip
    parser.add_argument(
        "--queries",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Time nearby queries idle and during the HTTP phase.",
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0,
                        help="Seconds of the idle queries.")  # fmt: skip
    args = parser.parse_args()
    settings = scratch_settings("events")
    ensure_database(settings)
    log(f"seeding {args.stores:,} stores of {args.apps} mini-apps")
    seed(settings, args.stores, args.apps)
    batches = [make_events(args.batch, args.stores, args.users, n) for n in range(args.batches)]
    bodies = [orjson.dumps(batch) for batch in batches]
    if args.queries:
        log(f"HTTP: idle queries for {args.idle_seconds:g} s, then batches of {args.batch:,}"
            f" for {args.seconds:g} s with queries")  # fmt: skip
    else:
        log(f"HTTP: batches of {args.batch:,} for {args.seconds:g} s")
    row, queries, (delays, drain_s) = http_phase(settings, bodies, args)
    rows = [row]
    log("raw baseline")
    rows.append(raw_phase(settings, batches, args.seconds))
    print(f"events in batches of {args.batch:,}, {args.stores:,} stores, {args.users:,} users")
    print("| phase | events/s | PostgreSQL CPU s / 100k | Redis CPU s / 100k |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(row.line())
    print_counting(delays, drain_s)
    if queries:
        print_queries(queries)


if __name__ == "__main__":
    main()
