"""Benchmark of ``nearby import stores`` beside a raw baseline, in the same run, on the same rows.

1. Write N stores of the generated city to a CSV file (not timed).
2. Import it into an empty index (a database and Redis namespace of the run's
   own) with the real command in a child process: its time and peak memory.
3. Import the same file again (nothing changes).
4. Baseline: a raw ``COPY`` of the file into a bare PostGIS table (the same
   columns and a geography, no index, no constraint), then a raw pipelined
   ``GEOADD`` of its rows into one Redis key.
5. Redis memory: after the first import, the index's keys measured with
   ``MEMORY USAGE`` (:mod:`scripts.memory_report`: every key under the run's
   prefix, summed, and by family) and the server's ``used_memory`` before and
   after; the same two for the GEOADD key.  The MEMORY USAGE sums are the
   figures: the server is shared, so its used_memory moves with other clients'
   writes too.

    python -m scripts.bench_import --rows 100000

Needs DATABASE_URL (a role that may create databases) and REDIS_URL.
"""

from __future__ import annotations

import argparse
import csv
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from indexer.hot.index import HotIndex, connect_redis
from indexer.settings import IndexSettings
from indexer.store import db
from scripts.benchkit import drop_database, postgres_cpu, postgres_cpu_since, redis_cpu
from scripts.gen_city import write_stores_csv
from scripts.memory_report import Report, format_report, key_bytes, used_memory
from scripts.memory_report import read as read_memory

RAW_TABLE = """
CREATE TABLE raw_stores (
    id text, name text, lat double precision, lng double precision, category text,
    mini_app text, popularity double precision, opening_hours text,
    geog geography(Point, 4326) GENERATED ALWAYS AS
        (ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography) STORED
)
"""
RAW_COPY = (
    "COPY raw_stores (id, name, lat, lng, category, mini_app, popularity, opening_hours)"
    " FROM STDIN (FORMAT csv, HEADER)"
)
#: GEOADD commands sent per pipeline round trip.
GEOADD_BATCH = 10_000


@dataclass(frozen=True)
class Run:
    """One timed step: seconds, the child's peak resident memory (0 if in-process), and
    the CPU seconds that the child, Redis and PostgreSQL spent on it (None: unknown)."""

    seconds: float
    peak_rss_mb: float = 0.0
    cpu_python: float | None = None
    cpu_redis: float | None = None
    cpu_postgres: float | None = None


@dataclass(frozen=True)
class Memory:
    """Redis bytes of one thing: its keys' MEMORY USAGE summed, and used_memory's growth."""

    usage: int
    delta: int


@dataclass(frozen=True)
class ImportBench:
    """The figures of one benchmark run."""

    rows: int
    csv_mb: float
    first: Run
    again: Run
    raw_copy: Run
    raw_geoadd: Run
    index_memory: Memory
    geo_memory: Memory
    breakdown: Report

    @property
    def raw_s(self) -> float:
        """The raw baseline: COPY plus GEOADD."""
        return self.raw_copy.seconds + self.raw_geoadd.seconds


def with_database(url: str, name: str) -> str:
    """The same server URL naming another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextmanager
def scratch_index(settings: IndexSettings) -> Iterator[IndexSettings]:
    """A fresh database (from the PostGIS template when there is one) and Redis namespace."""
    token = secrets.token_hex(4)
    name = f"nearby_bench_import_{token}"
    template = urlsplit(settings.database_url).path.strip("/") + "_template"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,))
        suffix = f' TEMPLATE "{template}"' if found.fetchone() else ""
        conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    scratch = IndexSettings(
        database_url=with_database(settings.database_url, name),
        redis_url=settings.redis_url,
        redis_prefix=f"bench-import-{token}",
    )
    try:
        with psycopg.connect(scratch.database_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        db.upgrade(scratch.database_url)
        yield scratch
    finally:
        client = connect_redis(settings.redis_url)
        HotIndex(client, scratch.redis_prefix).drop_all()
        client.close()
        drop_database(settings.database_url, name)


def empty_hot_index(settings: IndexSettings) -> None:
    """Give the scratch namespace an empty generation, as ``nearby cache rebuild`` would."""
    client = connect_redis(settings.redis_url)
    with db.connect(settings.database_url) as conn:
        HotIndex(client, settings.redis_prefix).rebuild(conn)
    client.close()


def timed_import(settings: IndexSettings, path: Path) -> Run:
    """Run ``nearby import stores`` in a child process; its wall time and peak RSS."""
    env = dict(
        os.environ,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        NEARBY_REDIS_PREFIX=settings.redis_prefix,
    )
    command = [sys.executable, "-c", "from discovery.cli import main; main()"]
    command += ["import", "stores", str(path), "--source", "city"]
    client = redis.Redis.from_url(settings.redis_url)
    redis_before, postgres_before = redis_cpu(client), postgres_cpu()
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    redis_used, postgres_used = (
        redis_cpu(client) - redis_before,
        postgres_cpu_since(postgres_before),
    )
    client.close()
    out, err = child.communicate()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"import exited {code}: {err.decode()[-2000:]}")
    print("   ", out.decode().strip(), file=sys.stderr)
    return Run(
        seconds,
        usage.ru_maxrss / 1024.0,  # KiB on Linux
        usage.ru_utime + usage.ru_stime,
        redis_used,
        postgres_used,
    )


def raw_copy(settings: IndexSettings, path: Path) -> Run:
    """COPY the CSV file as it is into a bare PostGIS table."""
    with db.connect(settings.database_url) as conn:
        conn.execute(RAW_TABLE)
        conn.commit()
        started, cpu, postgres_before = time.perf_counter(), time.process_time(), postgres_cpu()
        with conn.cursor() as cur, path.open("rb") as source, cur.copy(RAW_COPY) as copy:
            while chunk := source.read(1 << 20):
                copy.write(chunk)
        conn.commit()
        seconds, postgres_used = time.perf_counter() - started, postgres_cpu_since(postgres_before)
    return Run(seconds, cpu_python=time.process_time() - cpu, cpu_postgres=postgres_used)


def raw_geoadd(settings: IndexSettings, path: Path) -> tuple[Run, Memory]:
    """Read the CSV and GEOADD every row into one key, pipelined; its time and memory."""
    client = redis.Redis.from_url(settings.redis_url)
    key = f"{settings.redis_prefix}:raw-geo"
    memory_before = used_memory(client)
    started, cpu, redis_before = time.perf_counter(), time.process_time(), redis_cpu(client)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        next(rows)
        pipe = client.pipeline(transaction=False)
        for count, (native, _name, lat, lng, *_rest) in enumerate(rows, start=1):
            pipe.execute_command("GEOADD", key, lng, lat, native)
            if count % GEOADD_BATCH == 0:
                pipe.execute()
        pipe.execute()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    redis_used = redis_cpu(client) - redis_before
    memory = Memory(key_bytes(client, key), used_memory(client) - memory_before)
    client.delete(key)
    client.close()
    return Run(seconds, cpu_python=cpu, cpu_redis=redis_used), memory


def index_memory(settings: IndexSettings, before: int) -> tuple[Memory, Report]:
    """The scratch index's Redis bytes (used_memory was ``before`` it was built), by family."""
    client = redis.Redis.from_url(settings.redis_url)
    delta = used_memory(client) - before
    report = read_memory(client, settings.redis_prefix)
    client.close()
    return Memory(report.total, delta), report


