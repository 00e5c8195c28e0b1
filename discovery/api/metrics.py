"""``GET /metrics``: the API's own counters, and the index's state read from Redis at scrape time.

Two kinds of series (names and labels in the README's "Metrics"):

- **this API instance's**, counted as it serves (:class:`ApiMetrics`): requests
  by route template and status, latency by route and source, fallbacks to
  PostGIS and why, Redis and PostgreSQL errors, PostgreSQL reads by the server
  that answered (primary or read replica), pushed updates applied.
  ``nearby serve`` runs several worker processes: each counts in files of
  prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, made
  fresh by each ``nearby serve``), and a scrape of any worker adds them up.
  A request's count and latency are kept in memory and written to the files
  each second (and before a scrape, and when the worker exits).
- **the deployment's**, read from Redis when scraped (:class:`IndexCollector`):
  the generation, builds, entities per kind and source, each source's imports
  and feed syncs (what the command-line processes recorded, see
  :mod:`indexer.telemetry`). Every instance reports the same figures: take the
  max across instances, not the sum.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from discovery.api.requestlog import RequestRecord
from indexer import telemetry
from indexer.hot import census, layout
from indexer.hot.index import HotIndex

#: Seconds between two flushes of the counts a process keeps in memory (a scrape
#: flushes its own process first; another worker's counts show within this).
FLUSH_EVERY_S = 1.0
#: Latency buckets in seconds: a search from Redis takes about a millisecond,
#: one from PostGIS tens to thousands.
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class ApiMetrics:
    """This instance's counters, and the registry a scrape reads.

    ``multiproc_dir``: prometheus-client's multiprocess directory, where every
    worker's counts are; None: this process alone (its own registry).
    """

    def __init__(self, hot: HotIndex, multiproc_dir: str | None = None) -> None:
        disable_created_metrics()
        self.registry = CollectorRegistry()
        own = None if multiproc_dir else self.registry
        self.requests = Counter(
            "nearby_http_requests", "HTTP requests by route template and status",
            ["route", "status"], registry=own,
        )  # fmt: skip
        self.latency = Histogram(
            "nearby_http_request_duration_seconds",
            "Time to answer, by route template and where the answer came from",
            ["route", "source"], buckets=LATENCY_BUCKETS_S, registry=own,
        )  # fmt: skip
        self.fallbacks = Counter(
            "nearby_postgis_fallbacks", "Answers from PostGIS instead of Redis, by reason",
            ["reason"], registry=own,
        )  # fmt: skip
        self.redis_errors = Counter(
            "nearby_redis_errors", "Requests that met a Redis error, by kind", ["kind"],
            registry=own,
        )  # fmt: skip
        self.postgres_errors = Counter(
            "nearby_postgres_errors", "Requests that met a PostgreSQL error, by kind", ["kind"],
            registry=own,
        )  # fmt: skip
        self.reads = Counter(
            "nearby_postgres_reads", "Requests that read PostgreSQL, by the server that answered"
            " (primary, or the read replica)", ["server"], registry=own,
        )  # fmt: skip
        self.live_updates = Counter(
            "nearby_live_updates_applied", "Pushed updates applied, by endpoint", ["via"],
            registry=own,
        )  # fmt: skip
        #: Usage events (opens, taps of a mini-app) will be counted here, by
        #: kind, once the API takes them; nothing records one yet.
        self.events = Counter(
            "nearby_events", "Usage events taken, by kind (none yet)", ["kind"], registry=own
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        # (route, status, source, bucket) -> requests, and (route, source) -> seconds,
        # not yet flushed: prometheus-client's multiprocess values cost a locked
        # write to a file each, three a request, a noticeable share of a search's own work.
        self._pending: dict[tuple[str, str, str, int], int] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._closed = threading.Event()
        if multiproc_dir:
            MultiProcessCollector(self.registry, path=multiproc_dir)
        self.registry.register(IndexCollector(hot))

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once (labels() takes a lock and copies)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count(self, record: RequestRecord, seconds: float) -> None:
        """Count one answered request: its request and latency only in memory, until a flush."""
        route, source = record.route or "unmatched", record.source or "none"
        key = (route, record.status, source, bisect_left(LATENCY_BUCKETS_S, seconds))
        with self._lock:
            pending, sums = self._pending, self._sums
            pending[key] = pending.get(key, 0) + 1
            sums[route, source] = sums.get((route, source), 0.0) + seconds
        if self._flusher is None:
            self._start_flusher()
        if record.fallback is not None:
            self._child(self.fallbacks, record.fallback).inc()
        if record.redis_error is not None:
            self._child(self.redis_errors, record.redis_error).inc()
        if record.postgres_error is not None:
            self._child(self.postgres_errors, record.postgres_error).inc()
        if record.read_from is not None:
            self._child(self.reads, record.read_from).inc()
        if record.pushed is not None:
            self._child(self.live_updates, record.pushed[0]).inc(record.pushed[1])

    def flush(self) -> None:
        """Add what :meth:`count` kept in memory to the metrics (their multiprocess files).

        A histogram's bucket and sum are incremented as ``observe`` would
        (``Histogram._buckets`` and ``_sum``: tests pin the equality).
        """
        with self._lock:
            pending, sums = self._pending, self._sums
            self._pending, self._sums = {}, {}
        for (route, status, source, bucket), count in pending.items():
            self._child(self.requests, route, status).inc(count)
            self._child(self.latency, route, source)._buckets[bucket].inc(count)
        for (route, source), total in sums.items():
            self._child(self.latency, route, source)._sum.inc(total)

    def _start_flusher(self) -> None:
        """Flush every :data:`FLUSH_EVERY_S` from a daemon thread (a greenlet under gevent)
        that ends once these metrics are gone."""
        with self._lock:
            if self._flusher is not None:
                return
            alive = weakref.ref(self)

            def flush_now_and_then() -> None:
                while (metrics := alive()) is not None and not metrics._closed.is_set():
                    closed = metrics._closed
                    del metrics  # no reference held while waiting
                    if closed.wait(FLUSH_EVERY_S):
                        return
                    if (metrics := alive()) is not None:
                        metrics.flush()
                    del metrics

            self._flusher = threading.Thread(
                target=flush_now_and_then, name="metrics-flush", daemon=True
            )
            self._flusher.start()

    def close(self) -> None:
        """Flush, and stop the flushing thread (a worker that exits)."""
        self._closed.set()
        self.flush()

    def exposition(self) -> tuple[str, bytes]:
        """(content type, body) of a scrape, this process's counts flushed first."""
        self.flush()
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)


