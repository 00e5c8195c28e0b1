"""The feed watcher: ``nearby feeds watch``'s loop.

The watcher polls several feeds, each at its own ``ttl`` within bounds, backs
off from a feed that fails while the others go on, reclaims stale entities now
and then, and stops between polls on SIGTERM.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis

from indexer.errors import Unavailable
from indexer.hot.index import HotIndex
from indexer.jobs.feeds import FeedSpec, ImportReport, import_feed, summary_line
from indexer.progress import format_count
from indexer.settings import IndexSettings
from indexer.sources import chargers, gbfs
from indexer.store.stale import purge_stale

log = logging.getLogger("nearby.feeds")


@dataclass
class Polled:
    """A watched feed's schedule: when it is next due and how often it failed in a row."""

    spec: FeedSpec
    due: float = 0.0
    failures: int = 0
    last_error: str = field(default="")
    #: The source its last successful poll wrote (a failure is recorded under it).
    source: str | None = None


@dataclass(frozen=True)
class WatchBounds:
    """Bounds on polling: a feed's ttl is clamped to [min_s, max_s]; back-off stops at max."""

    min_s: float = 10.0
    max_s: float = 600.0
    default_s: float = 60.0
    max_backoff_s: float = 900.0


def next_interval(bounds: WatchBounds, ttl_s: int | None) -> float:
    """Seconds until the next poll after a success: the feed's ttl within bounds."""
    wanted = bounds.default_s if ttl_s is None else float(ttl_s)
    return min(max(wanted, bounds.min_s), bounds.max_s)


def backoff(bounds: WatchBounds, failures: int, rng: random.Random) -> float:
    """Seconds until a retry after ``failures`` failures in a row: doubling, jittered, bounded."""
    base = bounds.min_s * 2.0 ** min(failures - 1, 20)
    return min(base, bounds.max_backoff_s) * rng.uniform(0.8, 1.0)


#: What a poll may raise and the watcher survives (anything else is a bug).
WATCH_ERRORS = (
    gbfs.GbfsError,
    chargers.ChargerFeedError,
    psycopg.Error,
    redis.RedisError,
    Unavailable,
)


class Watcher:
    """Polls feeds until ``stop`` is set; one feed's failures never stop the others."""

    def __init__(
        self,
        specs: Sequence[FeedSpec],
        connect: Callable[[], tuple[psycopg.Connection, HotIndex]],
        settings: IndexSettings,
        bounds: WatchBounds = WatchBounds(),
        *,
        purge_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.feeds = [Polled(spec) for spec in specs]
        self.connect = connect
        self.settings = settings
        self.bounds = bounds
        self.purge_every_s = purge_every_s
        self.clock = clock
        self.stop = threading.Event()
        self.rng = random.Random()
        self._stores: tuple[psycopg.Connection, HotIndex] | None = None
        self._next_purge = 0.0

    def stores(self) -> tuple[psycopg.Connection, HotIndex]:
        """PostGIS and Redis, (re)connected when needed."""
        if self._stores is None or self._stores[0].closed or self._stores[0].broken:
            self._stores = self.connect()
        return self._stores

    def poll(self, feed: Polled) -> ImportReport | None:
        """Import one feed now; on failure log it and schedule a retry with back-off."""
        try:
            conn, hot = self.stores()
            report = import_feed(conn, hot, self.settings, feed.spec, known_source=feed.source)
        except WATCH_ERRORS as exc:
            feed.failures += 1
            feed.last_error = str(exc)
            delay = backoff(self.bounds, feed.failures, self.rng)
            feed.due = self.clock() + delay
            log.warning(
                "%s failed (%d in a row), retry in %.0f s: %s",
                feed.spec.location,
                feed.failures,
                delay,
                exc,
            )
            if isinstance(exc, psycopg.OperationalError):
                self._stores = None
            return None
        feed.failures, feed.last_error, feed.source = 0, "", report.source
        feed.due = self.clock() + next_interval(self.bounds, report.ttl_s)
        log.info("%s", summary_line(report))
        return report

    def purge(self) -> None:
        """Reclaim stale entities now and then (search hides them already)."""
        if self.clock() < self._next_purge:
            return
        self._next_purge = self.clock() + self.purge_every_s
        try:
            conn, hot = self.stores()
            purged = purge_stale(conn, hot, self.settings)
        except (psycopg.Error, redis.RedisError, Unavailable) as exc:
            log.warning("purge failed: %s", exc)
            return
        if purged:
            log.info("purged %s stale entities", format_count(purged))

    def run_once(self) -> list[ImportReport]:
        """Poll every feed that is due, then purge if it is time."""
        now = self.clock()
        reports = []
        for feed in self.feeds:
            if self.stop.is_set():
                break
            if feed.due <= now:
                report = self.poll(feed)
                reports.extend([report] if report else [])
        self.purge()
        return reports

    def run(self) -> None:
        """Poll until ``stop`` is set, sleeping until the next feed is due."""
        while not self.stop.is_set():
            self.run_once()
            wait = min(feed.due for feed in self.feeds) - self.clock()
            self.stop.wait(max(wait, 0.05))


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT; the current poll finishes, then the loop ends."""
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, frame: Any) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
