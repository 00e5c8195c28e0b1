"""What observing the service costs: the request layer on the hot path, ``nearby status`` at scale.

    python -m scripts.bench_telemetry overhead                   # a small index, in-process
    python -m scripts.bench_telemetry instructions               # the same, in instructions
    python -m scripts.bench_telemetry status --stores 1000000    # the standard city's stores

``overhead``: 2,000 stores in a scratch index; the same nearby requests
answered by the fast path alone and by the whole WSGI stack (request id, the
request's record, counting into prometheus-client's multiprocess files as
under ``nearby serve``), each request asked of both in turn, and the request
layer alone in front of a WSGI app that does nothing. Prints the serving
thread's CPU microseconds per request: wall time would add Redis's share of
each request, and its noise on a shared machine.

``status``: loads the stores into a scratch database and Redis prefix
(``nearby_bench_…``, reused while the size matches, as ``scripts.bench_search``
does), then times what ``nearby status`` does: the census of Redis, the PostGIS
counts, the whole gather; and one scrape's exposition with a fresh census.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from indexer.hot.index import HotIndex, connect_redis
from indexer.model import Entity
from indexer.settings import IndexSettings
from indexer.store import db
from scripts.benchkit import admin_url, drop_database, log, scratch_settings

Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ROUNDS = 15
POINTS = 300
#: Rounds of POINTS requests that ``instructions`` counts.
MEASURED_ROUNDS = 10


def environ_of(lat: float, lng: float) -> dict[str, Any]:
    """What gunicorn hands a worker for ``GET /v1/nearby`` (the parts the API reads)."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v1/nearby",
        "QUERY_STRING": f"lat={lat:.6f}&lng={lng:.6f}&radius=500",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }


def call(app: Wsgi, environ: dict[str, Any]) -> float:
    """CPU seconds of this thread that ``app`` takes to answer one request (Redis's excluded)."""

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    started = time.thread_time()
    b"".join(app(dict(environ), start_response))
    return time.thread_time() - started


def paired(first: Wsgi, second: Wsgi, environs: list[dict[str, Any]]) -> tuple[float, float]:
    """Median over rounds of each one's mean CPU µs a request, the two asked in turn for
    each request (which goes first alternating), so that both see the same conditions."""
    means: tuple[list[float], list[float]] = ([], [])
    for _ in range(ROUNDS):
        spent = [0.0, 0.0]
        for n, environ in enumerate(environs):
            for which in (0, 1) if n % 2 == 0 else (1, 0):
                spent[which] += call((first, second)[which], environ)
        for which in (0, 1):
            means[which].append(spent[which] / len(environs) * 1e6)
    return statistics.median(means[0]), statistics.median(means[1])


def load_small_index(settings: IndexSettings, rng: random.Random) -> None:
    """2,000 stores in the scratch index, PostGIS and Redis."""
    from indexer.store.writer import write_entities
    from scripts.bench_search import ensure_database

    ensure_database(settings)
    stores = [
        Entity(id=f"b:{n}", kind="store", lat=60.17 + rng.uniform(-0.01, 0.01),
               lng=24.94 + rng.uniform(-0.02, 0.02), popularity=rng.uniform(0, 50))
        for n in range(2000)
    ]  # fmt: skip
    with db.connect(settings.database_url) as conn:
        hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
        conn.execute("TRUNCATE entities")
        conn.commit()
        hot.drop_all()
        hot.rebuild(conn)
        write_entities(conn, hot, "b", stores)
        hot.close()