def run(settings: IndexSettings, rows: int, seed: int, directory: Path) -> ImportBench:
    """Generate the rows, then time the import, the re-import and the raw baseline."""
    path = directory / "city_stores.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        write_stores_csv(out, seed, rows)
    with scratch_index(settings) as scratch:
        with redis.Redis.from_url(settings.redis_url) as client:
            before = used_memory(client)
        empty_hot_index(scratch)
        first = timed_import(scratch, path)
        memory, breakdown = index_memory(scratch, before)
        again = timed_import(scratch, path)
        copy = raw_copy(scratch, path)
        geoadd, geo_memory = raw_geoadd(scratch, path)
    size = path.stat().st_size / 2**20
    return ImportBench(rows, size, first, again, copy, geoadd, memory, geo_memory, breakdown)


def cpu_row(label: str, step: Run) -> str:
    """The CPU seconds of one step, by process, and their sum."""
    parts = (step.cpu_python, step.cpu_redis, step.cpu_postgres)
    cells = "".join("        -" if part is None else f"{part:9.1f}" for part in parts)
    known = sum(part for part in parts if part is not None)
    return f"{label:<28}{cells}{known:9.1f}"


def memory_table(bench: ImportBench) -> list[str]:
    """Redis bytes per entity of the index beside the raw GEOADD set's, then by family."""
    entities = bench.breakdown.entities or bench.rows

    def row(label: str, size: int) -> str:
        return f"{label:<36}{size:>14,}{size / entities:>10.0f}"

    ratio = bench.index_memory.usage / bench.geo_memory.usage if bench.geo_memory.usage else 0.0
    return [
        f"{'Redis memory, after the first import':<36}{'bytes':>14}{'B/entity':>10}",
        row("hot index, MEMORY USAGE summed", bench.index_memory.usage),
        row("hot index, used_memory delta", bench.index_memory.delta),
        row("raw GEOADD set, MEMORY USAGE", bench.geo_memory.usage),
        row("raw GEOADD set, used_memory delta", bench.geo_memory.delta),
        f"hot index / raw GEOADD (MEMORY USAGE): {ratio:.1f}×; target ≤ 400 B/entity",
        "",
        format_report(bench.breakdown),
    ]


def format_table(bench: ImportBench) -> str:
    """The figures, each beside the raw baseline."""

    def row(label: str, step: Run, note: str = "") -> str:
        rate = bench.rows / step.seconds if step.seconds else 0.0
        memory = f"{step.peak_rss_mb:8.0f}" if step.peak_rss_mb else "       -"
        return f"{label:<28}{step.seconds:9.1f}{rate:12,.0f}{memory}  {note}".rstrip()

    raw = Run(bench.raw_s)
    versus_raw = f"{bench.first.seconds / bench.raw_s:.2f}× raw"
    versus_first = f"{bench.again.seconds / bench.first.seconds:.2f}× import"
    lines = [
        f"import of {bench.rows:,} generated store rows (CSV, {bench.csv_mb:.0f} MB)",
        f"{'':<28}{'seconds':>9}{'rows/s':>12}{'peak MB':>8}",
        row("nearby import (empty index)", bench.first, versus_raw),
        row("nearby re-import (unchanged)", bench.again, versus_first),
        row("raw COPY into PostGIS", bench.raw_copy),
        row("raw GEOADD, pipelined", bench.raw_geoadd),
        row("raw total", raw),
        "targets: import ≤ 1.5× raw; re-import < 0.33× import; peak < 1024 MB",
        "",
        f"{'CPU seconds':<28}{'client':>9}{'Redis':>9}{'Postgres':>9}{'all':>9}",
        cpu_row("nearby import (empty index)", bench.first),
        cpu_row("nearby re-import (unchanged)", bench.again),
        cpu_row("raw COPY into PostGIS", bench.raw_copy),
        cpu_row("raw GEOADD, pipelined", bench.raw_geoadd),
        "",
        *memory_table(bench),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the import benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    settings = IndexSettings.from_env()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as directory:
        bench = run(settings, args.rows, args.seed, Path(directory))
    print(format_table(bench))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
