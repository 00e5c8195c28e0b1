"""Usage events accepted per second: POST /v1/events in batches, beside a raw Redis baseline.

Over a scratch index of its own (``nearby_bench_events``, prefix
``nearby-bench-events``): ``--stores`` stores of ``--apps`` mini-apps, all in the
catalog. The same events, made once, go

- through ``POST /v1/events`` of ``nearby serve`` (2 workers), in batches of
  ``--batch`` as JSON, from ``--senders`` keep-alive connections at once: checked,
  stored and added to the masses and recents in PostGIS;
- raw: XADD of each event to a stream, and HINCRBYFLOAT of its weight per entity,
  each pipelined in batches of the same size (what a Redis counter alone costs).

Prints one table row per phase: events/s, and the CPU seconds PostgreSQL and
Redis used per 100,000 events.

    python -m scripts.bench_events --seconds 20
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import random
import threading
import time
from datetime import UTC, datetime

import orjson

from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.settings import DEFAULT_EVENT_WEIGHTS, IndexSettings
from indexer.store import db
from indexer.store.catalog import MiniApp, publish_catalog, read_catalog, write_catalog
from indexer.store.writer import write_entities
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

API_KEY = "bench-key"
CENTER = (37.5665, 126.978)


def seed(settings: IndexSettings, stores: int, apps: int) -> None:
    """Stores around CENTER (each of one of the ``apps`` mini-apps), the catalog, no usage."""
    rng = random.Random(1)
    conn = db.connect(settings.database_url)
    client = connect_redis(settings.redis_url)
    hot = HotIndex(client, settings.redis_prefix)
    with conn.cursor() as cur:
        cur.execute(
            "TRUNCATE entities, hot_pending, mini_apps, usage_events,"
            " usage_mini_app, user_recents, user_favorites, usage_basis"
        )
    conn.commit()
    hot.drop_all()
    entities = (
        Entity(id=f"bench:{n}", kind="store", lat=CENTER[0] + rng.uniform(-0.05, 0.05),
               lng=CENTER[1] + rng.uniform(-0.05, 0.05), mini_app=f"app-{n % apps}")
        for n in range(stores)
    )  # fmt: skip
    write_entities(conn, hot, "bench", entities)
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


def http_sender(port: int, bodies: list[bytes], until: float, applied: list[int]) -> None:
    """POST the bodies in turn (one at least) until ``until``, adding what each applied."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    n = 0
    while n == 0 or time.perf_counter() < until:
        conn.request("POST", "/v1/events", bodies[n % len(bodies)], headers)
        response = conn.getresponse()
        body = orjson.loads(response.read())
        if response.status != 200 or body["errors"]:
            raise RuntimeError(f"POST /v1/events answered {response.status}: {str(body)[:300]}")
        applied.append(body["applied"])
        n += 1


def http_phase(settings: IndexSettings, bodies: list[bytes], args: argparse.Namespace) -> Row:
    """Events/s through POST /v1/events of ``nearby serve``."""
    port = free_port()
    server = serve(settings, port, ["--workers", "2"], {"NEARBY_API_KEYS": API_KEY,
                                                        "NEARBY_HEAL_CHECK_S": "0"})  # fmt: skip
    client = connect_redis(settings.redis_url)
    try:
        applied: list[int] = []
        http_sender(port, bodies[:1], 0.0, applied)  # warm: one batch, not counted
        applied.clear()
        pg, rd = postgres_cpu(), redis_cpu(client)
        started = time.perf_counter()
        until = started + args.seconds
        senders = [threading.Thread(target=http_sender, args=(port, bodies[k:], until, applied))
                   for k in range(args.senders)]  # fmt: skip
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        seconds = time.perf_counter() - started
        return Row(f"HTTP, {args.senders} senders", sum(applied), seconds,
                   postgres_cpu_since(pg), redis_cpu(client) - rd)  # fmt: skip
    finally:
        server.terminate()
        server.wait()
        client.close()


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
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    settings = scratch_settings("events")
    ensure_database(settings)
    log(f"seeding {args.stores:,} stores of {args.apps} mini-apps")
    seed(settings, args.stores, args.apps)
    batches = [make_events(args.batch, args.stores, args.users, n) for n in range(args.batches)]
    bodies = [orjson.dumps(batch) for batch in batches]
    log(f"HTTP: batches of {args.batch:,} for {args.seconds:g} s")
    rows = [http_phase(settings, bodies, args)]
    log("raw baseline")
    rows.append(raw_phase(settings, batches, args.seconds))
    print(f"events in batches of {args.batch:,}, {args.stores:,} stores, {args.users:,} users")
    print("| phase | events/s | PostgreSQL CPU s / 100k | Redis CPU s / 100k |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print(row.line())


if __name__ == "__main__":
    main()
