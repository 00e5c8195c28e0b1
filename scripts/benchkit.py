"""What the benchmarks share: scratch indexes, a served API, CPU readings, percentiles.

Every benchmark writes into an index of its own: a database ``nearby_bench_<name>``
beside the one DATABASE_URL names (made from its PostGIS template) and the Redis
prefix ``nearby-bench-<name>`` in Redis database ``BENCH_REDIS_DB``; the demo's index is
never touched.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import redis

from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, IndexSettings
from indexer.store import db
from indexer.store.catalog import MiniApp, publish_catalog, read_catalog, write_catalog
from indexer.store.writer import write_entities

#: The Redis database (of the server REDIS_URL names) the benches keep their indexes in.
BENCH_REDIS_DB = 1


def admin_url() -> str:
    """The database URL the environment names (the scratch databases sit beside it)."""
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def bench_redis_url(url: str) -> str:
    """``url`` with the benches' Redis database as its path."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{BENCH_REDIS_DB}"))


def scratch_settings(name: str, **overrides: Any) -> IndexSettings:
    """Settings of the bench index ``name``: its own database and Redis prefix, in a Redis
    database of the benches' (``BENCH_REDIS_DB``), so that the millions of keys of a bench
    city are not in the way of the tests' scans."""
    base = admin_url().rpartition("/")[0]
    settings = IndexSettings(
        database_url=f"{base}/nearby_bench_{name}",
        redis_url=bench_redis_url(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)),
        redis_prefix=f"nearby-bench-{name}",
    )
    return dataclasses.replace(settings, **overrides)


def ensure_database(settings: IndexSettings) -> None:
    """Create the bench database from the PostGIS template when missing, and migrate it."""
    admin = admin_url()
    name = settings.database_url.rpartition("/")[2]
    template = admin.rpartition("/")[2] + "_template"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    db.upgrade(settings.database_url)


def ensure_stores(
    settings: IndexSettings,
    count: int,
    reload: bool,
    apps: Sequence[MiniApp],
    stores: Callable[[], Iterable[Entity]],
) -> None:
    """Load the catalog ``apps`` and the ``count`` entities ``stores()`` yields into PostGIS
    and Redis, unless that many are there already (and Redis holds a generation)."""
    conn = db.connect(settings.database_url)
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    found = conn.execute("SELECT count(*) FROM entities").fetchone()
    if not reload and (found[0] if found else 0) == count and hot.generation() is None:
        log(f"{count:,} stores in PostGIS, no index in Redis (or of another layout): rebuilding …")
        started = time.perf_counter()
        hot.rebuild(conn)
        log(f"rebuilt in {time.perf_counter() - started:.0f} s")
    if reload or (found[0] if found else 0) != count or hot.generation() is None:
        log(f"loading {count:,} stores …")
        started = time.perf_counter()
        conn.execute("TRUNCATE entities, mini_apps")
        conn.commit()
        hot.drop_all()
        hot.rebuild(conn)
        write_catalog(conn, list(apps), replace=True)
        write_entities(conn, hot, "city", stores())
        with psycopg.connect(settings.database_url, autocommit=True) as maintenance:
            maintenance.execute("VACUUM ANALYZE entities")
        log(f"loaded in {time.perf_counter() - started:.0f} s")
    publish_catalog(hot.client, settings.redis_prefix, read_catalog(conn))
    conn.close()
    hot.client.close()


def drop_database(url: str, name: str) -> None:
    """Drop a scratch database, closing what is still connected to it.

    An autovacuum worker (which a large import wakes) belongs to no role that
    FORCE may end: a plain DROP stops it instead.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.errors.InsufficientPrivilege:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def redis_cpu(client: redis.Redis) -> float:
    """CPU seconds that the Redis server's main thread has used."""
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


def postgres_cpu() -> float | None:
    """CPU seconds used by this machine's PostgreSQL processes and the backends they
    have reaped (None when none can be read: a server elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, found = 0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, _, rest = stat.partition(") ")
        if name.endswith("(postgres"):
            fields = rest.split()
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
            found = True
    return total / ticks if found else None


def postgres_cpu_since(before: float | None) -> float | None:
    """PostgreSQL's CPU seconds since it had used ``before`` (None: unknown)."""
    after = postgres_cpu()
    return None if before is None or after is None else after - before


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str) -> None:
    """Wait until ``url`` answers."""
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def serve(
    settings: IndexSettings, port: int, args: Sequence[str], env: Mapping[str, str] = {}
) -> subprocess.Popen[bytes]:
    """``nearby serve`` over the bench index on ``port``, waited for until it answers."""
    environ = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "NEARBY_REDIS_PREFIX": settings.redis_prefix,
        **env,
    }
    nearby = os.path.join(os.path.dirname(sys.executable), "nearby")
    server = subprocess.Popen(
        [nearby, "serve", "--port", str(port), *args],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
    except RuntimeError:
        server.kill()
        raise
    return server


def percentiles(times_ms: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 of ``times_ms``."""
    cuts = statistics.quantiles(times_ms, n=100, method="inclusive")
    return statistics.median(times_ms), cuts[98]


def summary(times_ms: Sequence[float]) -> str:
    """``p50 / p99`` in ms, as the tables print them."""
    p50, p99 = percentiles(times_ms)
    return f"{p50:.2f} / {p99:.2f}"


def timed(run: Callable[[float, float], Any], points: Sequence[tuple[float, float]]) -> list[float]:
    """Milliseconds of each call of ``run(lat, lng)``."""
    times = []
    for lat, lng in points:
        started = time.perf_counter()
        run(lat, lng)
        times.append((time.perf_counter() - started) * 1000)
    return times


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)