def nothing(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A WSGI app that does nothing."""
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


def overhead() -> None:
    """The request layer's cost per request (see the module)."""
    directory = tempfile.mkdtemp(prefix="nearby-metrics-bench-")
    # Before prometheus-client is imported: it picks its value class once.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from discovery.api.app import create_app
    from discovery.api.requestlog import RequestLayer
    from discovery.settings import ApiSettings, ObservabilitySettings

    settings, rng = scratch_settings("overhead"), random.Random(1)
    load_small_index(settings, rng)
    observe = ObservabilitySettings(multiproc_dir=directory)
    app = create_app(ApiSettings(index=settings, observe=observe))
    full: RequestLayer = app.wsgi_app  # type: ignore[assignment]
    bare = full.wsgi_app
    environs = [
        environ_of(60.17 + rng.uniform(-0.008, 0.008), 24.94 + rng.uniform(-0.015, 0.015))
        for _ in range(POINTS)
    ]
    paired(bare, full, environs)  # warm: documents cached, scripts loaded
    bare_us, full_us = paired(bare, full, environs)
    log(f"GET /v1/nearby (500 m, 2,000 stores): CPU of the serving thread, median of {ROUNDS}")
    log(f"rounds of {POINTS} requests")
    log(f"  fast path alone        {bare_us:8.1f} µs/request")
    log(f"  with the request layer {full_us:8.1f} µs/request  ({full_us - bare_us:+.1f} µs, "
        f"{(full_us / bare_us - 1) * 100:+.1f} %)")  # fmt: skip
    nothing_us, layer_us = paired(nothing, RequestLayer(nothing, full.metrics, None), environs)
    log(f"  the layer alone        {layer_us - nothing_us:8.1f} µs/request (before a no-op app)")
    app.extensions["nearby"].close()
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    hot.drop_all()
    hot.close()
    drop_database(admin_url(), settings.database_url.rpartition("/")[2])
    shutil.rmtree(directory)


def answer(mode: str, measured: int) -> None:
    """Warm the app on the small index, then answer ``measured`` rounds of its requests by
    the fast path alone (``bare``) or the whole stack (``full``): what ``instructions`` counts."""
    directory = tempfile.mkdtemp(prefix="nearby-metrics-bench-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from discovery.api.app import create_app
    from discovery.settings import ApiSettings, ObservabilitySettings

    rng = random.Random(2)
    observe = ObservabilitySettings(multiproc_dir=directory)
    app = create_app(ApiSettings(index=scratch_settings("overhead"), observe=observe))
    wsgi = app.wsgi_app if mode == "full" else app.wsgi_app.wsgi_app  # type: ignore[attr-defined]
    environs = [
        environ_of(60.17 + rng.uniform(-0.008, 0.008), 24.94 + rng.uniform(-0.015, 0.015))
        for _ in range(POINTS)
    ]
    for _ in range(1 + measured):  # the first round warms: documents cached, scripts loaded
        for environ in environs:
            call(wsgi, environ)
    app.extensions["nearby"].close()
    shutil.rmtree(directory)


def instructions() -> None:
    """Instructions a request (callgrind: the Python process's own, not the kernel's nor
    Redis's). The fast path's: its run with the measured rounds less its run without them,
    over their requests. The layer's: the whole stack's run less the fast path's, the two
    alike but for the layer, over all their requests. What starting a process costs
    varies by some millions between runs: a few thousand a request here."""
    settings = scratch_settings("overhead")
    load_small_index(settings, random.Random(1))
    counted: dict[tuple[str, int], int] = {}
    with tempfile.TemporaryDirectory() as work:
        for mode, measured in (("bare", 0), ("bare", MEASURED_ROUNDS), ("full", MEASURED_ROUNDS)):
            out = os.path.join(work, f"{mode}.{measured}.out")
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                       sys.executable, "-m", "scripts.bench_telemetry", "answer", mode,
                       str(measured)]  # fmt: skip
            env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dicts in every run
            subprocess.run(command, check=True, capture_output=True, env=env)
            counted[(mode, measured)] = callgrind_total(out)
    measured_requests = MEASURED_ROUNDS * POINTS
    bare = (counted[("bare", MEASURED_ROUNDS)] - counted[("bare", 0)]) / measured_requests
    all_requests = (MEASURED_ROUNDS + 1) * POINTS  # the warming round too
    layer = (counted[("full", MEASURED_ROUNDS)] - counted[("bare", MEASURED_ROUNDS)]) / all_requests
    log(f"GET /v1/nearby (500 m, 2,000 stores), instructions a request (callgrind, "
        f"{measured_requests:,} requests):")  # fmt: skip
    log(f"  fast path alone        {bare / 1e6:6.3f}M")
    log(f"  the request layer      {layer / 1e3:+6.0f}k  ({layer / bare * 100:+.1f} %)")
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    hot.drop_all()
    hot.close()
    drop_database(admin_url(), settings.database_url.rpartition("/")[2])


def callgrind_total(path: str) -> int:
    """The instructions a callgrind output file counts."""
    with open(path) as out:
        for line in out:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise ValueError(f"{path}: no totals")


def timed(what: str, run: Callable[[], Any]) -> Any:
    """``run()``, its wall time printed."""
    started = time.perf_counter()
    result = run()
    log(f"  {what:<40} {time.perf_counter() - started:6.2f} s")
    return result


def status(stores: int, keep: bool) -> None:
    """``nearby status`` on ``stores`` stores (see the module)."""
    from indexer.cli.status import gather, postgis_counts
    from indexer.hot import census
    from scripts.bench_search import City, ensure_database, ensure_loaded

    city = City(stores, 0, 0)
    settings = scratch_settings(city.name)
    ensure_database(settings)
    ensure_loaded(settings, city, reload=False)
    hot = HotIndex(connect_redis(settings.redis_url), settings.redis_prefix)
    gen = hot.require_generation()
    log(f"nearby status on {stores:,} stores (generation {gen}):")
    counted = timed("census of Redis (census.lua)", lambda: census.count_hot(hot, gen))
    log(f"    {sum(counted.values()):,} entities counted")
    with db.connect(settings.database_url) as conn:
        now = datetime.now(UTC)
        timed("PostGIS counts and stale ones", lambda: postgis_counts(conn, settings, now))
    timed("the whole gather", lambda: gather(settings))
    hot.client.delete(census.census_key(hot.prefix))
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from discovery.api.metrics import ApiMetrics

    metrics = ApiMetrics(hot)
    timed("a scrape, counting afresh", metrics.exposition)
    timed("a scrape, counts cached", metrics.exposition)
    if not keep:
        hot.drop_all()
        drop_database(admin_url(), settings.database_url.rpartition("/")[2])
    hot.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("overhead", help="the request layer's cost on the hot path (CPU time)")
    sub.add_parser("instructions", help="the same in instructions (callgrind)")
    answer_parser = sub.add_parser("answer", help="(run by instructions under callgrind)")
    answer_parser.add_argument("mode", choices=("bare", "full"))
    answer_parser.add_argument("measured", type=int)
    status_parser = sub.add_parser("status", help="nearby status on a large index")
    status_parser.add_argument("--stores", type=int, default=1_000_000)
    status_parser.add_argument("--keep", action="store_true", help="keep the scratch index")
    args = parser.parse_args(argv)
    if args.what == "overhead":
        overhead()
    elif args.what == "instructions":
        instructions()
    elif args.what == "answer":
        answer(args.mode, args.measured)
    else:
        status(args.stores, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