class IndexCollector:
    """The deployment's state, read from Redis at each scrape (see the module)."""

    def __init__(self, hot: HotIndex) -> None:
        self.hot = hot

    def collect(self) -> Iterator[Metric]:
        """Every family, or only ``nearby_redis_up 0`` when Redis does not answer."""
        try:
            families = [*generation_families(self.hot), *source_families(self.hot)]
            up = 1.0
        except redis.RedisError:
            families, up = [], 0.0
        yield GaugeMetricFamily("nearby_redis_up", "1 when Redis answered this scrape", value=up)
        yield from families


def gauge(name: str, documentation: str, value: float | None) -> list[Metric]:
    """A one-sample gauge, or nothing when the value is unknown."""
    return [] if value is None else [GaugeMetricFamily(name, documentation, value=value)]


def generation_families(hot: HotIndex) -> list[Metric]:
    """The generation, builds, entities and memory."""
    gen = hot.generation()
    builds = telemetry.read_builds(hot.client, hot.prefix)
    building = hot.client.exists(layout.building_key(hot.prefix))
    memory = hot.client.info("memory")
    since = builds.current_since if gen is not None and builds.current_gen == gen else None
    families = [
        *gauge("nearby_hot_index_generation", "The current generation", _number(gen)),
        *gauge(
            "nearby_hot_index_current_since_timestamp_seconds",
            "When the current generation became current", since,
        ),
        GaugeMetricFamily("nearby_rebuild_running", "1 while a build holds its lease",
                          value=float(bool(building))),
        GaugeMetricFamily("nearby_redis_used_memory_bytes", "Redis's used_memory (the server's)",
                          value=float(memory["used_memory"])),
        *build_families(builds),
    ]  # fmt: skip
    if gen is not None:
        families += census_families(census.cached_census(hot, gen))
    return families


def _number(gen: str | None) -> float | None:
    return float(gen) if gen is not None and gen.isdigit() else None


def build_families(builds: telemetry.BuildStats) -> list[Metric]:
    """Rebuilds started and finished, and how long those that became current took."""
    started = CounterMetricFamily(
        "nearby_rebuilds_started", "Builds of a generation started", value=builds.started
    )
    finished = CounterMetricFamily(
        "nearby_rebuilds_finished", "Builds of a generation finished, by outcome",
        labels=["outcome"],
    )  # fmt: skip
    for outcome, count in builds.finished.items():
        finished.add_metric([outcome], count)
    seconds = HistogramMetricFamily(
        "nearby_rebuild_duration_seconds", "Seconds of the builds that became current",
        buckets=[(floatToGoString(bound), count) for bound, count in builds.buckets],
        sum_value=builds.seconds_sum,
    )  # fmt: skip
    return [started, finished, seconds]


def census_families(counted: census.Census | None) -> list[Metric]:
    """Entities per kind and source in the current generation (counted at most a minute ago)."""
    if counted is None:
        return []
    entities = GaugeMetricFamily(
        "nearby_hot_index_entities", "Entities in the current generation of the hot index",
        labels=["kind", "source"],
    )  # fmt: skip
    for (kind, source), count in sorted(counted.counts.items()):
        entities.add_metric([kind, source], count)
    at = GaugeMetricFamily(
        "nearby_hot_index_counted_timestamp_seconds", "When the entities were counted",
        value=counted.counted_at,
    )  # fmt: skip
    return [entities, at]


def source_families(hot: HotIndex) -> list[Metric]:
    """Each source's imports and feed syncs, as the processes that ran them recorded."""
    success = GaugeMetricFamily(
        "nearby_source_last_success_timestamp_seconds",
        "When an import or feed sync of the source last succeeded", labels=["source"],
    )  # fmt: skip
    failure = GaugeMetricFamily(
        "nearby_source_last_failure_timestamp_seconds",
        "When an import or feed sync of the source last failed", labels=["source"],
    )  # fmt: skip
    lag = GaugeMetricFamily(
        "nearby_feed_lag_seconds", "How old a feed's newest data was at its last sync",
        labels=["source"],
    )  # fmt: skip
    runs = CounterMetricFamily(
        "nearby_imports", "Imports and feed syncs, by source and outcome",
        labels=["source", "outcome"],
    )  # fmt: skip
    rows = CounterMetricFamily(
        "nearby_import_rows", "Rows of imports and feed syncs, by source and outcome",
        labels=["source", "outcome"],
    )  # fmt: skip
    for stats in telemetry.read_sources(hot.client, hot.prefix):
        for family, value in ((success, stats.last_success), (failure, stats.last_failure),
                              (lag, stats.lag_s)):  # fmt: skip
            if value is not None:
                family.add_metric([stats.source], value)
        runs.add_metric([stats.source, "ok"], stats.runs_ok)
        runs.add_metric([stats.source, "failed"], stats.runs_failed)
        for outcome, count in stats.rows.items():
            rows.add_metric([stats.source, outcome], count)
    return [success, failure, lag, runs, rows]
